"""The training queue: a QUEUED job starts only when the cluster's free resources fit it.

Order: higher priority first, FIFO (queue time) within a priority. The head of the queue blocks the jobs behind it
when the cluster lacks room (so a large job is not starved by a stream of small ones); a job held back only by
its owner's limit does not block other users. A job that no node of the cluster could ever host is refused.
Runs in the control plane's reconcile loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from app.cluster import capacity as cluster_capacity
from app.cluster import jobs as ray_jobs
from app.core.config import Settings
from app.core.errors import AipError
from app.db.models import JobStatus, TrainingJob
from app.db.session import session_scope
from app.services import sysconfig, training
from train_jobs.job_config import TrainConfig, parse

log = logging.getLogger(__name__)

Resources = dict[str, float]
_EPS = 1e-9


@dataclass(frozen=True)
class Candidate:
    job_id: int
    owner_id: int
    config: TrainConfig


@dataclass
class Plan:
    start: list[int] = field(default_factory=list)
    waiting: dict[int, str] = field(default_factory=dict)  # job id -> why it waits
    refused: dict[int, str] = field(default_factory=dict)  # job id -> why it can never run


def never_fits(config: TrainConfig, nodes: list[Resources]) -> str | None:
    """Why no placement of the job's workers on these nodes exists, or None when one may."""
    per_worker = config.worker_resources()
    hosts = [_count_fitting(per_worker, node) for node in nodes]
    if sum(hosts) >= config.num_workers:
        return None
    biggest = {key: max((n.get(key, 0.0) for n in nodes), default=0.0) for key in per_worker}
    if any(per_worker[k] > biggest[k] + _EPS for k in per_worker):
        short = ", ".join(f"{k} {per_worker[k]:g} (largest node has {biggest[k]:g})" for k in per_worker)
        return f"One worker needs {short}: no node of the cluster is that large. Ask for less per worker."
    return (
        f"The job needs {config.num_workers} workers of {_fmt(per_worker)} but the whole cluster holds at most "
        f"{sum(hosts)}. Use fewer workers or smaller ones."
    )


def plan(
    queue: list[Candidate],
    *,
    free: Resources,
    nodes: list[Resources],
    gpus_in_use: dict[int, float],
    max_gpus_per_user: float | None,
) -> Plan:
    """Decides which queued jobs start now. `queue` is already in priority/FIFO order."""
    result = Plan()
    free = dict(free)
    gpus_in_use = dict(gpus_in_use)
    for job in queue:
        reason = never_fits(job.config, nodes)
        if reason:
            result.refused[job.job_id] = reason
            continue
        demand = job.config.demand()
        gpus = demand.get("GPU", 0.0)
        if max_gpus_per_user is not None and gpus_in_use.get(job.owner_id, 0.0) + gpus > max_gpus_per_user + _EPS:
            result.waiting[job.job_id] = (
                f"Waiting: your jobs already use {gpus_in_use.get(job.owner_id, 0.0):g} GPUs of your limit of "
                f"{max_gpus_per_user:g}."
            )
            continue
        short = {k: v for k, v in demand.items() if v > free.get(k, 0.0) + _EPS}
        if short:
            result.waiting[job.job_id] = "Waiting for resources: needs " + ", ".join(
                f"{k} {v:g} ({free.get(k, 0.0):g} free)" for k, v in short.items()
            )
            # Strict order: the rest of the queue waits behind the head, each with a reason.
            for later in queue[queue.index(job) + 1 :]:
                result.waiting.setdefault(later.job_id, f"Waiting behind job {job.job_id} (earlier or higher).")
            break
        result.start.append(job.job_id)
        for key, value in demand.items():
            free[key] = free.get(key, 0.0) - value
        gpus_in_use[job.owner_id] = gpus_in_use.get(job.owner_id, 0.0) + gpus
    return result


def free_resources(available: Resources, total: Resources, reserved: Resources) -> Resources:
    """Free capacity, counting jobs that were submitted but whose workers have not yet taken their share."""
    return {k: min(available.get(k, 0.0), total[k] - reserved.get(k, 0.0)) for k in total}


def schedule(settings: Settings) -> list[int]:
    """One pass of the scheduler: starts what fits, records why the rest waits. Returns the started job ids."""
    with session_scope(settings.database_url) as session:
        active = session.scalars(
            select(TrainingJob).where(TrainingJob.status.in_([JobStatus.STARTING, JobStatus.RUNNING]))
        ).all()
        queued = session.scalars(
            select(TrainingJob)
            .where(TrainingJob.status == JobStatus.QUEUED)
            .order_by(TrainingJob.priority.desc(), TrainingJob.queued_at, TrainingJob.id)
        ).all()
        if not queued:
            return []
        capacity = cluster_capacity.read(settings)
        configs: dict[int, TrainConfig] = {}
        for job in queued:
            try:
                configs[job.id] = parse(job.config)
            except ValueError as e:  # a row written by hand or by an older version
                training.transition(session, job, JobStatus.FAILED, f"The job's config is invalid: {e}")
        queued = [j for j in queued if j.id in configs]
        reserved: Resources = {}
        gpus_in_use: dict[int, float] = {}
        for job in active:
            try:
                demand = parse(job.config).demand()
            except ValueError:
                continue
            for key, value in demand.items():
                reserved[key] = reserved.get(key, 0.0) + value
            gpus_in_use[job.owner_id] = gpus_in_use.get(job.owner_id, 0.0) + demand.get("GPU", 0.0)
        decided = plan(
            [Candidate(j.id, j.owner_id, configs[j.id]) for j in queued],
            free=free_resources(capacity.available, capacity.total, reserved),
            nodes=capacity.nodes,
            gpus_in_use=gpus_in_use,
            max_gpus_per_user=sysconfig.get(session, settings, "quota.user_max_gpus"),
        )
        by_id = {j.id: j for j in queued}
        for job_id, reason in decided.refused.items():
            training.transition(session, by_id[job_id], JobStatus.FAILED, reason)
        for job_id, reason in decided.waiting.items():
            if by_id[job_id].message != reason:
                by_id[job_id].message = reason
        submissions = {}
        for job_id in decided.start:
            job = by_id[job_id]
            job.attempts += 1
            job.ray_job_id = training.submission_id(job)
            job.logs_key = None
            training.transition(session, job, JobStatus.STARTING, f"Submitted to Ray as {job.ray_job_id}.")
            submissions[job_id] = (job.ray_job_id, training.entrypoint(job))
    # Rows are committed STARTING before Ray sees the jobs, so each driver finds its row.
    started = []
    for job_id, (submission, module) in submissions.items():
        try:
            ray_jobs.submit(settings, submission_id=submission, module=module, args=[str(job_id)])
            started.append(job_id)
        except AipError as e:
            log.warning("Submitting job %s failed, it stays queued: %s", job_id, e.message)
            with session_scope(settings.database_url) as session:
                job = session.get_one(TrainingJob, job_id)
                training.transition(session, job, JobStatus.QUEUED, f"Submission failed, will retry: {e.message}")
    return started


def _count_fitting(per_worker: Resources, node: Resources) -> int:
    counts = [int((node.get(k, 0.0) + _EPS) // v) for k, v in per_worker.items() if v > 0]
    return min(counts) if counts else 0


def _fmt(resources: Resources) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in resources.items())
