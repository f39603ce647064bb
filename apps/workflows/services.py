"""Every write in workflows: definitions and versions, starting, canceling and retrying runs.

Each service takes the tenant (or a tenant-scoped object) and the acting :class:`Actor`, audits in
the same transaction, and leaves execution to :mod:`apps.workflows.engine.runtime`.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from django.db import connection, transaction

from apps.tenancy.models import Tenant
from apps.tenancy.services import SYSTEM, Actor, audit_log_write
from apps.workflows.engine import events as engine_events
from apps.workflows.engine import graph as graphs
from apps.workflows.engine import runtime
from apps.workflows.engine.lru import LRU
from apps.workflows.engine.states import (
    CANCELED,
    FAILED,
    INSTANCE_TERMINAL,
    NODE_OPEN,
    PENDING,
    QUEUED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    WAITING,
)
from apps.workflows.models import (
    NodeRun,
    Trigger,
    Workflow,
    WorkflowInstance,
    WorkflowVersion,
)
from jetadmin.api.errors import ApplicationError, Conflict
from jetadmin.db.base import release_pooled_connection
from jetadmin.db.rows import insert_rows, one_statement

MSG_INVALID_GRAPH = "The workflow graph is invalid."
MSG_NOT_FAILED = "Only a failed run can be retried (this one is {status})."
MSG_ALREADY_ENDED = "This run has already ended ({status})."
MSG_NOT_TEST = "Only test runs are stopped; use cancel for saved runs."
MSG_NO_VERSION = "This workflow has no graph yet."
UNSET: Any = object()  # an argument not given (None may be a value)
MSG_STILL_OPEN = "This run is still {status}; cancel it before deleting it."
MSG_NOT_CANCELED = "Only a canceled run can be resumed (this one is {status}); use retry for failed runs."
MSG_NOT_WAITING = "Node {node!r} is not waiting for input (it is {status})."
MSG_NO_SUCH_NODE = "This run has no node {node!r}."
MSG_WHICH_ITERATION = "Node {node!r} waits in several loop iterations; say which one: {keys}."


def graph_build(raw: Any) -> graphs.Graph:
    """Validate a graph; invalid → 400 whose details list ``{node_id, field, message}`` per problem."""
    try:
        return graphs.build(raw)
    except graphs.GraphInvalid as exc:
        errors = [e.as_dict() for e in exc.errors]
        first = errors[0]
        where = f"node {first['node_id']!r}, {first['field']}" if first["node_id"] else first["field"]
        raise ApplicationError(
            f"{MSG_INVALID_GRAPH} {where}: {first['message']}", details={"graph": errors}
        ) from None


def graph_problems(raw: Any) -> list[dict[str, Any]]:
    """Every problem of a graph as ``{node_id, field, message}``; empty when it is valid."""
    try:
        graphs.build(raw)
    except graphs.GraphInvalid as exc:
        return [e.as_dict() for e in exc.errors]
    return []


def graph_normalized(raw: Any) -> dict[str, Any]:
    data, _ = graphs.normalize(raw)
    return data


_version_graphs: LRU[Any, tuple[graphs.Graph, dict[str, Any]]] = LRU(256)


def version_graph(version: WorkflowVersion) -> tuple[graphs.Graph, dict[str, Any]]:
    """A saved version's graph, validated and normalized once per process: versions never change."""
    return _version_graphs.get_or_build(
        version.pk, lambda: (graph_build(version.graph), graph_normalized(version.graph))
    )


# --- definitions ------------------------------------------------------------------------------------
@transaction.atomic
def workflow_create(
    *, actor: Actor, tenant: Tenant, name: str, graph: Any, description: str = "", pk: Any = None
) -> Workflow:
    graph_build(graph)
    workflow = Workflow.objects.create(
        **({"id": pk} if pk else {}), tenant=tenant, name=name, description=description, created_by=actor.user
    )
    _new_version(workflow=workflow, graph=graph, actor=actor)
    audit_log_write(
        actor=actor, tenant=tenant, action="workflow.create", obj=workflow, changes={"name": name}
    )
    return workflow


