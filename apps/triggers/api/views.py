"""Triggers API (CONTRACT "Workflows"): a workflow's schedules and webhooks, and the public hook."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from apps.tenancy.api.base import APIView, TenantAPIView, client_ip
from apps.triggers import selectors, services
from apps.workflows import selectors as workflow_selectors
from apps.workflows.models import Workflow
from jetadmin.api.inputs import parse_input

from . import serializers as s


class _WorkflowScoped(TenantAPIView):
    def workflow(self, workflow_id: Any) -> Workflow:
        return workflow_selectors.workflow_get(tenant=self.tenant, workflow_id=workflow_id)


def _schedule_args(data: dict[str, Any]) -> dict[str, Any]:
    """Input field names → service keywords (``cron``/``timezone`` name modules in the service)."""
    renames = {"cron": "cron_expr", "timezone": "timezone_name"}
    return {renames.get(k, k): v for k, v in data.items()}


class ScheduleListView(_WorkflowScoped):
    permissions = {"GET": "workflow.view", "POST": "workflow.manage"}

    @extend_schema(summary="Cron schedules of a workflow", responses=s.ScheduleOutput(many=True))
    def get(self, request: Request, tenant_id: Any, workflow_id: Any) -> Response:
        workflow = self.workflow(workflow_id)
        return self.paginated(selectors.schedule_list(workflow=workflow), s.ScheduleOutput)

    @extend_schema(
        summary="Schedule a workflow (cron in a timezone; 400 names a bad cron or timezone)",
        request=s.ScheduleInput,
        responses={201: s.ScheduleOutput},
    )
    def post(self, request: Request, tenant_id: Any, workflow_id: Any) -> Response:
        workflow = self.workflow(workflow_id)
        data = parse_input(s.ScheduleInput, request)
        schedule = services.schedule_create(actor=self.actor(), workflow=workflow, **_schedule_args(data))
        return Response(s.ScheduleOutput(schedule).data, status=status.HTTP_201_CREATED)


class ScheduleDetailView(_WorkflowScoped):
    permissions = {"GET": "workflow.view", "PATCH": "workflow.manage", "DELETE": "workflow.manage"}

    @extend_schema(summary="A schedule with its next tick", responses=s.ScheduleOutput)
    def get(self, request: Request, tenant_id: Any, workflow_id: Any, schedule_id: Any) -> Response:
        schedule = selectors.schedule_get(workflow=self.workflow(workflow_id), schedule_id=schedule_id)
        return Response(s.ScheduleOutput(schedule).data)

    @extend_schema(
        summary="Change a schedule (a new cron, timezone or re-enabling counts from now)",
        request=s.ScheduleUpdateInput,
        responses=s.ScheduleOutput,
    )
    def patch(self, request: Request, tenant_id: Any, workflow_id: Any, schedule_id: Any) -> Response:
        schedule = selectors.schedule_get(workflow=self.workflow(workflow_id), schedule_id=schedule_id)
        data = parse_input(s.ScheduleUpdateInput, request)
        schedule = services.schedule_update(actor=self.actor(), schedule=schedule, **_schedule_args(data))
        return Response(s.ScheduleOutput(schedule).data)

    @extend_schema(summary="Delete a schedule", responses={204: None})
    def delete(self, request: Request, tenant_id: Any, workflow_id: Any, schedule_id: Any) -> Response:
        schedule = selectors.schedule_get(workflow=self.workflow(workflow_id), schedule_id=schedule_id)
        services.schedule_delete(actor=self.actor(), schedule=schedule)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookListView(_WorkflowScoped):
    permissions = {"GET": "workflow.view", "POST": "workflow.manage"}

    @extend_schema(
        summary="Webhooks of a workflow (never their tokens or secrets)", responses=s.WebhookOutput(many=True)
    )
    def get(self, request: Request, tenant_id: Any, workflow_id: Any) -> Response:
        workflow = self.workflow(workflow_id)
        return self.paginated(selectors.webhook_list(workflow=workflow), s.WebhookOutput)

    @extend_schema(
        summary="Create a webhook; the response shows its token once",
        request=s.WebhookInput,
        responses={201: s.WebhookCreatedOutput},
    )
    def post(self, request: Request, tenant_id: Any, workflow_id: Any) -> Response:
        workflow = self.workflow(workflow_id)
        data = parse_input(s.WebhookInput, request)
        webhook, token = services.webhook_create(actor=self.actor(), workflow=workflow, **data)
        body = {
            "id": webhook.id,
            "name": webhook.name,
            "token": token,
            "url": request.build_absolute_uri(reverse("api-hook", kwargs={"token": token})),
            "has_secret": webhook.has_secret,
            "created_at": webhook.created_at,
        }
        return Response(s.WebhookCreatedOutput(body).data, status=status.HTTP_201_CREATED)


class WebhookDetailView(_WorkflowScoped):
    permissions = {"DELETE": "workflow.manage"}

    @extend_schema(summary="Revoke a webhook (its token stops working)", responses={204: None})
    def delete(self, request: Request, tenant_id: Any, workflow_id: Any, webhook_id: Any) -> Response:
        webhook = selectors.webhook_get(workflow=self.workflow(workflow_id), webhook_id=webhook_id)
        services.webhook_revoke(actor=self.actor(), webhook=webhook)
        return Response(status=status.HTTP_204_NO_CONTENT)


class HookView(APIView):
    """The public end of a webhook: the token in the URL is the credential (plus an HMAC if set)."""

    authentication_classes: list[Any] = []  # no session either, hence no CSRF check
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Start a run of the webhook's workflow; the JSON body becomes its input",
        auth=[],
        request={"application/json": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter(
                services.SIGNATURE_HEADER,
                str,
                OpenApiParameter.HEADER,
                description="sha256=<hex HMAC-SHA256 of the raw body>; required if the webhook has a secret",
            )
        ],
        responses={
            202: s.HookStartedOutput,
            400: OpenApiResponse(description="The body is not a JSON object."),
            401: OpenApiResponse(description="Missing or invalid signature."),
            404: OpenApiResponse(description="Unknown or revoked token."),
            429: OpenApiResponse(description="Rate limited; see Retry-After."),
        },
    )
    def post(self, request: Request, token: str) -> Response:
        instance = services.webhook_fire(
            token=token,
            body=request.body,
            signature=request.headers.get(services.SIGNATURE_HEADER),
            ip=client_ip(request),
        )
        body = {"instance_id": instance.id, "status": instance.status}
        return Response(s.HookStartedOutput(body).data, status=status.HTTP_202_ACCEPTED)
