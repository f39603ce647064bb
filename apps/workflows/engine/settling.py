"""Settling a node's out-edges (releasing or skipping its successors), completing scopes, and moving
the run between its states (waiting, running, ended; cancel). Imported through
:mod:`apps.workflows.engine.runtime`, which re-exports it."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.utils import timezone

from apps.workflows.engine import graph as graphs
from apps.workflows.engine import runtime as rt

if TYPE_CHECKING:
    from apps.workflows.engine.runtime import Effects, RunData
from apps.workflows.engine.states import (
    CANCELED,
    FAILED,
    INSTANCE_OPEN,
    NODE_OPEN,
    PENDING,
    QUEUED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    WAITING,
    instance_sources,
    node_sources,
)
from apps.workflows.models import NodeRun, WorkflowInstance

logger = logging.getLogger(__name__)


# --- settling edges -----------------------------------------------------------------------------------
_SETTLE_SQL = """
UPDATE {table} SET
  status = CASE
    WHEN status = %s AND active + %s > 0 AND (remaining - %s = 0 OR wait_any) THEN %s
    WHEN status = %s AND remaining - %s = 0 AND active + %s = 0 THEN %s
    ELSE status END,
  deferred = CASE
    WHEN status = %s AND active + %s > 0 AND (remaining - %s = 0 OR wait_any) THEN %s
    ELSE deferred END,
  available_at = CASE
    WHEN status = %s AND active + %s > 0 AND (remaining - %s = 0 OR wait_any) THEN %s
    ELSE available_at END,
  remaining = remaining - %s,
  active = active + %s
 WHERE instance_id = %s AND iteration = %s AND node_id IN ({targets})
RETURNING node_id, status, remaining, active, wait_any
"""


def _settle(run: RunData, source: str, iteration: str, status: str, route: str, fx: Effects) -> None:
    """Settle ``source``'s out-edges in its scope; release or skip targets (skips propagate)."""
    g = run.graph
    queue: list[tuple[str, str, str]] = [(source, status, route)]
    touched: dict[str, str] = {}  # target -> its status after the last update that touched it
    # A single successor may be run by this same worker right after commit (see run_task): it is
    # released "deferred" with a short available_at, so if this worker dies first, the waker sends it.
    inline = getattr(rt._local, "inline", False) and len({e.target for e in g.settles(source)}) == 1
    now = timezone.now()
    inline_until = now + timedelta(seconds=rt.INLINE_GRACE_S) if inline else None
    while queue:
        src, src_status, src_route = queue.pop(0)
        groups: dict[tuple[int, int], list[str]] = {}
        counts: dict[str, list[int]] = {}
        for edge in g.settles(src):
            dec_inc = counts.setdefault(edge.target, [0, 0])
            dec_inc[0] += 1
            dec_inc[1] += int(graphs.edge_active(edge, src_status, src_route))
        for target, (dec, inc) in sorted(counts.items()):
            groups.setdefault((dec, inc), []).append(target)
        for (dec, inc), targets in sorted(groups.items()):
            sql = _SETTLE_SQL.format(table=NodeRun._meta.db_table, targets=", ".join(["%s"] * len(targets)))
            defer = inline and src == source
            params = [
                PENDING,
                inc,
                dec,
                QUEUED,
                PENDING,
                dec,
                inc,
                SKIPPED,
                PENDING,
                inc,
                dec,
                defer,
                PENDING,
                inc,
                dec,
                inline_until if defer else rt.requeue_at(now),
                dec,
                inc,
                rt._db_id(run.instance_id),
                iteration,
                *targets,
            ]
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            for node_id, new_status, remaining, active, wait_any in rows:
                touched[node_id] = new_status
                # Counters move atomically, so exactly one update sees the release: for a join in
                # "any" mode the first active arrival, otherwise the one that brings remaining to 0.
                if wait_any:
                    released = new_status == QUEUED and inc > 0 and active - inc == 0
                else:
                    released = new_status == QUEUED and remaining == 0
                if released:
                    fx.node_event(run.instance_id, node_id, iteration, QUEUED, attempt=0)
                    if inline and src == source:
                        fx.inline = (run.instance_id, node_id, iteration)
                    else:
                        fx.enqueue.append((run.instance_id, node_id, iteration))
                elif new_status == SKIPPED and remaining == 0 and active == 0:
                    fx.node_event(run.instance_id, node_id, iteration, SKIPPED)
                    queue.append((node_id, SKIPPED, ""))
    if not any(status in NODE_OPEN for status in touched.values()):
        fx.checks.add(iteration)  # nothing this settled is still open: the scope may be complete


# --- scope completion ---------------------------------------------------------------------------------
def _check_scopes(instance_id: str, fx: Effects) -> None:
    for key in sorted(fx.checks, key=len, reverse=True):
        complete_scope(instance_id, key)


def complete_scope(instance_id: str, iteration: str) -> None:
    """If nothing is open in this scope, finish it: the run (top level) or the loop iteration."""
    open_rows = NodeRun.objects.filter(instance_id=rt._uuid(instance_id), status__in=NODE_OPEN)
    if iteration:
        if open_rows.filter(iteration=iteration).exclude(node_type=rt.LOOP_HEAD).exists():
            return
        rt._complete_iteration(rt.run_data(instance_id), iteration)
    else:
        if open_rows.exists():
            return
        _finish_instance(instance_id)


