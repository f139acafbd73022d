"""The control plane's reconcile loop: keeps rows aligned with Ray (runs, deployments), starts queued work, tidies
the data layer and keeps warm workers, from the first second after a (re)start. Every API ingress replica starts a
`Reconciler`; only the one holding the database lease `LEASE` (app.db.lease) runs passes, the others take it over
within `leader_lease_s` when the leader stops renewing it. `run_once` is one pass, for tests and tools that need no
Serve."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.db import lease
from app.db.session import session_scope
from app.runs import queue_signal
from app.runs import reconcile as runs
from app.services.data import profiles, uploads
from app.services.models import deployments
from app.services.training import scheduler, warm_workers
from app.storage import ObjectStore, open_store

log = logging.getLogger(__name__)

Step = Callable[[], object]
StepsOf = Callable[[Settings, ObjectStore], dict[str, Step]]
LEASE = "reconcile"  # the lease row whose holder leads the loop


def steps(settings: Settings, store: ObjectStore) -> dict[str, Step]:
    """The steps of one pass, in order, by name (for the log of a step that fails)."""
    return {
        "runs": lambda: runs.reconcile(settings, store),  # before the queue: ended runs free their resources
        "training queue": lambda: scheduler.schedule(settings),
        "deployments": lambda: _in_session(settings, deployments.reconcile),
        "idle uploads": lambda: uploads.expire_stale(settings, store),
        # A worker of its own profiles new versions, so a big file does not hold the loop up.
        "profiles": lambda: profiles.start_background(settings, store),
        "warm workers": lambda: warm_workers.keep_warm(settings),
    }


def _in_session(settings: Settings, step: Callable[[Session, Settings], None]) -> None:
    """One unit of work per pass, for a step that takes its session from the caller."""
    with session_scope(settings.database_url) as session:
        step(session, settings)


def run_once(
    settings: Settings, store: ObjectStore, *, leading: Callable[[], bool] | None = None, steps_of: StepsOf = steps
) -> list[str]:
    """One pass: every step, each failure logged and the pass continued. Returns the names of the steps that failed.
    `leading`, asked before each step, ends the pass early once this replica is no longer the leader."""
    failed = []
    for name, step in steps_of(settings, store).items():
        if leading is not None and not leading():
            log.warning("Lost the reconcile lease before step %s; another replica leads now", name)
            break
        try:
            step()
        except Exception:
            log.exception("Reconciling %s failed; retrying in %.0f s", name, settings.reconcile_interval_s)
            failed.append(name)
    return failed


class Reconciler:
    """Runs a pass every `reconcile_interval_s` (sooner when work is queued) in a daemon thread until stopped, while
    it holds the lease; otherwise it tries to take the lease at that pace."""

    def __init__(self, settings: Settings, *, holder: str | None = None, steps_of: StepsOf = steps) -> None:
        self._settings = settings
        self._steps_of = steps_of
        self.holder = holder or lease.new_holder_id()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewed = float("-inf")  # monotonic time of the last renewal that succeeded
        self.passes = 0  # passes run as the leader

    @property
    def is_leader(self) -> bool:
        """Whether the lease this replica last renewed is still running by its own clock."""
        return time.monotonic() - self._renewed < self._settings.leader_lease_s

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="reconcile", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Ends the loop after its current pass (waiting up to `timeout_s` for it); the lease is given up."""
        self._stop.set()
        queue_signal.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        store = open_store(self._settings)
        while not self._stop.is_set():
            if self._renew():
                run_once(self._settings, store, leading=self._still_leading, steps_of=self._steps_of)
                self.passes += 1
            queue_signal.wait(self._settings.reconcile_interval_s)  # or less: queued work wakes it
        if self._renewed > float("-inf"):
            self._give_up()

    def _renew(self) -> bool:
        """Takes or renews the lease; False (not the leader) also when the database cannot be reached."""
        was_leader = self.is_leader
        try:
            held = lease.try_acquire(self._settings.database_url, LEASE, self.holder, self._settings.leader_lease_s)
        except Exception:
            log.exception("Could not renew the reconcile lease; not leading until the database answers")
            held = False
        if held:
            self._renewed = time.monotonic()
            if not was_leader:
                log.info("Leading the reconcile loop as %s", self.holder)
        elif was_leader:
            self._renewed = float("-inf")
            log.warning("Another replica took the reconcile lease; %s follows", self.holder)
        return held

    def _still_leading(self) -> bool:
        # Renewed between steps once half the lease has run, so a slow pass does not outlive it.
        if time.monotonic() - self._renewed < self._settings.leader_lease_s / 2:
            return True
        return self._renew()

    def _give_up(self) -> None:
        try:
            lease.release(self._settings.database_url, LEASE, self.holder)
        except Exception:
            log.exception("Could not give up the reconcile lease; it expires in %.0f s", self._settings.leader_lease_s)
        self._renewed = float("-inf")
