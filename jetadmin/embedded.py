"""The embedded Celery worker: real Celery tasks consumed inside the server process.

On the embedded default the broker is in-process memory (``jetadmin/membroker.py``: kombu's memory
transport, its consumer woken by each publish), which only works within one process, so the server
starts Celery's own worker (``celery.contrib.testing.worker``'s controller, thread pool) in a
background thread. Tasks go through the same publish → consume → ack path as on Redis; only the
transport differs.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery.contrib.testing.worker import TestWorkController
from django.conf import settings

from jetadmin.celery import app

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_worker: Any = None
_thread: threading.Thread | None = None
_ticker_stop = threading.Event()
_ticker_paused = threading.Event()
EMBEDDED_TICK_S = 0.25
HOUSEKEEPING_S = 60.0


def _ticker() -> None:
    """The embedded stand-in for ``celery beat``: sends each periodic task at its interval."""
    last: dict[str, float] = {}
    while not _ticker_stop.wait(EMBEDDED_TICK_S / 2):
        if _ticker_paused.is_set():
            continue
        now = time.monotonic()
        for name, entry in (app.conf.beat_schedule or {}).items():
            schedule = entry["schedule"]
            every = schedule.total_seconds() if hasattr(schedule, "total_seconds") else float(schedule)
            # Engine ticks (every few seconds) run at the embedded tick, so one machine reacts at once;
            # housekeeping (retention, every few minutes) keeps its own interval.
            due = every if every >= HOUSEKEEPING_S else min(every, EMBEDDED_TICK_S)
            if now - last.get(name, 0.0) >= due:
                last[name] = now
                try:
                    app.send_task(entry["task"], args=entry.get("args", ()), kwargs=entry.get("kwargs", {}))
                except Exception:
                    logger.exception("embedded beat could not send %s", name)


class EmbeddedWorkController(TestWorkController):
    """Celery's in-thread worker; kept as a subclass so the embedded worker has its own name in logs."""


def start(concurrency: int | None = None) -> Any:
    """Start the in-process worker once (idempotent); returns the worker controller."""
    global _worker, _thread
    with _lock:
        _ticker_paused.clear()
        if _worker is not None:
            return _worker
        worker = EmbeddedWorkController(
            app=app,
            concurrency=concurrency or settings.JETADMIN_EMBEDDED_WORKER_CONCURRENCY,
            hostname="embedded@jetadmin",
            pool="threads",
            loglevel="WARNING",
            ready_callback=None,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        thread = threading.Thread(target=worker.start, name="jetadmin-embedded-worker", daemon=True)
        thread.start()
        worker.ensure_started()
        _ticker_stop.clear()
        threading.Thread(target=_ticker, name="jetadmin-embedded-beat", daemon=True).start()
        _worker, _thread = worker, thread
        logger.info("embedded Celery worker started (broker %s)", app.conf.broker_url)
        return worker


def running() -> bool:
    """Whether the in-process worker runs in this process (the operations page shows it)."""
    return _worker is not None and _thread is not None and _thread.is_alive()


def quiesce(timeout: float = 15.0) -> bool:
    """Pause the ticker and wait until no task is executing (tests, before they reset the database)."""
    from celery.worker import state

    _ticker_paused.set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not state.active_requests:
            return True
        time.sleep(0.02)
    return False


def stop(timeout: float = 10.0) -> None:
    global _worker, _thread
    with _lock:
        if _worker is None:
            return
        _ticker_stop.set()
        _worker.stop()
        if _thread is not None:
            _thread.join(timeout)
        _worker, _thread = None, None
