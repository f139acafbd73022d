"""The training queue: a QUEUED job or tuning run starts only when the cluster's free resources fit it.

Training jobs and tuning runs share one queue: higher priority first, FIFO (queue time) within a priority. A tuning
run holds `max_concurrent_trials` trials' workers at once, so that is what it waits for. The head of the queue
blocks the work behind it when the cluster lacks room (so a large job is not starved by a stream of small ones);
work held back only by its owner's limits (GPUs, CPUs, running jobs: see app.services.identity.roles) does not block
other users. Work that no node of the cluster could ever host is refused. Runs in the control plane's reconcile
loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.cluster import capacity as cluster_capacity
from app.contracts.search_space import SearchConfig
from app.contracts.status import JOB_ACTIVE, JobStatus
from app.contracts.train_config import TrainConfig, parse
from app.core.config import Settings
from app.core.errors import AipError
from app.db.models import TrainingJob, TuningRun, User
from app.db.session import rows_changed, session_scope
from app.runs import lifecycle
from app.runs.kinds import TRAINING_JOB, TUNING_RUN, RunKind
from app.services.identity import roles
from app.services.system import sysconfig
from app.services.training import jobs, placement, warm_workers

log = logging.getLogger(__name__)

Resources = dict[str, float]
_EPS = 1e-9
JOB, TUNE = "job", "tuning run"
_KINDS: dict[str, RunKind] = {JOB: TRAINING_JOB, TUNE: TUNING_RUN}
# Each limit: the system setting that applies when none of the user's roles sets it, and what it counts.
LIMIT_SETTINGS = {
    "max_gpus": "quota.user_max_gpus",
    "max_cpus": "quota.user_max_cpus",
    "max_jobs": "quota.user_max_jobs",
}


class Work(NamedTuple):
    kind: str  # JOB or TUNE
    id: int

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"


@dataclass(frozen=True)
class Candidate:
    work: Work
    owner_id: int
    config: TrainConfig  # one job's (or one trial's) workers
    copies: int = 1  # a tuning run: trials running at once

    def demand(self) -> Resources:
        return {k: v * self.copies for k, v in self.config.demand().items()}


@dataclass
class Usage:
    """What one user's running work holds."""

    gpus: float = 0.0
    cpus: float = 0.0
    jobs: int = 0

    def add(self, demand: Resources) -> None:
        self.gpus += demand.get("GPU", 0.0)
        self.cpus += demand.get("CPU", 0.0)
        self.jobs += 1


@dataclass
class Plan:
    start: list[Work] = field(default_factory=list)
    waiting: dict[Work, str] = field(default_factory=dict)  # why it waits
    refused: dict[Work, str] = field(default_factory=dict)  # why it can never run


def over_limit(usage: Usage, demand: Resources, limits: dict[str, float]) -> str | None:
    """Why starting work of `demand` would take its owner past one of their limits, or None."""
    checks = (
        ("max_gpus", usage.gpus, demand.get("GPU", 0.0), "GPUs"),
        ("max_cpus", usage.cpus, demand.get("CPU", 0.0), "CPUs"),
        ("max_jobs", usage.jobs, 1, "running jobs and tuning runs"),
    )
    for key, used, wanted, what in checks:
        limit = limits.get(key)
        if limit is not None and wanted > 0 and used + wanted > limit + _EPS:
            return f"Waiting for your limit: your work already holds {used:g} {what} of your limit of {limit:g}."
    return None


