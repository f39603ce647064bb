"""Every write in tenancy. Each service writes its audit row in the same transaction.

Services are keyword-only, take the tenant (or a tenant-scoped object) explicitly and an
:class:`Actor` — the user or API key behind the request, and its IP — and return the model.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Model
from django.urls import reverse
from django.utils import timezone

from jetadmin.api.errors import ApplicationError, Conflict
from jetadmin.db.rows import Lookup, insert_rows

from .models import (
    BUILTIN_ROLES,
    OWNER,
    PERMISSIONS,
    APIKey,
    AuditLog,
    AuthToken,
    Invite,
    Membership,
    Role,
    Tenant,
    User,
)

# Messages as constants so tests can assert them.
MSG_LAST_OWNER = "A tenant must keep at least one owner."
MSG_OWNER_ONLY = "Only an owner can do this."
MSG_BUILTIN_ROLE = "Built-in roles cannot be changed or deleted."
MSG_ROLE_IN_USE = "This role is still assigned to members or API keys."
MSG_ROLE_EXISTS = "A role with this name already exists."
MSG_ALREADY_MEMBER = "This user is already a member of the tenant."
MSG_NO_SUCH_USER = "No user with this username or email."
MSG_UNKNOWN_PERMISSION = "Unknown permission code {code!r}; known: {known}."
MSG_INVITE_INVALID = "This invite is invalid, expired, revoked or already used."
MSG_INVITE_NEEDS_ACCOUNT = "Log in, or give a username and password to create an account."
MSG_USERNAME_TAKEN = "This username is taken."

SECRET_MARKERS = ("password", "token", "secret", "key_hash", "api_key", "raw_key", "authorization")


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user, or an API key (never both), and the client address."""

    user: User | None = None
    api_key: APIKey | None = None
    ip: str | None = None

    @property
    def label(self) -> str:
        if self.api_key is not None:
            return f"api-key:{self.api_key.prefix}"
        return self.user.username if self.user is not None else "system"


SYSTEM = Actor()


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _new_secret(kind: str) -> tuple[str, str]:
    """A random credential ``<kind>_<43 chars>`` and the prefix that identifies it in listings."""
    raw = f"{kind}_{secrets.token_urlsafe(32)}"
    return raw, raw[:12]


