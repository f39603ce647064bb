"""Loops: starting one (items, or a while condition), opening and closing iterations, finishing it
with its results. Imported through :mod:`apps.workflows.engine.runtime`, which re-exports it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import connection, models, transaction
from django.utils import timezone

from apps.workflows.engine import graph as graphs
from apps.workflows.engine import runtime as rt

if TYPE_CHECKING:
    from apps.workflows.engine.runtime import Attempt, Effects, RunData
from apps.workflows.engine import templates
from apps.workflows.engine.states import (
    PENDING,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    WAITING,
)
from apps.workflows.models import NodeRun
from apps.workflows.nodes import base as nodes
from jetadmin.db.rows import insert_rows

logger = logging.getLogger(__name__)


def _while_holds(
    run: RunData, loop_id: str, outer: str, condition: dict[str, Any], index: int, last: Any
) -> bool:
    """Evaluate a while loop's condition for iteration ``index`` (raises TemplateError / NodeError)."""
    from apps.workflows.nodes.core import compare

    data, _ = rt._context(run, loop_id, outer, nodes.get("loop"))
    data["loop"] = {"index": index, "last": last}
    left = templates.resolve(condition.get("left"), data, node_id=loop_id, field="while.left")
    right = templates.resolve(condition.get("right"), data, node_id=loop_id, field="while.right")
    return compare(left, str(condition.get("operator")), right)


# --- loops --------------------------------------------------------------------------------------------
def _start_loop(a: Attempt, loop: nodes.StartLoop) -> str | None:
    run, node_id, iteration, run_id, owner, attempt, inputs = a.fields()
    state: dict[str, Any] = {"count": len(loop.items)}
    items = list(loop.items)
    if loop.condition is not None:  # while: one iteration at a time, as long as the condition holds
        try:
            holds = loop.limit > 0 and _while_holds(run, node_id, iteration, loop.condition, 0, None)
        except (templates.TemplateError, nodes.NodeError) as exc:
            return rt._failed(a, "bad_condition", str(getattr(exc, "message", exc)), False)
        items = [None] if holds else []
        state = {"count": None, "while": loop.condition, "limit": loop.limit}
    count = len(items)
    if count == 0:
        return rt._succeed(a, {"results": []}, "completed")
    fx = rt.Effects()
    with transaction.atomic():
        saved = NodeRun.objects.filter(pk=run_id, status=RUNNING, lease_owner=owner).update(
            status=WAITING,
            remaining=count,
            input=inputs,
            state=state,
            lease_owner="",
            lease_expires_at=None,
        )
        if not saved:
            return None
        fx.node_event(run.instance_id, node_id, iteration, WAITING, attempt=attempt, iterations=count)
        heads = [
            NodeRun(
                instance_id=rt._uuid(run.instance_id),
                node_id=node_id,
                node_type=rt.LOOP_HEAD,
                iteration=rt.iteration_key(iteration, node_id, index),
                index=index,
                status=RUNNING if index < loop.concurrency else PENDING,
                state={"item": item},
            )
            for index, item in enumerate(items)
        ]
        insert_rows(heads)
        for head in heads[: loop.concurrency]:
            _open_iteration(run, node_id, head.iteration, fx)
        fx.write()
        fx.after_commit()
    rt._check_scopes(run.instance_id, fx)
    return WAITING


def _open_iteration(run: RunData, loop_id: str, key: str, fx: Effects) -> None:
    g = run.graph
    rows = []
    for node_id in g.members(loop_id):
        active = sum(1 for e in g.into.get(node_id, []) if g.is_loop_edge(e) and e.source == loop_id)
        remaining = g.in_count(node_id)
        wait_any = g.node_type(node_id) == "join" and g.inputs(node_id).get("mode") == "any"
        ready = graphs.readiness(remaining, active, wait_any) == "ready"
        rows.append(
            NodeRun(
                instance_id=rt._uuid(run.instance_id),
                node_id=node_id,
                node_type=g.node_type(node_id),
                iteration=key,
                remaining=remaining,
                active=active,
                wait_any=wait_any,
                status=QUEUED if ready else PENDING,
                available_at=rt.requeue_at() if ready else None,
            )
        )
        if ready:
            fx.node_event(run.instance_id, node_id, key, QUEUED, attempt=0)
            fx.enqueue.append((run.instance_id, node_id, key))
    insert_rows(rows)
    if not rows:
        fx.checks.add(key)


def _iteration_result(run: RunData, loop_id: str, key: str) -> Any:
    sinks = run.graph.sinks(loop_id)
    rows = dict(
        NodeRun.objects.filter(
            instance_id=rt._uuid(run.instance_id), iteration=key, node_id__in=sinks, status=SUCCEEDED
        ).values_list("node_id", "output")
    )
    for node_id in reversed(sinks):
        if node_id in rows:
            return rows[node_id]
    return None


