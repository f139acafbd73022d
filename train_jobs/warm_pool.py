"""Warm Train workers: Ray Train worker actors started and imported before any job asks for them.

A fresh Train worker takes seconds to start (a process, Ray, Ray Train's worker modules, torch and its compiler
stack), and a job's start-up waits on its workers' start. Each node keeps a few such workers ready in a pool (one
named, detached actor per platform, which owns them). A job's launcher (`train_jobs.prestart`) reserves its
placement group as planned, then takes a warm worker on the node of each bundle; the bundle keeps the CPUs
reserved, the warm worker (which holds no resources of its own) uses them. The platform refills the pool only while
the cluster is quiet (`app.services.training.warm_workers`), through the pool's handle, and starts it from a Ray task
(`app.cluster.warm_pool`): the control plane names this module but never imports it.

A taken worker becomes the job's:
- its output goes to the job's log: Ray's log monitor routes a worker's lines to the job named by the last
  `:job_id:` marker in its output (Ray's own workers print it), so the worker prints the job's;
- it uses as many threads as a fresh worker with its CPUs would (Ray sets that from the CPUs an actor holds);
- it dies with the job: Train kills its workers when it is done or restarts them, and the pool kills a taken worker
  once the job's placement group is gone (Ray removes a job's groups when its driver exits, however it exits).

Only CPU workers are pooled: a GPU worker's devices are set from the GPUs its actor holds.
This module imports only Ray and Train's worker class (no torch): the launcher uses it before anything heavy.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from dataclasses import dataclass

import ray
from ray._private.ray_constants import LOG_PREFIX_ACTOR_NAME, LOG_PREFIX_JOB_ID
from ray.actor import ActorHandle
from ray.train.v2._internal.execution.worker_group import WorkerGroup
from ray.util.placement_group import PlacementGroup, placement_group_table
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from app.contracts.train_config import WorkerPlan
from app.contracts.warm_pool import NAMESPACE

# Resources a warm worker can stand in for: its bundle holds them. GPUs and custom resources need the actor's own.
POOLABLE_RESOURCES = frozenset({"CPU", "memory"})
REAP_INTERVAL_S = 1.0
PLACEMENT_WAIT_S = 1.0  # the scheduler placed the job where its group fits: this is a guard, not a wait
TAKE_TIMEOUT_S = 10.0


def import_torch(*, compiler: bool) -> int:
    """What every worker imports before its first step: torch (Train's torch backend loads it) and its compiler
    stack (torch.optim's first optimizer loads it: 800 modules, over a second). GPU workers leave the compiler
    stack to their loop: importing it could initialise CUDA before Train has set the devices a worker sees.
    Returns the worker's PID."""
    import torch  # noqa: F401

    if compiler:
        import torch._dynamo  # noqa: F401
    return os.getpid()


# What a worker imports later in its run: the loops' helpers, and the database layer its background writers
# (status, usage, training steps) import after the first report. Half a second of CPU per worker, which made the
# second epoch the slowest; a warm worker has it done while it waits.
PLATFORM_MODULES = (
    "train_jobs.tabular_loop",
    "app.db.session",
    "app.services.training.job_metrics",
    "app.services.training.jobs",
)


def warm_up() -> int:
    """A warm worker's imports: torch, its compiler stack and the platform's worker-side modules. Its PID."""
    import_torch(compiler=True)
    for module in PLATFORM_MODULES:
        importlib.import_module(module)
    return os.getpid()


def adopt(job_id_hex: str, cpus: float) -> None:
    """Runs on a taken worker: from now on its output is the job's, and it uses the threads its CPUs allow."""
    for stream in (sys.stdout, sys.stderr):
        stream.write(f"{LOG_PREFIX_ACTOR_NAME}{WorkerGroup._worker_cls.__name__}\n{LOG_PREFIX_JOB_ID}{job_id_hex}\n")
        stream.flush()
    threads = max(1, int(cpus))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


@dataclass
class _Warm:
    actor: ActorHandle
    warmed: ray.ObjectRef  # warm_up's result: the PID, or the actor's death
    alive: ray.ObjectRef | None = None  # the latest liveness check

    def done(self) -> bool:
        return _resolved(self.warmed)

    def dead(self) -> bool:
        """Whether its warm-up or its latest check failed; starts the next check once the latest one is in."""
        for ref in (self.warmed, self.alive):
            if ref is not None and _resolved(ref):
                try:
                    ray.get(ref)
                except ray.exceptions.RayError:
                    return True
        if self.done() and (self.alive is None or _resolved(self.alive)):
            self.alive = self.actor.__ray_ready__.remote()
        return False


def _resolved(ref: ray.ObjectRef) -> bool:
    return bool(ray.wait([ref], timeout=0)[0])


@ray.remote(num_cpus=0, max_restarts=-1)
class WarmWorkerPool:
    """Keeps warm workers per node and hands them out; kills taken ones whose job is gone."""

    def __init__(self, env_vars: dict[str, str]) -> None:
        self._worker_cls = ray.remote(
            num_cpus=0, runtime_env=WorkerGroup._get_worker_runtime_env({"env_vars": env_vars})
        )(WorkerGroup._worker_cls)
        self._idle: dict[str, list[_Warm]] = {}
        self._taken: list[tuple[ActorHandle, PlacementGroup]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._reap_loop, name="reap", daemon=True).start()

    def fill(self, per_node: int) -> None:
        """Brings every alive node with CPUs to `per_node` warm workers (fewer: the extra ones are stopped)."""
        nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"] and node["Resources"].get("CPU")}
        with self._lock:
            for node in set(self._idle) | nodes:
                live = [w for w in self._idle.get(node, []) if not w.dead()]
                keep = live[:per_node] if node in nodes else []
                for extra in live[len(keep) :]:
                    ray.kill(extra.actor)
                keep += [self._start(node) for _ in range(per_node - len(keep))] if node in nodes else []
                self._idle[node] = keep

    def take(self, nodes: list[str], group: PlacementGroup) -> list[ActorHandle | None]:
        """One warm worker on each of `nodes` (a node per bundle of the job's group), None where there is none.
        Warmed-up workers go first; one still importing is still ahead of a fresh one."""
        taken: list[ActorHandle | None] = []
        with self._lock:
            for node in nodes:
                idle = [w for w in self._idle.get(node, []) if not w.dead()]
                idle.sort(key=lambda w: not w.done())
                worker = idle.pop(0) if idle else None
                self._idle[node] = idle
                taken.append(worker.actor if worker else None)
                if worker:
                    self._taken.append((worker.actor, group))
        return taken

    def stats(self) -> dict[str, object]:
        """Idle workers per node (their PIDs once warm, else None) and how many taken ones it watches."""
        with self._lock:
            idle = {
                node: [ray.get(w.warmed) if w.done() and not w.dead() else None for w in warm]
                for node, warm in self._idle.items()
            }
            return {"idle": idle, "taken": len(self._taken)}

    def _start(self, node: str) -> _Warm:
        actor = self._worker_cls.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False)
        ).remote()
        return _Warm(actor, actor.execute.options(name="execute.warm_up").remote(warm_up))

    def _reap_loop(self) -> None:
        while True:
            time.sleep(REAP_INTERVAL_S)
            try:
                self._reap()
            except Exception as e:  # e.g. the GCS restarting: the next pass tries again
                print(f"Checking taken warm workers failed: {e}", flush=True)

    def _reap(self) -> None:
        with self._lock:
            taken = list(self._taken)
        gone = [(actor, group) for actor, group in taken if _removed(group)]
        for actor, _ in gone:
            ray.kill(actor)  # a no-op where Train already stopped it
        with self._lock:
            self._taken = [entry for entry in self._taken if entry not in gone]


