"""Reads in triggers, always scoped to a tenant-scoped workflow; ``*_get`` raise 404 for other ids."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from apps.triggers.models import Schedule, Webhook
from apps.workflows.models import Workflow


def _uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise NotFound() from exc


def schedule_list(*, workflow: Workflow) -> QuerySet[Schedule]:
    return Schedule.objects.filter(tenant_id=workflow.tenant_id, workflow=workflow)


def schedule_get(*, workflow: Workflow, schedule_id: Any) -> Schedule:
    schedule = schedule_list(workflow=workflow).filter(pk=_uuid(schedule_id)).first()
    if schedule is None:
        raise NotFound()
    return schedule


def webhook_list(*, workflow: Workflow) -> QuerySet[Webhook]:
    return Webhook.objects.filter(tenant_id=workflow.tenant_id, workflow=workflow)


def webhook_get(*, workflow: Workflow, webhook_id: Any) -> Webhook:
    webhook = webhook_list(workflow=workflow).filter(pk=_uuid(webhook_id)).first()
    if webhook is None:
        raise NotFound()
    return webhook
