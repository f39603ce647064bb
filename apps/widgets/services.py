"""Every write in widgets, and turning a run into a widget's data.

A widget's data is its config with the ``{{ctx.*}}`` templates resolved against a run's context
(``{input, <node id>: output, __widgetInput?}``; a lone ``{{…}}`` keeps its type), then its type's
``process``. Who may run a widget (:func:`widget_run`): ``widget.view`` runs only the widget's own
workflow with only the parameters its ``workflow_config.input_params`` declares; anything else needs
``workflow.run``. Viewers asking for the same widget and parameters share a run that is in flight or
ended within ``JETADMIN_WIDGET_REUSE_S``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework.exceptions import PermissionDenied

from apps.tenancy.models import Tenant
from apps.tenancy.selectors import TenantAccess
from apps.tenancy.services import Actor, audit_log_write
from apps.widgets import types
from apps.widgets.models import Widget, WidgetRun
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
) -> Widget:
    config = {} if config is None else config
    workflow_config = {} if workflow_config is None else workflow_config
    found = _checked(
        tenant=tenant, type=type, config=config, workflow=workflow, workflow_config=workflow_config
    )
    widget = Widget.objects.create(
        tenant=tenant,
        name=name,
        type=type,
        config=config,
        workflow=found,
        workflow_config=workflow_config,
        created_by=actor.user,
    )
    audit_log_write(actor=actor, tenant=tenant, action="widget.create", obj=widget, changes={"name": name})
    return widget


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


def widget_params(*, access: TenantAccess, widget: Widget, input_params: Any) -> dict[str, Any]:
    """The run's input: the widget's declared defaults overlaid with ``input_params``. Parameters the
    widget does not declare need ``workflow.run`` (403 without)."""
    if widget.workflow_id is None:
        raise ApplicationError(MSG_NO_WORKFLOW, details={"workflow": [MSG_NO_WORKFLOW]})
    if input_params is None:
        input_params = {}
    if not isinstance(input_params, dict):
        raise ApplicationError("input_params must be an object.", details={"input_params": ["An object."]})
    declared = widget.input_params
    undeclared = sorted(set(input_params) - set(declared))
    if undeclared and not access.can("workflow.run"):
        raise PermissionDenied(MSG_UNDECLARED.format(names=", ".join(undeclared)))
    return {**declared, **input_params}


@dataclass
class Started:
    instance: WorkflowInstance
    params_hash: str
    reused: bool


def widget_run(
    *, access: TenantAccess, actor: Actor, widget: Widget, input_params: Any = None, force: bool = False
) -> Started:
    """Start the widget's workflow with these parameters, or reuse a run of the same widget and
    parameters: without ``force``, one in flight or ended within ``JETADMIN_WIDGET_REUSE_S``; with it
    (a refresh), one started within ``JETADMIN_WIDGET_REFRESH_MIN_S``, so that viewers refreshing
    together (on any web process) share the new run."""
    params = widget_params(access=access, widget=widget, input_params=input_params)
    key = params_hash(params)
    window = settings.JETADMIN_WIDGET_REFRESH_MIN_S if force else settings.JETADMIN_WIDGET_REUSE_S
    since = timezone.now() - timedelta(seconds=window)
    if force:
        fresh = Q(created_at__gte=since)
    else:
        fresh = Q(instance__ended_at__gte=since) | Q(instance__status__in=("queued", "running", "waiting"))
    recent = (
        WidgetRun.objects.filter(fresh, widget=widget, params_hash=key)
        .exclude(instance__status__in=("failed", "canceled"))
        .select_related("instance")
        .order_by("-created_at", "-id")
        .first()
    )
    if recent is not None:
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
    """``{processed_data, provenance, error?}`` of a run for this widget. An ended run's good data is
    kept as the widget's last data; when an ended run's data cannot be drawn (or the run failed), the
    answer carries the last good data and an ``error`` with ``recoverable``."""
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
    if error is None:
        source = provenance(instance)
        if ended:
            Widget.objects.filter(pk=widget.pk).update(last_data=data, last_provenance=source)
        return {"processed_data": data, "provenance": source}
    if ended:
        return {"processed_data": widget.last_data, "provenance": widget.last_provenance, "error": error}
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
