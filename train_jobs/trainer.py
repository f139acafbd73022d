"""The TorchTrainer every platform run uses (jobs and tuning trials), without the parts of Ray Train's default
set-up a platform run does not need. Each one is a fresh process on the path to the first metric, and on a small
node their start-ups compete with the training workers' own.

- Ray Datasets: Train always sets up a `DatasetManager` actor (and Ray Data's import in every worker). Platform
  loops feed tensors from the object store, never Ray Datasets, so a run without datasets skips it.
- The placement-group cleaner: a detached actor that polls the controller's liveness (through the dashboard, every
  second) to remove the workers' placement group if the controller dies. A job's Train run lives in the job's own
  driver, and Ray removes a job's placement groups when its driver exits, so a job does without it. A tuning trial
  keeps it: its Train run ends inside a longer-lived Tune driver, whose other trials would wait on a leaked group.
- The controller actor: Train runs its controller in an actor of its own, a process that starts and imports torch
  before any worker is asked for. A job's driver does nothing else while its run goes on, so a job runs the
  controller in the driver itself. The controller and the driver share their fate either way (the actor is owned by
  the driver); only the hand-back of `ray.train.get_all_reported_checkpoints()`, which no platform loop calls, needs
  the controller to be an actor. A tuning trial keeps the actor: its Train run is one of several in the Tune driver.
- Preferred nodes that died: the scheduler's node preference travels as a label selector, which Ray applies as a
  hard constraint to every worker group Train starts, restarts after a failure included. A preferred node that is
  gone would leave the restarted group waiting for it until the run fails, so a job's worker group whose preferred
  nodes are not all alive drops the preference and lets Ray place the workers.

- Workers started with the job: a job launched by `train_jobs.launch` started its workers (and their placement
  group) before its driver's imports (`train_jobs.prestart`), or took warm ones from the platform's pool
  (`train_jobs.warm_pool`), and Train's synchronization actor. The first worker group Train asks for takes those
  over when it is exactly the planned one; any other group, and every restart, starts fresh ones as Train does.

These rely on Train V2's internals (Ray 2.60): `_create_default_callbacks`, `_initialize_and_run_controller`,
`TrainController.worker_group_cls`, `WorkerGroup._init_train_context_on_workers`,
`WorkerGroup._create_placement_group`, `WorkerGroup._create_workers` (with `_assign_worker_ranks`),
`WorkerGroup._start_impl` creating its `SynchronizationActor` by its module's name for it,
`WorkerGroup._worker_cls` and `WorkerGroup._get_worker_runtime_env`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import ray
from ray.exceptions import RayActorError
from ray.train import Result
from ray.train.torch import TorchTrainer
from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback
from ray.train.v2._internal.exceptions import WorkerGroupStartupFailedError
from ray.train.v2._internal.execution.controller import TrainController
from ray.train.v2._internal.execution.worker_group import Worker, WorkerGroup, WorkerGroupContext
from ray.train.v2._internal.execution.worker_group import worker_group as train_worker_group
from ray.train.v2._internal.execution.worker_group.placement_group_handle import DefaultPlacementGroupHandle
from ray.util.placement_group import PlacementGroup

from app.services.training import placement
from train_jobs import prestart


class PlatformTorchTrainer(TorchTrainer):
    def __init__(self, *args: Any, run_owns_driver: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_owns_driver = run_owns_driver

    def _create_default_callbacks(self) -> list[Any]:
        unneeded: tuple[type, ...] = () if self.datasets else (DatasetsCallback,)
        if self.run_owns_driver:
            unneeded += (PlacementGroupCleanerCallback,)
        return [c for c in super()._create_default_callbacks() if not isinstance(c, unneeded)]

    def _initialize_and_run_controller(self, **controller_init_kwargs: Any) -> Result:
        if not self.run_owns_driver:
            return super()._initialize_and_run_controller(**controller_init_kwargs)
        controller = DriverController(**controller_init_kwargs)
        asyncio.run(controller.run())
        return controller.get_result()


class DriverWorkerGroup(WorkerGroup):
    """Train's worker group, handing its workers no controller actor (there is none: the driver is the
    controller), dropping a node preference that names a node no longer alive, and taking over the workers and
    the synchronization actor started with the job (`train_jobs.prestart`) when it asks for exactly those."""

    def _start_impl(self, worker_group_state_builder: Any) -> None:
        # Train makes its synchronization actor inline, from its module's name for the class.
        train_sync_actor = train_worker_group.SynchronizationActor
        train_worker_group.SynchronizationActor = prestart.StartedSyncActor(train_sync_actor)
        try:
            super()._start_impl(worker_group_state_builder)
        finally:
            train_worker_group.SynchronizationActor = train_sync_actor

    def _create_placement_group(self, scaling_config: Any, worker_group_context: WorkerGroupContext) -> Any:
        preferred = placement.selected_nodes(worker_group_context.label_selector)
        alive = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        if preferred and not preferred <= alive:
            gone = ", ".join(sorted(node[:8] for node in preferred - alive))
            print(f"Preferred node(s) {gone} no longer alive: Ray places the workers.", flush=True)
            worker_group_context = dataclasses.replace(worker_group_context, label_selector=None)
        started = prestart.take_placement_group(
            [worker_group_context.resources_per_worker] * worker_group_context.num_workers,
            worker_group_context.placement_strategy,
            worker_group_context.label_selector,
        )
        if started is not None:
            return DefaultPlacementGroupHandle(started)
        return super()._create_placement_group(scaling_config, worker_group_context)

    def _create_workers(
        self,
        num_workers: int,
        placement_group: PlacementGroup,
        resources_per_worker: dict[str, float],
        placement_group_bundle_indices: list[int] | None = None,
        starting_world_rank: int = 0,
        world_size: int | None = None,
        replica_group_size: int | None = None,
    ) -> list[Worker]:
        actors = None
        if placement_group_bundle_indices is None and starting_world_rank == 0 and replica_group_size is None:
            actors = prestart.take_workers(placement_group, num_workers, resources_per_worker)
        if actors is None:
            return super()._create_workers(
                num_workers,
                placement_group,
                resources_per_worker,
                placement_group_bundle_indices,
                starting_world_rank,
                world_size,
                replica_group_size,
            )
        print(f"Taking over the {len(actors)} worker(s) started with the job.", flush=True)
        try:  # as Train's own start: the workers' metadata, then ranks
            metadata = ray.get([actor.get_metadata.remote() for actor in actors])
        except RayActorError as e:
            for actor in actors:
                ray.kill(actor)
            raise WorkerGroupStartupFailedError(f"A prestarted worker failed to start: {e}") from e
        workers = [
            Worker(actor, meta, resources_per_worker, placement_group_bundle_index=i)
            for i, (actor, meta) in enumerate(zip(actors, metadata, strict=True))
        ]
        return WorkerGroup._assign_worker_ranks(workers, starting_world_rank, world_size, replica_group_size)

    def _init_train_context_on_workers(
        self, workers: list[Any], sync_actor: Any, train_context_args: dict[str, list[Any]]
    ) -> None:
        ray.get(
            [
                worker.actor.init_train_context.remote(
                    train_run_context=self._train_run_context,
                    distributed_context=worker.distributed_context,
                    synchronization_actor=sync_actor,
                    storage_context=self._storage_context,
                    worker_callbacks=self._worker_callbacks_to_propagate,
                    controller_actor=None,
                    **{arg: values[i] for arg, values in train_context_args.items()},
                )
                for i, worker in enumerate(workers)
            ]
        )
        self._decorate_worker_log_file_paths(workers)


class DriverController(TrainController):
    worker_group_cls = DriverWorkerGroup
