"""Where a starting job's workers should run: nodes scored by free GPUs, free memory and recent worker failures;
and whether the cluster could host them at all (`never_fits`, checked at creation and by the scheduler).

The scheduler picks the best-scoring nodes that can host all the job's workers right now and the job's driver
gives them to Ray Train as a `label_selector` on Ray's built-in `ray.io/node-id` label. Ray 2.60's Train V2
`ScalingConfig` offers no soft node affinity (its placement group takes a strategy and per-bundle label
selectors only), so the preference is made soft here instead: a selector is given only when such a set of nodes
exists at start time, and it never narrows the choice to nodes that lack room; otherwise Ray places the workers
itself. A retry scores the nodes again.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.cluster.capacity import NodeState
from app.contracts.search_space import SearchConfig
from app.contracts.train_config import TrainConfig
from app.core.config import Settings
from app.db.models import TrainingJob
from app.db.session import session_scope

NODE_ID_LABEL = "ray.io/node-id"
_EPS = 1e-9
# Weights: a free GPU outweighs memory; one recent worker failure outweighs 20 GiB of free memory.
GPU_WEIGHT = 10.0
MEMORY_WEIGHT_PER_GIB = 1.0
FAILURE_WEIGHT = 20.0


@dataclass(frozen=True)
class Preference:
    node_ids: list[str]
    scores: dict[str, float]

    def describe(self) -> str:
        return "Workers placed on the best-scoring nodes: " + ", ".join(
            f"{node[:8]} (score {self.scores[node]:.1f})" for node in self.node_ids
        )


def score(node: NodeState, *, needs_gpu: bool) -> float:
    """Higher is better. A GPU job wants free GPUs; a CPU job leaves them to GPU jobs, so they count against."""
    gpus = node.free.get("GPU", 0.0) * GPU_WEIGHT
    memory = node.free.get("memory", 0.0) / 2**30 * MEMORY_WEIGHT_PER_GIB
    return (gpus if needs_gpu else -gpus) + memory - node.failures * FAILURE_WEIGHT


def prefer(config: TrainConfig, nodes: list[NodeState]) -> Preference | None:
    """Nodes whose free resources host all the job's workers now, or None if none do: the best-scoring node that
    hosts them all (DDP over one node talks least), else the best-scoring nodes in turn until they fit."""
    per_worker = config.worker_resources()
    needs_gpu = config.gpus_per_worker > 0
    scores = {n.node_id: score(n, needs_gpu=needs_gpu) for n in nodes}
    ranked = sorted(nodes, key=lambda n: (-scores[n.node_id], n.node_id))
    for node in ranked:
        if _count_fitting(per_worker, node.free) >= config.num_workers:
            return Preference([node.node_id], {node.node_id: scores[node.node_id]})
    chosen, hosted = [], 0
    for node in ranked:
        fits = _count_fitting(per_worker, node.free)
        if fits == 0:
            continue
        chosen.append(node.node_id)
        hosted += fits
        if hosted >= config.num_workers:
            return Preference(chosen, {n: scores[n] for n in chosen})
    return None


def take(nodes: list[NodeState], config: TrainConfig, preference: Preference) -> list[NodeState]:
    """The nodes' free resources once the job's workers sit on its preferred nodes (best first)."""
    per_worker = config.worker_resources()
    left = config.num_workers
    taken: dict[str, dict[str, float]] = {}
    for node_id in preference.node_ids:
        node = next(n for n in nodes if n.node_id == node_id)
        count = min(left, _count_fitting(per_worker, node.free))
        taken[node_id] = {k: node.free.get(k, 0.0) - v * count for k, v in per_worker.items()}
        left -= count
    return [
        NodeState(n.node_id, n.total, {**n.free, **taken.get(n.node_id, {})}, n.failures) if n.node_id in taken else n
        for n in nodes
    ]


def label_selector(node_ids: list[str] | None) -> dict[str, str] | None:
    """Ray Train's `ScalingConfig.label_selector` for the preferred nodes."""
    return {NODE_ID_LABEL: f"in({','.join(node_ids)})"} if node_ids else None


def selected_nodes(selectors: list[dict[str, str]] | None) -> set[str]:
    """The node ids that Ray Train's per-worker label selectors (made by `label_selector`) name."""
    nodes: set[str] = set()
    for selector in selectors or []:
        value = selector.get(NODE_ID_LABEL, "")
        if value.startswith("in(") and value.endswith(")"):
            nodes |= set(value[3:-1].split(","))
    return nodes


def job_label_selector(settings: Settings, job_id: int) -> dict[str, str] | None:
    """The label selector of the nodes the scheduler chose for the job's current attempt (None: Ray decides)."""
    with session_scope(settings.database_url) as session:
        return label_selector(session.get_one(TrainingJob, job_id).preferred_nodes)


def _count_fitting(per_worker: dict[str, float], free: dict[str, float]) -> int:
    counts = [int((free.get(k, 0.0) + _EPS) // v) for k, v in per_worker.items() if v > 0]
    return min(counts) if counts else 0


def never_fits(config: TrainConfig, nodes: list[dict[str, float]], copies: int = 1) -> str | None:
    """Why no placement of the workers (of `copies` such jobs at once) on these nodes exists, or None."""
    per_worker = config.worker_resources()
    workers = config.num_workers * copies
    hosts = [_count_fitting(per_worker, node) for node in nodes]
    if sum(hosts) >= workers:
        return None
    biggest = {key: max((n.get(key, 0.0) for n in nodes), default=0.0) for key in per_worker}
    if any(per_worker[k] > biggest[k] + _EPS for k in per_worker):
        short = ", ".join(f"{k} {per_worker[k]:g} (largest node has {biggest[k]:g})" for k in per_worker)
        return f"One worker needs {short}: no node of the cluster is that large. Ask for less per worker."
    if copies > 1:
        return (
            f"{copies} trials at once need {workers} workers of {_fmt(per_worker)} but the whole cluster holds at "
            f"most {sum(hosts)}. Lower max_concurrent_trials, or use fewer or smaller workers per trial."
        )
    return (
        f"The job needs {workers} workers of {_fmt(per_worker)} but the whole cluster holds at most "
        f"{sum(hosts)}. Use fewer workers or smaller ones."
    )


def concurrent_trials(search: SearchConfig) -> int:
    return min(search.max_concurrent_trials, search.num_samples)


def _fmt(resources: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in resources.items())
