"""Typed requests and the error envelope: a misspelt or out-of-range option is a 422 naming the field, unknown
routes and methods answer in the envelope, timestamps carry their offset, and rows stored before still load."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.client.http import ApiError
from app.core.config import get_settings
from app.db.models import PipelineRun, User
from app.db.session import session_scope
from tests.utils.contract_app import ADMIN_PASSWORD, contract_app, login

__all__ = ["contract_app"]  # the fixture


@pytest.fixture(scope="module")
def client(contract_app: FastAPI) -> TestClient:
    token = login(contract_app, "admin", ADMIN_PASSWORD)
    return TestClient(contract_app, base_url="http://testserver/api/v1", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def version(client: TestClient) -> dict:
    dataset = client.post("/dataset", json={"name": "typed"}).json()
    csv = b"a,b,label\n" + b"".join(b"%d,%d,%d\n" % (i, i * 2, i % 2) for i in range(20))
    answer = client.post(f"/dataset/{dataset['id']}/version", files={"file": ("typed.csv", csv, "text/csv")})
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"op": "impute", "stratgy": "median"}, "body.steps.0.impute.stratgy: unknown field"),
        ({"op": "impute", "strategy": "medium"}, "body.steps.0.impute.strategy"),
        ({"op": "impute", "strategy": "constant"}, "needs a fill_value"),
        ({"op": "outliers", "factor": -1}, "body.steps.0.outliers.factor"),
        ({"op": "cast", "types": {"a": "integer"}}, "body.steps.0.cast.types.a"),
        ({"op": "select"}, "give 'columns', or method"),
        ({"op": "normalise"}, "body.steps.0: Input tag 'normalise'"),
    ],
)
def test_bad_pipeline_step_is_refused_naming_the_field(
    client: TestClient, version: dict, step: dict, field: str
) -> None:
    answer = client.post(f"/dataset/version/{version['id']}/pipeline", json={"steps": [step]})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["code"] == "INVALID_INPUT" and field in body["message"], body
    assert client.get(f"/dataset/version/{version['id']}/pipeline").json()["items"] == []  # nothing recorded
    # The SDK shows the same message.
    assert field in str(ApiError(answer.status_code, body))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"epoch": 3}, "body.epoch: unknown field"),
        ({"template": "gpt"}, "Unknown template 'gpt'"),
        ({"image": {"size": 64}}, "image: not an option of template 'tabular_mlp'"),
        ({"params": {"x": 1}}, "params: not an option of template 'tabular_mlp'"),
        ({"lr_scheduler": {"type": "step", "gama": 0.5}}, "body.lr_scheduler.gama: unknown field"),
    ],
)
def test_bad_training_config_is_refused_naming_the_field(
    client: TestClient, version: dict, change: dict, field: str
) -> None:
    answer = client.post(
        "/training/job", json={"dataset_version_id": version["id"], "target_column": "label", **change}
    )
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["message"]


def test_search_space_names_only_tunable_parameters(client: TestClient, version: dict) -> None:
    search = {"space": {"epochs": {"type": "choice", "values": [1, 2]}}}
    answer = client.post(
        "/training/tune", json={"dataset_version_id": version["id"], "target_column": "label", "search": search}
    )
    assert answer.status_code == 422 and "body.search.space.epochs" in answer.json()["message"], answer.text
    space = client.app.openapi()["components"]["schemas"]["SearchConfig"]["properties"]["space"]  # type: ignore[attr-defined]
    assert "learning_rate" in space["propertyNames"]["enum"]


def test_role_limits_and_feature_config_are_typed(client: TestClient, version: dict) -> None:
    role = client.post("/system/role", json={"name": "typed-role", "permissions": [], "limits": {"max_gpu": 1}})
    assert role.status_code == 422 and "body.limits.max_gpu: unknown field" in role.json()["message"], role.text
    features = client.put(f"/dataset/{version['dataset_id']}/features", json={"target": "label", "numerics": ["a"]})
    assert features.status_code == 422 and "body.numerics: unknown field" in features.json()["message"]


def test_unknown_route_and_method_answer_in_the_envelope(client: TestClient, version: dict) -> None:
    missing = client.get("/no/such/route")
    assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
    # GET and DELETE of one path are two routes: Allow names both.
    wrong = client.put(f"/dataset/{version['dataset_id']}")
    assert wrong.status_code == 405 and wrong.json()["code"] == "METHOD_NOT_ALLOWED"
    assert wrong.headers["allow"] == "DELETE, GET"


def test_unreadable_body_is_invalid_input(client: TestClient) -> None:
    answer = client.post("/dataset", content=b"<\xffj", headers={"Content-Type": "application/json"})
    assert answer.status_code == 422 and "cannot be read" in answer.json()["message"], answer.text


def test_every_error_status_is_declared_with_the_envelope(client: TestClient) -> None:
    document = client.app.openapi()  # type: ignore[attr-defined]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    operation = document["paths"]["/api/v1/dataset/{dataset_id}"]["delete"]
    assert {"401", "403", "404", "409", "422", "503"} <= set(operation["responses"])
    assert operation["responses"]["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


def test_timestamps_carry_their_offset(client: TestClient, version: dict) -> None:
    created = dt.datetime.fromisoformat(version["created_at"])
    assert created.utcoffset() == dt.timedelta(0)


def test_pipeline_stored_before_typing_still_loads(client: TestClient, version: dict) -> None:
    old_steps = [{"op": "impute", "stratgy": "median"}, {"op": "scale", "with_mean": True}]  # refused today
    with session_scope(get_settings().database_url) as session:
        owner = session.query(User).filter_by(username="admin").one()
        run = PipelineRun(input_version_id=version["id"], owner_id=owner.id, steps=old_steps, status="FAILED")
        session.add(run)
        session.flush()
        run_id = run.id
    answer = client.get(f"/dataset/pipeline/{run_id}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["steps"] == old_steps
