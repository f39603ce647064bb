"""GET /metrics: who may read it, what it counts in one process, and (PostgreSQL pass) that a scrape
of a real deployment — ``manage.py serve`` and two prefork Celery workers writing one metrics
directory — adds up exactly to the rows in the database after a few thousand node executions."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from apps.tenancy import services as tenancy
from apps.tenancy.models import Tenant, User
from apps.tenancy.services import Actor
from apps.workflows import services
from apps.workflows.models import NodeRun, WorkflowInstance
from jetadmin import embedded
from tests.conftest import _stop, token_client
from tests.workflows.test_distributed import start_workers

pytestmark = pytest.mark.django_db(transaction=True)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of a scrape."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(scraped: dict[Any, float], name: str, **labels: str) -> float:
    return sum(
        v
        for (n, ls), v in scraped.items()
        if n == name and all(dict(ls).get(k) == w for k, w in labels.items())
    )


def test_metrics_need_a_token_or_a_staff_session(make_user: Any, settings: Any) -> None:
    client = Client()
    assert client.get("/metrics").status_code == 401
    settings.JETADMIN_METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    scraped = samples(response.content.decode())
    assert ("jetadmin_ready_queue_depth", ()) in scraped
    member = make_user()
    client.force_login(member)
    assert client.get("/metrics").status_code == 401  # signed in, but not staff
    client.force_login(make_user(is_staff=True))
    assert client.get("/metrics").status_code == 200


def test_one_process_counts_runs_nodes_and_requests(
    embedded_worker: Any, owner_tenant: tuple[User, Tenant], make_user: Any
) -> None:
    user, tenant = owner_tenant
    staff = Client()
    staff.force_login(make_user(is_staff=True))
    before = samples(staff.get("/metrics").content.decode())
    graph = {
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "pick", "type": "transform", "inputs": {"data": [{"a": 1}], "select": ["a"]}},
            {"id": "end", "type": "end", "inputs": {"output": "{{pick.result}}"}},
        ],
        "edges": [{"source": "start", "target": "pick"}, {"source": "pick", "target": "end"}],
    }
    api = token_client(user)
    for _ in range(3):
        instance = services.workflow_test(actor=Actor(user=user), tenant=tenant, graph=graph)
        services.instance_wait(instance=instance, timeout_s=30)
    assert api.get(f"/api/v1/tenants/{tenant.id}/workflows/").status_code == 200
    time.sleep(0.2)
    after = samples(staff.get("/metrics").content.decode())

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("jetadmin_runs_started_total", trigger="test") == 3
    assert delta("jetadmin_runs_finished_total", trigger="test", status="succeeded") == 3
    assert delta("jetadmin_node_runs_finished_total", type="transform", status="succeeded") == 3
    assert delta("jetadmin_node_executions_total", type="end") == 3
    assert delta("jetadmin_node_duration_seconds_count", type="transform") == 3
    assert delta("jetadmin_run_duration_seconds_count", trigger="test", status="succeeded") == 3
    route = "/api/v1/tenants/<uuid:tenant_id>/workflows/"
    assert delta("jetadmin_http_requests_total", method="GET", route=route, status="200") == 1


STRESS_RUNS = 300
FAILING_RUNS = 40
GRAPH = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "rows", "type": "transform", "inputs": {"data": [{"n": 1}, {"n": 2}], "limit": 2}},
        {
            "id": "shaky",
            "type": "flaky",
            "inputs": {"succeed_on": 2},
            "retry": {"max_attempts": 3, "backoff_s": 0},
        },
        {"id": "left", "type": "transform", "inputs": {"data": "{{rows.result}}", "select": ["n"]}},
        {"id": "right", "type": "transform", "inputs": {"data": "{{rows.result}}", "limit": 1}},
        {"id": "both", "type": "join", "inputs": {"mode": "all"}},
        {"id": "end", "type": "end", "inputs": {"output": "{{left.result}}"}},
    ],
    "edges": [
        {"source": "start", "target": "rows"},
        {"source": "rows", "target": "shaky"},
        {"source": "shaky", "target": "left"},
        {"source": "shaky", "target": "right"},
        {"source": "left", "target": "both"},
        {"source": "right", "target": "both"},
        {"source": "both", "target": "end"},
    ],
}
FAILING = {
    "nodes": [{"id": "start", "type": "start"}, {"id": "boom", "type": "flaky", "inputs": {"fail": True}}],
    "edges": [{"source": "start", "target": "boom"}],
}


@pytest.mark.skipif(
    connection.vendor != "postgresql" or not settings.REDIS_URL,
    reason="worker processes need the distributed stack (DATABASE_URL=postgres..., REDIS_URL)",
)
def test_a_scrape_of_two_prefork_workers_adds_up_to_the_database(
    tmp_path: Path, serve_process: Any, owner_tenant: tuple[User, Tenant], make_user: Any
) -> None:
    user, tenant = owner_tenant
    embedded.stop()
    metrics_dir = tmp_path / "metrics"
    env = {
        "JETADMIN_METRICS_DIR": str(metrics_dir),
        "JETADMIN_METRICS_TOKEN": "scrape-me",
        "JETADMIN_NODE_MODULES": "tests.workflows.testnodes",
    }
    workers = start_workers(tmp_path, count=2, concurrency=4, **env)
    try:
        server = serve_process(**env)
        actor = Actor(user=user)
        good = services.workflow_create(actor=actor, tenant=tenant, name="Stress", graph=GRAPH)
        bad = services.workflow_create(actor=actor, tenant=tenant, name="Broken", graph=FAILING)
        _, raw = tenancy.auth_token_create(user=user)

        def execute(workflow_id: Any) -> None:
            url = f"{server.url}/api/v1/tenants/{tenant.id}/workflows/{workflow_id}/execute/"
            request = urllib.request.Request(  # noqa: S310 - the local test server
                url,
                data=json.dumps({"input": {}}).encode(),
                headers={"Authorization": f"Token {raw}", "Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310
                assert r.status in (200, 201, 202)

        def scrape() -> dict[Any, float]:
            request = urllib.request.Request(  # noqa: S310
                f"{server.url}/metrics", headers={"Authorization": "Bearer scrape-me"}
            )
            with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310
                return samples(r.read().decode())

        mid = None
        for i in range(STRESS_RUNS + FAILING_RUNS):
            execute(bad.id if i % ((STRESS_RUNS + FAILING_RUNS) // FAILING_RUNS) == 0 else good.id)
            if i == STRESS_RUNS // 2:
                mid = scrape()  # scraped during the run: never more than has happened
        deadline = time.monotonic() + 300
        while WorkflowInstance.objects.filter(tenant=tenant, status__in=("queued", "running")).exists():
            assert time.monotonic() < deadline, "the stress runs did not end in 300 s"
            time.sleep(0.5)
        time.sleep(1.0)  # the last commits' receivers have counted
        end = scrape()
    finally:
        for proc in workers:
            _stop(proc, timeout=20)

    runs = WorkflowInstance.objects.filter(tenant=tenant)
    statuses = Counter(runs.values_list("status", flat=True))
    assert sum(statuses.values()) == STRESS_RUNS + FAILING_RUNS
    assert total(end, "jetadmin_runs_started_total", trigger="api") == sum(statuses.values())
    for status, count in statuses.items():
        assert total(end, "jetadmin_runs_finished_total", trigger="api", status=status) == count, status
    node_rows = NodeRun.objects.filter(instance__tenant=tenant).exclude(node_type="loop.iteration")
    by_type = Counter(node_rows.values_list("node_type", "status"))
    executions = 0
    for (node_type, status), count in by_type.items():
        assert total(end, "jetadmin_node_runs_finished_total", type=node_type, status=status) == count
    for node_type in {t for t, _ in by_type}:
        attempts = node_rows.filter(node_type=node_type).aggregate(n=Sum("attempt"))["n"] or 0
        assert total(end, "jetadmin_node_executions_total", type=node_type) == attempts, node_type
        executions += attempts
    assert executions >= 2000, executions  # a few thousand node executions
    assert total(end, "jetadmin_node_duration_seconds_count") == executions
    assert mid is not None
    assert 0 < total(mid, "jetadmin_runs_started_total") <= sum(statuses.values())
    files = {p.name.split("_")[0] for p in metrics_dir.glob("*.db")}
    assert "counter" in files and "histogram" in files
    # Every prefork child wrote its own files, and the scrape added them all up.
    pids = {p.name.rsplit("_", 1)[1] for p in metrics_dir.glob("counter_*.db")}
    assert len(pids) >= 3, pids
    print(
        f"metrics stress: {sum(statuses.values())} runs, {executions} node executions, {len(pids)} processes"
    )
