"""``manage.py reconcile``: one reconciler pass (or ``--every N`` seconds), as beat runs it."""

from __future__ import annotations

import time
import traceback
from typing import Any

from django import db
from django.core.management.base import BaseCommand, CommandParser

from apps.workflows.engine import runtime
from jetadmin.api.errors import outage_types


class Command(BaseCommand):
    help = "Re-queue nodes whose lease expired, send lost or due messages, close scopes left open."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--every", type=float, default=0, help="repeat every N seconds (0: once)")

    def handle(self, *args: Any, every: float = 0, **options: Any) -> None:
        while True:
            try:
                done = runtime.reconcile()
            except Exception as exc:  # a database or broker outage, or a bug: keep going, as beat would
                if every <= 0:
                    raise
                if isinstance(exc, outage_types()):
                    self.stderr.write(
                        f"reconcile failed ({type(exc).__name__}: {exc}); retrying in {every} s"
                    )
                else:
                    self.stderr.write(f"reconcile failed:\n{traceback.format_exc()}")
                db.connections.close_all()
                time.sleep(every)
                continue
            self.stdout.write(
                f"expired leases re-queued: {done.expired}, messages sent: {done.sent}, "
                f"waiting nodes woken: {done.woken}, scopes completed: {done.completed}, "
                f"held nodes dispatched: {done.dispatched}"
            )
            if every <= 0:
                return
            time.sleep(every)
