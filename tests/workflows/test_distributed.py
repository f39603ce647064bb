"""The distributed stack: PostgreSQL + Redis + two real ``celery worker`` processes.

Runs in the PostgreSQL pass of the suite (the SQLite pass is the embedded default, where one process
is the whole product). The in-process worker is stopped first so only the worker processes consume.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from apps.tenancy import services as tenancy
from apps.workflows import services
from apps.workflows.models import InstanceEvent, NodeRun, WorkflowInstance
from jetadmin import embedded
from tests.conftest import ROOT, _stop, subprocess_env
from tests.workflows import testnodes
from tests.workflows.graphs import SALES_INPUT, SALES_OUTPUT, SALES_REPORT, diamond

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.REDIS_URL,
        reason="worker processes need the distributed stack (DATABASE_URL=postgres..., REDIS_URL)",
    ),
]


def start_workers(
    tmp_path: Path, count: int = 2, concurrency: int = 4, **extra_env: str
) -> list[subprocess.Popen[bytes]]:
    env = subprocess_env(**{"JETADMIN_NODE_MODULES": "tests.workflows.testnodes", **extra_env})
    procs = []
    logs = []
    for i in range(count):
        log = tmp_path / f"worker{i}.log"
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "jetadmin",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(concurrency),
            "-n",
            f"w{i}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "info",
        ]
        procs.append(
            subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        logs.append(log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all("ready." in log.read_text(errors="replace") for log in logs):
            return procs
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                raise AssertionError(f"worker exited:\n{log.read_text()}")
        time.sleep(0.2)
    raise AssertionError("workers did not become ready:\n" + "\n".join(log.read_text() for log in logs))


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., list[subprocess.Popen[bytes]]]]:
    embedded.stop()
    started: list[subprocess.Popen[bytes]] = []

    def start(**kwargs: Any) -> list[subprocess.Popen[bytes]]:
        procs = start_workers(tmp_path, **kwargs)
        started.extend(procs)
        return procs

    yield start
    for proc in started:
        _stop(proc, timeout=20)


CLAIMS = "test_claims"


@pytest.fixture
def claims() -> Iterator[Callable[[], list[tuple[str, str, str, str]]]]:
    """Who ran what: every claim of a node — its NodeRun turning ``running`` under a lease — with the
    claimer's ``lease_owner`` (``host:pid:thread``, ``runtime.worker_id()``), recorded by a trigger in
    the database the workers write to. (The owner is cleared when the node ends, so NodeRun alone
    cannot tell afterwards.) Returns a reader of ``(instance_id, node_id, iteration, owner)`` rows."""
    table = NodeRun._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {CLAIMS} (instance_id text, node_id text, iteration text, owner text NOT NULL)"
        )
        cursor.execute(
            f"""CREATE FUNCTION {CLAIMS}_record() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              INSERT INTO {CLAIMS}
                VALUES (NEW.instance_id::text, NEW.node_id, NEW.iteration, NEW.lease_owner);
              RETURN NULL;
            END $$"""  # noqa: S608 - constant table name
        )
        cursor.execute(
            f"""CREATE TRIGGER {CLAIMS}_record AFTER UPDATE ON {table} FOR EACH ROW
            WHEN (NEW.status = 'running' AND OLD.status <> 'running' AND NEW.lease_owner <> '')
            EXECUTE FUNCTION {CLAIMS}_record()"""
        )

    def rows() -> list[tuple[str, str, str, str]]:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT instance_id, node_id, iteration, owner FROM {CLAIMS}")  # noqa: S608
            return [(str(i), str(n), str(it), str(o)) for i, n, it, o in cursor.fetchall()]

    yield rows
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER IF EXISTS {CLAIMS}_record ON {table}")
        cursor.execute(f"DROP FUNCTION IF EXISTS {CLAIMS}_record()")
        cursor.execute(f"DROP TABLE IF EXISTS {CLAIMS}")


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (comm)": state, then the parent's pid


def runs_per_worker(
    procs: list[subprocess.Popen[bytes]], claim_rows: list[tuple[str, str, str, str]]
) -> dict[int, int]:
    """``{worker index: nodes it ran}`` from the claims' owners: a ``celery worker`` runs nodes in its
    pool's child processes, so an owner's pid is a child of the worker process (or that process)."""
    index = {proc.pid: i for i, proc in enumerate(procs)}
    counts: Counter[int] = Counter()
    for _, node_id, _, owner in claim_rows:
        pid = int(owner.split(":")[1])
        worker = index.get(pid, index.get(_parent_pid(pid) or -1))
        assert worker is not None, f"{node_id!r} was run by pid {pid}, not by a worker process ({owner})"
        counts[worker] += 1
    return dict(counts)


def _wait_all(ids: list[Any], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = Counter(WorkflowInstance.objects.filter(pk__in=ids).values_list("status", flat=True))
        if statuses.get("queued", 0) + statuses.get("running", 0) == 0:
            return dict(statuses)
        time.sleep(0.2)
    return dict(Counter(WorkflowInstance.objects.filter(pk__in=ids).values_list("status", flat=True)))


def test_sales_report_on_two_worker_processes(workers, owner_tenant, claims):
    procs = workers()
    user, tenant = owner_tenant
    actor = tenancy.Actor(user=user)
    # A few reports at once, so that both workers get nodes to run (one run alone may fit in one).
    ids = [
        services.workflow_test(actor=actor, tenant=tenant, graph=SALES_REPORT, input=SALES_INPUT).id
        for _ in range(6)
    ]
    statuses = _wait_all(ids, timeout=120)
    assert statuses == {"succeeded": 6}, statuses
    for instance in WorkflowInstance.objects.filter(pk__in=ids):
        assert instance.output == SALES_OUTPUT
    ran = NodeRun.objects.filter(instance_id__in=ids, status="succeeded", attempt__gte=1)
    claimed = claims()
    assert {(i, n, it) for i, n, it, _ in claimed} == {
        (str(i), n, it) for i, n, it in ran.values_list("instance_id", "node_id", "iteration")
    }
    per_worker = runs_per_worker(procs, claimed)
    assert set(per_worker) == {0, 1}, per_worker  # both worker processes ran nodes, nothing else did
    owners = {
        o for o in NodeRun.objects.filter(instance_id__in=ids).values_list("lease_owner", flat=True) if o
    }
    assert not owners  # leases are released on completion


def assert_journals_numbered(ids: list[Any]) -> None:
    """Each run's journal is numbered 1, 2, 3, … with no hole and no repeat, although 8 worker slots
    wrote its rows concurrently, and every node's own events are in the order they happened."""
    journals: dict[Any, list[tuple[int, str, str]]] = {}
    rows = InstanceEvent.objects.filter(instance_id__in=ids).order_by("instance_id", "seq")
    for iid, seq, kind, node_id in rows.values_list("instance_id", "seq", "type", "node_id"):
        journals.setdefault(iid, []).append((seq, kind, node_id))
    assert len(journals) == len(ids)
    lifecycle = ["node.queued", "node.running", "node.succeeded"]
    for iid, journal in journals.items():
        assert [seq for seq, _, _ in journal] == list(range(1, len(journal) + 1)), iid
        assert journal[-1][1] == "instance.succeeded"
        for node_id in {node for _, _, node in journal if node}:
            kinds = [kind for _, kind, node in journal if node == node_id and kind in lifecycle]
            assert kinds == lifecycle, (iid, node_id, kinds)


