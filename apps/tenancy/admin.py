"""Django admin for tenancy. Credential hashes are never shown; audit rows are read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.http import HttpRequest

from .models import APIKey, AuditLog, AuthToken, Invite, Membership, Role, Tenant, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    pass


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "share_weight", "max_running_nodes", "max_starts_per_minute", "created_at"]
    search_fields = ["name", "id"]
    inlines = [MembershipInline]


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "is_builtin"]
    list_filter = ["is_builtin"]
    search_fields = ["name", "tenant__name"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    search_fields = ["user__username", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]


class ReadOnlySecretAdmin(admin.ModelAdmin):
    """Keys are created through the API (shown once there); the admin can only look and revoke."""

    exclude = ["key_hash"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields if f.name not in ("key_hash", "revoked_at")]


@admin.register(APIKey)
class APIKeyAdmin(ReadOnlySecretAdmin):
    list_display = ["name", "prefix", "tenant", "role", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "tenant__name"]


@admin.register(AuthToken)
class AuthTokenAdmin(ReadOnlySecretAdmin):
    list_display = ["prefix", "user", "created_at", "expires_at"]
    search_fields = ["prefix", "user__username"]


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ["email", "tenant", "role", "created_at", "expires_at", "accepted_at", "revoked_at"]
    exclude = ["token_hash"]
    readonly_fields = ["accepted_at", "accepted_by", "invited_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # invites send an email with a one-time token: create them through the API


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "tenant_name",
        "action",
        "object_type",
        "object_id",
        "actor",
        "api_key",
        "ip",
    ]
    list_filter = ["action", "object_type"]
    search_fields = ["object_id", "action", "tenant_name", "actor__username"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
