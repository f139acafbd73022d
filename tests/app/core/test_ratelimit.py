from __future__ import annotations

from app.core.ratelimit import SlidingWindow


def test_window_blocks_after_the_limit_and_reopens() -> None:
    window = SlidingWindow(limit=2, window_s=0.2)
    assert window.blocked_for("ip") == 0
    window.hit("ip")
    window.hit("ip")
    assert 0 < window.blocked_for("ip") <= 0.2
    assert window.blocked_for("other") == 0


def test_old_events_leave_the_window() -> None:
    window = SlidingWindow(limit=1, window_s=0.05)
    window.hit("ip")
    import time

    deadline = time.monotonic() + 1
    while window.blocked_for("ip") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert window.blocked_for("ip") == 0
