"""Celery tasks of triggers: the periodic tick that fires due schedules (Celery beat, or the
embedded ticker). Thin: the service does the work and is safe to run from several tickers."""

from __future__ import annotations

from celery import shared_task

from apps.triggers import services


@shared_task(name="triggers.fire_due_schedules", ignore_result=True)
def fire_due_schedules() -> int:
    return services.schedules_fire_due()
