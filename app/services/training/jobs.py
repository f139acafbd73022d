"""Training jobs: validation, lifecycle (with every transition recorded), metrics, logs and reconciliation.

CREATED -> QUEUED -> STARTING -> RUNNING -> SUCCEEDED / FAILED / STOPPED. The scheduler
(app.services.training.scheduler) moves QUEUED jobs to STARTING when the cluster has room; the job's workers mark it
RUNNING; its driver records
SUCCEEDED or FAILED; the reconcile loop closes rows whose Ray job ended or vanished.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.cluster import capacity as cluster_capacity
from app.cluster import jobs as ray_jobs
from app.contracts import image_cnn, tabular_mlp
from app.contracts.status import RAY_JOB_ENDED, JobStatus
from app.contracts.templates import CUSTOM_TEMPLATE, TEMPLATES
from app.contracts.train_config import TrainConfig, WorkerPlan
from app.core.config import Settings
from app.core.errors import AipError, ErrorCode, conflict, forbidden, invalid, not_found
from app.db.models import (
    DatasetVersion,
    JobMetric,
    JobStepMetric,
    JobTransition,
    JobUsageSample,
    ModelVersion,
    TrainingJob,
    User,
    utcnow,
)
from app.db.session import session_scope
from app.services.data import datasets, formats, quality
from app.services.identity.access import can_read, can_write, readable
from app.services.training import custom_code, placement, queue_signal
from app.storage import ObjectStore

log = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class JobSpec:
    name: str
    dataset_version_id: int
    template: str
    config: TrainConfig
    priority: int = 0
    start: bool = True
    code_hash: str | None = None  # uploaded training code, for the custom template
    min_quality_score: float | None = None


def code_hash(template: str) -> str:
    digest = hashlib.sha256()
    for name in TEMPLATES[template].code:
        digest.update(name.encode() + b"\0" + (_ROOT / name).read_bytes())
    return digest.hexdigest()


def run_name(job_id: int) -> str:
    """Ray Train's run name, also the job's checkpoint folder `checkpoints/<run name>/` in storage."""
    return f"job-{job_id}"


def artifact_prefix(job_id: int) -> str:
    """Where a successful job stores its model's files; the registered model version points there."""
    return f"models/job-{job_id}"


def submission_id(job: TrainingJob) -> str:
    return f"aip-training-job-{job.id}-a{job.attempts}"


LAUNCHER = "train_jobs.launch"


def driver_command(job: TrainingJob, warm_pool: str | None = None) -> tuple[str, list[str]]:
    """The module and arguments of the job's Ray job: the launcher, with the template's driver and the worker
    group the scheduler placed, which the launcher starts (or takes from the warm pool) before the driver's own
    imports (`train_jobs.prestart`)."""
    config = TrainConfig.model_validate(job.config)
    selector = placement.label_selector(job.preferred_nodes)
    plan = WorkerPlan(config.num_workers, config.worker_resources(), selector, warm_pool)
    return LAUNCHER, [TEMPLATES[job.template].entrypoint, str(job.id), plan.to_json()]


def create_job(settings: Settings, store: ObjectStore, *, user: User, spec: JobSpec) -> int:
    """Validates the job against its data and the cluster, records it (QUEUED, or CREATED when not started)."""
    if spec.template not in TEMPLATES:
        raise invalid(f"Unknown template {spec.template!r}; available: {', '.join(TEMPLATES)}.")
    custom = spec.template == CUSTOM_TEMPLATE
    if custom != (spec.code_hash is not None):
        raise invalid("Give code_hash (from POST /training/code) exactly when the template is 'custom'.")
    if custom:
        custom_code.find(store, spec.code_hash or "")
    config = template_config(spec.template, spec.config)
    check_cluster_can_host(settings, config)
    with session_scope(settings.database_url) as session:
        version = datasets.get_version(session, user=user, version_id=spec.dataset_version_id)
        check_template_takes(spec.template, version)
        quality.check_training_allowed(session, version, spec.min_quality_score)
        try:
            if spec.template == image_cnn.TEMPLATE_NAME:
                check_image_zip(store, version)
            elif custom:  # the code decides what it can train on; the target must exist all the same
                if config.target_column not in datasets.load_frame(store, version).columns:
                    raise tabular_mlp.InvalidData(f"Target column {config.target_column!r} is not in the data.")
            else:
                tabular_mlp.check_frame(datasets.load_frame(store, version), config.target_column, config.task)
        except (tabular_mlp.InvalidData, image_cnn.InvalidData) as e:
            raise invalid(str(e)) from e
        job = TrainingJob(
            name=spec.name,
            owner_id=user.id,
            dataset_version_id=version.id,
            template=spec.template,
            config=config.model_dump(),
            priority=spec.priority,
            code_hash=spec.code_hash if custom else code_hash(spec.template),
            status=JobStatus.CREATED,
            created_at=utcnow(),
        )
        session.add(job)
        session.flush()
        session.add(
            JobTransition(
                job_id=job.id,
                to_status=JobStatus.CREATED,
                message=f"Created by {user.username}.",
                created_at=job.created_at,
            )
        )
        if spec.start:
            queue(session, job, "Waiting for the scheduler.")
        return job.id


