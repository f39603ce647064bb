"""Dashboards: a named grid of a tenant's widgets (``layout``: ``[{widget, x, y, w, h}]`` on a
12-column grid) refreshed every ``refresh_s`` seconds while it is open, with ``filters`` whose values
(kept in the page's URL) become the widgets' input parameters."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from apps.tenancy.models import Tenant

GRID_COLUMNS = 12


class Dashboard(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="dashboards")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    layout = models.JSONField(default=list, blank=True)
    refresh_s = models.PositiveIntegerField(default=60)
    # [{id, type: "date-range"|"select", label, param, param_to?, options?, default?, from_widget?}]: values
    # flow into every widget's input parameters; a select with from_widget is set by clicking that chart.
    filters = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="dashboard_unique_name")]

    def __str__(self) -> str:
        return self.name


class ShareLink(models.Model):
    """A signed-out, read-only view of one dashboard: ``/share/<token>/``. The token is shown once and
    stored hashed; a link stops working when revoked or past ``expires_at``. Its websocket session may
    only subscribe to and replay this dashboard's widgets (never start a run)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="share_links")
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.dashboard_id})"
