"""Serializers of the workflows API."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from apps.tenancy.api.serializers import UserRef
from apps.workflows.models import InstanceEvent, Workflow, WorkflowInstance, WorkflowTestCase, WorkflowVersion


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
    on_failure = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text='When one of its scheduled, webhook or API runs fails: {"workflow": id} runs that '
        'workflow with {"failed_run": {...}} as input; {"notify": {"channel": "email", "to": ...}} sends '
        "a message; null uses the tenant's setting.",
    )


class GraphInput(serializers.Serializer):
    graph = GraphField()


class ExecuteInput(serializers.Serializer):
    input = serializers.JSONField(required=False, default=dict)
    mode = serializers.ChoiceField(choices=["async", "sync"], default="async")
    timeout_s = serializers.FloatField(
        required=False, default=30, min_value=0.1, max_value=settings.JETADMIN_MAX_SYNC_WAIT_S
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
        fields = ["id", "name", "description", "version", "graph", "on_failure", "created_at", "updated_at"]


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
    if_waiting = serializers.BooleanField(required=False, default=False)


class NodeCancelInput(serializers.Serializer):
    iteration = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


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
    graph = serializers.JSONField()


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


class DiffOutput(serializers.Serializer):
    a = serializers.IntegerField()
    b = serializers.IntegerField()
    nodes = serializers.DictField()
    edges = serializers.DictField()
    notes_changed = serializers.BooleanField()


class TestCaseInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    input = serializers.JSONField(required=False, default=dict)
    pinned = serializers.JSONField(required=False, default=dict)
    expect = serializers.JSONField(required=False, default=dict)


class TestCasePatch(TestCaseInput):
    name = serializers.CharField(max_length=200, required=False)
    input = serializers.JSONField(required=False)
    pinned = serializers.JSONField(required=False)
    expect = serializers.JSONField(required=False)


class TestCaseOutput(serializers.ModelSerializer):
    class Meta:
        model = WorkflowTestCase
        fields = ["id", "name", "input", "pinned", "expect", "last_result", "created_at", "updated_at"]


class TestCaseRunInput(serializers.Serializer):
    timeout_s = serializers.FloatField(
        required=False, default=60, min_value=0.1, max_value=settings.JETADMIN_MAX_SYNC_WAIT_S
    )


class TestCaseResultOutput(serializers.Serializer):
    passed = serializers.BooleanField()
    failures = serializers.ListField(child=serializers.DictField())
    instance_id = serializers.UUIDField()
    duration_ms = serializers.IntegerField()
    ran_at = serializers.DateTimeField()
