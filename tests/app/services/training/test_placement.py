"""Node scoring and the preferred nodes of a starting job, over synthetic node states."""

from __future__ import annotations

from types import SimpleNamespace

from app.cluster.capacity import NodeState, counts_as_failure, recent_failures
from app.contracts.train_config import TrainConfig
from app.services.training.placement import label_selector, prefer, score, take

GiB = float(2**30)


def node(node_id: str, cpus: float, gpus: float = 0.0, memory_gib: float = 16.0, failures: int = 0) -> NodeState:
    free = {"CPU": cpus, "GPU": gpus, "memory": memory_gib * GiB}
    return NodeState(node_id, dict(free), free, failures)


def job(**fields: float) -> TrainConfig:
    return TrainConfig(target_column="y", **fields)


def test_the_score_weighs_free_gpus_free_memory_and_failures() -> None:
    assert score(node("a", 4, gpus=2), needs_gpu=True) > score(node("b", 4), needs_gpu=True)
    assert score(node("a", 4, gpus=2), needs_gpu=False) < score(node("b", 4), needs_gpu=False)  # kept for GPU work
    assert score(node("a", 4, memory_gib=64), needs_gpu=False) > score(node("b", 4, memory_gib=8), needs_gpu=False)
    assert score(node("a", 4, failures=1), needs_gpu=False) < score(node("b", 4), needs_gpu=False)


def test_workers_prefer_the_fewest_best_nodes_that_host_them_now() -> None:
    nodes = [node("flaky", 8, memory_gib=64, failures=3), node("small", 1), node("roomy", 4, memory_gib=32)]
    preference = prefer(job(num_workers=2), nodes)
    assert preference is not None and preference.node_ids == ["roomy"]
    assert "roomy" in preference.describe() and label_selector(preference.node_ids) == {"ray.io/node-id": "in(roomy)"}
    # Five workers: no healthy node hosts them all, the failing one does; one node beats a split.
    assert prefer(job(num_workers=5), nodes).node_ids == ["flaky"]  # type: ignore[union-attr]
    # Nine workers fit no single node: the best nodes join in turn, the failing one last.
    assert prefer(job(num_workers=9), nodes).node_ids == ["roomy", "small", "flaky"]  # type: ignore[union-attr]
    assert prefer(job(num_workers=5), nodes[1:]).node_ids == ["roomy", "small"]  # type: ignore[union-attr]
    # GPU work goes where GPUs are free; nodes without room for one worker are never chosen.
    gpu_nodes = [node("cpu-only", 16, memory_gib=128), node("gpu", 4, gpus=1)]
    assert prefer(job(num_workers=1, gpus_per_worker=1), gpu_nodes).node_ids == ["gpu"]  # type: ignore[union-attr]
    # No set of nodes has room now: no preference, Ray places the workers (the job may still fit once others end).
    assert prefer(job(num_workers=3, cpus_per_worker=4), nodes[1:]) is None


def test_each_starting_job_takes_its_share_before_the_next_is_placed() -> None:
    nodes = [node("a", 4, memory_gib=32), node("b", 4)]
    first = prefer(job(num_workers=3), nodes)
    assert first is not None and first.node_ids == ["a"]
    nodes = take(nodes, job(num_workers=3), first)
    assert nodes[0].free["CPU"] == 1 and nodes[1].free["CPU"] == 4
    second = prefer(job(num_workers=2), nodes)
    assert second is not None and second.node_ids == ["b"]


def test_only_workers_that_died_under_the_node_count_as_its_failures() -> None:
    def died(reason: str, message: str) -> dict:
        return {"actor_died_error_context": {"reason": reason, "error_message": message}}

    assert counts_as_failure(
        died("WORKER_DIED", "Worker exit type: SYSTEM_ERROR Worker exit detail: killed by SIGKILL")
    )
    assert counts_as_failure(died("NODE_DIED", "The node running the actor died."))
    assert counts_as_failure(
        {"oom_context": {"error_message": "Task was killed due to the node running low on memory."}}
    )
    # Ended by Ray Train, or with a stopped job (its placement group removed): no fault of the node.
    assert not counts_as_failure(died("RAY_KILL", "The actor is dead because it was killed by `ray.kill`."))
    assert not counts_as_failure(
        died("WORKER_DIED", "Worker exit type: INTENDED_SYSTEM_EXIT Worker exit detail: Destroying")
    )


def test_a_workers_failure_counts_while_its_job_is_recent() -> None:
    crashed = {"actor_died_error_context": {"reason": "WORKER_DIED", "error_message": "killed by SIGKILL"}}
    workers = [
        SimpleNamespace(node_id="a", job_id="01", death_cause=crashed),  # a job that ended long ago
        SimpleNamespace(node_id="a", job_id="02", death_cause=crashed),  # a job that ended within the window
        SimpleNamespace(node_id="b", job_id="03", death_cause=crashed),  # a job still running
        SimpleNamespace(node_id="b", job_id="03", death_cause={}),  # shut down by Ray Train
        SimpleNamespace(node_id="c", job_id="04", death_cause=crashed),  # a job Ray no longer lists
    ]
    jobs = [
        SimpleNamespace(job_id="01", end_time=1_000),
        SimpleNamespace(job_id="02", end_time=9_000),
        SimpleNamespace(job_id="03", end_time=None),
        SimpleNamespace(job_id=None, end_time=None),  # a submission whose driver has not started
    ]
    assert recent_failures(workers, jobs, since_ms=5_000) == {"a": 1, "b": 1}
