"""Paused worker: a worker frozen (SIGSTOP) past its lease loses the node to another, and its late
save changes nothing.

Two ``celery worker`` processes with one child each, a 1 s lease, the reconciler and an API server on
a private Redis. The run is ``slow`` (ledger side effect, then 4 s of work) → ``after``. Once ``slow``
is running and has written its ledger row, the worker holding it is frozen with SIGSTOP on its whole
process group (its lease-renewal thread stops with it). The lease runs out, the reconciler queues the
node again, the other worker claims it (attempt 2), runs it (same ledger row: ``executions`` = 2) and
finishes the run. Then the frozen worker is resumed with SIGCONT: its handler returns and its save,
guarded by the lease owner, affects no row — the task returns ``None`` (``FAULT-TASK-END`` in its log),
the node keeps attempt 2's output, and the journal has exactly one ``node.succeeded`` for ``slow``.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable

from django.db import connection

from apps.tenancy import services as tenancy
from apps.tenancy.models import Tenant, User
from apps.workflows.models import InstanceEvent, NodeRun, WorkflowInstance
from jetadmin import embedded
from tests.conftest import subprocess_env
from tests.fault import faultnodes, harness
from tests.fault.conftest import requirements

pytestmark = requirements()

LEASE_S = 1.0
WORK_S = 4.0
GRAPH = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "slow", "type": faultnodes.NODE_TYPE, "inputs": {"after_ms": int(WORK_S * 1000)}},
        {"id": "after", "type": faultnodes.NODE_TYPE},
    ],
    "edges": [{"source": "start", "target": "slow"}, {"source": "slow", "target": "after"}],
}


def _ledger(key: str) -> tuple[int, int, int] | None:
    """(executions, first pid, last pid) of a ledger key."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT executions, first_pid, last_pid FROM fault_ledger WHERE key = %s",
            [key],
        )
        row = cursor.fetchone()
    return (int(row[0]), int(row[1]), int(row[2])) if row else None


def test_frozen_worker_past_its_lease_saves_nothing(
    ledger_in_test_db: harness.CursorFactory,
    stack: harness.Stack,
    make_user: Callable[..., User],
    make_tenant: Callable[..., Tenant],
) -> None:
    began = time.monotonic()
    embedded.stop()
    redis = stack.redis_server()
    env = harness.fault_env(
        subprocess_env(), REDIS_URL=redis.url, JETADMIN_LEASE_S=str(LEASE_S), JETADMIN_REQUEUE_AFTER_S="3"
    )
    user = make_user()
    tenant = make_tenant("Fault pause", owner=user)
    _, token = tenancy.auth_token_create(user=user)
    tid = str(tenant.id)
    # One child each: a busy worker holds no second message, so the node queued again after the
    # lease ran out can only go to the other worker.
    workers = [stack.worker(f"w{i}", env, concurrency=1) for i in range(2)]
    reconciler = stack.reconciler(env)
    _, url = stack.server(env)
    stack.wait_ready(workers)
    api = harness.Api(url, token)
    status, body = api.request("POST", f"/api/v1/tenants/{tid}/workflows/", {"name": "pause", "graph": GRAPH})
    assert status == 201, body
    status, body = api.request("POST", f"/api/v1/tenants/{tid}/workflows/{body['id']}/execute/", {})
    assert status == 202, body
    iid = str(body["instance_id"])
    key = f"{iid}:slow"
    slow = NodeRun.objects.filter(instance_id=iid, node_id="slow")

    # 1. slow is running and its side effect is written: freeze the worker that holds it.
    harness.wait_for(
        "slow to run and write its ledger row",
        lambda: slow.filter(status="running").exists() and _ledger(key) is not None,
        timeout=30,
        interval=0.05,
    )
    owner = slow.values_list("lease_owner", flat=True).get()
    owner_pid = harness.lease_pid(owner)
    assert owner_pid is not None, owner
    frozen = next(w for w in workers if w.owns(owner_pid))
    other = next(w for w in workers if w is not frozen)
    frozen.signal_group(signal.SIGSTOP)
    frozen_at = time.monotonic()

    # 2. The lease runs out, the reconciler queues slow again, the other worker runs it to the end.
    instance = WorkflowInstance.objects.filter(pk=iid)
    harness.wait_for(
        "the other worker to finish the run",
        lambda: instance.filter(status="succeeded").exists(),
        timeout=40,
    )
    taken_over_s = round(time.monotonic() - frozen_at, 1)
    reclaimed = slow.get()
    assert reclaimed.attempt == 2 and reclaimed.status == "succeeded", (reclaimed.attempt, reclaimed.status)
    assert other.owns(reclaimed.output["pid"]), reclaimed.output
    ledger_before = _ledger(key)
    assert ledger_before is not None and ledger_before[0] == 2, ledger_before
    assert frozen.owns(ledger_before[1]) and other.owns(ledger_before[2]), ledger_before

    # 3. Resume the frozen worker: its handler returns, its save must affect no row. Its task is slow's,
    # or start's when it ran slow right after start in the same task (a chain's inline successor).
    pattern = re.compile(
        rf"{faultnodes.TASK_END} pid=(\d+) args=\['{iid}', '\w+', ''\] state=(\w+) retval=([^\x22\n]*)"
    )
    ended_before = len(pattern.findall(frozen.text()))
    frozen.signal_group(signal.SIGCONT)
    harness.wait_for(
        "the resumed worker to end its task",
        lambda: len(pattern.findall(frozen.text())) > ended_before,
        timeout=30,
    )
    match = list(pattern.finditer(frozen.text()))[ended_before]
    time.sleep(1.0)  # anything it would still do after its task (lease renewal, broadcasts) has happened

    events = list(
        InstanceEvent.objects.filter(instance_id=iid, node_id="slow")
        .order_by("id")
        .values_list("type", "data")
    )
    types = [t for t, _ in events]
    final = slow.get()
    figures = {
        "lease_s": LEASE_S,
        "node_work_s": WORK_S,
        "taken_over_after_freeze_s": taken_over_s,
        "frozen_task_pid": int(match.group(1)),
        "frozen_task_state": match.group(2),
        "frozen_task_returned": match.group(3),
        "slow_events": types,
        "slow_attempt": final.attempt,
        "ledger_rows_for_slow": 1 if _ledger(key) else 0,
        "ledger_executions_for_slow": (_ledger(key) or (0,))[0],
        "after_executions": (_ledger(f"{iid}:after") or (0,))[0],
        "instance_status": instance.values_list("status", flat=True).get(),
        "reconciler_exits": stack.exits(reconciler),
        "duration_s": round(time.monotonic() - began, 1),
    }
    harness.report("paused_worker", figures)

    assert figures["frozen_task_pid"] == owner_pid, figures
    # run_task returns None when the claim or the lease-guarded save affected no row.
    assert match.group(2) == "SUCCESS" and match.group(3) == "None", figures
    assert final.status == "succeeded" and final.attempt == 2, figures
    assert final.output == reclaimed.output and other.owns(final.output["pid"]), (final.output, figures)
    assert types.count("node.succeeded") == 1, figures
    assert "node.failed" not in types and "node.canceled" not in types, figures  # one terminal event
    assert types.count("node.running") == 2, figures
    lease_requeues = [d for t, d in events if t == "node.queued" and d.get("reason") == "lease_expired"]
    assert len(lease_requeues) == 1, figures
    assert _ledger(key) == ledger_before, figures  # one row, executions 2: the resumed run wrote nothing more
    assert figures["after_executions"] == 1, figures
    assert figures["instance_status"] == "succeeded", figures
    assert frozen.alive() and other.alive(), figures
