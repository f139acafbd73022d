"""Tuning runs (Ray Tune): validation, queueing, stop, trials, logs; status changes through the runs' lifecycle
(app.runs, kind TUNING_RUN).

A run waits in the training queue (app.services.training.scheduler) like a job, for room for `max_concurrent_trials`
trials, then runs as one Ray job (`python -m train_jobs.tune_tabular RUN_ID`); its trials are rows the job's Tune
callback keeps up to date. The best trial registers a DRAFT model version.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.contracts import tabular_mlp
from app.contracts.search_space import SearchConfig
from app.contracts.status import JobStatus
from app.contracts.templates import TEMPLATES
from app.contracts.train_config import TrainConfig
from app.core.config import Settings
from app.core.errors import forbidden, invalid, not_found
from app.db.models import TuningRun, TuningTrial, User
from app.db.paging import PageOf, PageRequest, page
from app.db.session import session_scope
from app.runs import lifecycle, queue_signal
from app.runs.kinds import TUNING_RUN
from app.services.data import datasets
from app.services.identity.access import can_read, can_write, readable
from app.services.training import jobs, placement
from app.storage import ObjectStore


@dataclass(frozen=True)
class TuneSpec:
    name: str
    dataset_version_id: int
    template: str
    config: TrainConfig
    search: SearchConfig
    priority: int = 0


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
    jobs.check_cluster_can_host(settings, spec.config)  # one trial's workers, then all trials at once
    jobs.check_cluster_can_host(settings, spec.config, copies=placement.concurrent_trials(search))
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
        lifecycle.created(session, TUNING_RUN, row, "Waiting for the scheduler.")
        queue_signal.wake_after_commit(session)
        return row.id


def get_run(session: Session, *, user: User, run_id: int) -> TuningRun:
    row = session.get(TuningRun, run_id)
    if row is None or not can_read(user, row):
        raise not_found("Tuning run", run_id)
    return row


def list_runs(
    session: Session, *, user: User, request: PageRequest = PageRequest(), status: str | None = None
) -> PageOf[TuningRun]:
    query = select(TuningRun).where(readable(user, TuningRun))
    if status:
        query = query.where(TuningRun.status == status)
    sortable = {
        "id": TuningRun.id,
        "name": TuningRun.name,
        "created_at": TuningRun.created_at,
        "status": TuningRun.status,
    }
    return page(session, query, request, sortable=sortable, default_sort="-id", tiebreak=TuningRun.id)


def trials(session: Session, run_id: int) -> list[TuningTrial]:
    return list(session.scalars(select(TuningTrial).where(TuningTrial.run_id == run_id).order_by(TuningTrial.id)))


def stop_run(settings: Settings, session: Session, *, user: User, run_id: int) -> TuningRun:
    row = get_run(session, user=user, run_id=run_id)
    if not can_write(user, row):
        raise forbidden(f"Tuning run {run_id} is not yours to stop.")
    lifecycle.stop(settings, session, TUNING_RUN, row)
    return row


def run_logs(settings: Settings, store: ObjectStore, row: TuningRun) -> str:
    return lifecycle.logs(settings, store, TUNING_RUN, row)
