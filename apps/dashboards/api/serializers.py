"""Serializers of the dashboards API."""

from __future__ import annotations

from rest_framework import serializers

from apps.dashboards.models import Dashboard


class DashboardInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    layout = serializers.JSONField(required=False, help_text="[{widget, x, y, w, h}] on 12 columns")
    refresh_s = serializers.IntegerField(required=False, default=60)
    filters = serializers.JSONField(required=False, help_text="[{id, type, label, param, ...}]")


class DashboardUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    layout = serializers.JSONField(required=False)
    refresh_s = serializers.IntegerField(required=False)
    filters = serializers.JSONField(required=False)


class DashboardOutput(serializers.ModelSerializer):
    class Meta:
        model = Dashboard
        fields = ["id", "name", "description", "layout", "filters", "refresh_s", "created_at", "updated_at"]
