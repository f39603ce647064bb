"""Every write in widgets, and turning a run into a widget's data.

A widget's data is its config with the ``{{ctx.*}}`` templates resolved against a run's context
(``{input, <node id>: output, __widgetInput?}``; a lone ``{{…}}`` keeps its type), then its type's
``process``. Who may run a widget (:func:`widget_run`): ``widget.view`` runs only the widget's own
workflow with only the parameters its ``workflow_config.input_params`` declares; anything else needs
``workflow.run``. Viewers asking for the same widget and parameters share a run that is in flight or
ended within ``JETADMIN_WIDGET_REUSE_S``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.exceptions import PermissionDenied

from apps.tenancy.models import Tenant
from apps.tenancy.selectors import TenantAccess
from apps.tenancy.services import Actor, audit_log_write
from apps.widgets import types
from apps.widgets.models import Widget, WidgetRun
from apps.workflows import blobs
from apps.workflows import selectors as workflows
from apps.workflows import services as workflow_services
from apps.workflows.engine import templates
from apps.workflows.engine.states import INSTANCE_TERMINAL
from apps.workflows.models import NodeRun, Trigger, WorkflowInstance
from apps.workflows.nodes import base as nodes
from jetadmin.api.errors import ApplicationError, Conflict

MSG_NO_WORKFLOW = "This widget has no workflow to run."
MSG_UNDECLARED = "Running this widget with {names} needs workflow.run: the widget does not declare them."
MSG_CONTEXT_BUSY = "The run's context kept changing; try again."
CAS_ATTEMPTS = 20


# --- CRUD --------------------------------------------------------------------------------------------
def _checked(*, tenant: Tenant, type: str, config: Any, workflow: Any, workflow_config: Any) -> Any:
    errors: dict[str, list[str]] = {}
    if type not in types.REGISTRY:
        errors["type"] = [f"Unknown widget type {type!r}; see /api/v1/widget-types/."]
    if not isinstance(config, dict):
        errors["config"] = ["An object."]
    else:
        try:
            templates.references(config)
        except templates.TemplateError as exc:
            errors["config"] = [str(exc)]
        if type in types.REGISTRY and "config" not in errors:
            for field, problems in types.REGISTRY[type].validate_config(config).items():
                errors[f"config.{field}"] = problems
    if not isinstance(workflow_config, dict):
        errors["workflow_config"] = ["An object."]
    elif not isinstance(workflow_config.get("input_params", {}), dict):
        errors["workflow_config.input_params"] = ["An object: parameter name -> default value."]
    found = None
    if workflow is not None:
        found = workflows.workflow_list(tenant=tenant).filter(pk=workflow).first()
        if found is None:
            errors["workflow"] = ["No such workflow in this tenant."]
    if errors:
        raise ApplicationError(next(iter(errors.values()))[0], details=errors)
    return found


@transaction.atomic
def widget_create(
    *,
    actor: Actor,
    tenant: Tenant,
    name: str,
    type: str,
    config: Any = None,
    workflow: Any = None,
    workflow_config: Any = None,
    pk: Any = None,
) -> Widget:
    config = {} if config is None else config
    workflow_config = {} if workflow_config is None else workflow_config
    found = _checked(
        tenant=tenant, type=type, config=config, workflow=workflow, workflow_config=workflow_config
    )
    widget = Widget.objects.create(
        **({"id": pk} if pk else {}),
        tenant=tenant,
        name=name,
        type=type,
        config=config,
        workflow=found,
        workflow_config=workflow_config,
        created_by=actor.user,
    )
    _static_data(widget)
    audit_log_write(actor=actor, tenant=tenant, action="widget.create", obj=widget, changes={"name": name})
    return widget


def _static_data(widget: Widget) -> None:
    """A widget without a workflow (a note, a fixed chart) has its data from its config alone: drawn
    now, kept as its last data, so a dashboard shows it without any run. One whose config cannot be
    drawn without a run keeps none and says why on the page."""
    if widget.workflow_id is not None:
        return
    try:
        data = widget_process(widget, {})
    except (NotReady, ApplicationError):
        data = None
    if data != widget.last_data:
        widget.last_data, widget.last_provenance = data, None
        Widget.objects.filter(pk=widget.pk).update(last_data=data, last_provenance=None)


@transaction.atomic
def widget_update(*, actor: Actor, widget: Widget, **changes: Any) -> Widget:
    merged = {
        "type": changes.get("type", widget.type),
        "config": changes.get("config", widget.config),
        "workflow": changes.get("workflow", widget.workflow_id),
        "workflow_config": changes.get("workflow_config", widget.workflow_config),
    }
    if merged["workflow_config"] is None:
        merged["workflow_config"] = {}
    widget.workflow = _checked(tenant=widget.tenant, **merged)
    widget.type, widget.config, widget.workflow_config = (
        merged["type"],
        merged["config"],
        merged["workflow_config"],
    )
    if "name" in changes:
        widget.name = changes["name"]
    widget.save()
    _static_data(widget)
    audit_log_write(
        actor=actor,
        tenant=widget.tenant,
        action="widget.update",
        obj=widget,
        changes={"fields": sorted(changes)},
    )
    return widget


@transaction.atomic
def widget_delete(*, actor: Actor, widget: Widget) -> None:
    audit_log_write(actor=actor, tenant=widget.tenant, action="widget.delete", obj=widget)
    widget.delete()


# --- running -----------------------------------------------------------------------------------------
def params_hash(params: Any) -> str:
    """The key of a set of input parameters: viewers with different filters never share a group."""
    text = json.dumps(params or {}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def widget_params(
    *, access: TenantAccess, widget: Widget, input_params: Any, also_declared: Collection[str] = ()
) -> dict[str, Any]:
    """The run's input: the widget's declared defaults overlaid with ``input_params``. Parameters the
    widget does not declare (nor ``also_declared``: the filters of the dashboard it is shown on) need
    ``workflow.run`` (403 without)."""
    if widget.workflow_id is None:
        raise ApplicationError(MSG_NO_WORKFLOW, details={"workflow": [MSG_NO_WORKFLOW]})
    if input_params is None:
        input_params = {}
    if not isinstance(input_params, dict):
        raise ApplicationError("input_params must be an object.", details={"input_params": ["An object."]})
    declared = widget.input_params
    undeclared = sorted(set(input_params) - set(declared) - set(also_declared))
    if undeclared and not access.can("workflow.run"):
        raise PermissionDenied(MSG_UNDECLARED.format(names=", ".join(undeclared)))
    return {**declared, **input_params}


@dataclass
class Started:
    instance: WorkflowInstance
    params_hash: str
    reused: bool


def widget_run(
    *,
    access: TenantAccess,
    actor: Actor,
    widget: Widget,
    input_params: Any = None,
    force: bool = False,
    also_declared: Collection[str] = (),
    reuse_s: float | None = None,
) -> Started:
    """Start the widget's workflow with these parameters, or reuse a run of the same workflow and
    parameters started for any widget: without ``force``, one in flight or ended within
    ``reuse_s`` (a dashboard's refresh interval; else ``JETADMIN_WIDGET_REUSE_S``); with it (a
    refresh), one started within
    ``JETADMIN_WIDGET_REFRESH_MIN_S``, so that viewers refreshing together (on any web process, or
    every widget of a dashboard) share the new run."""
    params = widget_params(
        access=access, widget=widget, input_params=input_params, also_declared=also_declared
    )
    key = params_hash(params)
    reuse = settings.JETADMIN_WIDGET_REUSE_S if reuse_s is None else reuse_s
    window = settings.JETADMIN_WIDGET_REFRESH_MIN_S if force else reuse
    since = timezone.now() - timedelta(seconds=window)
    if force:
        fresh = Q(created_at__gte=since)
    else:
        fresh = Q(instance__ended_at__gte=since) | Q(instance__status__in=("queued", "running", "waiting"))
    # Any widget of the same workflow with the same parameters shares the run: a dashboard whose widgets
    # all read one report starts one run, not one per widget.
    recent = (
        WidgetRun.objects.filter(fresh, widget__workflow=widget.workflow, params_hash=key)
        .exclude(instance__status__in=("failed", "canceled"))
        .select_related("instance")
        .order_by("-created_at", "-id")
        .first()
    )
    if recent is not None:
        if recent.widget_id != widget.pk:
            WidgetRun.objects.get_or_create(widget=widget, instance=recent.instance, params_hash=key)
        return Started(recent.instance, key, reused=True)
    workflow = widget.workflow
    if workflow is None:  # widget_params checked the id; the workflow was deleted since
        raise ApplicationError(MSG_NO_WORKFLOW, details={"workflow": [MSG_NO_WORKFLOW]})
    with transaction.atomic():
        instance = workflow_services.workflow_execute(
            actor=actor, workflow=workflow, input=params, trigger=Trigger.WIDGET
        )
        WidgetRun.objects.create(widget=widget, instance=instance, params_hash=key)
    return Started(instance, key, reused=False)


def widget_attach(*, widget: Widget, instance: WorkflowInstance) -> str:
    """Feed this widget from a run started elsewhere (``subscribe``); returns its parameter hash."""
    key = params_hash(instance.input)
    WidgetRun.objects.get_or_create(widget=widget, instance=instance, params_hash=key)
    return key


# --- data ----------------------------------------------------------------------------------------
def run_context(instance: WorkflowInstance) -> dict[str, Any]:
    """``{input, <node id>: output, __widgetInput?}``: the top-level outputs of a run so far."""
    context: dict[str, Any] = {"input": instance.input}
    rows = NodeRun.objects.filter(instance=instance, iteration="", status="succeeded").values_list(
        "node_id", "output"
    )
    context.update(dict(rows))
    blobs.resolve(context)  # large outputs live in the blob store
    extra = instance.context or {}
    if templates.WIDGET_INPUT in extra:
        context[templates.WIDGET_INPUT] = extra[templates.WIDGET_INPUT]
    return context


class NotReady(Exception):
    """The config refers to a node that has not produced its output yet."""


def widget_process(widget: Widget, context: dict[str, Any]) -> Any:
    """The widget's data from a run's context. ``NotReady`` when a referenced node has not finished;
    ``ApplicationError`` (code ``widget_data``) when the data does not fit the widget."""
    missing = [ref.root for ref in templates.references(widget.config) if ref.root not in context]
    if missing:
        raise NotReady(", ".join(sorted(set(missing))))
    try:
        resolved = templates.resolve(widget.config, context, node_id=f"widget {widget.name}", field="config")
        return types.get(widget.type).process(resolved, context)
    except (templates.TemplateError, types.WidgetDataError) as exc:
        raise ApplicationError(str(exc), code="widget_data") from None


def provenance(instance: WorkflowInstance) -> dict[str, Any]:
    version = None
    if instance.version_id is not None:
        version = instance.version.version if instance.version is not None else None
    return {
        "workflow": str(instance.workflow_id) if instance.workflow_id else None,
        "version": version,
        "instance_id": str(instance.id),
        "finished_at": instance.ended_at.isoformat() if instance.ended_at else None,
    }


def widget_result(
    widget: Widget, instance: WorkflowInstance, context: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``{processed_data, provenance, error?}`` of a run for this widget. An ended run's good data with
    the widget's declared parameters is kept as its last data; when such a run's data cannot be drawn
    (or the run failed), the answer carries the last good data and an ``error`` with ``recoverable``.
    A run with other parameters (a filter) answers its own data or nothing, never the last data."""
    if context is None:
        context = run_context(instance)
    ended = instance.status in INSTANCE_TERMINAL
    error: dict[str, Any] | None = None
    try:
        data = widget_process(widget, context)
    except NotReady as exc:
        error = {"code": "not_ready", "message": f"No output yet from {exc}.", "recoverable": True}
    except ApplicationError as exc:
        error = {"code": "widget_data", "message": exc.message, "recoverable": True}
    if ended and instance.status != "succeeded":
        message = (instance.error or {}).get("message") if isinstance(instance.error, dict) else None
        error = {
            "code": f"run_{instance.status}",
            "message": message or f"The run {instance.status}.",
            "recoverable": True,
        }
    # The widget keeps one "last data": that of its declared parameters (what a dashboard shows on first
    # paint). A run with other parameters never replaces it, and never falls back to it.
    default = params_hash(instance.input) == params_hash(widget.input_params)
    if error is None:
        source = provenance(instance)
        if ended and default:
            Widget.objects.filter(pk=widget.pk).update(last_data=data, last_provenance=source)
        return {"processed_data": data, "provenance": source}
    if ended and default:
        return {"processed_data": widget.last_data, "provenance": widget.last_provenance, "error": error}
    if ended:
        return {"processed_data": None, "provenance": provenance(instance), "error": error}
    return {"processed_data": None, "provenance": provenance(instance), "error": error}


