"""Idle connections kept per datasource, per process: a connector borrows one in ``connect`` and gives
it back in ``close`` instead of closing it. The key is the full connection config plus the process id
(a forked Celery worker never reuses its parent's sockets). A borrowed connection is checked first;
a broken one is dropped and the connector opens a fresh one, so errors surface from the real connect.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

MAX_IDLE_PER_KEY = 4
MAX_IDLE_S = 60.0

_lock = threading.Lock()
_idle: dict[str, list[tuple[float, Any]]] = {}


def key_for(kind: str, config: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    return f"{kind}:{os.getpid()}:{digest}"


def borrow(key: str, healthy: Callable[[Any], bool], discard: Callable[[Any], None]) -> Any | None:
    """An idle connection for ``key`` that passes ``healthy``, or None."""
    now = time.monotonic()
    while True:
        with _lock:
            stack = _idle.get(key)
            if not stack:
                return None
            returned_at, conn = stack.pop()
        if now - returned_at < MAX_IDLE_S and healthy(conn):
            return conn
        discard(conn)


def give_back(key: str, conn: Any, discard: Callable[[Any], None]) -> None:
    with _lock:
        stack = _idle.setdefault(key, [])
        if len(stack) < MAX_IDLE_PER_KEY:
            stack.append((time.monotonic(), conn))
            return
    discard(conn)


def clear() -> None:
    """Close nothing, forget everything (tests; connections are closed by their finalizers)."""
    with _lock:
        _idle.clear()
