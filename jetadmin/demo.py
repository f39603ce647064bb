"""The demo (``manage.py bootstrap_demo``): a generated SQLite sales database, a datasource and a saved
query on it, a "Monthly sales report" workflow (start → dataQuery → transform → aggregate → end, with
side branches for the top orders, revenue by product and the latest month), the widgets it feeds and
a "Sales" dashboard of them. It lives above the apps and uses their services; no app imports it.
Idempotent: what exists (by name) is kept."""

from __future__ import annotations

import random
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.dashboards import services as dashboards
from apps.dashboards.models import Dashboard
from apps.datasources import services as datasources
from apps.datasources.models import Datasource
from apps.queries import services as queries
from apps.queries.models import DataQuery
from apps.tenancy.models import Tenant
from apps.tenancy.services import Actor
from apps.widgets import services as widgets
from apps.widgets.models import Widget
from apps.workflows import services as workflows
from apps.workflows.models import Workflow, WorkflowTestCase
from apps.workflows.testcases import test_case_create

DB_FILE = "demo_sales.db"
ORDERS = 3000
DAYS = 300
REGIONS = ["north", "south", "east", "west"]
PRODUCTS = [("widget", 12.5), ("gadget", 40.0), ("gizmo", 7.25), ("doohickey", 99.0)]


def months_covered(today: date | None = None) -> list[str]:
    """The calendar months the demo's orders fall in ("YYYY-MM"), for a database made ``today``."""
    today = today or date.today()
    return sorted({(today - timedelta(days=d)).strftime("%Y-%m") for d in range(DAYS)})


