"""Fair sharing on shared workers: one tenant's flood does not starve another tenant.

Two real ``celery worker`` processes (2 x 4 slots) and a reconciler process, on PostgreSQL + Redis.
Tenant A starts 500 runs at once; tenant B then starts 10. The property: B's runs are not queued
behind A's backlog. Two measures, both taken in the same test on the same workers, so a slow or busy
machine moves both sides alike:

* B's 10 runs behind the flood take at most ``BOUND_RATIO`` times as long as B's 10 runs alone
  (the baseline, measured first), plus ``SLACK_S`` for scheduling noise on a small box;
* when B's last run ends, A has finished at most ``A_DONE_MAX`` of its 500 runs: a queue that served
  A's backlog first would finish (almost) all of them before B's.

A's running nodes are sampled on every poll; the peak must stay near the per-tenant limit.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.tenancy import services as tenancy
from apps.workflows import services
from apps.workflows.engine import fairness
from apps.workflows.models import NodeRun, WorkflowInstance
from tests.conftest import ROOT, _stop, subprocess_env
from tests.workflows.test_distributed import workers as workers

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.REDIS_URL,
        reason="worker processes need the distributed stack (DATABASE_URL=postgres..., REDIS_URL)",
    ),
]

LIMIT = 4  # running nodes per tenant, of 8 worker slots
FLOOD = 500
BOUND_RATIO = 3.0  # B behind the flood vs B alone
SLACK_S = 2.0
A_DONE_MAX = FLOOD // 4  # A alone needs ~FLOOD * 3 * STEP_S / LIMIT = 75 s; B needs a few seconds
STEP_S = 0.2


def _graph(steps: int = 3) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "start"}]
    edges = []
    prev = "start"
    for i in range(steps):
        nodes.append({"id": f"s{i}", "type": "sleep", "inputs": {"seconds": STEP_S}})
        edges.append({"from": prev, "to": f"s{i}"})
        prev = f"s{i}"
    nodes.append({"id": "end", "type": "end", "inputs": {"output": "ok"}})
    edges.append({"from": prev, "to": "end"})
    return {"nodes": nodes, "edges": edges}


@pytest.fixture
def reconciler(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = tmp_path / "reconciler.log"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "reconcile", "--every", "0.25"],
        cwd=ROOT,
        env=subprocess_env(JETADMIN_TENANT_MAX_RUNNING_NODES=str(LIMIT)),
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    yield proc
    _stop(proc)
    print(f"\nreconciler log (tail):\n{log.read_text(errors='replace')[-3000:]}")


def _finish_time(
    ids: list[Any], started: float, timeout: float, sample: Callable[[], None] | None = None
) -> float:
    deadline = started + timeout
    while time.monotonic() < deadline:
        if sample:
            sample()
        done = WorkflowInstance.objects.filter(pk__in=ids, status="succeeded").count()
        if done == len(ids):
            return time.monotonic() - started
        time.sleep(0.05)
    statuses = list(WorkflowInstance.objects.filter(pk__in=ids).values_list("status", flat=True))
    open_nodes = list(
        NodeRun.objects.filter(instance_id__in=ids, status__in=["queued", "running"]).values_list(
            "node_id", "status", "deferred", "available_at", "attempt"
        )
    )
    raise AssertionError(
        f"not finished within {timeout:.1f} s (now {timezone.now()}): {statuses}; open nodes: {open_nodes}"
    )


def test_a_flooding_tenant_does_not_starve_another(workers, reconciler, make_user, make_tenant, settings):
    settings.JETADMIN_TENANT_MAX_RUNNING_NODES = LIMIT
    fairness.clear()
    workers(count=2, concurrency=4, JETADMIN_TENANT_MAX_RUNNING_NODES=str(LIMIT))
    user_a, user_b = make_user(), make_user()
    tenant_a, tenant_b = make_tenant("Flood", owner=user_a), make_tenant("Quiet", owner=user_b)
    actor_a, actor_b = tenancy.Actor(user=user_a), tenancy.Actor(user=user_b)
    flow_a = services.workflow_create(actor=actor_a, tenant=tenant_a, name="bulk", graph=_graph())
    flow_b = services.workflow_create(actor=actor_b, tenant=tenant_b, name="report", graph=_graph())

    t0 = time.monotonic()
    alone = [services.workflow_execute(actor=actor_b, workflow=flow_b).id for _ in range(10)]
    baseline = _finish_time(alone, t0, 60)
    bound = BOUND_RATIO * baseline + SLACK_S

    flood = [services.workflow_execute(actor=actor_a, workflow=flow_a).id for _ in range(FLOOD)]
    running_a: list[int] = []

    def sample_a() -> None:
        running_a.append(NodeRun.objects.filter(instance__tenant=tenant_a, status="running").count())

    t1 = time.monotonic()
    quiet = [services.workflow_execute(actor=actor_b, workflow=flow_b).id for _ in range(10)]
    behind_flood = _finish_time(quiet, t1, bound, sample_a)
    a_done = WorkflowInstance.objects.filter(pk__in=flood, status="succeeded").count()
    a_open = WorkflowInstance.objects.filter(pk__in=flood, status__in=["queued", "running"]).count()
    print(
        f"\nfairness: B's 10 runs alone {baseline:.2f} s; behind A's {FLOOD} {behind_flood:.2f} s "
        f"(ratio {behind_flood / baseline:.1f}, bound {bound:.1f} s); A finished {a_done}/{FLOOD} by then, "
        f"{a_open} still open; A running: peak {max(running_a)} over {len(running_a)} samples"
    )
    assert a_done <= A_DONE_MAX and a_open >= FLOOD - A_DONE_MAX, "B waited for A's backlog"
    assert len(running_a) >= 5 and max(running_a) > 0, "A's running nodes were never seen"
    # The limit is checked in the claim: concurrent claims may overshoot it a little, never by much.
    assert max(running_a) <= LIMIT + 2, running_a
    WorkflowInstance.objects.filter(pk__in=flood, status__in=["queued", "running"]).update(status="canceled")
