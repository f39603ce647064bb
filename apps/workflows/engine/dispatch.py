"""Admission to the broker: weighted fair shares when the workers are saturated, nothing in the way
when they are not.

The broker queue is first in, first out: whatever is in it runs in that order, so a tenant that starts
2,000 runs at once would put every other tenant's work behind its own. jetadmin therefore keeps the
queue short and lets the database hold the rest:

* A node that becomes ready is published at once while the broker's backlog (messages no worker has
  taken yet) is below ``JETADMIN_DISPATCH_BACKLOG``. A tenant alone on idle workers gets all of them,
  and the hot path pays one cached length check.
* Otherwise it is **held**: it stays ``queued`` in the database, marked ``HELD``, with no message.
* Held nodes are dispatched into the room left in the backlog, after each task a worker finishes and at
  every reconciler pass, tenant by tenant in proportion to each tenant's weight
  (``Tenant.share_weight``, default 1): of N free places, a tenant with held work gets
  N * weight / (sum of the weights) (the remainder drawn by weight), each tenant's oldest held node first.

So a quiet tenant's run waits for at most one refill and one short backlog, however much a flooding
tenant has queued, and two flooding tenants with weights 2 and 1 complete runs about 2:1. The explicit
per-tenant limits of :mod:`fairness` (running nodes, starts per minute) stay available, off by default.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

logger = logging.getLogger(__name__)

HELD = "~held"  # the lease_owner of a queued node kept out of the broker until a refill dispatches it
BACKLOG_CACHE_S = 0.01
IDLE_CHECK_S = 0.1

_state = threading.local()
_lock = threading.Lock()
_redis: dict[int, Any] = {}  # pid -> client (a forked child must not share its parent's socket)
_backlog = {"value": 0, "at": 0.0}


def target() -> int:
    return max(1, int(settings.JETADMIN_DISPATCH_BACKLOG))


def _queue() -> str:
    from jetadmin.celery import app

    return str(app.conf.task_default_queue or "celery")


def _measure_backlog() -> int:
    """Messages waiting in the broker's default queue (not yet taken by a worker)."""
    url = settings.CELERY_BROKER_URL
    if url.startswith("memory://"):
        from kombu.transport import memory

        queue = memory.Channel.queues.get(_queue())
        return int(queue.qsize()) if queue is not None else 0
    if not url.startswith(("redis://", "rediss://")):
        return 0  # another broker: no admission control, publish everything
    import redis

    client = _redis.get(os.getpid())
    if client is None:
        client = _redis[os.getpid()] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return int(client.llen(_queue()))


def backlog(*, fresh: bool = False) -> int:
    """The broker's backlog, measured at most every ``BACKLOG_CACHE_S`` per process; 0 if unknown."""
    now = time.monotonic()
    with _lock:
        if not fresh and now - _backlog["at"] < BACKLOG_CACHE_S:
            return int(_backlog["value"])
    try:
        value = _measure_backlog()
    except Exception as exc:  # the broker is down: publishing will fail and the reconciler resends
        logger.debug("could not measure the broker backlog: %s", exc)
        value = 0
    with _lock:
        _backlog.update(value=value, at=now)
    return value


def published(count: int) -> None:
    """Count our own publishes into the cached backlog until the next measurement."""
    with _lock:
        _backlog["value"] += count


def should_hold() -> bool:
    """Whether a node released now waits in the database instead of going to the broker."""
    return backlog() >= target()


def _targets_q(targets: Iterable[tuple[str, str, str]]) -> Q:
    q = Q()
    for instance_id, node_id, iteration in targets:
        q |= Q(instance_id=instance_id, node_id=node_id, iteration=iteration)
    return q


def hold(targets: list[tuple[str, str, str]]) -> int:
    """Mark released nodes (committed as queued, not yet published) as held."""
    from apps.workflows.engine.states import QUEUED
    from apps.workflows.models import NodeRun

    return NodeRun.objects.filter(_targets_q(targets), status=QUEUED, lease_owner="").update(
        lease_owner=HELD, deferred=True
    )