def _database() -> Path:
    root = Path(settings.JETADMIN_SQLITE_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    path = root / DB_FILE
    if path.exists():
        return path
    rng = random.Random(2026)  # noqa: S311 - demo data, not security
    start = date.today() - timedelta(days=DAYS - 1)  # the last DAYS days: "the last 30 days" has orders
    rows = []
    for _ in range(ORDERS):
        day = start + timedelta(days=rng.randrange(0, DAYS))
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
            {
                "id": "start",
                "type": "start",
                "inputs": {  # the run form on the workflow page is built from this
                    "schema": {
                        "type": "object",
                        "properties": {
                            "since": {
                                "type": "string",
                                "default": "2026-01-01",
                                "description": "First order date counted (YYYY-MM-DD).",
                            },
                            "product": {
                                "type": "string",
                                "default": "",
                                "description": "Only this product's orders (empty: all).",
                            },
                            "region": {
                                "type": "string",
                                "default": "",
                                "description": "Only this region's orders (empty: all).",
                            },
                        },
                    }
                },
            },
            {
                "id": "orders",
                "type": "dataQuery",
                "inputs": {
                    "query": query_id,
                    "params": {
                        "since": "{{start.since}}",
                        "product": "{{start.product}}",
                        "region": "{{start.region}}",
                    },
                },
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
            {  # for the dashboard: the ten biggest orders, revenue by product, the latest month
                "id": "top",
                "type": "transform",
                "inputs": {
                    "data": "{{orders.result}}",
                    "select": ["ordered_at", "region", "product", "quantity", "total"],
                    "sort": [{"field": "total", "desc": True}],
                    "limit": 10,
                },
            },
            {
                "id": "by_product",
                "type": "aggregate",
                "inputs": {
                    "data": "{{orders.result}}",
                    "group_by": ["product"],
                    "metrics": [{"field": "total", "op": "sum", "as": "revenue"}],
                },
            },
            {
                "id": "by_region",
                "type": "aggregate",
                "inputs": {
                    "data": "{{orders.result}}",
                    "group_by": ["region"],
                    "metrics": [{"field": "total", "op": "sum", "as": "revenue"}],
                },
            },
            {
                "id": "latest",
                "type": "javascript",
                "inputs": {
                    "code": (
                        "const m = ctx.monthly.result; const last = m[m.length - 1] || {revenue: 0};"
                        " const prev = m[m.length - 2];"
                        " return {month: last.month || '', revenue: last.revenue,"
                        " change: prev ? Math.round((last.revenue - prev.revenue) * 100) / 100 : null};"
                    )
                },
            },
        ],
        "edges": [
            {"from": "start", "to": "orders"},
            {"from": "orders", "to": "shape"},
            {"from": "shape", "to": "monthly"},
            {"from": "monthly", "to": "end"},
            {"from": "orders", "to": "top"},
            {"from": "orders", "to": "by_product"},
            {"from": "orders", "to": "by_region"},
            {"from": "monthly", "to": "latest"},
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
        "WHERE ordered_at >= :since AND (:product = '' OR product = :product) "
        "AND (:region = '' OR region = :region) ORDER BY ordered_at",
        params_schema={
            "type": "object",
            "required": ["since", "product", "region"],
            "properties": {
                "since": {"type": "string"},
                "product": {"type": "string"},
                "region": {"type": "string"},
            },
        },
        row_limit=10_000,
    )
    if not DataQuery.objects.filter(tenant=tenant, name="fetchOrders").exists():
        queries.query_create(  # the query Jet Admin's example workflow names: orders with a revenue column
            actor=actor,
            tenant=tenant,
            name="fetchOrders",
            datasource=ds.id,
            body="SELECT id, ordered_at AS date, region, product, quantity, total AS revenue FROM orders "
            "ORDER BY ordered_at",
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


# Test cases of the report (manage.py test_workflows): the query's rows are pinned, so a case needs no
# database and says exactly what the report makes of those rows.
PINNED_ORDERS = {
    "result": [
        {"ordered_at": "2026-01-05", "month": "2026-01", "region": "North", "product": "Widget",
         "quantity": 2, "total": 40.0},
        {"ordered_at": "2026-01-20", "month": "2026-01", "region": "South", "product": "Gadget",
         "quantity": 1, "total": 60.0},
        {"ordered_at": "2026-02-03", "month": "2026-02", "region": "North", "product": "Widget",
         "quantity": 3, "total": 150.0},
    ]
}  # fmt: skip
DEMO_TEST_CASES: list[dict[str, Any]] = [
    {
        "name": "Three orders in two months",
        "input": {"since": "2026-01-01"},
        "pinned": {"orders": PINNED_ORDERS},
        "expect": {
            "status": "succeeded",
            "output": [
                {"month": "2026-01", "revenue": 100.0, "orders": 2},
                {"month": "2026-02", "revenue": 150.0, "orders": 1},
            ],
            "nodes": {"latest": {"output": {"month": "2026-02", "revenue": 150.0, "change": 50.0}}},
        },
    },
    {
        "name": "No orders",
        "input": {"since": "2030-01-01"},
        "pinned": {"orders": {"result": []}},
        "expect": {
            "output": [],
            "nodes": {"latest": {"output": {"month": "", "revenue": 0, "change": None}}},
        },
    },
]


def ensure_demo_test_cases(*, actor: Actor, workflow: Workflow) -> list[WorkflowTestCase]:
    """The report's test cases (idempotent: an existing case of the same name is left as it is)."""
    cases = []
    for spec in DEMO_TEST_CASES:
        case = WorkflowTestCase.objects.filter(workflow=workflow, name=spec["name"]).first()
        cases.append(case or test_case_create(actor=actor, workflow=workflow, **spec))
    return cases


DEMO_PARAMS = {"since": "2026-01-01", "product": "", "region": ""}
PRODUCT_NAMES = [name for name, _ in PRODUCTS]
# name, type, config, placement on the 12-column grid
DEMO_WIDGETS: list[tuple[str, str, dict[str, Any], dict[str, int]]] = [
    (
        "Revenue this month",
        "stat",
        {
            "value": "{{ctx.latest.revenue}}",
            "delta": "{{ctx.latest.change}}",
            "label": "{{ctx.latest.month}}",
            "format": "number",
        },
        {"x": 0, "y": 0, "w": 3, "h": 2},
    ),
    (
        "Revenue by region",
        "bar",
        {"data": "{{ctx.by_region.result}}", "x": "region", "y": ["revenue"]},
        {"x": 0, "y": 2, "w": 3, "h": 2},
    ),
    (
        "Revenue by product",
        "pie",
        {"data": "{{ctx.by_product.result}}", "x": "product", "y": "revenue"},
        {"x": 3, "y": 0, "w": 4, "h": 4},
    ),
    (
        "Orders by month",
        "line",
        {"data": "{{ctx.monthly.result}}", "x": "month", "y": ["orders"]},
        {"x": 7, "y": 0, "w": 5, "h": 4},
    ),
    (
        "Revenue by month",
        "bar",
        {"data": "{{ctx.monthly.result}}", "x": "month", "y": ["revenue"]},
        {"x": 0, "y": 4, "w": 7, "h": 4},
    ),
    (
        "Top orders",
        "table",
        {"rows": "{{ctx.top.result}}", "page_size": 10},
        {"x": 7, "y": 4, "w": 5, "h": 4},
    ),
]


def ensure_dashboard_demo(
    *, actor: Actor, tenant: Tenant, workflow: Workflow
) -> tuple[list[Widget], Dashboard]:
    """The demo report's widgets and the "Sales" dashboard that shows them."""
    made = []
    layout = []
    for name, kind, config, place in DEMO_WIDGETS:
        widget = Widget.objects.filter(tenant=tenant, name=name).first() or widgets.widget_create(
            actor=actor,
            tenant=tenant,
            name=name,
            type=kind,
            config=config,
            workflow=workflow.id,
            workflow_config={"input_params": DEMO_PARAMS},
        )
        made.append(widget)
        layout.append({"widget": str(widget.id), **place})
    by_product = next(str(w.id) for w in made if w.name == "Revenue by product")
    by_region = next(str(w.id) for w in made if w.name == "Revenue by region")
    filters = [
        {
            "id": "since",
            "type": "date-range",
            "label": "Orders since",
            "param": "since",
            "default": "2026-01-01",
        },
        {  # clicking a slice of the pie sets it
            "id": "product",
            "type": "select",
            "label": "Product",
            "param": "product",
            "options": PRODUCT_NAMES,
            "from_widget": by_product,
        },
        {  # clicking a bar of "Revenue by region" sets it
            "id": "region",
            "type": "select",
            "label": "Region",
            "param": "region",
            "options": REGIONS,
            "from_widget": by_region,
        },
    ]
    dashboard = Dashboard.objects.filter(tenant=tenant, name="Sales").first() or dashboards.dashboard_create(
        actor=actor,
        tenant=tenant,
        name="Sales",
        description=(
            "Fed by the Monthly sales report workflow. Click a slice of the pie or a region's bar to see "
            "only that product or region."
        ),
        layout=layout,
        filters=filters,
        refresh_s=60,
    )
    return made, dashboard
