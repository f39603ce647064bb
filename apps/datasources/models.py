"""Datasources: a tenant's connection to a database or API, typed by a connector.

``config`` holds the non-secret fields; the connector schema's ``writeOnly`` fields live encrypted in
``secrets_encrypted`` (a JSON object, MultiFernet — jetadmin/crypto.py) and never leave the server.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from apps.tenancy.models import Tenant


class Datasource(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="datasources")
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=50)
    config = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The last connection test of the saved config (the list's health column): None until tested.
    health_ok = models.BooleanField(null=True, blank=True)
    health_message = models.CharField(max_length=500, blank=True, default="")
    health_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="datasource_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"
