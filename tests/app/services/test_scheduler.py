"""The queue's decisions: fit, priority then FIFO, per-user GPU limit, and jobs that can never fit."""

from __future__ import annotations

from app.services.scheduler import Candidate, free_resources, never_fits, plan
from train_jobs.job_config import TrainConfig

NODES = [{"CPU": 4.0, "GPU": 1.0, "memory": 8e9}, {"CPU": 2.0, "memory": 4e9}]


def job(job_id: int, owner: int = 1, **resources: float) -> Candidate:
    return Candidate(job_id, owner, TrainConfig(target_column="y", **resources))


def test_starts_in_queue_order_while_resources_last() -> None:
    queue = [job(1, num_workers=2), job(2, num_workers=2), job(3, num_workers=1)]
    decided = plan(queue, free={"CPU": 4.0}, nodes=NODES, gpus_in_use={}, max_gpus_per_user=None)
    assert decided.start == [1, 2]
    assert "CPU 1 (0 free)" in decided.waiting[3]


def test_the_head_of_the_queue_blocks_smaller_jobs_behind_it() -> None:
    queue = [job(1, num_workers=3), job(2, num_workers=1)]
    decided = plan(queue, free={"CPU": 2.0}, nodes=NODES, gpus_in_use={}, max_gpus_per_user=None)
    assert decided.start == []
    assert "needs CPU 3" in decided.waiting[1]
    assert "behind job 1" in decided.waiting[2]


def test_gpu_limit_holds_back_only_that_users_jobs() -> None:
    queue = [job(1, owner=7, num_workers=1, gpus_per_worker=1), job(2, owner=8, num_workers=1)]
    decided = plan(queue, free={"CPU": 6.0, "GPU": 1.0}, nodes=NODES, gpus_in_use={7: 1.0}, max_gpus_per_user=1.0)
    assert decided.start == [2]
    assert "use 1 GPUs of your limit of 1" in decided.waiting[1]


def test_jobs_that_can_never_fit_are_refused_with_the_reason() -> None:
    too_many_gpus = TrainConfig(target_column="y", num_workers=1, gpus_per_worker=2)
    assert "GPU 2 (largest node has 1)" in (never_fits(too_many_gpus, NODES) or "")
    too_many_workers = TrainConfig(target_column="y", num_workers=4, cpus_per_worker=2)
    assert "at most 3" in (never_fits(too_many_workers, NODES) or "")
    spread = TrainConfig(target_column="y", num_workers=3, cpus_per_worker=2)  # 2 on node 1, 1 on node 2
    assert never_fits(spread, NODES) is None
    decided = plan(
        [Candidate(1, 1, too_many_gpus), job(2)], free={"CPU": 6.0}, nodes=NODES, gpus_in_use={}, max_gpus_per_user=None
    )
    assert list(decided.refused) == [1]
    assert decided.start == [2]  # a refused job does not block the queue


def test_free_resources_count_submitted_jobs_whose_workers_have_not_started() -> None:
    # Ray still shows 6 CPUs free, but a job holding 4 was just submitted.
    free = free_resources({"CPU": 6.0}, {"CPU": 6.0}, {"CPU": 4.0})
    assert free == {"CPU": 2.0}
    # Once its workers run, Ray's own number is the smaller one (it also sees other users of the cluster).
    assert free_resources({"CPU": 1.0}, {"CPU": 6.0}, {"CPU": 4.0}) == {"CPU": 1.0}
