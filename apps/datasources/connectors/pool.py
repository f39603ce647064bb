"""Idle connections kept per datasource, per process: a connector borrows one in ``connect`` and gives
it back in ``close`` instead of closing it. The key is the full connection config plus the process id
(a forked Celery worker never reuses its parent's sockets). Connectors reset a connection's session
when giving it back (no lock or LISTEN outlives its query) and check it again when borrowing; a
broken one is dropped and the connector opens a fresh one, so errors surface from the real connect.
Connections idle longer than ``MAX_IDLE_S`` are closed by the next pool operation of any key.
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

Discard = Callable[[Any], None]

_lock = threading.Lock()
_idle: dict[str, list[tuple[float, Any, Discard]]] = {}


def key_for(kind: str, config: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    return f"{kind}:{os.getpid()}:{digest}"


def _expired(now: float) -> list[tuple[Any, Discard]]:
    """Take every connection idle too long out of the pool (caller holds the lock). Entries of
    another process (inherited through fork) are forgotten, never closed: their sockets are the
    parent's."""
    stale = []
    mine = f":{os.getpid()}:"
    for key in list(_idle):
        if mine not in key:
            del _idle[key]
            continue
        keep = [entry for entry in _idle[key] if now - entry[0] < MAX_IDLE_S]
        stale += [(conn, discard) for at, conn, discard in _idle[key] if now - at >= MAX_IDLE_S]
        if keep:
            _idle[key] = keep
        else:
            del _idle[key]
    return stale


def _close_all(stale: list[tuple[Any, Discard]]) -> None:
    for conn, discard in stale:
        discard(conn)


def borrow(key: str, healthy: Callable[[Any], bool], discard: Discard) -> Any | None:
    """An idle connection for ``key`` that passes ``healthy``, or None."""
    while True:
        with _lock:
            stale = _expired(time.monotonic())
            stack = _idle.get(key)
            entry = stack.pop() if stack else None
        _close_all(stale)
        if entry is None:
            return None
        if healthy(entry[1]):
            return entry[1]
        discard(entry[1])


def give_back(key: str, conn: Any, discard: Discard) -> None:
    with _lock:
        stale = _expired(time.monotonic())
        stack = _idle.setdefault(key, [])
        kept = len(stack) < MAX_IDLE_PER_KEY
        if kept:
            stack.append((time.monotonic(), conn, discard))
    _close_all(stale)
    if not kept:
        discard(conn)


def _forget_after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # the parent's lock may have been held by another thread at fork
    _idle.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def clear() -> None:
    """Close every idle connection (tests, and a process that is about to exit)."""
    with _lock:
        stale = [(conn, discard) for entries in _idle.values() for _, conn, discard in entries]
        _idle.clear()
    _close_all(stale)
