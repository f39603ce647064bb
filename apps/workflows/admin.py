"""Admin for workflows: definitions are editable; runs, node runs and the journal are read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

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


@admin.register(WorkflowInstance)
class WorkflowInstanceAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant", "workflow", "status", "trigger", "is_test", "created_at", "ended_at"]
    list_filter = ["status", "trigger", "is_test"]
    search_fields = ["id", "workflow__name"]
    inlines = [NodeRunInline]


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
