"""The widget-workflow bridge over ``/ws/`` (apps/widgets/bridge.py, jetadmin/consumers.py): the
three connect modes, processed data per widget and parameters, input from a widget, refresh,
disconnect, and every refusal. Runs execute on the embedded worker, whose threads process and publish
through the configured channel layer (in-memory on SQLite, Redis in the PostgreSQL pass)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from django.db import connection

from apps.tenancy import services as tenancy
from apps.tenancy.models import Role
from apps.widgets import services as widgets
from apps.workflows import services as workflows
from apps.workflows.models import NodeRun, WorkflowInstance
from tests.conftest import add_member
from tests.widgets.conftest import BAR, ROWS
from tests.workflows.test_streams import connect, receive, run, send, token

pytestmark = pytest.mark.django_db(transaction=True)

CHART = {"labels": ["Jan", "Feb", "Mar"], "datasets": [{"label": "sales", "data": [3, 5, 4]}]}
# start -> pause -> sales -> end: long enough to connect while it runs
SLOW = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "pause", "type": "delay", "inputs": {"seconds": 0.3}},
        {
            "id": "sales",
            "type": "transform",
            "inputs": {"data": "{{input.rows}}", "limit": "{{input.limit}}"},
        },
        {"id": "end", "type": "end", "inputs": {"output": "{{sales}}"}},
    ],
    "edges": [
        {"from": "start", "to": "pause"},
        {"from": "pause", "to": "sales"},
        {"from": "sales", "to": "end"},
    ],
}
# start -> form (waits for a person or a widget) -> sales (limited by what the widget sent) -> end
FORM = {
    "nodes": [
        {"id": "start", "type": "start"},
        {
            "id": "form",
            "type": "dataCollection",
            "inputs": {"schema": {"type": "object", "properties": {"limit": {"type": "integer"}}}},
        },
        {
            "id": "sales",
            "type": "transform",
            "inputs": {"data": "{{input.rows}}", "limit": "{{ctx.__widgetInput.limit}}"},
        },
        {"id": "end", "type": "end", "inputs": {"output": "{{sales}}"}},
    ],
    "edges": [
        {"from": "start", "to": "form"},
        {"from": "form", "to": "sales", "sourceHandle": "submitted"},
        {"from": "sales", "to": "end"},
    ],
}


def widget_on(shop: dict[str, Any], graph: dict[str, Any], name: str, config: Any = None) -> Any:
    workflow = workflows.workflow_create(actor=shop["actor"], tenant=shop["tenant"], name=name, graph=graph)
    return widgets.widget_create(
        actor=shop["actor"],
        tenant=shop["tenant"],
        name=name,
        type="bar",
        config=config or BAR,
        workflow=workflow.id,
        workflow_config={"input_params": {"rows": ROWS, "limit": 3}},
    )


async def signed_in(raw_token: str) -> Any:
    ws = await connect()
    await send(ws, "authenticate", token=raw_token)
    assert (await receive(ws))["event"] == "authenticated"
    return ws


async def until_status(ws: Any, timeout: float = 20) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        msg = await receive(ws, timeout)
        got.append(msg)
        if msg["event"] == "widget_workflow_status":
            return got


async def executed(ws: Any, widget: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Connect ``widget`` in execute mode: its ``widget_workflow_connected`` data, then the messages
    up to the run's status."""
    await send(ws, "widget_workflow_connect", widget_id=str(widget.id), mode="execute")
    hello = await receive(ws)
    assert hello["event"] == "widget_workflow_connected", hello
    return hello["data"], await until_status(ws)


def test_execute_streams_processed_data_then_the_status(shop, embedded_worker):
    widget = widget_on(shop, SLOW, "Slow sales")
    raw = token(shop["owner"])

    async def scenario() -> None:
        ws = await signed_in(raw)
        await send(ws, "widget_workflow_connect", widget_id=str(widget.id), mode="execute")
        hello = await receive(ws)
        assert hello["event"] == "widget_workflow_connected", hello
        data = hello["data"]
        assert data["mode"] == "execute" and data["widget_id"] == str(widget.id)
        assert data["initial_context"]["input"] == {"rows": ROWS, "limit": 3}
        assert "sales" not in data["initial_context"]  # connected before the run got there
        rest = await until_status(ws)
        updates = [m["data"] for m in rest if m["event"] == "widget_context_update"]
        assert updates and updates[0]["node_id"] == "sales" and updates[0]["processed_data"] == CHART
        assert all(u["instance_id"] == data["instance_id"] for u in updates)
        status = rest[-1]["data"]
        assert status["status"] == "succeeded" and status["processed_data"] == CHART
        assert status["provenance"]["instance_id"] == data["instance_id"]
        assert status["provenance"]["workflow"] == str(widget.workflow_id)
        assert [m for m in rest if m["event"] == "widget_workflow_error"] == []
        assert await ws.receive_nothing(timeout=0.5)
        await ws.disconnect()

    run(scenario)
    assert WorkflowInstance.objects.get(pk=widget.runs.get().instance_id).trigger == "widget"


