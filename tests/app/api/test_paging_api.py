"""Paged lists over HTTP on the running platform: the one envelope for every list, bounds and sorts refused with
the error envelope, the SDK's page and fetch-all, the CLI's --limit/--offset with the total."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli.main import app
from app.client import ApiError, Client
from tests.conftest import ADMIN_PASSWORD

LISTS = [
    "/dataset",
    "/training/job",
    "/training/tune",
    "/model",
    "/deployment",
    "/system/user",
    "/system/role",
    "/system/audit",
    "/account/token",
]


@pytest.mark.parametrize("path", LISTS)
def test_every_list_answers_one_page(admin: Client, path: str) -> None:
    page = admin._call("GET", path, params={"limit": 2})
    assert set(page) == {"items", "total", "limit", "offset"} and page["limit"] == 2 and page["offset"] == 0
    assert len(page["items"]) == min(2, page["total"])
    for params, match in (({"limit": 501}, "limit"), ({"offset": -1}, "offset"), ({"sort": "nope"}, "sort by one of")):
        with pytest.raises(ApiError) as err:
            admin._call("GET", path, params=params)
        assert err.value.status == 422 and match in str(err.value), err.value.body
        assert set(err.value.body) >= {"code", "message"}


def test_the_sdk_and_cli_read_a_page_or_all_of_them(
    admin: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # the CLI's saved login stays in the test's dir
    monkeypatch.delenv("AIP_TOKEN", raising=False)
    prefix = f"paged-{uuid.uuid4().hex[:6]}"
    ids = [admin.create_dataset(f"{prefix}-{i}")["id"] for i in range(5)]
    first = admin.list_datasets(name=prefix, limit=2, sort="-id")
    assert [d["id"] for d in first] == ids[::-1][:2] and first.total == 5
    second = admin.list_datasets(name=prefix, limit=2, offset=2, sort="-id")
    assert [d["id"] for d in second] == ids[::-1][2:4]
    everything = admin.list_datasets(name=prefix)
    assert [d["id"] for d in everything] == ids and everything.total == 5

    runner = CliRunner()
    login = ["login", "-u", "admin", "-p", ADMIN_PASSWORD, "--url", admin.base_url]
    assert runner.invoke(app, login).exit_code == 0
    result = runner.invoke(app, ["dataset", "list", "--limit", "1", "--url", admin.base_url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    total = admin.list_datasets(limit=1).total
    assert f"1-1 of {total} datasets; --offset 1 for the next 1." in result.output
