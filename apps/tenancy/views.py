"""Server-rendered tenancy pages: the landing redirect, accepting an invite, and the settings page
(members, invites, roles, API keys shown once, the audit log), each action checked like the API."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from jetadmin.api.errors import ApplicationError
from jetadmin.pages import actor, paginate, render_page, tenant_page

from . import selectors, services
from .api.base import client_ip
from .models import PERMISSIONS
from .selectors import TenantAccess


@login_required
def home(request: HttpRequest) -> HttpResponse:
    memberships = list(selectors.tenant_list_for_user(user=request.user))  # type: ignore[arg-type]
    if len(memberships) == 1:
        return redirect("tenant-home", tenant_id=memberships[0].tenant_id)
    return render(request, "tenancy/home.html", {"memberships": memberships})


@require_http_methods(["GET", "POST"])
def invite_accept_page(request: HttpRequest, token: str) -> HttpResponse:
    invite = services.invite_get_by_token(raw=token)
    if invite is None:
        return render(request, "tenancy/invite_accept.html", {"invalid": True}, status=404)
    error = ""
    if request.method == "POST":
        user = request.user if request.user.is_authenticated else None
        try:
            membership = services.invite_accept(
                raw_token=token,
                user=user,
                username=request.POST.get("username", ""),
                password=request.POST.get("password", ""),
                ip=client_ip(request),
            )
        except ApplicationError as exc:
            error = exc.message
        else:
            if user is None:
                login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome to {membership.tenant.name}.")
            return redirect("tenant-home", tenant_id=membership.tenant_id)
    return render(request, "tenancy/invite_accept.html", {"invite": invite, "error": error})


# --- settings: members, invites, roles, API keys, audit log -----------------------------------------
NEW_KEY = "jetadmin.new_api_key"


@tenant_page()
def settings_page(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    new_key = request.session.pop(NEW_KEY, "")
    response = _settings(request, access, new_key=new_key)
    if new_key:
        response["Cache-Control"] = "no-store"
    return response


def _settings(
    request: HttpRequest,
    access: TenantAccess,
    *,
    new_key: str = "",
    status: int = 200,
    errors: dict[str, Any] | None = None,
) -> HttpResponse:
    tenant = access.tenant
    manage_members, manage_tenant = access.can("member.manage"), access.can("tenant.manage")
    max_running, max_starts = selectors.tenant_limits(tenant_id=tenant.id)
    context = {
        "members": list(selectors.member_list(tenant=tenant).order_by("user__username")[:200]),
        "roles": list(selectors.role_list(tenant=tenant)),
        "invites": list(selectors.invite_list(tenant=tenant).filter(accepted_at=None, revoked_at=None)[:100])
        if manage_members
        else [],
        "api_keys": list(selectors.api_key_list(tenant=tenant).select_related("role")[:100])
        if manage_tenant
        else [],
        "all_permissions": list(PERMISSIONS.items()),
        "new_key": new_key,
        "limits": {"max_running_nodes": max_running, "max_starts_per_minute": max_starts},
        "form_errors": errors or {},
    }
    return render_page(request, access, "tenancy/settings.html", context, section="settings", status=status)


def _settings_error(
    request: HttpRequest, access: TenantAccess, form: str, exc: ApplicationError
) -> HttpResponse:
    messages.error(request, exc.message)
    return _settings(request, access, status=400, errors={form: exc.details or {}})


def _role(access: TenantAccess, value: str) -> Any:
    role = selectors.role_get_for_input(tenant=access.tenant, value=value)
    if role is None:
        raise ApplicationError("Choose a role of this tenant.", details={"role": ["Unknown role."]})
    return role


@tenant_page("member.manage")
@require_POST
def settings_invite(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    email = request.POST.get("email", "").strip()
    try:
        if "@" not in email:
            raise ApplicationError(
                "Enter the invitee's email address.", details={"email": ["Enter a valid email."]}
            )
        services.invite_create(
            actor=actor(request),
            tenant=access.tenant,
            email=email,
            role=_role(access, request.POST.get("role", "")),
        )
    except ApplicationError as exc:
        return _settings_error(request, access, "invite", exc)
    messages.success(request, f"Invite sent to {email}.")
    return redirect("settings", access.tenant.id)


@tenant_page("member.manage")
@require_POST
def settings_invite_revoke(request: HttpRequest, access: TenantAccess, invite_id: str) -> HttpResponse:
    invite = selectors.invite_get(tenant=access.tenant, invite_id=invite_id)
    services.invite_revoke(actor=actor(request), invite=invite)
    messages.success(request, f"Invite for {invite.email} revoked.")
    return redirect("settings", access.tenant.id)


@tenant_page("member.manage")
@require_POST
def settings_member(request: HttpRequest, access: TenantAccess, member_id: str) -> HttpResponse:
    """Change a member's role, or remove them (``action=remove``)."""
    membership = selectors.member_get(tenant=access.tenant, member_id=member_id)
    try:
        if request.POST.get("action") == "remove":
            services.member_remove(actor=actor(request), membership=membership)
            messages.success(request, f"{membership.user.username} removed.")
        else:
            role = _role(access, request.POST.get("role", ""))
            services.member_update(actor=actor(request), membership=membership, role=role)
            messages.success(request, f"{membership.user.username} is now {role.name}.")
    except ApplicationError as exc:
        return _settings_error(request, access, "member", exc)
    return redirect("settings", access.tenant.id)


@tenant_page("member.manage")
@require_POST
def settings_role_new(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    name = request.POST.get("name", "").strip()
    try:
        if not name:
            raise ApplicationError("Give the role a name.", details={"name": ["Required."]})
        services.role_create(
            actor=actor(request),
            tenant=access.tenant,
            name=name,
            permissions=request.POST.getlist("permissions"),
            description=request.POST.get("description", "").strip(),
        )
    except ApplicationError as exc:
        return _settings_error(request, access, "role", exc)
    messages.success(request, f"Role {name!r} created.")
    return redirect("settings", access.tenant.id)


@tenant_page("tenant.manage")
@require_POST
def settings_api_key_new(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    """Create a key and show it once, on the next view of the settings page (it is stored hashed)."""
    name = request.POST.get("name", "").strip()
    try:
        if not name:
            raise ApplicationError("Give the key a name.", details={"name": ["Required."]})
        _, raw = services.api_key_create(
            actor=actor(request),
            tenant=access.tenant,
            name=name,
            role=_role(access, request.POST.get("role", "")),
        )
    except ApplicationError as exc:
        return _settings_error(request, access, "api_key", exc)
    request.session[NEW_KEY] = raw  # shown by the next view of the page, once (post/redirect/get)
    return redirect("settings", access.tenant.id)


@tenant_page("tenant.manage")
@require_POST
def settings_api_key_revoke(request: HttpRequest, access: TenantAccess, key_id: str) -> HttpResponse:
    key = selectors.api_key_get(tenant=access.tenant, key_id=key_id)
    services.api_key_revoke(actor=actor(request), api_key=key)
    messages.success(request, f"API key {key.name!r} revoked.")
    return redirect("settings", access.tenant.id)


@tenant_page("audit.view")
def audit_page(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    filters = {key: request.GET.get(key, "").strip() for key in ("action", "object_type")}
    rows = selectors.audit_log_list(tenant=access.tenant, **{k: v or None for k, v in filters.items()})
    page = paginate(request, rows.order_by("-created_at"))
    query_extra = "".join(f"{k}={v}&" for k, v in filters.items() if v)
    context = {"page": page, "filters": filters, "query_extra": query_extra}
    return render_page(request, access, "tenancy/audit.html", context, section="settings")