def test_viewers_share_a_run_per_parameters_and_never_see_each_others_data(shop, embedded_worker):
    widget = widget_on(shop, SLOW, "Shared")
    raw = token(shop["owner"])

    async def scenario() -> None:
        a, b, c = await signed_in(raw), await signed_in(raw), await signed_in(raw)
        await send(a, "widget_workflow_connect", widget_id=str(widget.id), mode="execute")
        first = (await receive(a))["data"]["instance_id"]
        await send(b, "widget_workflow_connect", widget_id=str(widget.id), mode="execute")
        assert (await receive(b))["data"]["instance_id"] == first  # the run in flight is shared
        await send(
            c, "widget_workflow_connect", widget_id=str(widget.id), mode="execute", input_params={"limit": 1}
        )
        other = (await receive(c))["data"]["instance_id"]
        assert other != first
        for ws, instance, labels in ((a, first, 3), (b, first, 3), (c, other, 1)):
            rest = await until_status(ws)
            assert {m["data"]["instance_id"] for m in rest} == {instance}
            assert len(rest[-1]["data"]["processed_data"]["labels"]) == labels
            assert await ws.receive_nothing(timeout=0.3)
            await ws.disconnect()

    run(scenario)


def test_subscribe_and_replay(shop, embedded_worker):
    widget = widget_on(shop, SLOW, "Watched")
    raw = token(shop["owner"])
    elsewhere = workflows.workflow_execute(
        actor=shop["actor"], workflow=widget.workflow, input={"rows": ROWS, "limit": 2}
    )

    async def scenario() -> None:
        ws = await signed_in(raw)
        await send(
            ws,
            "widget_workflow_connect",
            widget_id=str(widget.id),
            mode="subscribe",
            instance_id=str(elsewhere.id),
        )
        hello = (await receive(ws))["data"]
        assert hello["mode"] == "subscribe" and hello["instance_id"] == str(elsewhere.id)
        rest = await until_status(ws)
        assert rest[-1]["data"]["processed_data"]["labels"] == ["Jan", "Feb"]
        await send(ws, "widget_workflow_connect", widget_id=str(widget.id), mode="replay")
        replay = await receive(ws)
        assert replay["event"] == "widget_workflow_connected" and replay["data"]["mode"] == "replay"
        assert replay["data"]["instance_id"] == str(elsewhere.id)
        assert replay["data"]["processed_data"]["labels"] == ["Jan", "Feb"]
        assert replay["data"]["provenance"]["finished_at"]
        assert replay["data"]["initial_context"]["sales"] == {"result": ROWS[:2]}
        assert await ws.receive_nothing(timeout=0.5)  # replay is one message
        await send(ws, "widget_workflow_connect", widget_id=str(widget.id), mode="subscribe")
        assert (await receive(ws))["data"]["code"] == "not_found"
        await ws.disconnect()

    run(scenario)


def test_refusals(shop, embedded_worker, make_user, make_tenant):
    widget = widget_on(shop, SLOW, "Guarded")
    outsider = make_user()
    other = make_tenant("Other", owner=outsider)
    foreign = widget_on({"actor": tenancy.Actor(user=outsider), "tenant": other}, SLOW, "Theirs")
    foreign_run = workflows.workflow_execute(actor=tenancy.Actor(user=outsider), workflow=foreign.workflow)
    viewer, blind = make_user(), make_user()
    add_member(shop["tenant"], viewer, "viewer")
    membership = add_member(shop["tenant"], blind, "viewer")
    membership.role = Role.objects.create(tenant=shop["tenant"], name="blind", permissions=["workflow.view"])
    membership.save()
    tokens = {"owner": token(shop["owner"]), "viewer": token(viewer), "blind": token(blind)}
    wid = str(widget.id)

    async def refused(ws: Any, code: str, **data: Any) -> dict[str, Any]:
        await send(ws, "widget_workflow_connect", **data)
        reply = await receive(ws)
        assert reply["event"] == "error" and reply["data"]["code"] == code, reply
        return dict(reply["data"])

    async def scenario() -> None:
        anonymous = await connect()
        await refused(anonymous, "not_authenticated", widget_id=wid, mode="execute")
        owner = await signed_in(tokens["owner"])
        await refused(owner, "bad_message", widget_id=wid, mode="stream")
        await refused(owner, "not_found", widget_id=str(foreign.id), mode="execute")
        await refused(owner, "not_found", widget_id="not-a-uuid", mode="replay")
        await refused(owner, "not_found", widget_id=wid, mode="subscribe", instance_id=str(foreign_run.id))
        await send(owner, "widget_send_input", widget_id=wid, instance_id=str(foreign_run.id), data={})
        assert (await receive(owner))["data"]["code"] == "not_found"
        await refused(owner, "bad_message", widget_id=wid, mode="execute", input_params=[1])
        blind_ws = await signed_in(tokens["blind"])
        await refused(blind_ws, "permission_denied", widget_id=wid, mode="execute")
        viewer_ws = await signed_in(tokens["viewer"])
        error = await refused(
            viewer_ws, "permission_denied", widget_id=wid, mode="execute", input_params={"sql": "x"}
        )
        assert "sql" in error["message"] and "workflow.run" in error["message"]
        await send(
            viewer_ws, "widget_workflow_connect", widget_id=wid, mode="execute", input_params={"limit": 2}
        )
        assert (await receive(viewer_ws))["event"] == "widget_workflow_connected"  # declared: allowed
        for ws in (anonymous, owner, blind_ws, viewer_ws):
            await ws.disconnect()

    run(scenario)


