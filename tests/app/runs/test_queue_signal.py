"""Queued work wakes the reconcile loop once its transaction commits, on every database backend."""

from __future__ import annotations

from app.db.session import session_scope
from app.runs import queue_signal


def test_a_commit_wakes_the_loop_and_a_rollback_does_not(db_url: str) -> None:
    queue_signal.wait(0)  # nothing left over from earlier tests
    with session_scope(db_url) as session:
        queue_signal.wake_after_commit(session)
        assert not queue_signal.wait(0), "woken before the commit: the scheduler would not see the work yet"
    assert queue_signal.wait(30)
    assert not queue_signal.wait(0)  # once per commit

    try:
        with session_scope(db_url) as session:
            queue_signal.wake_after_commit(session)
            raise RuntimeError("the request failed")
    except RuntimeError:
        pass
    assert not queue_signal.wait(0.2)