# --- input from a widget -------------------------------------------------------------------------
def widget_send_input(*, actor: Actor, instance: WorkflowInstance, data: Any) -> dict[str, Any]:
    """Write ``ctx.__widgetInput`` with a compare-and-set on ``context_version`` (a concurrent writer
    makes it read and try again, so neither write is lost), then resume the node that waits for input,
    if the run waits for one. Returns ``{context_version, resumed}``."""
    for _ in range(CAS_ATTEMPTS):
        version, context = WorkflowInstance.objects.values_list("context_version", "context").get(
            pk=instance.pk
        )
        merged = {**(context or {}), templates.WIDGET_INPUT: data}
        written = WorkflowInstance.objects.filter(pk=instance.pk, context_version=version).update(
            context=merged, context_version=version + 1
        )
        if written:
            break
    else:
        raise Conflict(MSG_CONTEXT_BUSY)
    resumed = None
    takes_input = [name for name, kind in nodes.REGISTRY.items() if kind.takes_input]
    waiting = (
        NodeRun.objects.filter(instance=instance, status="waiting", node_type__in=takes_input)
        .order_by("id")
        .values_list("node_id", flat=True)
        .first()
    )
    if waiting is not None:
        workflow_services.instance_input(actor=actor, instance=instance, node_id=waiting, data=data)
        resumed = waiting
    return {"context_version": version + 1, "resumed": resumed}


