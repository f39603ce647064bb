"""How a node's execution ends: succeeded (often in one statement that also settles its edges and
releases its successors), failed (retry, or the error model), parked waiting, or waiting for a child run.
Imported through :mod:`apps.workflows.engine.runtime`, which re-exports it."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.workflows.engine import fairness, leases
from apps.workflows.engine import graph as graphs
from apps.workflows.engine import runtime as rt

if TYPE_CHECKING:
    from apps.workflows.engine.runtime import Attempt, Effects, RunData
from apps.workflows.engine.states import (
    FAILED,
    NODE_OPEN,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    WAITING,
    instance_sources,
)
from apps.workflows.models import InstanceEvent, NodeRun, WorkflowInstance
from apps.workflows.nodes import base as nodes

logger = logging.getLogger(__name__)


def _finish_params(a: Attempt, output: Any, route: str) -> tuple[Effects, dt.datetime, str, dict[str, Any]]:
    """What both one-statement finishes send: the node's result and its "succeeded" journal row;
    returns (effects holding that row, now, the output's saved JSON text, the statement's parameters)."""
    from psycopg.types.json import Jsonb

    run, node_id, iteration, run_id, owner, attempt, inputs = a.fields()
    fx = rt.Effects()
    fx.node_event(run.instance_id, node_id, iteration, SUCCEEDED, attempt=attempt, output=output)
    now = timezone.now()
    saved_json, output_param = rt._saved_json(output)
    params: dict[str, Any] = {
        "output": output_param,
        "route": route,
        "input": Jsonb(inputs),
        "now": now,
        "run_id": run_id,
        "owner": owner,
        "iid": rt._uuid(run.instance_id),
        "node_id": node_id,
        "data": Jsonb(fx.events[0].data),
    }
    return fx, now, saved_json, params


def _finished(run: RunData, fx: Effects) -> tuple[bool, str | None]:
    """After a one-statement finish committed: its journal rows are written; broadcast, send, check."""
    fx._written = len(fx.events)
    fx.after_commit()
    rt._check_scopes(run.instance_id, fx)
    return True, SUCCEEDED


# PostgreSQL, when every out-edge of the node is active (so settling can release but never skip):
# save the output, settle the successors and journal both in ONE statement, atomic on its own.
_FINISH_SQL = """
WITH me AS (
  UPDATE {runs} SET status = 'succeeded', output = %(output)s, route = %(route)s, input = %(input)s,
         error = NULL, ended_at = %(now)s, lease_owner = '', lease_expires_at = NULL
   WHERE id = %(run_id)s AND status = 'running' AND lease_owner = %(owner)s
  RETURNING id
), t AS (
  UPDATE {runs} AS r SET
    status = CASE WHEN {released}
                  THEN CASE WHEN {claims} THEN 'running' ELSE 'queued' END ELSE r.status END,
    deferred = CASE WHEN {released}
                    THEN CASE WHEN {claims} THEN FALSE ELSE %(defer)s END ELSE r.deferred END,
    available_at = CASE WHEN {released} THEN %(until)s ELSE r.available_at END,
    lease_owner = CASE WHEN {released} AND {claims} THEN %(owner)s ELSE r.lease_owner END,
    lease_expires_at = CASE WHEN {released} AND {claims} THEN %(lease_until)s ELSE r.lease_expires_at END,
    attempt = CASE WHEN {released} AND {claims} THEN r.attempt + 1 ELSE r.attempt END,
    started_at = CASE WHEN {released} AND {claims} THEN COALESCE(r.started_at, %(now)s)
                      ELSE r.started_at END,
    remaining = r.remaining - v.dec,
    active = r.active + v.inc
  FROM (VALUES {values}) AS v(node_id, dec, inc)
  WHERE r.instance_id = %(iid)s AND r.iteration = %(iteration)s AND r.node_id = v.node_id
    AND EXISTS (SELECT 1 FROM me)
  RETURNING r.id, r.node_id, r.status, r.remaining, r.active, r.wait_any, v.inc, r.attempt, r.state
), released AS (
  SELECT node_id, status, attempt FROM t
   WHERE t.status IN ('queued', 'running')
     AND ((t.wait_any AND t.inc > 0 AND t.active - t.inc = 0) OR (NOT t.wait_any AND t.remaining = 0))
), ev AS (
  INSERT INTO {events} (instance_id, type, node_id, iteration, data, at)
  SELECT %(iid)s, 'node.succeeded', %(node_id)s, %(iteration)s, %(data)s, %(now)s FROM me
  UNION ALL
  SELECT %(iid)s, 'node.queued', released.node_id, %(iteration)s, %(queued)s, %(now)s FROM released
  UNION ALL
  SELECT %(iid)s, 'node.running', released.node_id, %(iteration)s,
         jsonb_build_object('status', 'running', 'attempt', released.attempt), %(now)s
    FROM released WHERE released.status = 'running'
  RETURNING id, seq, type, node_id, data
)
SELECT 'ev', id, type, node_id, data, NULL::int, NULL::int, NULL::bool, seq, NULL::int, NULL::jsonb
  FROM ev
