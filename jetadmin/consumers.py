"""The ``/ws/`` consumer: ``{"event", "data"}`` messages (the project's docs, "Websocket").

A connection authenticates by its session cookie or by a first ``authenticate`` message (a user token
or an API key), then joins runs. Joining checks the run's tenant membership and ``workflow.view``
exactly as the API does (a foreign or unknown id is ``not_found``), subscribes the connection to the
run's channel-layer group, replays the journal after the client's ``after_seq`` and then streams live
messages. The consumer keeps, per joined run, the next ``seq`` it owes the client: a live message it
has already sent is dropped, and a hole (the layer dropped something) is filled from the journal
first, so the client sees every event once and in order. ``pong`` reports the journal's last ``seq``
of each joined run (after filling any hole), so even a dropped *last* event is delivered.

Widgets: ``widget_workflow_connect`` joins the channel-layer group of the widget and its parameters
(before it starts a run, so no update is missed) and receives what workers processed for that group
(``widget_events``); ``widget_send_input``, ``widget_refresh`` and ``widget_workflow_disconnect``
complete the set. The checks and reads are :mod:`apps.widgets.bridge`'s.

Frames over ``JETADMIN_WS_MAX_FRAME`` bytes and messages beyond the per-connection rate
(``JETADMIN_WS_RATE`` per second, bursts of ``JETADMIN_WS_BURST``) are ignored, with one ``error`` a
second while a flood lasts. The logic lives in :mod:`apps.workflows.streams`; this class only routes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from rest_framework.exceptions import NotFound, PermissionDenied

from apps.dashboards import selectors as dashboard_selectors
from apps.dashboards import services as dashboard_services
from apps.tenancy.services import Actor
from apps.widgets import bridge
from apps.workflows import streams
from jetadmin import metrics
from jetadmin.api.errors import ApplicationError
from jetadmin.wsprotocol import SEND_MANY

logger = logging.getLogger(__name__)
INBOX = 2000  # live messages a connection may have waiting; beyond, they are dropped (and refilled)


class Hub:
    """One channel-layer subscription per process and run, shared by the process' connections.

    With every connection in the run's group, a run watched by 100 browsers costs the layer 100
    messages per event; with the hub it costs one per web process, and the hub hands each message to
    its local connections' inboxes. A slow connection's inbox fills and drops; that connection fills
    the hole from the journal later, and nobody else waits for it.
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.channel = ""
        self.subscribers: dict[str, set[EventsConsumer]] = {}
        self.widget_watches: dict[str, int] = {}  # run id -> widgets of this process following it
        self.tasks: list[asyncio.Task[None]] = []
        self.pubsub: Any = None  # the Redis subscription of run events (distributed), else None

    async def _start(self, layer: Any) -> None:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # first use on this event loop (a new server, or a test's loop)
            self.loop, self.subscribers, self.widget_watches = loop, {}, {}
            self.channel = await layer.new_channel()  # same prefix as the connections: one reader
            self.tasks = [loop.create_task(self._pump(layer, self.channel)), loop.create_task(self._renew())]
            self.pubsub = None
            if streams.use_pubsub():  # run events by Redis pub/sub (streams.Publisher._publish)
                import redis.asyncio

                self.pubsub = redis.asyncio.Redis.from_url(settings.REDIS_URL).pubsub()
                self.tasks.append(loop.create_task(self._pubsub_pump()))

    async def subscribe(self, layer: Any, iid: str, consumer: EventsConsumer) -> None:
        await self._start(layer)
        subscribers = self.subscribers.setdefault(iid, set())
        if not subscribers:
            name = streams.group(iid)
            if self.pubsub is not None:
                await self.pubsub.subscribe(streams.pubsub_channel(name))
            else:
                await layer.group_add(name, self.channel)
            await self._watch([iid], self.channel)
        subscribers.add(consumer)

    async def unsubscribe(self, layer: Any, iid: str, consumer: EventsConsumer) -> None:
        subscribers = self.subscribers.get(iid)
        if subscribers is None:
            return
        subscribers.discard(consumer)
        if not subscribers:
            del self.subscribers[iid]
            name = streams.group(iid)
            if self.pubsub is not None:
                await self.pubsub.unsubscribe(streams.pubsub_channel(name))
            else:
                await layer.group_discard(name, self.channel)
            await self._unwatch(iid, self.channel)

    async def watch_for_widget(self, layer: Any, iid: str) -> None:
        """A widget of this process follows a run it did not start: workers process the run for it."""
        await self._start(layer)
        count = self.widget_watches.get(iid, 0)
        self.widget_watches[iid] = count + 1
        if count == 0:
            await self._watch([iid], self.channel + streams.Watchlist.WIDGETS)

    async def unwatch_for_widget(self, iid: str) -> None:
        count = self.widget_watches.get(iid, 0) - 1
        if count > 0:
            self.widget_watches[iid] = count
            return
        if self.widget_watches.pop(iid, None) is not None:
            await self._unwatch(iid, self.channel + streams.Watchlist.WIDGETS)

    async def _watch(self, iids: list[str], owner: str) -> None:
        try:
            await streams.watchlist.add(iids, owner)
        except Exception:  # Redis away: the connections fill from the journal when it is back
            logger.warning("could not list the watched runs", exc_info=True)

    async def _unwatch(self, iid: str, owner: str) -> None:
        try:
            await streams.watchlist.remove(iid, owner)
        except Exception:  # it expires by itself
            logger.warning("could not unlist a watched run", exc_info=True)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(streams.Watchlist.TTL_S / 3)
            if not streams.watchlist.distributed():
                continue
            if self.subscribers:
                await self._watch(list(self.subscribers), self.channel)
            if self.widget_watches:
                await self._watch(list(self.widget_watches), self.channel + streams.Watchlist.WIDGETS)

    async def _pump(self, layer: Any, channel: str) -> None:
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away: the connections' pings fill what is missed meanwhile
                logger.exception("the run-stream hub could not read from the channel layer")
                await asyncio.sleep(1)
                continue
            self._hand_out(message)

    async def _pubsub_pump(self) -> None:
        while True:
            try:
                if not self.pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                got = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away: the connections' pings fill what is missed meanwhile
                logger.exception("the run-stream hub could not read its Redis subscription")
                await asyncio.sleep(1)
                continue
            if got is not None and got.get("type") == "message":
                self._hand_out(json.loads(got["data"]))

    def _hand_out(self, message: dict[str, Any]) -> None:
        events = message.get("events") or []
        if not events:
            return
        for consumer in list(self.subscribers.get(events[0]["data"]["instance_id"], ())):
            consumer.post(message)