def graph_converted(*, tenant: Tenant, graph: Any) -> tuple[Any, Any]:
    """A graph in Jet Admin's format converted to jetadmin's (with the conversion's report), else as it
    is (and None). 400 listing every node that cannot be converted."""
    from apps.workflows import jetimport

    if not jetimport.looks_like_jet_admin(graph):
        return graph, None
    conversion = jetimport.convert(graph, tenant)
    if conversion.errors:
        first = conversion.errors[0]
        raise ApplicationError(
            f"{MSG_INVALID_GRAPH} node {first['node_id']!r}, {first['field']}: {first['message']}",
            details={"graph": conversion.errors},
        )
    return conversion.graph, conversion


@transaction.atomic
def workflow_import(
    *, actor: Actor, tenant: Tenant, name: str, graph: Any, description: str = ""
) -> tuple[Workflow, list[str]]:
    """Create a workflow; a graph in Jet Admin's format is converted first, and the chart widgets it
    describes are created with it. Returns the workflow and what was converted."""
    from apps.widgets import services as widgets

    graph, conversion = graph_converted(tenant=tenant, graph=graph)
    workflow = workflow_create(actor=actor, tenant=tenant, name=name, description=description, graph=graph)
    if conversion is None:
        return workflow, []
    for spec in conversion.widgets:
        widgets.widget_create(
            actor=actor,
            tenant=tenant,
            name=f"{name} · {spec['name']}",
            type=spec["type"],
            config=spec["config"],
            workflow=workflow.id,
        )
    return workflow, list(conversion.converted)


def _new_version(*, workflow: Workflow, graph: Any, actor: Actor) -> WorkflowVersion:
    last = workflow.versions.order_by("-version").values_list("version", flat=True).first() or 0
    version = WorkflowVersion.objects.create(
        workflow=workflow, version=last + 1, graph=graph_normalized(graph), created_by=actor.user
    )
    workflow.current_version = version
    workflow.save(update_fields=["current_version", "updated_at"])
    return version


@transaction.atomic
def workflow_update(
    *,
    actor: Actor,
    workflow: Workflow,
    name: str | None = None,
    description: str | None = None,
    graph: Any = None,
    on_failure: Any = UNSET,
) -> Workflow:
    """Change what is given; ``on_failure=None`` clears the workflow's failure alert."""
    from apps.workflows import alerts

    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    changes: dict[str, Any] = {}
    if name is not None and name != workflow.name:
        changes["name"] = [workflow.name, name]
        workflow.name = name
    if on_failure is not UNSET:
        on_failure = alerts.check(workflow.tenant, on_failure)
        if on_failure != workflow.on_failure:
            changes["on_failure"] = [workflow.on_failure, on_failure]
            workflow.on_failure = on_failure
    if description is not None:
        workflow.description = description
    workflow.save()
    if graph is not None:
        graph_build(graph)
        current = workflow.current_version.graph if workflow.current_version else None
        if graph_normalized(graph) != current:
            version = _new_version(workflow=workflow, graph=graph, actor=actor)
            changes["version"] = version.version
    audit_log_write(
        actor=actor, tenant=workflow.tenant, action="workflow.update", obj=workflow, changes=changes
    )
    return workflow


@transaction.atomic
def workflow_restore(*, actor: Actor, workflow: Workflow, version: WorkflowVersion) -> Workflow:
    """Make an older version's graph current again, as a new version (history is never rewritten)."""
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    if workflow.current_version_id == version.pk:
        raise Conflict(f"Version {version.version} is already the current version.")
    new = _new_version(workflow=workflow, graph=version.graph, actor=actor)
    audit_log_write(
        actor=actor,
        tenant=workflow.tenant,
        action="workflow.restore",
        obj=workflow,
        changes={"restored": version.version, "version": new.version},
    )
    return workflow


@transaction.atomic
def workflow_delete(*, actor: Actor, workflow: Workflow) -> None:
    audit_log_write(
        actor=actor,
        tenant=workflow.tenant,
        action="workflow.delete",
        obj=workflow,
        changes={"name": workflow.name},
    )
    workflow.delete()


