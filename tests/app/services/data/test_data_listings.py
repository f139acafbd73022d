"""Listings of quality reports and pipeline runs (per version, per dataset, by status) with ownership, and the
feature configuration's checks against the data."""

from __future__ import annotations

import pytest

from app.contracts.status import JobStatus
from app.core.errors import AipError
from app.db.models import PipelineRun, QualityReport
from app.db.session import session_scope
from app.services.data import pipelines, quality
from tests.utils.data_env import DataEnv


def add_rows(env: DataEnv, version_id: int) -> None:
    """Rows as the Ray jobs leave them (no Ray job id: the reconcile loop leaves them alone)."""
    with session_scope(env.settings.database_url) as session:
        for status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.QUEUED):
            session.add(QualityReport(version_id=version_id, owner_id=env.owner.id, config={}, status=status))
            session.add(PipelineRun(input_version_id=version_id, owner_id=env.owner.id, steps=[], status=status))


def test_listings_per_version_and_dataset_with_status_and_ownership(fast_env: DataEnv) -> None:
    env = fast_env
    dataset_id = env.dataset("listed")
    first = env.upload(dataset_id, "a.csv", b"x,y\n1,a\n2,b\n")
    second = env.upload(dataset_id, "b.csv", b"x,y\n3,c\n4,d\n5,e\n")
    add_rows(env, first)
    add_rows(env, second)
    unrelated = env.upload(env.dataset("unrelated"), "c.csv", b"x\n1\n")
    add_rows(env, unrelated)

    with session_scope(env.settings.database_url) as session:
        for list_rows, version_of in (
            (quality.list_reports, lambda row: row.version_id),
            (pipelines.list_runs, lambda row: row.input_version_id),
        ):
            of_version = list_rows(session, user=env.owner, version_id=second).items
            assert [version_of(r) for r in of_version] == [second] * 3
            assert [r.id for r in of_version] == sorted((r.id for r in of_version), reverse=True)  # newest first
            of_dataset = list_rows(session, user=env.owner, dataset_id=dataset_id).items
            assert sorted({version_of(r) for r in of_dataset}) == [first, second] and len(of_dataset) == 6
            failed = list_rows(session, user=env.owner, dataset_id=dataset_id, status="FAILED").items
            assert [r.status for r in failed] == ["FAILED", "FAILED"]
            assert list_rows(session, user=env.owner, version_id=first, status="RUNNING").total == 0
            with pytest.raises(AipError, match=f"Dataset {dataset_id} does not exist"):
                list_rows(session, user=env.other, dataset_id=dataset_id)
            with pytest.raises(AipError, match=f"Dataset version {first} does not exist"):
                list_rows(session, user=env.other, version_id=first)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"target": "label", "numeric": ["nope"]}, r"\['nope'\] are not columns of the newest version"),
        ({"numeric": ["a", "b"], "categorical": ["b"]}, r"\['b'\] are both numeric and categorical"),
        ({"target": "a", "numeric": ["a"]}, "the target 'a' is also listed as a feature"),
        ({"numeric": ["a", "a"]}, r"numeric lists \['a'\] more than once"),
    ],
)
def test_feature_configuration_is_checked_against_the_data(fast_env: DataEnv, config: dict, match: str) -> None:
    env = fast_env
    dataset_id = env.dataset("features")
    env.upload(dataset_id, "d.csv", b"a,b,label\n1,x,0\n2,y,1\n")
    with session_scope(env.settings.database_url) as session, pytest.raises(AipError, match=match):
        pipelines.set_feature_config(session, user=env.owner, dataset_id=dataset_id, config=config)
    with session_scope(env.settings.database_url) as session:
        good = {"target": "label", "numeric": ["a"], "categorical": ["b"]}
        dataset = pipelines.set_feature_config(session, user=env.owner, dataset_id=dataset_id, config=good)
        assert dataset.feature_config == good
        with pytest.raises(AipError, match="read-only|does not exist"):
            pipelines.set_feature_config(session, user=env.other, dataset_id=dataset_id, config=good)
