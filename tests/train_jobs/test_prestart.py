"""Workers and Train's synchronization actor started with a job (`train_jobs.prestart`): Train's worker group takes
them over once when it asks for exactly what was started, and anything else releases them, on the shared test
cluster."""

from __future__ import annotations

import sys

import pytest
import ray
from ray.train.v2._internal.execution.checkpoint.sync_actor import SynchronizationActor
from ray.util.placement_group import placement_group_table, remove_placement_group

from app.contracts.train_config import WorkerPlan
from tests.utils.wait import wait_for
from train_jobs import prestart

RESOURCES = {"CPU": 0.5}


def test_a_worker_plan_travels_as_json() -> None:
    plan = WorkerPlan(3, {"CPU": 1.0, "GPU": 1.0}, {"ray.io/node-id": "in(a,b)"})
    assert WorkerPlan.from_json(plan.to_json()) == plan
    assert plan.bundles() == [{"CPU": 1.0, "GPU": 1.0}] * 3
    assert plan.bundle_label_selector() == [{"ray.io/node-id": "in(a,b)"}] * 3
    assert WorkerPlan(2, RESOURCES).bundle_label_selector() is None


def test_started_workers_are_taken_over_once_with_torch_imported(ray_driver: None) -> None:
    plan = WorkerPlan(2, RESOURCES)
    group = prestart.start(plan)
    try:
        assert prestart.take_workers(group, 2, RESOURCES) is None  # the group comes first
        assert prestart.take_placement_group(plan.bundles(), prestart.PLACEMENT_STRATEGY, None) == group
        assert prestart.take_placement_group(plan.bundles(), prestart.PLACEMENT_STRATEGY, None) is None
        assert group.wait(60)
        # Train's synchronization actor, asked for as Train's worker group asks for it
        sync_args = prestart._sync_actor_args()
        sync_actor = prestart.StartedSyncActor(SynchronizationActor).options(**sync_args[0]).remote(**sync_args[1])
        assert sync_actor is not None
        actors = prestart.take_workers(group, 2, RESOURCES)
        assert actors is not None and len(actors) == 2
        assert prestart.take_workers(group, 2, RESOURCES) is None
        assert prestart.take_sync_actor(*sync_args) is None  # once
        assert ray.get(sync_actor.__ray_ready__.remote(), timeout=60)
        # Train's own worker actors, in the group's bundles, which imported torch before anything else ran
        metadata = ray.get([actor.get_metadata.remote() for actor in actors], timeout=60)
        assert len({m.pid for m in metadata}) == 2
        loaded = ray.get([actor.execute.remote(lambda: "torch._dynamo" in sys.modules) for actor in actors])
        assert loaded == [True, True]
    finally:
        remove_placement_group(group)


def test_a_different_group_releases_what_was_started(ray_driver: None) -> None:
    # Planned on a node that does not exist (as if the preferred node died): Train asks without the preference.
    plan = WorkerPlan(2, RESOURCES, {"ray.io/node-id": "in(0000000000000000000000000000000000000000000000000000000)"})
    group = prestart.start(plan)
    assert prestart.take_placement_group(plan.bundles(), prestart.PLACEMENT_STRATEGY, None) is None
    wait_for(lambda: placement_group_table(group)["state"] == "REMOVED", timeout_s=30, what="the group removed")
    assert prestart.take_workers(group, 2, RESOURCES) is None


def test_a_synchronization_actor_asked_for_otherwise_is_made_as_asked(ray_driver: None) -> None:
    group = prestart.start(WorkerPlan(1, RESOURCES))
    try:
        options, kwargs = prestart._sync_actor_args()
        assert prestart._started is not None and prestart._started.sync_actor is not None
        started = prestart._started.sync_actor
        made = prestart.StartedSyncActor(SynchronizationActor).options(**options).remote(**{**kwargs, "timeout_s": 5.0})
        assert made != started  # Train's own, made with its arguments; the started one is stopped
        assert ray.get(made.__ray_ready__.remote(), timeout=60)
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(started.__ray_ready__.remote(), timeout=60)
        ray.kill(made)
    finally:
        prestart.release()
    wait_for(lambda: placement_group_table(group)["state"] == "REMOVED", timeout_s=30, what="the group removed")
