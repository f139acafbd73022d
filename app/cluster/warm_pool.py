"""Filling the pool of warm Train workers from the control plane without importing it: the running pool is a
named actor whose methods are called through its handle; a missing one is started by a Ray task, in a worker
process, which imports the pool's module (`app.contracts.warm_pool.MODULE`) there."""

from __future__ import annotations

import importlib

from app.contracts import warm_pool

START_TIMEOUT_S = 120.0


def fill(name: str, env_vars: dict[str, str], per_node: int) -> None:
    """Asks the pool `name` to top every node up to `per_node` warm workers (without waiting for them); starts the
    pool first, on this node, if it is not running, and waits for that."""
    import ray  # as the other adapters do: the control plane imports without a cluster

    try:
        pool = ray.get_actor(name, namespace=warm_pool.NAMESPACE)
    except ValueError:  # not running yet
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # The pool stays beside the control plane (it owns its workers, which die with it): start it from here.
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
        start = ray.remote(num_cpus=0)(_start).options(scheduling_strategy=here)
        ray.get(start.remote(name, env_vars, per_node), timeout=START_TIMEOUT_S)
        return
    pool.fill.remote(per_node)


def _start(name: str, env_vars: dict[str, str], per_node: int) -> None:
    """Runs in a Ray worker: starts the pool on the worker's node and waits until it took the fill request."""
    import ray

    pool = importlib.import_module(warm_pool.MODULE).ensure(name, env_vars)
    ray.get(pool.fill.remote(per_node))
