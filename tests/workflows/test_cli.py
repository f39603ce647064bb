"""The workflow commands: run_workflow (progress + output), export_workflow / import_workflow."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from apps.workflows.models import Workflow
from tests.workflows.graphs import SALES_INPUT, SALES_OUTPUT, SALES_REPORT

pytestmark = pytest.mark.django_db(transaction=True)


def test_run_workflow_shows_progress_and_output(tmp_path, embedded_worker, owner_tenant):
    path = tmp_path / "sales.json"
    path.write_text(json.dumps(SALES_REPORT))
    out = io.StringIO()
    call_command("run_workflow", str(path), "--input", json.dumps(SALES_INPUT), stdout=out)
    text = out.getvalue()
    assert "[####################] end" in text and "in loop: 3/3 done" in text
    assert json.loads(text[text.index("{") :]) == SALES_OUTPUT


def test_run_workflow_reports_invalid_graphs(tmp_path, owner_tenant):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"nodes": [{"id": "a", "type": "nope"}], "edges": []}))
    with pytest.raises(CommandError, match=r"a\.type: Unknown node type 'nope'"):
        call_command("run_workflow", str(path))


def test_export_import_round_trip(tmp_path, owner_tenant):
    _, tenant = owner_tenant
    source = tmp_path / "in.json"
    source.write_text(json.dumps({"name": "Sales", "graph": SALES_REPORT}))
    call_command("import_workflow", str(source), "--tenant", tenant.name, stdout=io.StringIO())
    workflow = Workflow.objects.get(tenant=tenant, name="Sales")
    exported = tmp_path / "out.json"
    call_command("export_workflow", str(workflow.id), "--output", str(exported), stderr=io.StringIO())
    data = json.loads(exported.read_text())
    assert data["name"] == "Sales" and data["version"] == 1
    assert [n["id"] for n in data["graph"]["nodes"]] == [n["id"] for n in SALES_REPORT["nodes"]]
    call_command("import_workflow", str(exported), "--name", "Copy", stdout=io.StringIO())
    assert Workflow.objects.get(name="Copy").current_version.graph == data["graph"]


def test_import_never_duplicates_a_workflow_name(tmp_path, owner_tenant):
    """Importing a file whose workflow already exists is refused with a way out; --update saves the
    graph as that workflow's new version instead of a second workflow of the same name."""
    _, tenant = owner_tenant
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"name": "Report", "graph": SALES_REPORT}))
    call_command("import_workflow", str(path), tenant=str(tenant.id))
    with pytest.raises(CommandError, match=r"already exists.*--update"):
        call_command("import_workflow", str(path), tenant=str(tenant.id))
    changed = {**SALES_REPORT, "nodes": [*SALES_REPORT["nodes"]]}
    changed["nodes"][-1] = {**changed["nodes"][-1], "inputs": {"output": "changed"}}
    path.write_text(json.dumps({"name": "Report", "graph": changed}))
    call_command("import_workflow", str(path), tenant=str(tenant.id), update=True)
    workflow = Workflow.objects.get(tenant=tenant, name="Report")
    assert Workflow.objects.filter(tenant=tenant, name="Report").count() == 1
    assert workflow.current_version.version == 2
    assert workflow.current_version.graph["nodes"][-1]["inputs"] == {"output": "changed"}
