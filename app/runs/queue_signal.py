"""Wakes the control plane's reconcile loop when work is queued, so the scheduler places it at once instead of at
its next pass (up to `reconcile_interval_s` later). Work queued by another API replica waits for that pass."""

from __future__ import annotations

import threading

from sqlalchemy import event
from sqlalchemy.orm import Session

_queued = threading.Event()


def wake_after_commit(session: Session) -> None:
    """Wakes the loop once `session` commits: a pass before the commit would not see the new work."""
    event.listen(session, "after_commit", _wake, once=True)


def _wake(_session: Session) -> None:
    wake()


def wake() -> None:
    """Wakes the loop now (e.g. to stop it without waiting out its interval)."""
    _queued.set()


def wait(timeout_s: float) -> bool:
    """Waits up to `timeout_s` for queued work; True when woken by it."""
    woken = _queued.wait(timeout_s)
    _queued.clear()
    return woken