def template_config(template: str, config: TrainConfig) -> TrainConfig:
    """The config a template runs with (image options filled in for the image template), or a 422 naming the
    setting it cannot use."""
    if template == image_cnn.TEMPLATE_NAME:
        try:
            return image_cnn.resolve_config(config)
        except image_cnn.InvalidData as e:
            raise invalid(str(e)) from e
    if config.image is not None:
        raise invalid(f"'image' options apply to the {image_cnn.TEMPLATE_NAME} template only; drop them.")
    return config


def check_template_takes(template: str, version: DatasetVersion) -> None:
    if version.format in TEMPLATES[template].formats:
        return
    if version.format == "images":
        raise invalid(
            f"Dataset version {version.id} is an image zip; template {template!r} trains on tabular data (CSV, "
            f"JSON lines, Parquet). Use template {image_cnn.TEMPLATE_NAME!r} for images."
        )
    raise invalid(
        f"Template {template!r} trains on image zips (one folder per class); dataset version {version.id} is "
        f"{version.format}. Upload a .zip of class folders, or use template {tabular_mlp.TEMPLATE_NAME!r}."
    )


def check_image_zip(store: ObjectStore, version: DatasetVersion) -> None:
    """The zip's class folders suit the image template (every image is decoded by the job itself)."""
    with tempfile.TemporaryDirectory(prefix="aip-images-") as tmp:
        path = datasets.download_to(store, version, Path(tmp) / "images.zip")
        with zipfile.ZipFile(path) as archive:
            image_cnn.check_classes([label for _, label in formats.image_entries(archive.namelist())])


def check_cluster_can_host(settings: Settings, config: TrainConfig, copies: int = 1) -> None:
    """Refuses work that no placement on the cluster could host (`copies` such jobs at once: a tuning run)."""
    from app.services.training.scheduler import never_fits

    try:
        nodes = cluster_capacity.read(settings).nodes
    except AipError:
        return  # the cluster is unreachable now; the scheduler checks again before starting the job
    reason = never_fits(config, nodes, copies)
    if reason:
        raise invalid(reason)


def get_job(session: Session, *, user: User, job_id: int) -> TrainingJob:
    job = session.get(TrainingJob, job_id)
    if job is None or not can_read(user, job):
        raise not_found("Training job", job_id)
    return job


def _writable_job(session: Session, user: User, job_id: int, action: str) -> TrainingJob:
    job = get_job(session, user=user, job_id=job_id)
    if not can_write(user, job):
        raise forbidden(f"Job {job_id} is not yours to {action}.")
    return job


def list_jobs(session: Session, *, user: User, status: str | None = None) -> list[TrainingJob]:
    query = select(TrainingJob).where(readable(user, TrainingJob))
    if status:
        query = query.where(TrainingJob.status == status)
    return list(session.scalars(query.order_by(TrainingJob.id.desc())))


def transitions(session: Session, job_id: int) -> list[JobTransition]:
    return list(session.scalars(select(JobTransition).where(JobTransition.job_id == job_id).order_by(JobTransition.id)))


def transition(
    session: Session, job: TrainingJob, status: JobStatus, message: str = "", *, claimed_from: JobStatus | None = None
) -> None:
    """Moves the job to `status`, recording the change (the one place job states change). `claimed_from`: the
    status a conditional UPDATE just moved the job from (claiming the change against a concurrent caller)."""
    previous = claimed_from or job.status
    now = utcnow()
    session.add(JobTransition(job_id=job.id, from_status=previous, to_status=status, message=message, created_at=now))
    job.status = status
    job.message = message
    if status == JobStatus.QUEUED and previous != JobStatus.STARTING:  # a failed submission keeps its place
        job.queued_at = now
    if status == JobStatus.RUNNING:
        job.started_at = now
    if status.is_terminal:
        job.finished_at = now
    elif status in (JobStatus.CREATED, JobStatus.QUEUED):
        job.finished_at = None


def queue(session: Session, job: TrainingJob, message: str) -> None:
    """Queues the job for the scheduler, which runs as soon as the session commits."""
    transition(session, job, JobStatus.QUEUED, message)
    queue_signal.wake_after_commit(session)


def start_job(session: Session, *, user: User, job_id: int) -> TrainingJob:
    job = _writable_job(session, user, job_id, "start")
    if job.status != JobStatus.CREATED:
        raise conflict(f"Job {job_id} is {job.status}; only a CREATED job can be started (retry ended jobs).")
    queue(session, job, "Started by the user; waiting for the scheduler.")
    return job


def stop_job(settings: Settings, session: Session, *, user: User, job_id: int) -> TrainingJob:
    job = _writable_job(session, user, job_id, "stop")
    if JobStatus(job.status).is_terminal:
        raise conflict(f"Job {job_id} already ended as {job.status}.")
    if JobStatus(job.status).holds_resources and job.ray_job_id:
        _stop_ray_job(settings, job.ray_job_id)
    transition(session, job, JobStatus.STOPPED, "Stopped by the user.")
    return job


