"""Saved queries: a body for one datasource (SQL text with bound parameters, or a connector-specific
object), the JSON Schema its parameters must satisfy, a row cap and a timeout."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from apps.datasources.models import Datasource
from apps.tenancy.models import Tenant


class DataQuery(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="queries")
    datasource = models.ForeignKey(Datasource, on_delete=models.CASCADE, related_name="queries")
    name = models.CharField(max_length=200)
    body = models.JSONField()
    params_schema = models.JSONField(null=True, blank=True)
    row_limit = models.PositiveIntegerField(default=1000)
    timeout_s = models.FloatField(default=30.0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name, verbose_name_plural = "saved query", "saved queries"
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="query_unique_name")]

    def __str__(self) -> str:
        return self.name
