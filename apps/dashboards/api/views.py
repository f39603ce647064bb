"""Dashboards API: CRUD (``dashboard.view`` to read, ``dashboard.manage`` to change)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.dashboards import selectors, services
from apps.tenancy.api.base import TenantAPIView
from jetadmin.api.inputs import parse_input

from . import serializers as s


class DashboardListView(TenantAPIView):
    permissions = {"GET": "dashboard.view", "POST": "dashboard.manage"}

    @extend_schema(summary="Dashboards of the tenant", responses=s.DashboardOutput(many=True))
    def get(self, request: Request, tenant_id: Any) -> Response:
        return self.paginated(selectors.dashboard_list(tenant=self.tenant), s.DashboardOutput)

    @extend_schema(
        summary="Create a dashboard (400 names each bad layout entry)",
        request=s.DashboardInput,
        responses={201: s.DashboardOutput},
    )
    def post(self, request: Request, tenant_id: Any) -> Response:
        data = parse_input(s.DashboardInput, request)
        dashboard = services.dashboard_create(actor=self.actor(), tenant=self.tenant, **data)
        return Response(s.DashboardOutput(dashboard).data, status=status.HTTP_201_CREATED)


class DashboardDetailView(TenantAPIView):
    permissions = {"GET": "dashboard.view", "PATCH": "dashboard.manage", "DELETE": "dashboard.manage"}

    @extend_schema(summary="A dashboard", responses=s.DashboardOutput)
    def get(self, request: Request, tenant_id: Any, dashboard_id: Any) -> Response:
        dashboard = selectors.dashboard_get(tenant=self.tenant, dashboard_id=dashboard_id)
        return Response(s.DashboardOutput(dashboard).data)

    @extend_schema(summary="Change a dashboard", request=s.DashboardUpdateInput, responses=s.DashboardOutput)
    def patch(self, request: Request, tenant_id: Any, dashboard_id: Any) -> Response:
        dashboard = selectors.dashboard_get(tenant=self.tenant, dashboard_id=dashboard_id)
        data = parse_input(s.DashboardUpdateInput, request)
        dashboard = services.dashboard_update(actor=self.actor(), dashboard=dashboard, **data)
        return Response(s.DashboardOutput(dashboard).data)

    @extend_schema(summary="Delete a dashboard", responses={204: None})
    def delete(self, request: Request, tenant_id: Any, dashboard_id: Any) -> Response:
        dashboard = selectors.dashboard_get(tenant=self.tenant, dashboard_id=dashboard_id)
        services.dashboard_delete(actor=self.actor(), dashboard=dashboard)
        return Response(status=status.HTTP_204_NO_CONTENT)