UNION ALL
SELECT 't', NULL, status, node_id, NULL::jsonb, remaining, active, wait_any, id, attempt, state FROM t
"""
# A target becomes ready; and, when this worker will run it next (a chain continued inline, no running
# limit), it is claimed for this worker in the same statement — one statement fewer per chain step.
_RELEASED = "(r.status = 'pending' AND r.active + v.inc > 0 AND (r.remaining - v.dec = 0 OR r.wait_any))"
_CLAIMS = "(%(claim)s AND NOT r.wait_any)"


def _succeed_in_one_statement(a: Attempt, output: Any, route: str) -> tuple[bool, str | None]:
    """The single-statement finish; (False, None) when it does not apply and the general path must run."""
    run, node_id, iteration = a.run, a.node_id, a.iteration
    edges = run.graph.settles(node_id)
    if connection.vendor != "postgresql" or not edges or connection.in_atomic_block:
        return False, None
    if not all(graphs.edge_active(e, SUCCEEDED, route) for e in edges):
        return False, None  # a target could be skipped: that propagates, so it takes a transaction
    from psycopg.types.json import Jsonb

    counts: dict[str, int] = {}
    for edge in edges:
        counts[edge.target] = counts.get(edge.target, 0) + 1
    inline = getattr(rt._local, "inline", False) and len(counts) == 1
    fx, now, saved_json, params = _finish_params(a, output, route)
    params.update(
        defer=inline,
        until=now + timedelta(seconds=rt.INLINE_GRACE_S) if inline else rt.requeue_at(now),
        iteration=iteration,
        queued=Jsonb({"status": QUEUED, "attempt": 0}),
    )
    values = []
    for i, (target, n) in enumerate(sorted(counts.items())):
        params[f"t{i}"], params[f"n{i}"] = target, n
        values.append(f"(%(t{i})s::text, %(n{i})s::int, %(n{i})s::int)")
    params["claim"] = inline and fairness.limits(run.tenant_id)[0] <= 0
    params["lease_until"] = now + timedelta(seconds=leases.lease_seconds())
    sql = _FINISH_SQL.format(
        runs=NodeRun._meta.db_table,
        events=InstanceEvent._meta.db_table,
        values=", ".join(values),
        released=_RELEASED,
        claims=_CLAIMS,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return True, None  # lost the lease, or the run was canceled meanwhile
    rt._remember_output(run.instance_id, node_id, iteration, saved_json)
    fx.events = []
    touched: dict[str, str] = {}
    claimed: dict[str, tuple[int, int, Any]] = {}
    for kind, event_id, text, target, data, _remaining, _active, _wait_any, t_id, t_attempt, t_state in rows:
        if kind == "ev":  # a journal row: its seq rides in the target-id column
            fx.events.append(
                InstanceEvent(
                    id=event_id,
                    seq=t_id,
                    instance_id=rt._uuid(run.instance_id),
                    type=text,
                    node_id=target,
                    iteration=iteration,
                    data=rt._json(data),
                    at=now,
                )
            )
            if text == "node.queued":
                if inline:
                    fx.inline = (run.instance_id, target, iteration)
                else:
                    fx.enqueue.append((run.instance_id, target, iteration))
        else:
            touched[target] = text
            if text == RUNNING:
                state = rt._json(t_state)
                claimed[target] = (int(t_id), int(t_attempt), state)
    fx.events.sort(key=lambda event: event.seq or 0)
    if fx.inline is not None and fx.inline[1] in claimed:
        fx.inline_claim = claimed[fx.inline[1]]
    if not any(status in NODE_OPEN for status in touched.values()):
        fx.checks.add(iteration)
    return _finished(run, fx)


# PostgreSQL, a top-level node with no successors (the end of a chain) in a run with no parent: save the
# output, journal it and — when nothing else of the run is open — end the run with its output and
# journal that, in ONE statement. The open-nodes check sees the snapshot before the statement, so two
# sinks ending at the same moment may each see the other open: then neither ends the run here, and the
# general check after commit (complete_scope) does.
_SINK_SQL = """
WITH me AS (
  UPDATE {runs} SET status = 'succeeded', output = %(output)s, route = %(route)s, input = %(input)s,
         error = NULL, ended_at = %(now)s, lease_owner = '', lease_expires_at = NULL
   WHERE id = %(run_id)s AND status = 'running' AND lease_owner = %(owner)s
  RETURNING id
), ev AS (
  INSERT INTO {events} (instance_id, type, node_id, iteration, data, at)
  SELECT %(iid)s, 'node.succeeded', %(node_id)s, '', %(data)s, %(now)s FROM me
  RETURNING id, seq, type, data
), run AS (
  UPDATE {instances} SET status = 'succeeded', ended_at = %(now)s,
         output = CASE WHEN %(is_end)s THEN %(output)s ELSE (
           SELECT r.output FROM {runs} r WHERE r.instance_id = %(iid)s AND r.node_type = 'end'
              AND r.status = 'succeeded' AND r.iteration = '' ORDER BY r.ended_at DESC, r.id DESC LIMIT 1
         ) END
   WHERE id = %(iid)s AND status = ANY(%(sources)s) AND EXISTS (SELECT 1 FROM me)
     AND NOT EXISTS (SELECT 1 FROM {runs} o WHERE o.instance_id = %(iid)s AND o.id <> %(run_id)s
                     AND o.status = ANY(%(open)s))
  RETURNING output
), run_ev AS (
  INSERT INTO {events} (instance_id, type, node_id, iteration, data, at)
  SELECT %(iid)s, 'instance.succeeded', '', '',
         jsonb_build_object('status', 'succeeded', 'output', run.output), %(now)s FROM run
   WHERE (SELECT COUNT(*) FROM ev) > 0  -- reading ev first journals (and numbers) the node before the run
  RETURNING id, seq, type, data
)
SELECT id, seq, type, data FROM ev UNION ALL SELECT id, seq, type, data FROM run_ev
"""


def _succeed_sink_in_one_statement(a: Attempt, output: Any, route: str) -> tuple[bool, str | None]:
    """The single-statement end of a top-level sink; (False, None) when it does not apply."""
    run, node_id, iteration = a.run, a.node_id, a.iteration
    if (
        connection.vendor != "postgresql"
        or connection.in_atomic_block
        or iteration
        or run.parent is not None
        or run.graph.settles(node_id)
        or run.graph.scope.get(node_id) is not None
    ):
        return False, None
    fx, now, saved_json, params = _finish_params(a, output, route)
    params.update(
        is_end=run.graph.node_type(node_id) == "end",
        sources=instance_sources(SUCCEEDED),
        open=sorted(NODE_OPEN),
    )
    sql = _SINK_SQL.format(
        runs=NodeRun._meta.db_table,
        events=InstanceEvent._meta.db_table,
        instances=WorkflowInstance._meta.db_table,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return True, None  # lost the lease, or the run was canceled meanwhile
    rt._remember_output(run.instance_id, node_id, iteration, saved_json)
    fx.events = [
        InstanceEvent(
            id=event_id,
            seq=seq,
            instance_id=rt._uuid(run.instance_id),
            type=kind,
            node_id=node_id if kind == "node.succeeded" else "",
            iteration="",
            data=rt._json(data),
            at=now,
        )
        for event_id, seq, kind, data in sorted(rows, key=lambda row: row[1])
    ]
    if len(rows) == 1:  # the run did not end here: something else may still be open
        fx.checks.add("")
    return _finished(run, fx)


def _succeed(a: Attempt, output: Any, route: str, *, from_status: str = RUNNING) -> str | None:
    run, node_id, iteration, run_id, owner, attempt, inputs = a.fields()
    if from_status == RUNNING and owner is not None:
        done, status = _succeed_in_one_statement(a, output, route)
        if not done:
            done, status = _succeed_sink_in_one_statement(a, output, route)
        if done:
            return status
    fx = rt.Effects()
    with transaction.atomic():
        saved = _save_result(run_id, from_status, owner, SUCCEEDED, output=output, route=route, input=inputs)
        if not saved:
            return None  # lost the lease, or the run was canceled meanwhile
        fx.node_event(run.instance_id, node_id, iteration, SUCCEEDED, attempt=attempt, output=output)
        _write_before_joins(run, node_id, fx)
        rt._settle(run, node_id, iteration, SUCCEEDED, route, fx)
        fx.write()
        fx.after_commit()
    if not iteration:
        rt._remember_output(run.instance_id, node_id, iteration, json.dumps(output))
    rt._check_scopes(run.instance_id, fx)
    return SUCCEEDED


def _save_result(run_id: int, from_status: str, owner: str | None, status: str, **fields: Any) -> bool:
    """End a node run, guarded by its status and (when it is running) by its lease owner."""
    fields.setdefault("error", None)
    fields.update(status=status, ended_at=timezone.now(), lease_owner="", lease_expires_at=None)
    meta = NodeRun._meta
    assignments, params = [], []
    for name, value in fields.items():  # each value prepared by its field, as the ORM's UPDATE would
        f = rt._field(NodeRun, name)
        assignments.append(f"{connection.ops.quote_name(f.get_attname_column()[1] or name)} = %s")
        params.append(f.get_db_prep_save(value, connection))
    sql = f"UPDATE {meta.db_table} SET {', '.join(assignments)} WHERE id = %s AND status = %s"  # noqa: S608
    params += [run_id, from_status]
    if owner is not None:
        sql += " AND lease_owner = %s"
        params.append(owner)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return bool(cursor.rowcount)


def _write_before_joins(run: RunData, node_id: str, fx: Effects) -> None:
    """Settling a join locks its row until commit; journal first so the lock is held briefly."""
    if any(run.graph.in_count(e.target) > 1 for e in run.graph.settles(node_id)):
        fx.write()


def _failed(a: Attempt, code: str, message: str, retryable: bool) -> str | None:
    run, node_id, iteration, run_id, owner, attempt, inputs = a.fields()
    node = run.graph.nodes[node_id]
    policy = node.get("retry") or {}
    max_attempts = int(policy.get("max_attempts", 1))
    error = {"code": code, "message": message, "attempt": attempt}
    # After a manual retry, the retry policy counts the attempts made since then.
    base = int(
        (NodeRun.objects.filter(pk=run_id).values_list("state", flat=True).first() or {}).get(
            "attempt_base", 0
        )
    )
    if retryable and attempt - base < max_attempts:
        backoff = float(policy.get("backoff_s", 1.0)) * (2 ** (attempt - base - 1))
        rt.logger.info("node failed (%s), retried in %.3g s: %s", code, backoff, message[:500])

        def requeue() -> str | None:
            fx = rt.Effects()
            due = timezone.now() + timedelta(seconds=backoff)
            with transaction.atomic():
                saved = NodeRun.objects.filter(pk=run_id, status=RUNNING, lease_owner=owner).update(
                    status=QUEUED,
                    deferred=True,
                    available_at=due,
                    error=error,
                    input=inputs,
                    lease_owner="",
                    lease_expires_at=None,
                )
                if not saved:
                    return None
                fx.node_event(
                    run.instance_id,
                    node_id,
                    iteration,
                    "retrying",
                    attempt=attempt,
                    error=error,
                    retry_in_s=backoff,
                )
                fx.timers.append((run.instance_id, node_id, iteration, due))
                fx.write()
                fx.after_commit()
            return QUEUED

        return rt._retry_db(requeue)
    rt.logger.warning("node failed (%s): %s", code, message[:500])
    return rt._retry_db(lambda: _fail(a, error))


def _fail(a: Attempt, error: dict[str, Any], *, from_status: str = RUNNING) -> str | None:
    run, node_id, iteration, run_id, owner, attempt, inputs = a.fields()
    g = run.graph
    mode = g.on_error(node_id)
    node_type = nodes.get(g.node_type(node_id))
    route = {"route": "error", "continue": node_type.continue_route(g.inputs(node_id))}.get(mode, "")
    fx = rt.Effects()
    with transaction.atomic():
        if not _save_result(run_id, from_status, owner, FAILED, error=error, route=route, input=inputs):
            return None
        fx.node_event(run.instance_id, node_id, iteration, FAILED, attempt=attempt, error=error)
        if mode == "fail":
            rt._end_instance(
                run.instance_id, FAILED, fx, error={**error, "node_id": node_id, "iteration": iteration}
            )
        else:
            _write_before_joins(run, node_id, fx)
            rt._settle(run, node_id, iteration, FAILED, route, fx)
        fx.write()
        fx.after_commit()
    rt._check_scopes(run.instance_id, fx)
    return FAILED


def _take_early_input(a: Attempt, wait: nodes.Wait, fx: Effects) -> tuple[bool, str]:
    """Input sent before this node waited: (True, "") when it is taken (the node is queued to run
    with it), else (False, why it was refused — or "" when there was none)."""
    from apps.workflows.engine import control

    run, node_id, iteration, run_id, owner, attempt, inputs = a.fields()
    node_type = nodes.get(run.graph.node_type(node_id))
    early = control.take_early_input(run_id) if node_type.takes_input else None
    if early is None:
        return False, ""
    try:
        accepted = node_type.accept_input(
            inputs or {}, early.get("data"), frozenset(early.get("identities") or ())
        )
    except (nodes.InputNotAllowed, nodes.InputInvalid) as exc:
        return False, str(getattr(exc, "errors", None) or exc)
    taken = NodeRun.objects.filter(pk=run_id, status=RUNNING, lease_owner=owner).update(
        status=QUEUED,
        deferred=False,
        available_at=rt.requeue_at(),
        state={**(wait.state or {}), "input": accepted, "by": early.get("by", "")},
        input=inputs,
        lease_owner="",
        lease_expires_at=None,
        attempt=max(attempt - 1, 0),
    )
    if taken:
        fx.node_event(
            run.instance_id, node_id, iteration, QUEUED, attempt=0, reason="input", by=early.get("by")
        )
        fx.enqueue.append((run.instance_id, node_id, iteration))
    return bool(taken), ""


def _park(a: Attempt, wait: nodes.Wait) -> str | None:
    run, node_id, iteration, run_id, owner, attempt, inputs = a.fields()
    fx = rt.Effects()
    with transaction.atomic():
        taken, refused = _take_early_input(a, wait, fx)
        if taken:
            fx.write()
            fx.after_commit()
            return QUEUED
        saved = NodeRun.objects.filter(pk=run_id, status=RUNNING, lease_owner=owner).update(
            status=WAITING,
            available_at=wait.until,
            state=wait.state,
            input=inputs,
            lease_owner="",
            lease_expires_at=None,
            attempt=max(attempt - 1, 0),
        )
        if not saved:
            return None
        until = wait.until.isoformat() if wait.until else None
        extra = {"early_input_refused": refused} if refused else {}
        fx.node_event(
            run.instance_id,
            node_id,
            iteration,
            WAITING,
            attempt=attempt,
            until=until,
            kind=wait.kind,
            **extra,
        )
        if wait.until is not None:
            fx.timers.append((run.instance_id, node_id, iteration, wait.until))
        if wait.kind != "timer":
            rt._mark_waiting(run.instance_id, fx)
        fx.write()
        fx.after_commit()
    return WAITING


def _start_child(a: Attempt, spec: nodes.StartChild) -> str | None:
    """Start a run of another workflow of the tenant and park the subWorkflow node until it ends."""
    from apps.workflows.models import Workflow

    run, node_id, iteration, run_id, owner, attempt, inputs = a.fields()
    me = WorkflowInstance.objects.values("depth", "workflow_id", "parent_id").get(pk=run.instance_id)
    if me["depth"] + 1 > settings.JETADMIN_MAX_SUBWORKFLOW_DEPTH:
        limit = settings.JETADMIN_MAX_SUBWORKFLOW_DEPTH
        return _failed(a, "subworkflow_depth", f"Sub-workflows nest at most {limit} deep.", False)
    try:
        target = uuid.UUID(spec.workflow)
    except ValueError:
        target = None
    workflow = (
        Workflow.objects.select_related("current_version").filter(pk=target, tenant_id=run.tenant_id).first()
        if target
        else None
    )
    if workflow is None or workflow.current_version is None:
        message = f"Workflow {spec.workflow!r} does not exist in this tenant (or has no graph)."
        return _failed(a, "subworkflow_not_found", message, False)
    ancestry, cursor = {me["workflow_id"]}, me["parent_id"]
    while cursor is not None:
        row = WorkflowInstance.objects.values("workflow_id", "parent_id").get(pk=cursor)
        ancestry.add(row["workflow_id"])
        cursor = row["parent_id"]
    if workflow.id in ancestry:
        message = f"Workflow {workflow.name!r} is already running in this chain of runs (no recursion)."
        return _failed(a, "subworkflow_recursion", message, False)
    version = workflow.current_version
    child_id = uuid.uuid4()

    def begin() -> str | None:
        fx = rt.Effects()
        with transaction.atomic():
            parked = NodeRun.objects.filter(pk=run_id, status=RUNNING, lease_owner=owner).update(
                status=WAITING,
                available_at=None,
                state={"child": str(child_id)},
                input=inputs,
                lease_owner="",
                lease_expires_at=None,
                attempt=max(attempt - 1, 0),  # waiting is not an attempt; the run after the child is
            )
            if not parked:
                return None
            child = WorkflowInstance.objects.create(
                id=child_id,
                tenant_id=run.tenant_id,
                workflow=workflow,
                version=version,
                graph=version.graph,
                input=spec.input if spec.input is not None else {},
                trigger="subworkflow",
                parent_id=rt._uuid(run.instance_id),
                parent_node=node_id,
                parent_iteration=iteration,
                depth=me["depth"] + 1,
            )
            rt.start(child, graphs.build(version.graph, trusted=True))
            fx.node_event(run.instance_id, node_id, iteration, WAITING, attempt=attempt, child=str(child_id))
            rt._mark_waiting(run.instance_id, fx)
            fx.write()
            fx.after_commit()
        return WAITING

    return rt._retry_db(begin)
