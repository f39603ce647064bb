"""``manage.py fire_schedules [--now ISO-DATETIME]``: fire the schedules due now (one tick)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.triggers import services


class Command(BaseCommand):
    help = "Fire every enabled schedule that is due (what the periodic task does each tick)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--now", help="the clock to use, ISO 8601 (naive means UTC); default: the current time"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        now = None
        if opts["now"]:
            try:
                now = datetime.fromisoformat(opts["now"])
            except ValueError as exc:
                raise CommandError(f"--now: {exc}") from None
            if now.tzinfo is None:
                now = now.replace(tzinfo=UTC)
        started = services.schedules_fire_due(now=now)
        self.stdout.write(f"{started} run(s) started")
