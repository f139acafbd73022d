"""Aligns run rows with Ray, the same way for every kind: a run whose Ray job ended (without its driver recording
how) or that Ray no longer knows is failed; a run stopped while its submission was in flight gets its Ray job
stopped once Ray knows it; the logs of an ended run's Ray job are kept in storage, read later without Ray."""

from __future__ import annotations

from sqlalchemy import select

from app.cluster import jobs as ray_jobs
from app.contracts.status import JOB_ENDED, RAY_JOB_ENDED, JobStatus
from app.core.config import Settings
from app.db.session import session_scope
from app.runs import lifecycle
from app.runs.kinds import KINDS, RunKind
from app.storage import ObjectStore


def reconcile(settings: Settings, store: ObjectStore, kinds: tuple[RunKind, ...] = KINDS) -> None:
    for kind in kinds:
        close_ended(settings, kind)
        keep_logs(settings, store, kind)


def close_ended(settings: Settings, kind: RunKind) -> None:
    model = kind.model
    with session_scope(settings.database_url) as session:
        rows = session.scalars(
            select(model).where(model.status.in_(kind.open), model.ray_job_id.is_not(None)).order_by(model.id)
        ).all()
        for row in rows:
            state = ray_jobs.state(settings, row.ray_job_id)
            if state is not None and state.status not in RAY_JOB_ENDED:
                continue
            if state is None:
                reason = f"Ray no longer knows this {kind.noun} (the cluster restarted)."
            else:  # the driver records success itself: a Ray job that ended without doing so failed
                reason = state.message or f"Ray job ended as {state.status}."
            session.refresh(row)  # the driver may have recorded the end since the rows were read
            if row.status in kind.open:
                lifecycle.transition(session, kind, row, JobStatus.FAILED, reason)


def keep_logs(settings: Settings, store: ObjectStore, kind: RunKind) -> None:
    model = kind.model
    with session_scope(settings.database_url) as session:
        rows = session.scalars(
            select(model).where(model.status.in_(JOB_ENDED), model.logs_key.is_(None), model.ray_job_id.is_not(None))
        ).all()
        for row in rows:
            state = ray_jobs.state(settings, row.ray_job_id)
            if state is not None and state.status not in RAY_JOB_ENDED:
                if row.status == JobStatus.STOPPED:
                    lifecycle.stop_ray_job(settings, row.ray_job_id)  # stopped while its submission was in flight
                continue  # the driver is still finishing; keep its logs once it exits
            key = kind.log_key(row)
            store.put_bytes(key, (ray_jobs.logs(settings, row.ray_job_id) if state is not None else "").encode())
            row.logs_key = key