def plan(
    queue: list[Candidate],
    *,
    free: Resources,
    nodes: list[Resources],
    usage: dict[int, Usage],
    limits: dict[int, dict[str, float]],
) -> Plan:
    """Decides which queued work starts now. `queue` is already in priority/FIFO order; `limits` by owner."""
    result = Plan()
    free = dict(free)
    usage = {owner: Usage(u.gpus, u.cpus, u.jobs) for owner, u in usage.items()}
    for position, item in enumerate(queue):
        reason = placement.never_fits(item.config, nodes, item.copies)
        if reason:
            result.refused[item.work] = reason
            continue
        demand = item.demand()
        owner = usage.setdefault(item.owner_id, Usage())
        reason = over_limit(owner, demand, limits.get(item.owner_id, {}))
        if reason:
            result.waiting[item.work] = reason
            continue
        short = {k: v for k, v in demand.items() if v > free.get(k, 0.0) + _EPS}
        if short:
            result.waiting[item.work] = "Waiting for resources: needs " + ", ".join(
                f"{k} {v:g} ({free.get(k, 0.0):g} free)" for k, v in short.items()
            )
            # Strict order: the rest of the queue waits behind the head, each with a reason.
            for later in queue[position + 1 :]:
                result.waiting.setdefault(later.work, f"Waiting behind {item.work} (earlier or higher).")
            break
        result.start.append(item.work)
        for key, value in demand.items():
            free[key] = free.get(key, 0.0) - value
        owner.add(demand)
    return result


def free_resources(available: Resources, total: Resources, reserved: Resources) -> Resources:
    """Free capacity, counting jobs that were submitted but whose workers have not yet taken their share."""
    return {k: min(available.get(k, 0.0), total[k] - reserved.get(k, 0.0)) for k in total}


def tuning_candidate(run: TuningRun) -> Candidate:
    """A tuning run as queued work: its trials' workers, as many trials at once as it may run."""
    search = SearchConfig.model_validate(run.search)
    return Candidate(Work(TUNE, run.id), run.owner_id, parse(run.config), placement.concurrent_trials(search))


def owner_limits(session: Session, settings: Settings, owner_ids: set[int]) -> dict[int, dict[str, float]]:
    """Each owner's limits: the most generous of their roles', else the system setting."""
    defaults = {key: sysconfig.get(session, settings, setting) for key, setting in LIMIT_SETTINGS.items()}
    limits = {}
    for user in session.scalars(select(User).where(User.id.in_(owner_ids))):
        merged = {**defaults, **roles.user_limits(user)}
        limits[user.id] = {k: v for k, v in merged.items() if v is not None}
    return limits


def schedule(settings: Settings) -> list[Work]:
    """One pass of the scheduler: starts what fits, records why the rest waits. Returns what it started."""
    with session_scope(settings.database_url) as session:
        rows: dict[Work, TrainingJob | TuningRun] = {}
        queue: list[tuple[tuple, Candidate]] = []
        for job in session.scalars(select(TrainingJob).where(TrainingJob.status == JobStatus.QUEUED)):
            try:
                candidate = Candidate(Work(JOB, job.id), job.owner_id, parse(job.config))
            except ValueError as e:  # a row written by hand or by an older version
                lifecycle.transition(session, TRAINING_JOB, job, JobStatus.FAILED, f"The job's config is invalid: {e}")
                continue
            rows[candidate.work] = job
            queue.append(((-job.priority, job.queued_at or job.created_at, 0, job.id), candidate))
        for run in session.scalars(select(TuningRun).where(TuningRun.status == JobStatus.QUEUED)):
            try:
                candidate = tuning_candidate(run)
            except ValueError as e:
                lifecycle.transition(session, TUNING_RUN, run, JobStatus.FAILED, f"The run's config is invalid: {e}")
                continue
            rows[candidate.work] = run
            queue.append(((-run.priority, run.created_at, 1, run.id), candidate))
        if not queue:
            return []
        queue.sort(key=lambda entry: entry[0])
        capacity = cluster_capacity.read(settings)
        reserved: Resources = {}
        usage: dict[int, Usage] = {}
        for demand, owner_id in _active_demands(session):
            for key, value in demand.items():
                reserved[key] = reserved.get(key, 0.0) + value
            usage.setdefault(owner_id, Usage()).add(demand)
        candidates = [c for _, c in queue]
        decided = plan(
            candidates,
            free=free_resources(capacity.available, capacity.total, reserved),
            nodes=capacity.nodes,
            usage=usage,
            limits=owner_limits(session, settings, {c.owner_id for c in candidates}),
        )
        for work, reason in decided.refused.items():
            lifecycle.transition(session, _KINDS[work.kind], rows[work], JobStatus.FAILED, reason)
        for work, reason in decided.waiting.items():
            if rows[work].message != reason:
                rows[work].message = reason
        preferences = _place(settings, [c for c in candidates if c.work in decided.start and c.work.kind == JOB])
        pool = warm_workers.pool_name(settings)
        submissions = {
            work: _mark_starting(session, rows[work], preferences.get(work), pool)
            for work in decided.start
            if claim(session, rows[work])
        }
    # Rows are committed STARTING before Ray sees them, so each driver finds its row.
    started = []
    for work, (submission, module, args) in submissions.items():
        try:
            lifecycle.submit(settings, _KINDS[work.kind], submission=submission, args=args, module=module)
            started.append(work)
        except AipError as e:
            log.warning("Submitting %s failed, it stays queued: %s", work, e.message)
            with session_scope(settings.database_url) as session:
                _requeue(session, work, f"Submission failed, will retry: {e.message}")
    return started


