"""Workflow and run pages. The workflow page shows the current version's graph read-only (laid out by
:mod:`apps.workflows.layout`), a Run form (fields from the ``start`` node's input schema, else JSON),
versions, schedules, webhooks and recent runs. The run inspector renders the run as it is and then
follows it live over ``/ws/`` (static/js/realtime.js); it answers waiting approvals and offers cancel,
retry and resume. Permissions as in the API: ``workflow.view`` to see, ``workflow.run`` to act."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib import messages
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.exceptions import NotFound

from apps.tenancy.selectors import TenantAccess
from apps.triggers import selectors as trigger_selectors
from apps.triggers.views import NEW_WEBHOOK
from jetadmin import schema_forms
from jetadmin.api.errors import ApplicationError
from jetadmin.pages import actor, error_text, paginate, render_page, search_page, tenant_page

from . import blobs, inbox, layout, selectors, services
from .models import InstanceStatus, NodeRun, Trigger, Workflow, WorkflowInstance
from .nodes import REGISTRY

ACTIONS = {
    "cancel": services.instance_cancel,
    "retry": services.instance_retry,
    "resume": services.instance_resume,
}


@tenant_page("workflow.view")
def workflow_list(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    last = WorkflowInstance.objects.filter(workflow=OuterRef("pk"), is_test=False).order_by("-created_at")
    rows = selectors.workflow_list(tenant=access.tenant).annotate(
        last_status=Subquery(last.values("status")[:1]),
        last_run_at=Subquery(last.values("created_at")[:1]),
        schedule_count=Count("schedules", filter=Q(schedules__enabled=True)),
    )
    page, search = search_page(request, rows.order_by("name", "id"))
    return render_page(
        request, access, "workflows/list.html", {"page": page, "search": search}, section="workflows"
    )


def _start_schema(graph: Any) -> dict[str, Any] | None:
    """The run input's JSON Schema, where the ``start`` node declares one with properties."""
    for node in (graph or {}).get("nodes") or []:
        if isinstance(node, dict) and node.get("type") == "start":
            schema = (node.get("inputs") or {}).get("schema")
            if isinstance(schema, dict) and schema.get("properties"):
                return schema
    return None


NEW_GRAPH = {
    "nodes": [
        {"id": "start", "type": "start", "position": {"x": 40, "y": 120}},
        {"id": "end", "type": "end", "position": {"x": 360, "y": 120}},
    ],
    "edges": [{"source": "start", "target": "end"}],
}


