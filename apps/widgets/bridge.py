"""The widget-workflow bridge: a run's progress as a widget's data, over the websocket.

A connection that connects a widget joins the channel-layer group ``widget.<id>.<params hash>``;
viewers of the same widget with the same parameters share it, viewers with other parameters never
see its data. Workers do the processing, once per group and event, and send the result to the group
after commit (:func:`on_events`): ``widget_context_update`` when a node the widget reads from
finishes, ``widget_workflow_status`` (with the final data and its provenance) when the run ends,
``widget_workflow_error`` (``recoverable``) when data cannot be drawn — the viewer keeps its last good
data. Which groups a run feeds is in the database (``WidgetRun``), not in any process' memory, so a
widget on any web process hears a run finished by any worker.

A run is processed when it was started for a widget, or while a widget of some web process follows
it (a ``subscribe`` to a run started elsewhere: a widget watch on the watch list). The consumer
(:mod:`jetadmin.consumers`) only routes; the checks and reads it needs are below, run in a thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from rest_framework.exceptions import NotFound

from apps.tenancy.models import APIKey, User
from apps.tenancy.selectors import TenantAccess, tenant_access
from apps.tenancy.services import Actor
from apps.widgets import selectors, services
from apps.widgets.models import Widget, WidgetRun
from apps.workflows import selectors as workflows
from apps.workflows import streams
from apps.workflows.engine import runtime
from apps.workflows.engine.states import INSTANCE_TERMINAL
from apps.workflows.models import InstanceEvent, Trigger, WorkflowInstance

logger = logging.getLogger(__name__)
MODES = ("execute", "subscribe", "replay")
_ENDS = {"instance.succeeded", "instance.failed", "instance.canceled"}


def group(widget_id: Any, params_hash: str) -> str:
    return f"widget.{widget_id}.{params_hash}"


def messages_for(
    widget: Widget, instance: WorkflowInstance, context: dict[str, Any] | None = None, node_id: str = ""
) -> list[dict[str, Any]]:
    """What a run's current state means for one widget, as contract messages."""
    wid, iid = str(widget.id), str(instance.id)
    result = services.widget_result(widget, instance, context)
    error = result.get("error")
    out: list[dict[str, Any]] = []
    ended = instance.status in INSTANCE_TERMINAL
    if error is not None and (error["code"] != "not_ready" or ended):
        out.append(
            {"event": "widget_workflow_error", "data": {"widget_id": wid, "instance_id": iid, "error": error}}
        )
    if ended:  # last: a connection takes nothing for the widget after the run's status
        body = {
            "widget_id": wid,
            "instance_id": iid,
            "status": instance.status,
            "processed_data": result["processed_data"],
            "provenance": result["provenance"],
        }
        out.append({"event": "widget_workflow_status", "data": body})
    elif error is None:
        body = {
            "widget_id": wid,
            "instance_id": iid,
            "node_id": node_id,
            "processed_data": result["processed_data"],
        }
        out.append({"event": "widget_context_update", "data": body})
    return out


# --- worker side ---------------------------------------------------------------------------------
def on_events(events: list[InstanceEvent], **_: Any) -> None:
    """Receiver of the engine's ``instance_events`` (after commit): for each run that a widget reads
    and that finished a node or ended, process its data once per widget group and send it."""
    changed: dict[str, str] = {}  # run id -> the last top-level node that finished ("" for the end)
    for event in events:
        if event.iteration:
            continue
        if event.type == "node.succeeded" or event.type in _ENDS:
            changed[str(event.instance_id)] = event.node_id
    for iid, node_id in changed.items():
        if not streams.watchlist.watched_by_widget(iid) and _trigger(iid) != Trigger.WIDGET:
            continue
        try:
            publish(iid, node_id)
        except Exception:  # the viewer's late check, refresh or replay still gets the data
            logger.exception("could not send run %s's data to its widgets", iid)


def _trigger(instance_id: str) -> str | None:
    """How the run was started: known to a worker that runs it; read (rarely: a run ended by a cancel
    in a web process) elsewhere."""
    trigger = runtime.run_trigger(instance_id)
    if trigger is None:
        trigger = WorkflowInstance.objects.filter(pk=instance_id).values_list("trigger", flat=True).first()
    return trigger


def publish(instance_id: str, node_id: str = "") -> None:
    bindings = selectors.bindings_for(instance_id)
    if not bindings:
        return
    instance = WorkflowInstance.objects.select_related("version").get(pk=instance_id)
    context = services.run_context(instance)
    for binding in bindings:
        out = messages_for(binding.widget, instance, context, node_id)
        if out:
            streams.publisher.put(group(binding.widget_id, binding.params_hash), out, kind="widget.events")


# --- web side (called by the consumer, in a thread) ----------------------------------------------
def widget_for(*, user: User | None, api_key: APIKey | None, widget_id: Any) -> tuple[Widget, TenantAccess]:
    """The widget a connection may use: ``NotFound`` for an unknown or foreign id, ``PermissionDenied``
    without ``widget.view``."""
    widget = selectors.widget_by_id(widget_id)
    access = tenant_access(user=user, api_key=api_key, tenant_id=widget.tenant_id)
    access.require("widget.view")
    return widget, access