def _complete_iteration(run: RunData, key: str) -> None:
    loop_id = key.rsplit("/", 1)[-1].rsplit(":", 1)[0]
    outer = rt.outer_of(key)
    result = _iteration_result(run, loop_id, key)
    fx = rt.Effects()
    finished_loop = False

    def close() -> None:
        nonlocal finished_loop
        fx.events.clear()
        fx.enqueue.clear()
        fx.checks.clear()
        with transaction.atomic():
            done = NodeRun.objects.filter(
                instance_id=rt._uuid(run.instance_id),
                node_id=loop_id,
                iteration=key,
                node_type=rt.LOOP_HEAD,
                status=RUNNING,
            ).update(status=SUCCEEDED, output=result, ended_at=timezone.now())
            if not done:
                return
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {NodeRun._meta.db_table} SET remaining = remaining - 1 "  # noqa: S608 - table name
                    "WHERE instance_id = %s AND node_id = %s AND iteration = %s AND status = %s "
                    "RETURNING id, remaining",
                    [rt._db_id(run.instance_id), loop_id, outer, WAITING],
                )
                row = cursor.fetchone()
            if row is None:
                return  # the loop was canceled or failed meanwhile
            if row[1] == 0:
                if _while_next(run, loop_id, outer, key, result, row[0], fx):
                    fx.write()
                    fx.after_commit()
                    return
                finished_loop = True
                return
            _open_next_iteration(run, loop_id, outer, fx)
            fx.write()
            fx.after_commit()

    rt._retry_db(close)
    if finished_loop:
        _finish_loop(run, loop_id, outer)
    else:
        rt._check_scopes(run.instance_id, fx)


def _while_next(
    run: RunData, loop_id: str, outer: str, key: str, result: Any, loop_row: int, fx: Effects
) -> bool:
    """A while loop whose iteration just ended: open the next one if the condition still holds (True),
    else note why it stopped on the loop's row (False: the loop finishes)."""
    state = NodeRun.objects.filter(pk=loop_row).values_list("state", flat=True).first()
    if not isinstance(state, dict) or not state.get("while"):
        return False
    index = int(key.rsplit(":", 1)[1]) + 1
    stopped = None
    try:
        holds = _while_holds(run, loop_id, outer, state["while"], index, result)
    except (templates.TemplateError, nodes.NodeError) as exc:
        holds, stopped = False, f"condition error: {getattr(exc, 'message', exc)}"
    if holds and index >= int(state.get("limit", 1000)):
        holds, stopped = False, "max_iterations"
    if not holds:
        if stopped:
            NodeRun.objects.filter(pk=loop_row).update(state={**state, "stopped": stopped})
        return False
    head_key = rt.iteration_key(outer, loop_id, index)
    insert_rows(
        [
            NodeRun(
                instance_id=rt._uuid(run.instance_id),
                node_id=loop_id,
                node_type=rt.LOOP_HEAD,
                iteration=head_key,
                index=index,
                status=RUNNING,
                state={"item": None},
            )
        ]
    )
    NodeRun.objects.filter(pk=loop_row, status=WAITING).update(remaining=models.F("remaining") + 1)
    _open_iteration(run, loop_id, head_key, fx)
    return True


def _open_next_iteration(run: RunData, loop_id: str, outer: str, fx: Effects) -> None:
    prefix = rt.iteration_key(outer, loop_id, 0)[:-1]
    heads = NodeRun.objects.filter(
        instance_id=rt._uuid(run.instance_id),
        node_id=loop_id,
        node_type=rt.LOOP_HEAD,
        status=PENDING,
        iteration__startswith=prefix,
    )
    for head_id, head_key in heads.order_by("index").values_list("id", "iteration")[:5]:
        if "/" in head_key[len(prefix) :]:
            continue  # a nested loop of the same id cannot exist (ids are unique), defensive only
        if NodeRun.objects.filter(pk=head_id, status=PENDING).update(status=RUNNING):
            _open_iteration(run, loop_id, head_key, fx)
            return


def _finish_loop(run: RunData, loop_id: str, outer: str) -> None:
    prefix = rt.iteration_key(outer, loop_id, 0)[:-1]
    results = list(
        NodeRun.objects.filter(
            instance_id=rt._uuid(run.instance_id),
            node_id=loop_id,
            node_type=rt.LOOP_HEAD,
            iteration__startswith=prefix,
        )
        .order_by("index")
        .values_list("output", flat=True)
    )
    row = (
        NodeRun.objects.filter(instance_id=rt._uuid(run.instance_id), node_id=loop_id, iteration=outer)
        .exclude(node_type=rt.LOOP_HEAD)
        .values_list("id", "attempt", "input", "state")
        .first()
    )
    if row is None:
        return
    output: dict[str, Any] = {"results": results}
    if isinstance(row[3], dict) and row[3].get("stopped"):
        output["stopped"] = row[3]["stopped"]  # a while loop cut short by max_iterations or its condition
    loop = rt.Attempt(run, loop_id, outer, row[0], None, row[1], row[2])  # not lease-guarded: it was waiting
    rt._retry_db(lambda: rt._succeed(loop, output, "completed", from_status=WAITING))
