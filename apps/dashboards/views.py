"""Dashboard pages. A dashboard renders every widget's last known data on first paint (no spinner
when data exists), then follows its widgets live over ``/ws/`` (static/js/dashboard.js): each widget
connects with ``execute``, which reuses a run in flight or finished within the refresh interval, so
many viewers share one run; the Refresh button forces new runs. Every widget shows which workflow,
version and run produced its data, and says when that data is older than the refresh interval.
``…/widgets/{id}/export/`` downloads a widget's last data as CSV or JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.tenancy.selectors import TenantAccess
from apps.widgets import selectors as widget_selectors
from apps.widgets.services import export_response
from jetadmin.api.errors import ApplicationError
from jetadmin.pages import actor, render_page, search_page, tenant_page

from . import selectors, services
from .models import GRID_COLUMNS, Dashboard

SECTION = "dashboards"
NEW_SHARE = "jetadmin.new_share_url"  # session key: a new share link's URL, shown once
CHART_TYPES = ("bar", "line", "pie", "radar", "scatter", "bubble")
INPUT_TYPES = ("select", "date-range", "form", "button")
ROW_PX = 90  # the height of one grid row


@tenant_page("dashboard.view")
def dashboard_list(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    rows = selectors.dashboard_list(tenant=access.tenant)
    page, search = search_page(request, rows)
    return render_page(
        request, access, "dashboards/list.html", {"page": page, "search": search}, section=SECTION
    )


def _finished(provenance: Any) -> datetime | None:
    value = provenance.get("finished_at") if isinstance(provenance, dict) else None
    return parse_datetime(value) if isinstance(value, str) else None


def filter_values(dashboard: Dashboard, query: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The filter bar (each filter with its value from the URL: ``f.<id>``, ``f.<id>.to``) and the
    input parameters those values set."""
    fields, params = [], {}
    for item in dashboard.filters:
        value = str(query.get(f"f.{item['id']}", "")).strip()[:200]
        until = str(query.get(f"f.{item['id']}.to", "")).strip()[:200] if item.get("param_to") else ""
        if value:
            params[item["param"]] = value
        if until:
            params[item["param_to"]] = until
        fields.append({**item, "value": value, "until": until})
    return fields, params


def tiles(dashboard: Dashboard, filtered: bool = False) -> list[dict[str, Any]]:
    """What the page draws per widget: its placement, last data, provenance and staleness. A filtered
    view paints no last data (that is the unfiltered data): its widgets load their own."""
    now = timezone.now()
    out = []
    for item, widget in selectors.dashboard_widgets(dashboard):
        finished = _finished(widget.last_provenance)
        out.append(
            {
                "widget": widget,
                "item": item,
                "script_id": f"wdata-{widget.id}",
                "chart": widget.type in CHART_TYPES,
                "input": widget.type in INPUT_TYPES,
                "data": None if filtered and widget.workflow_id else widget.last_data,
                "provenance": {} if filtered else widget.last_provenance or {},
                "finished_at": finished,
                "stale": finished is not None and now - finished > timedelta(seconds=dashboard.refresh_s),
                "style": (
                    f"grid-column:{item['x'] + 1}/span {item['w']};grid-row:{item['y'] + 1}/span {item['h']}"
                ),
            }
        )
    return out


def board_context(
    dashboard: Dashboard, drawn: list[dict[str, Any]], client: dict[str, Any]
) -> dict[str, Any]:
    """What dashboards/view.html needs, for a member's page and for a share link's."""
    return {
        "dashboard": dashboard,
        "tiles": drawn,
        "row_px": ROW_PX,
        "columns": GRID_COLUMNS,
        "has_vega": any(t["widget"].type == "vega-lite" for t in drawn),
        "client": {"refresh_s": dashboard.refresh_s, "dashboard": str(dashboard.id), **client},
    }


@tenant_page("dashboard.view")
def dashboard_detail(request: HttpRequest, access: TenantAccess, dashboard_id: str) -> HttpResponse:
    dashboard = selectors.dashboard_get(tenant=access.tenant, dashboard_id=dashboard_id)
    fields, params = filter_values(dashboard, request.GET)
    manage = access.can("dashboard.manage")
    client = {"tenant": str(access.tenant.id), "filters": dashboard.filters, "params": params}
    context = {
        **board_context(dashboard, tiles(dashboard, filtered=bool(params)), client),
        "filter_fields": fields,
        "share_links": list(selectors.share_links(dashboard)[:50]) if manage else [],
        "new_share_url": request.session.pop(NEW_SHARE, "") if manage else "",
    }
    return render_page(request, access, "dashboards/view.html", context, section=SECTION)