def test_join_stress_every_join_runs_once(workers, owner_tenant, claims):
    testnodes.ledger_create()
    procs = workers(count=2, concurrency=4)
    user, tenant = owner_tenant
    actor = tenancy.Actor(user=user)
    graph = diamond(8)
    ids = [services.workflow_test(actor=actor, tenant=tenant, graph=graph).id for _ in range(200)]
    statuses = _wait_all(ids, timeout=240)
    assert statuses == {"succeeded": 200}, statuses
    joins = NodeRun.objects.filter(instance_id__in=ids, node_id="join")
    assert joins.filter(status="succeeded", attempt=1).count() == 200
    running = InstanceEvent.objects.filter(instance_id__in=ids, node_id="join", type="node.running")
    assert running.count() == 200
    assert_journals_numbered(ids)
    ledger = testnodes.ledger_rows()
    after = [key for key, node in ledger if node == "after"]
    assert len(after) == 200 and len(set(after)) == 200  # the node behind each join ran exactly once
    branches = [key for key, node in ledger if node.startswith("b")]
    assert len(branches) == 1600 and len(set(branches)) == 1600
    for instance in WorkflowInstance.objects.filter(pk__in=ids[:5]):
        assert instance.output == {
            "n": {f"b{i}": {"key": f"{instance.id}:b{i}", "value": i} for i in range(8)}
        }
    claimed = claims()
    attempts = NodeRun.objects.filter(instance_id__in=ids).aggregate(n=Sum("attempt"))["n"]
    assert len(claimed) == attempts  # every attempt of every node was claimed by a worker process
    per_worker = runs_per_worker(procs, claimed)
    assert set(per_worker) == {0, 1} and min(per_worker.values()) >= 100, per_worker


def test_short_delays_and_backoffs_fire_on_time_without_a_reconciler(workers, owner_tenant):
    """Timers (engine ``set_timers``): no beat or reconciler runs here, so only the broker's timer
    messages can wake these nodes — and they must do it within tens of milliseconds of the due time."""
    workers(count=2, concurrency=2)
    user, tenant = owner_tenant
    actor = tenancy.Actor(user=user)
    delays = [{"id": "start", "type": "start"}] + [
        {"id": f"d{i}", "type": "delay", "inputs": {"seconds": 0.05}} for i in range(20)
    ]
    edges = [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(delays)]
    chain = services.workflow_test(actor=actor, tenant=tenant, graph={"nodes": delays, "edges": edges})
    chain, timed_out = services.instance_wait(instance=chain, timeout_s=30)
    assert not timed_out and chain.status == "succeeded", chain.error
    assert chain.ended_at is not None and chain.started_at is not None
    took = (chain.ended_at - chain.started_at).total_seconds()
    late = [
        (r.ended_at - r.started_at).total_seconds() - 0.05
        for r in NodeRun.objects.filter(instance=chain, node_type="delay")
        if r.ended_at and r.started_at
    ]
    print(f"\n20 x delay 0.05 s: {took:.2f} s; each delay late by at most {max(late) * 1000:.0f} ms")
    assert took < 2.0, took
    assert len(late) == 20 and max(late) < 0.2, late

    retry = {
        "nodes": [
            {"id": "start", "type": "start"},
            {
                "id": "x",
                "type": "flaky",
                "inputs": {"succeed_on": 3},
                "retry": {"max_attempts": 3, "backoff_s": 0.1},
            },
        ],
        "edges": [{"from": "start", "to": "x"}],
    }
    flaky = services.workflow_test(actor=actor, tenant=tenant, graph=retry)
    flaky, timed_out = services.instance_wait(instance=flaky, timeout_s=30)
    assert not timed_out and flaky.status == "succeeded", flaky.error
    assert flaky.ended_at is not None and flaky.started_at is not None
    took = (flaky.ended_at - flaky.started_at).total_seconds()
    assert 0.3 <= took < 1.0, took  # backoffs 0.1 s + 0.2 s, each fired by its timer
