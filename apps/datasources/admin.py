"""Datasources in the admin: never the encrypted secrets, and changes go through the API."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.datasources import services
from apps.datasources.models import Datasource


@admin.register(Datasource)
class DatasourceAdmin(admin.ModelAdmin):
    list_display = ["name", "type", "tenant", "created_at"]
    list_filter = ["type"]
    search_fields = ["name", "tenant__name"]
    exclude = ["secrets_encrypted", "config"]
    readonly_fields = ["name", "type", "tenant", "masked", "created_by", "created_at"]

    @admin.display(description="config (secrets masked)")
    def masked(self, obj: Datasource) -> Any:
        return services.masked_config(obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
