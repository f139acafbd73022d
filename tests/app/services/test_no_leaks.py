"""Responses tell a caller nothing of other users' rows or of the server: a 404 names only what was asked for, and a
model version shows its checkpoint as a key within the platform's storage."""

from __future__ import annotations

import datetime as dt

import pytest

from app.api.schemas import ModelVersionPublic
from app.core.errors import AipError, ErrorCode
from app.db.models import QualityReport, User
from app.db.session import session_scope
from app.services.data import quality
from app.storage import public_checkpoint
from tests.utils.rows import add_dataset_version, add_user


def test_a_404_does_not_name_another_users_row(db_url: str) -> None:
    with session_scope(db_url) as s:
        owner, other = add_user(s, "owner"), add_user(s, "other")
        version = add_dataset_version(s, owner, name="private")
        report = QualityReport(version_id=version.id, owner_id=owner.id, config={})
        s.add(report)
        s.flush()
        report_id = report.id
    with session_scope(db_url) as s, pytest.raises(AipError) as err:
        quality.get_report(s, user=s.get_one(User, other.id), report_id=report_id)
    assert err.value.code is ErrorCode.NOT_FOUND
    assert err.value.message.startswith(f"Quality report {report_id} does not exist"), err.value.message
    assert "Dataset version" not in err.value.message


@pytest.mark.parametrize(
    ("location", "key"),
    [
        ("/srv/aip/.data/objects/checkpoints/job-7/checkpoint_2026-01-01_00-00-00.000000", "checkpoints/job-7/"),
        ("bucket/prefix/checkpoints/job-7/checkpoint_000001", "checkpoints/job-7/"),
        ("/home/me/checkpoints/data/objects/checkpoints/tune-3/trial/checkpoint_1", "checkpoints/tune-3/"),
        ("/tmp/elsewhere/state.pt", None),
    ],
)
def test_checkpoint_locations_are_shown_as_storage_keys(location: str, key: str | None) -> None:
    public = ModelVersionPublic(
        id=1,
        model_id=1,
        version=1,
        stage="DRAFT",
        training_job_id=None,
        dataset_version_id=None,
        template="custom",
        artifact_key="models/1",
        signature={},
        metrics={},
        lineage={"checkpoint": location, "code_hash": "abc"},
        created_at=dt.datetime.now(dt.UTC),
    )
    assert public.lineage is not None and public.lineage["code_hash"] == "abc"
    shown = public.lineage["checkpoint"]
    assert shown == public_checkpoint(location)
    if key is None:
        assert shown is None
    else:
        assert shown.startswith(key) and not shown.startswith("/") and "objects" not in shown
