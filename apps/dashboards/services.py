"""Every write in dashboards. A layout names widgets of the same tenant, each placed on the 12-column
grid (``x + w <= 12``); ``refresh_s`` is at least ``JETADMIN_DASHBOARD_MIN_REFRESH_S``."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.tenancy.models import Tenant
from apps.tenancy.services import Actor, audit_log_write
from apps.widgets import selectors as widget_selectors
from jetadmin.api.errors import ApplicationError

from .models import GRID_COLUMNS, Dashboard, ShareLink

MSG_DUPLICATE = "A dashboard named {name!r} already exists in this tenant."


def layout_checked(*, tenant: Tenant, layout: Any) -> list[dict[str, Any]]:
    """The layout with ids as text and every problem named by ``layout[i].field``."""
    if not isinstance(layout, list):
        raise ApplicationError(
            "layout must be a list.", details={"layout": ["Expected a list of placements."]}
        )
    errors: dict[str, list[str]] = {}
    out: list[dict[str, Any]] = []
    wanted: dict[int, str] = {}
    for i, item in enumerate(layout):
        if not isinstance(item, dict):
            errors[f"layout[{i}]"] = ["Expected {widget, x, y, w, h}."]
            continue
        try:
            wanted[i] = str(uuid.UUID(str(item.get("widget"))))
        except ValueError:
            errors[f"layout[{i}].widget"] = ["Expected a widget id."]
        place: dict[str, Any] = {"widget": wanted.get(i)}
        for key, low, default in (("x", 0, 0), ("y", 0, 0), ("w", 1, 4), ("h", 1, 3)):
            value = item.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                errors[f"layout[{i}].{key}"] = [f"Expected a whole number >= {low}."]
            place[key] = value
        if (
            isinstance(place["x"], int)
            and isinstance(place["w"], int)
            and place["x"] + place["w"] > GRID_COLUMNS
        ):
            errors[f"layout[{i}].w"] = [f"x + w must be at most {GRID_COLUMNS} (the grid's columns)."]
        out.append(place)
    known = {
        str(pk)
        for pk in widget_selectors.widget_list(tenant=tenant)
        .filter(pk__in=wanted.values())
        .values_list("pk", flat=True)
    }
    for i, wid in wanted.items():
        if wid not in known:
            errors[f"layout[{i}].widget"] = ["No such widget in this tenant."]
    if errors:
        raise ApplicationError("The layout has errors.", details=errors)
    return out


FILTER_TYPES = ("date-range", "select")
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,39}$")


def filters_checked(*, filters: Any, layout: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Dashboard filters, each problem named by ``filters[i].field``."""
    if not isinstance(filters, list):
        raise ApplicationError(
            "filters must be a list.", details={"filters": ["Expected a list of filters."]}
        )
    errors: dict[str, list[str]] = {}
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    placed = {str(item["widget"]) for item in layout}
    for i, item in enumerate(filters):
        at = f"filters[{i}]"
        if not isinstance(item, dict):
            errors[at] = ["Expected {id, type, label, param, ...}."]
            continue
        fid, kind, param = item.get("id"), item.get("type"), item.get("param")
        if not isinstance(fid, str) or not _ID.match(fid):
            errors[f"{at}.id"] = ["Letters, digits, _ and -, starting with a letter (at most 40)."]
        elif fid in seen:
            errors[f"{at}.id"] = ["Used by another filter."]
        seen.add(str(fid))
        if kind not in FILTER_TYPES:
            errors[f"{at}.type"] = [f"One of {', '.join(FILTER_TYPES)}."]
        if not isinstance(param, str) or not param:
            errors[f"{at}.param"] = ["The input parameter this filter sets."]
        clean: dict[str, Any] = {
            "id": fid,
            "type": kind,
            "label": str(item.get("label") or fid),
            "param": param,
        }
        if kind == "date-range" and item.get("param_to") is not None:
            if not isinstance(item["param_to"], str) or not item["param_to"]:
                errors[f"{at}.param_to"] = ["The input parameter of the range's end."]
            clean["param_to"] = item["param_to"]
        if kind == "select":
            options = item.get("options", [])
            if not isinstance(options, list) or not all(isinstance(o, str | int | float) for o in options):
                errors[f"{at}.options"] = ["A list of values."]
            clean["options"] = options
            if item.get("from_widget") is not None:
                if str(item["from_widget"]) not in placed:
                    errors[f"{at}.from_widget"] = ["A widget of this dashboard's layout."]
                clean["from_widget"] = str(item["from_widget"])
        if item.get("default") is not None:
            clean["default"] = item["default"]
        out.append(clean)
    if errors:
        raise ApplicationError("The filters have errors.", details=errors)
    return out


