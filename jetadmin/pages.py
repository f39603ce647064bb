"""The server-rendered pages' one door into a tenant, the same as the API's.

:func:`tenant_page` wraps a page view: the signed-in user must be a member of the tenant in the URL
(anyone else gets 404, as the API answers a non-member) and, when the page names a permission code,
hold it (403 otherwise). The view receives the :class:`TenantAccess`; a ``NotFound`` or
``PermissionDenied`` raised by a selector or service inside it becomes the page's 404 or 403.
:func:`render_page` adds what the app shell needs (tenant, section, the role's permission codes).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework import exceptions as drf

from apps.tenancy.api.base import client_ip
from apps.tenancy.models import User
from apps.tenancy.selectors import MSG_MISSING_PERMISSION, TenantAccess, tenant_access
from apps.tenancy.services import Actor
from jetadmin.api.errors import ApplicationError

PAGE_SIZE = 50

View = Callable[..., HttpResponse]


def tenant_page(permission: str | None = None) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, tenant_id: Any, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                access = tenant_access(user=request.user, api_key=None, tenant_id=tenant_id)  # type: ignore[arg-type]
                if permission and not access.can(permission):
                    raise PermissionDenied(MSG_MISSING_PERMISSION.format(code=permission))
                return view(request, access, *args, **kwargs)
            except drf.NotFound as exc:
                raise Http404 from exc
            except drf.PermissionDenied as exc:
                raise PermissionDenied(str(exc.detail)) from exc

        return wrapper

    return decorate


def actor(request: HttpRequest) -> Actor:
    """The signed-in user as the services' actor (with the client address, for the audit log)."""
    user = request.user if isinstance(request.user, User) else None
    return Actor(user=user, ip=client_ip(request))


def error_text(exc: ApplicationError) -> str:
    """A refusal as one line for a flash message: the message, then each field's details."""
    details = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in (exc.details or {}).items())
    return f"{exc.message} {details}".strip()


def require(access: TenantAccess, code: str) -> None:
    """403 for a page action the member's role does not allow."""
    if not access.can(code):
        raise PermissionDenied(MSG_MISSING_PERMISSION.format(code=code))


def render_page(
    request: HttpRequest,
    access: TenantAccess,
    template: str,
    context: dict[str, Any],
    *,
    section: str,
    status: int = 200,
) -> HttpResponse:
    shell = {
        "tenant": access.tenant,
        "access": access,
        "section": section,
        "can": set(access.role.permissions),
    }
    return render(request, template, {**shell, **context}, status=status)


def paginate(request: HttpRequest, rows: Any, per_page: int = PAGE_SIZE) -> Page[Any]:
    """One page of ``rows`` by ``?page=`` (an out-of-range or malformed page gives the nearest one)."""
    return Paginator(rows, per_page).get_page(request.GET.get("page"))


def search_page(request: HttpRequest, rows: Any) -> tuple[Page[Any], str]:
    """A list page's rows: those whose name contains ``?q=``, one page of them, and the search text."""
    search = request.GET.get("q", "").strip()
    if search:
        rows = rows.filter(name__icontains=search)
    return paginate(request, rows), search
