"""Jet Admin's workflow JSON: its documented "Monthly Sales Report" example, byte for byte
(fixtures/jet_admin_monthly_sales_report.json), imports through ``import_workflow`` and the API with
every shorthand converted and said so, runs against the demo data, and round-trips through
export/import unchanged; what cannot be converted is one 400 listing each node."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.tenancy.models import Tenant, User
from apps.tenancy.services import Actor
from apps.widgets.models import Widget
from apps.workflows import services
from apps.workflows.models import NodeRun, Workflow
from jetadmin import demo

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLE = Path(__file__).parent / "fixtures" / "jet_admin_monthly_sales_report.json"


@pytest.fixture
def demo_tenant(owner_tenant: tuple[User, Tenant], tmp_path: Path, settings: Any) -> Tenant:
    user, tenant = owner_tenant
    settings.JETADMIN_SQLITE_ROOT = str(tmp_path)
    demo.ensure_sales_demo(actor=Actor(user=user), tenant=tenant)
    return tenant


def last_30_days_revenue() -> float:
    conn = sqlite3.connect(Path(settings.JETADMIN_SQLITE_ROOT) / demo.DB_FILE)
    since = (date.today() - timedelta(days=30)).isoformat()
    (total,) = conn.execute("SELECT SUM(total) FROM orders WHERE ordered_at >= ?", [since]).fetchone()
    conn.close()
    return round(float(total), 2)


def test_the_example_imports_converted_and_runs_on_the_demo_data(
    embedded_worker: Any, demo_tenant: Tenant, owner_tenant: tuple[User, Tenant]
) -> None:
    out = io.StringIO()
    call_command("import_workflow", str(EXAMPLE), "--tenant", demo_tenant.name, stdout=out)
    report = out.getvalue()
    assert "Converted from Jet Admin's format" in report
    for node in (
        "query_1: queryId 'fetchOrders'",
        "filter_2: transform filter 'last30days'",
        "agg_3",
        "chart_4",
    ):
        assert node in report, report
    workflow = Workflow.objects.get(tenant=demo_tenant, name="Monthly Sales Report")
    chart = Widget.objects.get(tenant=demo_tenant, workflow=workflow)
    assert chart.type == "bar" and "chart_4.chart" in json.dumps(chart.config)

    user, _ = owner_tenant
    instance = services.workflow_execute(actor=Actor(user=user), workflow=workflow, input={})
    instance, timed_out = services.instance_wait(instance=instance, timeout_s=60)
    assert not timed_out and instance.status == "succeeded", instance.error
    outputs = dict(NodeRun.objects.filter(instance=instance).values_list("node_id", "output"))
    assert outputs["filter_2"]["filtered"], "the demo's orders reach today: the last 30 days are never empty"
    assert outputs["agg_3"]["aggregated"] == last_30_days_revenue()
    assert outputs["agg_3"]["count"] == len(outputs["filter_2"]["filtered"])
    assert outputs["chart_4"]["chart"]["datasets"][0]["data"] == [outputs["agg_3"]["aggregated"]]


def test_the_api_converts_and_says_what(demo_tenant: Tenant, owner_tenant: tuple[User, Tenant]) -> None:
    user, _ = owner_tenant
    client = APIClient()
    client.force_authenticate(user)
    raw = json.loads(EXAMPLE.read_text())
    response = client.post(
        f"/api/v1/tenants/{demo_tenant.id}/workflows/", {"name": raw["name"], "graph": raw}, format="json"
    )
    assert response.status_code == 201, response.content
    assert [line.split(":")[0] for line in response.json()["converted"]] == [
        "query_1",
        "filter_2",
        "agg_3",
        "chart_4",
    ]
    types = {n["id"]: n["type"] for n in response.json()["graph"]["nodes"]}
    assert types == {
        "start": "start",
        "query_1": "dataQuery",
        "filter_2": "javascript",
        "agg_3": "javascript",
        "chart_4": "javascript",
        "end": "end",
    }


def test_what_cannot_be_converted_is_one_400_naming_each_node(
    demo_tenant: Tenant, owner_tenant: tuple[User, Tenant]
) -> None:
    user, _ = owner_tenant
    client = APIClient()
    client.force_authenticate(user)
    raw = json.loads(EXAMPLE.read_text())
    raw["nodes"][1]["inputs"]["queryId"] = "noSuchQuery"
    raw["nodes"][2]["inputs"]["filter"] = "lastWeek"
    response = client.post(
        f"/api/v1/tenants/{demo_tenant.id}/workflows/", {"name": "bad", "graph": raw}, format="json"
    )
    assert response.status_code == 400
    listed = {(e["node_id"], e["field"]) for e in response.json()["error"]["details"]["graph"]}
    assert listed == {("query_1", "inputs.queryId"), ("filter_2", "inputs.filter")}
    assert not Workflow.objects.filter(tenant=demo_tenant, name="bad").exists()


def test_export_import_round_trips_are_stable(demo_tenant: Tenant, tmp_path: Path) -> None:
    call_command("import_workflow", str(EXAMPLE), "--tenant", demo_tenant.name, stdout=io.StringIO())
    first = Workflow.objects.get(tenant=demo_tenant, name="Monthly Sales Report")
    graphs = [first.current_version.graph]
    source = first
    for round_trip in (1, 2):
        exported = tmp_path / f"export-{round_trip}.json"
        call_command("export_workflow", str(source.id), "--output", str(exported), stderr=io.StringIO())
        name = f"Copy {round_trip}"
        call_command(
            "import_workflow",
            str(exported),
            "--name",
            name,
            "--tenant",
            demo_tenant.name,
            stdout=io.StringIO(),
        )
        source = Workflow.objects.get(tenant=demo_tenant, name=name)
        graphs.append(source.current_version.graph)
    assert graphs[0] == graphs[1] == graphs[2]
