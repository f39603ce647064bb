"""Workflow triggers: cron schedules fired by a periodic tick, and webhook tokens that start runs.

* ``Schedule`` — a 5-field cron expression read in an IANA timezone; ``next_run_at`` (UTC) is the next
  tick, so the periodic task only asks "which enabled schedules are due" (indexed).
* ``Webhook`` — a token stored as its SHA-256 (shown once at creation) and an optional HMAC secret,
  which is stored as given because verifying a signature needs it; the API never returns it.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from apps.tenancy.models import Tenant
from apps.workflows.models import Workflow, WorkflowInstance


class Overlap(models.TextChoices):
    SKIP = "skip"  # a tick while the previous run is still open starts nothing
    ALLOW = "allow"


class Schedule(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="schedules")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="schedules")
    cron = models.CharField(max_length=100)
    timezone = models.CharField(max_length=64, default="UTC")
    input = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    overlap = models.CharField(max_length=8, choices=Overlap.choices, default=Overlap.SKIP)
    # UTC; None while disabled.
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_instance = models.ForeignKey(
        WorkflowInstance, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    skipped_count = models.PositiveIntegerField(default=0)
    last_skipped_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="schedule_due")]

    def __str__(self) -> str:
        return f"{self.cron} ({self.timezone})"


class Webhook(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhooks")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=200, blank=True, default="")
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16)
    # The HMAC-SHA256 key senders sign bodies with, encrypted (jetadmin/crypto.py); "" = no signature
    # required. Write-only in the API, never shown in the admin.
    secret_encrypted = models.TextField(blank=True, default="")
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self) -> str:
        return f"{self.name or 'webhook'} ({self.prefix}…)"

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_encrypted)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
