"""What the Ray cluster offers: each alive node's resources, what is free right now, and recent worker failures."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.core.config import Settings
from app.core.errors import AipError, ErrorCode

log = logging.getLogger(__name__)

# Ray's bookkeeping resources that are not capacity (node:IP, accelerator_type:..., object_store_memory).
_CAPACITY_KEYS = ("CPU", "GPU", "memory")
# How a training worker ended that counts against its node: its process or its node died under it. A worker Ray
# Train shut down ends RAY_KILL; one of a stopped job dies with "Worker exit type: INTENDED_SYSTEM_EXIT" (its
# placement group was removed), which is no fault of the node.
_FAILED_DEATHS = ("WORKER_DIED", "NODE_DIED")
_INTENDED_EXIT = "INTENDED_"


@dataclass(frozen=True)
class NodeState:
    node_id: str
    total: dict[str, float]
    free: dict[str, float]
    failures: int = 0  # training workers that died on the node in jobs of the last `node_failure_window_s`


@dataclass(frozen=True)
class Capacity:
    nodes: list[dict[str, float]]  # total resources of each alive node
    available: dict[str, float]  # free now, summed over the cluster
    states: list[NodeState] = field(default_factory=list)  # per node: id, total, free now, recent failures

    @property
    def total(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for node in self.nodes:
            for key, value in node.items():
                total[key] = total.get(key, 0.0) + value
        return total


def read(settings: Settings, *, with_states: bool = False) -> Capacity:
    """Reads the cluster's resources (connecting this process to the platform's cluster if needed); with
    `with_states`, also each node's free resources and recent worker failures (for placement)."""
    import ray

    try:
        if not ray.is_initialized():
            ray.init(address=settings.gcs_address, logging_level=logging.ERROR, log_to_driver=False)
        alive = [node for node in ray.nodes() if node.get("Alive")]
        nodes = [_capacity(node["Resources"]) for node in alive]
        available = _capacity(ray.available_resources())
    except Exception as e:  # connection refused, GCS gone: the caller decides whether to wait
        raise AipError(ErrorCode.UNAVAILABLE, f"Cannot read the Ray cluster's resources: {e}") from e
    states = _states(settings, alive, nodes) if with_states else []
    return Capacity(nodes=nodes, available=available, states=states)


def _capacity(resources: dict) -> dict[str, float]:
    return {k: float(v) for k, v in resources.items() if k in _CAPACITY_KEYS}


def _states(settings: Settings, alive: list[dict], totals: list[dict[str, float]]) -> list[NodeState]:
    """Per-node view; on any error an empty list (placement is a preference: the job runs without one)."""
    from ray._private.state import available_resources_per_node  # what `ray status` reads; no public API yet

    try:
        free = available_resources_per_node()
        failures = _worker_failures(settings)
    except Exception as e:
        log.warning("Cannot read per-node state; jobs start without a node preference: %s", e)
        return []
    return [
        NodeState(node["NodeID"], total, _capacity(free.get(node["NodeID"], {})), failures.get(node["NodeID"], 0))
        for node, total in zip(alive, totals, strict=True)
    ]


def _worker_failures(settings: Settings) -> dict[str, int]:
    """Training workers that died on each node (Ray's actor table records the node each one ran on) in jobs that
    ran within the failure window."""
    from ray.util import state

    address = settings.dashboard_url  # explicit: with several Ray instances on a host Ray will not guess
    return recent_failures(
        state.list_actors(
            address=address,
            filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "DEAD")],
            limit=10_000,
            detail=True,
        ),
        state.list_jobs(address=address, limit=10_000),
        since_ms=(time.time() - settings.node_failure_window_s) * 1000,
    )


def recent_failures(dead_workers: Iterable[Any], jobs: Iterable[Any], *, since_ms: float) -> dict[str, int]:
    """Failures per node among `dead_workers`, counting only those of jobs still running or ended after
    `since_ms`: the actor table keeps no end time per actor, so a worker's failure ages with its job. A node that
    was repaired stops paying for its old failures."""
    recent = {job.job_id for job in jobs if job.job_id and (not job.end_time or job.end_time >= since_ms)}
    counts: dict[str, int] = {}
    for actor in dead_workers:
        if actor.node_id and actor.job_id in recent and counts_as_failure(actor.death_cause or {}):
            counts[actor.node_id] = counts.get(actor.node_id, 0) + 1
    return counts


def counts_as_failure(death_cause: dict) -> bool:
    if death_cause.get("oom_context"):  # killed by Ray's memory monitor
        return True
    context = death_cause.get("actor_died_error_context") or {}
    return context.get("reason") in _FAILED_DEATHS and _INTENDED_EXIT not in (context.get("error_message") or "")
