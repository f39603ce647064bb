"""Admin for workflows: definitions are editable; runs, node runs and the journal are read-only."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from .models import InstanceEvent, NodeRun, Workflow, WorkflowInstance, WorkflowVersion


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class VersionInline(admin.TabularInline):
    model = WorkflowVersion
    extra = 0
    fields = ["version", "created_by", "created_at"]
    readonly_fields = ["version", "created_by", "created_at"]
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "current_version", "updated_at"]
    search_fields = ["name", "id", "tenant__name"]
    readonly_fields = ["current_version", "created_by", "created_at", "updated_at"]
    inlines = [VersionInline]


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(ReadOnlyAdmin):
    list_display = ["workflow", "version", "created_by", "created_at"]


class NodeRunInline(admin.TabularInline):
    model = NodeRun
    extra = 0
    fields = ["node_id", "iteration", "node_type", "status", "attempt", "route", "started_at", "ended_at"]
    readonly_fields = [
        "node_id",
        "iteration",
        "node_type",
        "status",
        "attempt",
        "route",
        "started_at",
        "ended_at",
    ]
    can_delete = False
    max_num = 0


def _pretty(value: Any) -> str:
    return format_html("<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(value, indent=2, default=str))


@admin.register(WorkflowInstance)
class WorkflowInstanceAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant", "workflow", "status", "trigger", "is_test", "created_at", "ended_at"]
    list_filter = ["status", "trigger", "is_test"]
    search_fields = ["id", "workflow__name"]
    inlines = [NodeRunInline]
    exclude = ["graph", "input", "output", "error", "context"]
    readonly_fields = ["inspector", "graph_json", "input_json", "output_json", "error_json"]

    @admin.display(description="Run inspector")
    def inspector(self, obj: WorkflowInstance) -> str:
        """The graph, live statuses, node inputs and outputs are on the run's page, not in raw JSON here."""
        url = reverse("run-page", args=[obj.tenant_id, obj.id])
        return format_html('<a href="{}">Open the run page (graph, live status, node details)</a>', url)

    @admin.display(description="Graph")
    def graph_json(self, obj: WorkflowInstance) -> str:
        return _pretty(obj.graph)

    @admin.display(description="Input")
    def input_json(self, obj: WorkflowInstance) -> str:
        return _pretty(obj.input)

    @admin.display(description="Output")
    def output_json(self, obj: WorkflowInstance) -> str:
        return _pretty(obj.output)

    @admin.display(description="Error")
    def error_json(self, obj: WorkflowInstance) -> str:
        return _pretty(obj.error)


@admin.register(NodeRun)
class NodeRunAdmin(ReadOnlyAdmin):
    list_display = ["instance", "node_id", "iteration", "status", "attempt", "lease_owner", "available_at"]
    list_filter = ["status", "node_type"]
    search_fields = ["instance__id", "node_id"]


@admin.register(InstanceEvent)
class InstanceEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "instance", "type", "node_id", "iteration", "at"]
    list_filter = ["type"]
    search_fields = ["instance__id", "node_id"]
