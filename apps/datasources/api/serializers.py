"""Serializers of the datasources API. Secret config fields are shown as ``"********"`` when set."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.datasources import services
from apps.datasources.models import Datasource


class DatasourceInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    type = serializers.CharField(max_length=50)
    config = serializers.JSONField()


class DatasourceUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    config = serializers.JSONField(required=False)


class ConnectionTestInput(serializers.Serializer):
    type = serializers.CharField(max_length=50)
    config = serializers.JSONField()


class ConnectionTestOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField()
    latency_ms = serializers.FloatField()


class DatasourceOutput(serializers.ModelSerializer):
    config = serializers.SerializerMethodField()

    class Meta:
        model = Datasource
        fields = ["id", "name", "type", "config", "created_at", "updated_at"]

    def get_config(self, obj: Datasource) -> dict[str, Any]:
        return services.masked_config(obj)


class DatasourceTypeOutput(serializers.Serializer):
    type = serializers.CharField()
    name = serializers.CharField()
    category = serializers.CharField()
    config_schema = serializers.DictField()
