"""Fair shares of saturated workers, with the default policy (no per-tenant limits set).

Two real ``celery worker`` processes (2 x 4 slots) and a reconciler process, on PostgreSQL + Redis.
Every bound is measured against something taken in the same test on the same workers, so a slow or
busy machine moves both sides alike:

* A floods 2,000 runs of a 0.2 s node (the 8 slots finish 40 a second, fewer than are started); B's
  single run, started right after, finishes within ``BOUND_RATIO`` times its own time on idle workers
  (plus ``SLACK_S`` of scheduling noise), while most of A's runs are still open — a first-in-first-out
  queue would have made B wait for nearly all of them; and all 2,001 end.
* A (weight 2) and B (weight 1) both flood: the runs completed after both have all their runs
  waiting, and while both still have some, split about 2:1.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from apps.tenancy import services as tenancy
from apps.workflows import services
from apps.workflows.engine import runtime
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

FLOOD = 2000
BOUND_RATIO = 3.0
SLACK_S = 0.5
OPEN = ("queued", "running", "waiting")


def chain(*sleeps: float) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "start"}]
    edges = []
    prev = "start"
    for i, seconds in enumerate(sleeps):
        nodes.append({"id": f"s{i}", "type": "sleep", "inputs": {"seconds": seconds}})
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
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    yield proc
    _stop(proc)


def run_alone(actor: tenancy.Actor, flow: Any) -> float:
    """One run on otherwise idle workers, trigger → end, from the run's own timestamps."""
    instance = services.workflow_execute(actor=actor, workflow=flow)
    instance, timed_out = services.instance_wait(instance=instance, timeout_s=60)
    assert not timed_out and instance.status == "succeeded", instance.error
    return took(instance)


def took(instance: WorkflowInstance) -> float:
    assert instance.ended_at is not None, instance.status
    return (instance.ended_at - instance.created_at).total_seconds()


def wait_until(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


def cancel_open(ids: list[Any]) -> None:
    def cancel() -> None:
        WorkflowInstance.objects.filter(pk__in=ids, status__in=OPEN).update(status="canceled")
        NodeRun.objects.filter(instance_id__in=ids, status__in=["pending", *OPEN]).update(status="canceled")

    runtime._retry_db(cancel)  # a worker may be settling rows at this moment: a deadlock is retried


def test_a_quiet_tenants_run_is_not_stuck_behind_a_flood(workers, reconciler, make_user, make_tenant):
    workers(count=2, concurrency=4)
    user_a, user_b = make_user(), make_user()
    tenant_a, tenant_b = make_tenant("Flood", owner=user_a), make_tenant("Quiet", owner=user_b)
    actor_a, actor_b = tenancy.Actor(user=user_a), tenancy.Actor(user=user_b)
    flow_a = services.workflow_create(actor=actor_a, tenant=tenant_a, name="bulk", graph=chain(0.2))
    flow_b = services.workflow_create(
        actor=actor_b, tenant=tenant_b, name="report", graph=chain(0.1, 0.1, 0.1)
    )

    run_alone(actor_b, flow_b)  # warm: imports, connections
    idle = statistics.median(run_alone(actor_b, flow_b) for _ in range(3))

    flood = [services.workflow_execute(actor=actor_a, workflow=flow_a).id for _ in range(FLOOD)]
    a_open_at_start = WorkflowInstance.objects.filter(pk__in=flood, status__in=OPEN).count()
    quiet = services.workflow_execute(actor=actor_b, workflow=flow_b)
    quiet, timed_out = services.instance_wait(instance=quiet, timeout_s=120)
    a_open_at_end = WorkflowInstance.objects.filter(pk__in=flood, status__in=OPEN).count()
    behind = took(quiet) if not timed_out else float("inf")
    print(
        f"\nfairness: B's run alone {idle:.2f} s (median of 3); behind A's flood {behind:.2f} s "
        f"(ratio {behind / idle:.1f}); A's runs open when B started {a_open_at_start}, when B ended "
        f"{a_open_at_end} of {FLOOD}"
    )
    try:
        assert not timed_out and quiet.status == "succeeded", quiet.error
        assert a_open_at_start >= FLOOD // 4, "A's flood was mostly over before B started: nothing tested"
        assert a_open_at_end >= FLOOD // 5, "B waited for A's backlog"
        assert behind <= BOUND_RATIO * idle + SLACK_S, (behind, idle)
        wait_until(
            "all of A's runs to end",
            lambda: not WorkflowInstance.objects.filter(pk__in=flood, status__in=OPEN).exists(),
            timeout=300,
        )
        statuses = set(WorkflowInstance.objects.filter(pk__in=flood).values_list("status", flat=True))
        assert statuses == {"succeeded"}, statuses
    finally:
        cancel_open(flood)


def test_weighted_tenants_complete_runs_in_proportion(workers, reconciler, make_user, make_tenant):
    workers(count=2, concurrency=4)
    user_a, user_b = make_user(), make_user()
    tenant_a, tenant_b = make_tenant("Heavy", owner=user_a), make_tenant("Light", owner=user_b)
    tenant_a.share_weight = 2
    tenant_a.save()
    actor_a, actor_b = tenancy.Actor(user=user_a), tenancy.Actor(user=user_b)
    graph = chain(0.2)
    flow_a = services.workflow_create(actor=actor_a, tenant=tenant_a, name="a", graph=graph)
    flow_b = services.workflow_create(actor=actor_b, tenant=tenant_b, name="b", graph=graph)
    runs_a: list[Any] = []
    runs_b: list[Any] = []
    for _ in range(300):  # both flood, interleaved: neither is first in line
        runs_a.append(services.workflow_execute(actor=actor_a, workflow=flow_a).id)
        runs_b.append(services.workflow_execute(actor=actor_b, workflow=flow_b).id)

    def done(ids: list[Any]) -> int:
        return WorkflowInstance.objects.filter(pk__in=ids, status="succeeded").count()

    try:
        # Count from the moment both have all their runs waiting, after what was already in the broker
        # or running then (first come, first served) has ended.
        start = done(runs_a) + done(runs_b)
        wait_until("the backlog of the start", lambda: done(runs_a) + done(runs_b) >= start + 40, 120)
        a0, b0 = done(runs_a), done(runs_b)
        wait_until("150 more completed runs", lambda: done(runs_a) + done(runs_b) >= a0 + b0 + 150, 120)
        a, b = done(runs_a) - a0, done(runs_b) - b0
        open_a = WorkflowInstance.objects.filter(pk__in=runs_a, status__in=OPEN).count()
        open_b = WorkflowInstance.objects.filter(pk__in=runs_b, status__in=OPEN).count()
        print(
            f"\nweights 2:1: completed {a}:{b} (ratio {a / max(b, 1):.2f}) after both were flooding "
            f"({a0}:{b0} before); still open {open_a}:{open_b}"
        )
        assert open_a and open_b, "one tenant ran out of work: the split says nothing"
        assert 1.6 <= a / b <= 2.4, (a, b)
    finally:
        cancel_open(runs_a + runs_b)
