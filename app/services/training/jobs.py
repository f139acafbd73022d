"""Training jobs: validation, creation, start, stop, retry, delete, logs. Their status changes go through the runs'
lifecycle (app.runs, kind TRAINING_JOB), which records every transition.

CREATED -> QUEUED -> STARTING -> RUNNING -> SUCCEEDED / FAILED / STOPPED. The scheduler
(app.services.training.scheduler) moves QUEUED jobs to STARTING when the cluster has room; the job's workers mark it
RUNNING; its driver records SUCCEEDED or FAILED; the reconcile loop closes rows whose Ray job ended or vanished.
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.cluster import capacity as cluster_capacity
from app.contracts import image_cnn, tabular_mlp
from app.contracts.status import JobStatus
from app.contracts.templates import CUSTOM_TEMPLATE, TEMPLATES
from app.contracts.train_config import TrainConfig, WorkerPlan
from app.core.config import Settings
from app.core.errors import AipError, conflict, forbidden, invalid, not_found
from app.db.models import (
    DatasetVersion,
    JobMetric,
    JobStepMetric,
    JobUsageSample,
    ModelVersion,
    RunTransition,
    TrainingJob,
    User,
    utcnow,
)
from app.db.paging import PageOf, PageRequest, page
from app.db.session import session_scope
from app.runs import lifecycle, queue_signal
from app.runs.kinds import TRAINING_JOB
from app.services.data import datasets, formats, quality
from app.services.identity.access import can_read, can_write, readable
from app.services.training import custom_code, placement
from app.storage import ObjectStore

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


def driver_command(job: TrainingJob, warm_pool: str | None = None) -> tuple[str, list[str]]:
    """The module and arguments of the job's Ray job: the launcher, with the template's driver and the worker
    group the scheduler placed, which the launcher starts (or takes from the warm pool) before the driver's own
    imports (`train_jobs.prestart`)."""
    config = TrainConfig.model_validate(job.config)
    selector = placement.label_selector(job.preferred_nodes)
    plan = WorkerPlan(config.num_workers, config.worker_resources(), selector, warm_pool)
    return TRAINING_JOB.entrypoint, [TEMPLATES[job.template].entrypoint, str(job.id), plan.to_json()]


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
        lifecycle.created(session, TRAINING_JOB, job, f"Created by {user.username}.")
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
    try:
        nodes = cluster_capacity.read(settings).nodes
    except AipError:
        return  # the cluster is unreachable now; the scheduler checks again before starting the job
    reason = placement.never_fits(config, nodes, copies)
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


JOB_SORTS = {
    "id": TrainingJob.id,
    "name": TrainingJob.name,
    "created_at": TrainingJob.created_at,
    "status": TrainingJob.status,
    "priority": TrainingJob.priority,
}


def list_jobs(
    session: Session,
    *,
    user: User,
    request: PageRequest = PageRequest(),
    status: str | None = None,
    name: str | None = None,
    dataset_version_id: int | None = None,
) -> PageOf[TrainingJob]:
    """The jobs the user may read, newest first unless sorted otherwise; `name`: whose name contains it."""
    query = select(TrainingJob).where(readable(user, TrainingJob))
    if status:
        query = query.where(TrainingJob.status == status)
    if name:
        query = query.where(TrainingJob.name.contains(name, autoescape=True))
    if dataset_version_id is not None:
        query = query.where(TrainingJob.dataset_version_id == dataset_version_id)
    return page(session, query, request, sortable=JOB_SORTS, default_sort="-id", tiebreak=TrainingJob.id)


def transitions(session: Session, job_id: int) -> list[RunTransition]:
    return lifecycle.transitions(session, TRAINING_JOB, job_id)


def queue(session: Session, job: TrainingJob, message: str) -> None:
    """Queues the job for the scheduler, which runs as soon as the session commits."""
    lifecycle.transition(session, TRAINING_JOB, job, JobStatus.QUEUED, message)
    queue_signal.wake_after_commit(session)


def start_job(session: Session, *, user: User, job_id: int) -> TrainingJob:
    job = _writable_job(session, user, job_id, "start")
    if job.status != JobStatus.CREATED:
        raise conflict(f"Job {job_id} is {job.status}; only a CREATED job can be started (retry ended jobs).")
    queue(session, job, "Started by the user; waiting for the scheduler.")
    return job


def stop_job(settings: Settings, session: Session, *, user: User, job_id: int) -> TrainingJob:
    job = _writable_job(session, user, job_id, "stop")
    lifecycle.stop(settings, session, TRAINING_JOB, job)
    return job


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
        lifecycle.forget(session, TRAINING_JOB, [job_id])
        session.delete(job)
    # Storage after the rows: a failure here leaves unreferenced objects, never a row pointing at nothing.
    store.delete_prefix(f"checkpoints/{run_name(job_id)}/")
    store.delete_prefix(f"jobs/{job_id}/")


def job_logs(settings: Settings, store: ObjectStore, job: TrainingJob) -> str:
    return lifecycle.logs(settings, store, TRAINING_JOB, job)
