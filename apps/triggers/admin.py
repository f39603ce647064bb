"""Admin for triggers: read-only views, with actions that go through the services (so they audit).

A webhook's token hash and HMAC secret are never shown; schedules and webhooks are made through the
API, which validates cron expressions and shows a token once.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.tenancy.services import Actor

from . import services
from .models import Schedule, Webhook


def _actor(request: HttpRequest) -> Actor:
    user = request.user if request.user.is_authenticated else None
    return Actor(user=user, ip=request.META.get("REMOTE_ADDR") or None)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_manage_permission(self, request: HttpRequest) -> bool:
        """Who may run the actions: whoever Django's permissions allow to change these rows."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")


@admin.register(Schedule)
class ScheduleAdmin(ReadOnlyAdmin):
    list_display = ["workflow", "cron", "timezone", "enabled", "overlap", "next_run_at", "last_run_at"]
    list_filter = ["enabled", "overlap"]
    search_fields = ["id", "workflow__name", "tenant__name"]
    actions = ["enable", "disable"]

    @admin.action(description="Enable the selected schedules", permissions=["manage"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            services.schedule_update(actor=_actor(request), schedule=schedule, enabled=True)

    @admin.action(description="Disable the selected schedules", permissions=["manage"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            services.schedule_update(actor=_actor(request), schedule=schedule, enabled=False)


@admin.register(Webhook)
class WebhookAdmin(ReadOnlyAdmin):
    list_display = ["name", "prefix", "workflow", "tenant", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "workflow__name", "tenant__name"]
    exclude = ["token_hash", "secret_encrypted"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected webhooks", permissions=["manage"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        for webhook in queryset.filter(revoked_at__isnull=True):
            services.webhook_revoke(actor=_actor(request), webhook=webhook)