# --- runs ---------------------------------------------------------------------------------------------
def _create_run(
    *,
    actor: Actor,
    tenant: Tenant,
    graph_raw: Any,
    input: Any,
    trigger: str,
    workflow: Workflow | None = None,
    version: WorkflowVersion | None = None,
    is_test: bool = False,
) -> WorkflowInstance:
    if version is not None:
        graph, normalized = version_graph(version)
    else:
        graph, normalized = graph_build(graph_raw), graph_normalized(graph_raw)
    if input is None:
        input = {}
    instance = WorkflowInstance(
        tenant=tenant,
        workflow=workflow,
        version=version,
        is_test=is_test,
        graph=normalized,
        input=input,
        trigger=trigger,
        created_by=actor.user,
    )
    insert_rows([instance])
    runtime.start(instance, graph)
    return instance


@transaction.atomic
def workflow_execute(
    *, actor: Actor, workflow: Workflow, input: Any = None, trigger: str = Trigger.API
) -> WorkflowInstance:
    version = workflow.current_version
    if version is None:
        raise ApplicationError(MSG_NO_VERSION)
    with one_statement():  # the run, its node runs, its journal and the audit entry: one round trip
        instance = _create_run(
            actor=actor,
            tenant=workflow.tenant,
            graph_raw=version.graph,
            input=input,
            trigger=trigger,
            workflow=workflow,
            version=version,
        )
        audit_log_write(
            actor=actor,
            tenant=workflow.tenant,
            action="workflow.execute",
            obj=instance,
            object_type="workflowinstance",
            changes={"workflow": str(workflow.id), "version": version.version},
        )
    return instance


@transaction.atomic
def workflow_test(
    *, actor: Actor, tenant: Tenant, graph: Any, input: Any = None, workflow: Workflow | None = None
) -> WorkflowInstance:
    instance = _create_run(
        actor=actor,
        tenant=tenant,
        graph_raw=graph,
        input=input,
        trigger=Trigger.TEST,
        workflow=workflow,
        is_test=True,
    )
    audit_log_write(
        actor=actor, tenant=tenant, action="workflow.test", obj=instance, object_type="workflowinstance"
    )
    return instance


def alert_run(*, tenant: Tenant, graph: Any, input: Any) -> WorkflowInstance:
    """A one-off run of a built-in graph (a failure notification: apps/workflows/alerts.py)."""
    return _create_run(actor=SYSTEM, tenant=tenant, graph_raw=graph, input=input, trigger=Trigger.ERROR)


def instance_cancel(*, actor: Actor, instance: WorkflowInstance, stop: bool = False) -> WorkflowInstance:
    if stop and not instance.is_test:
        raise Conflict(MSG_NOT_TEST)
    if instance.status in INSTANCE_TERMINAL:
        raise Conflict(MSG_ALREADY_ENDED.format(status=instance.status))

    @transaction.atomic
    def cancel_and_audit() -> None:
        runtime.cancel(str(instance.id), reason=f"{'stopped' if stop else 'canceled'} by {actor.label}")
        audit_log_write(
            actor=actor,
            tenant=instance.tenant,
            action="instance.stop" if stop else "instance.cancel",
            obj=instance,
            object_type="workflowinstance",
        )

    runtime._retry_db(cancel_and_audit)  # a deadlock with a worker settling this run is retried
    instance.refresh_from_db()
    return instance


def instance_delete(*, actor: Actor, instance: WorkflowInstance) -> None:
    """Delete an ended run with its node rows, journal and blobs (409 while it is still open)."""
    from apps.workflows import retention

    if instance.status not in INSTANCE_TERMINAL:
        raise Conflict(MSG_STILL_OPEN.format(status=instance.status))
    with transaction.atomic():
        audit_log_write(
            actor=actor,
            tenant=instance.tenant,
            action="instance.delete",
            obj=instance,
            object_type="workflowinstance",
            changes={"workflow": str(instance.workflow_id or ""), "status": instance.status},
        )
        retention.delete_runs([instance.id])


def instance_retry(*, actor: Actor, instance: WorkflowInstance) -> WorkflowInstance:
    """Run a failed run again from its failed node(s), keeping the outputs of what succeeded.

    A loop that did not complete runs again as a whole (its iterations are discarded).
    """
    return _reopen(actor=actor, instance=instance, from_status=FAILED, action="instance.retry")


def instance_resume(*, actor: Actor, instance: WorkflowInstance) -> WorkflowInstance:
    """Continue a canceled run where it stopped: canceled nodes run again, finished ones are kept."""
    return _reopen(actor=actor, instance=instance, from_status=CANCELED, action="instance.resume")


