"""Crash test: workers SIGKILLed every few seconds while 200 ten-node runs go through.

Two real ``celery worker`` processes (prefork, 4 children each), a reconciler
(``manage.py reconcile --every 0.5``), an API server as the client, and a private Redis, all on
pytest-django's test database. For two minutes one worker (alternately) has its whole process group
SIGKILLed every 3 s and is started again at once, while the 200 runs are started through the API at
an even pace over the first 100 s, so the kills keep landing on busy workers. Every node writes the
idempotent ledger (``faultnodes``): killed after its side effect but before its save, it runs again.

Acceptance: 200/200 runs succeed, no node is lost, no ledger key has two rows, no run is stuck, and
each node has exactly one ``node.succeeded`` event. The figures (kills, repeated executions...) are
printed at the end of the run.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

from django.db import connection

from apps.tenancy import services as tenancy
from apps.tenancy.models import Tenant, User
from apps.workflows.models import NodeRun
from jetadmin import embedded
from tests.conftest import subprocess_env
from tests.fault import harness
from tests.fault.conftest import requirements

pytestmark = requirements()

RUNS = 200
KILL_PERIOD_S = 120.0
KILL_EVERY_S = 3.0
START_PERIOD_S = 100.0
LEASE_S = "2"
REQUEUE_AFTER_S = "5"


def test_workers_killed_every_3s_lose_and_duplicate_nothing(
    ledger_in_test_db: harness.CursorFactory,
    stack: harness.Stack,
    make_user: Callable[..., User],
    make_tenant: Callable[..., Tenant],
) -> None:
    began = time.monotonic()
    embedded.stop()  # only the worker processes may consume
    redis = stack.redis_server()
    env = harness.fault_env(
        subprocess_env(),
        REDIS_URL=redis.url,
        JETADMIN_LEASE_S=LEASE_S,
        JETADMIN_REQUEUE_AFTER_S=REQUEUE_AFTER_S,
    )
    user = make_user()
    tenant = make_tenant("Fault crash", owner=user)
    _, token = tenancy.auth_token_create(user=user)
    tid = str(tenant.id)

    workers = [stack.worker(f"w{i}", env) for i in range(2)]
    reconciler = stack.reconciler(env)
    _, url = stack.server(env)
    stack.wait_ready(workers)
    api = harness.Api(url, token)
    status, body = api.request(
        "POST", f"/api/v1/tenants/{tid}/workflows/", {"name": "crash", "graph": harness.ledger_dag(30, 50)}
    )
    assert status == 201, body
    execute = f"/api/v1/tenants/{tid}/workflows/{body['id']}/execute/"

    started: list[str] = []
    refused: list[tuple[int, Any]] = []
    kills = 0
    kills_mid_node = 0
    nodes_running_at_kills = 0
    t0 = time.monotonic()
    next_kill = t0 + KILL_EVERY_S
    while (now := time.monotonic()) < t0 + KILL_PERIOD_S:
        due = min(RUNS, int((now - t0) / START_PERIOD_S * RUNS) + 1)
        while len(started) + len(refused) < due:
            status, body = api.request("POST", execute, {"input": {"n": len(started)}})
            if status == 202:
                started.append(str(body["instance_id"]))
            else:
                refused.append((status, body))
        if now >= next_kill:
            slot = kills % 2
            victim = workers[slot]
            owners = NodeRun.objects.filter(instance__tenant=tenant, status="running").values_list(
                "lease_owner", flat=True
            )
            hit = sum(1 for o in owners if (pid := harness.lease_pid(o)) and victim.owns(pid))
            victim.signal_group(signal.SIGKILL)
            victim.popen.wait(timeout=20)
            kills += 1
            kills_mid_node += int(hit > 0)
            nodes_running_at_kills += hit
            workers[slot] = stack.worker(f"w{slot}-gen{kills}", env)
            next_kill += KILL_EVERY_S
        time.sleep(0.05)
    kill_phase_s = round(time.monotonic() - t0, 1)

    assert not refused, f"the API refused runs: {refused[:3]}"
    stack.wait_ready(workers)
    statuses = harness.wait_instances(connection.cursor, tid, RUNS, timeout=180)
    drained_s = round(time.monotonic() - t0 - kill_phase_s, 1)
    figures = harness.outcome(connection.cursor, tid, harness.DAG_NODES)
    figures.update(
        runs_started=len(started),
        nodes_per_run=len(harness.DAG_NODES),
        kills=kills,
        kills_that_hit_a_running_node=kills_mid_node,
        nodes_running_at_kills=nodes_running_at_kills,
        reconciler_exits=stack.exits(reconciler),
        kill_phase_s=kill_phase_s,
        drain_after_kills_s=drained_s,
        duration_s=round(time.monotonic() - began, 1),
    )
    harness.report("crash", figures)

    diagnostics = f"{figures}\nopen nodes: {harness.open_nodes(connection.cursor, tid)}"
    assert statuses == {"succeeded": RUNS}, diagnostics
    assert figures["runs"] == RUNS and figures["stuck_runs"] == 0, diagnostics
    assert figures["node_runs_expected"] == RUNS * len(harness.DAG_NODES), diagnostics
    assert figures["lost_nodes"] == 0, diagnostics
    assert figures["ledger_rows"] == RUNS * len(harness.DAG_NODES), diagnostics
    assert figures["duplicate_ledger_rows"] == 0, diagnostics
    assert figures["missing_ledger"] == 0 and figures["extra_ledger"] == 0, diagnostics
    assert figures["success_events"] == RUNS * len(harness.DAG_NODES), diagnostics
    assert figures["duplicate_success_events"] == 0 and figures["failed_events"] == 0, diagnostics
    assert kills >= int(KILL_PERIOD_S / KILL_EVERY_S) - 1, diagnostics
    assert kills_mid_node > 0, "no kill landed while a node was running: the test exercised nothing"
