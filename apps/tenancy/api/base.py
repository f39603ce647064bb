"""Plumbing for tenant-scoped API views.

A :class:`TenantAPIView` resolves ``tenant_id`` from the URL through
:func:`apps.tenancy.selectors.tenant_access` (404 for non-members) and checks the permission code its
``permissions`` map names for the HTTP method (403 without it) before the handler runs. Other apps'
views subclass it, so no view filters by tenant or checks roles by hand.
"""

from __future__ import annotations

from typing import Any

from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from apps.tenancy import selectors
from apps.tenancy.authentication import APIKeyPrincipal
from apps.tenancy.models import APIKey, User
from apps.tenancy.services import Actor


def client_ip(request: Any) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def request_principal(request: Request) -> tuple[User | None, APIKey | None]:
    if isinstance(request.auth, APIKey):
        return None, request.auth
    user = request.user
    if isinstance(user, APIKeyPrincipal) or not user.is_authenticated:
        return None, None
    return user, None


def actor_from_request(request: Request) -> Actor:
    user, api_key = request_principal(request)
    return Actor(user=user, api_key=api_key, ip=client_ip(request))


class APIView(GenericAPIView):
    # Base for every jetadmin API view: helpers for pagination and the acting principal. (A comment,
    # not a docstring: the OpenAPI schema would show an inherited docstring as every operation's
    # description.)

    def actor(self) -> Actor:
        return actor_from_request(self.request)

    def paginated(self, queryset: Any, serializer_class: Any, **context: Any) -> Response:
        page = self.paginate_queryset(queryset)
        data = serializer_class(page, many=True, context={"request": self.request, **context}).data
        return self.get_paginated_response(data)


class TenantAPIView(APIView):
    # A view under /api/v1/tenants/{tenant_id}/: tenant access and permission checked up front. (A
    # comment, not a docstring: the OpenAPI schema would show it as every operation's description.)

    # HTTP method -> permission code; a method absent here only needs membership.
    permissions: dict[str, str] = {}

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        user, api_key = request_principal(request)
        self.access = selectors.tenant_access(user=user, api_key=api_key, tenant_id=kwargs["tenant_id"])
        self.tenant = self.access.tenant
        code = self.permissions.get(request.method or "")
        if code:
            self.access.require(code)