@transaction.atomic
def _reopen(*, actor: Actor, instance: WorkflowInstance, from_status: str, action: str) -> WorkflowInstance:
    instance = WorkflowInstance.objects.select_for_update().get(pk=instance.pk)
    if instance.status != from_status:
        message = MSG_NOT_FAILED if from_status == FAILED else MSG_NOT_CANCELED
        raise Conflict(message.format(status=instance.status))
    graph = graph_build(instance.graph)
    runs = NodeRun.objects.filter(instance=instance)
    top = {r.node_id: r for r in runs.filter(iteration="")}
    unfinished_loops = [n for n, r in top.items() if r.node_type == "loop" and r.status != SUCCEEDED]
    for loop_id in unfinished_loops:
        runs.filter(iteration__startswith=f"{loop_id}:").delete()
    handled = {n for n in graph.members(None) if graph.on_error(n) != "fail"}
    settled: dict[str, tuple[str, str]] = {}
    for node_id, r in top.items():
        if r.status == SUCCEEDED or r.status == SKIPPED or (r.status == FAILED and node_id in handled):
            settled[node_id] = (r.status, r.route)
    fx = runtime.Effects()
    iid = str(instance.id)
    for node_id in graph.members(None):
        if node_id in settled:
            continue
        remaining, active = graphs.counters(graph, node_id, settled)
        r = top[node_id]
        ready = graphs.readiness(remaining, active, r.wait_any) == "ready" or graph.in_count(node_id) == 0
        NodeRun.objects.filter(pk=r.pk).update(
            status=QUEUED if ready else PENDING,
            remaining=remaining,
            active=active,
            error=None,
            output=None,
            route="",
            deferred=False,
            available_at=runtime.requeue_at() if ready else None,
            lease_owner="",
            lease_expires_at=None,
            state={"attempt_base": r.attempt},
            started_at=None,
            ended_at=None,
        )
        if ready:
            fx.node_event(iid, node_id, "", QUEUED, attempt=0, reason=action.split(".")[1])
            fx.enqueue.append((iid, node_id, ""))
    WorkflowInstance.objects.filter(pk=instance.pk).update(status=RUNNING, error=None, ended_at=None)
    fx.event(iid, "instance.running", status=RUNNING, reason=action.split(".")[1])
    fx.write()
    fx.after_commit()
    audit_log_write(
        actor=actor,
        tenant=instance.tenant,
        action=action,
        obj=instance,
        object_type="workflowinstance",
    )
    instance.refresh_from_db()
    return instance


def instance_input(
    *, actor: Actor, instance: WorkflowInstance, node_id: str, data: Any, iteration: str | None = None
) -> WorkflowInstance:
    """Answer a node waiting for a person (approval, dataCollection) and resume the run.

    400 with field errors when the data does not fit; 403 when the person may not answer; 409 when
    the node is not waiting (already answered, expired, canceled, or not a node that takes input).
    """
    from rest_framework.exceptions import PermissionDenied

    from apps.workflows.nodes import base as nodes

    runs = NodeRun.objects.filter(instance=instance, node_id=node_id)
    if iteration is not None:
        runs = runs.filter(iteration=iteration)
    if not runs.exists():
        raise ApplicationError(
            MSG_NO_SUCH_NODE.format(node=node_id), details={"node_id": ["No such node in this run."]}
        )
    waiting = list(runs.filter(status=WAITING).exclude(node_type__in=("loop", runtime.LOOP_HEAD)))
    if not waiting:
        status = runs.values_list("status", flat=True).first()
        raise Conflict(MSG_NOT_WAITING.format(node=node_id, status=status))
    if len(waiting) > 1:
        keys = ", ".join(sorted(r.iteration for r in waiting))
        raise ApplicationError(
            MSG_WHICH_ITERATION.format(node=node_id, keys=keys), details={"iteration": ["Required here."]}
        )
    run = waiting[0]
    node_type = nodes.get(run.node_type)
    if not node_type.takes_input:
        raise Conflict(MSG_NOT_WAITING.format(node=node_id, status=f"{run.status}, not for input"))
    try:
        accepted = node_type.accept_input(run.input or {}, data, _identities(actor))
    except nodes.InputNotAllowed as exc:
        raise PermissionDenied(str(exc)) from None
    except nodes.InputInvalid as exc:
        raise ApplicationError("The input does not fit this step.", details=exc.errors) from None
    with transaction.atomic():
        fx = runtime.Effects()
        answered = NodeRun.objects.filter(pk=run.pk, status=WAITING).update(
            status=QUEUED,
            deferred=False,
            available_at=runtime.requeue_at(),
            state={**(run.state or {}), "input": accepted, "by": actor.label},
        )
        if not answered:  # expired or canceled between the read and this write
            raise Conflict(MSG_NOT_WAITING.format(node=node_id, status="no longer waiting"))
        iid = str(instance.id)
        fx.node_event(iid, node_id, run.iteration, QUEUED, attempt=0, reason="input", by=actor.label)
        fx.enqueue.append((iid, node_id, run.iteration))
        runtime.instance_resumed(iid, fx)
        fx.write()
        fx.after_commit()
        audit_log_write(
            actor=actor,
            tenant=instance.tenant,
            action="instance.input",
            obj=instance,
            object_type="workflowinstance",
            changes={"node_id": node_id, "iteration": run.iteration},
        )
    instance.refresh_from_db()
    return instance


