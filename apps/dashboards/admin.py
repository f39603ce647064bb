"""Admin for dashboards."""

from __future__ import annotations

from django.contrib import admin

from .models import Dashboard


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "refresh_s", "updated_at"]
    search_fields = ["name", "id", "tenant__name"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
