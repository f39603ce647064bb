"""Polling helpers for tests that watch runs through the API: wait with a deadline, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

TIMEOUT = 15.0
ENDED = ("succeeded", "failed", "canceled")


def wait_for(
    fn: Callable[[], Any],
    timeout: float = TIMEOUT,
    what: str = "condition",
    seen: Callable[[], Any] | None = None,
) -> Any:
    """Poll ``fn`` until it returns something truthy; fail after ``timeout`` showing ``seen()``."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            last = seen() if seen else value
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen {last!r}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


def states(detail: dict[str, Any]) -> dict[str, Any]:
    """A run detail reduced to what a failure message needs."""
    return {
        "status": detail["status"],
        "error": detail["error"],
        "nodes": {n: (v["status"], v["error"], v["waiting"]) for n, v in detail["nodes"].items()},
    }