def test_send_input_resumes_the_waiting_run(shop, embedded_worker):
    widget = widget_on(shop, FORM, "Form")
    raw = token(shop["owner"])

    async def scenario() -> None:
        ws = await signed_in(raw)
        await send(ws, "widget_workflow_connect", widget_id=str(widget.id), mode="execute")
        iid = (await receive(ws))["data"]["instance_id"]
        for _ in range(100):  # until the form waits
            if await asyncio.to_thread(_status, iid, "form") == "waiting":
                break
            await asyncio.sleep(0.05)
        await send(ws, "widget_send_input", widget_id=str(widget.id), instance_id=iid, data={"limit": 2})
        accepted = await receive(ws)
        assert accepted["event"] == "widget_input_accepted", accepted
        assert accepted["data"] == {
            "widget_id": str(widget.id),
            "instance_id": iid,
            "context_version": 1,
            "resumed": "form",
        }
        rest = await until_status(ws)
        assert rest[-1]["data"]["processed_data"]["labels"] == ["Jan", "Feb"]
        # the run has ended: the input is still written (CAS), nothing waits for it any more
        await send(ws, "widget_send_input", widget_id=str(widget.id), instance_id=iid, data={"limit": 1})
        assert (await receive(ws))["data"]["resumed"] is None
        await send(ws, "widget_send_input", widget_id=str(widget.id), instance_id=iid)
        assert (await receive(ws))["data"]["code"] == "bad_message"
        await ws.disconnect()

    run(scenario)
    instance = WorkflowInstance.objects.get(pk=widget.runs.get().instance_id)
    assert instance.context == {"__widgetInput": {"limit": 1}} and instance.context_version == 2


def _status(iid: str, node_id: str) -> str:
    try:
        return str(
            NodeRun.objects.filter(instance_id=iid, node_id=node_id).values_list("status", flat=True).first()
        )
    finally:
        connection.close()


def test_refresh_disconnect_and_their_limits(shop, embedded_worker, settings):
    settings.JETADMIN_WIDGET_REFRESH_MIN_S = 1.5
    widget = widget_on(shop, SLOW, "Refreshed")
    raw = token(shop["owner"])

    async def scenario() -> None:
        ws = await signed_in(raw)
        began = asyncio.get_running_loop().time()
        first = (await executed(ws, widget))[0]["instance_id"]
        await asyncio.sleep(
            max(0.0, began + 2.2 - asyncio.get_running_loop().time())
        )  # first run: > 1.5 s old
        await send(ws, "widget_refresh", widget_id=str(widget.id))
        hello = (await receive(ws))["data"]
        assert hello["instance_id"] != first  # a new run, not the recent (reusable) one
        await send(ws, "widget_refresh", widget_id=str(widget.id))
        limited = await receive(ws)
        assert limited["data"]["code"] == "rate_limited" and "1.5 s" in limited["data"]["message"]
        await send(ws, "widget_workflow_disconnect", widget_id=str(widget.id))
        assert (await receive(ws))["event"] == "widget_workflow_disconnected"
        assert await ws.receive_nothing(timeout=1.0)  # the refreshed run's updates no longer come
        await ws.disconnect()

    run(scenario)


