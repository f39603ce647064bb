"""Demo widgets (``manage.py bootstrap_demo``): a revenue chart and an order table on the demo report."""

from __future__ import annotations

from apps.tenancy.models import Tenant
from apps.tenancy.services import Actor
from apps.widgets import services
from apps.widgets.models import Widget
from apps.workflows.models import Workflow

DEMO_PARAMS = {"since": "2026-01-01"}


def ensure_widgets_demo(*, actor: Actor, tenant: Tenant, workflow: Workflow) -> list[Widget]:
    wanted = [
        ("Revenue by month", "bar", {"data": "{{ctx.monthly.result}}", "x": "month", "y": ["revenue"]}),
        ("Orders by month", "table", {"rows": "{{ctx.monthly.result}}", "page_size": 12}),
    ]
    widgets = []
    for name, kind, config in wanted:
        widget = Widget.objects.filter(tenant=tenant, name=name).first() or services.widget_create(
            actor=actor,
            tenant=tenant,
            name=name,
            type=kind,
            config=config,
            workflow=workflow.id,
            workflow_config={"input_params": DEMO_PARAMS},
        )
        widgets.append(widget)
    return widgets
