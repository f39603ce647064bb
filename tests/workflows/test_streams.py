"""Run streams over ``/ws/`` (jetadmin/consumers.py, apps/workflows/streams.py), through the real ASGI
application with Channels' communicator: authentication, access checks, replay, live delivery, holes
filled from the journal, frame and rate limits. The runs execute on the embedded worker, whose threads
publish through the configured channel layer (in-memory on SQLite, Redis in the PostgreSQL pass)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing.websocket import WebsocketCommunicator
from django.test import Client

from apps.tenancy import services as tenancy
from apps.tenancy.models import Role
from apps.workflows import services, streams
from apps.workflows.models import InstanceEvent
from jetadmin.consumers import EventsConsumer
from tests.conftest import PASSWORD, add_member

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = [(b"origin", b"http://127.0.0.1")]
# start -> 12 short delays in a row -> end: a run that lasts long enough to join it in the middle.
SLOW = {
    "nodes": [{"id": "start", "type": "start"}]
    + [{"id": f"d{i}", "type": "delay", "inputs": {"seconds": 0.05}} for i in range(12)]
    + [{"id": "end", "type": "end", "inputs": {"output": "{{d11}}"}}],
    "edges": [{"from": "start", "to": "d0"}]
    + [{"from": f"d{i}", "to": f"d{i + 1}"} for i in range(11)]
    + [{"from": "d11", "to": "end"}],
}
QUICK = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "end", "type": "end", "inputs": {"output": "{{input.x}}"}},
    ],
    "edges": [{"from": "start", "to": "end"}],
}


def run(scenario: Any) -> Any:
    return async_to_sync(scenario)()


async def connect(headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    from jetadmin.asgi import application

    ws = WebsocketCommunicator(application, "/ws/", headers=ORIGIN + (headers or []))
    connected, _ = await ws.connect()
    assert connected
    return ws


async def send(ws: WebsocketCommunicator, event: str, **data: Any) -> None:
    await ws.send_json_to({"event": event, "data": data})


async def receive(ws: WebsocketCommunicator, timeout: float = 10) -> dict[str, Any]:
    return dict(await ws.receive_json_from(timeout=timeout))


async def stream_until_end(ws: WebsocketCommunicator, timeout: float = 30) -> list[dict[str, Any]]:
    """Messages until the run's terminal status update. Quiet for a moment, it pings, as the browser
    client does: the pong's ``last_seq`` is how a dropped *last* event is found (the server sends it
    before the pong)."""
    got: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await ws.receive_nothing(timeout=0.5):
            await send(ws, "ping")
            continue
        msg = await receive(ws)
        if msg["event"] == "pong":
            continue
        got.append(msg)
        if msg["event"] == "workflow_status_update" and msg["data"]["status"] in {"succeeded", "failed"}:
            return got
    raise AssertionError(f"no end of the run in {timeout}s: {got[-3:]}")


async def joined(owner_token: str, iid: str, after_seq: int = 0) -> WebsocketCommunicator:
    """A connection authenticated by token that has joined ``iid`` (``workflow_run_joined`` read)."""
    ws = await connect()
    await send(ws, "authenticate", token=owner_token)
    await receive(ws)
    await send(ws, "workflow_run_join", instance_id=iid, after_seq=after_seq)
    assert (await receive(ws))["event"] == "workflow_run_joined"
    return ws


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [m["data"]["seq"] for m in messages if "seq" in m["data"]]


def journal(iid: Any) -> list[tuple[int, str, str]]:
    return list(
        InstanceEvent.objects.filter(instance_id=iid).order_by("seq").values_list("seq", "type", "node_id")
    )


@pytest.fixture
def people(make_user, make_tenant):
    owner, stranger, outsider = make_user(), make_user(), make_user()
    tenant = make_tenant("Streams", owner=owner)
    other = make_tenant("Elsewhere", owner=outsider)
    blind = Role.objects.create(tenant=tenant, name="blind", permissions=["query.view"])
    membership = add_member(tenant, stranger, "viewer")
    membership.role = blind
    membership.save()
    return {"owner": owner, "stranger": stranger, "outsider": outsider, "tenant": tenant, "other": other}


def token(user: Any) -> str:
    return tenancy.auth_token_create(user=user)[1]


def start(user: Any, tenant: Any, graph: dict[str, Any], input: Any = None) -> str:
    return str(
        services.workflow_test(actor=tenancy.Actor(user=user), tenant=tenant, graph=graph, input=input).id
    )


def test_joins_are_checked_like_the_api(people, embedded_worker):
    mine = start(people["owner"], people["tenant"], QUICK, {"x": 1})
    foreign = start(people["outsider"], people["other"], QUICK, {"x": 2})
    owner_token, stranger_token = token(people["owner"]), token(people["stranger"])
    key_role = Role.objects.get(tenant=people["tenant"], name="viewer")
    _, api_key = tenancy.api_key_create(
        actor=tenancy.Actor(user=people["owner"]), tenant=people["tenant"], name="ws", role=key_role
    )

    async def scenario() -> None:
        ws = await connect()
        await send(ws, "workflow_run_join", instance_id=mine)
        reply = await receive(ws)
        assert reply["event"] == "error" and reply["data"]["code"] == "not_authenticated"
        await send(ws, "authenticate", token="jat_not-a-real-token")
        assert (await receive(ws))["data"]["code"] == "not_authenticated"
        await send(ws, "authenticate")
        assert (await receive(ws))["data"] == {
            "code": "bad_message",
            "message": "authenticate needs data.token.",
            "field": "token",
        }
        await send(ws, "authenticate", token=owner_token)
        assert (await receive(ws))["event"] == "authenticated"
        for bad in (foreign, "not-a-uuid", "00000000-0000-0000-0000-000000000000", None, 7):
            await send(ws, "workflow_run_join", instance_id=bad)
            reply = await receive(ws)
            assert reply["event"] == "error" and reply["data"]["code"] == "not_found", (bad, reply)
        assert await ws.receive_nothing(timeout=0.2)  # nothing else: no joined, no events
        await send(ws, "workflow_run_join", instance_id=mine, after_seq=-1)
        assert (await receive(ws))["data"]["field"] == "after_seq"
        await ws.disconnect()

        ws = await connect()
        await send(ws, "authenticate", token=stranger_token)  # a member without workflow.view
        assert (await receive(ws))["event"] == "authenticated"
        await send(ws, "workflow_run_join", instance_id=mine)
        reply = await receive(ws)
        assert reply["event"] == "error" and reply["data"]["code"] == "permission_denied"
        assert await ws.receive_nothing(timeout=0.2)
        await ws.disconnect()

        ws = await connect()
        await send(ws, "authenticate", token=api_key)  # an API key whose role has workflow.view
        assert (await receive(ws))["event"] == "authenticated"
        await send(ws, "workflow_run_join", instance_id=foreign)
        assert (await receive(ws))["data"]["code"] == "not_found"
        await send(ws, "workflow_run_join", instance_id=mine)
        assert (await receive(ws))["event"] == "workflow_run_joined"
        await ws.disconnect()

    services.instance_wait(instance=_instance(mine), timeout_s=10)
    run(scenario)


def _instance(iid: str) -> Any:
    from apps.workflows.models import WorkflowInstance

    return WorkflowInstance.objects.get(pk=iid)


def test_session_cookie_authenticates_and_a_late_join_replays_then_streams_live(people, embedded_worker):
    client = Client()
    assert client.login(username=people["owner"].username, password=PASSWORD)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    iid = start(people["owner"], people["tenant"], SLOW)
    sent, failed = streams.publisher.sent, streams.publisher.failed

    async def scenario() -> list[dict[str, Any]]:
        ws = await connect([(b"cookie", cookie)])
        await asyncio.sleep(0.25)  # the run is under way: some events exist, more will come
        await send(ws, "workflow_run_join", instance_id=iid)
        joined = await receive(ws)
        assert joined["event"] == "workflow_run_joined" and joined["data"]["instance_id"] == iid
        assert joined["data"]["last_seq"] > 0
        got = await stream_until_end(ws)
        await send(ws, "ping", n=1)
        pong = await receive(ws)
        while pong["data"].get("n") != 1:  # the answer to a ping stream_until_end sent while waiting
            pong = await receive(ws)
        assert pong == {"event": "pong", "data": {"n": 1, "last_seq": {iid: got[-1]["data"]["seq"]}}}
        await ws.disconnect()
        return got

    got = run(scenario)
    assert streams.publisher.sent > sent and streams.publisher.failed == failed  # live, through the layer
    rows = journal(iid)
    assert seqs(got) == [seq for seq, _, _ in rows] == list(range(1, len(rows) + 1))  # every event, once
    updates = [m["data"] for m in got if m["event"] == "workflow_node_update"]
    for node_id in ["start", *(f"d{i}" for i in range(12)), "end"]:
        statuses = [u["status"] for u in updates if u["node_id"] == node_id]
        assert statuses[0] == "queued" and "running" in statuses and statuses[-1] == "succeeded", statuses
    assert not [m for m in got if m["event"] == "workflow_event"]  # every event here is a status change
    last = got[-1]["data"]
    assert last["status"] == "succeeded" and last["last_seq"] == last["seq"] == len(rows)


def test_rejoin_with_after_seq_sends_exactly_what_was_missed(people, embedded_worker):
    iid = start(people["owner"], people["tenant"], QUICK, {"x": 5})
    services.instance_wait(instance=_instance(iid), timeout_s=10)
    owner_token = token(people["owner"])
    total = len(journal(iid))

    async def scenario() -> None:
        ws = await connect()
        await send(ws, "authenticate", token=owner_token)
        await receive(ws)
        await send(ws, "workflow_run_join", instance_id=iid, after_seq=2)
        joined = await receive(ws)
        assert joined["data"] == {"instance_id": iid, "status": "succeeded", "last_seq": total}
        got = [await receive(ws) for _ in range(total - 2)]
        assert seqs(got) == list(range(3, total + 1))
        assert got[-1]["data"]["output"] == 5
        assert await ws.receive_nothing(timeout=0.3)
        await send(ws, "workflow_run_leave", instance_id=iid)
        assert (await receive(ws))["event"] == "workflow_run_left"
        await ws.disconnect()

    run(scenario)


def test_messages_the_layer_drops_are_filled_from_the_journal(people, embedded_worker, monkeypatch):
    """Every other published batch is lost on its way (as channels-redis drops messages for a channel
    over capacity); the client still receives every event, in order, once."""
    real_put = streams.publisher.put
    calls = {"n": 0}

    def lossy_put(group_name: str, messages: list[dict[str, Any]]) -> None:
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            return
        real_put(group_name, messages)

    monkeypatch.setattr(streams.publisher, "put", lossy_put)
    owner_token = token(people["owner"])
    iid = start(people["owner"], people["tenant"], SLOW)

    async def scenario() -> list[dict[str, Any]]:
        ws = await joined(owner_token, iid)
        got = await stream_until_end(ws)
        await ws.disconnect()
        return got

    got = run(scenario)
    assert calls["n"] > 4  # batches were really dropped
    assert seqs(got) == list(range(1, len(journal(iid)) + 1))


def test_large_outputs_arrive_as_a_preview_with_a_link(people, embedded_worker):
    big = {"blob": "x" * 20_000}
    iid = start(people["owner"], people["tenant"], QUICK, {"x": big})
    services.instance_wait(instance=_instance(iid), timeout_s=10)
    owner_token = token(people["owner"])

    async def scenario() -> list[dict[str, Any]]:
        ws = await connect()
        await send(ws, "authenticate", token=owner_token)
        await receive(ws)
        await send(ws, "workflow_run_join", instance_id=iid)
        await receive(ws)
        got = await stream_until_end(ws)
        await ws.disconnect()
        return got

    got = run(scenario)
    updates = [m["data"] for m in got if m["event"] == "workflow_node_update"]
    end = next(u for u in updates if u["node_id"] == "end" and u["status"] == "succeeded")
    assert "output" not in end and end["output_truncated"] is True
    assert end["output_preview"] == json.dumps(big)[:1024]
    assert end["output_url"] == f"/api/v1/tenants/{people['tenant'].id}/workflows/instances/{iid}/"


def test_oversized_frames_and_floods_get_an_error_and_the_connection_lives_on(db, settings):
    settings.JETADMIN_WS_MAX_FRAME = 1024
    settings.JETADMIN_WS_BURST = 10
    settings.JETADMIN_WS_RATE = 50

    async def scenario() -> None:
        ws = await connect()
        await ws.send_to(text_data=json.dumps({"event": "ping", "data": {"pad": "x" * 2000}}))
        reply = await receive(ws)
        assert reply["event"] == "error" and reply["data"]["code"] == "frame_too_large"
        await ws.send_to(text_data="{not json")
        assert (await receive(ws))["data"]["code"] == "bad_message"
        await asyncio.sleep(0.3)  # refill the bucket
        for n in range(100):
            await send(ws, "ping", n=n)
        replies = []
        while not await ws.receive_nothing(timeout=0.3):
            replies.append(await receive(ws))
        pongs = [r for r in replies if r["event"] == "pong"]
        errors = [r for r in replies if r["event"] == "error"]
        # The burst (10) plus what the bucket refilled (50/s) while the flood lasted; one error a second.
        assert 10 <= len(pongs) < 60, len(pongs)
        assert 1 <= len(errors) <= 2 and {e["data"]["code"] for e in errors} == {"rate_limited"}, errors
        await asyncio.sleep(0.3)
        await send(ws, "ping", n="after")
        assert await receive(ws) == {"event": "pong", "data": {"n": "after"}}
        await ws.disconnect()

    run(scenario)


CHAIN_333 = {  # 333 trivial nodes in a row: 3 journal rows each, about 1,000 in all
    "nodes": [{"id": "n0", "type": "start"}] + [{"id": f"n{i}", "type": "fanout"} for i in range(1, 333)],
    "edges": [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(332)],
}


def _disconnect_and_rejoin(people: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Join a 1,000-event run, drop the connection after 300 messages, rejoin on a new connection with
    ``after_seq`` and read to the end; returns the run and every message received on both."""
    owner_token = token(people["owner"])
    iid = start(people["owner"], people["tenant"], CHAIN_333)

    async def scenario() -> list[dict[str, Any]]:
        ws = await joined(owner_token, iid)
        first = []
        while len(first) < 300:
            msg = await receive(ws)
            if msg["event"] != "pong":
                first.append(msg)
        await ws.disconnect()
        ws = await joined(owner_token, iid, after_seq=first[-1]["data"]["seq"])
        rest = await stream_until_end(ws, timeout=60)
        await ws.disconnect()
        return first + rest

    return iid, run(scenario)