@dataclass
class Plan:
    """A connect's checks done, before it joins its group: which group, and what to do next."""

    widget: Widget
    access: TenantAccess
    mode: str
    group: str
    params: dict[str, Any]
    instance: WorkflowInstance | None = None
    also_declared: tuple[str, ...] = ()
    reuse_s: float | None = None  # shown on dashboards: the shortest of their refresh intervals


def plan(
    *,
    user: User | None,
    api_key: APIKey | None,
    widget_id: Any,
    mode: str,
    instance_id: Any,
    input_params: Any,
    also_declared: tuple[str, ...] = (),
    access: TenantAccess | None = None,
) -> Plan:
    """``also_declared``: parameters the dashboard the widget is shown on declares as filters (the
    caller checked the dashboard); a viewer may set those too. ``access``: a principal that is not a
    member (a dashboard's share link, checked by the caller), for widgets of its tenant only."""
    if access is None:
        widget, access = widget_for(user=user, api_key=api_key, widget_id=widget_id)
    else:
        widget = selectors.widget_by_id(widget_id)
        if widget.tenant_id != access.tenant.pk:
            raise NotFound()
        access.require("widget.view")
    if mode == "execute":
        params = services.widget_params(
            access=access, widget=widget, input_params=input_params, also_declared=also_declared
        )
        key = group(widget.id, services.params_hash(params))
        return Plan(widget, access, mode, key, params, also_declared=also_declared)
    instance = None
    if instance_id is not None:
        instance = _instance_of(widget, access, instance_id)
    elif mode == "replay":
        instance = selectors.widget_run_latest(widget=widget, finished=True)
    if instance is None:
        raise NotFound("subscribe needs the instance_id of a run." if mode == "subscribe" else "No run yet.")
    key = services.widget_attach(widget=widget, instance=instance) if mode == "subscribe" else ""
    return Plan(widget, access, mode, group(widget.id, key) if key else "", instance.input, instance)


def _instance_of(widget: Widget, access: TenantAccess, instance_id: Any) -> WorkflowInstance:
    instance = workflows.instance_get(tenant=widget.tenant, instance_id=instance_id)
    if instance.workflow_id != widget.workflow_id:  # another workflow's run: a widget.view is not enough
        access.require("workflow.view")
    return instance


def start(*, plan: Plan, actor: Actor, force: bool = False) -> WorkflowInstance:
    started = services.widget_run(
        access=plan.access,
        actor=actor,
        widget=plan.widget,
        input_params=plan.params,
        force=force,
        also_declared=plan.also_declared,
        reuse_s=plan.reuse_s,
    )
    return started.instance


def connected(plan: Plan, instance: WorkflowInstance) -> list[dict[str, Any]]:
    """``widget_workflow_connected`` (with the context so far and the data it makes, if any), then the
    status when the run has already ended."""
    instance.refresh_from_db()
    context = services.run_context(instance)
    body: dict[str, Any] = {
        "widget_id": str(plan.widget.id),
        "instance_id": str(instance.id),
        "mode": plan.mode,
        "initial_context": context,
    }
    result = services.widget_result(plan.widget, instance, context)
    if "error" not in result or instance.status in INSTANCE_TERMINAL:
        body["processed_data"] = result["processed_data"]
        body["provenance"] = result["provenance"]
    out = [{"event": "widget_workflow_connected", "data": body}]
    if plan.mode != "replay" and instance.status in INSTANCE_TERMINAL:
        out += messages_for(plan.widget, instance, context)
    elif plan.mode == "replay" and "error" in result:
        wid = str(plan.widget.id)
        error = {"widget_id": wid, "instance_id": str(instance.id), "error": result["error"]}
        out.append({"event": "widget_workflow_error", "data": error})
    return out


def ended_messages(widget_id: Any, instance_id: Any) -> list[dict[str, Any]]:
    """The end of a run for a widget, if it has ended (the consumer's late check)."""
    instance = WorkflowInstance.objects.select_related("version").get(pk=instance_id)
    if instance.status not in INSTANCE_TERMINAL:
        return []
    widget = Widget.objects.get(pk=widget_id)
    return messages_for(widget, instance)


def send_input(
    *, user: User | None, api_key: APIKey | None, widget_id: Any, instance_id: Any, data: Any
) -> dict[str, Any]:
    widget, access = widget_for(user=user, api_key=api_key, widget_id=widget_id)
    instance = _instance_of(widget, access, instance_id)
    if not WidgetRun.objects.filter(widget=widget, instance=instance).exists():
        access.require("workflow.run")  # a run this widget does not read from
    result = services.widget_send_input(actor=Actor(user=user, api_key=api_key), instance=instance, data=data)
    return {"widget_id": str(widget.id), "instance_id": str(instance.id), **result}