@tenant_page("dashboard.manage")
@require_http_methods(["GET", "POST"])
def dashboard_new(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    """A new dashboard: a name, a refresh interval and the widgets to place (stacked, 6 columns wide)."""
    widgets = list(widget_selectors.widget_list(tenant=access.tenant).order_by("name")[:500])
    errors: dict[str, Any] = {}
    if request.method == "POST":
        chosen = request.POST.getlist("widgets")
        layout = [
            {"widget": wid, "x": (i % 2) * 6, "y": (i // 2) * 4, "w": 6, "h": 4}
            for i, wid in enumerate(chosen)
        ]
        try:
            refresh_s = int(request.POST.get("refresh_s") or 60)
        except ValueError:
            refresh_s = -1
        try:
            dashboard = services.dashboard_create(
                actor=actor(request),
                tenant=access.tenant,
                name=request.POST.get("name", "").strip(),
                description=request.POST.get("description", "").strip(),
                layout=layout,
                refresh_s=refresh_s,
            )
        except ApplicationError as exc:
            errors = {**(exc.details or {}), "form": [exc.message]}
        else:
            messages.success(request, f"Dashboard {dashboard.name!r} created.")
            return redirect("dashboard-detail", access.tenant.id, dashboard.id)
    context = {"widgets": widgets, "errors": errors, "posted": request.POST}
    return render_page(
        request, access, "dashboards/new.html", context, section=SECTION, status=400 if errors else 200
    )


@tenant_page("widget.view")
def widget_export(request: HttpRequest, access: TenantAccess, widget_id: str) -> HttpResponse:
    """The widget's last data as a download, for the page's CSV and JSON links (the API has the same
    at ``/api/v1/tenants/{tid}/widgets/{id}/export/``)."""
    widget = widget_selectors.widget_get(tenant=access.tenant, widget_id=widget_id)
    return export_response(widget, request.GET.get("format", "csv"))


# --- share links -------------------------------------------------------------------------------------
@tenant_page("dashboard.manage")
@require_POST
def share_add(request: HttpRequest, access: TenantAccess, dashboard_id: str) -> HttpResponse:
    dashboard = selectors.dashboard_get(tenant=access.tenant, dashboard_id=dashboard_id)
    try:
        days = int(request.POST.get("days") or 7)
    except ValueError:
        days = 0
    try:
        _, raw = services.share_create(actor=actor(request), dashboard=dashboard, days=days)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        request.session[NEW_SHARE] = request.build_absolute_uri(reverse("dashboard-shared", args=[raw]))
    return redirect("dashboard-detail", access.tenant.id, dashboard.id)


@tenant_page("dashboard.manage")
@require_POST
def share_revoke(request: HttpRequest, access: TenantAccess, dashboard_id: str, link_id: str) -> HttpResponse:
    dashboard = selectors.dashboard_get(tenant=access.tenant, dashboard_id=dashboard_id)
    link = selectors.share_links(dashboard).filter(pk=link_id).first()
    if link is None:
        raise Http404
    services.share_revoke(actor=actor(request), link=link)
    messages.success(request, f"Share link {link.prefix}… revoked: it no longer opens the dashboard.")
    return redirect("dashboard-detail", access.tenant.id, dashboard.id)


@require_GET
def dashboard_shared(request: HttpRequest, token: str) -> HttpResponse:
    """A shared dashboard for anyone with the link: read-only, the last data of each widget, updated
    by replaying its latest run (the link's websocket session can start nothing)."""
    dashboard = services.share_resolve(token)
    if dashboard is None:
        raise Http404
    client = {"tenant": "", "filters": [], "params": {}, "share_token": token}
    context = {**board_context(dashboard, tiles(dashboard), client), "shared": True}
    response = render(request, "dashboards/view.html", context)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    return response


@tenant_page("dashboard.manage")
@require_http_methods(["GET", "POST"])
def dashboard_edit(request: HttpRequest, access: TenantAccess, dashboard_id: str) -> HttpResponse:
    """The layout editor: widgets on the grid are dragged and resized (gridstack), added and removed;
    name, description and refresh interval; Save sends the layout as JSON, checked by the service."""
    dashboard = selectors.dashboard_get(tenant=access.tenant, dashboard_id=dashboard_id)
    errors: dict[str, Any] = {}
    if request.method == "POST":
        try:
            layout = json.loads(request.POST.get("layout") or "[]")
        except ValueError:
            layout = None
        try:
            refresh_s = int(request.POST.get("refresh_s") or 0)
        except ValueError:
            refresh_s = -1
        try:
            services.dashboard_update(
                actor=actor(request),
                dashboard=dashboard,
                name=request.POST.get("name", "").strip() or dashboard.name,
                description=request.POST.get("description", "").strip(),
                layout=layout,
                refresh_s=refresh_s,
            )
        except ApplicationError as exc:
            errors = {**(exc.details or {}), "form": [exc.message]}
        else:
            messages.success(request, f"Dashboard {dashboard.name!r} saved.")
            return redirect("dashboard-detail", access.tenant.id, dashboard.id)
        dashboard.refresh_from_db()
    placed = selectors.dashboard_widgets(dashboard)
    context = {
        "dashboard": dashboard,
        "placed": [{"item": item, "widget": widget} for item, widget in placed],
        "available": list(widget_selectors.widget_list(tenant=access.tenant).order_by("name")[:500]),
        "errors": errors,
        "columns": GRID_COLUMNS,
        "row_px": ROW_PX,
    }
    return render_page(
        request, access, "dashboards/edit.html", context, section=SECTION, status=400 if errors else 200
    )
