"""Definitions as files: export → wipe → sync → export gives byte-identical files (the demo tenant's
datasource, queries, workflow, widgets and dashboard, plus a datasource with a secret read from an
environment variable); a sync shows its plan before applying it; a change made in jetadmin since the
export is a conflict that stops the sync; a refused step applies nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from apps.dashboards.models import Dashboard
from apps.datasources import services as datasources
from apps.datasources.models import Datasource
from apps.queries.models import DataQuery
from apps.tenancy.models import Tenant
from apps.tenancy.services import Actor
from apps.widgets.models import Widget
from apps.workflows import services as workflows
from apps.workflows.models import Workflow
from jetadmin import demo

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "tok-" + "x" * 24


@pytest.fixture
def tenant(make_user: Any, make_tenant: Any, settings: Any, tmp_path: Path) -> Tenant:
    user = make_user()
    tenant = make_tenant("Definitions", owner=user)
    actor = Actor(user=user)
    report = demo.ensure_sales_demo(actor=actor, tenant=tenant)
    demo.ensure_dashboard_demo(actor=actor, tenant=tenant, workflow=report)
    datasources.datasource_create(
        actor=actor,
        tenant=tenant,
        name="Billing API",
        type="rest",
        config={"base_url": "http://127.0.0.1:1/api", "auth_type": "bearer", "token": SECRET},
    )
    workflows.workflow_update(actor=actor, workflow=report, on_failure={"workflow": str(report.id)})
    return tenant


def files_of(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*.json"))}


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def wipe(tenant: Tenant) -> None:
    for model in (Dashboard, Widget, Workflow, DataQuery, Datasource):
        model.objects.filter(tenant=tenant).delete()


def test_export_wipe_sync_export_is_byte_identical(
    tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    code, out, _ = run("export_tenant", str(first), "--tenant", str(tenant.id))
    assert code == 0 and "1 dashboards" in out
    exported = files_of(first)
    kinds = {name.split("/")[0] for name in exported}
    assert kinds == {"jetadmin.json", "datasources", "queries", "workflows", "widgets", "dashboards"}
    assert all(SECRET.encode() not in text for text in exported.values())  # never written
    billing = next(json.loads(t) for n, t in exported.items() if n.startswith("datasources/billing-api."))
    assert billing["secrets"] == {"token": "${JETADMIN_SECRET_BILLING_API_TOKEN}"}

    wipe(tenant)
    code, out, _ = run("sync_tenant", str(first), "--tenant", tenant.name)  # the plan only
    assert code == 0 and "Plan only" in out
    assert out.count("+ create") == len(exported) - 1 and not Workflow.objects.filter(tenant=tenant).exists()

    code, _, err = run("sync_tenant", str(first), "--tenant", tenant.name, "--apply")
    assert code == 2 and "JETADMIN_SECRET_BILLING_API_TOKEN" in err  # a create needs its secret
    assert not Datasource.objects.filter(tenant=tenant).exists()  # and nothing was applied

    monkeypatch.setenv("JETADMIN_SECRET_BILLING_API_TOKEN", SECRET)
    code, out, err = run("sync_tenant", str(first), "--tenant", tenant.name, "--apply")
    assert code == 0, err
    assert (
        datasources.full_config(Datasource.objects.get(tenant=tenant, name="Billing API"))["token"] == SECRET
    )

    run("export_tenant", str(second), "--tenant", str(tenant.id))
    assert files_of(second) == exported  # byte-identical
    code, out, _ = run("sync_tenant", str(second), "--tenant", tenant.name)
    assert code == 0 and "already matches" in out


def test_a_change_made_in_jetadmin_since_the_export_is_a_conflict(tenant: Tenant, tmp_path: Path) -> None:
    run("export_tenant", str(tmp_path), "--tenant", str(tenant.id))
    workflow = Workflow.objects.get(tenant=tenant)
    path = next((tmp_path / "workflows").glob(f"*.{str(workflow.id)[:8]}.json"))
    data = json.loads(path.read_text())
    data["description"] = "Edited in Git"
    path.write_text(json.dumps(data, indent=2))
    dashboard_file = next((tmp_path / "dashboards").glob("*.json"))
    board = json.loads(dashboard_file.read_text())
    board["refresh_s"] = 120
    dashboard_file.write_text(json.dumps(board, indent=2))

    workflows.workflow_update(actor=Actor(), workflow=workflow, description="Edited in the browser")
    code, out, err = run("sync_tenant", str(tmp_path), "--tenant", tenant.name, "--apply")
    assert code == 1 and "! conflict" in out and str(workflow.id) in out and "Nothing was applied" in err
    assert "~ update   dashboard" in out
    assert Dashboard.objects.get(tenant=tenant).refresh_s != 120  # nothing applied, not even the rest
    workflow.refresh_from_db()
    assert workflow.description == "Edited in the browser"

    code, out, _ = run("sync_tenant", str(tmp_path), "--tenant", tenant.name, "--apply", "--force")
    assert code == 0
    workflow.refresh_from_db()
    assert workflow.description == "Edited in Git" and Dashboard.objects.get(tenant=tenant).refresh_s == 120


def test_deleted_files_delete_and_a_refused_step_applies_nothing(tenant: Tenant, tmp_path: Path) -> None:
    run("export_tenant", str(tmp_path), "--tenant", str(tenant.id))
    dashboard_file = next((tmp_path / "dashboards").glob("*.json"))
    dashboard_file.unlink()
    workflow_file = next((tmp_path / "workflows").glob("*.json"))
    data = json.loads(workflow_file.read_text())
    data["graph"] = {"nodes": [{"id": "a", "type": "no-such-type"}], "edges": []}
    workflow_file.write_text(json.dumps(data))
    code, _, err = run("sync_tenant", str(tmp_path), "--tenant", tenant.name, "--apply")
    assert code == 2 and workflow_file.name in err and "nothing was applied" in err
    assert Dashboard.objects.filter(tenant=tenant).exists()  # its delete was rolled back

    workflow_file.write_text(json.dumps({**data, "graph": json.loads(json.dumps(data["graph"]))})[:-5])
    code, _, err = run("sync_tenant", str(tmp_path), "--tenant", tenant.name)
    assert code == 2 and "not valid JSON" in err and workflow_file.name in err