def _scrub(value: Any) -> Any:
    """Drop anything that looks like a secret from an audit change summary (defence in depth)."""
    if isinstance(value, dict):
        return {
            k: ("[redacted]" if any(m in str(k).lower() for m in SECRET_MARKERS) else _scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def audit_log_write(
    *,
    actor: Actor,
    tenant: Tenant | None,
    action: str,
    obj: Model | None = None,
    object_type: str = "",
    object_id: str = "",
    changes: dict[str, Any] | None = None,
) -> AuditLog:
    entry = AuditLog(
        tenant=tenant,
        tenant_name=tenant.name if tenant is not None else "",
        actor=actor.user,
        api_key=actor.api_key,
        action=action,
        object_type=object_type or (str(obj._meta.model_name) if obj is not None else ""),
        object_id=object_id or (str(obj.pk) if obj is not None else ""),
        changes=_scrub(changes or {}),
        ip=actor.ip,
    )
    insert_rows([entry])  # written with every change: one prepared INSERT, not the ORM's compiled one
    return entry


# --- tenants --------------------------------------------------------------------------------------
@transaction.atomic
def tenant_create(*, actor: Actor, name: str) -> Tenant:
    if actor.user is None:
        raise ApplicationError("Only a user can create a tenant.", code="permission_denied", status_code=403)
    tenant = Tenant.objects.create(name=name)
    roles = {
        role_name: Role.objects.create(tenant=tenant, name=role_name, permissions=perms, is_builtin=True)
        for role_name, perms in BUILTIN_ROLES.items()
    }
    Membership.objects.create(tenant=tenant, user=actor.user, role=roles[OWNER])
    audit_log_write(actor=actor, tenant=tenant, action="tenant.create", obj=tenant, changes={"name": name})
    return tenant


# Checks of tenant settings that belong to a higher app (its name -> check(tenant, value) -> the value
# to store, or ApplicationError): the workflows app registers ``on_failure`` when it loads.
SETTING_CHECKS: dict[str, Any] = {}
TENANT_SETTINGS = ("name", "retention_days", "retention_failed_days", "retention_max_runs", "on_failure")


@transaction.atomic
def tenant_update(*, actor: Actor, tenant: Tenant, **changes: Any) -> Tenant:
    """Rename a tenant or change its settings (only the keys given)."""
    unknown = sorted(set(changes) - set(TENANT_SETTINGS))
    if unknown:
        raise ApplicationError("Unknown tenant settings.", details={k: ["Unknown setting."] for k in unknown})
    for key, check in SETTING_CHECKS.items():
        if key in changes:
            changes[key] = check(tenant, changes[key])
    diff = {k: [getattr(tenant, k), v] for k, v in changes.items() if getattr(tenant, k) != v}
    for key, value in changes.items():
        setattr(tenant, key, value)
    if diff:
        tenant.save(update_fields=list(diff))
        audit_log_write(actor=actor, tenant=tenant, action="tenant.update", obj=tenant, changes=diff)
    return tenant


@transaction.atomic
def tenant_delete(*, actor: Actor, tenant: Tenant) -> None:
    if not _is_owner(actor=actor, tenant=tenant):
        raise ApplicationError(MSG_OWNER_ONLY, code="permission_denied", status_code=403)
    audit_log_write(
        actor=actor, tenant=tenant, action="tenant.delete", obj=tenant, changes={"name": tenant.name}
    )
    # Roles are PROTECTed against deletion while held; the tenant's own holders go first.
    Membership.objects.filter(tenant=tenant).delete()
    APIKey.objects.filter(tenant=tenant).delete()
    tenant.delete()


def _is_owner(*, actor: Actor, tenant: Tenant) -> bool:
    if actor.user is None:
        return False
    return Membership.objects.filter(
        tenant=tenant, user=actor.user, role__name=OWNER, role__is_builtin=True
    ).exists()


# --- members --------------------------------------------------------------------------------------
def _guard_owner_change(
    *, actor: Actor, tenant: Tenant, old_role: Role | None, new_role: Role | None
) -> None:
    touches_owner = any(r is not None and r.is_builtin and r.name == OWNER for r in (old_role, new_role))
    if touches_owner and not _is_owner(actor=actor, tenant=tenant):
        raise ApplicationError(MSG_OWNER_ONLY, code="permission_denied", status_code=403)
    if old_role is not None and old_role.is_builtin and old_role.name == OWNER and new_role != old_role:
        owners = Membership.objects.select_for_update().filter(tenant=tenant, role=old_role)
        if owners.count() <= 1:
            raise ApplicationError(MSG_LAST_OWNER, details={"role": [MSG_LAST_OWNER]})


@transaction.atomic
def member_add(*, actor: Actor, tenant: Tenant, user: User, role: Role) -> Membership:
    _guard_owner_change(actor=actor, tenant=tenant, old_role=None, new_role=role)
    if Membership.objects.filter(tenant=tenant, user=user).exists():
        raise Conflict(MSG_ALREADY_MEMBER, details={"user": [MSG_ALREADY_MEMBER]})
    membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    audit_log_write(
        actor=actor,
        tenant=tenant,
        action="member.add",
        obj=membership,
        changes={"user": user.username, "role": role.name},
    )
    return membership


@transaction.atomic
def member_update(*, actor: Actor, membership: Membership, role: Role) -> Membership:
    tenant = membership.tenant
    old = membership.role
    _guard_owner_change(actor=actor, tenant=tenant, old_role=old, new_role=role)
    membership.role = role
    membership.save(update_fields=["role"])
    audit_log_write(
        actor=actor,
        tenant=tenant,
        action="member.update",
        obj=membership,
        changes={"user": membership.user.username, "role": [old.name, role.name]},
    )
    return membership


@transaction.atomic
def member_remove(*, actor: Actor, membership: Membership) -> None:
    tenant = membership.tenant
    _guard_owner_change(actor=actor, tenant=tenant, old_role=membership.role, new_role=None)
    audit_log_write(
        actor=actor,
        tenant=tenant,
        action="member.remove",
        obj=membership,
        changes={"user": membership.user.username, "role": membership.role.name},
    )
    membership.delete()


# --- roles ----------------------------------------------------------------------------------------
def _check_permission_codes(codes: list[str]) -> list[str]:
    known = ", ".join(PERMISSIONS)
    errors = [MSG_UNKNOWN_PERMISSION.format(code=c, known=known) for c in codes if c not in PERMISSIONS]
    if errors:
        raise ApplicationError(errors[0], details={"permissions": errors})
    return sorted(set(codes), key=list(PERMISSIONS).index)


@transaction.atomic
def role_create(
    *, actor: Actor, tenant: Tenant, name: str, permissions: list[str], description: str = ""
) -> Role:
    perms = _check_permission_codes(permissions)
    if Role.objects.filter(tenant=tenant, name=name).exists():
        raise Conflict(MSG_ROLE_EXISTS, details={"name": [MSG_ROLE_EXISTS]})
    role = Role.objects.create(tenant=tenant, name=name, permissions=perms, description=description)
    audit_log_write(
        actor=actor,
        tenant=tenant,
        action="role.create",
        obj=role,
        changes={"name": name, "permissions": perms},
    )
    return role


@transaction.atomic
def role_update(
    *,
    actor: Actor,
    role: Role,
    name: str | None = None,
    permissions: list[str] | None = None,
    description: str | None = None,
) -> Role:
    if role.is_builtin:
        raise ApplicationError(MSG_BUILTIN_ROLE)
    changes: dict[str, Any] = {}
    if name is not None and name != role.name:
        if Role.objects.filter(tenant=role.tenant, name=name).exclude(pk=role.pk).exists():
            raise Conflict(MSG_ROLE_EXISTS, details={"name": [MSG_ROLE_EXISTS]})
        changes["name"] = [role.name, name]
        role.name = name
    if permissions is not None:
        perms = _check_permission_codes(permissions)
        changes["permissions"] = [role.permissions, perms]
        role.permissions = perms
    if description is not None:
        role.description = description
    role.save()
    audit_log_write(actor=actor, tenant=role.tenant, action="role.update", obj=role, changes=changes)
    return role


@transaction.atomic
def role_delete(*, actor: Actor, role: Role) -> None:
    if role.is_builtin:
        raise ApplicationError(MSG_BUILTIN_ROLE)
    if role.memberships.exists() or role.api_keys.filter(revoked_at__isnull=True).exists():
        raise Conflict(MSG_ROLE_IN_USE)
    audit_log_write(
        actor=actor, tenant=role.tenant, action="role.delete", obj=role, changes={"name": role.name}
    )
    role.api_keys.all().delete()  # only revoked keys are left; they would block the PROTECT FK
    role.delete()


# --- API keys -------------------------------------------------------------------------------------
@transaction.atomic
def api_key_create(*, actor: Actor, tenant: Tenant, name: str, role: Role) -> tuple[APIKey, str]:
    """Create a key; the raw key is returned once and never stored."""
    raw, prefix = _new_secret("jak")
    key = APIKey.objects.create(
        tenant=tenant, role=role, name=name, prefix=prefix, key_hash=_hash(raw), created_by=actor.user
    )
    audit_log_write(
        actor=actor,
        tenant=tenant,
        action="api_key.create",
        obj=key,
        changes={"name": name, "role": role.name},
    )
    return key, raw


@transaction.atomic
def api_key_revoke(*, actor: Actor, api_key: APIKey) -> APIKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    audit_log_write(
        actor=actor,
        tenant=api_key.tenant,
        action="api_key.revoke",
        obj=api_key,
        changes={"name": api_key.name},
    )
    return api_key


def api_key_authenticate(*, raw: str) -> APIKey | None:
    key = APIKey.objects.select_related("tenant", "role").filter(key_hash=_hash(raw)).first()
    if key is None or key.revoked_at is not None:
        return None
    now = timezone.now()
    # Throttle the bookkeeping write to once a minute per key.
    if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1):
        APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


# --- user tokens ----------------------------------------------------------------------------------
@transaction.atomic
def auth_token_create(*, user: User, ip: str | None = None) -> tuple[AuthToken, str]:
    raw, prefix = _new_secret("jat")
    token = AuthToken.objects.create(
        user=user,
        prefix=prefix,
        key_hash=_hash(raw),
        expires_at=timezone.now() + timedelta(hours=settings.JETADMIN_TOKEN_TTL_HOURS),
    )
    audit_log_write(actor=Actor(user=user, ip=ip), tenant=None, action="auth.token_create", obj=token)
    return token, raw


@transaction.atomic
def auth_token_revoke(*, actor: Actor, token: AuthToken) -> None:
    audit_log_write(actor=actor, tenant=None, action="auth.token_revoke", obj=token)
    token.delete()


_TOKENS = Lookup(AuthToken, "key_hash", related=("user",))


def auth_token_authenticate(*, raw: str) -> AuthToken | None:
    token = _TOKENS.get(_hash(raw))  # every request: SQL built once, not compiled by the ORM each time
    if token is None or token.expires_at <= timezone.now() or not token.user.is_active:
        return None
    return token


# --- invites --------------------------------------------------------------------------------------
@transaction.atomic
def invite_create(*, actor: Actor, tenant: Tenant, email: str, role: Role) -> Invite:
    from .tasks import send_email

    _guard_owner_change(actor=actor, tenant=tenant, old_role=None, new_role=role)
    raw, _ = _new_secret("jin")
    invite = Invite.objects.create(
        tenant=tenant,
        email=email,
        role=role,
        token_hash=_hash(raw),
        invited_by=actor.user,
        expires_at=timezone.now() + timedelta(hours=settings.JETADMIN_INVITE_TTL_HOURS),
    )
    audit_log_write(
        actor=actor,
        tenant=tenant,
        action="invite.create",
        obj=invite,
        changes={"email": email, "role": role.name},
    )
    link = settings.JETADMIN_PUBLIC_URL.rstrip("/") + reverse("invite-accept", kwargs={"token": raw})
    subject = f"You are invited to {tenant.name} on jetadmin"
    body = (
        f"{actor.label} invited you to join {tenant.name} as {role.name}.\n\n"
        f"Accept the invite: {link}\n\nThe link expires on {invite.expires_at:%Y-%m-%d %H:%M} UTC."
    )
    transaction.on_commit(lambda: send_email.delay(to=[email], subject=subject, body=body))
    return invite


@transaction.atomic
def invite_revoke(*, actor: Actor, invite: Invite) -> Invite:
    if invite.revoked_at is None and invite.accepted_at is None:
        invite.revoked_at = timezone.now()
        invite.save(update_fields=["revoked_at"])
    audit_log_write(
        actor=actor, tenant=invite.tenant, action="invite.revoke", obj=invite, changes={"email": invite.email}
    )
    return invite


def invite_get_by_token(*, raw: str) -> Invite | None:
    invite = Invite.objects.select_related("tenant", "role").filter(token_hash=_hash(raw)).first()
    if invite is None or invite.accepted_at or invite.revoked_at or invite.expires_at <= timezone.now():
        return None
    return invite


@transaction.atomic
def invite_accept(
    *,
    raw_token: str,
    user: User | None = None,
    username: str = "",
    password: str = "",
    ip: str | None = None,
) -> Membership:
    """Accept an invite as ``user``, or create the account ``username``/``password`` for it."""
    invite = invite_get_by_token(raw=raw_token)
    if invite is None:
        raise ApplicationError(MSG_INVITE_INVALID, details={"token": [MSG_INVITE_INVALID]})
    invite = Invite.objects.select_for_update().get(pk=invite.pk)
    if invite.accepted_at is not None:
        raise ApplicationError(MSG_INVITE_INVALID, details={"token": [MSG_INVITE_INVALID]})
    if user is None:
        if not username or not password:
            raise ApplicationError(MSG_INVITE_NEEDS_ACCOUNT, details={"username": [MSG_INVITE_NEEDS_ACCOUNT]})
        if User.objects.filter(username=username).exists():
            raise Conflict(MSG_USERNAME_TAKEN, details={"username": [MSG_USERNAME_TAKEN]})
        candidate = User(username=username, email=invite.email)
        try:
            password_validation.validate_password(password, candidate)
        except DjangoValidationError as exc:
            raise ApplicationError(exc.messages[0], details={"password": exc.messages}) from exc
        candidate.set_password(password)
        try:
            candidate.save()
        except IntegrityError as exc:
            raise Conflict(MSG_USERNAME_TAKEN, details={"username": [MSG_USERNAME_TAKEN]}) from exc
        user = candidate
    if Membership.objects.filter(tenant=invite.tenant, user=user).exists():
        raise Conflict(MSG_ALREADY_MEMBER, details={"token": [MSG_ALREADY_MEMBER]})
    membership = Membership.objects.create(tenant=invite.tenant, user=user, role=invite.role)
    invite.accepted_at = timezone.now()
    invite.accepted_by = user
    invite.save(update_fields=["accepted_at", "accepted_by"])
    audit_log_write(
        actor=Actor(user=user, ip=ip),
        tenant=invite.tenant,
        action="invite.accept",
        obj=invite,
        changes={"email": invite.email, "role": invite.role.name, "user": user.username},
    )
    return membership


# --- users ----------------------------------------------------------------------------------------
def user_find(*, identifier: str) -> User:
    """A user by username or email (for adding members)."""
    user = (
        User.objects.filter(username=identifier).first()
        or User.objects.filter(email__iexact=identifier).first()
    )
    if user is None:
        raise ApplicationError(MSG_NO_SUCH_USER, details={"user": [MSG_NO_SUCH_USER]})
    return user