class Shares:
    """Weighted shares of places, one place at a time: smooth weighted round robin.

    For each place every tenant with held work earns its weight in credit, the richest takes the place
    and pays the sum of the weights. With weights 2 and 1 the places go A, B, A, A, B, A, …: exactly in
    proportion, even when a worker frees one place at a time. A tenant that holds nothing more drops out
    and loses its credit (no banking while idle). Each process keeps its own credits; the union of
    several processes' picks is in proportion too.
    """

    def __init__(self) -> None:
        self.credit: dict[Any, int] = {}

    def split(self, room: int, held: dict[Any, int], weights: dict[Any, int]) -> dict[Any, int]:
        """``{tenant: places}`` for ``room`` places; never more than a tenant holds."""
        self.credit = {t: c for t, c in self.credit.items() if held.get(t)}
        out = dict.fromkeys(held, 0)
        for _ in range(min(room, sum(held.values()))):
            open_ = [t for t in held if out[t] < held[t]]
            for t in open_:
                self.credit[t] = self.credit.get(t, 0) + weights.get(t, 1)
            pick = max(open_, key=lambda t: self.credit[t])
            self.credit[pick] -= sum(weights.get(t, 1) for t in open_)
            out[pick] += 1
        return {t: n for t, n in out.items() if n}


_shares = Shares()


def refill(*, limit: int | None = None) -> int:
    """Dispatch held nodes into the free room of the backlog, in weighted fair shares; returns how many."""
    return _refill(limit=limit)[0]


def _refill(*, limit: int | None = None, min_room: int = 1) -> tuple[int, bool | None]:
    """(nodes dispatched, whether any node was held when it looked; None if it did not look).

    The backlog is measured first (one Redis command): with less room than ``min_room`` nothing more
    is asked of the database, so workers refill in batches rather than one query round per node.
    """
    from apps.workflows.engine import runtime
    from apps.workflows.engine.states import QUEUED
    from apps.workflows.models import NodeRun

    room = target() - backlog(fresh=True)
    if limit is not None:
        room = min(room, limit)
    if room < max(1, min_room):
        return 0, None
    held_rows = NodeRun.objects.filter(status=QUEUED, lease_owner=HELD)
    # One statement: how many each tenant holds, and its weight.
    census = list(
        held_rows.values("instance__tenant_id", "instance__tenant__share_weight")
        .annotate(n=Count("id"))
        .values_list("instance__tenant_id", "instance__tenant__share_weight", "n")
    )
    if not census:
        return 0, False
    held = {tenant_id: n for tenant_id, _, n in census}
    weights = {tenant_id: weight for tenant_id, weight, _ in census}
    now = timezone.now()
    sent: list[tuple[str, str, str]] = []
    with transaction.atomic():
        with _lock:
            split = _shares.split(room, held, weights)
        for tenant_id, count in split.items():
            picked = list(
                held_rows.select_for_update(skip_locked=True, of=("self",))
                .filter(instance__tenant_id=tenant_id)
                .order_by("available_at", "id")
                .values_list("id", "instance_id", "node_id", "iteration")[:count]
            )
            if not picked:
                continue
            NodeRun.objects.filter(pk__in=[p[0] for p in picked], lease_owner=HELD).update(
                lease_owner="", deferred=False, available_at=runtime.requeue_at(now)
            )
            sent += [(str(i), n, it) for _, i, n, it in picked]
    if sent:
        runtime.publish(sent)
    return len(sent), True


def after_task() -> None:
    """A worker finished a task: refill the backlog from held work. Checked every ``BACKLOG_CACHE_S``
    while this process last found work held, else every ``IDLE_CHECK_S`` (work is only held while the
    workers are saturated, so a process that has seen none for a while pays one query a tenth second)."""
    now = time.monotonic()
    every = BACKLOG_CACHE_S if getattr(_state, "found", False) else IDLE_CHECK_S
    if now - getattr(_state, "last", 0.0) < every:
        return
    _state.last = now
    try:
        _, found = _refill(min_room=target() // 2)
        if found is not None:
            _state.found = found
    except Exception:  # never fail the task that just finished; the reconciler refills too
        logger.exception("dispatching held nodes failed")
