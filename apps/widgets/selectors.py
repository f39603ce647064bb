"""Reads in widgets, always scoped to a tenant; ``widget_get`` raises 404 for other tenants' ids."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from apps.tenancy.models import Tenant
from apps.widgets.models import Widget, WidgetRun
from apps.workflows.models import WorkflowInstance


def widget_list(*, tenant: Tenant) -> QuerySet[Widget]:
    return Widget.objects.filter(tenant=tenant)


def widget_get(*, tenant: Tenant | uuid.UUID | str, widget_id: Any) -> Widget:
    try:
        pk = uuid.UUID(str(widget_id))
    except ValueError:
        raise NotFound() from None
    tenant_id = tenant.pk if isinstance(tenant, Tenant) else tenant
    found = Widget.objects.filter(tenant_id=tenant_id, pk=pk).select_related("workflow").first()
    if found is None:
        raise NotFound()
    return found


def widget_by_id(widget_id: Any) -> Widget:
    """A widget whatever its tenant (the websocket checks the tenant afterwards); 404 if unknown."""
    try:
        pk = uuid.UUID(str(widget_id))
    except ValueError:
        raise NotFound() from None
    found = Widget.objects.filter(pk=pk).select_related("workflow", "tenant").first()
    if found is None:
        raise NotFound()
    return found


def widget_run_latest(*, widget: Widget, finished: bool = False) -> WorkflowInstance | None:
    """The widget's most recent run (with ``finished``, the most recent that ended)."""
    runs = WidgetRun.objects.filter(widget=widget).select_related("instance").order_by("-created_at", "-id")
    if finished:
        runs = runs.filter(instance__status__in=("succeeded", "failed", "canceled"))
    found = runs.first()
    return found.instance if found is not None else None


def bindings_for(instance_id: Any) -> list[WidgetRun]:
    """The widgets (and their parameter hashes) a run feeds."""
    return list(WidgetRun.objects.filter(instance_id=instance_id).select_related("widget"))
