"""Reads in tenancy. Every selector takes the tenant; access selectors raise 404/403.

:func:`tenant_access` is the one door into a tenant: it turns "this principal asked for tenant X"
into a :class:`TenantAccess` (tenant + role) or a 404 — a non-member never learns the tenant exists.
``TenantAccess.require(code)`` then gives 403 for a member whose role lacks the permission.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet
from rest_framework.exceptions import NotFound, PermissionDenied

from jetadmin.db.rows import Lookup

from .models import APIKey, AuditLog, Invite, Membership, Role, Tenant, User

MSG_MISSING_PERMISSION = "Your role does not have the permission {code!r}."


@dataclass(frozen=True)
class TenantAccess:
    tenant: Tenant
    role: Role
    user: User | None = None
    api_key: APIKey | None = None

    def can(self, code: str) -> bool:
        return self.role.has(code)

    def require(self, code: str) -> None:
        if not self.can(code):
            raise PermissionDenied(MSG_MISSING_PERMISSION.format(code=code))


def _as_uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise NotFound() from exc


_MEMBERSHIPS = Lookup(Membership, "tenant", "user", related=("tenant", "role"))


def tenant_access(*, user: User | None, api_key: APIKey | None, tenant_id: Any) -> TenantAccess:
    tid = _as_uuid(tenant_id)
    if api_key is not None:
        if api_key.tenant_id != tid or api_key.revoked_at is not None:
            raise NotFound()
        return TenantAccess(tenant=api_key.tenant, role=api_key.role, api_key=api_key)
    if user is None or not user.is_authenticated:
        raise NotFound()
    membership = _MEMBERSHIPS.get(tid, user.pk)  # every request: SQL built once, not compiled each time
    if membership is None:
        raise NotFound()
    return TenantAccess(tenant=membership.tenant, role=membership.role, user=user)


def tenant_list_for_user(*, user: User) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user)
        .select_related("tenant", "role")
        .order_by("tenant__name", "tenant_id")
    )


def member_list(*, tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.filter(tenant=tenant).select_related("user", "role", "tenant")


def member_get(*, tenant: Tenant, member_id: Any) -> Membership:
    membership = member_list(tenant=tenant).filter(pk=_as_uuid(member_id)).first()
    if membership is None:
        raise NotFound()
    return membership


def role_list(*, tenant: Tenant) -> QuerySet[Role]:
    return (
        Role.objects.filter(tenant=tenant)
        .select_related("tenant")
        .annotate(member_count=Count("memberships"))
        .order_by("-is_builtin", "name")
    )


def role_get(*, tenant: Tenant, role_id: Any) -> Role:
    role = Role.objects.filter(tenant=tenant, pk=_as_uuid(role_id)).select_related("tenant").first()
    if role is None:
        raise NotFound()
    return role


def role_get_for_input(*, tenant: Tenant, value: Any) -> Role | None:
    """A role of this tenant by id or by name (API input), or None."""
    qs = Role.objects.filter(tenant=tenant)
    try:
        return qs.filter(pk=uuid.UUID(str(value))).first()
    except ValueError:
        return qs.filter(name=str(value)).first()


def api_key_list(*, tenant: Tenant) -> QuerySet[APIKey]:
    return APIKey.objects.filter(tenant=tenant).select_related("role", "created_by", "tenant")


def api_key_get(*, tenant: Tenant, key_id: Any) -> APIKey:
    key = api_key_list(tenant=tenant).filter(pk=_as_uuid(key_id)).first()
    if key is None:
        raise NotFound()
    return key


def invite_list(*, tenant: Tenant) -> QuerySet[Invite]:
    return Invite.objects.filter(tenant=tenant).select_related("role", "invited_by", "tenant")


def invite_get(*, tenant: Tenant, invite_id: Any) -> Invite:
    invite = invite_list(tenant=tenant).filter(pk=_as_uuid(invite_id)).first()
    if invite is None:
        raise NotFound()
    return invite


def audit_log_list(
    *, tenant: Tenant, action: str | None = None, object_type: str | None = None, object_id: str | None = None
) -> QuerySet[AuditLog]:
    qs = AuditLog.objects.filter(tenant=tenant).select_related("actor", "api_key")
    if action:
        qs = qs.filter(action=action)
    if object_type:
        qs = qs.filter(object_type=object_type)
    if object_id:
        qs = qs.filter(object_id=object_id)
    return qs


def tenant_limits(*, tenant_id: Any) -> tuple[int | None, int | None]:
    """The tenant's fair-sharing overrides: (max running nodes, max run starts per minute); None = default."""
    row = (
        Tenant.objects.filter(pk=tenant_id).values_list("max_running_nodes", "max_starts_per_minute").first()
    )
    return (row[0], row[1]) if row else (None, None)
