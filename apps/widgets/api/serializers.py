"""Serializers of the widgets API."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from apps.widgets.models import Widget


class WidgetInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    type = serializers.CharField(max_length=40)
    config = serializers.JSONField(required=False, default=dict)
    workflow = serializers.UUIDField(required=False, allow_null=True, default=None)
    workflow_config = serializers.JSONField(required=False, default=dict)


class WidgetUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    type = serializers.CharField(max_length=40, required=False)
    config = serializers.JSONField(required=False)
    workflow = serializers.UUIDField(required=False, allow_null=True)
    workflow_config = serializers.JSONField(required=False)


class WidgetOutput(serializers.ModelSerializer):
    class Meta:
        model = Widget
        fields = [
            "id",
            "name",
            "type",
            "config",
            "workflow",
            "workflow_config",
            "last_provenance",
            "created_at",
            "updated_at",
        ]


class WidgetTypeOutput(serializers.Serializer):
    type = serializers.CharField()
    name = serializers.CharField()
    category = serializers.CharField()
    config_schema = serializers.JSONField()


class DataInput(serializers.Serializer):
    input_params = serializers.JSONField(required=False, default=dict)
    execution_mode = serializers.ChoiceField(choices=["ASYNC", "SYNC"], default="ASYNC")
    timeout_s = serializers.FloatField(
        min_value=0.1, max_value=settings.JETADMIN_MAX_SYNC_WAIT_S, default=30.0
    )
    refresh = serializers.BooleanField(
        default=False, help_text="Start a new run even if a recent one exists."
    )

    def validate_input_params(self, value: object) -> object:
        if not isinstance(value, dict):
            raise serializers.ValidationError("An object: parameter name -> value.")
        return value


class DataStartedOutput(serializers.Serializer):
    instance_id = serializers.UUIDField()
    reused = serializers.BooleanField()


class DataOutput(serializers.Serializer):
    instance_id = serializers.UUIDField()
    status = serializers.CharField()
    processed_data = serializers.JSONField(allow_null=True)
    provenance = serializers.JSONField(allow_null=True)
    error = serializers.JSONField(required=False)
    timed_out = serializers.BooleanField()
