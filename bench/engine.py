"""Benchmark: the workflow engine on the distributed stack vs raw Celery on the same broker.

    python bench/engine.py [--runs 5] [--workers 2] [--concurrency 4]

Needs PostgreSQL (postgres://postgres@127.0.0.1:5432) and Redis (127.0.0.1:6379). It creates the
database ``jetadmin_bench``, starts real ``celery worker`` processes for jetadmin and for a bare
Celery app (bench/rawcelery.py), and measures, as medians over ``--runs``:

* W1: a 40-node sequential chain of trivial nodes, trigger → run done, vs a raw Celery chain of 40
  no-op tasks; prints both, the ratio and the ms per node over raw Celery.
* W3: start → 200 parallel trivial nodes → join, vs a raw chord of 200 no-ops; prints nodes/s and
  the ratio.
* SQL statements per node on the per-node path (counted in-process on a 40-node chain).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB = "jetadmin_bench"
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/10")

os.environ.update(
    DATABASE_URL=f"{PG}/{DB}",
    REDIS_URL=REDIS,
    DJANGO_SETTINGS_MODULE="jetadmin.settings",
    LOG_LEVEL="WARNING",
)
sys.path.insert(0, str(ROOT))


def reset_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")


def start_workers(
    argv: list[str], count: int, logdir: Path, name: str, env: dict[str, str] | None = None
) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(count):
        log = logdir / f"{name}{i}.log"
        cmd = [
            sys.executable,
            "-m",
            "celery",
            *argv,
            "-n",
            f"{name}{i}@%h",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "info",
        ]
        procs.append(
            subprocess.Popen(
                cmd,
                cwd=ROOT,
                env={**os.environ, **(env or {})},
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    deadline = time.monotonic() + 60
    logs = [logdir / f"{name}{i}.log" for i in range(count)]
    while not all("ready." in log.read_text(errors="replace") for log in logs):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit("workers did not start:\n" + "\n".join(log.read_text() for log in logs))
        time.sleep(0.2)
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def chain_graph(n: int) -> dict:
    nodes = [{"id": "n0", "type": "start"}] + [{"id": f"n{i}", "type": "fanout"} for i in range(1, n)]
    edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)]
    return {"nodes": nodes, "edges": edges}


def fan_graph(width: int) -> dict:
    nodes = [{"id": "start", "type": "start"}, {"id": "join", "type": "join"}]
    nodes += [{"id": f"p{i}", "type": "fanout"} for i in range(width)]
    edges = [{"from": "start", "to": f"p{i}"} for i in range(width)] + [
        {"from": f"p{i}", "to": "join"} for i in range(width)
    ]
    return {"nodes": nodes, "edges": edges}


def run_engine(graph: dict, tenant, actor) -> float:
    from apps.workflows import services
    from apps.workflows.models import WorkflowInstance

    started = time.perf_counter()
    instance = services.workflow_test(actor=actor, tenant=tenant, graph=graph)
    while True:
        row = (
            WorkflowInstance.objects.filter(pk=instance.pk)
            .values_list("status", "created_at", "ended_at")
            .get()
        )
        if row[0] in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.05)  # the figure comes from the run's own timestamps; polling only costs CPU
    if row[0] != "succeeded":
        raise SystemExit(f"bench run {instance.pk} ended {row[0]}")
    return (row[2] - row[1]).total_seconds() if row[2] and row[1] else time.perf_counter() - started


def run_raw_chain(n: int) -> float:
    from celery import chain

    from bench.rawcelery import noop

    started = time.perf_counter()
    chain(*(noop.si() for _ in range(n))).apply_async().get(timeout=120)
    return time.perf_counter() - started


def run_raw_chord(width: int) -> float:
    from celery import chord

    from bench.rawcelery import noop

    started = time.perf_counter()
    chord([noop.si() for _ in range(width)])(noop.si()).get(timeout=120)
    return time.perf_counter() - started


def statements_per_node(tenant, actor, n: int = 40) -> float:
    # Drive the nodes in this process, with no worker running (a worker would race this process for
    # the claims and make the count look smaller). Nothing consumes the messages, so the backlog limit
    # is lifted: otherwise the dispatcher would start holding nodes and add its own statements.
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.workflows import services
    from apps.workflows.engine import runtime
    from jetadmin.celery import app

    settings.JETADMIN_DISPATCH_BACKLOG = 10**9
    graph = chain_graph(n)
    app.conf.task_always_eager = False
    instance = services.workflow_test(actor=actor, tenant=tenant, graph=graph)
    iid = str(instance.id)
    runtime.run_data(iid)
    with CaptureQueriesContext(connection) as ctx:
        for i in range(n):
            runtime.execute(iid, f"n{i}")
    data = [q for q in ctx.captured_queries if q["sql"].split()[0].upper() not in ("BEGIN", "COMMIT")]
    return len(data) / n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    reset_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    from apps.tenancy import services as tenancy
    from apps.tenancy.models import User

    user = User.objects.create_user(username="bench", password="x")  # noqa: S106
    actor = tenancy.Actor(user=user)
    tenant = tenancy.tenant_create(actor=actor, name="bench")

    logdir = Path(tempfile.mkdtemp(prefix="jetadmin-bench-"))
    pool = ["-P", "prefork", "-c", str(args.concurrency)]
    engine_argv = ["-A", "jetadmin", "worker", *pool]
    raw_workers = start_workers(
        ["-A", "bench.rawcelery", "worker", *pool, "-Q", "rawbench"], args.workers, logdir, "raw"
    )

    def pairs(engine: Any, raw: Any) -> tuple[float, float, float]:
        """Engine and raw runs interleaved, so both see the same machine: medians and the median ratio."""
        engine(), raw()  # warm up: imports, connections, caches
        times = [(engine(), raw()) for _ in range(args.runs)]
        return (
            statistics.median(e for e, _ in times),
            statistics.median(r for _, r in times),
            statistics.median(e / r for e, r in times),
        )

    try:
        w1, w3 = chain_graph(40), fan_graph(200)
        # Without inline continuation every node is one broker hop, like the raw chain.
        engine_workers = start_workers(
            engine_argv, args.workers, logdir, "hop", {"JETADMIN_INLINE_BUDGET_S": "0"}
        )
        try:
            h1, hr1, hratio = pairs(lambda: run_engine(w1, tenant, actor), lambda: run_raw_chain(40))
        finally:
            stop(engine_workers)
        engine_workers = start_workers(engine_argv, args.workers, logdir, "engine")
        try:
            e1, r1, ratio1 = pairs(lambda: run_engine(w1, tenant, actor), lambda: run_raw_chain(40))
            e3, r3, ratio3 = pairs(lambda: run_engine(w3, tenant, actor), lambda: run_raw_chord(200))
        finally:
            stop(engine_workers)
        stmts = statements_per_node(tenant, actor)
    finally:
        stop(raw_workers)

    nodes_w3 = 202
    print(
        f"jetadmin engine bench: {args.workers} workers x concurrency {args.concurrency}, "
        f"median of {args.runs} interleaved engine/raw pairs (ratio = median of the pairs' ratios)"
    )
    print(
        f"W1 40-node chain : engine {e1 * 1000:7.1f} ms | raw Celery chain {r1 * 1000:7.1f} ms | "
        f"ratio {ratio1:5.2f} | {(e1 - r1) / 40 * 1000:5.2f} ms/node over raw  (chain runs inline)"
    )
    print(
        f"W1, a broker hop per node: engine {h1 * 1000:7.1f} ms | raw {hr1 * 1000:7.1f} ms | "
        f"ratio {hratio:5.2f} | {(h1 - hr1) / 40 * 1000:5.2f} ms/node over raw  (JETADMIN_INLINE_BUDGET_S=0)"
    )
    print(
        f"W3 200-way fan   : engine {e3 * 1000:7.1f} ms ({nodes_w3 / e3:6.0f} nodes/s) | raw chord "
        f"{r3 * 1000:7.1f} ms ({201 / r3:6.0f} tasks/s) | ratio {ratio3:5.2f}"
    )
    print(f"SQL statements per node (per-node path, excluding BEGIN/COMMIT): {stmts:.2f}")


if __name__ == "__main__":
    main()
