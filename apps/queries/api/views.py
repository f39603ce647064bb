"""Queries API (CONTRACT "Datasources and queries"): saved queries, running them, testing unsaved ones."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.queries import selectors, services
from apps.tenancy.api.base import TenantAPIView
from jetadmin.api.inputs import parse_input
from jetadmin.api.renderers import ResultRenderer

from . import serializers as s


class QueryListView(TenantAPIView):
    permissions = {"GET": "query.view", "POST": "query.manage"}

    @extend_schema(summary="Saved queries of the tenant", responses=s.QueryOutput(many=True))
    def get(self, request: Request, tenant_id: Any) -> Response:
        return self.paginated(selectors.query_list(tenant=self.tenant), s.QueryOutput)

    @extend_schema(summary="Save a query", request=s.QueryInput, responses={201: s.QueryOutput})
    def post(self, request: Request, tenant_id: Any) -> Response:
        data = parse_input(s.QueryInput, request)
        query = services.query_create(actor=self.actor(), tenant=self.tenant, **data)
        return Response(s.QueryOutput(query).data, status=status.HTTP_201_CREATED)


class QueryDetailView(TenantAPIView):
    permissions = {"GET": "query.view", "PATCH": "query.manage", "DELETE": "query.manage"}

    @extend_schema(summary="A saved query", responses=s.QueryOutput)
    def get(self, request: Request, tenant_id: Any, query_id: Any) -> Response:
        return Response(s.QueryOutput(selectors.query_get(tenant=self.tenant, query_id=query_id)).data)

    @extend_schema(summary="Change a saved query", request=s.QueryUpdateInput, responses=s.QueryOutput)
    def patch(self, request: Request, tenant_id: Any, query_id: Any) -> Response:
        query = selectors.query_get(tenant=self.tenant, query_id=query_id)
        data = parse_input(s.QueryUpdateInput, request)
        query = services.query_update(actor=self.actor(), query=query, **data)
        return Response(s.QueryOutput(query).data)

    @extend_schema(summary="Delete a saved query", responses={204: None})
    def delete(self, request: Request, tenant_id: Any, query_id: Any) -> Response:
        query = selectors.query_get(tenant=self.tenant, query_id=query_id)
        services.query_delete(actor=self.actor(), query=query)
        return Response(status=status.HTTP_204_NO_CONTENT)


class QueryRunView(TenantAPIView):
    permissions = {"POST": "query.run"}
    renderer_classes = [ResultRenderer]

    @extend_schema(summary="Run a saved query with parameters", request=s.RunInput, responses=s.ResultOutput)
    def post(self, request: Request, tenant_id: Any, query_id: Any) -> Response:
        query = selectors.query_get(tenant=self.tenant, query_id=query_id)
        data = parse_input(s.RunInput, request)
        return Response(services.query_run(query=query, params=data["params"]))


class QueryTestView(TenantAPIView):
    permissions = {"POST": "query.run"}
    renderer_classes = [ResultRenderer]

    @extend_schema(summary="Run an unsaved query", request=s.TestInput, responses=s.ResultOutput)
    def post(self, request: Request, tenant_id: Any) -> Response:
        data = parse_input(s.TestInput, request)
        return Response(services.query_test(tenant=self.tenant, **data))
