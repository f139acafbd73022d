"""The platform's side of the warm Train workers (`train_jobs.warm_pool`): which pool a job takes from, and
keeping that pool topped up (through `app.cluster.warm_pool`, without importing it).

A refill starts processes that import torch: on a small node they would slow whatever else runs. So the pool is
topped up only while the cluster is quiet: no training job or tuning run starting or running, no model deployment
being deployed or deleted, and the last job or tuning run ended at least `QUIET_S` ago (the next step of a
workflow, such as deploying the model just trained, usually follows at once). A platform keeps workers warm once
it has trained: its first job starts its workers fresh, and so may a job started while another one trains.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import exists, func, select

from app.cluster import jobs as ray_jobs
from app.cluster import warm_pool
from app.contracts import warm_pool as warm_pool_contract
from app.contracts.status import JOB_ACTIVE, DeploymentStatus
from app.core.config import ENV_PREFIX, Settings
from app.db.models import Deployment, TrainingJob, TuningRun, utcnow
from app.db.session import session_scope

# The pool's size is the platform's to change; its workers' environment (and so its name) does not depend on it.
_SIZE_VAR = f"{ENV_PREFIX}WARM_WORKERS_PER_NODE"


def _pool_env(settings: Settings) -> dict[str, str]:
    return {name: value for name, value in ray_jobs.job_env(settings).items() if name != _SIZE_VAR}


def pool_name(settings: Settings) -> str | None:
    """The pool a job's launcher takes its workers from; None when the platform keeps none."""
    return warm_pool_contract.pool_name(_pool_env(settings)) if settings.warm_workers_per_node else None


QUIET_S = 10.0
_CHANGING = (DeploymentStatus.DEPLOYING, DeploymentStatus.DELETING)


def keep_warm(settings: Settings) -> None:
    """Starts the pool if needed and asks it to top every node up (without waiting), while the cluster is quiet."""
    name = pool_name(settings)
    if name is None:
        return
    with session_scope(settings.database_url) as session:
        busy = session.scalar(
            select(
                exists().where(TrainingJob.status.in_(JOB_ACTIVE))
                | exists().where(TuningRun.status.in_(JOB_ACTIVE))
                | exists().where(Deployment.status.in_(_CHANGING))
            )
        )
        ends = [session.scalar(select(func.max(model.finished_at))) for model in (TrainingJob, TuningRun)]
    last_end = max((end for end in ends if end is not None), default=None)
    if busy or last_end is None or utcnow() - last_end < dt.timedelta(seconds=QUIET_S):
        return
    warm_pool.fill(name, _pool_env(settings), settings.warm_workers_per_node)
