"""Workflows API (CONTRACT "Workflows"): definitions, versions, validation, runs and their journal."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.tenancy.api.base import APIView, TenantAPIView
from apps.workflows import selectors, services
from apps.workflows.models import InstanceStatus, WorkflowInstance
from apps.workflows.nodes import REGISTRY
from jetadmin.api.errors import ApplicationError
from jetadmin.api.inputs import parse_input

from . import serializers as s


def _started(instance: WorkflowInstance, data: dict[str, Any]) -> Response:
    if data.get("mode") == "sync":
        wait_s = min(data["timeout_s"], settings.JETADMIN_MAX_SYNC_WAIT_S)
        instance, timed_out = services.instance_wait(instance=instance, timeout_s=wait_s)
        body = {
            "instance_id": instance.id,
            "status": instance.status,
            "output": instance.output,
            "error": instance.error,
            "timed_out": timed_out,
        }
        return Response(s.SyncOutput(body).data, status=status.HTTP_200_OK)
    body = {"instance_id": instance.id, "status": instance.status}
    return Response(s.StartedOutput(body).data, status=status.HTTP_202_ACCEPTED)


class NodeTypeListView(APIView):
    pagination_class = None

    @extend_schema(
        summary="Node types with their input/output schemas and handles",
        responses=s.NodeTypeOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        return Response([REGISTRY[key].describe() for key in sorted(REGISTRY)])


class WorkflowListView(TenantAPIView):
    permissions = {"GET": "workflow.view", "POST": "workflow.manage"}

    @extend_schema(summary="Workflows of the tenant", responses=s.WorkflowOutput(many=True))
    def get(self, request: Request, tenant_id: Any) -> Response:
        return self.paginated(selectors.workflow_list(tenant=self.tenant), s.WorkflowOutput)

    @extend_schema(
        summary="Create a workflow (400 lists node-level errors)",
        request=s.WorkflowInput,
        responses={201: s.WorkflowOutput},
    )
    def post(self, request: Request, tenant_id: Any) -> Response:
        data = parse_input(s.WorkflowInput, request)
        workflow = services.workflow_create(actor=self.actor(), tenant=self.tenant, **data)
        return Response(s.WorkflowOutput(workflow).data, status=status.HTTP_201_CREATED)


class WorkflowDetailView(TenantAPIView):
    permissions = {"GET": "workflow.view", "PATCH": "workflow.manage", "DELETE": "workflow.manage"}

    @extend_schema(summary="A workflow with its current graph", responses=s.WorkflowOutput)
    def get(self, request: Request, tenant_id: Any, workflow_id: Any) -> Response:
        return Response(
            s.WorkflowOutput(selectors.workflow_get(tenant=self.tenant, workflow_id=workflow_id)).data
        )

    @extend_schema(
        summary="Change a workflow; a changed graph makes a new version",
        request=s.WorkflowUpdateInput,
        responses=s.WorkflowOutput,
    )
    def patch(self, request: Request, tenant_id: Any, workflow_id: Any) -> Response:
        workflow = selectors.workflow_get(tenant=self.tenant, workflow_id=workflow_id)
        data = parse_input(s.WorkflowUpdateInput, request)
        workflow = services.workflow_update(actor=self.actor(), workflow=workflow, **data)
        return Response(s.WorkflowOutput(workflow).data)

    @extend_schema(summary="Delete a workflow (its runs are kept)", responses={204: None})
    def delete(self, request: Request, tenant_id: Any, workflow_id: Any) -> Response:
        workflow = selectors.workflow_get(tenant=self.tenant, workflow_id=workflow_id)
        services.workflow_delete(actor=self.actor(), workflow=workflow)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WorkflowValidateView(TenantAPIView):
    permissions = {"POST": "workflow.view"}

    @extend_schema(
        summary="Validate a graph without saving it", request=s.GraphInput, responses=s.ValidateOutput
    )
    def post(self, request: Request, tenant_id: Any) -> Response:
        problems = services.graph_problems(parse_input(s.GraphInput, request)["graph"])
        return Response({"valid": not problems, "errors": problems})


class WorkflowVersionListView(TenantAPIView):
    permissions = {"GET": "workflow.view"}

    @extend_schema(summary="Versions of a workflow, newest first", responses=s.VersionOutput(many=True))
    def get(self, request: Request, tenant_id: Any, workflow_id: Any) -> Response:
        workflow = selectors.workflow_get(tenant=self.tenant, workflow_id=workflow_id)
        return self.paginated(selectors.version_list(workflow=workflow), s.VersionOutput)


class WorkflowExecuteView(TenantAPIView):
    permissions = {"POST": "workflow.run"}

    @extend_schema(
        summary="Run a workflow (async: 202; sync: waits up to timeout_s)",
        request=s.ExecuteInput,
        responses={202: s.StartedOutput, 200: s.SyncOutput},
    )
    def post(self, request: Request, tenant_id: Any, workflow_id: Any) -> Response:
        workflow = selectors.workflow_get(tenant=self.tenant, workflow_id=workflow_id)
        data = parse_input(s.ExecuteInput, request)
        instance = services.workflow_execute(actor=self.actor(), workflow=workflow, input=data["input"])
        return _started(instance, data)


class WorkflowTestView(TenantAPIView):
    permissions = {"POST": "workflow.manage"}

    @extend_schema(
        summary="Run an unsaved graph as a test run",
        request=s.TestRunInput,
        responses={202: s.StartedOutput, 200: s.SyncOutput},
    )
    def post(self, request: Request, tenant_id: Any) -> Response:
        data = parse_input(s.TestRunInput, request)
        workflow = None
        if data.get("workflow"):
            workflow = selectors.workflow_get(tenant=self.tenant, workflow_id=data["workflow"])
        instance = services.workflow_test(
            actor=self.actor(),
            tenant=self.tenant,
            graph=data["graph"],
            input=data["input"],
            workflow=workflow,
        )
        return _started(instance, data)


class InstanceListView(TenantAPIView):
    permissions = {"GET": "workflow.view"}

    @extend_schema(
        summary="Runs of the tenant, newest first",
        parameters=[
            OpenApiParameter("workflow", str),
            OpenApiParameter("status", str, enum=InstanceStatus.values),
        ],
        responses=s.InstanceOutput(many=True),
    )
    def get(self, request: Request, tenant_id: Any) -> Response:
        qs = selectors.instance_list(
            tenant=self.tenant,
            workflow_id=request.query_params.get("workflow"),
            status=request.query_params.get("status"),
        )
        return self.paginated(qs, s.InstanceOutput)


class InstanceDetailView(TenantAPIView):
    permissions = {"GET": "workflow.view"}

    @extend_schema(summary="A run with the state of each node", responses=s.InstanceDetailOutput)
    def get(self, request: Request, tenant_id: Any, instance_id: Any) -> Response:
        instance = selectors.instance_get(tenant=self.tenant, instance_id=instance_id)
        instance.nodes = services.node_summary(instance)  # type: ignore[attr-defined]
        return Response(s.InstanceDetailOutput(instance).data)


class InstanceEventListView(TenantAPIView):
    permissions = {"GET": "workflow.view"}

    @extend_schema(
        summary="The run's journal, in order",
        parameters=[OpenApiParameter("after", int)],
        responses=s.EventOutput(many=True),
    )
    def get(self, request: Request, tenant_id: Any, instance_id: Any) -> Response:
        instance = selectors.instance_get(tenant=self.tenant, instance_id=instance_id)
        try:
            after = int(request.query_params.get("after", 0))
        except ValueError:
            after = -1
        if after < 0:
            raise ApplicationError(
                "after must be a non-negative integer.", details={"after": ["Not an integer."]}
            )
        return self.paginated(selectors.event_list(instance=instance, after=after), s.EventOutput)


class InstanceActionView(TenantAPIView):
    permissions = {"POST": "workflow.run", "DELETE": "workflow.run"}
    action = ""

    @extend_schema(
        summary="Cancel a run (and its child runs) / retry a failed run / resume a canceled run",
        request=None,
        responses=s.InstanceOutput,
    )
    def post(self, request: Request, tenant_id: Any, instance_id: Any) -> Response:
        instance = selectors.instance_get(tenant=self.tenant, instance_id=instance_id)
        action = {
            "retry": services.instance_retry,
            "resume": services.instance_resume,
            "cancel": services.instance_cancel,
        }[self.action]
        instance = action(actor=self.actor(), instance=instance)
        return Response(s.InstanceOutput(instance).data)


class InstanceInputView(TenantAPIView):
    permissions = {"POST": "workflow.run"}

    @extend_schema(
        summary="Answer a node waiting for a person (approval, dataCollection); 409 if it is not waiting",
        request=s.InstanceInputInput,
        responses=s.InstanceOutput,
    )
    def post(self, request: Request, tenant_id: Any, instance_id: Any) -> Response:
        instance = selectors.instance_get(tenant=self.tenant, instance_id=instance_id)
        data = parse_input(s.InstanceInputInput, request)
        instance = services.instance_input(actor=self.actor(), instance=instance, **data)
        return Response(s.InstanceOutput(instance).data)


class InstanceStopView(TenantAPIView):
    permissions = {"DELETE": "workflow.run"}

    @extend_schema(summary="Stop a test run", responses=s.InstanceOutput)
    def delete(self, request: Request, tenant_id: Any, instance_id: Any) -> Response:
        instance = selectors.instance_get(tenant=self.tenant, instance_id=instance_id)
        instance = services.instance_cancel(actor=self.actor(), instance=instance, stop=True)
        return Response(s.InstanceOutput(instance).data)
