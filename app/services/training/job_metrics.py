"""A training job's metrics: per epoch, one row per (step, key), written as workers report; per batch step, the
loss, learning rate and throughput rank 0 logs every few batches; both read paged and downsampled. And its workers'
resource use, sampled on a timer (so a long epoch still shows it).

Its own small module because Ray Train controllers import it to record metrics, and must start fast.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.contracts.status import JobStatus
from app.db.models import JobMetric, JobStepMetric, JobUsageSample, TrainingJob


def record_metrics(session: Session, *, job_id: int, step: int, metrics: dict[str, float]) -> None:
    """Stores one step's metrics, replacing that step's earlier values (a resumed run repeats steps)."""
    session.execute(delete(JobMetric).where(JobMetric.job_id == job_id, JobMetric.step == step))
    session.add_all(JobMetric(job_id=job_id, step=step, key=k, value=float(v)) for k, v in metrics.items())


def metric_history(
    session: Session,
    job_id: int,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    offset: int = 0,
    limit: int | None = None,
    max_points: int | None = None,
) -> list[dict[str, Any]]:
    """Per-step rows [{"step": 1, "time": ..., "loss": ..., ...}] in step order.

    `since`/`until` select by the time a step was recorded; `offset`/`limit` page over steps; `max_points`
    downsamples evenly (first and last step kept) so long runs stay cheap to draw.
    """
    steps_query = select(JobMetric.step).where(JobMetric.job_id == job_id)
    if since is not None:
        steps_query = steps_query.where(JobMetric.created_at >= since)
    if until is not None:
        steps_query = steps_query.where(JobMetric.created_at <= until)
    steps = list(session.scalars(steps_query.group_by(JobMetric.step).order_by(JobMetric.step)))
    steps = evenly(steps[offset : None if limit is None else offset + limit], max_points)
    if not steps:
        return []
    rows = session.execute(
        select(JobMetric.step, JobMetric.key, JobMetric.value, JobMetric.created_at)
        .where(JobMetric.job_id == job_id, JobMetric.step.in_(steps))
        .order_by(JobMetric.step, JobMetric.id)
    )
    by_step: dict[int, dict[str, Any]] = {}
    for step, key, value, created_at in rows:
        by_step.setdefault(step, {"step": step, "time": created_at})[key] = value
    return list(by_step.values())


def evenly(items: list[Any], max_points: int | None) -> list[Any]:
    """At most `max_points` of `items`, evenly spread, the first and the last kept."""
    if max_points is None or len(items) <= max_points:
        return items
    last = len(items) - 1
    picks = sorted({round(i * last / (max_points - 1)) for i in range(max_points)}) if max_points > 1 else [last]
    return [items[i] for i in picks]


def count_steps(session: Session, job_id: int) -> int:
    return session.scalar(select(func.count(func.distinct(JobMetric.step))).where(JobMetric.job_id == job_id)) or 0


def record_training_steps(session: Session, *, job_id: int, steps: list[dict[str, Any]]) -> None:
    """Stores logged batch steps [{"step", "epoch", "loss", ...}], replacing earlier rows of the same steps (a run
    resumed from a checkpoint trains them again)."""
    numbers = [int(s["step"]) for s in steps]
    session.execute(delete(JobStepMetric).where(JobStepMetric.job_id == job_id, JobStepMetric.step.in_(numbers)))
    session.add_all(
        JobStepMetric(
            job_id=job_id,
            step=int(s["step"]),
            epoch=int(s["epoch"]),
            values={k: float(v) for k, v in s.items() if k not in ("step", "epoch")},
        )
        for s in steps
    )


def training_step_history(
    session: Session,
    job_id: int,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    offset: int = 0,
    limit: int | None = None,
    max_points: int | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """(steps in the selection, rows [{"step", "epoch", "time", "loss", "lr", "samples_per_s"}] in step order),
    selected, paged and downsampled as `metric_history` does."""
    where = [JobStepMetric.job_id == job_id]
    if since is not None:
        where.append(JobStepMetric.created_at >= since)
    if until is not None:
        where.append(JobStepMetric.created_at <= until)
    total = session.scalar(select(func.count()).select_from(JobStepMetric).where(*where)) or 0
    page = select(JobStepMetric.id).where(*where).order_by(JobStepMetric.step).offset(offset).limit(limit)
    query = select(JobStepMetric).where(*where).order_by(JobStepMetric.step).offset(offset).limit(limit)
    if max_points is not None and min(total - offset, limit or total) > max_points:
        picked = evenly(list(session.scalars(page)), max_points)  # ids only: rows of the picked steps next
        query = select(JobStepMetric).where(JobStepMetric.id.in_(picked)).order_by(JobStepMetric.step)
    rows = session.scalars(query)
    return total, [{"step": r.step, "epoch": r.epoch, "time": r.created_at, **r.values} for r in rows]


def record_usage(session: Session, *, job_id: int, rank: int, values: dict[str, float]) -> bool:
    """Stores one worker's resource sample while the job runs; False once the job no longer runs (stop sampling)."""
    status = session.scalar(select(TrainingJob.status).where(TrainingJob.id == job_id))
    if status is None or not JobStatus(status).holds_resources:
        return False
    session.add(JobUsageSample(job_id=job_id, rank=rank, values={k: float(v) for k, v in values.items()}))
    return True


def usage_history(
    session: Session, job_id: int, *, since: dt.datetime | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """The latest `limit` samples (at or after `since`), oldest first: [{"time", "rank", "sys_cpu_percent", ...}]."""
    query = select(JobUsageSample).where(JobUsageSample.job_id == job_id)
    if since is not None:
        query = query.where(JobUsageSample.created_at >= since)
    rows = session.scalars(query.order_by(JobUsageSample.id.desc()).limit(limit)).all()
    return [{"time": r.created_at, "rank": r.rank, **r.values} for r in reversed(rows)]