def _stop_ray_job(settings: Settings, submission: str) -> None:
    try:
        ray_jobs.stop(settings, submission)
    except RuntimeError as e:  # not yet known to Ray: the reconcile loop stops it if it appears
        log.info("Stopping Ray job %s: %s", submission, e)


def retry_job(session: Session, *, user: User, job_id: int) -> TrainingJob:
    """Queues an ended job again; it resumes from its latest checkpoint (Ray Train run of the same name)."""
    job = _writable_job(session, user, job_id, "retry")
    if job.status not in (JobStatus.FAILED, JobStatus.STOPPED):
        raise conflict(f"Job {job_id} is {job.status}; only FAILED or STOPPED jobs can be retried.")
    queue(session, job, f"Retry {job.attempts + 1} queued; resumes from the last checkpoint.")
    return job


def delete_job(settings: Settings, store: ObjectStore, *, user: User, job_id: int) -> None:
    """Deletes an ended (or never started) job with its metrics, logs and checkpoints; model versions stay."""
    with session_scope(settings.database_url) as session:
        job = _writable_job(session, user, job_id, "delete")
        if JobStatus(job.status) not in (JobStatus.CREATED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            raise conflict(f"Job {job_id} is {job.status}; stop it before deleting it.")
        # Registered versions keep their lineage (config, metrics, code) but no longer point at the job.
        session.execute(update(ModelVersion).where(ModelVersion.training_job_id == job_id).values(training_job_id=None))
        session.execute(delete(JobMetric).where(JobMetric.job_id == job_id))
        session.execute(delete(JobUsageSample).where(JobUsageSample.job_id == job_id))
        session.execute(delete(JobStepMetric).where(JobStepMetric.job_id == job_id))
        session.execute(delete(JobTransition).where(JobTransition.job_id == job_id))
        session.delete(job)
    # Storage after the rows: a failure here leaves unreferenced objects, never a row pointing at nothing.
    store.delete_prefix(f"checkpoints/{run_name(job_id)}/")
    store.delete_prefix(f"jobs/{job_id}/")


def mark_running(session: Session, job_id: int) -> None:
    """Called when training starts: by the job's rank-0 worker after its first steps, and by its driver with the
    first metric, whichever comes first (again, after a worker failure: no change). The two may run at the same
    moment: a conditional UPDATE claims the change first, so only one records it (SQLite has no row locks)."""
    claimed = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == JobStatus.STARTING)
        .values(status=JobStatus.RUNNING)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount == 1:
        job = session.get_one(TrainingJob, job_id, populate_existing=True)
        message = f"Training started (attempt {job.attempts})."
        transition(session, job, JobStatus.RUNNING, message, claimed_from=JobStatus.STARTING)


def job_logs(settings: Settings, store: ObjectStore, job: TrainingJob) -> str:
    if job.logs_key:
        return store.get_bytes(job.logs_key).decode(errors="replace")
    if not job.ray_job_id or job.status in (JobStatus.CREATED, JobStatus.QUEUED):
        return ""
    try:
        return ray_jobs.logs(settings, job.ray_job_id)
    except Exception as e:  # Ray no longer has them and they were never kept
        if job.status == JobStatus.STARTING:
            return ""  # submitted, the driver has not written anything yet
        raise AipError(ErrorCode.UNAVAILABLE, f"Logs of job {job.id} are not available: {e}") from e


def reconcile(settings: Settings, store: ObjectStore) -> None:
    """Aligns job rows with Ray: rows whose Ray job ended or vanished are closed, a stopped row's Ray job is
    stopped, and the logs of ended jobs are kept in storage."""
    with session_scope(settings.database_url) as session:
        open_jobs = session.scalars(
            select(TrainingJob).where(TrainingJob.status.in_([JobStatus.STARTING, JobStatus.RUNNING]))
        ).all()
        for job in open_jobs:
            if not job.ray_job_id:
                continue
            state = ray_jobs.state(settings, job.ray_job_id)
            if state is None:
                transition(session, job, JobStatus.FAILED, "Ray no longer knows this job (the cluster restarted).")
            elif state.status in RAY_JOB_ENDED:
                # The driver records success itself; a Ray job that ended without doing so failed.
                session.refresh(job)
                if not JobStatus(job.status).is_terminal:
                    transition(session, job, JobStatus.FAILED, state.message or f"Ray job ended as {state.status}.")
        ended = session.scalars(
            select(TrainingJob).where(
                TrainingJob.status.in_([JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED]),
                TrainingJob.logs_key.is_(None),
                TrainingJob.ray_job_id.is_not(None),
            )
        ).all()
        for job in ended:
            state = ray_jobs.state(settings, job.ray_job_id)
            if state is not None and state.status not in RAY_JOB_ENDED:
                if job.status == JobStatus.STOPPED:
                    _stop_ray_job(settings, job.ray_job_id)  # stopped while its submission was in flight
                continue  # the driver is still finishing; keep its logs once it exits
            key = f"jobs/{job.id}/attempt-{job.attempts}.log"
            text = ray_jobs.logs(settings, job.ray_job_id) if state is not None else ""
            store.put_bytes(key, text.encode())
            job.logs_key = key
