"""Every write in workflows: definitions and versions, starting, canceling and retrying runs.

Each service takes the tenant (or a tenant-scoped object) and the acting :class:`Actor`, audits in
the same transaction, and leaves execution to :mod:`apps.workflows.engine.runtime`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.db import connection, transaction

from apps.tenancy.models import Tenant
from apps.tenancy.services import Actor, audit_log_write
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
    *, actor: Actor, tenant: Tenant, name: str, graph: Any, description: str = ""
) -> Workflow:
    graph_build(graph)
    workflow = Workflow.objects.create(
        tenant=tenant, name=name, description=description, created_by=actor.user
    )
    _new_version(workflow=workflow, graph=graph, actor=actor)
    audit_log_write(
        actor=actor, tenant=tenant, action="workflow.create", obj=workflow, changes={"name": name}
    )
    return workflow


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
) -> Workflow:
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    changes: dict[str, Any] = {}
    if name is not None and name != workflow.name:
        changes["name"] = [workflow.name, name]
        workflow.name = name
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


def instance_cancel(*, actor: Actor, instance: WorkflowInstance, stop: bool = False) -> WorkflowInstance:
    if stop and not instance.is_test:
        raise Conflict(MSG_NOT_TEST)
    if instance.status in INSTANCE_TERMINAL:
        raise Conflict(MSG_ALREADY_ENDED.format(status=instance.status))
    with transaction.atomic():
        runtime.cancel(str(instance.id), reason=f"{'stopped' if stop else 'canceled'} by {actor.label}")
        audit_log_write(
            actor=actor,
            tenant=instance.tenant,
            action="instance.stop" if stop else "instance.cancel",
            obj=instance,
            object_type="workflowinstance",
        )
    instance.refresh_from_db()
    return instance


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
    user = actor.user
    who = (user.username, user.email, user.id) if user is not None else (actor.label,)
    identities = frozenset(str(x) for x in who if x)
    try:
        accepted = node_type.accept_input(run.input or {}, data, identities)
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
