"""Tenancy: who may do what, where.

* ``Tenant`` — the unit of isolation; every other row in jetadmin belongs to one.
* ``Role`` — a named set of permission codes (``<area>.<action>``). Each tenant gets the four
  built-ins (owner/admin/editor/viewer, immutable) and may define custom roles.
* ``Membership`` — a user in a tenant, with one role.
* ``APIKey`` — a tenant-bound credential with a role; only its SHA-256 is stored, its prefix is shown.
* ``AuthToken`` — a user's expiring API token (``Authorization: Token``), stored hashed.
* ``Invite`` — an emailed, single-use token that adds a user with a role.
* ``AuditLog`` — one row per mutating action: who (user or API key), what, on which object, from where.
"""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

# --- permission codes (CONTRACT "Accounts and tenancy") --------------------------------------------
PERMISSIONS: dict[str, str] = {
    "datasource.view": "See datasources",
    "datasource.manage": "Create, change and delete datasources",
    "query.view": "See saved queries",
    "query.manage": "Create, change and delete saved queries",
    "query.run": "Run queries",
    "workflow.view": "See workflows and their runs",
    "workflow.manage": "Create, change and delete workflows",
    "workflow.run": "Run workflows and answer their waiting steps",
    "widget.view": "See widgets",
    "widget.manage": "Create, change and delete widgets",
    "dashboard.view": "See dashboards",
    "dashboard.manage": "Create, change and delete dashboards",
    "tenant.manage": "Rename the tenant, manage API keys",
    "member.manage": "Invite, remove and change the role of members; manage roles",
    "audit.view": "Read the audit log",
}

_VIEW = [p for p in PERMISSIONS if p.endswith(".view") and p != "audit.view"]
_CONTENT = [
    p for p in PERMISSIONS if p.split(".")[0] in {"datasource", "query", "workflow", "widget", "dashboard"}
]

BUILTIN_ROLES: dict[str, list[str]] = {
    "owner": list(PERMISSIONS),
    "admin": list(PERMISSIONS),
    "editor": _CONTENT,
    "viewer": _VIEW,
}
OWNER = "owner"


class UUIDModel(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)

    class Meta:
        abstract = True


class User(AbstractUser):
    """The Django user, with a UUID id like every other object in the API."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)


class Tenant(UUIDModel):
    name = models.CharField(max_length=200)
    # Fair sharing on shared workers; empty = the JETADMIN_TENANT_* defaults (0 there = no limit).
    max_running_nodes = models.PositiveIntegerField(null=True, blank=True)
    max_starts_per_minute = models.PositiveIntegerField(null=True, blank=True)
    # This tenant's share of saturated workers relative to the others (apps/workflows/engine/dispatch.py).
    share_weight = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    # How long ended runs (with their journal and blobs) are kept; empty = the JETADMIN_RETENTION_*
    # defaults, 0 = no limit (apps/workflows/retention.py).
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    retention_failed_days = models.PositiveIntegerField(null=True, blank=True)
    retention_max_runs = models.PositiveIntegerField(null=True, blank=True)  # per workflow
    # When a scheduled, webhook or API run fails, unless its workflow says (apps/workflows/alerts.py).
    on_failure = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Role(UUIDModel):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="roles")
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, blank=True, default="")
    permissions = models.JSONField(default=list)
    is_builtin = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_builtin", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="role_unique_name_per_tenant")]

    def __str__(self) -> str:
        return self.name

    def has(self, code: str) -> bool:
        return code in self.permissions


class Membership(UUIDModel):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"


class APIKey(UUIDModel):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuthToken(UUIDModel):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="auth_tokens")
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self) -> str:
        return f"token {self.prefix}… of {self.user}"


class Invite(UUIDModel):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invites")
    email = models.EmailField()
    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="invites")
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self) -> str:
        return f"invite {self.email} to {self.tenant}"


class AuditLog(UUIDModel):
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_logs"
    )
    # Kept after the tenant is deleted, so deleting a tenant is itself auditable.
    tenant_name = models.CharField(max_length=200, blank=True, default="")
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    api_key = models.ForeignKey(APIKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64, blank=True, default="")
    changes = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="audit_tenant_time")]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type} {self.object_id}"
