"""Serializers of the workflows API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.tenancy.api.serializers import UserRef
from apps.workflows.models import InstanceEvent, Workflow, WorkflowInstance, WorkflowVersion

MAX_SYNC_TIMEOUT_S = 300


class GraphField(serializers.JSONField):
    """Any JSON; the engine's validator reports problems per node and field."""


class WorkflowInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    graph = GraphField()


class WorkflowUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    graph = GraphField(required=False)


class GraphInput(serializers.Serializer):
    graph = GraphField()


class ExecuteInput(serializers.Serializer):
    input = serializers.JSONField(required=False, default=dict)
    mode = serializers.ChoiceField(choices=["async", "sync"], default="async")
    timeout_s = serializers.FloatField(
        required=False, default=30, min_value=0.1, max_value=MAX_SYNC_TIMEOUT_S
    )

    def validate_input(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("The run input must be a JSON object.")
        return value


class TestRunInput(ExecuteInput):
    graph = GraphField()
    workflow = serializers.UUIDField(required=False, allow_null=True)


class WorkflowOutput(serializers.ModelSerializer):
    version = serializers.IntegerField(source="current_version.version", default=None)
    graph = serializers.JSONField(source="current_version.graph", default=None)

    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "version", "graph", "created_at", "updated_at"]


class VersionOutput(serializers.ModelSerializer):
    created_by = UserRef(allow_null=True)

    class Meta:
        model = WorkflowVersion
        fields = ["version", "created_at", "created_by", "graph"]


class InstanceOutput(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.version", default=None)

    class Meta:
        model = WorkflowInstance
        fields = [
            "id",
            "workflow",
            "version",
            "is_test",
            "status",
            "trigger",
            "parent",
            "depth",
            "input",
            "output",
            "error",
            "created_at",
            "started_at",
            "ended_at",
        ]


class InstanceDetailOutput(InstanceOutput):
    nodes = serializers.DictField(read_only=True)

    class Meta(InstanceOutput.Meta):
        fields = [*InstanceOutput.Meta.fields, "nodes"]


class InstanceInputInput(serializers.Serializer):
    node_id = serializers.CharField(max_length=100)
    data = serializers.JSONField()  # type: ignore[assignment]
    iteration = serializers.CharField(max_length=500, required=False, allow_blank=True)


class StartedOutput(serializers.Serializer):
    instance_id = serializers.UUIDField()
    status = serializers.CharField()


class SyncOutput(StartedOutput):
    output = serializers.JSONField(allow_null=True)
    error = serializers.JSONField(allow_null=True)
    timed_out = serializers.BooleanField()


class ValidateOutput(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = serializers.ListField(child=serializers.DictField())  # type: ignore[assignment]


class EventOutput(serializers.ModelSerializer):
    seq = serializers.IntegerField()

    class Meta:
        model = InstanceEvent
        fields = ["seq", "type", "node_id", "iteration", "data", "at"]


class NodeTypeOutput(serializers.Serializer):
    type = serializers.CharField()
    name = serializers.CharField()
    category = serializers.CharField()
    description = serializers.CharField()
    inputs_schema = serializers.DictField()
    outputs_schema = serializers.DictField()
    handles = serializers.ListField(child=serializers.CharField())