hub = Hub()


class EventsConsumer(AsyncWebsocketConsumer):
    holes_filled = 0  # live messages that arrived after a hole, in this process (a diagnostic)
    inbox_dropped = 0  # live messages dropped because a connection's inbox was full

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.user = user if user is not None and user.is_authenticated else None
        self.api_key: Any = None
        self.share: Any = None  # a dashboard share link's session: that dashboard's widgets, read-only
        self.runs: dict[str, dict[str, Any]] = {}  # instance id -> {"next": seq owed, "tenant": id}
        self.widgets: dict[str, dict[str, Any]] = {}  # widget id -> its group, run, watcher, params
        self.refreshed: dict[str, float] = {}  # widget id -> when widget_refresh last started a run
        self.tokens = float(settings.JETADMIN_WS_BURST)
        self.refilled = time.monotonic()
        self.limited_at = -1e9  # when this connection was last told it is rate limited
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=INBOX)
        self.outbox: list[str] = []  # run events to send, in order (deliver, send_outbox)
        self.send_many = SEND_MANY in (self.scope.get("extensions") or {})  # manage.py serve's protocol
        self.lock = asyncio.Lock()  # live messages and the client's own events, one at a time
        self.drainer = asyncio.get_running_loop().create_task(self.drain())
        streams.publisher.server_loop = asyncio.get_running_loop()  # for the in-memory layer
        await self.accept()
        metrics.WS_CONNECTIONS.inc()

    async def disconnect(self, code: int) -> None:
        metrics.WS_CONNECTIONS.dec()
        self.drainer.cancel()
        for iid in list(self.runs):
            await hub.unsubscribe(self.channel_layer, iid, self)
        self.runs.clear()
        for wid in list(self.widgets):
            await self.widget_leave(wid)

    # --- envelope -------------------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > settings.JETADMIN_WS_MAX_FRAME:
            await self.error(
                "frame_too_large", f"Messages are limited to {settings.JETADMIN_WS_MAX_FRAME} bytes."
            )
            return
        if not self.allowed():
            if time.monotonic() - self.limited_at >= 1.0:  # one error a second in a flood, not one each
                self.limited_at = time.monotonic()
                await self.error("rate_limited", "Too many messages; slow down.")
            return
        try:
            content = json.loads(text_data if text_data is not None else (bytes_data or b"").decode())
        except (ValueError, UnicodeDecodeError):
            content = None
        if not isinstance(content, dict) or not isinstance(content.get("event"), str):
            await self.error("bad_message", "Expected {event, data}.")
            return
        data = content.get("data")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            await self.error("bad_message", "data must be an object.")
            return
        handler = self.HANDLERS.get(content["event"])
        if handler is None:
            await self.error("unknown_event", f"Unknown event {content['event']!r}.")
            return
        async with self.lock:
            await handler(self, data)

    def allowed(self) -> bool:
        now = time.monotonic()
        rate, burst = settings.JETADMIN_WS_RATE, settings.JETADMIN_WS_BURST
        self.tokens = min(float(burst), self.tokens + (now - self.refilled) * rate)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    async def send_event(self, event: str, data: dict[str, Any]) -> None:
        await self.send_outbox()  # run events queued before this one leave first
        await self.send(text_data=json.dumps({"event": event, "data": data}, default=str))

    async def error(self, code: str, message: str, **extra: Any) -> None:
        await self.send_event("error", {"code": code, "message": message, **extra})

    # --- client events --------------------------------------------------------------------------
    async def on_ping(self, data: dict[str, Any]) -> None:
        last: dict[str, int] = {}
        for iid in list(self.runs):
            last[iid] = await database_sync_to_async(streams.last_seq)(iid)
            await self.fill(iid, last[iid])  # a dropped last event is delivered before the pong
        await self.send_event("pong", {**data, "last_seq": last} if self.runs else data)

    async def on_authenticate(self, data: dict[str, Any]) -> None:
        token = data.get("token")
        if not isinstance(token, str) or not token:
            await self.error("bad_message", "authenticate needs data.token.", field="token")
            return
        if token.startswith(dashboard_services.SHARE_PREFIX):
            board = await database_sync_to_async(dashboard_services.share_resolve)(token)
            if board is None:
                await self.error("not_authenticated", "Invalid, expired or revoked share link.")
                return
            self.share = board
            await self.send_event("authenticated", {"user": None, "dashboard_id": str(board.id)})
            return
        user, key = await database_sync_to_async(streams.authenticate)(token)
        if user is None and key is None:
            await self.error("not_authenticated", "Invalid or expired token.")
            return
        self.user, self.api_key = user, key
        await self.send_event("authenticated", {"user": user.username if user is not None else None})

    async def on_run_join(self, data: dict[str, Any]) -> None:
        iid, after = data.get("instance_id"), data.get("after_seq", 0)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            await self.error("bad_message", "after_seq must be a non-negative integer.", field="after_seq")
            return
        if self.user is None and self.api_key is None:
            await self.error("not_authenticated", "Authenticate first.", instance_id=iid)
            return
        try:
            instance = await database_sync_to_async(streams.run_for_join)(
                user=self.user, api_key=self.api_key, instance_id=iid
            )
        except NotFound:
            await self.error("not_found", "No such run.", instance_id=iid)
            return
        except PermissionDenied:
            await self.error("permission_denied", "Missing permission workflow.view.", instance_id=iid)
            return
        iid = str(instance.id)
        # Subscribe before reading the journal: whatever commits meanwhile arrives live (and is dropped
        # as a duplicate if the replay already sent it).
        await hub.subscribe(self.channel_layer, iid, self)
        self.runs[iid] = {"next": after + 1, "tenant": str(instance.tenant_id)}
        status, last = await database_sync_to_async(streams.status_and_last_seq)(iid)
        await self.send_event("workflow_run_joined", {"instance_id": iid, "status": status, "last_seq": last})
        await self.fill(iid, last)
        if streams.watchlist.distributed():  # workers learn of the watch within REFRESH_S: look again then
            asyncio.get_running_loop().create_task(self.late_fill(iid))

    async def late_fill(self, iid: str) -> None:
        await asyncio.sleep(streams.Watchlist.LATE_FILL_S)
        async with self.lock:
            if iid in self.runs:
                await self.fill(iid, await database_sync_to_async(streams.last_seq)(iid))

    async def on_run_leave(self, data: dict[str, Any]) -> None:
        iid = str(data.get("instance_id"))
        if self.runs.pop(iid, None) is not None:
            await hub.unsubscribe(self.channel_layer, iid, self)
        await self.send_event("workflow_run_left", {"instance_id": iid})

    # --- widgets (the checks and reads are apps.widgets.bridge's) ---------------------------------
    async def on_widget_connect(self, data: dict[str, Any]) -> None:
        mode = data.get("mode")
        if mode not in bridge.MODES:
            await self.error("bad_message", f"mode must be one of {', '.join(bridge.MODES)}.", field="mode")
            return
        await self.widget_connect(
            data.get("widget_id"),
            mode,
            data.get("instance_id"),
            data.get("input_params"),
            dashboard_id=data.get("dashboard_id"),
        )

    async def widget_connect(
        self,
        wid: Any,
        mode: str,
        instance_id: Any,
        input_params: Any,
        force: bool = False,
        dashboard_id: Any = None,
    ) -> None:
        also: tuple[str, ...] = ()
        reuse_s: float | None = None
        if self.share is not None:
            await self.share_widget_connect(wid, mode, instance_id)
            return
        if dashboard_id is not None:  # on a dashboard: its filters may be set; runs fresh for its interval
            found = await self.widget_call(wid, dashboard_selectors.shown_on, dashboard_id=dashboard_id)
            if found is None:
                return
            also, reuse_s = found
        try:
            plan = await self.widget_call(
                wid,
                bridge.plan,
                mode=mode,
                instance_id=instance_id,
                input_params=input_params,
                also_declared=also,
            )
            if plan is not None:
                plan.reuse_s = reuse_s
        except ApplicationError as exc:
            await self.error("bad_message", exc.message, widget_id=wid, details=exc.details)
            return
        if plan is None:
            return
        wid = str(plan.widget.id)
        await self.widget_leave(wid)  # one subscription per widget and connection: the new one replaces it
        state: dict[str, Any] = {"group": plan.group, "instance": None, "ended": False, "watching": False}
        state["params"], state["dashboard"] = input_params, dashboard_id
        if plan.group:  # joined before the run starts, so its first update is not missed
            await self.channel_layer.group_add(plan.group, self.channel_name)
            self.widgets[wid] = state
        instance = plan.instance
        if mode == "execute":
            try:
                instance = await database_sync_to_async(bridge.start)(
                    plan=plan, actor=self.actor(), force=force
                )
            except ApplicationError as exc:
                await self.widget_leave(wid)
                error = {"code": exc.code, "message": exc.message, "recoverable": False}
                await self.send_event("widget_workflow_error", {"widget_id": wid, "error": error})
                return
        if instance is None:  # plan() always names the run for the other modes
            return
        iid = state["instance"] = str(instance.id)
        if mode == "subscribe":
            state["watching"] = True
            await hub.watch_for_widget(self.channel_layer, iid)
        for msg in await database_sync_to_async(bridge.connected)(plan, instance):
            await self.widget_deliver(state, msg)
        if wid in self.widgets and not state["ended"]:  # an end the workers sent before the watch began
            asyncio.get_running_loop().create_task(self.widget_late_check(wid, iid))

    async def share_widget_connect(self, wid: Any, mode: str, instance_id: Any) -> None:
        """A share link's session: ``subscribe`` and ``replay`` of its dashboard's widgets, nothing else."""
        if mode not in ("subscribe", "replay"):
            await self.error(
                "permission_denied", "A shared dashboard only replays and subscribes.", widget_id=wid
            )
            return
        if str(wid) not in {str(item.get("widget")) for item in self.share.layout}:
            await self.error("not_found", "No such widget or run.", widget_id=wid)
            return
        access = dashboard_selectors.share_access(self.share)
        try:
            plan = await database_sync_to_async(bridge.plan)(
                user=None, api_key=None, widget_id=wid, mode=mode, instance_id=instance_id, input_params=None,
                access=access,
            )  # fmt: skip
        except (NotFound, PermissionDenied):
            await self.error("not_found", "No such widget or run.", widget_id=wid)
            return
        wid = str(plan.widget.id)
        await self.widget_leave(wid)
        state: dict[str, Any] = {"group": plan.group, "instance": None, "ended": False, "watching": False}
        state["params"], state["dashboard"] = None, None
        if plan.group:
            await self.channel_layer.group_add(plan.group, self.channel_name)
            self.widgets[wid] = state
        instance = plan.instance
        if instance is None:
            return
        state["instance"] = str(instance.id)
        if mode == "subscribe":
            state["watching"] = True
            await hub.watch_for_widget(self.channel_layer, str(instance.id))
        for msg in await database_sync_to_async(bridge.connected)(plan, instance):
            await self.widget_deliver(state, msg)

    async def widget_late_check(self, wid: str, iid: str) -> None:
        await asyncio.sleep(streams.Watchlist.LATE_FILL_S)
        async with self.lock:
            state = self.widgets.get(wid)
            if state is None or state["instance"] != iid or state["ended"]:
                return
            for msg in await database_sync_to_async(bridge.ended_messages)(wid, iid):
                await self.widget_deliver(state, msg)

    async def widget_leave(self, wid: str) -> None:
        state = self.widgets.pop(wid, None)
        if state is None:
            return
        await self.channel_layer.group_discard(state["group"], self.channel_name)
        if state["watching"]:
            await hub.unwatch_for_widget(state["instance"])

    async def widget_deliver(self, state: dict[str, Any], msg: dict[str, Any]) -> None:
        if msg["event"] == "widget_workflow_status":
            state["ended"] = True
        await self.send_event(msg["event"], msg["data"])

    async def on_widget_disconnect(self, data: dict[str, Any]) -> None:
        wid = str(data.get("widget_id"))
        await self.widget_leave(wid)
        await self.send_event("widget_workflow_disconnected", {"widget_id": wid})

    async def on_widget_refresh(self, data: dict[str, Any]) -> None:
        wid = str(data.get("widget_id"))
        now, every = time.monotonic(), settings.JETADMIN_WIDGET_REFRESH_MIN_S
        if now - self.refreshed.get(wid, -1e9) < every:
            await self.error("rate_limited", f"A widget refreshes at most every {every:g} s.", widget_id=wid)
            return
        self.refreshed[wid] = now
        known = self.widgets.get(wid, {})
        params = data["input_params"] if "input_params" in data else known.get("params")
        board = data["dashboard_id"] if "dashboard_id" in data else known.get("dashboard")
        await self.widget_connect(wid, "execute", None, params, force=True, dashboard_id=board)

    async def on_widget_send_input(self, data: dict[str, Any]) -> None:
        wid, iid = data.get("widget_id"), data.get("instance_id")
        if "data" not in data:
            await self.error("bad_message", "widget_send_input needs data.data.", field="data")
            return
        try:
            result = await self.widget_call(wid, bridge.send_input, instance_id=iid, data=data["data"])
        except ApplicationError as exc:
            error = {"code": exc.code, "message": exc.message, "recoverable": True, "details": exc.details}
            await self.send_event(
                "widget_workflow_error", {"widget_id": wid, "instance_id": iid, "error": error}
            )
            return
        if result is not None:
            await self.send_event("widget_input_accepted", result)

    async def widget_call(self, wid: Any, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """``fn`` (a check or read of apps.widgets.bridge) in a thread, for this connection's principal.
        A refusal is answered with the contract's error and gives None; ``ApplicationError`` (bad input)
        is the caller's to answer."""
        if self.user is None and self.api_key is None:
            await self.error("not_authenticated", "Authenticate first.", widget_id=wid)
            return None
        try:
            return await database_sync_to_async(fn)(
                user=self.user, api_key=self.api_key, widget_id=wid, **kwargs
            )
        except NotFound:
            await self.error("not_found", "No such widget or run.", widget_id=wid)
        except PermissionDenied as exc:
            await self.error("permission_denied", str(exc.detail), widget_id=wid)
        return None

    def actor(self) -> Actor:
        return Actor(user=self.user, api_key=self.api_key)

    HANDLERS = {
        "ping": on_ping,
        "authenticate": on_authenticate,
        "workflow_run_join": on_run_join,
        "workflow_run_leave": on_run_leave,
        "widget_workflow_connect": on_widget_connect,
        "widget_workflow_disconnect": on_widget_disconnect,
        "widget_refresh": on_widget_refresh,
        "widget_send_input": on_widget_send_input,
    }

    # --- a widget group's messages (processed by a worker), straight from the channel layer --------
    async def widget_events(self, message: dict[str, Any]) -> None:
        async with self.lock:
            for msg in message["events"]:
                state = self.widgets.get(msg["data"]["widget_id"])
                if state is None or msg["data"].get("instance_id") != state["instance"] or state["ended"]:
                    continue  # disconnected, an earlier run's (before a refresh), or after its end
                await self.widget_deliver(state, msg)

    # --- from the channel layer, through the hub -------------------------------------------------
    def post(self, message: dict[str, Any]) -> None:
        try:
            self.inbox.put_nowait(message)
        except asyncio.QueueFull:  # a slow client: its next message or ping fills the hole
            EventsConsumer.inbox_dropped += 1

    async def drain(self) -> None:
        while True:
            message = await self.inbox.get()
            async with self.lock:
                await self.run_events(message)

    async def run_events(self, message: dict[str, Any]) -> None:
        for msg in message["events"]:
            data = msg["data"]
            run = self.runs.get(data["instance_id"])
            if run is None or data["seq"] < run["next"]:
                continue  # not joined (any more), or already sent by a replay
            if data["seq"] > run["next"]:
                EventsConsumer.holes_filled += 1
                metrics.WS_REFILLED.inc()
                await self.fill(data["instance_id"], data["seq"] - 1)  # the layer lost something
            if data["seq"] == run["next"]:
                self.deliver(data["instance_id"], msg)
        await self.send_outbox()

    async def fill(self, iid: str, upto: int) -> None:
        """Send the journal's rows from the next owed ``seq`` up to ``upto`` (a replay, or a hole)."""
        while iid in self.runs and self.runs[iid]["next"] <= upto:
            after = self.runs[iid]["next"] - 1
            page = await database_sync_to_async(streams.events_between)(iid, after, upto)
            if not page:
                return  # not committed yet as far as this snapshot goes; the live message follows
            for msg in page:
                self.deliver(iid, msg)
            await self.send_outbox()

    def deliver(self, iid: str, msg: dict[str, Any]) -> None:
        """Queue one run event for the client (:meth:`send_outbox` sends what is queued, in order)."""
        run = self.runs[iid]
        data = msg["data"]
        run["next"] = data["seq"] + 1
        text = msg.get("text")  # a live message is shared by the process' connections: encoded once
        if text is None:
            if data.get("output_truncated"):
                data["output_url"] = f"/api/v1/tenants/{run['tenant']}/workflows/instances/{iid}/"
            text = msg["text"] = json.dumps({"event": msg["event"], "data": data}, default=str)
        self.outbox.append(text)

    async def send_outbox(self) -> None:
        """Send the queued run events: in one ASGI message where the server takes several at once."""
        if not self.outbox:
            return
        texts, self.outbox = self.outbox, []
        if self.send_many:
            await self.base_send({"type": SEND_MANY, "texts": texts})
            return
        for text in texts:
            await self.send(text_data=text)
