"""The websocket protocol ``manage.py serve`` gives uvicorn: its sans-I/O protocol, with coalesced writes.

A run stream sends bursts: a worker's flush carries a dozen journal events, and every connection
watching the run turns them into a dozen websocket frames in one go. uvicorn writes each frame to the
socket as it is sent, so each frame cost the web process a ``send`` syscall and woke the client once;
with ten browsers watching a 40-node chain that was over a thousand writes and wake-ups while the
chain ran, on the same cores as the worker running it (bench/realtime.py: W1 1.6-1.7x slower watched).

Here the frames a connection sends during one turn of the event loop leave in one write at the end of
the turn. Frames stay separate websocket messages (the contract is unchanged); only their bytes share
a TCP segment. Order is kept (every write, handshake and close included, goes through the buffer) and
a close flushes what is pending first.

The protocol also takes ``{"type": "jetadmin.websocket.send_many", "texts": [...]}``: several text
messages in one ASGI send, advertised in ``scope["extensions"]`` (:data:`SEND_MANY`). A consumer
forwarding a burst hands it over once instead of once per frame through Channels' and uvicorn's send
layers; where the extension is absent (Channels' test communicator, another server) it sends one by one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

SEND_MANY = "jetadmin.websocket.send_many"


class CoalescingTransport:
    """A transport whose writes made in one loop turn go out as one ``write`` of the real transport."""

    __slots__ = ("_loop", "_pending", "_scheduled", "flushes", "transport", "writes")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False
        self.writes = 0  # writes asked for, and real writes made: a diagnostic for tests
        self.flushes = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.writes += 1
        self._pending.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self.transport.is_closing():
            self.flushes += 1
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, ...
        return getattr(self.transport, name)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websocket protocol writing through a :class:`CoalescingTransport`."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope: Any = getattr(self, "scope", None)  # None when the handshake was refused
        if scope is not None:
            scope["extensions"][SEND_MANY] = {}

    async def send(self, message: Any) -> None:
        if message["type"] != SEND_MANY:
            await super().send(message)
            return
        await self.writable.wait()  # uvicorn's flow control, as for one message
        if self.disconnected:
            raise ClientDisconnected()
        if not self.handshake_complete or self.close_sent or self.initial_response is not None:
            raise RuntimeError(f"Unexpected ASGI message {SEND_MANY!r} before accept or after close.")
        try:
            for text in message["texts"]:
                self.conn.send_text(text.encode())
        except InvalidState as exc:
            raise ClientDisconnected() from exc
        self.transport.write(b"".join(self.conn.data_to_send()))