def _active_demands(session: Session) -> list[tuple[Resources, int]]:
    """What each started job and tuning run holds (or is about to), with its owner."""
    found = []
    for job in session.scalars(select(TrainingJob).where(TrainingJob.status.in_(JOB_ACTIVE))):
        try:
            found.append((parse(job.config).demand(), job.owner_id))
        except ValueError:
            continue
    for run in session.scalars(select(TuningRun).where(TuningRun.status.in_(JOB_ACTIVE))):
        try:
            found.append((tuning_candidate(run).demand(), run.owner_id))
        except ValueError:
            continue
    return found


def _place(settings: Settings, starting: list[Candidate]) -> dict[Work, placement.Preference]:
    """The preferred nodes of each starting job, each taking its share before the next is placed."""
    if not starting:
        return {}
    nodes = cluster_capacity.read(settings, with_states=True).states
    chosen = {}
    for candidate in starting:
        preference = placement.prefer(candidate.config, nodes)
        if preference is not None:
            chosen[candidate.work] = preference
            nodes = placement.take(nodes, candidate.config, preference)
    return chosen


def claim(session: Session, row: TrainingJob | TuningRun) -> bool:
    """Whether the row is still QUEUED in the database, taking it for this pass: a stop that came in since the
    queue was read wins (the conditional UPDATE waits for, or conflicts with, the stopping transaction)."""
    model = type(row)
    claimed = rows_changed(
        session,
        update(model)
        .where(model.id == row.id, model.status == JobStatus.QUEUED)
        .values(status=JobStatus.STARTING)
        .execution_options(synchronize_session=False),  # the row object keeps QUEUED for its transition record
    )
    return claimed == 1


def _mark_starting(
    session: Session,
    row: TrainingJob | TuningRun,
    preference: placement.Preference | None = None,
    warm_pool: str | None = None,
) -> tuple[str, str, list[str]]:
    """Moves the row to STARTING (with its workers' preferred nodes); returns its Ray submission id, and the
    module and arguments its Ray job runs (a job's with the pool of warm workers to take them from)."""
    if isinstance(row, TrainingJob):
        row.attempts += 1
        row.ray_job_id = TRAINING_JOB.submission_id(row)
        row.logs_key = None
        row.preferred_nodes = preference.node_ids if preference else None
        where = f" {preference.describe()}." if preference else ""
        lifecycle.transition(
            session, TRAINING_JOB, row, JobStatus.STARTING, f"Submitted to Ray as {row.ray_job_id}.{where}"
        )
        return row.ray_job_id, *jobs.driver_command(row, warm_pool)
    row.ray_job_id = TUNING_RUN.submission_id(row)
    lifecycle.transition(session, TUNING_RUN, row, JobStatus.STARTING, f"Submitted to Ray as {row.ray_job_id}.")
    return row.ray_job_id, TUNING_RUN.entrypoint, [str(row.id)]


def _requeue(session: Session, work: Work, message: str) -> None:
    kind = _KINDS[work.kind]
    lifecycle.transition(session, kind, session.get_one(kind.model, work.id), JobStatus.QUEUED, message)
