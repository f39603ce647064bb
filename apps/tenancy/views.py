"""Server-rendered tenancy pages: the landing redirect, the tenant home, accepting an invite."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from rest_framework.exceptions import NotFound

from jetadmin.api.errors import ApplicationError

from . import selectors, services
from .api.base import client_ip
from .models import PERMISSIONS


@login_required
def home(request: HttpRequest) -> HttpResponse:
    memberships = list(selectors.tenant_list_for_user(user=request.user))  # type: ignore[arg-type]
    if len(memberships) == 1:
        return redirect("tenant-home", tenant_id=memberships[0].tenant_id)
    return render(request, "tenancy/home.html", {"memberships": memberships})


@login_required
def tenant_home(request: HttpRequest, tenant_id: str) -> HttpResponse:
    try:
        access = selectors.tenant_access(user=request.user, api_key=None, tenant_id=tenant_id)  # type: ignore[arg-type]
    except NotFound as exc:
        raise Http404 from exc
    tenant = access.tenant
    context = {
        "tenant": tenant,
        "role": access.role,
        "members": selectors.member_list(tenant=tenant)[:50],
        "member_count": selectors.member_list(tenant=tenant).count(),
        "permissions": [(code, PERMISSIONS[code]) for code in access.role.permissions],
        "recent_audit": selectors.audit_log_list(tenant=tenant)[:10] if access.can("audit.view") else None,
    }
    return render(request, "tenancy/tenant_home.html", context)


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