def _refresh_checked(value: Any) -> int:
    low = settings.JETADMIN_DASHBOARD_MIN_REFRESH_S
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ApplicationError(
            f"refresh_s must be a whole number of seconds, at least {low}.",
            details={"refresh_s": [f"At least {low}."]},
        )
    return value


def dashboard_create(
    *,
    actor: Actor,
    tenant: Tenant,
    name: str,
    layout: Any = None,
    refresh_s: Any = 60,
    description: str = "",
    filters: Any = None,
    pk: Any = None,
) -> Dashboard:
    placed = layout_checked(tenant=tenant, layout=[] if layout is None else layout)
    dashboard = Dashboard(
        **({"id": pk} if pk else {}),
        tenant=tenant,
        name=name,
        description=description,
        layout=placed,
        filters=filters_checked(filters=[] if filters is None else filters, layout=placed),
        refresh_s=_refresh_checked(refresh_s),
        created_by=actor.user,
    )
    try:
        with transaction.atomic():
            dashboard.save()
            audit_log_write(
                actor=actor, tenant=tenant, action="dashboard.create", obj=dashboard, changes={"name": name}
            )
    except IntegrityError:
        raise ApplicationError(MSG_DUPLICATE.format(name=name), details={"name": ["Already used."]}) from None
    return dashboard


def dashboard_update(*, actor: Actor, dashboard: Dashboard, **changes: Any) -> Dashboard:
    if "layout" in changes:
        changes["layout"] = layout_checked(tenant=dashboard.tenant, layout=changes["layout"])
    if "filters" in changes or "layout" in changes:
        changes["filters"] = filters_checked(
            filters=changes.get("filters", dashboard.filters), layout=changes.get("layout", dashboard.layout)
        )
    if "refresh_s" in changes:
        changes["refresh_s"] = _refresh_checked(changes["refresh_s"])
    for key, value in changes.items():
        setattr(dashboard, key, value)
    try:
        with transaction.atomic():
            dashboard.save()
            audit_log_write(
                actor=actor,
                tenant=dashboard.tenant,
                action="dashboard.update",
                obj=dashboard,
                changes={"fields": sorted(changes)},
            )
    except IntegrityError:
        raise ApplicationError(
            MSG_DUPLICATE.format(name=dashboard.name), details={"name": ["Already used."]}
        ) from None
    return dashboard


@transaction.atomic
def dashboard_delete(*, actor: Actor, dashboard: Dashboard) -> None:
    audit_log_write(
        actor=actor,
        tenant=dashboard.tenant,
        action="dashboard.delete",
        obj=dashboard,
        changes={"name": dashboard.name},
    )
    dashboard.delete()


# --- share links -----------------------------------------------------------------------------------
SHARE_PREFIX = "jsh_"
MAX_SHARE_DAYS = 365


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def share_create(*, actor: Actor, dashboard: Dashboard, days: Any = 7) -> tuple[ShareLink, str]:
    """A read-only link to the dashboard, valid ``days`` days; the raw token is returned once."""
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_SHARE_DAYS:
        raise ApplicationError(
            f"A link lasts 1 to {MAX_SHARE_DAYS} days.", details={"days": [f"1 to {MAX_SHARE_DAYS}."]}
        )
    raw = SHARE_PREFIX + secrets.token_urlsafe(32)
    link = ShareLink.objects.create(
        dashboard=dashboard,
        token_hash=_token_hash(raw),
        prefix=raw[:12],
        created_by=actor.user,
        expires_at=timezone.now() + timedelta(days=days),
    )
    audit_log_write(
        actor=actor, tenant=dashboard.tenant, action="dashboard.share", obj=dashboard,
        changes={"link": link.prefix, "days": days},
    )  # fmt: skip
    return link, raw


def share_revoke(*, actor: Actor, link: ShareLink) -> None:
    if link.revoked_at is None:
        ShareLink.objects.filter(pk=link.pk).update(revoked_at=timezone.now())
    audit_log_write(
        actor=actor, tenant=link.dashboard.tenant, action="dashboard.unshare", obj=link.dashboard,
        changes={"link": link.prefix},
    )  # fmt: skip


def share_resolve(raw: str) -> Dashboard | None:
    """The dashboard a share token opens, or None (unknown, revoked or expired)."""
    if not isinstance(raw, str) or not raw.startswith(SHARE_PREFIX) or len(raw) > 100:
        return None
    link = (
        ShareLink.objects.filter(token_hash=_token_hash(raw), revoked_at=None, expires_at__gt=timezone.now())
        .select_related("dashboard__tenant")
        .first()
    )
    return link.dashboard if link is not None else None