def _identities(actor: Actor) -> frozenset[str]:
    user = actor.user
    who = (user.username, user.email, user.id) if user is not None else (actor.label,)
    return frozenset(str(x) for x in who if x)


def instance_send_input(
    *,
    actor: Actor,
    instance: WorkflowInstance,
    node_id: str,
    data: Any,
    iteration: str | None = None,
    if_waiting: bool = False,
) -> tuple[WorkflowInstance, bool]:
    """The API's input: answers a waiting node (False), or keeps the input for a node that will wait
    later and returns (instance, True) — unless ``if_waiting`` (then 409, nothing kept). 409 when the
    node has ended or takes no input."""
    from apps.workflows.engine import control
    from apps.workflows.nodes import base as nodes

    for _ in range(2):  # a node that starts waiting between the two reads is answered the usual way
        runs = NodeRun.objects.filter(instance=instance, node_id=node_id)
        if iteration is not None:
            runs = runs.filter(iteration=iteration)
        if if_waiting or runs.filter(status=WAITING).exists() or not runs.exists():
            return instance_input(
                actor=actor, instance=instance, node_id=node_id, data=data, iteration=iteration
            ), False
        open_rows = list(runs.filter(status__in=NODE_OPEN).values_list("iteration", "node_type", "status"))
        if not open_rows:
            raise Conflict(MSG_NOT_WAITING.format(node=node_id, status="ended"))
        if not nodes.get(open_rows[0][1]).takes_input:
            raise Conflict(MSG_NOT_WAITING.format(node=node_id, status=f"{open_rows[0][2]}, not for input"))
        if len(open_rows) > 1:
            keys = ", ".join(sorted(r[0] for r in open_rows))
            raise ApplicationError(
                MSG_WHICH_ITERATION.format(node=node_id, keys=keys), details={"iteration": ["Required here."]}
            )
        key = open_rows[0][0]
        kept = control.keep_early_input(
            str(instance.id), node_id, key, data, actor.label, sorted(_identities(actor))
        )
        if kept in ("ended", "answered"):
            raise Conflict(
                MSG_NOT_WAITING.format(node=node_id, status="ended" if kept == "ended" else "answered")
            )
        if kept == "kept":
            audit_log_write(
                actor=actor,
                tenant=instance.tenant,
                action="instance.input",
                obj=instance,
                object_type="workflowinstance",
                changes={"node_id": node_id, "iteration": key, "kept_until_waiting": True},
            )
            return instance, True
    return instance_input(
        actor=actor, instance=instance, node_id=node_id, data=data, iteration=iteration
    ), False


def node_output_text(*, instance: WorkflowInstance, node_id: str, iteration: str = "") -> str:
    """A node's full output as JSON text, also when it is kept in the blob store (404 for no such node
    run, 409 when it has no output)."""
    from rest_framework.exceptions import NotFound

    from apps.workflows import blobs
    from apps.workflows.models import Blob

    found = (
        NodeRun.objects.filter(instance=instance, node_id=node_id, iteration=iteration)
        .values_list("status", "output")
        .first()
    )
    if found is None:
        raise NotFound()
    status, output = found
    if status != SUCCEEDED:
        raise Conflict(f"Node {node_id!r} has no output (it is {status}).")
    if not blobs.is_ref(output):
        return json.dumps(output)
    blob = Blob.objects.filter(pk=output[blobs.REF], instance=instance).first()
    if blob is None:
        raise NotFound()
    return blobs.text_of(blob)


