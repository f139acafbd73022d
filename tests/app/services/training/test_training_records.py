"""Job rows on every database backend: transitions recorded, metrics (per epoch and per logged batch step)
replaced per step, paged, downsampled; the command a job's Ray job runs."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session

from app.contracts.status import JobStatus
from app.contracts.train_config import TrainConfig, WorkerPlan
from app.db.models import TrainingJob
from app.db.session import session_scope
from app.runs import lifecycle
from app.runs.kinds import TRAINING_JOB
from app.services.training import job_metrics, jobs
from tests.utils.rows import add_dataset_version, add_user


def add_job(s: Session) -> TrainingJob:
    user = add_user(s, "alice")
    version = add_dataset_version(s, user)
    job = TrainingJob(name="j", owner_id=user.id, dataset_version_id=version.id, template="tabular_mlp", config={})
    s.add(job)
    s.flush()
    return job


def test_transitions_are_recorded_with_timestamps(db_url: str) -> None:
    with session_scope(db_url) as s:
        job = add_job(s)
        for status in (JobStatus.QUEUED, JobStatus.STARTING):
            lifecycle.transition(s, TRAINING_JOB, job, status, f"to {status}")
        lifecycle.mark_running(s, TRAINING_JOB, job.id)
        lifecycle.mark_running(s, TRAINING_JOB, job.id)  # a restarted worker group: no second transition
        lifecycle.transition(s, TRAINING_JOB, job, JobStatus.FAILED, "boom")
        job_id = job.id
    with session_scope(db_url) as s:
        steps = [(t.from_status, t.to_status) for t in jobs.transitions(s, job_id)]
        job = s.get_one(TrainingJob, job_id)
        assert steps == [
            ("CREATED", "QUEUED"),
            ("QUEUED", "STARTING"),
            ("STARTING", "RUNNING"),
            ("RUNNING", "FAILED"),
        ]
        assert job.message == "boom"
        assert job.queued_at is not None and job.started_at is not None and job.finished_at is not None


def test_concurrent_running_marks_record_one_transition(db_url: str) -> None:
    """Rank 0 and the driver (with the first metric) mark the job RUNNING at about the same moment."""
    with session_scope(db_url) as s:
        job = add_job(s)
        for status in (JobStatus.QUEUED, JobStatus.STARTING):
            lifecycle.transition(s, TRAINING_JOB, job, status)
        job_id = job.id
    together = threading.Barrier(4)

    def mark(_: int) -> None:
        together.wait()
        with session_scope(db_url) as s:
            lifecycle.mark_running(s, TRAINING_JOB, job_id)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(mark, range(4)))
    with session_scope(db_url) as s:
        moves = [(t.from_status, t.to_status) for t in jobs.transitions(s, job_id)]
        assert moves[-1] == ("STARTING", "RUNNING") and moves.count(("STARTING", "RUNNING")) == 1
        job = s.get_one(TrainingJob, job_id)
        assert (job.status, job.message) == ("RUNNING", "Training started (attempt 0).")


def test_a_repeated_step_replaces_its_values(db_url: str) -> None:
    with session_scope(db_url) as s:
        job_id = add_job(s).id
        for step in (1, 2, 3):
            job_metrics.record_metrics(s, job_id=job_id, step=step, metrics={"loss": 1.0 / step, "acc": 0.1 * step})
        # resumed from the checkpoint of step 2: step 3 is reported again with new values
        job_metrics.record_metrics(s, job_id=job_id, step=3, metrics={"loss": 0.3, "acc": 0.9})
    with session_scope(db_url) as s:
        history = job_metrics.metric_history(s, job_id)
    assert [h["step"] for h in history] == [1, 2, 3]
    assert (history[2]["loss"], history[2]["acc"]) == (0.3, 0.9)


def test_history_pages_downsamples_and_filters_by_time(db_url: str) -> None:
    with session_scope(db_url) as s:
        job_id = add_job(s).id
        for step in range(1, 101):
            job_metrics.record_metrics(s, job_id=job_id, step=step, metrics={"loss": float(step)})
    with session_scope(db_url) as s:
        page = job_metrics.metric_history(s, job_id, offset=10, limit=5)
        assert [p["step"] for p in page] == [11, 12, 13, 14, 15]
        sampled = job_metrics.metric_history(s, job_id, max_points=5)
        assert [p["step"] for p in sampled] == [1, 26, 51, 75, 100]
        assert job_metrics.count_steps(s, job_id) == 100
        future = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)
        assert job_metrics.metric_history(s, job_id, since=future) == []
        assert len(job_metrics.metric_history(s, job_id, until=future)) == 100


def test_training_steps_are_replaced_paged_and_downsampled(db_url: str) -> None:
    with session_scope(db_url) as s:
        job_id = add_job(s).id
        rows = [{"step": 10 * i, "epoch": 1 + i // 50, "loss": 1.0 / i, "lr": 0.01} for i in range(1, 101)]
        job_metrics.record_training_steps(s, job_id=job_id, steps=rows[:60])
        # resumed from the checkpoint of epoch 1 (steps 10..490): steps 500 on are trained and logged again
        job_metrics.record_training_steps(s, job_id=job_id, steps=[{**r, "loss": 2.0} for r in rows[49:]])
    with session_scope(db_url) as s:
        total, points = job_metrics.training_step_history(s, job_id)
        assert total == 100 and [p["step"] for p in points] == [10 * i for i in range(1, 101)]
        assert (points[48]["loss"], points[49]["loss"], points[99]["epoch"]) == (1 / 49, 2.0, 3)
        assert set(points[0]) == {"step", "epoch", "time", "loss", "lr"}
        _, page = job_metrics.training_step_history(s, job_id, offset=10, limit=3)
        assert [p["step"] for p in page] == [110, 120, 130]
        _, sampled = job_metrics.training_step_history(s, job_id, max_points=5)
        assert [p["step"] for p in sampled] == [10, 260, 510, 750, 1000]
        _, sampled_page = job_metrics.training_step_history(s, job_id, offset=90, max_points=4)
        assert [p["step"] for p in sampled_page] == [910, 940, 970, 1000]
        future = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)
        assert job_metrics.training_step_history(s, job_id, since=future) == (0, [])


def test_a_job_runs_the_launcher_with_its_driver_and_the_placed_worker_group() -> None:
    config = TrainConfig(target_column="y", num_workers=3, cpus_per_worker=2, gpus_per_worker=1)
    job = TrainingJob(id=7, template="tabular_mlp", config=config.model_dump(), preferred_nodes=["n1", "n2"])
    module, args = jobs.driver_command(job)
    assert (module, args[:2]) == ("train_jobs.launch", ["train_jobs.train_tabular", "7"])
    assert WorkerPlan.from_json(args[2]) == WorkerPlan(3, {"CPU": 2.0, "GPU": 1.0}, {"ray.io/node-id": "in(n1,n2)"})
    job.preferred_nodes = None
    assert WorkerPlan.from_json(jobs.driver_command(job)[1][2]).label_selector is None
    assert WorkerPlan.from_json(jobs.driver_command(job, "pool-a")[1][2]).warm_pool == "pool-a"
