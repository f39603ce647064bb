"""Tenancy API (CONTRACT "Accounts and tenancy"). Views parse, check, call one service, serialize."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from apps.tenancy import selectors, services
from apps.tenancy.models import PERMISSIONS, AuthToken, Role, Tenant
from jetadmin.api.errors import ApplicationError
from jetadmin.api.inputs import parse_input

from . import serializers as s
from .base import APIView, TenantAPIView, client_ip, request_principal

MSG_BAD_CREDENTIALS = "Unable to log in with the given username and password."
MSG_UNKNOWN_ROLE = "No role {value!r} in this tenant."
MSG_API_KEY_NO_USER = "API keys are not users; use a user token or session."


def _role(tenant: Tenant, value: str) -> Role:
    role = selectors.role_get_for_input(tenant=tenant, value=value)
    if role is None:
        message = MSG_UNKNOWN_ROLE.format(value=value)
        raise ApplicationError(message, details={"role": [message]})
    return role


# --- accounts -------------------------------------------------------------------------------------
class AuthTokenView(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    @extend_schema(
        summary="Log in: exchange username and password for an API token",
        request=s.TokenInput,
        responses={201: s.TokenOutput},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = parse_input(s.TokenInput, request)
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None:
            raise AuthenticationFailed(MSG_BAD_CREDENTIALS)
        token, raw = services.auth_token_create(user=user, ip=client_ip(request))
        return Response({"token": raw, "expires_at": token.expires_at}, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Log out: revoke the token used for this request", request=None, responses={204: None}
    )
    def delete(self, request: Request) -> Response:
        if not isinstance(request.auth, AuthToken):
            raise ApplicationError(
                "Send the token to revoke in the Authorization header.",
                details={"Authorization": ["Expected 'Token <token>'."]},
            )
        services.auth_token_revoke(actor=self.actor(), token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(summary="The current user and their tenants", responses=s.MeOutput)
    def get(self, request: Request) -> Response:
        user, _ = request_principal(request)
        if user is None:
            raise PermissionDenied(MSG_API_KEY_NO_USER)
        memberships = selectors.tenant_list_for_user(user=user)
        data = {"id": user.id, "username": user.username, "email": user.email, "tenants": memberships}
        return Response(s.MeOutput(data).data)


class PermissionListView(APIView):
    pagination_class = None

    @extend_schema(summary="Every permission code a role can hold", responses=s.PermissionOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response([{"code": code, "description": text} for code, text in PERMISSIONS.items()])


class InviteAcceptView(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    @extend_schema(
        summary="Accept an invite (as the logged-in user, or creating an account)",
        request=s.InviteAcceptInput,
        responses={201: s.MembershipOutput},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = parse_input(s.InviteAcceptInput, request)
        user, _ = request_principal(request)
        membership = services.invite_accept(
            raw_token=data["token"],
            user=user,
            username=data["username"],
            password=data["password"],
            ip=client_ip(request),
        )
        return Response(s.MembershipOutput(membership).data, status=status.HTTP_201_CREATED)


# --- tenants --------------------------------------------------------------------------------------
class TenantListView(APIView):
    @extend_schema(summary="Tenants I belong to", responses=s.MyTenantOutput(many=True))
    def get(self, request: Request) -> Response:
        user, api_key = request_principal(request)
        if api_key is not None:
            return self.paginated([api_key], s.MyTenantOutput)
        if user is None:
            raise PermissionDenied(MSG_API_KEY_NO_USER)
        return self.paginated(selectors.tenant_list_for_user(user=user), s.MyTenantOutput)

    @extend_schema(
        summary="Create a tenant (you become its owner)",
        request=s.TenantInput,
        responses={201: s.TenantOutput},
    )
    def post(self, request: Request) -> Response:
        data = parse_input(s.TenantInput, request)
        tenant = services.tenant_create(actor=self.actor(), name=data["name"])
        return Response(s.TenantOutput(tenant).data, status=status.HTTP_201_CREATED)


class TenantDetailView(TenantAPIView):
    permissions = {"PATCH": "tenant.manage", "DELETE": "tenant.manage"}

    @extend_schema(summary="A tenant", responses=s.TenantOutput)
    def get(self, request: Request, tenant_id: Any) -> Response:
        return Response(s.TenantOutput(self.tenant).data)

    @extend_schema(
        summary="Rename a tenant or change its settings",
        description="Only the fields given change: its name, how long ended runs are kept "
        "(retention_days, retention_failed_days, retention_max_runs per workflow) and what happens when "
        "a scheduled, webhook or API run fails (on_failure).",
        request=s.TenantUpdateInput,
        responses=s.TenantOutput,
    )
    def patch(self, request: Request, tenant_id: Any) -> Response:
        data = parse_input(s.TenantUpdateInput, request)
        tenant = services.tenant_update(actor=self.actor(), tenant=self.tenant, **data)
        return Response(s.TenantOutput(tenant).data)

    @extend_schema(summary="Delete a tenant and everything in it (owners only)", responses={204: None})
    def delete(self, request: Request, tenant_id: Any) -> Response:
        services.tenant_delete(actor=self.actor(), tenant=self.tenant)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- members --------------------------------------------------------------------------------------
class MemberListView(TenantAPIView):
    permissions = {"POST": "member.manage"}

    @extend_schema(summary="Members of the tenant with their roles", responses=s.MembershipOutput(many=True))
    def get(self, request: Request, tenant_id: Any) -> Response:
        return self.paginated(selectors.member_list(tenant=self.tenant), s.MembershipOutput)

    @extend_schema(
        summary="Add an existing user as a member", request=s.MemberInput, responses={201: s.MembershipOutput}
    )
    def post(self, request: Request, tenant_id: Any) -> Response:
        data = parse_input(s.MemberInput, request)
        user = services.user_find(identifier=data["user"])
        membership = services.member_add(
            actor=self.actor(), tenant=self.tenant, user=user, role=_role(self.tenant, data["role"])
        )
        return Response(s.MembershipOutput(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailView(TenantAPIView):
    permissions = {"PATCH": "member.manage", "DELETE": "member.manage"}

    @extend_schema(summary="A member", responses=s.MembershipOutput)
    def get(self, request: Request, tenant_id: Any, member_id: Any) -> Response:
        return Response(
            s.MembershipOutput(selectors.member_get(tenant=self.tenant, member_id=member_id)).data
        )

    @extend_schema(
        summary="Change a member's role", request=s.MemberUpdateInput, responses=s.MembershipOutput
    )
    def patch(self, request: Request, tenant_id: Any, member_id: Any) -> Response:
        membership = selectors.member_get(tenant=self.tenant, member_id=member_id)
        data = parse_input(s.MemberUpdateInput, request)
        membership = services.member_update(
            actor=self.actor(), membership=membership, role=_role(self.tenant, data["role"])
        )
        return Response(s.MembershipOutput(membership).data)

    @extend_schema(summary="Remove a member", responses={204: None})
    def delete(self, request: Request, tenant_id: Any, member_id: Any) -> Response:
        membership = selectors.member_get(tenant=self.tenant, member_id=member_id)
        services.member_remove(actor=self.actor(), membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- roles ----------------------------------------------------------------------------------------
class RoleListView(TenantAPIView):
    permissions = {"POST": "member.manage"}

    @extend_schema(summary="Roles: built-in and custom", responses=s.RoleOutput(many=True))
    def get(self, request: Request, tenant_id: Any) -> Response:
        return self.paginated(selectors.role_list(tenant=self.tenant), s.RoleOutput)

    @extend_schema(summary="Create a custom role", request=s.RoleInput, responses={201: s.RoleOutput})
    def post(self, request: Request, tenant_id: Any) -> Response:
        data = parse_input(s.RoleInput, request)
        role = services.role_create(actor=self.actor(), tenant=self.tenant, **data)
        return Response(s.RoleOutput(role).data, status=status.HTTP_201_CREATED)


class RoleDetailView(TenantAPIView):
    permissions = {"PATCH": "member.manage", "DELETE": "member.manage"}

    @extend_schema(summary="A role", responses=s.RoleOutput)
    def get(self, request: Request, tenant_id: Any, role_id: Any) -> Response:
        return Response(s.RoleOutput(selectors.role_get(tenant=self.tenant, role_id=role_id)).data)

    @extend_schema(summary="Change a custom role", request=s.RoleUpdateInput, responses=s.RoleOutput)
    def patch(self, request: Request, tenant_id: Any, role_id: Any) -> Response:
        role = selectors.role_get(tenant=self.tenant, role_id=role_id)
        data = parse_input(s.RoleUpdateInput, request)
        role = services.role_update(actor=self.actor(), role=role, **data)
        return Response(s.RoleOutput(role).data)

    @extend_schema(summary="Delete a custom role that nobody holds", responses={204: None})
    def delete(self, request: Request, tenant_id: Any, role_id: Any) -> Response:
        role = selectors.role_get(tenant=self.tenant, role_id=role_id)
        services.role_delete(actor=self.actor(), role=role)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- API keys -------------------------------------------------------------------------------------
class APIKeyListView(TenantAPIView):
    permissions = {"GET": "tenant.manage", "POST": "tenant.manage"}

    @extend_schema(
        summary="API keys of the tenant (never the keys themselves)", responses=s.APIKeyOutput(many=True)
    )
    def get(self, request: Request, tenant_id: Any) -> Response:
        return self.paginated(selectors.api_key_list(tenant=self.tenant), s.APIKeyOutput)

    @extend_schema(
        summary="Create an API key; the response shows the key once",
        request=s.APIKeyInput,
        responses={201: s.APIKeyCreatedOutput},
    )
    def post(self, request: Request, tenant_id: Any) -> Response:
        data = parse_input(s.APIKeyInput, request)
        key, raw = services.api_key_create(
            actor=self.actor(), tenant=self.tenant, name=data["name"], role=_role(self.tenant, data["role"])
        )
        key.key = raw  # type: ignore[attr-defined]
        return Response(s.APIKeyCreatedOutput(key).data, status=status.HTTP_201_CREATED)


class APIKeyDetailView(TenantAPIView):
    permissions = {"GET": "tenant.manage", "DELETE": "tenant.manage"}

    @extend_schema(summary="An API key", responses=s.APIKeyOutput)
    def get(self, request: Request, tenant_id: Any, key_id: Any) -> Response:
        return Response(s.APIKeyOutput(selectors.api_key_get(tenant=self.tenant, key_id=key_id)).data)

    @extend_schema(summary="Revoke an API key", responses={204: None})
    def delete(self, request: Request, tenant_id: Any, key_id: Any) -> Response:
        key = selectors.api_key_get(tenant=self.tenant, key_id=key_id)
        services.api_key_revoke(actor=self.actor(), api_key=key)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- invites --------------------------------------------------------------------------------------
class InviteListView(TenantAPIView):
    permissions = {"GET": "member.manage", "POST": "member.manage"}

    @extend_schema(summary="Invites of the tenant", responses=s.InviteOutput(many=True))
    def get(self, request: Request, tenant_id: Any) -> Response:
        return self.paginated(selectors.invite_list(tenant=self.tenant), s.InviteOutput)

    @extend_schema(summary="Invite someone by email", request=s.InviteInput, responses={201: s.InviteOutput})
    def post(self, request: Request, tenant_id: Any) -> Response:
        data = parse_input(s.InviteInput, request)
        invite = services.invite_create(
            actor=self.actor(), tenant=self.tenant, email=data["email"], role=_role(self.tenant, data["role"])
        )
        return Response(s.InviteOutput(invite).data, status=status.HTTP_201_CREATED)


class InviteDetailView(TenantAPIView):
    permissions = {"GET": "member.manage", "DELETE": "member.manage"}

    @extend_schema(summary="An invite", responses=s.InviteOutput)
    def get(self, request: Request, tenant_id: Any, invite_id: Any) -> Response:
        return Response(s.InviteOutput(selectors.invite_get(tenant=self.tenant, invite_id=invite_id)).data)

    @extend_schema(summary="Revoke an invite", responses={204: None})
    def delete(self, request: Request, tenant_id: Any, invite_id: Any) -> Response:
        invite = selectors.invite_get(tenant=self.tenant, invite_id=invite_id)
        services.invite_revoke(actor=self.actor(), invite=invite)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- audit log ------------------------------------------------------------------------------------
class AuditLogListView(TenantAPIView):
    permissions = {"GET": "audit.view"}

    @extend_schema(
        summary="The audit log, newest first",
        parameters=[
            OpenApiParameter("action", str, description="e.g. member.add"),
            OpenApiParameter("object_type", str),
            OpenApiParameter("object_id", str),
        ],
        responses=s.AuditLogOutput(many=True),
    )
    def get(self, request: Request, tenant_id: Any) -> Response:
        params = request.query_params
        qs = selectors.audit_log_list(
            tenant=self.tenant,
            action=params.get("action"),
            object_type=params.get("object_type"),
            object_id=params.get("object_id"),
        )
        return self.paginated(qs, s.AuditLogOutput)
