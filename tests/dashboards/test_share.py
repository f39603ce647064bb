"""A dashboard's share link over /ws/: its session replays and subscribes to that dashboard's widgets
and nothing else — no run is started (execute, refresh), no input sent, no run joined, no widget of
another dashboard; a revoked or expired link does not authenticate."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from apps.dashboards import services as dashboards
from apps.dashboards.models import ShareLink
from apps.tenancy.selectors import tenant_access
from apps.widgets import services as widgets
from apps.workflows.models import WorkflowInstance
from tests.widgets.conftest import BAR
from tests.workflows.test_streams import connect, receive, run, send

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_share_session_only_replays_its_dashboards_widgets(
    shop: dict[str, Any], embedded_worker: Any
) -> None:
    actor, tenant, widget = shop["actor"], shop["tenant"], shop["widget"]
    access = tenant_access(user=shop["owner"], api_key=None, tenant_id=tenant.id)
    finished = widgets.widget_run(access=access, actor=actor, widget=widget).instance
    other = widgets.widget_create(
        actor=actor, tenant=tenant, name="Elsewhere", type="bar", config=BAR, workflow=shop["workflow"].id
    )
    board = dashboards.dashboard_create(
        actor=actor,
        tenant=tenant,
        name="Shared",
        layout=[{"widget": str(widget.id), "x": 0, "y": 0, "w": 6, "h": 4}],
    )
    link, raw = dashboards.share_create(actor=actor, dashboard=board, days=1)
    for _ in range(100):  # the run is quick; replay needs it finished
        finished.refresh_from_db()
        if finished.status == "succeeded":
            break
        time.sleep(0.05)
    runs_before = WorkflowInstance.objects.count()

    async def scenario() -> None:
        ws = await connect()
        await send(ws, "authenticate", token=raw)
        assert (await receive(ws))["data"] == {"user": None, "dashboard_id": str(board.id)}
        await send(ws, "widget_workflow_connect", widget_id=str(widget.id), mode="replay")
        got = await receive(ws)
        assert got["event"] == "widget_workflow_connected", got
        assert got["data"]["instance_id"] == str(finished.id) and got["data"]["processed_data"]["labels"]
        await send(ws, "widget_workflow_connect", widget_id=str(widget.id), mode="execute")
        assert (await receive(ws))["data"]["code"] == "permission_denied"
        await send(ws, "widget_refresh", widget_id=str(widget.id))
        assert (await receive(ws))["data"]["code"] == "permission_denied"
        await send(ws, "widget_workflow_connect", widget_id=str(other.id), mode="replay")
        assert (await receive(ws))["data"]["code"] == "not_found"
        await send(ws, "widget_send_input", widget_id=str(widget.id), instance_id=str(finished.id), data={})
        assert (await receive(ws))["data"]["code"] == "not_authenticated"
        await send(ws, "workflow_run_join", instance_id=str(finished.id))
        assert (await receive(ws))["data"]["code"] == "not_authenticated"
        await ws.disconnect()

        expired = timezone.now() - timedelta(seconds=1)
        await database_sync_to_async(ShareLink.objects.filter(pk=link.pk).update)(expires_at=expired)
        ws = await connect()
        await send(ws, "authenticate", token=raw)
        assert (await receive(ws))["data"]["code"] == "not_authenticated"
        await ws.disconnect()

    run(scenario)
    assert WorkflowInstance.objects.count() == runs_before  # the link started nothing
