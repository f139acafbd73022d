"""A job's Ray Train workers, started before its driver imports torch and the rest.

Ray gives every actor a fresh process, and a Train worker's start (the process, Ray, Train's worker modules) takes
seconds. Train asks for its workers only once the driver has imported torch, Ray Train, pandas and the database
layer and loaded the data, so on its own the workers' start-up follows all of that. The job's launcher
(`train_jobs.launch`) starts them first, from the plan the scheduler placed, so their start-up runs beside the
driver's; the driver's worker group (`train_jobs.trainer.DriverWorkerGroup`) then takes them over, once, when
Train asks for exactly that group. A restart after a failure starts fresh workers as Train always does.

This module imports only Ray and Train's worker class (no torch): it runs before anything heavy.
"""

from __future__ import annotations

from dataclasses import dataclass

import ray
from ray.actor import ActorHandle
from ray.train.v2._internal.execution.worker_group import WorkerGroup
from ray.train.v2._internal.util import bundle_to_remote_args
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from train_jobs.job_config import WorkerPlan

# Ray Train's default (ScalingConfig.placement_strategy).
PLACEMENT_STRATEGY = "PACK"


@dataclass
class _Started:
    plan: WorkerPlan
    group: PlacementGroup
    actors: list[ActorHandle]
    group_taken: bool = False


_started: _Started | None = None


def start(plan: WorkerPlan) -> PlacementGroup:
    """Reserves the plan's placement group and starts one Train worker actor per bundle, without waiting."""
    global _started
    group = placement_group(
        bundles=plan.bundles(), strategy=PLACEMENT_STRATEGY, bundle_label_selector=plan.bundle_label_selector()
    )
    actor_cls = ray.remote(
        runtime_env=WorkerGroup._get_worker_runtime_env({}), **bundle_to_remote_args(plan.resources)
    )(WorkerGroup._worker_cls)
    actors = [
        actor_cls.options(
            scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=group, placement_group_bundle_index=i)
        ).remote()
        for i in range(plan.num_workers)
    ]
    for actor in actors:  # runs before anything Train sends them: a caller's actor calls run in order
        actor.execute.options(name="execute.import_torch").remote(import_torch, compiler=not plan.resources.get("GPU"))
    _started = _Started(plan, group, actors)
    return group


def import_torch(*, compiler: bool) -> None:
    """What every worker imports before its first step, done while the driver is still busy: torch (Train's torch
    backend loads it) and its compiler stack (torch.optim's first optimizer loads it: 800 modules, over a second).
    GPU workers leave the compiler stack to their loop: importing it could initialise CUDA before Train has set
    the devices a worker sees."""
    import torch  # noqa: F401

    if compiler:
        import torch._dynamo  # noqa: F401


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


def take_workers(group: PlacementGroup, num_workers: int, resources: dict[str, float]) -> list[ActorHandle] | None:
    """The started workers, in bundle order, if Train asks for all of them in their placement group (once)."""
    global _started
    if _started is None or not _started.group_taken:
        return None
    started, _started = _started, None
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
    for actor in _started.actors:
        ray.kill(actor)
    remove_placement_group(_started.group)
    _started = None
