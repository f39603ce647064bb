"""Broker and database faults: Redis killed and restarted empty, PostgreSQL stopped and started mid-run.

Each test starts its own servers on free ports (a ``redis-server`` without persistence; for the
database test a PostgreSQL cluster ``initdb``-ed into a temp dir), two ``celery worker`` processes,
the reconciler and an API server. It starts 30 runs of the ten-node ledger DAG through the API,
takes the service away for 5 s while many of them are mid-flight, keeps calling the API meanwhile
(starting a run, listing runs, ``/me``: every status code is recorded), brings the service back and
starts 30 more runs.

Acceptance: every run that exists at the end has succeeded, no node is lost, each node has one
``node.succeeded`` event and one ledger row (the effect's key is UNIQUE, so the row count alone proves
nothing: executions are counted separately, in the row's ``executions`` and the node's ``attempt``);
during the outage the API answers 503 (or, for a request that does not need the missing service,
succeeds) and never 500. And the outage must have hit work in flight — nodes running at the moment it
began (read just before) — and forced the recovery path it is about:

* Redis: more nodes were queued than the workers can hold (so some messages were in Redis when it
  was killed, and are gone), and the reconciler sent messages again; a Redis outage does not
  re-execute nodes (the database, which holds the truth, stayed up), so none is required;
* PostgreSQL: nodes whose effect was done when the database went away could not save, so they ran
  again after their lease expired (attempt 2, ``executions`` 2) while their effect stayed one row. The
  ledger nodes here sleep 300 ms after their effect, so a running node is almost always in that
  window when the database stops.

The ledger nodes' timing (``BEFORE_MS``/``AFTER_MS``) makes both likely on every run; the assertions
make sure they happened.

Workers and the reconciler run under a restart loop, as a process supervisor would run them: a
process that dies of the outage is started again, and the figures say how often that happened.

* Redis (``test_redis_killed_and_restarted_mid_run``): killing it loses every queued and unacked
  message; the reconciler (``JETADMIN_REQUEUE_AFTER_S``) must send them again. Runs use the pytest
  test database; the API server and the workers publish to the private Redis (the test process
  itself publishes nothing: its settings point at the suite's Redis).
* PostgreSQL (``test_postgres_stopped_and_started_mid_run``): ``pg_ctl stop -m immediate``, then
  ``start``. Everything of this test lives in its own cluster (migrated by ``manage.py migrate``,
  account made by ``manage.py shell``); the test reads the results with psycopg.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.db import connection

from apps.tenancy import services as tenancy
from apps.tenancy.models import Tenant, User
from jetadmin import embedded
from tests.conftest import subprocess_env
from tests.fault import faultnodes, harness
from tests.fault.conftest import requirements

pytestmark = requirements(postgres_server=True)

RUNS_BEFORE = 30  # started just before the outage: many are mid-flight when it begins
RUNS_AFTER = 30  # started once the service is back
START_EVERY_S = 0.1
OUTAGE_FOR_S = 5.0
PROBE_EVERY_S = 0.25
FAST_RECOVERY = {"JETADMIN_LEASE_S": "2", "JETADMIN_REQUEUE_AFTER_S": "3"}
WORKERS, CONCURRENCY = 2, 4  # prefetch multiplier 1: at most 8 messages are out of Redis at a time
# Each ledger node sleeps 20 ms before its effect and 300 ms after it. 30 runs of 10 nodes are ~12 s of
# work for 8 slots, started within 3 s: when the outage begins, every slot is busy (almost always past
# its node's effect) and a backlog of released nodes waits in Redis.
BEFORE_MS, AFTER_MS = 20, 300


@dataclass
class Outage:
    """What the client saw: runs accepted, and every answer given while the service was away."""

    accepted: list[str] = field(default_factory=list)
    not_accepted: list[tuple[int, Any]] = field(default_factory=list)
    during: list[tuple[str, str, int, Any]] = field(default_factory=list)  # method, path, status, body
    down_s: float = 0.0
    api_back_after_s: float | None = None
    in_flight: dict[str, int] = field(default_factory=dict)  # nodes running/queued as it began

    def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for method, path, status, _ in self.during:
            key = f"{method} {path.split('?')[0].rsplit('/', 2)[-2]} {status}"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def bad(self) -> list[tuple[str, str, int, Any]]:
        """Answers that are neither a success nor 503 (a 500, another 5xx, no answer at all)."""
        return [c for c in self.during if not (200 <= c[2] < 300 or c[2] == 503)]


def drive(
    api: harness.Api,
    tid: str,
    execute: str,
    take_down: Callable[[], None],
    bring_back: Callable[[], None],
    in_flight: Callable[[], dict[str, int]],
) -> Outage:
    """Start RUNS_BEFORE runs, count the nodes in flight, take the service away for OUTAGE_FOR_S while
    probing the API (a run start, a list of runs, ``/me``) every PROBE_EVERY_S, bring it back, start
    RUNS_AFTER runs."""
    seen = Outage()

    def start_runs(count: int) -> None:
        for n in range(count):
            status, body = api.request("POST", execute, {"input": {"n": n}})
            if status == 202:
                seen.accepted.append(str(body["instance_id"]))
            else:
                seen.not_accepted.append((status, body))
            time.sleep(START_EVERY_S)

    probes = [
        ("POST", execute, {"input": {"probe": True}}),
        ("GET", f"/api/v1/tenants/{tid}/workflows/instances/?page_size=5", None),
        ("GET", "/api/v1/me/", None),
    ]
    start_runs(RUNS_BEFORE)
    seen.in_flight = in_flight()
    take_down()
    down_at = time.monotonic()
    while time.monotonic() - down_at < OUTAGE_FOR_S:
        tick = time.monotonic()
        for method, path, body in probes:
            status, answer = api.request(method, path, body)
            seen.during.append((method, path, status, answer))
        time.sleep(max(0.0, PROBE_EVERY_S - (time.monotonic() - tick)))
    bring_back()
    back_at = time.monotonic()
    seen.down_s = round(back_at - down_at, 1)
    while time.monotonic() - back_at < 30:
        if api.request("GET", probes[1][1])[0] == 200:
            seen.api_back_after_s = round(time.monotonic() - back_at, 2)
            break
        time.sleep(0.1)
    start_runs(RUNS_AFTER)
    return seen


def check(figures: dict[str, Any], outage: Outage, statuses: dict[str, int], diagnostics: str) -> None:
    runs = figures["runs"]
    assert runs >= len(outage.accepted) > 0, diagnostics
    assert statuses == {"succeeded": runs}, diagnostics
    assert figures["stuck_runs"] == 0 and figures["lost_nodes"] == 0, diagnostics
    # one effect row per node (the UNIQUE key), whatever the executions (counted in each row)
    assert figures["ledger_rows"] == runs * len(harness.DAG_NODES), diagnostics
    assert figures["missing_ledger"] == 0 and figures["extra_ledger"] == 0, diagnostics
    assert figures["duplicate_success_events"] == 0 and figures["failed_events"] == 0, diagnostics
    assert outage.api_back_after_s is not None, f"the API did not recover: {diagnostics}"
    assert not outage.not_accepted, f"runs refused outside the outage: {outage.not_accepted[:3]}"
    assert outage.during, "nothing was asked of the API during the outage"
    assert outage.in_flight["running"] > 0, f"no node was running when the outage began: {outage.in_flight}"
    bad = [(m, p, s, str(b)[:300]) for m, p, s, b in outage.bad()]
    assert not bad, f"the API answered other than 2xx/503 during the outage ({len(bad)}x), e.g. {bad[:3]}"


def test_redis_killed_and_restarted_mid_run(
    ledger_in_test_db: harness.CursorFactory,
    stack: harness.Stack,
    make_user: Callable[..., User],
    make_tenant: Callable[..., Tenant],
) -> None:
    began = time.monotonic()
    embedded.stop()
    redis = stack.redis_server()
    env = harness.fault_env(subprocess_env(), REDIS_URL=redis.url, **FAST_RECOVERY)
    user = make_user()
    tenant = make_tenant("Fault redis", owner=user)
    _, token = tenancy.auth_token_create(user=user)
    tid = str(tenant.id)
    workers = [stack.worker(f"w{i}", env, CONCURRENCY, supervised=True) for i in range(WORKERS)]
    reconciler = stack.reconciler(env)
    _, url = stack.server(env)
    stack.wait_ready(workers)
    api = harness.Api(url, token)
    status, body = api.request(
        "POST",
        f"/api/v1/tenants/{tid}/workflows/",
        {"name": "redis", "graph": harness.ledger_dag(BEFORE_MS, AFTER_MS)},
    )
    assert status == 201, body
    execute = f"/api/v1/tenants/{tid}/workflows/{body['id']}/execute/"

    in_flight = lambda: harness.in_flight(connection.cursor, tid)  # noqa: E731
    outage = drive(api, tid, execute, redis.kill, redis.start, in_flight)
    statuses = harness.wait_instances(connection.cursor, tid, len(outage.accepted), timeout=120)
    figures = harness.outcome(connection.cursor, tid, harness.DAG_NODES)
    figures.update(
        runs_accepted=len(outage.accepted),
        runs_started_during_the_outage=figures["runs"] - len(outage.accepted),
        start_refusals=[(s, str(b)[:200]) for s, b in outage.not_accepted][:5],
        redis_down_s=outage.down_s,
        api_back_after_s=outage.api_back_after_s,
        api_during_outage=outage.statuses(),
        api_500s_during_outage=sum(1 for c in outage.during if c[2] == 500),
        api_500_example=next((str(c[3])[:300] for c in outage.during if c[2] == 500), None),
        nodes_in_flight_at_outage=outage.in_flight,
        reconciler_sent=stack.reconciler_sent(reconciler),
        reconciler_exits=stack.exits(reconciler),
        worker_exits=[stack.exits(w) for w in workers],
        duration_s=round(time.monotonic() - began, 1),
    )
    harness.report("redis_outage", figures)
    diagnostics = (
        f"{figures}\nopen nodes: {harness.open_nodes(connection.cursor, tid)}\n"
        f"reconciler log:\n{reconciler.tail(15)}"
    )
    check(figures, outage, statuses, diagnostics)
    # Running and reserved messages are unacked and held by the workers: at most WORKERS * CONCURRENCY.
    in_redis = outage.in_flight["queued"] - max(0, WORKERS * CONCURRENCY - outage.in_flight["running"])
    assert in_redis > 0, f"no message can have been in Redis when it was killed: {diagnostics}"
    assert figures["reconciler_sent"] > 0, f"the reconciler sent nothing again: {diagnostics}"


def _pg_cursor(url: str) -> harness.CursorFactory:
    @contextlib.contextmanager
    def factory() -> Iterator[Any]:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn, conn.cursor() as cursor:
            yield cursor

    return factory


ACCOUNT = """
import json
from apps.tenancy import services
from apps.tenancy.models import User
user = User.objects.create_user(username="fault", email="fault@example.com", password="fault-Pass-1234")
tenant = services.tenant_create(actor=services.Actor(user=user), name="Fault postgres")
_, raw = services.auth_token_create(user=user)
print("FAULT-ACCOUNT " + json.dumps({"tenant": str(tenant.id), "token": raw}))
"""


def test_postgres_stopped_and_started_mid_run(stack: harness.Stack) -> None:
    began = time.monotonic()
    embedded.stop()  # not needed for correctness (it serves the suite's database); saves CPU
    cluster = stack.pg_cluster()
    cluster.create_database()
    redis = stack.redis_server()
    env = harness.fault_env(
        subprocess_env(), DATABASE_URL=cluster.url(), REDIS_URL=redis.url, **FAST_RECOVERY
    )
    stack.run("migrate", ["migrate", "--noinput", "-v", "0"], env, timeout=300)
    out = stack.run("account", ["shell", "-c", ACCOUNT], env, timeout=120)
    account = json.loads(out[out.index("FAULT-ACCOUNT ") + len("FAULT-ACCOUNT ") :].splitlines()[0])
    tid, token = account["tenant"], account["token"]
    cursor = _pg_cursor(cluster.url())
    with cursor() as c:
        c.execute(faultnodes.CREATE_SQL)
    setup_s = round(time.monotonic() - began, 1)

    workers = [stack.worker(f"w{i}", env, CONCURRENCY, supervised=True) for i in range(WORKERS)]
    reconciler = stack.reconciler(env)
    server, url = stack.server(env)
    stack.wait_ready(workers)
    api = harness.Api(url, token)
    status, body = api.request(
        "POST",
        f"/api/v1/tenants/{tid}/workflows/",
        {"name": "pg", "graph": harness.ledger_dag(BEFORE_MS, AFTER_MS)},
    )
    assert status == 201, body
    execute = f"/api/v1/tenants/{tid}/workflows/{body['id']}/execute/"

    in_flight = lambda: harness.in_flight(cursor, tid)  # noqa: E731
    outage = drive(api, tid, execute, lambda: cluster.stop("immediate"), cluster.start, in_flight)
    statuses = harness.wait_instances(cursor, tid, len(outage.accepted), timeout=120)
    figures = harness.outcome(cursor, tid, harness.DAG_NODES)
    figures.update(
        runs_accepted=len(outage.accepted),
        runs_started_during_the_outage=figures["runs"] - len(outage.accepted),
        start_refusals=[(s, str(b)[:200]) for s, b in outage.not_accepted][:5],
        postgres_down_s=outage.down_s,
        api_back_after_s=outage.api_back_after_s,
        api_during_outage=outage.statuses(),
        api_503s_during_outage=sum(1 for c in outage.during if c[2] == 503),
        api_500s_during_outage=sum(1 for c in outage.during if c[2] == 500),
        api_500_example=next((str(c[3])[:300] for c in outage.during if c[2] == 500), None),
        nodes_in_flight_at_outage=outage.in_flight,
        reconciler_sent=stack.reconciler_sent(reconciler),
        reconciler_exits=stack.exits(reconciler),
        worker_exits=[stack.exits(w) for w in workers],
        setup_s=setup_s,
        duration_s=round(time.monotonic() - began, 1),
    )
    harness.report("postgres_outage", figures)
    diagnostics = (
        f"{figures}\nopen nodes: {harness.open_nodes(cursor, tid)}\n"
        f"reconciler log:\n{reconciler.tail(15)}\npostgres log:\n{cluster.log_tail()}"
    )
    check(figures, outage, statuses, diagnostics)
    # Nothing answers a request without the database: every answer during the outage is a 503, and
    # the server's log says why (the database's own error, not just "Service Unavailable").
    assert {c[2] for c in outage.during} == {503}, diagnostics
    causes = [line for line in server.text().splitlines() if "503 for " in line]
    assert causes and all("OperationalError" in line for line in causes), causes[:3]
    # The outage cost some node its save: it ran again (a second claim, a second execution of its
    # effect), and the effect stayed one row (checked above).
    assert figures["reclaimed_claims"] > 0 and figures["repeated_executions"] > 0, diagnostics