def _removed(group: PlacementGroup) -> bool:
    return placement_group_table(group).get("state", "REMOVED") == "REMOVED"


def ensure(name: str, env_vars: dict[str, str]) -> ActorHandle:
    """The platform's pool, started on this node if it is not running yet."""
    return WarmWorkerPool.options(
        name=name,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        runtime_env={"env_vars": env_vars},
        # It owns its workers, which die with it: it stays beside the control plane, which needs this node too.
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True),
    ).remote(env_vars)


def take(group: PlacementGroup, plan: WorkerPlan) -> list[ActorHandle | None]:
    """Warm workers for the plan's bundles, on their nodes, made the calling job's; None where the pool had none
    (or the plan names no pool, or asks for resources a warm worker cannot stand in for)."""
    none: list[ActorHandle | None] = [None] * plan.num_workers
    if not plan.warm_pool or not set(plan.resources) <= POOLABLE_RESOURCES:
        return none
    try:
        pool = ray.get_actor(plan.warm_pool, namespace=NAMESPACE)
    except ValueError:  # not started (yet): the platform starts it with its first reconcile pass
        return none
    if not group.wait(PLACEMENT_WAIT_S):
        return none
    bundle_nodes = placement_group_table(group)["bundles_to_node_id"]
    # On a timeout, whatever the pool handed out is stopped with this job's group.
    workers = ray.get(
        pool.take.remote([bundle_nodes[i] for i in range(plan.num_workers)], group), timeout=TAKE_TIMEOUT_S
    )
    job_id = ray.get_runtime_context().get_job_id()
    for worker in workers:
        if worker is not None:  # before anything Train sends it: a caller's actor calls run in order
            worker.execute.options(name="execute.adopt").remote(adopt, job_id, plan.resources.get("CPU", 1.0))
    return workers
