"""The control plane's reconcile loop: keeps rows aligned with Ray (runs, deployments), starts queued work, tidies
the data layer and keeps warm workers, from the first second after a (re)start. The API ingress starts one
`Reconciler`; `run_once` is one pass, for tests and tools that need no Serve."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.db.session import session_scope
from app.runs import queue_signal
from app.runs import reconcile as runs
from app.services.data import profiles, uploads
from app.services.models import deployments
from app.services.training import scheduler, warm_workers
from app.storage import ObjectStore, open_store

log = logging.getLogger(__name__)

Step = Callable[[], object]


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


def run_once(settings: Settings, store: ObjectStore) -> list[str]:
    """One pass: every step, each failure logged and the pass continued. Returns the names of the steps that failed."""
    failed = []
    for name, step in steps(settings, store).items():
        try:
            step()
        except Exception:
            log.exception("Reconciling %s failed; retrying in %.0f s", name, settings.reconcile_interval_s)
            failed.append(name)
    return failed


class Reconciler:
    """Runs a pass every `reconcile_interval_s` (sooner when work is queued) in a daemon thread until stopped."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="reconcile", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Ends the loop after its current pass (waiting up to `timeout_s` for it)."""
        self._stop.set()
        queue_signal.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        store = open_store(self._settings)
        while not self._stop.is_set():
            run_once(self._settings, store)
            queue_signal.wait(self._settings.reconcile_interval_s)  # or less: queued work wakes it
