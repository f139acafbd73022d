"""Several control-plane replicas on one database (every selected backend, PostgreSQL among them): one leads the
reconcile loop at a time through the lease (app.db.lease), another takes over when the leader's process is killed
or shuts down, and the scheduler's claim lets only one replica start a queued job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.contracts.status import JobStatus
from app.core.config import Settings
from app.db import lease
from app.db.models import TrainingJob
from app.db.session import session_scope
from app.runs import lifecycle
from app.runs.kinds import TRAINING_JOB
from app.services import reconcile
from app.services.training.scheduler import claim
from tests.utils.runs import add_run
from tests.utils.wait import wait_for

ROOT = Path(__file__).resolve().parents[3]
LEASE_S = 2.0
INTERVAL_S = 0.2
# A replica in a process of its own, running no steps: killed with SIGKILL, it cannot give its lease up.
REPLICA = """
import sys, threading
from app.core.config import Settings
from app.services.reconcile import Reconciler
data_dir, url, holder, interval, lease_s = sys.argv[1:]
settings = Settings(data_dir=data_dir, database_url=url, storage_url=f"file://{data_dir}/objects",
                    reconcile_interval_s=float(interval), leader_lease_s=float(lease_s))
Reconciler(settings, holder=holder, steps_of=lambda settings, store: {}).start()
threading.Event().wait()
"""


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=db_url,
        storage_url=f"file://{tmp_path / 'objects'}",
        reconcile_interval_s=INTERVAL_S,
        leader_lease_s=LEASE_S,
    )


class Passes:
    """Records each replica's passes and whether two ever ran at once."""

    def __init__(self) -> None:
        self.by_holder: dict[str, int] = {}
        self.overlaps: list[tuple[str, str]] = []
        self._running: str | None = None
        self._lock = threading.Lock()

    def steps_of(self, holder: str) -> reconcile.StepsOf:
        def step() -> None:
            with self._lock:
                if self._running is not None:
                    self.overlaps.append((self._running, holder))
                self._running = holder
            time.sleep(0.05)  # a pass that takes a while, so overlapping ones would meet
            with self._lock:
                self._running = None
                self.by_holder[holder] = self.by_holder.get(holder, 0) + 1

        return lambda _settings, _store: {"record": step}

    def count(self, holder: str) -> int:
        with self._lock:
            return self.by_holder.get(holder, 0)


def holder_now(url: str) -> str | None:
    with session_scope(url) as s:
        return lease.current_holder(s, reconcile.LEASE)


@pytest.fixture
def replica_process(settings: Settings, tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(holder: str) -> subprocess.Popen[bytes]:
        args = [str(tmp_path), settings.database_url, holder, str(INTERVAL_S), str(LEASE_S)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-c", REPLICA, *args], env=env, cwd=ROOT)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_the_lease_is_taken_renewed_expired_and_released(settings: Settings) -> None:
    url = settings.database_url
    assert lease.try_acquire(url, "test", "a", ttl_s=60)
    assert lease.try_acquire(url, "test", "a", ttl_s=60)  # renewed
    assert not lease.try_acquire(url, "test", "b", ttl_s=60)
    with session_scope(url) as s:
        assert lease.current_holder(s, "test") == "a"
    assert lease.try_acquire(url, "test", "a", ttl_s=0)  # expires at once: `a` stopped renewing
    assert wait_for(lambda: lease.try_acquire(url, "test", "b", ttl_s=60), timeout_s=5)
    assert not lease.release(url, "test", "a")  # no longer a's to give up
    assert lease.release(url, "test", "b")
    with session_scope(url) as s:
        assert lease.current_holder(s, "test") is None
    assert lease.try_acquire(url, "test", "c", ttl_s=60)


def test_one_replica_leads_and_another_takes_over_when_it_is_killed(
    settings: Settings, replica_process: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    first = replica_process("replica-a")
    wait_for(lambda: holder_now(settings.database_url) == "replica-a", timeout_s=60, what="replica-a to lead")
    passes = Passes()
    second = reconcile.Reconciler(settings, holder="replica-b", steps_of=passes.steps_of("replica-b"))
    second.start()
    try:
        # While the leader renews, the other replica runs no pass, for longer than a lease lasts.
        deadline = time.monotonic() + 2 * LEASE_S
        while time.monotonic() < deadline:
            assert passes.count("replica-b") == 0 and not second.is_leader
            time.sleep(INTERVAL_S)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed = time.monotonic()
        wait_for(lambda: passes.count("replica-b") > 0, timeout_s=LEASE_S + 10, what="replica-b to take over")
        takeover_s = time.monotonic() - killed
        print(f"takeover after SIGKILL of the leader: {takeover_s:.2f} s (lease {LEASE_S} s)")
        assert holder_now(settings.database_url) == "replica-b"
        assert takeover_s <= LEASE_S + 5 * INTERVAL_S + 2  # the lease's length plus a few passes, not minutes
    finally:
        second.stop(timeout_s=10)


def test_a_replica_that_shuts_down_hands_over_without_waiting_for_expiry(settings: Settings) -> None:
    passes = Passes()
    settings = settings.model_copy(update={"leader_lease_s": 60.0})  # expiry would take a minute
    first = reconcile.Reconciler(settings, holder="replica-a", steps_of=passes.steps_of("replica-a"))
    second = reconcile.Reconciler(settings, holder="replica-b", steps_of=passes.steps_of("replica-b"))
    first.start()
    wait_for(lambda: passes.count("replica-a") > 0, timeout_s=30)
    second.start()
    try:
        wait_for(lambda: passes.count("replica-a") > 5, timeout_s=30)
        assert passes.count("replica-b") == 0
        first.stop(timeout_s=10)
        wait_for(lambda: passes.count("replica-b") > 0, timeout_s=10, what="replica-b to take over")
        assert holder_now(settings.database_url) == "replica-b"
        assert not first.is_leader and second.is_leader
    finally:
        first.stop(timeout_s=10)
        second.stop(timeout_s=10)
    assert passes.overlaps == []


def test_two_schedulers_claiming_the_same_queue_start_each_job_once(db_url: str) -> None:
    with session_scope(db_url) as s:
        ids = []
        for i in range(20):
            job = add_run(s, TRAINING_JOB, JobStatus.CREATED, username=f"u{i}")
            lifecycle.transition(s, TRAINING_JOB, job, JobStatus.QUEUED)
            ids.append(job.id)
    claimed: dict[str, list[int]] = {}
    barrier = threading.Barrier(2)

    def scheduler_pass(name: str) -> None:
        with session_scope(db_url) as s:
            queued = list(s.scalars(select(TrainingJob).where(TrainingJob.status == JobStatus.QUEUED)))
            barrier.wait()  # both have read the whole queue before either claims
            claimed[name] = [job.id for job in queued if claim(s, job)]

    threads = [threading.Thread(target=scheduler_pass, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claimed["a"] + claimed["b"]) == sorted(ids)  # every job once, none twice
    with session_scope(db_url) as s:
        assert set(s.scalars(select(TrainingJob.status))) == {JobStatus.STARTING}
