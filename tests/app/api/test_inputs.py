"""Bad input on every route of the walking skeleton: a 4xx that names the problem, and nothing half-created."""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest

from app.client import ApiError, Client
from app.core.config import Settings
from app.core.security import create_access_token
from app.storage import open_store
from tests.utils.factories import TARGET, breast_cancer_split, upload_frame


@pytest.fixture(scope="module")
def small_version(admin: Client, tmp_path_factory: pytest.TempPathFactory) -> dict:
    train, _ = breast_cancer_split()
    return upload_frame(admin, train.head(60), tmp_path_factory.mktemp("inputs"), "inputs-small")


def expect_error(status: int, call, *args, match: str = "", **kwargs) -> ApiError:  # noqa: ANN001
    with pytest.raises(ApiError) as err:
        call(*args, **kwargs)
    assert err.value.status == status, err.value.body
    assert match.lower() in str(err.value).lower(), err.value.body
    return err.value


def job_count(client: Client) -> int:
    return len(client.list_jobs())


@pytest.mark.parametrize(
    ("change", "status", "match"),
    [
        ({"dataset_version_id": 999_999}, 404, "Dataset version 999999"),
        ({"target_column": "no_such_column"}, 422, "no_such_column"),
        ({"epochs": 0}, 422, "epochs"),
        ({"batch_size": -1}, 422, "batch_size"),
        ({"learning_rate": 0}, 422, "learning_rate"),
        ({"num_workers": 0}, 422, "num_workers"),
        ({"template": "gpt"}, 422, "Unknown template"),
        ({"unknown_field": 1}, 422, "unknown_field"),
        ({"dataset_id": 1}, 422, "exactly one"),
    ],
)
def test_bad_job_is_refused_and_creates_nothing(
    admin: Client, small_version: dict, change: dict, status: int, match: str
) -> None:
    before = job_count(admin)
    spec = {"dataset_version_id": small_version["id"], "target_column": TARGET, "epochs": 1, **change}
    expect_error(status, admin.create_job, match=match, **spec)
    assert job_count(admin) == before


def test_non_numeric_feature_is_refused(admin: Client, tmp_path: Path) -> None:
    frame = pd.DataFrame({"colour": ["red", "blue"] * 10, "size": range(20), "label": [0, 1] * 10})
    version = upload_frame(admin, frame, tmp_path, "inputs-text-feature")
    before = job_count(admin)
    expect_error(422, admin.create_job, match="colour", dataset_version_id=version["id"], target_column="label")
    assert job_count(admin) == before


def test_unknown_dataset_is_404(admin: Client, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    expect_error(404, admin.upload_csv, 999_999, path, match="Dataset 999999")
    expect_error(404, admin.create_job, dataset_id=999_999, target_column="b", match="Dataset 999999")


def test_bad_uploads_leave_no_version_and_no_object(admin: Client, platform_settings: Settings) -> None:
    dataset = admin.create_dataset("inputs-bad-uploads")
    store = open_store(platform_settings)
    objects_before = sorted(store.list("datasets/"))
    cases = {
        "../escape.csv": (b"a,b\n1,2\n", "not allowed"),
        "notes.txt": (b"a,b\n1,2\n", "Unsupported file type"),
        "empty.csv": (b"", "empty"),
        "header-only.csv": (b"a,b\n", "no rows"),
        "binary.csv": (b"\xff\xfe\x00\x01" * 10, "not UTF-8"),
    }
    for name, (content, match) in cases.items():
        response = admin._http.post(f"/dataset/{dataset['id']}/version", files={"file": (name, content)})
        assert response.status_code == 422, (name, response.text)
        assert match.lower() in response.json()["message"].lower(), (name, response.text)
    assert admin._call("GET", f"/dataset/{dataset['id']}")["versions"] == []
    assert sorted(store.list("datasets/")) == objects_before


def test_dataset_names_are_checked(admin: Client) -> None:
    expect_error(422, admin.create_dataset, "", match="name")
    expect_error(422, admin.create_dataset, "../etc", match="name")
    admin.create_dataset("inputs-unique")
    expect_error(409, admin.create_dataset, "inputs-unique", match="already exists")


def test_routes_need_a_valid_token(running_platform, platform_settings: Settings) -> None:  # noqa: ANN001
    api = f"{running_platform.api_url}/api/v1"
    assert httpx.get(f"{api}/health").status_code == 200
    assert httpx.get(f"{api}/dataset").status_code == 401
    assert httpx.get(f"{api}/dataset", headers={"Authorization": "Bearer forged"}).status_code == 401
    expired = create_access_token(user_id=1, session_id=1, secret_key=platform_settings.secret_key, minutes=-1)
    response = httpx.get(f"{api}/training/job", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert "expired" in response.json()["message"]
    wrong = httpx.post(f"{api}/auth/login", data={"username": "admin", "password": "wrong"})
    assert wrong.status_code == 401


def test_malformed_requests_are_422(admin: Client) -> None:
    response = admin._http.post("/training/job", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert admin._http.get("/training/job/abc").status_code == 404  # a path id that names nothing
    assert admin._http.post("/deployment/999999/predict", json={"rows": [{"a": 1}]}).status_code == 404
    assert admin._http.post("/model/999999/deploy", json={}).status_code == 404
