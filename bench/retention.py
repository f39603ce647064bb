"""Benchmark: pruning 100,000 old runs while the engine and the API keep working.

    python bench/retention.py [--runs 100000] [--samples 15]

Needs PostgreSQL (postgres://postgres@127.0.0.1:5432) and Redis (127.0.0.1:6379). It creates the
database ``jetadmin_retention`` with ``--runs`` ended runs 40 days old (3 node rows and 6 journal rows
each, one 20 KB blob per 100 runs) plus 50 recent runs, starts ``manage.py serve`` and two
``celery worker -c 2`` processes, and measures, before and while ``manage.py prune_runs`` deletes the
old runs (the same code as the beat task):

* W1: a 40-node chain of trivial nodes, trigger → run done (median of ``--samples``);
* the API's p50: ``GET …/workflows/instances/`` (a page of the tenant's runs) over HTTP.

It prints both phases and their ratios, how long the prune took (runs/s), and checks that every old
row and blob is gone and the recent runs are untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB = "jetadmin_retention"
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/11")
sys.path.insert(0, str(ROOT))

from bench.engine import chain_graph, run_engine, start_workers, stop  # noqa: E402

os.environ.update(
    DATABASE_URL=f"{PG}/{DB}",
    REDIS_URL=REDIS,
    DJANGO_SETTINGS_MODULE="jetadmin.settings",
    LOG_LEVEL="WARNING",
    LOG_FORMAT="text",
)


def reset_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")


def fill(tenant: Any, workflow: Any, count: int) -> None:
    from django.utils import timezone

    from apps.workflows.models import Blob, InstanceEvent, NodeRun, WorkflowInstance

    then = timezone.now() - timedelta(days=40)
    blob_text = json.dumps([{"i": i, "pad": "x" * 180} for i in range(100)])  # about 20 KB
    made = 0
    began = time.perf_counter()
    while made < count:
        batch = min(5000, count - made)
        runs = [
            WorkflowInstance(
                id=uuid.uuid4(),
                tenant=tenant,
                workflow=workflow,
                graph={"nodes": [], "edges": []},
                status="succeeded",
                trigger="api",
                created_at=then,
                started_at=then,
                ended_at=then,
            )
            for _ in range(batch)
        ]
        WorkflowInstance.objects.bulk_create(runs, batch_size=5000)
        WorkflowInstance.objects.filter(pk__in=[r.pk for r in runs]).update(created_at=then)  # auto_now_add
        NodeRun.objects.bulk_create(
            [
                NodeRun(
                    instance=r, node_id=n, node_type="fanout", status="succeeded", attempt=1, output={"n": 1}
                )
                for r in runs
                for n in ("a", "b", "c")
            ],
            batch_size=5000,
        )
        InstanceEvent.objects.bulk_create(
            [
                InstanceEvent(instance=r, type=t, node_id=n, data={"status": "x"})
                for r in runs
                for t, n in (
                    ("instance.queued", ""),
                    ("node.running", "a"),
                    ("node.succeeded", "a"),
                    ("node.succeeded", "b"),
                    ("node.succeeded", "c"),
                    ("instance.succeeded", ""),
                )
            ],
            batch_size=5000,
        )
        Blob.objects.bulk_create(
            [
                Blob(tenant=tenant, instance=r, node_id="a", size=len(blob_text), content=blob_text)
                for r in runs[::100]
            ]
        )
        made += batch
        print(f"  {made:,} old runs written ({time.perf_counter() - began:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=60)
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
    from apps.workflows import services
    from apps.workflows.models import Blob, InstanceEvent, NodeRun, WorkflowInstance

    user = User.objects.create_user(username="bench", password="x")  # noqa: S106
    actor = tenancy.Actor(user=user)
    tenant = tenancy.tenant_create(actor=actor, name="bench")
    _, token = tenancy.auth_token_create(user=user)
    workflow = services.workflow_create(actor=actor, tenant=tenant, name="old", graph=chain_graph(3))
    print(f"writing {args.runs:,} old runs ...", flush=True)
    fill(tenant, workflow, args.runs)

    logdir = Path(tempfile.mkdtemp(prefix="jetadmin-retention-"))
    workers = start_workers(["-A", "jetadmin", "worker", "-P", "prefork", "-c", "2"], 2, logdir, "w")
    port = 18000 + os.getpid() % 1000
    serve = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=(logdir / "serve.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api/v1/tenants/{tenant.id}/workflows/instances/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        chain = chain_graph(40)
        for _ in range(50):  # recent runs: must survive
            run_engine(chain_graph(3), tenant, actor)
        recent = set(
            WorkflowInstance.objects.filter(created_at__gte=tenant.created_at).values_list("id", flat=True)
        )
        recent_rows = NodeRun.objects.filter(instance_id__in=recent).count()

        def api_once() -> float:
            request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"})
            began = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                response.read()
            return (time.perf_counter() - began) * 1000

        def phase(name: str, until: threading.Event | None) -> tuple[float, float, int]:
            w1: list[float] = []
            api: list[float] = []
            stop_api = threading.Event()

            def api_loop() -> None:
                while not stop_api.is_set():
                    api.append(api_once())
                    time.sleep(0.05)

            thread = threading.Thread(target=api_loop)
            thread.start()
            try:
                while len(w1) < args.samples or (until is not None and not until.is_set()):
                    w1.append(run_engine(chain, tenant, actor) * 1000)
                    if until is not None and until.is_set() and len(w1) >= 3:
                        break
            finally:
                stop_api.set()
                thread.join()
            print(
                f"{name}: W1 median {statistics.median(w1):.0f} ms over {len(w1)} runs; "
                f"API p50 {statistics.median(api):.1f} ms over {len(api)} requests",
                flush=True,
            )
            return statistics.median(w1), statistics.median(api), len(w1)

        run_engine(chain, tenant, actor)  # warm up
        base_w1, base_api, _ = phase("baseline (no pruning)", None)

        done = threading.Event()
        pruned: dict[str, object] = {}

        def prune() -> None:
            began = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "manage.py", "prune_runs"],
                cwd=ROOT,
                env=os.environ.copy(),
                capture_output=True,
                text=True,
                check=True,
            )
            pruned["seconds"] = time.perf_counter() - began
            pruned["result"] = json.loads(out.stdout.strip().splitlines()[-1])
            done.set()

        pruner = threading.Thread(target=prune)
        pruner.start()
        prune_w1, prune_api, _ = phase("while pruning", done)
        pruner.join()
        result, seconds = pruned["result"], float(pruned["seconds"])  # type: ignore[arg-type]
        print(f"prune_runs: {result} in {seconds:.1f} s ({result['runs'] / seconds:,.0f} runs/s)")  # type: ignore[index]
        print(f"W1 while pruning / baseline: {prune_w1 / base_w1:.2f}; API p50: {prune_api / base_api:.2f}")

        old = WorkflowInstance.objects.exclude(pk__in=recent).filter(workflow=workflow)
        left = {
            "old runs": old.count(),
            "their node rows": NodeRun.objects.filter(instance__in=old).count(),
            "their journal rows": InstanceEvent.objects.filter(instance__in=old).count(),
            "blobs": Blob.objects.count(),
        }
        print(f"left after pruning: {left}")
        kept = WorkflowInstance.objects.filter(pk__in=recent).count()
        kept_rows = NodeRun.objects.filter(instance_id__in=recent).count()
        print(f"recent runs kept: {kept} of {len(recent)} (node rows {kept_rows} of {recent_rows})")
        assert not any(left.values()) and kept == len(recent) and kept_rows == recent_rows
    finally:
        stop([serve, *workers])


if __name__ == "__main__":
    main()
