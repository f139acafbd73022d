"""The pool of warm Train workers (`train_jobs.warm_pool`) and the platform's side of it
(`app.services.training.warm_workers`), on the shared test cluster: workers are kept warm per node, handed to a job
once, made the job's (its log, its threads), and stopped with the job."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import ray
from ray.actor import ActorHandle
from ray.util.placement_group import placement_group, remove_placement_group
from sqlalchemy import delete

from app.contracts.status import DeploymentStatus, JobStatus
from app.contracts.train_config import WorkerPlan
from app.contracts.warm_pool import NAMESPACE, pool_name
from app.core.config import Settings
from app.db.models import Deployment, Model, ModelVersion, TrainingJob, utcnow
from app.db.session import session_scope, upgrade_schema
from app.services.training import warm_workers
from tests.utils.rows import add_dataset_version, add_user
from tests.utils.wait import wait_for
from train_jobs import warm_pool

pytestmark = pytest.mark.ray

RESOURCES = {"CPU": 0.5}


@pytest.fixture
def pool(ray_driver: None, request: pytest.FixtureRequest) -> Iterator[tuple[str, ActorHandle]]:
    """A pool of its own (not the test platform's), stopped with its workers after the test."""
    env = {"AIP_TEST_POOL": request.node.name}
    name = pool_name(env)
    handle = warm_pool.ensure(name, env)
    yield name, handle
    ray.kill(handle, no_restart=True)


def warm_pids(handle: ActorHandle, per_node: int) -> list[int] | None:
    """The PIDs of the pool's idle workers once it holds `per_node` warm ones (the test cluster has one node)."""
    idle = ray.get(handle.stats.remote())["idle"]
    pids = [pid for workers in idle.values() for pid in workers]
    return pids if len(idle) == 1 and len(pids) == per_node and None not in pids else None


def gone(pids: list[int]) -> bool:
    return not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


def test_warm_workers_go_to_one_job_and_stop_with_it(pool: tuple[str, ActorHandle]) -> None:
    name, handle = pool
    handle.fill.remote(2)
    pids = wait_for(lambda: warm_pids(handle, 2), timeout_s=120, what="two warm workers")
    plan = WorkerPlan(2, RESOURCES, warm_pool=name)
    group = placement_group(plan.bundles())
    taken = warm_pool.take(group, plan)
    assert all(taken), taken
    # Train's own worker actors, with torch, its compiler stack and the platform's worker-side modules imported
    # before the job asked
    metadata = ray.get([worker.get_metadata.remote() for worker in taken], timeout=60)
    assert sorted(m.pid for m in metadata) == sorted(pids)
    wanted = ["torch._dynamo", *warm_pool.PLATFORM_MODULES]
    loaded = ray.get([worker.execute.remote(lambda: [m in sys.modules for m in wanted]) for worker in taken])
    assert loaded == [[True] * len(wanted)] * 2
    stats = ray.get(handle.stats.remote())
    assert list(stats["idle"].values()) == [[]] and stats["taken"] == 2

    other = placement_group(plan.bundles())
    assert warm_pool.take(other, plan) == [None, None]  # a worker goes to one job only
    remove_placement_group(other)

    remove_placement_group(group)  # as when the job's driver exits, however it exits
    wait_for(lambda: gone(pids), timeout_s=30, what="the taken workers stopped with the job's group")
    wait_for(lambda: ray.get(handle.stats.remote())["taken"] == 0, timeout_s=30, what="the pool forgetting them")


def test_a_taken_worker_writes_to_the_job_log_and_uses_its_cpus(
    pool: tuple[str, ActorHandle], platform_settings: Settings, tmp_path: Path
) -> None:
    name, handle = pool
    handle.fill.remote(1)
    [pid] = wait_for(lambda: warm_pids(handle, 1), timeout_s=120, what="a warm worker")
    job = tmp_path / "job.py"
    job.write_text(
        textwrap.dedent(
            """
            import sys, time
            import ray
            from ray.util.placement_group import placement_group
            from train_jobs import warm_pool
            from app.contracts.train_config import WorkerPlan

            ray.init(address=sys.argv[1])
            plan = WorkerPlan(1, {"CPU": 2.0}, warm_pool=sys.argv[2])
            group = placement_group(plan.bundles())
            assert group.wait(60)
            [worker] = warm_pool.take(group, plan)
            threads = ray.get(worker.execute.remote(lambda: __import__("torch").get_num_threads()))
            ray.get(worker.execute.remote(print, f"hello from the warm worker, {threads} threads"))
            time.sleep(3)  # Ray's log monitor forwards worker output every few hundred ms
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(job), platform_settings.gcs_address, name],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # the fresh worker Ray would have started for 2 CPUs runs 2 threads; the line carries Ray's worker prefix
    assert f"(RayTrainWorker pid={pid}" in done.stdout and "hello from the warm worker, 2 threads" in done.stdout, (
        done.stdout[-3000:]
    )
    wait_for(lambda: gone([pid]), timeout_s=30, what="the worker stopped after its job's driver exited")


def test_the_pool_keeps_its_size_and_replaces_dead_workers(pool: tuple[str, ActorHandle]) -> None:
    _, handle = pool
    handle.fill.remote(2)
    first = wait_for(lambda: warm_pids(handle, 2), timeout_s=120, what="two warm workers")
    psutil.Process(first[0]).kill()
    wait_for(lambda: gone(first[:1]), timeout_s=30, what="the killed worker gone")

    def replaced() -> list[int] | None:
        handle.fill.remote(2)  # as the platform does every reconcile pass: a check finds the dead one
        pids = warm_pids(handle, 2)
        return pids if pids and first[0] not in pids else None

    again = wait_for(replaced, timeout_s=120, interval_s=0.5, what="a replacement")
    assert first[1] in again
    handle.fill.remote(0)
    wait_for(lambda: gone(again), timeout_s=30, what="the workers stopped when none are wanted")


def test_only_cpu_workers_of_a_named_running_pool_are_taken(pool: tuple[str, ActorHandle]) -> None:
    name, handle = pool
    handle.fill.remote(1)
    wait_for(lambda: warm_pids(handle, 1), timeout_s=120, what="a warm worker")
    group = placement_group([{"CPU": 0.1}])
    try:
        for plan in (
            WorkerPlan(1, {"CPU": 0.1, "GPU": 1.0}, warm_pool=name),  # a GPU worker's devices come with its actor
            WorkerPlan(1, {"CPU": 0.1}),  # the platform keeps no pool
            WorkerPlan(1, {"CPU": 0.1}, warm_pool="aip-warm-workers-none"),  # not started
        ):
            assert warm_pool.take(group, plan) == [None]
        assert warm_pids(handle, 1)  # untouched
    finally:
        remove_placement_group(group)


def test_the_platform_fills_its_pool_only_while_the_cluster_is_quiet(ray_driver: None, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, warm_workers_per_node=1)
    assert warm_workers.pool_name(settings.model_copy(update={"warm_workers_per_node": 3})) == warm_workers.pool_name(
        settings
    )  # resizing keeps the pool
    assert warm_workers.pool_name(settings.model_copy(update={"warm_workers_per_node": 0})) is None
    assert warm_workers.pool_name(Settings(data_dir=tmp_path / "other")) != warm_workers.pool_name(settings)
    name = warm_workers.pool_name(settings)
    upgrade_schema(settings.database_url)
    with session_scope(settings.database_url) as s:
        owner = add_user(s, "pool-owner")
        version = add_dataset_version(s, owner)
        job = TrainingJob(
            name="starting",
            owner_id=owner.id,
            dataset_version_id=version.id,
            template="tabular_mlp",
            config={},
            status=JobStatus.STARTING,
        )
        s.add(job)
        s.flush()
        job_id, owner_id = job.id, owner.id

    def set_job(status: JobStatus, ended_s_ago: float | None = None) -> None:
        with session_scope(settings.database_url) as s:
            row = s.get_one(TrainingJob, job_id)
            row.status = status
            row.finished_at = None if ended_s_ago is None else utcnow() - dt.timedelta(seconds=ended_s_ago)

    def started_pool() -> bool:
        warm_workers.keep_warm(settings)
        try:
            ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            return False
        return True

    assert not started_pool()  # a job is starting (and none has ended: the platform has not trained yet)
    set_job(JobStatus.RUNNING)
    assert not started_pool()  # nor while it trains
    set_job(JobStatus.SUCCEEDED, ended_s_ago=1)
    assert not started_pool()  # nor right after: the next step of a workflow usually follows at once
    set_job(JobStatus.SUCCEEDED, ended_s_ago=warm_workers.QUIET_S + 1)
    with session_scope(settings.database_url) as s:
        model = Model(name="m", owner_id=owner_id)
        s.add(model)
        s.flush()
        version = ModelVersion(
            model_id=model.id, version=1, template="tabular_mlp", artifact_key="k", signature={}, metrics={}
        )
        s.add(version)
        s.flush()
        s.add(Deployment(model_version_id=version.id, owner_id=owner_id, status=DeploymentStatus.DEPLOYING))
    assert not started_pool()  # nor while a model is being deployed
    with session_scope(settings.database_url) as s:
        s.execute(delete(Deployment))
    assert started_pool()
    handle = ray.get_actor(name, namespace=NAMESPACE)
    try:
        wait_for(lambda: warm_pids(handle, 1), timeout_s=120, what="the platform's pool filled")
    finally:
        ray.kill(handle, no_restart=True)
