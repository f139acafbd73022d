"""One lifecycle for every row backed by a Ray job (app.runs.kinds): its status changes, each recorded with why
(run_transitions), its Ray job submitted and stopped, its logs read (kept ones first).

A run goes QUEUED (or CREATED) -> [STARTING ->] RUNNING -> SUCCEEDED / FAILED / STOPPED. Its driver
(train_jobs.driver) marks it RUNNING and records how it ended; the reconcile loop (app.runs.reconcile) closes runs
whose Ray job ended or vanished without doing so, and keeps their logs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.cluster import jobs as ray_jobs
from app.contracts.status import JobStatus
from app.core.config import Settings
from app.core.errors import AipError, ErrorCode, conflict
from app.db.models import RunTransition, utcnow
from app.db.session import rows_changed, session_scope
from app.runs.kinds import RunKind
from app.storage import ObjectStore

log = logging.getLogger(__name__)

MESSAGE_MAX = 2000  # a failure's message (often an exception's text) is cut to this many characters


def created(session: Session, kind: RunKind, row: Any, message: str = "") -> None:
    """Records the first state of a new row (flushed here, so it has its id)."""
    session.add(row)
    session.flush()
    session.add(
        RunTransition(
            kind=kind.name, run_id=row.id, to_status=row.status, message=message, created_at=row.created_at or utcnow()
        )
    )


def transition(
    session: Session,
    kind: RunKind,
    row: Any,
    status: JobStatus,
    message: str = "",
    *,
    claimed_from: JobStatus | None = None,
) -> None:
    """Moves the row to `status`, recording the change (the one place a run's status changes). `claimed_from`: the
    status a conditional UPDATE just moved the row from (claiming the change against a concurrent caller)."""
    previous = JobStatus(claimed_from or row.status)
    now = utcnow()
    message = message[:MESSAGE_MAX]
    session.add(
        RunTransition(
            kind=kind.name, run_id=row.id, from_status=previous, to_status=status, message=message, created_at=now
        )
    )
    row.status = status
    row.message = message
    if status == JobStatus.RUNNING:
        row.started_at = now
    if status.is_terminal:
        row.finished_at = now
    elif status in (JobStatus.CREATED, JobStatus.QUEUED):
        row.finished_at = None
    if kind.on_change is not None:
        kind.on_change(session, row, previous, status, now)


def transitions(session: Session, kind: RunKind, run_id: int) -> list[RunTransition]:
    return list(
        session.scalars(
            select(RunTransition)
            .where(RunTransition.kind == kind.name, RunTransition.run_id == run_id)
            .order_by(RunTransition.id)
        )
    )


def forget(session: Session, kind: RunKind, run_ids: Iterable[int]) -> None:
    """Deletes the recorded history of rows being deleted (no foreign key does it: one table serves every kind)."""
    ids = list(run_ids)
    if ids:
        session.execute(delete(RunTransition).where(RunTransition.kind == kind.name, RunTransition.run_id.in_(ids)))


def mark_running(session: Session, kind: RunKind, run_id: int) -> Any | None:
    """Moves the run from `kind.runs_from` to RUNNING; returns the row, or None when it was not in that state (it
    was stopped, failed, or is already running). Callers may race (a training job's rank-0 worker and its driver's
    first metric): a conditional UPDATE claims the change first, so only one records it (SQLite has no row locks)."""
    model = kind.model
    claimed = rows_changed(
        session,
        update(model)
        .where(model.id == run_id, model.status == kind.runs_from)
        .values(status=JobStatus.RUNNING)
        .execution_options(synchronize_session=False),
    )
    if claimed != 1:
        return None
    row = session.get_one(model, run_id, populate_existing=True)
    transition(session, kind, row, JobStatus.RUNNING, kind.running_message(row), claimed_from=kind.runs_from)
    return row


def succeed(session: Session, kind: RunKind, row: Any, message: str = "") -> bool:
    """Records the run's success, unless it was stopped (or failed) meanwhile: the user's decision stands. Call it in
    the transaction that records the run's result, with the row read in that transaction."""
    if row.status != JobStatus.RUNNING:
        return False
    transition(session, kind, row, JobStatus.SUCCEEDED, message)
    return True


def fail(session: Session, kind: RunKind, run_id: int, message: str) -> bool:
    """Fails the run unless it already ended; True when it did."""
    row = session.get(kind.model, run_id, populate_existing=True)
    if row is None or JobStatus(row.status).is_terminal:
        return False
    transition(session, kind, row, JobStatus.FAILED, message)
    return True


def stop(settings: Settings, session: Session, kind: RunKind, row: Any, message: str = "Stopped by the user.") -> None:
    """Stops the run's Ray job (if it has one) and records STOPPED; a run that already ended is a 409."""
    if JobStatus(row.status).is_terminal:
        raise conflict(f"{kind.noun.capitalize()} {row.id} already ended as {row.status}.")
    if row.ray_job_id and row.status in kind.open:
        stop_ray_job(settings, row.ray_job_id)
    transition(session, kind, row, JobStatus.STOPPED, message)


def stop_ray_job(settings: Settings, submission: str) -> None:
    try:
        ray_jobs.stop(settings, submission)
    except RuntimeError as e:  # not yet known to Ray: the reconcile loop stops it if it appears
        log.info("Stopping Ray job %s: %s", submission, e)


def submit(settings: Settings, kind: RunKind, *, submission: str, args: list[str], module: str | None = None) -> None:
    """Runs the row's Ray job (`module`, else the kind's entrypoint). Its row must be committed first: the driver
    reads it. Raises AipError (UNAVAILABLE) when Ray refuses it."""
    ray_jobs.submit(settings, submission_id=submission, module=module or kind.entrypoint, args=args)


def submit_new(settings: Settings, kind: RunKind, run_id: int, args: list[str]) -> None:
    """Submits the Ray job of a row created (and committed) just now, and records its submission id; when Ray
    refuses it the row is deleted again and the AipError raised, so nothing is left that no job backs."""
    with session_scope(settings.database_url) as session:
        submission = kind.submission_id(session.get_one(kind.model, run_id))
    try:
        submit(settings, kind, submission=submission, args=args)
    except AipError:
        if kind.delete_if_refused:
            with session_scope(settings.database_url) as session:
                session.execute(delete(kind.model).where(kind.model.id == run_id))
                forget(session, kind, [run_id])
        raise
    # Recorded once Ray knows the job: the reconcile loop would close a row whose Ray job it cannot find.
    with session_scope(settings.database_url) as session:
        session.get_one(kind.model, run_id).ray_job_id = submission


def logs(settings: Settings, store: ObjectStore, kind: RunKind, row: Any) -> str:
    """The run's logs: the kept ones once its Ray job ended, else Ray's; empty before Ray has any."""
    if row.logs_key:
        return store.get_bytes(row.logs_key).decode(errors="replace")
    not_submitted = row.status in (JobStatus.CREATED, JobStatus.QUEUED) and row.status not in kind.open
    if not row.ray_job_id or not_submitted:  # a queued retry's ray_job_id is its previous attempt's
        return ""
    try:
        return ray_jobs.logs(settings, row.ray_job_id)
    except Exception as e:  # Ray no longer has them and they were never kept
        if row.status in (JobStatus.QUEUED, JobStatus.STARTING):
            return ""  # submitted, the driver has not written anything yet
        raise AipError(ErrorCode.UNAVAILABLE, f"Logs of {kind.noun} {row.id} are not available: {e}") from e
