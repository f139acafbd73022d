"""Scheduling limits on roles through the admin API: set, shown, cleared and validated; built-in roles too."""

from __future__ import annotations

import pytest

from app.client import ApiError, Client

pytestmark = pytest.mark.ray


def test_role_limits_are_set_validated_and_cleared(admin: Client) -> None:
    role = admin.create_role("gpu-team", [], limits={"max_gpus": 2, "max_jobs": 3})
    assert role["limits"] == {"max_gpus": 2, "max_jobs": 3}
    assert admin.update_role(role["id"], limits={"max_cpus": 16})["limits"] == {"max_cpus": 16}

    for bad, match in (({"max_gpus": -1}, "max_gpus"), ({"max_gpu": 1}, "max_gpu"), ({"max_jobs": 1.5}, "max_jobs")):
        with pytest.raises(ApiError, match=match) as err:
            admin.update_role(role["id"], limits=bad)
        assert err.value.status == 422
    assert next(r for r in admin.list_roles() if r["id"] == role["id"])["limits"] == {"max_cpus": 16}

    # A built-in role takes limits, though its permissions stay as they are.
    developer = next(r for r in admin.list_roles() if r["name"] == "developer")
    try:
        assert admin.update_role(developer["id"], limits={"max_jobs": 4})["limits"] == {"max_jobs": 4}
        with pytest.raises(ApiError, match="built in") as err:
            admin.update_role(developer["id"], permissions=[], limits={"max_jobs": 1})
        assert err.value.status == 409
    finally:
        assert admin.update_role(developer["id"], limits={})["limits"] == {}
