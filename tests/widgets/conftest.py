"""Widget test fixtures: a tenant with a workflow that produces rows, and a bar chart widget on it."""

from __future__ import annotations

from typing import Any

import pytest

from apps.tenancy import services as tenancy
from apps.widgets import services
from apps.workflows import services as workflows
from tests.workflows.conftest import _embedded_session, embedded_worker

__all__ = ["_embedded_session", "embedded_worker", "shop"]

ROWS = [{"month": "Jan", "sales": 3}, {"month": "Feb", "sales": 5}, {"month": "Mar", "sales": 4}]
# start -> sales (rows of the input, limited to ``input.limit``) -> end
GRAPH = {
    "nodes": [
        {"id": "start", "type": "start"},
        {
            "id": "sales",
            "type": "transform",
            "inputs": {"data": "{{input.rows}}", "limit": "{{input.limit}}"},
        },
        {"id": "end", "type": "end", "inputs": {"output": "{{sales}}"}},
    ],
    "edges": [{"from": "start", "to": "sales"}, {"from": "sales", "to": "end"}],
}
BAR = {"data": "{{ctx.sales.result}}", "x": "month", "y": "sales"}


@pytest.fixture
def shop(make_user, make_tenant) -> dict[str, Any]:
    owner = make_user()
    tenant = make_tenant("Shop", owner=owner)
    actor = tenancy.Actor(user=owner)
    workflow = workflows.workflow_create(actor=actor, tenant=tenant, name="Sales", graph=GRAPH)
    widget = services.widget_create(
        actor=actor,
        tenant=tenant,
        name="Sales by month",
        type="bar",
        config=BAR,
        workflow=workflow.id,
        workflow_config={"input_params": {"rows": ROWS, "limit": 3}},
    )
    return {"owner": owner, "tenant": tenant, "workflow": workflow, "widget": widget, "actor": actor}
