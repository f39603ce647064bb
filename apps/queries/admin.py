"""Saved queries in the admin (read-only: changes go through the API, which validates and audits)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.queries.models import DataQuery


@admin.register(DataQuery)
class DataQueryAdmin(admin.ModelAdmin):
    list_display = ["name", "datasource", "tenant", "row_limit", "timeout_s"]
    search_fields = ["name", "tenant__name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
