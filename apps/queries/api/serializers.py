"""Serializers of the queries API."""

from __future__ import annotations

from rest_framework import serializers

from apps.queries.models import DataQuery
from apps.queries.services import MAX_ROW_LIMIT, MAX_TIMEOUT_S


class QueryInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    datasource = serializers.UUIDField()
    body = serializers.JSONField()
    params_schema = serializers.JSONField(required=False, allow_null=True, default=None)
    row_limit = serializers.IntegerField(min_value=1, max_value=MAX_ROW_LIMIT, default=1000)
    timeout_s = serializers.FloatField(min_value=0.1, max_value=MAX_TIMEOUT_S, default=30.0)


class QueryUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    datasource = serializers.UUIDField(required=False)
    body = serializers.JSONField(required=False)
    params_schema = serializers.JSONField(required=False, allow_null=True)
    row_limit = serializers.IntegerField(min_value=1, max_value=MAX_ROW_LIMIT, required=False)
    timeout_s = serializers.FloatField(min_value=0.1, max_value=MAX_TIMEOUT_S, required=False)


class RunInput(serializers.Serializer):
    params = serializers.JSONField(required=False, default=dict)


class TestInput(serializers.Serializer):
    datasource = serializers.UUIDField()
    body = serializers.JSONField()
    params = serializers.JSONField(required=False, default=dict)
    params_schema = serializers.JSONField(required=False, allow_null=True, default=None)


class ResultOutput(serializers.Serializer):
    columns = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(child=serializers.JSONField())
    row_count = serializers.IntegerField()
    truncated = serializers.BooleanField()
    duration_ms = serializers.FloatField()


class QueryOutput(serializers.ModelSerializer):
    class Meta:
        model = DataQuery
        fields = [
            "id",
            "name",
            "datasource",
            "body",
            "params_schema",
            "row_limit",
            "timeout_s",
            "created_at",
            "updated_at",
        ]
