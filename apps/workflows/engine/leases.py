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
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.workflows.engine.states import RUNNING
from apps.workflows.models import NodeRun

logger = logging.getLogger(__name__)


def lease_seconds() -> float:
    return float(settings.JETADMIN_LEASE_S)


class Renewer:
    def __init__(self) -> None:
        self._held: dict[int, str] = {}  # NodeRun id -> lease owner
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pid: int | None = None
        self.renewals = 0
        self.lost: set[int] = set()

    @contextlib.contextmanager
    def hold(self, run_id: int, owner: str) -> Iterator[None]:
        with self._lock:
            self._held[run_id] = owner
            self.lost.discard(run_id)
            self._ensure_thread()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(run_id, None)

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()  # after a fork the parent's thread is gone: start one in this process
        threading.Thread(target=self._loop, name="jetadmin-lease-renewer", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._wake.wait(max(lease_seconds() / 3, 0.05))
            with self._lock:
                held = dict(self._held)
            if not held:
                continue
            try:
                self.renew(held)
            except Exception:
                logger.exception("lease renewal failed; retrying")
                with contextlib.suppress(Exception):
                    connection.close()

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
