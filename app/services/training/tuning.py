"""Tuning runs (Ray Tune): validation, queueing, stop, trials, reconciliation.

A run waits in the training queue (app.services.training.scheduler) like a job, for room for `max_concurrent_trials`
trials, then runs as one Ray job (`python -m train_jobs.tune_tabular RUN_ID`); its trials are rows the job's Tune
callback
keeps up to date. The best trial registers a DRAFT model version.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.cluster import jobs as ray_jobs
from app.contracts import tabular_mlp
from app.contracts.search_space import SearchConfig
from app.contracts.status import RAY_JOB_ENDED, JobStatus, TrialStatus
from app.contracts.templates import TEMPLATES
from app.contracts.train_config import TrainConfig
from app.core.config import Settings
from app.core.errors import conflict, forbidden, invalid, not_found
from app.db.models import TuningRun, TuningTrial, User, utcnow
from app.db.session import session_scope
from app.services.data import datasets
from app.services.identity.access import can_read, can_write, readable
from app.services.training import jobs, queue_signal
from app.storage import ObjectStore

ENTRYPOINT = "train_jobs.tune_tabular"


@dataclass(frozen=True)
class TuneSpec:
    name: str
    dataset_version_id: int
    template: str
    config: TrainConfig
    search: SearchConfig
    priority: int = 0


def submission_id(run_id: int) -> str:
    return f"aip-tuning-run-{run_id}"


def create_run(settings: Settings, store: ObjectStore, *, user: User, spec: TuneSpec) -> int:
    """Validates the run (template, data, space, resources per trial and for the trials at once) and queues it."""
    if spec.template not in TEMPLATES:
        raise invalid(f"Unknown template {spec.template!r}; available: {', '.join(TEMPLATES)}.")
    if spec.template != tabular_mlp.TEMPLATE_NAME:  # the trials train the tabular model whatever the template says
        raise invalid(
            f"Tuning supports the {tabular_mlp.TEMPLATE_NAME!r} template only, for now; train {spec.template!r}"
            " with a training job, or tune with 'template': 'tabular_mlp'."
        )
    try:
        search = spec.search.resolve(spec.config)
    except ValueError as e:
        raise invalid(str(e)) from e
    from app.services.training.scheduler import concurrent_trials

    jobs.check_cluster_can_host(settings, spec.config)  # one trial's workers, then all trials at once
    jobs.check_cluster_can_host(settings, spec.config, copies=concurrent_trials(search))
    with session_scope(settings.database_url) as session:
        version = datasets.get_version(session, user=user, version_id=spec.dataset_version_id)
        try:
            tabular_mlp.check_frame(datasets.load_frame(store, version), spec.config.target_column, spec.config.task)
        except tabular_mlp.InvalidData as e:
            raise invalid(str(e)) from e
        row = TuningRun(
            name=spec.name,
            owner_id=user.id,
            dataset_version_id=version.id,
            template=spec.template,
            config=spec.config.model_dump(),
            search=search.model_dump(),
            status=JobStatus.QUEUED,
            message="Waiting for the scheduler.",
            priority=spec.priority,
            code_hash=jobs.code_hash(spec.template),
        )
        session.add(row)
        session.flush()
        queue_signal.wake_after_commit(session)
        return row.id


def get_run(session: Session, *, user: User, run_id: int) -> TuningRun:
    row = session.get(TuningRun, run_id)
    if row is None or not can_read(user, row):
        raise not_found("Tuning run", run_id)
    return row


def list_runs(session: Session, *, user: User) -> list[TuningRun]:
    return list(session.scalars(select(TuningRun).where(readable(user, TuningRun)).order_by(TuningRun.id.desc())))


def trials(session: Session, run_id: int) -> list[TuningTrial]:
    return list(session.scalars(select(TuningTrial).where(TuningTrial.run_id == run_id).order_by(TuningTrial.id)))


def set_status(session: Session, row: TuningRun, status: JobStatus, message: str = "") -> None:
    row.status = status
    row.message = message
    if status == JobStatus.RUNNING:
        row.started_at = utcnow()
    if status.is_terminal:
        row.finished_at = utcnow()
        # Trials still marked running (or paused) end with the run.
        session.execute(
            update(TuningTrial)
            .where(TuningTrial.run_id == row.id, TuningTrial.status.in_([TrialStatus.RUNNING, TrialStatus.PAUSED]))
            .values(status=JobStatus.STOPPED if status != JobStatus.FAILED else JobStatus.FAILED)
        )


def stop_run(settings: Settings, session: Session, *, user: User, run_id: int) -> TuningRun:
    row = get_run(session, user=user, run_id=run_id)
    if not can_write(user, row):
        raise forbidden(f"Tuning run {run_id} is not yours to stop.")
    if JobStatus(row.status).is_terminal:
        raise conflict(f"Tuning run {run_id} already ended as {row.status}.")
    if row.ray_job_id:
        try:
            ray_jobs.stop(settings, row.ray_job_id)
        except RuntimeError:
            pass  # Ray does not know it (yet); the reconcile loop closes the row either way
    set_status(session, row, JobStatus.STOPPED, "Stopped by the user.")
    return row


def run_logs(settings: Settings, store: ObjectStore, row: TuningRun) -> str:
    if row.logs_key:
        return store.get_bytes(row.logs_key).decode(errors="replace")
    if not row.ray_job_id:
        return ""
    try:
        return ray_jobs.logs(settings, row.ray_job_id)
    except Exception:  # not yet started, or gone
        return ""


def reconcile(settings: Settings, store: ObjectStore) -> None:
    """Closes runs whose Ray job ended without recording it or vanished; keeps logs of ended runs."""
    with session_scope(settings.database_url) as session:
        for row in session.scalars(
            select(TuningRun).where(TuningRun.status.in_([JobStatus.STARTING, JobStatus.RUNNING]))
        ).all():
            if not row.ray_job_id:
                continue
            state = ray_jobs.state(settings, row.ray_job_id)
            if state is None:
                set_status(session, row, JobStatus.FAILED, "Ray no longer knows this run (the cluster restarted).")
            elif state.status in RAY_JOB_ENDED:
                session.refresh(row)
                if not JobStatus(row.status).is_terminal:
                    set_status(session, row, JobStatus.FAILED, state.message or f"Ray job ended as {state.status}.")
        for row in session.scalars(
            select(TuningRun).where(
                TuningRun.status.in_([JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED]),
                TuningRun.logs_key.is_(None),
                TuningRun.ray_job_id.is_not(None),
            )
        ).all():
            state = ray_jobs.state(settings, row.ray_job_id)
            if state is not None and state.status not in RAY_JOB_ENDED:
                continue
            key = f"tuning/{row.id}/driver.log"
            store.put_bytes(key, (ray_jobs.logs(settings, row.ray_job_id) if state is not None else "").encode())
            row.logs_key = key
