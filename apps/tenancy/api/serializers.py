"""Serializers of the tenancy API: plain input serializers, read-only output serializers."""

from __future__ import annotations

from rest_framework import serializers

from apps.tenancy.models import PERMISSIONS, APIKey, AuditLog, Invite, Membership, Role, Tenant, User


# --- input ----------------------------------------------------------------------------------------
class TokenInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class TenantInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)


class TenantUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    retention_days = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=36500,
        help_text="Days ended runs are kept (null: the server's default, 0: forever).",
    )
    retention_failed_days = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=36500,
        help_text="Days failed runs are kept (null: the server's default, 0: forever).",
    )
    retention_max_runs = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=10_000_000,
        help_text="Ended runs kept per workflow, newest first (null: the server's default, 0: no limit).",
    )
    on_failure = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text='When a scheduled, webhook or API run fails: {"workflow": id} runs that workflow, '
        '{"notify": {"channel": ..., "to": ...}} sends a message; a workflow\'s own setting wins.',
    )


class MemberInput(serializers.Serializer):
    user = serializers.CharField(max_length=254, help_text="Username or email of an existing user.")
    role = serializers.CharField(max_length=100, help_text="Role id or name.")


class MemberUpdateInput(serializers.Serializer):
    role = serializers.CharField(max_length=100, help_text="Role id or name.")


class RoleInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=list(PERMISSIONS)), max_length=len(PERMISSIONS) * 2
    )


class RoleUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=list(PERMISSIONS)),
        max_length=len(PERMISSIONS) * 2,
        required=False,
    )


class APIKeyInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    role = serializers.CharField(max_length=100, help_text="Role id or name.")


class InviteInput(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.CharField(max_length=100, help_text="Role id or name.")


class InviteAcceptInput(serializers.Serializer):
    token = serializers.CharField(max_length=200)
    username = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    password = serializers.CharField(
        max_length=4096, required=False, allow_blank=True, default="", trim_whitespace=False
    )


# --- output ---------------------------------------------------------------------------------------
class TokenOutput(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()


class RoleRef(serializers.ModelSerializer):
    class Meta:
        model = Role
        fields = ["id", "name"]


class UserRef(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "email"]


class TenantOutput(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = [
            "id",
            "name",
            "retention_days",
            "retention_failed_days",
            "retention_max_runs",
            "on_failure",
            "created_at",
        ]


class MyTenantOutput(serializers.Serializer):
    id = serializers.UUIDField(source="tenant.id")
    name = serializers.CharField(source="tenant.name")
    role = serializers.CharField(source="role.name")


class MeOutput(serializers.Serializer):
    id = serializers.UUIDField()
    username = serializers.CharField()
    email = serializers.EmailField()
    tenants = MyTenantOutput(many=True)


class MembershipOutput(serializers.ModelSerializer):
    user = UserRef()
    role = RoleRef()

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "created_at"]


class RoleOutput(serializers.ModelSerializer):
    member_count = serializers.IntegerField(read_only=True, default=None)

    class Meta:
        model = Role
        fields = ["id", "name", "description", "permissions", "is_builtin", "member_count", "created_at"]


class APIKeyOutput(serializers.ModelSerializer):
    role = RoleRef()
    created_by = UserRef(allow_null=True)
    is_active = serializers.BooleanField()

    class Meta:
        model = APIKey
        fields = [
            "id",
            "name",
            "prefix",
            "role",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
            "is_active",
        ]


class APIKeyCreatedOutput(APIKeyOutput):
    key = serializers.CharField(help_text="The full key. Shown once: it is stored hashed.")

    class Meta(APIKeyOutput.Meta):
        fields = [*APIKeyOutput.Meta.fields, "key"]


class InviteOutput(serializers.ModelSerializer):
    role = RoleRef()
    invited_by = UserRef(allow_null=True)
    status = serializers.SerializerMethodField()

    class Meta:
        model = Invite
        fields = ["id", "email", "role", "invited_by", "created_at", "expires_at", "accepted_at", "status"]

    def get_status(self, obj: Invite) -> str:
        from django.utils import timezone

        if obj.accepted_at:
            return "accepted"
        if obj.revoked_at:
            return "revoked"
        return "expired" if obj.expires_at <= timezone.now() else "pending"


class AuditLogOutput(serializers.ModelSerializer):
    actor = UserRef(allow_null=True)
    api_key = serializers.SerializerMethodField()

    class Meta:
        model = AuditLog
        fields = [
            "id",
            "action",
            "object_type",
            "object_id",
            "changes",
            "actor",
            "api_key",
            "ip",
            "created_at",
        ]

    def get_api_key(self, obj: AuditLog) -> dict[str, str] | None:
        if obj.api_key is None:
            return None
        return {"id": str(obj.api_key.id), "name": obj.api_key.name, "prefix": obj.api_key.prefix}


class PermissionOutput(serializers.Serializer):
    code = serializers.CharField()
    description = serializers.CharField()
