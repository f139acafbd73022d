"""Polling helper: tests wait for a condition with a deadline instead of sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, timeout_s: float = 60, interval_s: float = 0.25, what: str = "") -> T:
    """Returns the first truthy value of `condition()`; fails the test when the deadline passes."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"Timed out after {timeout_s:.0f} s waiting for {what or condition}; last value: {last!r}")
