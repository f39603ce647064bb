"""Lease renewal: a running node keeps its claim alive while its handler works.

A claim gives the worker a lease of ``JETADMIN_LEASE_S``. One daemon thread per worker process
extends the leases of the attempts it currently holds every third of that, with an update guarded
by the owner — so a worker that dies (or is frozen) stops renewing, its lease runs out, and the
reconciler hands the node to another worker; a lease that was taken over is never extended again.
Nodes that finish within a third of the lease never cost a renewal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.workflows.engine.states import RUNNING
from apps.workflows.models import NodeRun
from jetadmin.db.base import release_pooled_connection

logger = logging.getLogger(__name__)


def lease_seconds() -> float:
    return float(settings.JETADMIN_LEASE_S)


class Renewer:
    def __init__(self) -> None:
        self._held: dict[int, tuple[str, float]] = {}  # NodeRun id -> (lease owner, last claim/renewal)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pid: int | None = None
        self._interval = 0.0
        self.thread: threading.Thread | None = None
        self.renewals = 0
        self.failures = 0
        self.lost: set[int] = set()

    @contextlib.contextmanager
    def hold(self, run_id: int, owner: str) -> Iterator[None]:
        with self._lock:
            self._held[run_id] = (owner, time.monotonic())
            self.lost.discard(run_id)
            self._ensure_thread()
            if self._interval > self.interval():
                self._wake.set()  # the lease got shorter (tests): do not sleep past it
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(run_id, None)

    @staticmethod
    def interval() -> float:
        return max(lease_seconds() / 3, 0.05)

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()  # after a fork the parent's thread is gone: start one in this process
        self.thread = threading.Thread(target=self._loop, name="jetadmin-lease-renewer", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            self._interval = self.interval()
            self._wake.wait(self._interval)
            self._wake.clear()
            now = time.monotonic()
            with self._lock:  # only holds a third of a lease old: fast nodes never cost a renewal
                due = {k: owner for k, (owner, t) in self._held.items() if now - t >= self._interval * 0.9}
            if not due:
                continue
            try:
                self.renew(due)
            except Exception:
                self.failures += 1
                logger.exception("lease renewal failed; retrying")
                with contextlib.suppress(Exception):
                    connection.close()
                continue
            # where connections are pooled (an in-process worker of a web process) hold none between
            # renewals: the pool stays whole, and a test database can be dropped at the end
            release_pooled_connection(connection)
            with self._lock:
                for run_id, owner in due.items():
                    if run_id in self._held:
                        self._held[run_id] = (owner, now)

    def renew(self, held: dict[int, str]) -> None:
        until = timezone.now() + timedelta(seconds=lease_seconds())
        for run_id, owner in held.items():
            kept = NodeRun.objects.filter(pk=run_id, status=RUNNING, lease_owner=owner).update(
                lease_expires_at=until
            )
            self.renewals += 1
            if not kept:
                self.lost.add(run_id)  # taken over or ended: its final save will affect no row


renewer = Renewer()
