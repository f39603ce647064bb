"""The websocket protocol `manage.py serve` runs: frames sent in one loop turn leave in one write.

A real uvicorn server (in a thread, on loopback) with jetadmin's protocol and a real websocket client.
The end-to-end run streams over `manage.py serve` are in tests/workflows/test_streams_distributed.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect

from jetadmin.wsprotocol import SEND_MANY, CoalescingTransport, WebSocketProtocol

FRAMES = 50
REFUSED: list[str] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Sends FRAMES messages in a row, then echoes until the client says "close"."""
    assert scope["type"] == "websocket"
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    for i in range(FRAMES):
        await send({"type": "websocket.send", "text": json.dumps({"event": "n", "data": {"seq": i}})})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "many":  # the extension: several messages in one ASGI send
            assert SEND_MANY in scope["extensions"]
            await send({"type": SEND_MANY, "texts": [f"m{i}" for i in range(10)]})
            continue
        if message.get("text") == "close":
            await send({"type": "websocket.send", "text": "bye"})
            await send({"type": "websocket.close", "code": 4000})
            try:  # refused after the close, as uvicorn refuses a websocket.send then
                await send({"type": SEND_MANY, "texts": ["late"]})
            except RuntimeError as exc:
                REFUSED.append(str(exc))
            return
        await send({"type": "websocket.send", "text": message.get("text", "")})


@pytest.fixture
def server() -> Any:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws=WebSocketProtocol, lifespan="off", log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield srv, port
    srv.should_exit = True
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_burst_of_frames_leaves_in_one_write_in_order(server: Any) -> None:
    srv, port = server

    async def go() -> tuple[list[int], str, int | None, CoalescingTransport]:
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            seqs = [json.loads(await ws.recv())["data"]["seq"] for _ in range(FRAMES)]
            (protocol,) = [c for c in srv.server_state.connections if isinstance(c, WebSocketProtocol)]
            transport: Any = protocol.transport
            await ws.send("ping-1")
            echo = str(await ws.recv())
            assert echo == "ping-1"
            await ws.send("many")
            many = [str(await ws.recv()) for _ in range(10)]
            assert many == [f"m{i}" for i in range(10)]  # separate websocket messages, in order
            await ws.send("close")
            bye = str(await ws.recv())
            await asyncio.sleep(0.1)
            return seqs, bye, ws.close_code, transport

    seqs, bye, close_code, transport = asyncio.run(go())
    assert seqs == list(range(FRAMES))  # every frame, as its own message, in order
    assert (bye, close_code) == ("bye", 4000)  # the close went after the frame sent before it
    assert REFUSED and "after close" in REFUSED[-1]
    assert isinstance(transport, CoalescingTransport)
    # handshake, FRAMES frames, echo, the ten, "bye" and close were asked for; the bursts shared writes
    assert transport.writes >= FRAMES + 4
    assert transport.flushes <= 6, (transport.writes, transport.flushes)


def test_a_large_burst_still_arrives_whole(server: Any) -> None:
    """Writes over the transport's high-water mark: uvicorn's flow control still holds (no frame lost)."""
    _, port = server
    big = "x" * 200_000

    async def go() -> list[int]:
        async with connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws:
            for _ in range(FRAMES):
                await ws.recv()
            for i in range(20):
                await ws.send(f"{i}:{big}")
            got = [int(str(await ws.recv()).split(":", 1)[0]) for _ in range(20)]
            return got

    assert asyncio.run(go()) == list(range(20))
