"""Training jobs: validation, submission to Ray, state transitions, metrics, logs and reconciliation."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.cluster import jobs as ray_jobs
from app.core.config import Settings
from app.core.errors import AipError, ErrorCode, conflict, forbidden, invalid, not_found
from app.db.models import JobMetric, JobStatus, TrainingJob, User, utcnow
from app.db.session import session_scope
from app.services import datasets
from app.services.access import can_read, can_write, readable
from app.storage import ObjectStore
from train_jobs.templates import tabular_mlp

log = logging.getLogger(__name__)

TEMPLATES = {tabular_mlp.TEMPLATE_NAME: "train_jobs.train_tabular"}


@dataclass(frozen=True)
class JobSpec:
    name: str
    dataset_version_id: int
    template: str
    target_column: str
    epochs: int
    batch_size: int
    learning_rate: float
    num_workers: int

    def config(self) -> dict[str, Any]:
        return {
            "target_column": self.target_column,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "num_workers": self.num_workers,
        }


def create_job(settings: Settings, store: ObjectStore, *, user: User, spec: JobSpec) -> int:
    """Validates the job against its data, records it QUEUED and hands it to Ray. Returns the job id."""
    if spec.template not in TEMPLATES:
        raise invalid(f"Unknown template {spec.template!r}; available: {', '.join(TEMPLATES)}.")
    with session_scope(settings.database_url) as session:
        version = datasets.get_version(session, user=user, version_id=spec.dataset_version_id)
        try:
            tabular_mlp.check_frame(datasets.load_frame(store, version), spec.target_column)
        except tabular_mlp.InvalidData as e:
            raise invalid(str(e)) from e
        job = TrainingJob(
            name=spec.name,
            owner_id=user.id,
            dataset_version_id=version.id,
            template=spec.template,
            config=spec.config(),
            status=JobStatus.QUEUED,
        )
        session.add(job)
        session.flush()
        job_id = job.id
    # The row is committed before Ray sees the job, so the job's driver always finds it.
    submission_id = f"aip-training-job-{job_id}"
    try:
        ray_jobs.submit(settings, submission_id=submission_id, module=TEMPLATES[spec.template], args=[str(job_id)])
    except AipError:
        with session_scope(settings.database_url) as session:
            session.execute(delete(TrainingJob).where(TrainingJob.id == job_id))
        raise
    with session_scope(settings.database_url) as session:
        session.get_one(TrainingJob, job_id).ray_job_id = submission_id
    return job_id


def get_job(session: Session, *, user: User, job_id: int) -> TrainingJob:
    job = session.get(TrainingJob, job_id)
    if job is None or not can_read(user, job):
        raise not_found("Training job", job_id)
    return job


def list_jobs(session: Session, *, user: User) -> list[TrainingJob]:
    return list(session.scalars(select(TrainingJob).where(readable(user, TrainingJob)).order_by(TrainingJob.id.desc())))


def stop_job(settings: Settings, session: Session, *, user: User, job_id: int) -> TrainingJob:
    job = get_job(session, user=user, job_id=job_id)
    if not can_write(user, job):
        raise forbidden(f"Job {job_id} is not yours to stop.")
    if JobStatus(job.status).is_terminal:
        raise conflict(f"Job {job_id} already ended as {job.status}.")
    if job.ray_job_id:
        ray_jobs.stop(settings, job.ray_job_id)
    finish(session, job, JobStatus.STOPPED, "Stopped by the user.")
    return job


def metric_history(session: Session, job_id: int) -> list[dict[str, Any]]:
    """Per-step rows: [{"step": 1, "loss": ..., "val_accuracy": ...}, ...]."""
    rows = session.execute(
        select(JobMetric.step, JobMetric.key, JobMetric.value)
        .where(JobMetric.job_id == job_id)
        .order_by(JobMetric.step, JobMetric.id)
    )
    steps: dict[int, dict[str, Any]] = {}
    for step, key, value in rows:
        steps.setdefault(step, {"step": step})[key] = value
    return list(steps.values())


def record_metrics(session: Session, *, job_id: int, step: int, metrics: dict[str, float]) -> None:
    session.add_all(JobMetric(job_id=job_id, step=step, key=k, value=float(v)) for k, v in metrics.items())


def mark_running(session: Session, job_id: int) -> TrainingJob:
    job = session.get_one(TrainingJob, job_id)
    if job.status != JobStatus.QUEUED:
        raise conflict(f"Job {job_id} is {job.status}, not QUEUED; it will not run again.")
    job.status = JobStatus.RUNNING
    job.started_at = utcnow()
    return job


def finish(session: Session, job: TrainingJob, status: JobStatus, message: str = "") -> None:
    job.status = status
    job.message = message
    job.finished_at = utcnow()


def job_logs(settings: Settings, store: ObjectStore, job: TrainingJob) -> str:
    if job.logs_key:
        return store.get_bytes(job.logs_key).decode(errors="replace")
    if not job.ray_job_id:
        return ""
    try:
        return ray_jobs.logs(settings, job.ray_job_id)
    except Exception as e:  # Ray no longer has them and they were never kept
        raise AipError(ErrorCode.UNAVAILABLE, f"Logs of job {job.id} are not available: {e}") from e


def reconcile(settings: Settings, store: ObjectStore) -> None:
    """Aligns job rows with Ray: jobs Ray ended or forgot are closed, logs of ended jobs are kept in storage."""
    with session_scope(settings.database_url) as session:
        open_jobs = session.scalars(
            select(TrainingJob).where(TrainingJob.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        ).all()
        for job in open_jobs:
            if not job.ray_job_id:
                continue
            state = ray_jobs.state(settings, job.ray_job_id)
            if state is None:
                finish(session, job, JobStatus.FAILED, "Ray no longer knows this job (the cluster restarted).")
            elif state.status in ("FAILED", "STOPPED", "SUCCEEDED"):
                # The driver records success itself; a Ray job that ended without doing so failed.
                session.refresh(job)
                if not JobStatus(job.status).is_terminal:
                    finish(session, job, JobStatus.FAILED, state.message or f"Ray job ended as {state.status}.")
        ended = session.scalars(
            select(TrainingJob).where(
                TrainingJob.status.in_([JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED]),
                TrainingJob.logs_key.is_(None),
                TrainingJob.ray_job_id.is_not(None),
            )
        ).all()
        for job in ended:
            state = ray_jobs.state(settings, job.ray_job_id)
            if state is not None and state.status not in ("FAILED", "STOPPED", "SUCCEEDED"):
                continue  # the driver is still finishing; keep its logs once it exits
            key = f"jobs/{job.id}/driver.log"
            text = ray_jobs.logs(settings, job.ray_job_id) if state is not None else ""
            store.put_bytes(key, text.encode())
            job.logs_key = key
