"""The runs' lifecycle on every database backend, for every kind: each status change recorded with why, the start
claimed once, an ended run not failed again, a stop refused once the run ended, the history deleted with the row."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.contracts.status import JobStatus
from app.core.errors import AipError
from app.db.models import TuningTrial
from app.db.session import session_scope
from app.runs import lifecycle
from app.runs.kinds import KINDS, TRAINING_JOB, TUNING_RUN, RunKind
from app.storage.local import LocalStore
from tests.utils.runs import add_run

KIND_IDS = [kind.name for kind in KINDS]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_every_change_is_recorded(db_url: str, kind: RunKind) -> None:
    with session_scope(db_url) as s:
        row = add_run(s, kind, JobStatus.QUEUED)
        if kind.runs_from == JobStatus.STARTING:
            lifecycle.transition(s, kind, row, JobStatus.STARTING, "Submitted.")
        run_id = row.id
    with session_scope(db_url) as s:
        assert lifecycle.mark_running(s, kind, run_id) is not None
        assert lifecycle.mark_running(s, kind, run_id) is None  # claimed once
    with session_scope(db_url) as s:
        assert lifecycle.fail(s, kind, run_id, "boom " * 1000)
        assert not lifecycle.fail(s, kind, run_id, "again")  # an ended run keeps how it ended
    with session_scope(db_url) as s:
        moves = [(t.from_status, t.to_status) for t in lifecycle.transitions(s, kind, run_id)]
        row = s.get_one(kind.model, run_id)
        assert moves[0] == (None, "QUEUED") and moves[-2:] == [(kind.runs_from, "RUNNING"), ("RUNNING", "FAILED")]
        assert len(row.message) == lifecycle.MESSAGE_MAX and row.status == JobStatus.FAILED
        assert row.started_at is not None and row.finished_at is not None
        with pytest.raises(AipError, match="already ended as FAILED"):
            lifecycle.stop(None, s, kind, row)  # type: ignore[arg-type]  # no Ray call for an ended run
        lifecycle.forget(s, kind, [run_id])
        assert lifecycle.transitions(s, kind, run_id) == []


def test_histories_of_kinds_do_not_mix(db_url: str) -> None:
    with session_scope(db_url) as s:
        job = add_run(s, TRAINING_JOB, JobStatus.QUEUED, username="a")
        run = add_run(s, TUNING_RUN, JobStatus.QUEUED, username="b")
        assert job.id == run.id  # the first row of each table: the same id, two histories
        lifecycle.transition(s, TUNING_RUN, run, JobStatus.STOPPED, "Stopped.")
    with session_scope(db_url) as s:
        assert [t.to_status for t in lifecycle.transitions(s, TRAINING_JOB, job.id)] == ["QUEUED"]
        assert [t.to_status for t in lifecycle.transitions(s, TUNING_RUN, run.id)] == ["QUEUED", "STOPPED"]


def test_a_tuning_runs_trials_end_with_it(db_url: str) -> None:
    with session_scope(db_url) as s:
        run = add_run(s, TUNING_RUN, JobStatus.RUNNING)
        for key, status in (("a", "RUNNING"), ("b", "PAUSED"), ("c", "SUCCEEDED")):
            s.add(TuningTrial(run_id=run.id, trial_key=key, config={}, status=status, history=[]))
        s.flush()
        lifecycle.transition(s, TUNING_RUN, run, JobStatus.FAILED, "boom")
    with session_scope(db_url) as s:
        trials = s.query(TuningTrial).order_by(TuningTrial.trial_key).all()
        assert [t.status for t in trials] == ["FAILED", "FAILED", "SUCCEEDED"]


def test_a_requeued_training_job_keeps_its_place_and_a_requeued_run_loses_its_ray_job(db_url: str) -> None:
    with session_scope(db_url) as s:
        job = add_run(s, TRAINING_JOB, JobStatus.QUEUED, username="a")
        run = add_run(s, TUNING_RUN, JobStatus.QUEUED, username="b")
        lifecycle.transition(s, TRAINING_JOB, job, JobStatus.QUEUED, "Queued.")
        queued_at = job.queued_at
        for kind, row in ((TRAINING_JOB, job), (TUNING_RUN, run)):
            row.ray_job_id = kind.submission_id(row)
            lifecycle.transition(s, kind, row, JobStatus.STARTING, "Submitted.")
            lifecycle.transition(s, kind, row, JobStatus.QUEUED, "Submission failed, will retry.")
        assert job.queued_at == queued_at and job.ray_job_id is not None
        assert run.ray_job_id is None


def test_kept_logs_are_read_without_ray(db_url: str, tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with session_scope(db_url) as s:
        row = add_run(s, TRAINING_JOB, JobStatus.SUCCEEDED, logs_key="jobs/1/attempt-1.log", ray_job_id="gone")
        store.put_bytes(row.logs_key, b"epoch 1\n")
        assert lifecycle.logs(None, store, TRAINING_JOB, row) == "epoch 1\n"  # type: ignore[arg-type]
        row.logs_key = None
        row.status = JobStatus.QUEUED  # a retry waiting for the scheduler: its ray_job_id is the last attempt's
        assert lifecycle.logs(None, store, TRAINING_JOB, row) == ""  # type: ignore[arg-type]