@tenant_page("workflow.manage")
@require_http_methods(["GET", "POST"])
def workflow_new(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    """Name a new workflow; it starts as start → end and opens in the editor."""
    errors: dict[str, list[str]] = {}
    name = request.POST.get("name", "").strip()
    description = request.POST.get("description", "").strip()
    if request.method == "POST":
        if not name:
            errors["name"] = ["Give the workflow a name."]
        elif len(name) > 200:
            errors["name"] = ["At most 200 characters."]
        else:
            workflow = services.workflow_create(
                actor=actor(request),
                tenant=access.tenant,
                name=name,
                description=description,
                graph=NEW_GRAPH,
            )
            messages.success(request, f"Workflow {name!r} created: add nodes from the palette, then Save.")
            return redirect("workflow-detail", access.tenant.id, workflow.id)
    context = {"errors": errors, "name": name, "description": description}
    return render_page(
        request, access, "workflows/new.html", context, section="workflows", status=400 if errors else 200
    )


def _positioned(graph: Any) -> dict[str, Any]:
    """The graph with a position for every node: an imported graph without them is laid out in layers."""
    graph = dict(graph or {"nodes": [], "edges": []})
    nodes = [dict(n) for n in graph.get("nodes", []) if isinstance(n, dict)]
    if any(not isinstance(n.get("position"), dict) for n in nodes):
        boxes = {b.id: b for b in layout.layout(graph).boxes}
        for node in nodes:
            box = boxes.get(str(node.get("id")))
            if box is not None and not isinstance(node.get("position"), dict):  # columns of the editor's size
                column = round((box.x - layout.PAD) / (layout.NODE_W + layout.GAP_X))
                row = round((box.y - layout.PAD) / (layout.NODE_H + layout.GAP_Y))
                node["position"] = {"x": 40 + column * 260, "y": 40 + row * 100}
    graph["nodes"] = nodes
    return graph


def _editor_context(
    request: HttpRequest, access: TenantAccess, workflow: Workflow, graph: Any
) -> dict[str, Any]:
    """What the visual editor (static/js/workflow_editor.js) starts from, as json_script data."""
    past_run = None
    run_id = request.GET.get("run")
    if run_id:
        try:
            instance = selectors.instance_get(tenant=access.tenant, instance_id=run_id)
        except NotFound:
            instance = None
        if instance is not None and instance.workflow_id == workflow.id:
            graph = instance.graph  # the run's own graph: re-run from any node with its outputs
            past_run = {
                "id": str(instance.id),
                "status": instance.status,
                "nodes": services.node_summary(instance),
                "input": instance.input,
            }
    can = set(access.role.permissions)
    return {
        "editor": {
            "workflow": {"id": str(workflow.id), "name": workflow.name},
            "version": workflow.current_version.version if workflow.current_version else None,
            "graph": _positioned(graph),
            "node_types": [REGISTRY[key].describe() for key in sorted(REGISTRY)],
            "can_edit": "workflow.manage" in can,
            "past_run": past_run,
            "api": f"/api/v1/tenants/{access.tenant.id}/workflows/",
            "runs_page": f"/t/{access.tenant.id}/runs/",
        }
    }


@tenant_page("workflow.view")
def workflow_detail(request: HttpRequest, access: TenantAccess, workflow_id: str) -> HttpResponse:
    workflow = selectors.workflow_get(tenant=access.tenant, workflow_id=workflow_id)
    graph = workflow.current_version.graph if workflow.current_version else {}
    context = _workflow_context(access, workflow, graph, new_webhook_url=request.session.pop(NEW_WEBHOOK, ""))
    context.update(_editor_context(request, access, workflow, graph))
    response = render_page(request, access, "workflows/detail.html", context, section="workflows")
    if context["new_webhook_url"]:
        response["Cache-Control"] = "no-store"
    return response


def _workflow_context(access: TenantAccess, workflow: Workflow, graph: Any, **extra: Any) -> dict[str, Any]:
    schema = _start_schema(graph)
    return {
        "workflow": workflow,
        "picture": layout.layout(graph),
        "input_schema": schema,
        "input_fields": schema_forms.fields(schema, extra.pop("values", None), extra.pop("errors", None))
        if schema
        else [],
        "versions": list(selectors.version_list(workflow=workflow)[:20]),
        "schedules": list(trigger_selectors.schedule_list(workflow=workflow)[:50]),
        "webhooks": list(trigger_selectors.webhook_list(workflow=workflow)[:50]),
        "runs": list(
            selectors.instance_list(tenant=access.tenant, workflow_id=str(workflow.id)).order_by(
                "-created_at"
            )[:10]
        ),
        **extra,
    }


@tenant_page("workflow.run")
@require_POST
def workflow_run(request: HttpRequest, access: TenantAccess, workflow_id: str) -> HttpResponse:
    """Start a run from the Run form and open its inspector."""
    workflow = selectors.workflow_get(tenant=access.tenant, workflow_id=workflow_id)
    graph = workflow.current_version.graph if workflow.current_version else {}
    schema = _start_schema(graph)
    errors: dict[str, list[str]] = {}
    raw = request.POST.get("input", "").strip()
    if schema:
        data, errors = schema_forms.read(schema, request.POST)
    else:
        try:
            data = json.loads(raw) if raw else {}
        except ValueError as exc:
            data, errors = {}, {"input": [f"Enter the input as JSON ({exc})."]}
    if not errors:
        try:
            instance = services.workflow_execute(
                actor=actor(request),
                workflow=workflow,
                input=data,
                trigger=Trigger.MANUAL,
            )
        except ApplicationError as exc:
            errors = {**(exc.details or {}), "form": [exc.message]}
        else:
            return redirect("run-page", access.tenant.id, instance.id)
    context = _workflow_context(
        access, workflow, graph, values=data, errors=errors, run_errors=errors, input_text=raw
    )
    return render_page(request, access, "workflows/detail.html", context, section="workflows", status=400)


@tenant_page("workflow.view")
def run_list(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    rows = selectors.instance_list(tenant=access.tenant).select_related("workflow").order_by("-created_at")
    filters = {
        key: request.GET.get(key, "").strip() for key in ("workflow", "status", "trigger", "since", "until")
    }
    if filters["workflow"]:
        try:
            rows = rows.filter(workflow_id=uuid.UUID(filters["workflow"]))
        except ValueError:  # a mangled link: show every run rather than a 404
            filters["workflow"] = ""
    if filters["status"] in InstanceStatus.values:
        rows = rows.filter(status=filters["status"])
    if filters["trigger"] in Trigger.values:
        rows = rows.filter(trigger=filters["trigger"])
    since, until = parse_date(filters["since"] or "-"), parse_date(filters["until"] or "-")
    if since:
        rows = rows.filter(created_at__date__gte=since)
    if until:
        rows = rows.filter(created_at__date__lte=until)
    page = paginate(request, rows)
    query_extra = "".join(f"{k}={v}&" for k, v in filters.items() if v)
    context = {
        "page": page,
        "filters": filters,
        "query_extra": query_extra,
        "workflows": list(
            selectors.workflow_list(tenant=access.tenant).values("id", "name").order_by("name")[:500]
        ),
        "statuses": InstanceStatus.values,
        "triggers": Trigger.values,
    }
    return render_page(request, access, "workflows/runs.html", context, section="runs")


@tenant_page("workflow.view")
@require_http_methods(["GET"])
def run_page(request: HttpRequest, access: TenantAccess, instance_id: str) -> HttpResponse:
    instance = selectors.instance_get(tenant=access.tenant, instance_id=instance_id)
    node_runs: list[dict[str, Any]] = [
        dict(row)
        for row in NodeRun.objects.filter(instance=instance, iteration="")
        .order_by("id")
        .values(
            "node_id", "node_type", "status", "attempt", "input", "output", "error", "started_at", "ended_at"
        )
    ]
    picture = layout.layout(instance.graph)
    by_id = {n["node_id"]: n for n in node_runs}
    for box in picture.boxes:
        run = by_id.get(box.id)
        box.status = run["status"] if run else "pending"
    for run in node_runs:
        run["duration_ms"] = (
            round((run["ended_at"] - run["started_at"]).total_seconds() * 1000)
            if run["started_at"] and run["ended_at"]
            else None
        )
        if blobs.is_ref(run["output"]):  # kept in the blob store: its size, a preview, a download link
            run["output_size"], run["blob"] = run["output"]["size"], run["output"]
        else:
            run["output_size"] = (
                len(json.dumps(run["output"], default=str)) if run["output"] is not None else 0
            )
    waiting = [
        _waiting_step(n)
        for n in node_runs
        if n["status"] == "waiting" and n["node_type"] in inbox.input_types()
    ]
    context = {
        "instance": instance,
        "nodes": node_runs,
        "picture": picture,
        "waiting_steps": waiting,
        "timeline": sorted((n for n in node_runs if n["started_at"]), key=lambda n: n["started_at"]),
    }
    return render_page(request, access, "workflows/run.html", context, section="runs")


def _waiting_step(run: dict[str, Any]) -> dict[str, Any]:
    """A step waiting for a person, with the form that answers it (a data form's fields come from
    its ``schema``)."""
    inputs = run["input"] if isinstance(run["input"], dict) else {}
    schema = inputs.get("schema") if run["node_type"] == "dataCollection" else None
    return {
        **run,
        "message": inputs.get("message") or "",
        "approvers": inbox.approvers_of(inputs),
        "fields": schema_forms.fields(schema) if isinstance(schema, dict) else None,
    }


@tenant_page("workflow.view")
def inbox_page(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    """Steps of this tenant's runs that wait for the signed-in member's answer."""
    steps = (
        inbox.waiting_for(tenant=access.tenant, user=request.user) if request.user.is_authenticated else []
    )
    return render_page(request, access, "workflows/inbox.html", {"steps": steps}, section="inbox")


@tenant_page("workflow.run")
@require_POST
def run_action(request: HttpRequest, access: TenantAccess, instance_id: str, action: str) -> HttpResponse:
    """Cancel (the run, or one step), retry from the failed nodes, resume, or answer a waiting approval."""
    instance = selectors.instance_get(tenant=access.tenant, instance_id=instance_id)
    by = actor(request)
    try:
        if action == "submit":  # a data form
            node_id = request.POST.get("node_id", "")
            run = NodeRun.objects.filter(instance=instance, node_id=node_id, status="waiting").first()
            schema = (
                (run.input or {}).get("schema") if run is not None and isinstance(run.input, dict) else None
            )
            values, errors = schema_forms.read(schema if isinstance(schema, dict) else {}, request.POST)
            if errors:
                raise ApplicationError("The form has errors.", details=errors)
            services.instance_input(actor=by, instance=instance, node_id=node_id, data=values)
            messages.success(request, f"Step {node_id!r} answered.")
        elif action == "approve" or action == "reject":
            data = {"decision": "approved" if action == "approve" else "rejected"}
            comment = request.POST.get("comment", "").strip()
            if comment:
                data["comment"] = comment
            services.instance_input(
                actor=by, instance=instance, node_id=request.POST.get("node_id", ""), data=data
            )
            messages.success(request, f"Step {request.POST.get('node_id', '')!r} {data['decision']}.")
        elif action == "cancel-node":
            node_id = request.POST.get("node_id", "")
            services.instance_cancel_node(actor=by, instance=instance, node_id=node_id)
            messages.success(request, f"Step {node_id!r} canceled.")
        elif action in ACTIONS:
            ACTIONS[action](actor=by, instance=instance)
            messages.success(
                request,
                {"cancel": "Run canceled.", "retry": "Retrying the failed steps.", "resume": "Run resumed."}[
                    action
                ],
            )
        else:
            raise Http404
    except ApplicationError as exc:
        messages.error(request, error_text(exc))
    return redirect("run-page", access.tenant.id, instance.id)
