"""The ``/ws/`` consumer.

The foundation only speaks the envelope: ``{"event": "ping"}`` is answered with ``pong`` and any
other event with an ``error`` frame; the workflow and widget issues attach their events here.
"""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class EventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or not isinstance(content.get("event"), str):
            await self.send_json(
                {"event": "error", "data": {"code": "bad_message", "message": "Expected {event, data}."}}
            )
            return
        if content["event"] == "ping":
            await self.send_json({"event": "pong", "data": content.get("data") or {}})
            return
        await self.send_json(
            {
                "event": "error",
                "data": {"code": "unknown_event", "message": f"Unknown event {content['event']!r}."},
            }
        )
