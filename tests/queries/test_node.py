"""The dataQuery node: a saved query with templated params feeding aggregate, end to end on the
embedded worker; failures keep the connector's code and are not retried when retrying cannot help."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from apps.datasources import services as datasources
from apps.queries import services as queries
from apps.tenancy.services import Actor

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def saved(owner_tenant, tmp_path: Path, settings: Any):
    settings.JETADMIN_SQLITE_ROOT = str(tmp_path)
    conn = sqlite3.connect(tmp_path / "sales.db")
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, region TEXT, month TEXT, total REAL)")
    rows = [(r, f"2026-0{m}", 10.0 * m) for r in ("north", "south") for m in (1, 2, 3)]
    conn.executemany("INSERT INTO orders (region, month, total) VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()
    user, tenant = owner_tenant
    actor = Actor(user=user)
    ds = datasources.datasource_create(
        actor=actor, tenant=tenant, name="sales", type="sqlite", config={"path": "sales.db"}
    )
    q = queries.query_create(
        actor=actor,
        tenant=tenant,
        name="by region",
        datasource=ds.id,
        body="SELECT month, total FROM orders WHERE region = :region ORDER BY month",
        params_schema={"type": "object", "required": ["region"]},
    )
    return ds, q


def graph(node_inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "rows", "type": "dataQuery", "inputs": node_inputs},
            {
                "id": "sum",
                "type": "aggregate",
                "inputs": {
                    "data": "{{rows.result}}",
                    "group_by": [],
                    "metrics": [{"field": "total", "op": "sum", "as": "total"}],
                },
            },
            {
                "id": "end",
                "type": "end",
                "inputs": {"output": {"n": "{{rows.row_count}}", "sum": "{{sum.result}}"}},
            },
        ],
        "edges": [
            {"from": "start", "to": "rows"},
            {"from": "rows", "to": "sum"},
            {"from": "sum", "to": "end"},
        ],
    }


def test_saved_query_feeds_the_next_nodes(run_graph, saved) -> None:
    _, q = saved
    instance = run_graph(
        graph({"query": str(q.id), "params": {"region": "{{input.region}}"}}), {"region": "south"}
    )
    assert instance.status == "succeeded", instance.error
    assert instance.output == {"n": 3, "sum": [{"total": 60.0}]}


def test_inline_query(run_graph, saved) -> None:
    ds, _ = saved
    node = {
        "datasource": str(ds.id),
        "body": "SELECT total FROM orders WHERE total > :t",
        "params": {"t": 15},
    }
    instance = run_graph(graph(node))
    assert instance.status == "succeeded", instance.error
    assert instance.output["n"] == 4


@pytest.mark.parametrize(
    ("node", "code"),
    [
        ({"datasource": "DS", "body": "SELEC broken"}, "bad_query"),
        ({"query": "00000000-0000-4000-8000-000000000000"}, "not_found"),
        ({"query": "Q", "params": {}}, "validation_error"),  # the params schema requires region
    ],
)
def test_failures_keep_their_code_and_are_not_retried(run_graph, saved, node, code) -> None:
    ds, q = saved
    node = {k: (str(ds.id) if v == "DS" else str(q.id) if v == "Q" else v) for k, v in node.items()}
    g = graph(node)
    g["nodes"][1]["retry"] = {"max_attempts": 3, "backoff_s": 0.01}
    instance = run_graph(g)
    assert instance.status == "failed"
    assert instance.error["node_id"] == "rows" and instance.error["code"] == code
    assert instance.error["attempt"] == 1


def test_demo_monthly_sales_report_runs(run_graph, owner_tenant, settings, tmp_path) -> None:
    from apps.workflows import services as workflows
    from jetadmin.demo import ORDERS, ensure_sales_demo, months_covered

    settings.JETADMIN_SQLITE_ROOT = str(tmp_path)
    user, tenant = owner_tenant
    report = ensure_sales_demo(actor=Actor(user=user), tenant=tenant)
    assert ensure_sales_demo(actor=Actor(user=user), tenant=tenant).id == report.id  # idempotent
    instance = workflows.workflow_execute(
        actor=Actor(user=user), workflow=report, input={"since": "2026-01-01"}
    )
    instance, timed_out = workflows.instance_wait(instance=instance, timeout_s=30)
    assert not timed_out and instance.status == "succeeded", instance.error
    months = instance.output
    assert [m["month"] for m in months] == months_covered()
    assert sum(m["orders"] for m in months) == ORDERS
    assert all(m["revenue"] > 0 for m in months)
