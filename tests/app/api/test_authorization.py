"""The authorization matrix: every route of the app x {anonymous, no-permission user, viewer, another developer,
owner, admin}. Routes are enumerated from the live OpenAPI document, so a new route is covered automatically and
one left open by accident fails here."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from app.client import ApiError, Client
from app.contracts.status import DeploymentStatus, JobStatus
from app.core.config import Settings
from app.core.permissions import PERMISSIONS
from app.db.models import Deployment, Model, ModelVersion, TrainingJob
from app.db.session import session_scope
from tests.utils.factories import upload_frame
from tests.utils.people import PASSWORD, People, make_people

PUBLIC = {("GET", "/api/v1/health"), ("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/refresh")}
DESTRUCTIVE = {"POST", "PUT", "PATCH", "DELETE"}
ENDS_THE_LOGIN = {("POST", "/api/v1/auth/logout")}  # covered in test_accounts; here it would log the caller out
MISSING = 999_999
LACKS = re.compile(r"lack the permission '([^']+)'")


@pytest.fixture(scope="module")
def people(admin: Client) -> People:
    return make_people(admin, uuid.uuid4().hex[:6])


@pytest.fixture(scope="module")
def nobody(admin: Client, people: People) -> Client:
    """A user whose only role holds no permission at all."""
    role = f"nothing-{uuid.uuid4().hex[:6]}"
    admin.create_role(role, [])
    username = f"nobody-{uuid.uuid4().hex[:6]}"
    admin.create_user(username, PASSWORD, [role])
    return Client(admin.base_url).login(username, PASSWORD)


@pytest.fixture(scope="module")
def owned(people: People, platform_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """One resource of each kind owned by `people.owner`."""
    frame = pd.DataFrame({"x": range(10), "y": [0, 1] * 5})
    version = upload_frame(people.owner, frame, tmp_path_factory.mktemp("authz"), f"owned-{uuid.uuid4().hex[:6]}")
    owner_id = people.ids["owner"]
    with session_scope(platform_settings.database_url) as s:
        job = TrainingJob(
            name=f"owned-job-{uuid.uuid4().hex[:6]}",
            owner_id=owner_id,
            dataset_version_id=version["id"],
            template="tabular_mlp",
            config={},
            status=JobStatus.FAILED,
        )
        model = Model(name=job.name, owner_id=owner_id)
        s.add_all([job, model])
        s.flush()
        model_version = ModelVersion(
            model_id=model.id,
            version=1,
            training_job_id=job.id,
            dataset_version_id=version["id"],
            template="tabular_mlp",
            artifact_key="models/none",
            signature={"inputs": ["x"], "target": "y", "classes": [0, 1]},
            metrics={},
        )
        s.add(model_version)
        s.flush()
        deployment = Deployment(
            model_version_id=model_version.id, owner_id=owner_id, status=DeploymentStatus.FAILED, num_replicas=1
        )
        s.add(deployment)
        s.flush()
        return {
            "dataset": version["dataset_id"],
            "dataset_version": version["id"],
            "job": job.id,
            "model": model.id,
            "model_version": model_version.id,
            "deployment": deployment.id,
        }


def routes(client: Client) -> list[tuple[str, str]]:
    spec = httpx.get(f"{client.base_url}/openapi.json").json()
    return sorted(
        (method.upper(), path) for path, ops in spec["paths"].items() for method in ops if method != "parameters"
    )


def fill(path: str, ids: dict[str, int]) -> str:
    """Puts the owner's resource ids into a route's path parameters (an absent id where none fits)."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1).removesuffix("_id")
        if key in ("resource", "version"):
            kind = "model" if path.startswith("/api/v1/model") else "dataset"
            key = kind if key == "resource" else f"{kind}_version"
        return str(ids.get(key, MISSING))

    return re.sub(r"\{([^}]+)\}", value, path)


def call(client: Client, method: str, path: str, body: Any = None) -> httpx.Response:
    return client._http.request(method, path.removeprefix("/api/v1"), json=body)