def test_widget_input_and_50_node_completions_never_lose_a_write(shop, embedded_worker):
    """50 nodes of one run finish while widget inputs are written: every node's output and every
    input write survive (the input's compare-and-set retries against concurrent writers)."""
    fan = {
        "nodes": [{"id": "start", "type": "start"}, {"id": "go", "type": "fanout"}]
        + [{"id": f"n{i}", "type": "transform", "inputs": {"data": [{"i": i}]}} for i in range(50)]
        + [{"id": "join", "type": "join", "inputs": {"mode": "all"}}, {"id": "end", "type": "end"}],
        "edges": [{"from": "start", "to": "go"}]
        + [{"from": "go", "to": f"n{i}"} for i in range(50)]
        + [{"from": f"n{i}", "to": "join"} for i in range(50)]
        + [{"from": "join", "to": "end"}],
    }
    widget = widget_on(shop, fan, "Fan", config={"data": [], "x": "i", "y": "i"})
    instance = widgets.widget_run(
        access=_access(shop), actor=shop["actor"], widget=widget, input_params={}
    ).instance
    writes, errors = 40, []

    def writer(k: int) -> None:
        try:
            for j in range(writes // 4):
                widgets.widget_send_input(actor=shop["actor"], instance=instance, data={"writer": k, "n": j})
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done, timed_out = workflows.instance_wait(instance=instance, timeout_s=60)
    assert not errors and not timed_out
    assert done.status == "succeeded"
    outputs = dict(
        NodeRun.objects.filter(instance=instance, node_id__startswith="n").values_list("node_id", "output")
    )
    assert outputs == {f"n{i}": {"result": [{"i": i}]} for i in range(50)}
    done.refresh_from_db()
    assert done.context_version == writes  # no write lost, none applied twice
    assert done.context["__widgetInput"]["n"] == writes // 4 - 1


def _access(shop: dict[str, Any]) -> Any:
    from apps.tenancy.selectors import tenant_access

    return tenant_access(user=shop["owner"], api_key=None, tenant_id=shop["tenant"].id)


def test_data_that_cannot_be_drawn_keeps_the_last_good_data(shop, embedded_worker, settings):
    settings.JETADMIN_WIDGET_REFRESH_MIN_S = 0
    widget = widget_on(shop, SLOW, "Fragile")
    raw = token(shop["owner"])

    async def scenario() -> None:
        ws = await signed_in(raw)
        good = (await executed(ws, widget))[1][-1]["data"]
        assert good["processed_data"] == CHART
        await asyncio.to_thread(_break_config, widget.id)
        await send(ws, "widget_refresh", widget_id=str(widget.id))
        hello = (await receive(ws))["data"]
        rest = await until_status(ws)
        errors = [m["data"] for m in rest if m["event"] == "widget_workflow_error"]
        assert errors and all(e["instance_id"] == hello["instance_id"] for e in errors)
        assert errors[0]["error"]["code"] == "widget_data" and errors[0]["error"]["recoverable"] is True
        assert "no field 'profit'" in errors[0]["error"]["message"]
        assert [m for m in rest if m["event"] == "widget_context_update"] == []  # nothing drawable came
        status = rest[-1]["data"]
        assert status["status"] == "succeeded"
        assert status["processed_data"] == CHART and status["provenance"] == good["provenance"]  # last good
        await ws.disconnect()

    run(scenario)


def _break_config(widget_id: Any) -> None:
    try:
        from apps.widgets.models import Widget

        Widget.objects.filter(pk=widget_id).update(config={**BAR, "y": "profit"})
    finally:
        connection.close()


def test_a_run_canceled_through_the_api_reaches_its_widget(shop, embedded_worker):
    """The cancel is journaled by the web side (here, this thread), not by a worker that runs the run:
    the bridge still finds the run's widgets and sends them the end."""
    widget = widget_on(shop, FORM, "Canceled")  # waits in its form until canceled
    raw = token(shop["owner"])

    async def scenario() -> None:
        ws = await signed_in(raw)
        await send(ws, "widget_workflow_connect", widget_id=str(widget.id), mode="execute")
        iid = (await receive(ws))["data"]["instance_id"]
        for _ in range(100):
            if await asyncio.to_thread(_status, iid, "form") == "waiting":
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(_cancel, shop, iid)
        rest = await until_status(ws)
        assert rest[-1]["data"]["status"] == "canceled"
        errors = [m["data"]["error"] for m in rest if m["event"] == "widget_workflow_error"]
        assert errors and errors[-1]["code"] == "run_canceled" and errors[-1]["recoverable"] is True
        assert await ws.receive_nothing(timeout=0.5)  # nothing after the status
        await ws.disconnect()

    run(scenario)


def _cancel(shop: dict[str, Any], iid: str) -> None:
    try:
        workflows.instance_cancel(actor=shop["actor"], instance=WorkflowInstance.objects.get(pk=iid))
    finally:
        connection.close()
