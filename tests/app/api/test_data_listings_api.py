"""The data layer over HTTP on the running platform: profiles made by the background worker after an upload,
listings of quality reports and pipeline runs with ownership, versions, feature configuration, bad input."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest

from app.client import ApiError, Client
from app.contracts.status import JobStatus
from app.core.config import Settings
from app.db.models import DatasetVersion, PipelineRun, QualityReport
from app.db.session import session_scope
from tests.utils.people import make_people
from tests.utils.wait import wait_for


def expect_error(code: int, call, *args, match: str = "", **kwargs) -> ApiError:  # noqa: ANN001
    with pytest.raises(ApiError) as err:
        call(*args, **kwargs)
    assert err.value.status == code, err.value.body
    assert match.lower() in str(err.value).lower(), err.value.body
    return err.value


def stored_profile(settings: Settings, version_id: int) -> dict | None:
    with session_scope(settings.database_url) as session:
        return session.get_one(DatasetVersion, version_id).profile


def test_the_background_profiles_a_new_version(admin: Client, platform_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "bg.csv"
    pd.DataFrame({"x": [1.5, 2.5, None, 4.0], "c": ["a", "b", "a", None]}).to_csv(path, index=False)
    version = admin.upload(admin.create_dataset(f"bg-{uuid.uuid4().hex[:6]}")["id"], path)
    # Nobody asks for it: the reconcile loop's worker computes and stores it.
    profile = wait_for(lambda: stored_profile(platform_settings, version["id"]), timeout_s=60, what="a profile")
    by_name = {c["name"]: c for c in profile["column_profiles"]}
    assert (profile["rows"], by_name["x"]["missing"], by_name["x"]["mean"]) == (4, 1, 8.0 / 3)
    assert admin.dataset_profile(version["id"]) == profile


def test_listings_versions_features_and_ownership(admin: Client, platform_settings: Settings, tmp_path: Path) -> None:
    people = make_people(admin, uuid.uuid4().hex[:6])
    path = tmp_path / "owned.csv"
    pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "label": [0, 1, 0]}).to_csv(path, index=False)
    dataset = people.owner.create_dataset("owned")
    version = people.owner.upload(dataset["id"], path)
    with session_scope(platform_settings.database_url) as session:
        for status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            owner_id = people.ids["owner"]
            session.add(QualityReport(version_id=version["id"], owner_id=owner_id, config={}, status=status))
            session.add(PipelineRun(input_version_id=version["id"], owner_id=owner_id, steps=[], status=status))

    owner = people.owner
    assert [v["id"] for v in owner.list_dataset_versions(dataset["id"])] == [version["id"]]
    assert len(owner.list_quality_reports(version["id"])) == 2
    assert [r["status"] for r in owner.list_quality_reports(dataset_id=dataset["id"], status="FAILED")] == ["FAILED"]
    assert len(owner.list_pipeline_runs(version["id"])) == 2
    assert [r["status"] for r in owner.list_pipeline_runs(dataset_id=dataset["id"], status="SUCCEEDED")] == [
        "SUCCEEDED"
    ]
    assert len(admin.list_pipeline_runs(dataset_id=dataset["id"])) == 2  # admins see everything

    for stranger in (people.other, people.viewer):
        expect_error(404, stranger.list_dataset_versions, dataset["id"], match=f"Dataset {dataset['id']}")
        expect_error(404, stranger.list_quality_reports, version["id"], match=f"version {version['id']}")
        expect_error(404, stranger.list_quality_reports, dataset_id=dataset["id"], match="does not exist")
        expect_error(404, stranger.list_pipeline_runs, version["id"], match="does not exist")
        expect_error(404, stranger.list_pipeline_runs, dataset_id=dataset["id"], match="does not exist")
        expect_error(404, stranger.dataset_profile, version["id"], match="does not exist")
    expect_error(401, people.anonymous.list_pipeline_runs, version["id"])

    expect_error(422, owner.list_pipeline_runs, version["id"], status="DONE", match="status")
    expect_error(422, owner.list_quality_reports, dataset_id=dataset["id"], status="done", match="status")
    expect_error(422, owner.pipeline_state, version["id"], match="not made by a pipeline")

    expect_error(422, owner.set_features, dataset["id"], target="label", numeric=["nope"], match="['nope']")
    expect_error(422, owner.set_features, dataset["id"], numeric=["a"], categorical=["a"], match="both")
    expect_error(404, people.other.set_features, dataset["id"], numeric=["a"])
    expect_error(403, people.viewer.set_features, dataset["id"], numeric=["a"], match="dataset:edit")
    assert owner.get_dataset(dataset["id"])["feature_config"] is None  # refused changes left nothing
    saved = owner.set_features(dataset["id"], target="label", numeric=["a"], categorical=["b"])
    assert saved["feature_config"] == {"target": "label", "numeric": ["a"], "categorical": ["b"]}
