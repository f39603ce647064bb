"""The reconciler: one pass re-queues nodes whose lease expired, re-sends messages presumed lost,
wakes due nodes and closes scopes a dead worker left open. Imported through
:mod:`apps.workflows.engine.runtime`, which re-exports it."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.workflows.engine import dispatch, fairness, settling
from apps.workflows.engine import runtime as rt

if TYPE_CHECKING:
    pass
from apps.workflows.engine.states import (
    INSTANCE_OPEN,
    NODE_OPEN,
    QUEUED,
    RUNNING,
    WAITING,
)
from apps.workflows.models import NodeRun, WorkflowInstance

logger = logging.getLogger(__name__)


# --- the reconciler ---------------------------------------------------------------------------------
@dataclass
class Reconciled:
    """What one reconciler pass did (the management command prints it)."""

    expired: int = 0  # running nodes whose lease ran out: queued again (or failed: worker_lost)
    sent: int = 0  # queued nodes whose backoff ended or whose message is presumed lost: message sent
    woken: int = 0  # waiting nodes whose time came (delay, expiry): queued
    completed: int = 0  # scopes (runs, loop iterations, loops) left open by a worker that died
    dispatched: int = 0  # held nodes sent into the broker's free room, in fair shares

    def total(self) -> int:
        return self.expired + self.sent + self.woken + self.completed + self.dispatched


def reconcile(limit: int = 500) -> Reconciled:
    """Make the database's truth happen again. Run by beat (and the embedded ticker) every second.

    Celery messages are only hints: a message can be lost (Redis restarted empty), late (backlog) or
    duplicated (redelivery). Every step here is a conditional update, so reconcilers racing each other
    or a worker do nothing twice, and a duplicate message finds nothing to claim.
    """
    done = Reconciled()
    now = timezone.now()
    done.expired = _requeue_expired(now, limit)
    done.sent = _send_due(now, limit)
    due = list(  # waiting nodes whose time came (delay, expiry): one transaction each, journaled
        NodeRun.objects.filter(available_at__lte=now, status=WAITING)
        .exclude(node_type__in=("loop", rt.LOOP_HEAD))
        .order_by("available_at")
        .values_list("id", "instance_id", "node_id", "iteration")[:limit]
    )
    for run_id, instance_id, node_id, iteration in due:
        done.woken += _wake_waiting(run_id, str(instance_id), node_id, iteration, now)
    done.completed = _complete_stuck_scopes(limit)
    done.dispatched = dispatch.refill()
    return done


def _wake_waiting(
    run_id: int, instance_id: str, node_id: str, iteration: str, now: dt.datetime, *, publish_it: bool = True
) -> bool:
    """A waiting node whose time came (delay, expiry) becomes queued, journaled; published unless the
    caller runs it itself. False when someone else woke it first."""
    fx = rt.Effects()
    with transaction.atomic():
        changed = NodeRun.objects.filter(pk=run_id, status=WAITING, available_at__lte=now).update(
            status=QUEUED, deferred=False, available_at=rt.requeue_at(now)
        )
        if changed:
            fx.node_event(instance_id, node_id, iteration, QUEUED, attempt=0, reason="due")
            rt._instance_to(instance_id, RUNNING, fx, only=WAITING)
            if publish_it:
                fx.enqueue.append((instance_id, node_id, iteration))
        fx.write()
        fx.after_commit()
    return bool(changed)


def _send_due(now: dt.datetime, limit: int) -> int:
    """Send the messages of queued nodes that are due — backoff over, or presumed lost — and of
    throttled nodes whose tenant has a free slot (at most that many), oldest first, as one batch."""
    free = fairness.free_slots(now)  # tenant id -> slots; absent = no throttled nodes to consider
    saturated = [tenant for tenant, slots in free.items() if slots <= 0]
    fx = rt.Effects()
    with transaction.atomic():
        due = (
            NodeRun.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(available_at__lte=now, status=QUEUED)
            .exclude(lease_owner=fairness.THROTTLED, instance__tenant_id__in=saturated)
            .exclude(lease_owner=dispatch.HELD)  # dispatched in fair shares, never as "presumed lost"
            .order_by("available_at")
            .values_list("id", "instance_id", "node_id", "iteration", "lease_owner", "instance__tenant_id")
        )
        rows = []
        for row in due[:limit]:
            if row[4] == fairness.THROTTLED:
                if free.get(row[5], 1) <= 0:
                    continue
                free[row[5]] = free.get(row[5], 1) - 1
            rows.append(row)
        if not rows:
            return 0
        NodeRun.objects.filter(pk__in=[r[0] for r in rows], status=QUEUED).update(
            deferred=False, available_at=rt.requeue_at(now), lease_owner=""
        )
        fx.enqueue = [(str(r[1]), r[2], r[3]) for r in rows]
        fx.after_commit()
    return len(rows)


def wake_due(limit: int = 500) -> int:
    """One reconciler pass; the number of nodes it sent or woke."""
    return reconcile(limit).total()


def _requeue_expired(now: dt.datetime, limit: int) -> int:
    expired = list(
        NodeRun.objects.filter(status=RUNNING, lease_expires_at__lt=now).values_list(
            "id", "instance_id", "node_id", "iteration", "lease_owner", "attempt", "state"
        )[:limit]
    )
    return sum(_requeue_one(now, *row) for row in expired)


def _requeue_one(
    now: dt.datetime,
    run_id: int,
    instance_id: Any,
    node_id: str,
    iteration: str,
    owner: str,
    attempt: int,
    state: Any,
) -> bool:
    """Queue a node whose lease ran out again, or fail it (``worker_lost``) after too many losses."""
    iid = str(instance_id)
    run = rt.run_data(iid)
    policy = (run.graph.nodes.get(node_id) or {}).get("retry") or {}
    base = int(state.get("attempt_base", 0)) if isinstance(state, dict) else 0
    if attempt - base >= int(policy.get("max_attempts", 1)) + settings.JETADMIN_MAX_LEASE_LOSSES:
        error = {
            "code": "worker_lost",
            "message": f"The worker running {node_id!r} was lost {attempt - base} times; giving up.",
            "attempt": attempt,
        }
        return (
            rt._retry_db(lambda: rt._fail(rt.Attempt(run, node_id, iteration, run_id, owner, attempt), error))
            is not None
        )

    def requeue() -> bool:
        fx = rt.Effects()
        with transaction.atomic():
            changed = NodeRun.objects.filter(
                pk=run_id, status=RUNNING, lease_owner=owner, lease_expires_at__lt=now
            ).update(
                status=QUEUED,
                deferred=False,
                available_at=rt.requeue_at(now),
                lease_owner="",
                lease_expires_at=None,
            )
            if changed:
                fx.node_event(iid, node_id, iteration, QUEUED, attempt=attempt, reason="lease_expired")
                fx.enqueue.append((iid, node_id, iteration))
            fx.write()
            fx.after_commit()
        return bool(changed)

    requeued = rt._retry_db(requeue)
    if requeued:
        rt.logger.warning(
            "lease of %s[%s] in run %s (owner %s) expired: queued again", node_id, iteration, iid, owner
        )
    return requeued


def _complete_stuck_scopes(limit: int) -> int:
    """Finish what a worker that died right after a commit left undone: a run, iteration or loop whose
    nodes are all terminal but which was never closed. Each completion is itself conditional."""
    from django.db.models import Exists, OuterRef

    count = 0
    open_nodes = NodeRun.objects.filter(instance_id=OuterRef("pk"), status__in=NODE_OPEN)
    for iid in (
        WorkflowInstance.objects.filter(status__in=INSTANCE_OPEN)
        .exclude(Exists(open_nodes))
        .values_list("id", flat=True)[:limit]
    ):
        rt.complete_scope(str(iid), "")
        count += 1
    body_open = NodeRun.objects.filter(
        instance_id=OuterRef("instance_id"), iteration=OuterRef("iteration"), status__in=NODE_OPEN
    ).exclude(node_type=rt.LOOP_HEAD)
    heads = (
        NodeRun.objects.filter(node_type=rt.LOOP_HEAD, status=RUNNING)
        .exclude(Exists(body_open))
        .values_list("instance_id", "iteration")[:limit]
    )
    for iid, key in heads:
        rt.complete_scope(str(iid), key)
        count += 1
    waits = NodeRun.objects.filter(
        instance_id=OuterRef("pk"), status=WAITING, node_type__in=settling.WAITS_OUTSIDE
    )
    busy = NodeRun.objects.filter(instance_id=OuterRef("pk"), status__in=(QUEUED, RUNNING)).exclude(
        node_type=rt.LOOP_HEAD
    )
    idle = WorkflowInstance.objects.filter(status=RUNNING).filter(Exists(waits)).exclude(Exists(busy))
    for iid in idle.values_list("id", flat=True)[:limit]:  # its other branches ended: now it only waits
        fx = rt.Effects()
        with transaction.atomic():
            rt._mark_waiting(str(iid), fx)
            fx.write()
            fx.after_commit()
    for iid, loop_id, outer in NodeRun.objects.filter(
        node_type="loop", status=WAITING, remaining=0
    ).values_list("instance_id", "node_id", "iteration")[:limit]:
        rt._finish_loop(rt.run_data(str(iid)), loop_id, outer)
        count += 1
    return count