def _finish_instance(instance_id: str) -> None:
    end = (
        NodeRun.objects.filter(
            instance_id=rt._uuid(instance_id), node_type="end", status=SUCCEEDED, iteration=""
        )
        .order_by("-ended_at", "-id")
        .values_list("output", flat=True)
        .first()
    )

    def finish() -> None:
        fx = rt.Effects()
        with transaction.atomic():
            _end_instance(instance_id, SUCCEEDED, fx, output=end)
            fx.write()
            fx.after_commit()

    rt._retry_db(finish)


def _instance_to(
    instance_id: str,
    status: str,
    fx: Effects,
    *,
    started: bool = False,
    only: str | None = None,
    **fields: Any,
) -> bool:
    now = timezone.now()
    if status in (SUCCEEDED, FAILED, CANCELED):
        fields["ended_at"] = now
    qs = WorkflowInstance.objects.filter(
        pk=instance_id, status__in=[only] if only else instance_sources(status)
    )
    if started:
        qs = qs.filter(status="queued")
        fields["started_at"] = now
    changed = bool(qs.update(status=status, **fields))
    if changed and status == FAILED:
        fx.failed.append(instance_id)
    if changed:
        data = {k: v for k, v in fields.items() if k in ("output", "error")}
        fx.event(instance_id, f"instance.{status}", status=status, **data)
    return changed


def cancel_rows(instance_id: str, rows: Any, fx: Effects, **event: Any) -> list[tuple[str, str]]:
    """End these open node rows ``canceled`` and journal each (loop heads silently); returns the
    (node id, iteration) of the journaled ones.

    It looks again until nothing is open: a worker that held one of these rows when the update
    reached it (a loop opening its iterations, say) has committed by the time the update goes on,
    and the rows it inserted are newer than the statement's snapshot, so only a later statement
    sees them (PostgreSQL's read committed)."""
    journaled: list[tuple[str, str]] = []
    for _ in range(10):
        found = list(rows.values_list("node_id", "iteration", "node_type"))
        if not found:
            break
        rows.update(
            status=CANCELED, ended_at=timezone.now(), lease_owner="", lease_expires_at=None, deferred=False
        )
        for node_id, iteration, node_type in found:
            if node_type != rt.LOOP_HEAD:
                fx.node_event(instance_id, node_id, iteration, CANCELED, **event)
                journaled.append((node_id, iteration))
    return journaled


def _end_instance(
    instance_id: str, status: str, fx: Effects, *, cancel_open: bool = False, **fields: Any
) -> None:
    """Move the run to a terminal status; on fail/cancel (or ``cancel_open``: an ``end`` that
    terminates), cancel every node still open."""
    if not _instance_to(instance_id, status, fx, **fields):
        return
    _wake_parent(instance_id, status, fields, fx)
    if status in (FAILED, CANCELED) or cancel_open:
        open_rows = NodeRun.objects.filter(
            instance_id=rt._uuid(instance_id), status__in=node_sources(CANCELED)
        )
        cancel_rows(instance_id, open_rows, fx)
        children = WorkflowInstance.objects.filter(parent_id=rt._uuid(instance_id), status__in=INSTANCE_OPEN)
        for child in children.values_list("id", flat=True):
            _end_instance(
                str(child), CANCELED, fx, error={"code": "canceled", "message": "The parent run ended."}
            )


# Node types whose "waiting" means the run waits on something outside it (a person, a child run).
WAITS_OUTSIDE = ("approval", "dataCollection", "subWorkflow")


def _busy(instance_id: Any) -> Any:
    return NodeRun.objects.filter(instance_id=instance_id, status__in=(QUEUED, RUNNING)).exclude(
        node_type=rt.LOOP_HEAD
    )


def _mark_waiting(instance_id: str, fx: Effects) -> None:
    """The run shows ``waiting`` when all it has left to do is wait for a person or a child run."""
    if not _busy(rt._uuid(instance_id)).exists():
        _instance_to(instance_id, WAITING, fx, only=RUNNING)


def instance_resumed(instance_id: str, fx: Effects) -> None:
    """A waiting run got what it waited for (input, a child's end): it is running again."""
    _instance_to(instance_id, RUNNING, fx, only=WAITING)


def _wake_parent(instance_id: str, status: str, fields: dict[str, Any], fx: Effects) -> None:
    """A child run ended: queue the parent's waiting subWorkflow node again with the child's result."""
    parent = rt.run_data(instance_id).parent
    if parent is None:
        return
    parent_id, node_id, iteration = parent
    result = {"status": status, "output": fields.get("output"), "error": fields.get("error")}
    woken = NodeRun.objects.filter(
        instance_id=rt._uuid(parent_id), node_id=node_id, iteration=iteration, status=WAITING
    ).update(
        status=QUEUED,
        deferred=False,
        available_at=rt.requeue_at(),
        state={"child": instance_id, "result": result},
    )
    if woken:
        fx.node_event(
            parent_id, node_id, iteration, QUEUED, attempt=0, reason="child_ended", child=instance_id
        )
        fx.enqueue.append((parent_id, node_id, iteration))
        _instance_to(parent_id, RUNNING, fx, only=WAITING)


def cancel(instance_id: str, *, reason: str = "canceled") -> bool:
    fx = rt.Effects()
    with transaction.atomic():
        before = len(fx.events)
        _end_instance(str(instance_id), CANCELED, fx, error={"code": "canceled", "message": reason})
        changed = len(fx.events) > before
        fx.write()
        fx.after_commit()
    return changed
