"""Benchmark: server time of the pages with 100 workflows and 5,000 runs in one tenant.

    python bench/pages.py [--requests 50] [--pg]

Builds a tenant (embedded SQLite in a temporary data dir, or with ``--pg`` the PostgreSQL database
``jetadmin_pages`` on postgres://postgres@127.0.0.1:5432) with 100 workflows, 5,000 runs of them
(3 node runs each), 20 datasources and queries, 50 members and 2,000 audit rows; then requests every
list and detail page ``--requests`` times in-process through Django's test client (the whole request:
middleware, session, tenant check, queries, template) and prints p50 and p95 in ms, SQL statements per
page, and the p50's ratio to the login page's in the same run (the baseline: a page that reads no
tenant data). Goal: every page's p50 at most 100 ms, statements independent of the rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = "postgres://postgres@127.0.0.1:5432"
DB = "jetadmin_pages"
SECRET = os.urandom(8).hex()  # the bench owner's password


def setup_environment(pg: bool) -> None:
    os.environ.update(DJANGO_SETTINGS_MODULE="jetadmin.settings", LOG_LEVEL="WARNING")
    os.environ.pop("REDIS_URL", None)
    if pg:
        import psycopg

        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DB}")
        os.environ["DATABASE_URL"] = f"{PG}/{DB}"
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ["JETADMIN_DATA_DIR"] = tempfile.mkdtemp(prefix="jetadmin-pages-")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build() -> dict[str, object]:
    from django.utils import timezone

    from apps.datasources import services as datasource_services
    from apps.queries import services as query_services
    from apps.tenancy import services as tenancy
    from apps.tenancy.models import AuditLog, Membership, Role, User
    from apps.workflows import services as workflow_services
    from apps.workflows.models import NodeRun, WorkflowInstance

    owner = User.objects.create_user(username="owner", password=SECRET)
    tenant = tenancy.tenant_create(actor=tenancy.Actor(user=owner), name="Busy")
    actor = tenancy.Actor(user=owner)
    viewer = Role.objects.get(tenant=tenant, name="viewer")
    graph = {
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "mid", "type": "fanout"},
            {"id": "end", "type": "end"},
        ],
        "edges": [{"from": "start", "to": "mid"}, {"from": "mid", "to": "end"}],
    }
    workflows = [
        workflow_services.workflow_create(actor=actor, tenant=tenant, name=f"Workflow {i:03d}", graph=graph)
        for i in range(100)
    ]
    now = timezone.now()
    statuses = ["succeeded"] * 8 + ["failed", "canceled"]
    instances = [
        WorkflowInstance(
            tenant=tenant,
            workflow=workflows[i % 100],
            version=workflows[i % 100].current_version,
            graph=graph,
            status=statuses[i % 10],
            trigger="api",
            input={"i": i},
            output={"total": i},
            created_at=now - timedelta(minutes=i),
            started_at=now - timedelta(minutes=i),
            ended_at=now - timedelta(minutes=i) + timedelta(milliseconds=40),
        )
        for i in range(5000)
    ]
    WorkflowInstance.objects.bulk_create(instances, batch_size=500)
    NodeRun.objects.bulk_create(
        [
            NodeRun(
                instance=run,
                node_id=node["id"],
                node_type=node["type"],
                status="succeeded",
                attempt=1,
                input={},
                output={"n": run.input["i"]},
                started_at=run.started_at,
                ended_at=run.ended_at,
            )
            for run in instances
            for node in graph["nodes"]
        ],
        batch_size=1000,
    )
    # 200 of the runs wait on an approval step (the inbox's rows)
    waiting = instances[:200]
    WorkflowInstance.objects.filter(pk__in=[r.pk for r in waiting]).update(status="waiting", ended_at=None)
    NodeRun.objects.bulk_create(
        [
            NodeRun(instance=run, node_id="approve", node_type="approval", status="waiting", input={})
            for run in waiting
        ],
        batch_size=500,
    )
    for i in range(20):
        source = datasource_services.datasource_create(
            actor=actor, tenant=tenant, name=f"db{i}", type="sqlite", config={"path": f"{i}.db"}
        )
        query = query_services.query_create(
            actor=actor, tenant=tenant, name=f"query {i}", datasource=source.id, body="SELECT 1"
        )
    for i in range(50):
        Membership.objects.create(
            tenant=tenant, user=User.objects.create_user(username=f"member{i}"), role=viewer
        )
    AuditLog.objects.bulk_create(
        [
            AuditLog(
                tenant=tenant,
                actor=owner,
                action="workflow.execute",
                object_type="workflowinstance",
                object_id=str(instances[i].id),
                changes={},
            )
            for i in range(2000)
        ],
        batch_size=500,
    )
    return {
        "tenant": tenant,
        "workflow": workflows[0],
        "instance": instances[-1],
        "datasource": source,
        "query": query,
    }


def measure(requests: int) -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    objects = build()
    t = objects["tenant"].id  # type: ignore[attr-defined]
    client = Client()
    assert client.login(username="owner", password=SECRET)
    pages = {
        "login page (baseline)": "/login/",
        "home": reverse("tenant-home", args=[t]),
        "datasources": reverse("datasource-list", args=[t]),
        "datasource": reverse("datasource-detail", args=[t, objects["datasource"].id]),  # type: ignore[attr-defined]
        "queries": reverse("query-list", args=[t]),
        "query editor": reverse("query-detail", args=[t, objects["query"].id]),  # type: ignore[attr-defined]
        "workflows": reverse("workflow-list", args=[t]),
        "workflow": reverse("workflow-detail", args=[t, objects["workflow"].id]),  # type: ignore[attr-defined]
        "runs": reverse("run-list", args=[t]),
        "runs, filtered": reverse("run-list", args=[t]) + "?status=failed&trigger=api",
        "runs, page 50": reverse("run-list", args=[t]) + "?page=50",
        "run": reverse("run-page", args=[t, objects["instance"].id]),  # type: ignore[attr-defined]
        "inbox (200 waiting)": reverse("inbox", args=[t]),
        "settings": reverse("settings", args=[t]),
        "audit log": reverse("audit", args=[t]),
    }
    anonymous = Client()
    rows = []
    for name, url in pages.items():
        who = anonymous if url == "/login/" else client
        for _ in range(3):  # warm up
            who.get(url)
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            response = who.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (name, response.status_code)
        with CaptureQueriesContext(connection) as queries:
            who.get(url)
        times.sort()
        rows.append((name, statistics.median(times), times[int(len(times) * 0.95) - 1], len(queries)))
    base = rows[0][1]
    print(f"{'page':24} {'p50 ms':>8} {'p95 ms':>8} {'SQL':>5} {'x login':>8}")
    for name, p50, p95, sql in rows:
        print(f"{name:24} {p50:8.1f} {p95:8.1f} {sql:5d} {p50 / base:8.2f}")
    worst = max(rows[1:], key=lambda r: r[1])
    verdict = "met" if worst[1] <= 100 else "MISSED"
    print(f"slowest: {worst[0]} p50 {worst[1]:.1f} ms (goal <= 100 ms): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of the embedded SQLite")
    args = parser.parse_args()
    setup_environment(args.pg)
    print(f"database: {'PostgreSQL' if args.pg else 'SQLite (embedded default)'}; 100 workflows, 5,000 runs")
    measure(args.requests)


if __name__ == "__main__":
    main()