# --- export ----------------------------------------------------------------------------------------
def export_table(widget: Widget) -> tuple[list[str], list[list[Any]]]:
    """A widget's last data as a header and rows: a table's columns, a chart's labels by dataset (or
    ``dataset, x, y, r`` points), else the JSON of the data in one cell."""
    data = widget.last_data
    if (
        isinstance(data, dict)
        and isinstance(data.get("rows"), list)
        and isinstance(data.get("columns"), list)
    ):
        fields = [str(c.get("field")) for c in data["columns"] if isinstance(c, dict)]
        return fields, [[_cell(row.get(f)) for f in fields] for row in data["rows"] if isinstance(row, dict)]
    if isinstance(data, dict) and isinstance(data.get("datasets"), list):
        sets = [d for d in data["datasets"] if isinstance(d, dict)]
        labels = data.get("labels") or []
        if labels:
            header = ["label", *[str(d.get("label", f"series {i + 1}")) for i, d in enumerate(sets)]]
            series: list[list[Any]] = [d["data"] if isinstance(d.get("data"), list) else [] for d in sets]
            rows = [
                [_cell(label), *[_cell(v[i]) if i < len(v) else None for v in series]]
                for i, label in enumerate(labels)
            ]
            return header, rows
        points = [(d, p) for d in sets for p in d.get("data") or [] if isinstance(p, dict)]
        return ["dataset", "x", "y", "r"], [
            [d.get("label", ""), p.get("x"), p.get("y"), p.get("r")] for d, p in points
        ]
    return ["value"], [[_cell(data)]]


def _cell(value: Any) -> Any:
    return json.dumps(value, default=str) if isinstance(value, dict | list) else value


def export_response(widget: Widget, fmt: str) -> HttpResponse:
    """A download of the widget's last data: ``csv`` (see :func:`export_table`) or ``json``."""
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in widget.name) or "widget"
    if fmt == "json":
        text = json.dumps(widget.last_data, default=str, indent=2)
        response = HttpResponse(text, content_type="application/json")
    else:
        header, rows = export_table(widget)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        fmt = "csv"
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response
