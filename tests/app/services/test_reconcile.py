"""The reconcile loop: one pass (app.services.reconcile.run_once, without Serve) against a database of its own and
the shared Ray cluster closes runs of every kind whose Ray job ended or vanished, keeps their logs, and stops the
Ray job of a run stopped while its submission was in flight; on the platform, a row Ray never saw is failed and
stop ends a running job."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import launcher
from app.client import Client
from app.cluster import jobs as ray_jobs
from app.contracts.status import JobStatus
from app.core.config import Settings
from app.db.models import TrainingJob
from app.db.session import session_scope, upgrade_schema
from app.runs import lifecycle
from app.runs.kinds import KINDS, QUALITY_REPORT, TRAINING_JOB, RunKind
from app.services import reconcile
from app.storage import ObjectStore, open_store
from tests.utils.factories import TARGET, breast_cancer_split, upload_frame
from tests.utils.runs import add_run
from tests.utils.wait import wait_for


@pytest.fixture
def own_db(running_platform: launcher.RunningPlatform, platform_settings: Settings, tmp_path: Path) -> Settings:
    """The shared Ray cluster with a database and storage of this test's own: the platform's loop leaves them be."""
    settings = platform_settings.model_copy(
        update={
            "database_url": f"sqlite:///{tmp_path / 'reconcile.db'}",
            "storage_url": f"file://{tmp_path / 'objects'}",
            "warm_workers_per_node": 0,
        }
    )
    upgrade_schema(settings.database_url)
    return settings


def kept_log(settings: Settings, store: ObjectStore, kind: RunKind, run_id: int) -> str | None:
    with session_scope(settings.database_url) as s:
        key = s.get_one(kind.model, run_id).logs_key
    return None if key is None else store.get_bytes(key).decode()


def test_one_pass_closes_vanished_runs_of_every_kind(own_db: Settings) -> None:
    store = open_store(own_db)
    with session_scope(own_db.database_url) as s:
        ids = {kind: add_run(s, kind, JobStatus.RUNNING, ray_job_id=f"aip-never-seen-{kind.name}").id for kind in KINDS}
    assert reconcile.run_once(own_db, store) == []
    with session_scope(own_db.database_url) as s:
        for kind, run_id in ids.items():
            row = s.get_one(kind.model, run_id)
            assert row.status == JobStatus.FAILED and "no longer knows" in row.message, (kind.name, row.message)
            assert row.logs_key == kind.log_key(row)
            assert [t.to_status for t in lifecycle.transitions(s, kind, run_id)] == ["RUNNING", "FAILED"]
    assert all(kept_log(own_db, store, kind, run_id) == "" for kind, run_id in ids.items())


def test_a_run_whose_ray_job_ended_is_closed_and_its_logs_kept(own_db: Settings) -> None:
    store = open_store(own_db)
    submission = "aip-reconcile-ended-test"
    lifecycle.submit(own_db, QUALITY_REPORT, submission=submission, args=[], module="platform")  # prints, exits
    with session_scope(own_db.database_url) as s:
        run_id = add_run(s, QUALITY_REPORT, JobStatus.RUNNING, ray_job_id=submission).id
    wait_for(lambda: (state := ray_jobs.state(own_db, submission)) and state.status == "SUCCEEDED")
    reconcile.run_once(own_db, store)
    with session_scope(own_db.database_url) as s:
        row = s.get_one(QUALITY_REPORT.model, run_id)
        # Its driver would have recorded success: a Ray job that ended without doing so failed.
        assert row.status == JobStatus.FAILED, row.message
    assert "Linux" in (kept_log(own_db, store, QUALITY_REPORT, run_id) or "")


def test_a_run_stopped_while_its_submission_was_in_flight_has_its_ray_job_stopped(own_db: Settings) -> None:
    store = open_store(own_db)
    with session_scope(own_db.database_url) as s:
        job = add_run(s, TRAINING_JOB, JobStatus.STARTING)
        job.ray_job_id = TRAINING_JOB.submission_id(job) + "-in-flight-test"
        lifecycle.stop(own_db, s, TRAINING_JOB, job)  # Ray does not know it yet: nothing to stop
        job_id, submission = job.id, job.ray_job_id
    # The submission lands after the stop: a Ray job that would run for minutes.
    sleep = ["-n", "1", "import time; time.sleep(300)"]
    lifecycle.submit(own_db, TRAINING_JOB, submission=submission, args=sleep, module="timeit")
    wait_for(lambda: (state := ray_jobs.state(own_db, submission)) and state.status == "RUNNING", timeout_s=60)
    reconcile.run_once(own_db, store)
    wait_for(lambda: (state := ray_jobs.state(own_db, submission)) and state.status == "STOPPED", timeout_s=60)
    reconcile.run_once(own_db, store)
    assert kept_log(own_db, store, TRAINING_JOB, job_id) is not None
    with session_scope(own_db.database_url) as s:
        assert s.get_one(TrainingJob, job_id).status == JobStatus.STOPPED  # the user's decision stands


def test_the_reconciler_starts_and_stops(own_db: Settings) -> None:
    reconciler = reconcile.Reconciler(own_db)
    reconciler.start()
    reconciler.stop(timeout_s=30)
    assert reconciler._thread is not None and not reconciler._thread.is_alive()


def test_running_row_without_ray_job_is_failed(admin: Client, platform_settings: Settings, tmp_path: Path) -> None:
    train, _ = breast_cancer_split()
    version = upload_frame(admin, train.head(40), tmp_path, "reconcile-orphan")
    with session_scope(platform_settings.database_url) as session:
        job = TrainingJob(
            name="orphan",
            owner_id=1,
            dataset_version_id=version["id"],
            template="tabular_mlp",
            config={},
            status=JobStatus.RUNNING,
            ray_job_id="aip-training-job-that-ray-never-saw",
        )
        session.add(job)
        session.flush()
        job_id = job.id
    done = wait_for(lambda: (j := admin.get_job(job_id))["status"] == "FAILED" and j, timeout_s=30)
    assert "no longer knows" in done["message"]


def test_stop_a_running_job(admin: Client, platform_settings: Settings, tmp_path: Path) -> None:
    train, _ = breast_cancer_split()
    version = upload_frame(admin, train, tmp_path, "reconcile-stop")
    job = admin.create_job(dataset_version_id=version["id"], target_column=TARGET, epochs=5000, num_workers=1)
    wait_for(lambda: admin.get_job(job["id"])["status"] == "RUNNING", timeout_s=120)
    stopped = admin.stop_job(job["id"])
    assert stopped["status"] == "STOPPED"
    # Ray ends the job too (the scheduler submitted it under ray_job_id); the row stays STOPPED, no model.
    ray_state = wait_for(
        lambda: (s := ray_jobs.state(platform_settings, stopped["ray_job_id"])) and s.status == "STOPPED"
    )
    assert ray_state
    final = admin.get_job(job["id"])
    assert final["status"] == "STOPPED"
    assert final["model_version_id"] is None
