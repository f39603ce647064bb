"""Serializers of the triggers API. Webhook tokens appear only in the creation response; secrets never."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.tenancy.api.serializers import UserRef
from apps.triggers.models import Overlap, Schedule, Webhook


def _object(value: Any) -> Any:
    if not isinstance(value, dict):
        raise serializers.ValidationError("The run input must be a JSON object.")
    return value


class ScheduleInput(serializers.Serializer):
    cron = serializers.CharField(max_length=100, help_text="Five fields: minute hour day month weekday.")
    timezone = serializers.CharField(max_length=64, default="UTC", help_text="An IANA timezone name.")
    input = serializers.JSONField(required=False, default=dict, help_text="The run input (an object).")
    enabled = serializers.BooleanField(default=True)
    overlap = serializers.ChoiceField(
        choices=Overlap.choices,
        default=Overlap.SKIP,
        help_text="skip: a tick while the previous run is still open starts nothing; allow: it starts one.",
    )

    def validate_input(self, value: Any) -> Any:
        return _object(value)


class ScheduleUpdateInput(serializers.Serializer):
    cron = serializers.CharField(max_length=100, required=False)
    timezone = serializers.CharField(max_length=64, required=False)
    input = serializers.JSONField(required=False)
    enabled = serializers.BooleanField(required=False)
    overlap = serializers.ChoiceField(choices=Overlap.choices, required=False)

    def validate_input(self, value: Any) -> Any:
        return _object(value)


class ScheduleOutput(serializers.ModelSerializer):
    created_by = UserRef(allow_null=True)

    class Meta:
        model = Schedule
        fields = [
            "id",
            "workflow",
            "cron",
            "timezone",
            "input",
            "enabled",
            "overlap",
            "next_run_at",
            "last_run_at",
            "last_instance",
            "skipped_count",
            "last_skipped_at",
            "last_error",
            "created_by",
            "created_at",
            "updated_at",
        ]


class WebhookInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    secret = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        write_only=True,
        trim_whitespace=False,
        help_text="HMAC-SHA256 key; when set, calls must carry X-Jetadmin-Signature: sha256=<hex>. "
        "Never returned.",
    )


class WebhookOutput(serializers.ModelSerializer):
    created_by = UserRef(allow_null=True)
    has_secret = serializers.BooleanField()
    is_active = serializers.BooleanField()

    class Meta:
        model = Webhook
        fields = [
            "id",
            "workflow",
            "name",
            "prefix",
            "has_secret",
            "is_active",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]


class WebhookCreatedOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    token = serializers.CharField(help_text="The full token. Shown once: it is stored hashed.")
    url = serializers.URLField(help_text="POST here to start a run; the JSON body becomes its input.")
    has_secret = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class HookStartedOutput(serializers.Serializer):
    instance_id = serializers.UUIDField()
    status = serializers.CharField()
