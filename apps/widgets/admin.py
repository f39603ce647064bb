from django.contrib import admin

from apps.widgets.models import Widget, WidgetRun


@admin.register(Widget)
class WidgetAdmin(admin.ModelAdmin):
    list_display = ["name", "type", "tenant", "workflow", "updated_at"]
    list_filter = ["type"]
    search_fields = ["name"]
    raw_id_fields = ["tenant", "workflow", "created_by"]


@admin.register(WidgetRun)
class WidgetRunAdmin(admin.ModelAdmin):
    list_display = ["widget", "instance", "params_hash", "created_at"]
    raw_id_fields = ["widget", "instance"]
