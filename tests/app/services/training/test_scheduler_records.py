"""Scheduler and sampling rows on every database backend: a stop that lands while the scheduler decides wins;
resource samples are kept only while the job holds its resources."""

from __future__ import annotations

from app.contracts.status import JobStatus
from app.db.models import TrainingJob
from app.db.session import session_scope
from app.runs import lifecycle
from app.runs.kinds import TRAINING_JOB
from app.services.training import job_metrics
from app.services.training.scheduler import claim
from tests.app.services.training.test_training_records import add_job


def test_a_job_stopped_after_the_queue_was_read_is_not_started(db_url: str) -> None:
    with session_scope(db_url) as s:
        job = add_job(s)
        lifecycle.transition(s, TRAINING_JOB, job, JobStatus.QUEUED)
        job_id = job.id
    with session_scope(db_url) as scheduler:
        seen = scheduler.get_one(TrainingJob, job_id)
        assert seen.status == JobStatus.QUEUED
        with session_scope(db_url) as user:  # the user stops the job meanwhile
            lifecycle.transition(
                user, TRAINING_JOB, user.get_one(TrainingJob, job_id), JobStatus.STOPPED, "Stopped by the user."
            )
        assert not claim(scheduler, seen)
    with session_scope(db_url) as s:
        assert s.get_one(TrainingJob, job_id).status == JobStatus.STOPPED

    with session_scope(db_url) as s:
        job = s.get_one(TrainingJob, job_id)
        lifecycle.transition(s, TRAINING_JOB, job, JobStatus.QUEUED, "Retried.")
        assert claim(s, job)


def test_usage_samples_are_kept_while_the_job_runs_only(db_url: str) -> None:
    with session_scope(db_url) as s:
        job = add_job(s)
        job_id = job.id
        assert not job_metrics.record_usage(s, job_id=job_id, rank=0, values={"sys_rss_mb": 1.0})  # not started
        lifecycle.transition(s, TRAINING_JOB, job, JobStatus.RUNNING)
    with session_scope(db_url) as s:
        for rank, rss in ((0, 100.0), (1, 120.0), (0, 110.0)):
            assert job_metrics.record_usage(s, job_id=job_id, rank=rank, values={"sys_rss_mb": rss})
    with session_scope(db_url) as s:
        samples = job_metrics.usage_history(s, job_id)
        assert [(p["rank"], p["sys_rss_mb"]) for p in samples] == [(0, 100.0), (1, 120.0), (0, 110.0)]
        assert [p["sys_rss_mb"] for p in job_metrics.usage_history(s, job_id, limit=2)] == [120.0, 110.0]
        lifecycle.transition(s, TRAINING_JOB, s.get_one(TrainingJob, job_id), JobStatus.STOPPED)
    with session_scope(db_url) as s:
        assert not job_metrics.record_usage(s, job_id=job_id, rank=0, values={"sys_rss_mb": 1.0})
        assert len(job_metrics.usage_history(s, job_id)) == 3