def permission_of(nobody: Client, method: str, path: str) -> str:
    response = call(nobody, method, fill(path, {}))
    assert response.status_code == 403, f"{method} {path} is open to a user without permissions: {response.text}"
    match = LACKS.search(response.json()["message"])
    assert match and match.group(1) in PERMISSIONS, response.text
    return match.group(1)


def permissions_of(client: Client) -> set[str]:
    return set(client.account()["permissions"])


def test_every_route_needs_a_login_and_a_declared_permission(people: People, nobody: Client) -> None:
    all_routes = routes(people.admin)
    assert len(all_routes) > 20
    for method, path in all_routes:
        if (method, path) in PUBLIC:
            continue
        response = call(people.anonymous, method, fill(path, {}))
        assert response.status_code == 401, f"{method} {path} answered {response.status_code} without a login"
        permission_of(nobody, method, path)


def test_permission_matrix(people: People, nobody: Client, owned: dict[str, int]) -> None:
    principals = {"viewer": people.viewer, "other": people.other, "owner": people.owner, "admin": people.admin}
    held = {name: permissions_of(client) for name, client in principals.items()}
    for method, path in routes(people.admin):
        if (method, path) in PUBLIC | ENDS_THE_LOGIN:
            continue
        permission = permission_of(nobody, method, path)
        for name, client in principals.items():
            allowed = "*" in held[name] or permission in held[name]
            # Owners and admins aim changes at an absent id, so the matrix destroys nothing they own.
            target = fill(path, {} if name in ("owner", "admin") and method in DESTRUCTIVE else owned)
            status = call(client, method, target).status_code
            if not allowed:
                assert status == 403, f"{name} {method} {path} -> {status}, expected 403 (lacks {permission})"
            else:
                assert status not in (401, 403), f"{name} {method} {path} -> {status} although {name} holds it"
            if name in ("viewer", "other") and "{" in path:
                # Someone else's resource: never a success, and a read says 'not found' rather than leak it.
                assert status >= 400, f"{name} {method} {target} succeeded on the owner's resource"
                if method == "GET" and allowed:
                    assert status == 404, f"{name} GET {target} -> {status}"
            if name in ("owner", "admin") and method == "GET" and allowed and "{" in path:
                assert status != 404 or target.endswith(str(MISSING)) or "/share" in path or "logs" in path, (
                    f"{name} cannot see {target}"
                )


def test_lists_do_not_leak_other_users_resources(people: People, owned: dict[str, int]) -> None:
    listings = {"/dataset": "dataset", "/training/job": "job", "/model": "model", "/deployment": "deployment"}
    for path, kind in listings.items():
        owner_ids = {row["id"] for row in people.owner._call("GET", path, params={"limit": 500})["items"]}
        assert owned[kind] in owner_ids
        assert owned[kind] in {row["id"] for row in people.admin._list(path, None, 0)}
        for client in (people.other, people.viewer):
            page = client._call("GET", path, params={"limit": 500})
            assert owned[kind] not in {row["id"] for row in page["items"]}, f"{path} leaks"
            assert page["total"] == len(page["items"]), f"{path} counts rows it does not show"


def test_sharing_gives_read_access_only(people: People, owned: dict[str, int], tmp_path: Path) -> None:
    other_name = people.other.account()["username"]
    with pytest.raises(ApiError) as err:
        people.other.share("dataset", owned["dataset"], other_name)
    assert err.value.status == 404  # not visible to them, so not shareable either
    people.owner.share("dataset", owned["dataset"], other_name)
    assert people.other._call("GET", f"/dataset/{owned['dataset']}")["id"] == owned["dataset"]
    assert owned["dataset"] in {d["id"] for d in people.other.list_datasets()}
    with pytest.raises(ApiError) as err:
        people.other.share("dataset", owned["dataset"], people.viewer.account()["username"])
    assert err.value.status == 403  # read access does not include re-sharing
    people.owner._call("DELETE", f"/dataset/{owned['dataset']}/share/{other_name}")
    with pytest.raises(ApiError) as err:
        people.other._call("GET", f"/dataset/{owned['dataset']}")
    assert err.value.status == 404
