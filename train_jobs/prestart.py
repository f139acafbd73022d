"""A job's Ray Train workers, started before its driver imports torch and the rest.

Ray gives every actor a fresh process, and a Train worker's start (the process, Ray, Train's worker modules) takes
seconds. Train asks for its workers only once the driver has imported torch, Ray Train, pandas and the database
layer and loaded the data, so on its own the workers' start-up follows all of that. The job's launcher
(`train_jobs.launch`) starts them first, from the plan the scheduler placed, so their start-up runs beside the
driver's; the driver's worker group (`train_jobs.trainer.DriverWorkerGroup`) then takes them over, once, when
Train asks for exactly that group. A restart after a failure starts fresh workers as Train always does.

Train's synchronization actor (the workers' barrier, which their first report waits for) is one more fresh process
that Train starts with the group; the launcher starts it first too, and the group's start takes it over.

Where the platform keeps warm workers (`train_jobs.warm_pool`), the launcher takes those instead: already started
and imported, they are ready before the driver is.

This module imports only Ray and Train's worker class (no torch): it runs before anything heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray
from ray._private.ray_constants import env_float
from ray._raylet import RAY_NODE_ID_KEY
from ray.actor import ActorHandle
from ray.train.v2._internal.constants import (
    COLLECTIVE_TIMEOUT_S_ENV_VAR,
    COLLECTIVE_WARN_INTERVAL_S_ENV_VAR,
    DEFAULT_COLLECTIVE_TIMEOUT_S,
    DEFAULT_COLLECTIVE_WARN_INTERVAL_S,
)
from ray.train.v2._internal.execution.checkpoint.sync_actor import SynchronizationActor
from ray.train.v2._internal.execution.worker_group import WorkerGroup
from ray.train.v2._internal.util import bundle_to_remote_args
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from app.contracts.train_config import WorkerPlan
from train_jobs import warm_pool

# Ray Train's default (ScalingConfig.placement_strategy).
PLACEMENT_STRATEGY = "PACK"


@dataclass
class _Started:
    plan: WorkerPlan
    group: PlacementGroup
    actors: list[ActorHandle]
    sync_actor: ActorHandle | None  # until Train takes it
    sync_actor_args: tuple[dict[str, Any], dict[str, Any]]  # its options and constructor arguments
    group_taken: bool = False


_started: _Started | None = None


def start(plan: WorkerPlan) -> PlacementGroup:
    """Reserves the plan's placement group and gets one Train worker per bundle without waiting for them: a warm
    one from the platform's pool where it has one on the bundle's node (`train_jobs.warm_pool`), else a fresh
    actor in the bundle, which imports torch first."""
    global _started
    sync_options, sync_kwargs = _sync_actor_args()
    sync_actor = SynchronizationActor.options(**sync_options).remote(**sync_kwargs)
    group = placement_group(
        bundles=plan.bundles(), strategy=PLACEMENT_STRATEGY, bundle_label_selector=plan.bundle_label_selector()
    )
    try:
        pooled = warm_pool.take(group, plan)
    except Exception as e:  # the pool is a head start: fresh workers do without it
        print(f"No warm workers ({type(e).__name__}: {e}); starting fresh ones.", flush=True)
        pooled = [None] * plan.num_workers
    if warm := sum(actor is not None for actor in pooled):
        print(f"Took {warm} warm worker(s) from the pool.", flush=True)
    actor_cls = ray.remote(
        runtime_env=WorkerGroup._get_worker_runtime_env({}), **bundle_to_remote_args(plan.resources)
    )(WorkerGroup._worker_cls)
    actors = [
        actor or _start_fresh(actor_cls, group, i, gpu=bool(plan.resources.get("GPU")))
        for i, actor in enumerate(pooled)
    ]
    _started = _Started(plan, group, actors, sync_actor, (sync_options, sync_kwargs))
    return group


def _sync_actor_args() -> tuple[dict[str, Any], dict[str, Any]]:
    """The options and arguments Train's worker group gives its synchronization actor (on the driver's node)."""
    options = {"label_selector": {RAY_NODE_ID_KEY: ray.get_runtime_context().get_node_id()}}
    kwargs = {
        "timeout_s": env_float(COLLECTIVE_TIMEOUT_S_ENV_VAR, DEFAULT_COLLECTIVE_TIMEOUT_S),
        "warn_interval_s": env_float(COLLECTIVE_WARN_INTERVAL_S_ENV_VAR, DEFAULT_COLLECTIVE_WARN_INTERVAL_S),
    }
    return options, kwargs


def _start_fresh(actor_cls: Any, group: PlacementGroup, bundle: int, *, gpu: bool) -> ActorHandle:
    actor = actor_cls.options(
        scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=group, placement_group_bundle_index=bundle)
    ).remote()
    # runs before anything Train sends it: a caller's actor calls run in order
    actor.execute.options(name="execute.import_torch").remote(warm_pool.import_torch, compiler=not gpu)
    return actor


def take_placement_group(
    bundles: list[dict[str, float]], strategy: str, bundle_label_selector: list[dict[str, str]] | None
) -> PlacementGroup | None:
    """The started placement group if Train asks for exactly it (once), else None. A group Train asks for
    otherwise (e.g. without a preferred node that died meanwhile) releases what was started, whose reservation
    could otherwise keep Train's own group from fitting."""
    if _started is None or _started.group_taken:
        return None
    plan = _started.plan
    wanted = (plan.bundles(), PLACEMENT_STRATEGY, plan.bundle_label_selector())
    if (bundles, strategy, bundle_label_selector or None) != wanted:
        release()
        return None
    _started.group_taken = True
    return _started.group


def take_sync_actor(options: dict[str, Any], kwargs: dict[str, Any]) -> ActorHandle | None:
    """The started synchronization actor if Train asks for one made exactly so (once); otherwise it is stopped."""
    if _started is None or _started.sync_actor is None:
        return None
    actor, _started.sync_actor = _started.sync_actor, None
    if (options, kwargs) == _started.sync_actor_args:
        return actor
    ray.kill(actor)
    return None


class StartedSyncActor:
    """Stands in for Train's `SynchronizationActor` class while the driver's worker group starts
    (`train_jobs.trainer.DriverWorkerGroup`): Train's `.options(...).remote(...)` gets the actor started with the
    job when it asks for one made the same way, else a new one as Train would make it."""

    def __init__(self, actor_cls: Any) -> None:
        self._actor_cls = actor_cls
        self._options: dict[str, Any] = {}

    def options(self, **options: Any) -> StartedSyncActor:
        self._options = options
        return self

    def remote(self, **kwargs: Any) -> ActorHandle:
        started = take_sync_actor(self._options, kwargs)
        return started if started is not None else self._actor_cls.options(**self._options).remote(**kwargs)


def take_workers(group: PlacementGroup, num_workers: int, resources: dict[str, float]) -> list[ActorHandle] | None:
    """The started workers, in bundle order, if Train asks for all of them in their placement group (once)."""
    global _started
    if _started is None or not _started.group_taken:
        return None
    started, _started = _started, None
    if started.sync_actor is not None:  # Train made its own
        ray.kill(started.sync_actor)
    if started.group.id == group.id and (num_workers, resources) == (started.plan.num_workers, started.plan.resources):
        return started.actors
    for actor in started.actors:
        ray.kill(actor)
    return None


def release() -> None:
    """Stops what was started and not taken over."""
    global _started
    if _started is None:
        return
    for actor in [*_started.actors, _started.sync_actor]:
        if actor is not None:
            ray.kill(actor)
    remove_placement_group(_started.group)
    _started = None