def test_a_thousand_events_with_a_disconnect_in_the_middle(people, embedded_worker):
    iid, got = _disconnect_and_rejoin(people)
    total = len(journal(iid))
    assert total > 1000
    assert seqs(got) == list(range(1, total + 1))  # no gap, no duplicate, in order


def test_a_hub_that_misses_most_messages_still_delivers_every_event(people, embedded_worker, monkeypatch):
    """Whatever carries run events to a web process (Redis pub/sub, or the channel layer) may lose
    messages; here the process' hub drops two of every three, and the client still gets them all."""
    from jetadmin import consumers

    real = consumers.Hub._hand_out
    count = {"n": 0}

    def lossy(self: Any, message: dict[str, Any]) -> None:
        count["n"] += 1
        if count["n"] % 3 == 0:
            real(self, message)

    monkeypatch.setattr(consumers.Hub, "_hand_out", lossy)
    holes = EventsConsumer.holes_filled
    iid, got = _disconnect_and_rejoin(people)
    total = len(journal(iid))
    assert seqs(got) == list(range(1, total + 1))
    assert count["n"] > 3 and EventsConsumer.holes_filled > holes


def test_a_layer_that_drops_most_messages_still_delivers_every_event(
    people, embedded_worker, settings, monkeypatch
):
    """A channel capacity of 1 makes the layer itself drop messages (group_send skips a full channel
    without a word, in channels-redis and the in-memory layer alike); the client still gets them all.
    The process' hub reads its channel slowly here, so that the channel really is full at times."""
    from channels.layers import channel_layers

    from jetadmin import consumers

    real_receive = consumers.Hub._pump

    async def slow_pump(self: Any, layer: Any, channel: str) -> None:
        class Slow:
            def __getattr__(self, name: str) -> Any:
                return getattr(layer, name)

            async def receive(self, name: str) -> Any:
                message = await layer.receive(name)
                await asyncio.sleep(0.02)
                return message

        await real_receive(self, Slow(), channel)

    monkeypatch.setattr(consumers.Hub, "_pump", slow_pump)
    settings.JETADMIN_WS_PUBSUB = False  # run events through the channel layer, whose capacity is 1 here

    layer = dict(settings.CHANNEL_LAYERS["default"])
    layer["CONFIG"] = {**layer.get("CONFIG", {}), "capacity": 1}
    settings.CHANNEL_LAYERS = {"default": layer}
    channel_layers.backends.clear()
    sent, holes = streams.publisher.sent, EventsConsumer.holes_filled
    try:
        iid, got = _disconnect_and_rejoin(people)
    finally:
        channel_layers.backends.clear()
    total = len(journal(iid))
    assert seqs(got) == list(range(1, total + 1))
    assert streams.publisher.sent > sent and EventsConsumer.holes_filled > holes  # drops really happened
