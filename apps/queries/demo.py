"""Demo data for the embedded default: a generated SQLite sales database, a datasource and a saved
query on it, and a "Monthly sales report" workflow (start → dataQuery → transform → aggregate → end).
Idempotent: what exists (by name) is kept."""

from __future__ import annotations

import random
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.datasources import services as datasources
from apps.datasources.models import Datasource
from apps.queries import services as queries
from apps.queries.models import DataQuery
from apps.tenancy.models import Tenant
from apps.tenancy.services import Actor
from apps.workflows import services as workflows
from apps.workflows.models import Workflow

DB_FILE = "demo_sales.db"
ORDERS = 3000
REGIONS = ["north", "south", "east", "west"]
PRODUCTS = [("widget", 12.5), ("gadget", 40.0), ("gizmo", 7.25), ("doohickey", 99.0)]


def _database() -> Path:
    root = Path(settings.JETADMIN_SQLITE_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    path = root / DB_FILE
    if path.exists():
        return path
    rng = random.Random(2026)  # noqa: S311 - demo data, not security
    start = date(2026, 1, 1)
    rows = []
    for _ in range(ORDERS):
        day = start + timedelta(days=rng.randrange(0, 300))
        product, price = rng.choice(PRODUCTS)
        qty = rng.randint(1, 9)
        rows.append(
            (day.isoformat(), day.strftime("%Y-%m"), rng.choice(REGIONS), product, qty, round(qty * price, 2))
        )
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, ordered_at TEXT, month TEXT, region TEXT, "
        "product TEXT, quantity INTEGER, total REAL)"
    )
    conn.executemany(
        "INSERT INTO orders (ordered_at, month, region, product, quantity, total) VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.commit()
    conn.close()
    return path


def report_graph(query_id: str) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "start"},
            {
                "id": "orders",
                "type": "dataQuery",
                "inputs": {"query": query_id, "params": {"since": "{{input.since}}"}},
            },
            {
                "id": "shape",
                "type": "transform",
                "inputs": {"data": "{{orders.result}}", "select": ["month", "total"]},
            },
            {
                "id": "monthly",
                "type": "aggregate",
                "inputs": {
                    "data": "{{shape.result}}",
                    "group_by": ["month"],
                    "metrics": [
                        {"field": "total", "op": "sum", "as": "revenue"},
                        {"field": "total", "op": "count", "as": "orders"},
                    ],
                },
            },
            {"id": "end", "type": "end", "inputs": {"output": "{{monthly.result}}"}},
        ],
        "edges": [
            {"from": "start", "to": "orders"},
            {"from": "orders", "to": "shape"},
            {"from": "shape", "to": "monthly"},
            {"from": "monthly", "to": "end"},
        ],
    }


def ensure_sales_demo(*, actor: Actor, tenant: Tenant) -> Workflow:
    _database()
    ds = Datasource.objects.filter(tenant=tenant, name="Demo sales").first() or datasources.datasource_create(
        actor=actor,
        tenant=tenant,
        name="Demo sales",
        type="sqlite",
        config={"path": DB_FILE, "read_only": True},
    )
    query = DataQuery.objects.filter(tenant=tenant, name="Orders since").first() or queries.query_create(
        actor=actor,
        tenant=tenant,
        name="Orders since",
        datasource=ds.id,
        body="SELECT ordered_at, month, region, product, quantity, total FROM orders "
        "WHERE ordered_at >= :since ORDER BY ordered_at",
        params_schema={"type": "object", "required": ["since"], "properties": {"since": {"type": "string"}}},
        row_limit=10_000,
    )
    workflow = Workflow.objects.filter(tenant=tenant, name="Monthly sales report").first()
    return workflow or workflows.workflow_create(
        actor=actor,
        tenant=tenant,
        name="Monthly sales report",
        description='Run with {"since": "2026-01-01"}: revenue and order count per month.',
        graph=report_graph(str(query.id)),
    )