def instance_cancel_node(
    *, actor: Actor, instance: WorkflowInstance, node_id: str, iteration: str = ""
) -> WorkflowInstance:
    """Cancel one open node: it ends canceled and takes its error route if it has one; otherwise the
    run fails with code canceled. 400 for a node the run has not; 409 when it is not open."""
    from apps.workflows.engine import control

    if not NodeRun.objects.filter(instance=instance, node_id=node_id, iteration=iteration).exists():
        raise ApplicationError(
            MSG_NO_SUCH_NODE.format(node=node_id), details={"node_id": ["No such node in this run."]}
        )
    reason = f"canceled by {actor.label}"
    if not control.cancel_node(str(instance.id), node_id, iteration, reason=reason):
        status = (
            NodeRun.objects.filter(instance=instance, node_id=node_id, iteration=iteration)
            .values_list("status", flat=True)
            .first()
        )
        raise Conflict(f"Node {node_id!r} is not running or waiting (it is {status}).")
    audit_log_write(
        actor=actor,
        tenant=instance.tenant,
        action="instance.cancel_node",
        obj=instance,
        object_type="workflowinstance",
        changes={"node_id": node_id, "iteration": iteration},
    )
    instance.refresh_from_db()
    return instance


_waiters: dict[str, threading.Event] = {}
_waiters_lock = threading.Lock()


def _wake_waiters(sender: Any = None, events: Any = (), **_: Any) -> None:
    """The engine's broadcast hook: a run ended in this process (the embedded worker), so whoever waits
    for it in this process stops waiting at once."""
    for event in events:
        if event.type in ("instance.succeeded", "instance.failed", "instance.canceled"):
            with _waiters_lock:
                waiter = _waiters.get(str(event.instance_id))
            if waiter is not None:
                waiter.set()


engine_events.instance_events.connect(_wake_waiters, dispatch_uid="workflows.instance_wait")


def instance_wait(*, instance: WorkflowInstance, timeout_s: float) -> tuple[WorkflowInstance, bool]:
    """Wait until the run ends or ``timeout_s`` passes; returns (instance, timed_out).

    A run ended by a worker of this process (the embedded default) wakes the wait at once; one ended
    elsewhere is found by polling, every 5 ms at first and at most every 50 ms.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    key = str(instance.pk)
    waiter = threading.Event()
    with _waiters_lock:
        _waiters[key] = waiter
    try:
        while True:
            instance.refresh_from_db(fields=["status", "output", "error", "ended_at", "started_at"])
            if instance.status in INSTANCE_TERMINAL:
                return instance, False
            left = deadline - time.monotonic()
            if left <= 0:
                return instance, True
            release_pooled_connection(connection)  # a waiting request holds no pooled connection
            waiter.wait(min(delay, left))
            delay = min(delay * 1.5, 0.05)
    finally:
        with _waiters_lock:
            if _waiters.get(key) is waiter:
                del _waiters[key]


def node_summary(instance: WorkflowInstance) -> dict[str, Any]:
    """``{node_id: {status, attempts, output, error, started_at, ended_at}}`` for top-level nodes."""
    out: dict[str, Any] = {}
    for r in NodeRun.objects.filter(instance=instance, iteration="").order_by("id"):
        state = r.state if isinstance(r.state, dict) else {}
        waiting = None
        if r.status == WAITING:
            waiting = {k: state[k] for k in ("since", "expires_at", "child") if k in state}
        out[r.node_id] = {
            "waiting": waiting,
            "type": r.node_type,
            "input": r.input,
            "status": r.status,
            "attempts": r.attempt,
            "output": r.output,
            "error": r.error,
            "route": r.route or None,
            "started_at": r.started_at,
            "ended_at": r.ended_at,
        }
    return out


def open_node_count(instance: WorkflowInstance) -> int:
    return NodeRun.objects.filter(instance=instance, status__in=NODE_OPEN).count()
