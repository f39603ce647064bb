"""Reads in dashboards, always scoped to a tenant; ``dashboard_get`` raises 404 for other tenants' ids."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from apps.tenancy.models import Role, Tenant
from apps.tenancy.selectors import TenantAccess, tenant_access
from apps.widgets import selectors as widget_selectors
from apps.widgets import types as widget_types
from apps.widgets.models import Widget

from .models import Dashboard, ShareLink


def dashboard_list(*, tenant: Tenant) -> QuerySet[Dashboard]:
    return Dashboard.objects.filter(tenant=tenant)


def dashboard_get(*, tenant: Tenant, dashboard_id: Any) -> Dashboard:
    try:
        pk = uuid.UUID(str(dashboard_id))
    except ValueError as exc:
        raise NotFound() from exc
    dashboard = Dashboard.objects.filter(tenant=tenant, pk=pk).first()
    if dashboard is None:
        raise NotFound()
    return dashboard


def dashboard_widgets(dashboard: Dashboard) -> list[tuple[dict[str, Any], Widget]]:
    """(layout item, widget) in layout order, in one query; items whose widget is gone are left out."""
    ids = [str(item.get("widget")) for item in dashboard.layout if isinstance(item, dict)]
    rows = widget_selectors.widget_list(tenant=dashboard.tenant).filter(pk__in=ids).select_related("workflow")
    widgets = {str(w.id): w for w in rows}
    return [
        (item, widgets[str(item["widget"])])
        for item in dashboard.layout
        if str(item.get("widget")) in widgets
    ]


def filter_params(dashboard: Dashboard) -> tuple[str, ...]:
    """The input parameters the dashboard's filters set (a viewer may set them on its widgets)."""
    names: list[str] = []
    for item in dashboard.filters:
        names += [item["param"]] + ([item["param_to"]] if item.get("param_to") else [])
    return tuple(dict.fromkeys(names))


def dashboard_for_widget(*, user: Any, api_key: Any, dashboard_id: Any, widget_id: Any) -> Dashboard:
    """The dashboard a websocket names for a widget: the principal may see it (``dashboard.view``) and
    the widget is on it; else NotFound (or PermissionDenied for a member without the permission)."""
    try:
        pk = uuid.UUID(str(dashboard_id))
    except ValueError as exc:
        raise NotFound() from exc
    dashboard = Dashboard.objects.filter(pk=pk).select_related("tenant").first()
    if dashboard is None:
        raise NotFound()
    access = tenant_access(user=user, api_key=api_key, tenant_id=dashboard.tenant_id)
    access.require("dashboard.view")
    if str(widget_id) not in {str(item.get("widget")) for item in dashboard.layout}:
        raise NotFound()
    return dashboard


def shown_on(*, user: Any, api_key: Any, widget_id: Any, dashboard_id: Any) -> tuple[tuple[str, ...], float]:
    """For a widget shown on ``dashboard_id``: the parameters it may be run with beyond its own (the
    dashboard's filters), and how long a run of it stays fresh: the shortest refresh interval of the
    dashboards it is on (a widget on two dashboards refreshes at the shorter one)."""
    dashboard = dashboard_for_widget(
        user=user, api_key=api_key, dashboard_id=dashboard_id, widget_id=widget_id
    )
    shortest = dashboard.refresh_s
    boards = Dashboard.objects.filter(tenant_id=dashboard.tenant_id).values_list("layout", "refresh_s")
    for layout, every in boards:
        if every < shortest and any(str(item.get("widget")) == str(widget_id) for item in layout or []):
            shortest = every
    return (*filter_params(dashboard), *input_params(dashboard)), float(shortest)


def input_params(dashboard: Dashboard) -> tuple[str, ...]:
    """The parameters the dashboard's input widgets (select, date-range, form) set when they re-run."""
    ids = [str(item.get("widget")) for item in dashboard.layout]
    rows = (
        widget_selectors.widget_list(tenant=dashboard.tenant).filter(pk__in=ids).values_list("type", "config")
    )
    names: list[str] = []
    for kind, config in rows:
        control = widget_types.REGISTRY.get(kind)
        if control is not None and isinstance(config, dict):
            names += control.params(config)
    return tuple(dict.fromkeys(names))


def share_access(dashboard: Dashboard) -> TenantAccess:
    """What a share link's viewer may do in the tenant: see widgets and dashboards (the consumer keeps
    them to this dashboard's widgets, and to subscribe and replay)."""
    role = Role(tenant=dashboard.tenant, name="share link", permissions=["dashboard.view", "widget.view"])
    return TenantAccess(tenant=dashboard.tenant, role=role)


def share_links(dashboard: Dashboard) -> QuerySet[ShareLink]:
    return ShareLink.objects.filter(dashboard=dashboard)
