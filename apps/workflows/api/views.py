"""Workflows API (CONTRACT "Workflows"): definitions, versions, validation, runs and their journal."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.tenancy.api.base import APIView, TenantAPIView
from apps.workflows import selectors, services, testcases
from apps.workflows.diff import graph_diff
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
        description=(
            "A workflow is a graph of nodes (`GET /api/v1/node-types/` lists the types and their inputs) "
            "and edges; inputs may hold templates such as `{{ input.since }}` or `{{ orders.rows }}`. The "
            "graph is validated before anything is saved: a 400 names the node and field of every problem. "
            "The graph becomes version 1; a PATCH with a new graph makes the next version."
        ),
        request=s.WorkflowInput,
        responses={201: s.WorkflowOutput},
        examples=[
            OpenApiExample(
                "Query, then shape the rows",
                request_only=True,
                value={
                    "name": "Big orders",
                    "description": "Orders above a threshold, as a list of ids.",
                    "graph": {
                        "nodes": [
                            {"id": "start", "type": "start"},
                            {
                                "id": "orders",
                                "type": "dataQuery",
                                "inputs": {"query": "<saved query id>", "params": {"min": "{{ input.min }}"}},
                            },
                            {"id": "end", "type": "end", "inputs": {"output": "{{ orders.rows }}"}},
                        ],
                        "edges": [{"from": "start", "to": "orders"}, {"from": "orders", "to": "end"}],
                    },
                },
            )
        ],
    )
    def post(self, request: Request, tenant_id: Any) -> Response:
        data = parse_input(s.WorkflowInput, request)
        workflow, converted = services.workflow_import(actor=self.actor(), tenant=self.tenant, **data)
        body = dict(s.WorkflowOutput(workflow).data)
        if converted:  # a graph in Jet Admin's format: what was converted, node by node
            body["converted"] = converted
        return Response(body, status=status.HTTP_201_CREATED)


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
        graph = parse_input(s.GraphInput, request)["graph"]
        problems = services.graph_problems(graph)
        # the graph as it would be saved: the editor's keys (positions, notes, pins) come back unchanged
        return Response(
            {"valid": not problems, "errors": problems, "graph": services.graph_normalized(graph)}
        )


class WorkflowVersionListView(TenantAPIView):
    permissions = {"GET": "workflow.view"}

    @extend_schema(summary="Versions of a workflow, newest first", responses=s.VersionOutput(many=True))
    def get(self, request: Request, tenant_id: Any, workflow_id: Any) -> Response:
        workflow = selectors.workflow_get(tenant=self.tenant, workflow_id=workflow_id)
        return self.paginated(selectors.version_list(workflow=workflow), s.VersionOutput)


class WorkflowVersionDetailView(TenantAPIView):
    permissions = {"GET": "workflow.view"}

    @extend_schema(summary="One version of a workflow, with its graph", responses=s.VersionOutput)
    def get(self, request: Request, tenant_id: Any, workflow_id: Any, version: int) -> Response:
        workflow = selectors.workflow_get(tenant=self.tenant, workflow_id=workflow_id)
        return Response(s.VersionOutput(selectors.version_get(workflow=workflow, version=version)).data)


class WorkflowVersionDiffView(TenantAPIView):
    permissions = {"GET": "workflow.view"}

    @extend_schema(
        summary="What changed from version a to version b (nodes, edges, notes)",
        parameters=[OpenApiParameter("a", int), OpenApiParameter("b", int)],
        responses=s.DiffOutput,
    )
    def get(self, request: Request, tenant_id: Any, workflow_id: Any) -> Response:
        workflow = selectors.workflow_get(tenant=self.tenant, workflow_id=workflow_id)
        numbers: dict[str, int] = {}
        for key in ("a", "b"):
            try:
                numbers[key] = int(request.query_params[key])
            except (KeyError, ValueError):
                raise ApplicationError(
                    f"{key} must be a version number.", details={key: ["A version number is required."]}
                ) from None
        a = selectors.version_get(workflow=workflow, version=numbers["a"])
        b = selectors.version_get(workflow=workflow, version=numbers["b"])
        return Response({"a": a.version, "b": b.version, **graph_diff(a.graph, b.graph)})


class WorkflowRestoreView(TenantAPIView):
    permissions = {"POST": "workflow.manage"}

    @extend_schema(
        summary="Make an older version current again (saved as a new version); 409 if it is current",
        request=None,
        responses=s.WorkflowOutput,
    )
    def post(self, request: Request, tenant_id: Any, workflow_id: Any, version: int) -> Response:
        workflow = selectors.workflow_get(tenant=self.tenant, workflow_id=workflow_id)
        old = selectors.version_get(workflow=workflow, version=version)
        workflow = services.workflow_restore(actor=self.actor(), workflow=workflow, version=old)
        return Response(s.WorkflowOutput(workflow).data)


class TestCaseListView(TenantAPIView):
    permissions = {"GET": "workflow.view", "POST": "workflow.manage"}

    @extend_schema(summary="Test cases of a workflow", responses=s.TestCaseOutput(many=True))
    def get(self, request: Request, tenant_id: Any, workflow_id: Any) -> Response:
        workflow = selectors.workflow_get(tenant=self.tenant, workflow_id=workflow_id)
        return self.paginated(selectors.test_case_list(workflow=workflow), s.TestCaseOutput)

    @extend_schema(
        summary="Add a test case: input, pinned node outputs, expectations",
        description=(
            "`pinned` maps node ids to outputs: those nodes are not executed when the case runs. "
            "`expect` holds any of `status` (default `succeeded`), `output` (the run's output), and "
            "`nodes: {node_id: {status?, output?}}`; every value is compared for equality."
        ),
        request=s.TestCaseInput,
        responses={201: s.TestCaseOutput},
        examples=[
            OpenApiExample(
                "The report without the database",
                request_only=True,
                value={
                    "name": "two orders",
                    "input": {"since": "2026-01-01"},
                    "pinned": {"orders": {"rows": [{"id": 1}, {"id": 2}]}},
                    "expect": {"nodes": {"count": {"output": 2}}},
                },
            )
        ],
    )
    def post(self, request: Request, tenant_id: Any, workflow_id: Any) -> Response:
        workflow = selectors.workflow_get(tenant=self.tenant, workflow_id=workflow_id)
        data = parse_input(s.TestCaseInput, request)
        case = testcases.test_case_create(actor=self.actor(), workflow=workflow, **data)
        return Response(s.TestCaseOutput(case).data, status=status.HTTP_201_CREATED)


class TestCaseDetailView(TenantAPIView):
    permissions = {"GET": "workflow.view", "PATCH": "workflow.manage", "DELETE": "workflow.manage"}

    def _case(self, workflow_id: Any, case_id: Any) -> Any:
        workflow = selectors.workflow_get(tenant=self.tenant, workflow_id=workflow_id)
        return selectors.test_case_get(workflow=workflow, case_id=case_id)

    @extend_schema(summary="A test case with its last result", responses=s.TestCaseOutput)
    def get(self, request: Request, tenant_id: Any, workflow_id: Any, case_id: Any) -> Response:
        return Response(s.TestCaseOutput(self._case(workflow_id, case_id)).data)

    @extend_schema(summary="Change a test case", request=s.TestCasePatch, responses=s.TestCaseOutput)
    def patch(self, request: Request, tenant_id: Any, workflow_id: Any, case_id: Any) -> Response:
        case = self._case(workflow_id, case_id)
        data = parse_input(s.TestCasePatch, request)
        case = testcases.test_case_update(actor=self.actor(), case=case, **data)
        return Response(s.TestCaseOutput(case).data)

    @extend_schema(summary="Delete a test case", responses={204: None})
    def delete(self, request: Request, tenant_id: Any, workflow_id: Any, case_id: Any) -> Response:
        testcases.test_case_delete(actor=self.actor(), case=self._case(workflow_id, case_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TestCaseRunView(TenantAPIView):
    permissions = {"POST": "workflow.manage"}

    @extend_schema(
        summary="Run a test case now and wait for its verdict",
        request=s.TestCaseRunInput,
        responses=s.TestCaseResultOutput,
    )
    def post(self, request: Request, tenant_id: Any, workflow_id: Any, case_id: Any) -> Response:
        workflow = selectors.workflow_get(tenant=self.tenant, workflow_id=workflow_id)
        case = selectors.test_case_get(workflow=workflow, case_id=case_id)
        data = parse_input(s.TestCaseRunInput, request)
        wait_s = min(data["timeout_s"], settings.JETADMIN_MAX_SYNC_WAIT_S)
        result = testcases.test_case_run(actor=self.actor(), case=case, timeout_s=wait_s)
        return Response(s.TestCaseResultOutput(result).data)


class WorkflowExecuteView(TenantAPIView):
    permissions = {"POST": "workflow.run"}

    @extend_schema(
        summary="Run a workflow (async: 202; sync: waits up to timeout_s)",
        description=(
            "Starts a run of the workflow's current version with `input` (read by templates as "
            "`{{ input.<field> }}`). `mode: async` answers 202 at once with the run's id: follow it with "
            "`GET …/instances/{id}/` or over the websocket. `mode: sync` waits up to `timeout_s` and answers "
            "200 with the run's status and output (a run still going at the timeout keeps running)."
        ),
        request=s.ExecuteInput,
        responses={202: s.StartedOutput, 200: s.SyncOutput},
        examples=[
            OpenApiExample("Start and follow", request_only=True, value={"input": {"since": "2026-01-01"}}),
            OpenApiExample(
                "Wait for the result",
                request_only=True,
                value={"input": {"since": "2026-01-01"}, "mode": "sync", "timeout_s": 30},
            ),
        ],
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
        workflow = request.query_params.get("workflow")
        if workflow:
            try:
                uuid.UUID(workflow)
            except ValueError:  # a filter that cannot match is bad input, not a missing page
                raise ApplicationError(
                    "workflow must be a workflow id.", details={"workflow": ["Not a valid id."]}
                ) from None
        qs = selectors.instance_list(
            tenant=self.tenant,
            workflow_id=workflow,
            status=request.query_params.get("status"),
        )
        return self.paginated(qs, s.InstanceOutput)


class InstanceDetailView(TenantAPIView):
    permissions = {"GET": "workflow.view", "DELETE": "workflow.manage"}

    @extend_schema(summary="A run with the state of each node", responses=s.InstanceDetailOutput)
    def get(self, request: Request, tenant_id: Any, instance_id: Any) -> Response:
        instance = selectors.instance_get(tenant=self.tenant, instance_id=instance_id)
        instance.nodes = services.node_summary(instance)  # type: ignore[attr-defined]
        return Response(s.InstanceDetailOutput(instance).data)

    @extend_schema(
        summary="Delete an ended run",
        description="Deletes the run with its node states, journal and large outputs. A run that is "
        "still open answers 409: cancel it first. Old runs are also deleted by the tenant's retention "
        "settings.",
        responses={204: None},
    )
    def delete(self, request: Request, tenant_id: Any, instance_id: Any) -> Response:
        instance = selectors.instance_get(tenant=self.tenant, instance_id=instance_id)
        services.instance_delete(actor=self.actor(), instance=instance)
        return Response(status=status.HTTP_204_NO_CONTENT)


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
        summary="Answer a node waiting for a person (approval, dataCollection); kept if it waits later",
        description=(
            "A waiting node is answered at once (200). Input for a node that has not started waiting yet "
            "is kept and taken when it does (202), unless `if_waiting: true` (then 409 and nothing is "
            "kept). A node that has ended answers 409."
        ),
        request=s.InstanceInputInput,
        responses={200: s.InstanceOutput, 202: s.InstanceOutput},
    )
    def post(self, request: Request, tenant_id: Any, instance_id: Any) -> Response:
        instance = selectors.instance_get(tenant=self.tenant, instance_id=instance_id)
        data = parse_input(s.InstanceInputInput, request)
        instance, kept = services.instance_send_input(actor=self.actor(), instance=instance, **data)
        return Response(
            s.InstanceOutput(instance).data, status=status.HTTP_202_ACCEPTED if kept else status.HTTP_200_OK
        )


class NodeOutputView(TenantAPIView):
    permissions = {"GET": "workflow.view"}

    @extend_schema(
        summary="A node's full output as a JSON download (also when it is kept in the blob store)",
        parameters=[OpenApiParameter("iteration", str)],
        responses={200: dict},
    )
    def get(self, request: Request, tenant_id: Any, instance_id: Any, node_id: str) -> HttpResponse:
        instance = selectors.instance_get(tenant=self.tenant, instance_id=instance_id)
        text = services.node_output_text(
            instance=instance, node_id=node_id, iteration=request.query_params.get("iteration", "")
        )
        response = HttpResponse(text, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{instance.id}-{node_id}.json"'
        return response


class NodeCancelView(TenantAPIView):
    permissions = {"POST": "workflow.run"}

    @extend_schema(
        summary="Cancel one running or waiting node (its error route, else the run fails)",
        request=s.NodeCancelInput,
        responses=s.InstanceOutput,
    )
    def post(self, request: Request, tenant_id: Any, instance_id: Any, node_id: str) -> Response:
        instance = selectors.instance_get(tenant=self.tenant, instance_id=instance_id)
        data = parse_input(s.NodeCancelInput, request)
        instance = services.instance_cancel_node(
            actor=self.actor(), instance=instance, node_id=node_id, iteration=data["iteration"]
        )
        return Response(s.InstanceOutput(instance).data)


class InstanceStopView(TenantAPIView):
    permissions = {"DELETE": "workflow.run"}

    @extend_schema(summary="Stop a test run", responses=s.InstanceOutput)
    def delete(self, request: Request, tenant_id: Any, instance_id: Any) -> Response:
        instance = selectors.instance_get(tenant=self.tenant, instance_id=instance_id)
        instance = services.instance_cancel(actor=self.actor(), instance=instance, stop=True)
        return Response(s.InstanceOutput(instance).data)
