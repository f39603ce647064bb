"""Datasources API (CONTRACT "Datasources and queries"): types, CRUD, connection tests."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.datasources import connectors, selectors, services
from apps.tenancy.api.base import APIView, TenantAPIView
from jetadmin.api.inputs import parse_input

from . import serializers as s


class DatasourceTypeListView(APIView):
    pagination_class = None

    @extend_schema(
        summary="Datasource types with their config schemas", responses=s.DatasourceTypeOutput(many=True)
    )
    def get(self, request: Request) -> Response:
        return Response([connectors.REGISTRY[key].describe() for key in sorted(connectors.REGISTRY)])


class DatasourceListView(TenantAPIView):
    permissions = {"GET": "datasource.view", "POST": "datasource.manage"}

    @extend_schema(summary="Datasources of the tenant", responses=s.DatasourceOutput(many=True))
    def get(self, request: Request, tenant_id: Any) -> Response:
        return self.paginated(selectors.datasource_list(tenant=self.tenant), s.DatasourceOutput)

    @extend_schema(
        summary="Create a datasource", request=s.DatasourceInput, responses={201: s.DatasourceOutput}
    )
    def post(self, request: Request, tenant_id: Any) -> Response:
        data = parse_input(s.DatasourceInput, request)
        datasource = services.datasource_create(actor=self.actor(), tenant=self.tenant, **data)
        return Response(s.DatasourceOutput(datasource).data, status=status.HTTP_201_CREATED)


class DatasourceDetailView(TenantAPIView):
    permissions = {"GET": "datasource.view", "PATCH": "datasource.manage", "DELETE": "datasource.manage"}

    @extend_schema(summary="A datasource (secrets masked)", responses=s.DatasourceOutput)
    def get(self, request: Request, tenant_id: Any, datasource_id: Any) -> Response:
        datasource = selectors.datasource_get(tenant=self.tenant, datasource_id=datasource_id)
        return Response(s.DatasourceOutput(datasource).data)

    @extend_schema(
        summary='Change a datasource; a secret sent as "********" keeps its value',
        request=s.DatasourceUpdateInput,
        responses=s.DatasourceOutput,
    )
    def patch(self, request: Request, tenant_id: Any, datasource_id: Any) -> Response:
        datasource = selectors.datasource_get(tenant=self.tenant, datasource_id=datasource_id)
        data = parse_input(s.DatasourceUpdateInput, request)
        datasource = services.datasource_update(actor=self.actor(), datasource=datasource, **data)
        return Response(s.DatasourceOutput(datasource).data)

    @extend_schema(summary="Delete a datasource", responses={204: None})
    def delete(self, request: Request, tenant_id: Any, datasource_id: Any) -> Response:
        datasource = selectors.datasource_get(tenant=self.tenant, datasource_id=datasource_id)
        services.datasource_delete(actor=self.actor(), datasource=datasource)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConnectionTestView(TenantAPIView):
    permissions = {"POST": "datasource.manage"}

    @extend_schema(
        summary="Test an unsaved config",
        request=s.ConnectionTestInput,
        responses=s.ConnectionTestOutput,
        operation_id="datasources_test_unsaved",
    )
    def post(self, request: Request, tenant_id: Any) -> Response:
        data = parse_input(s.ConnectionTestInput, request)
        return Response(services.connection_test(data["type"], data["config"]))


class DatasourceTestView(TenantAPIView):
    permissions = {"POST": "datasource.view"}

    @extend_schema(
        summary="Test a saved datasource",
        request=None,
        responses=s.ConnectionTestOutput,
        operation_id="datasources_test_saved",
    )
    def post(self, request: Request, tenant_id: Any, datasource_id: Any) -> Response:
        datasource = selectors.datasource_get(tenant=self.tenant, datasource_id=datasource_id)
        return Response(services.datasource_test(datasource=datasource))
