"""Widgets API (the project's API docs, "Widgets"): widget types, CRUD, and a widget's data."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.tenancy.api.base import APIView, TenantAPIView
from apps.widgets import selectors, services, types
from apps.workflows import services as workflow_services
from jetadmin.api.errors import ApplicationError
from jetadmin.api.inputs import parse_input

from . import serializers as s


class WidgetTypeListView(APIView):
    pagination_class = None

    @extend_schema(summary="Widget types with their config schemas", responses=s.WidgetTypeOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response([types.REGISTRY[key].describe() for key in sorted(types.REGISTRY)])


class WidgetListView(TenantAPIView):
    permissions = {"GET": "widget.view", "POST": "widget.manage"}

    @extend_schema(summary="Widgets of the tenant", responses=s.WidgetOutput(many=True))
    def get(self, request: Request, tenant_id: Any) -> Response:
        return self.paginated(selectors.widget_list(tenant=self.tenant), s.WidgetOutput)

    @extend_schema(summary="Create a widget", request=s.WidgetInput, responses={201: s.WidgetOutput})
    def post(self, request: Request, tenant_id: Any) -> Response:
        data = parse_input(s.WidgetInput, request)
        widget = services.widget_create(actor=self.actor(), tenant=self.tenant, **data)
        return Response(s.WidgetOutput(widget).data, status=status.HTTP_201_CREATED)


class WidgetDetailView(TenantAPIView):
    permissions = {"GET": "widget.view", "PATCH": "widget.manage", "DELETE": "widget.manage"}

    @extend_schema(summary="A widget", responses=s.WidgetOutput)
    def get(self, request: Request, tenant_id: Any, widget_id: Any) -> Response:
        return Response(s.WidgetOutput(selectors.widget_get(tenant=self.tenant, widget_id=widget_id)).data)

    @extend_schema(summary="Change a widget", request=s.WidgetUpdateInput, responses=s.WidgetOutput)
    def patch(self, request: Request, tenant_id: Any, widget_id: Any) -> Response:
        widget = selectors.widget_get(tenant=self.tenant, widget_id=widget_id)
        data = parse_input(s.WidgetUpdateInput, request)
        widget = services.widget_update(actor=self.actor(), widget=widget, **data)
        return Response(s.WidgetOutput(widget).data)

    @extend_schema(summary="Delete a widget", responses={204: None})
    def delete(self, request: Request, tenant_id: Any, widget_id: Any) -> Response:
        widget = selectors.widget_get(tenant=self.tenant, widget_id=widget_id)
        services.widget_delete(actor=self.actor(), widget=widget)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WidgetDataView(TenantAPIView):
    permissions = {"POST": "widget.view"}  # and workflow.run for parameters the widget does not declare

    @extend_schema(
        summary="Run the widget's workflow (ASYNC: 202; SYNC: waits up to timeout_s) and return its data",
        request=s.DataInput,
        responses={202: s.DataStartedOutput, 200: s.DataOutput},
    )
    def post(self, request: Request, tenant_id: Any, widget_id: Any) -> Response:
        widget = selectors.widget_get(tenant=self.tenant, widget_id=widget_id)
        data = parse_input(s.DataInput, request)
        started = services.widget_run(
            access=self.access,
            actor=self.actor(),
            widget=widget,
            input_params=data["input_params"],
            force=data["refresh"],
        )
        if data["execution_mode"] == "ASYNC":
            body = {"instance_id": started.instance.id, "reused": started.reused}
            return Response(s.DataStartedOutput(body).data, status=status.HTTP_202_ACCEPTED)
        wait_s = min(data["timeout_s"], settings.JETADMIN_MAX_SYNC_WAIT_S)
        instance, timed_out = workflow_services.instance_wait(instance=started.instance, timeout_s=wait_s)
        result = services.widget_result(widget, instance)
        body = {"instance_id": instance.id, "status": instance.status, "timed_out": timed_out, **result}
        return Response(s.DataOutput(body).data)


class WidgetExportView(TenantAPIView):
    permissions = {"GET": "widget.view"}

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # ?format= names the file's format here, not one of DRF's renderers (which would answer 404)
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        summary="Download the widget's last data (?format=csv or json)",
        parameters=[OpenApiParameter("format", str, enum=["csv", "json"], default="csv")],
        responses={(200, "text/csv"): OpenApiTypes.STR, (200, "application/json"): OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, tenant_id: Any, widget_id: Any) -> HttpResponse:
        widget = selectors.widget_get(tenant=self.tenant, widget_id=widget_id)
        fmt = request.query_params.get("format", "csv")
        if fmt not in ("csv", "json"):
            raise ApplicationError("format must be csv or json.", details={"format": ["csv or json."]})
        return services.export_response(widget, fmt)
