"""Rows of every run kind (app.runs.kinds) for tests of the lifecycle: one per kind, on one user's version."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.contracts.status import JobStatus
from app.db.models import PipelineRun, QualityReport, TrainingJob, TuningRun
from app.runs import lifecycle
from app.runs.kinds import PIPELINE_RUN, QUALITY_REPORT, TRAINING_JOB, TUNING_RUN, RunKind
from tests.utils.rows import add_dataset_version, add_user


def new_row(kind: RunKind, owner_id: int, version_id: int, status: JobStatus) -> Any:
    if kind is TRAINING_JOB:
        return TrainingJob(
            name="j", owner_id=owner_id, dataset_version_id=version_id, template="tabular_mlp", config={}, status=status
        )
    if kind is TUNING_RUN:
        return TuningRun(
            name="t",
            owner_id=owner_id,
            dataset_version_id=version_id,
            template="tabular_mlp",
            config={},
            search={},
            status=status,
        )
    if kind is PIPELINE_RUN:
        return PipelineRun(input_version_id=version_id, owner_id=owner_id, steps=[], status=status)
    assert kind is QUALITY_REPORT
    return QualityReport(version_id=version_id, owner_id=owner_id, config={}, status=status)


def add_run(s: Session, kind: RunKind, status: JobStatus, *, username: str = "alice", **columns: Any) -> Any:
    """A new row of `kind` in `status` (its creation recorded), on a new version of a new user."""
    user = add_user(s, f"{username}-{kind.name}")
    version = add_dataset_version(s, user, name=kind.name)
    row = new_row(kind, user.id, version.id, status)
    for name, value in columns.items():
        setattr(row, name, value)
    lifecycle.created(s, kind, row, "Created.")
    return row
