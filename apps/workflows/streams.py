"""Run streams: a run's journal as websocket messages, live across processes.

Every journal row is published after its transaction commits (:mod:`apps.workflows.engine.events`);
:func:`on_events` turns the rows into contract messages and hands them to this process' publisher
thread, which sends them to the run's channel-layer group (``run.<instance id>``): channels-redis in the
distributed deployment, so a websocket on any web process hears a node finished by any worker; the
in-memory layer on the embedded default, where the server and the workers share one process.

The engine never waits for the layer: publishing is a queue put. The layer may still drop messages
(channels-redis silently drops a message for a channel over capacity, and a process may die between
commit and publish), so delivery does not rely on it: each message carries its ``seq``, and the
consumer fills any hole from the journal (:func:`events_between`) before it sends the next message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import time
import uuid
from typing import Any

from django.conf import settings
from rest_framework.exceptions import NotFound

from apps.tenancy import services as tenancy
from apps.tenancy.models import APIKey, User
from apps.tenancy.selectors import tenant_access
from apps.workflows.models import InstanceEvent, InstanceStatus, JournalCounter, WorkflowInstance

logger = logging.getLogger(__name__)

REPLAY_PAGE = 500  # journal rows per query when replaying
_STATUSES = set(InstanceStatus.values)


def group(instance_id: Any) -> str:
    return f"run.{instance_id}"


PUBSUB_PREFIX = "jetadmin:run-events:"


def use_pubsub() -> bool:
    """Run events travel by Redis pub/sub (one PUBLISH per run and flush) rather than a channel-layer
    group_send (a Lua script per hub channel): distributed only, and JETADMIN_WS_PUBSUB (on)."""
    return bool(settings.REDIS_URL) and settings.JETADMIN_WS_PUBSUB


def pubsub_channel(group_name: str) -> str:
    return PUBSUB_PREFIX + group_name


# --- messages -------------------------------------------------------------------------------------
def message(event: InstanceEvent) -> dict[str, Any]:
    """The contract message for one journal row: ``workflow_node_update`` for a node's status,
    ``workflow_status_update`` for the run's, ``workflow_event`` for everything else."""
    iid = str(event.instance_id)
    data = event.data if isinstance(event.data, dict) else {}
    kind, _, suffix = event.type.partition(".")
    if kind == "node" and "status" in data:
        body: dict[str, Any] = {
            "instance_id": iid,
            "seq": event.seq,
            "node_id": event.node_id,
            "status": data["status"],
            "attempt": data.get("attempt", 0),
        }
        if event.iteration:
            body["iteration"] = event.iteration
        for key in ("output", "error", "output_truncated", "output_preview", "reason"):
            if key in data:
                body[key] = data[key]
        return {"event": "workflow_node_update", "data": body}
    if kind == "instance" and suffix in _STATUSES:
        body = {"instance_id": iid, "seq": event.seq, "last_seq": event.seq, "status": suffix}
        for key in ("output", "error"):
            if key in data:
                body[key] = data[key]
        return {"event": "workflow_status_update", "data": body}
    body = {"instance_id": iid, "seq": event.seq, "type": event.type, "data": data}
    if event.node_id:
        body["node_id"] = event.node_id
    if event.iteration:
        body["iteration"] = event.iteration
    return {"event": "workflow_event", "data": body}


# --- reading (called by the consumer, in a thread) ------------------------------------------------
def run_for_join(*, user: User | None, api_key: APIKey | None, instance_id: Any) -> WorkflowInstance:
    """The run a connection may follow: ``NotFound`` for an unknown or foreign id (as the API answers),
    ``PermissionDenied`` for a member without ``workflow.view``."""
    try:
        iid = uuid.UUID(str(instance_id))
    except ValueError as exc:
        raise NotFound() from exc
    instance = WorkflowInstance.objects.only("id", "tenant_id", "status").filter(pk=iid).first()
    if instance is None:
        raise NotFound()
    access = tenant_access(user=user, api_key=api_key, tenant_id=instance.tenant_id)
    access.require("workflow.view")
    return instance


def authenticate(raw: str) -> tuple[User | None, APIKey | None]:
    """A websocket's ``authenticate`` token: a user token, else an API key; (None, None) if neither."""
    token = tenancy.auth_token_authenticate(raw=raw)
    if token is not None:
        return token.user, None
    return None, tenancy.api_key_authenticate(raw=raw)


def status_and_last_seq(instance_id: Any) -> tuple[str, int]:
    status = WorkflowInstance.objects.filter(pk=instance_id).values_list("status", flat=True).first()
    return str(status), last_seq(instance_id)


def last_seq(instance_id: Any) -> int:
    value = JournalCounter.objects.filter(pk=instance_id).values_list("last_seq", flat=True).first()
    return int(value or 0)


def events_between(instance_id: Any, after: int, upto: int | None = None) -> list[dict[str, Any]]:
    """Messages for the journal rows with ``after < seq`` (``<= upto`` when given), in order."""
    rows = InstanceEvent.objects.filter(instance_id=instance_id, seq__gt=after)
    if upto is not None:
        rows = rows.filter(seq__lte=upto)
    return [message(event) for event in rows.order_by("seq")[:REPLAY_PAGE]]


# --- publishing (engine side) ---------------------------------------------------------------------
class Publisher:
    """One thread per process that sends published messages to the channel layer, so the engine's
    threads never wait for Redis. Messages of one run are sent in order, batched per flush."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[tuple[str, str, list[dict[str, Any]]]] = queue.SimpleQueue()
        self.pid = 0
        self.server_loop: asyncio.AbstractEventLoop | None = None  # the in-memory layer's loop
        self._lock = threading.Lock()
        self._redis: Any = None  # the publisher thread's Redis client (pub/sub)
        self.sent = 0
        self.failed = 0

    def put(self, group_name: str, messages: list[dict[str, Any]], kind: str = "run.events") -> None:
        """Queue messages for a group; ``kind`` is the layer message's type (the consumer's handler)."""
        if self.pid != os.getpid():  # first use in this process (or a forked child)
            with self._lock:
                if self.pid != os.getpid():
                    self.queue = queue.SimpleQueue()
                    self._redis = None  # a forked child opens its own connection
                    threading.Thread(target=self._run, name="run-stream-publisher", daemon=True).start()
                    self.pid = os.getpid()
        self.queue.put((kind, group_name, messages))

    def _run(self) -> None:
        from channels.layers import InMemoryChannelLayer, get_channel_layer

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        last_flush = 0.0
        while True:
            batch = [self.queue.get()]
            # At most one flush per JETADMIN_WS_PUBLISH_INTERVAL_S: the first message after a quiet
            # spell goes at once; a burst (a fast chain commits every millisecond or so) shares its
            # sends, each of which costs this process ~0.5 ms of CPU under the engine's GIL. Sleeping
            # out the interval (not waiting on the queue) spares the engine a thread switch per message.
            left = last_flush + settings.JETADMIN_WS_PUBLISH_INTERVAL_S - time.monotonic()
            if left > 0:
                time.sleep(left)
            while True:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            last_flush = time.monotonic()
            groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for kind, group_name, messages in batch:
                groups.setdefault((kind, group_name), []).extend(messages)
            if use_pubsub():
                runs = {name: m for (kind, name), m in groups.items() if kind == "run.events"}
                if runs:
                    self._publish(runs)
                groups = {key: m for key, m in groups.items() if key[0] != "run.events"}
                if not groups:
                    continue
            layer = get_channel_layer()
            if layer is None:
                continue
            sends = [
                layer.group_send(name, {"type": kind, "events": m}) for (kind, name), m in groups.items()
            ]
            try:
                if isinstance(layer, InMemoryChannelLayer):
                    # Its queues belong to the server's loop: send there (nobody listens without one).
                    if self.server_loop is not None and not self.server_loop.is_closed():
                        for send in sends:
                            asyncio.run_coroutine_threadsafe(send, self.server_loop)
                    else:
                        for send in sends:
                            send.close()
                else:
                    loop.run_until_complete(_all(sends))
                self.sent += len(groups)
            except Exception:  # the consumer fills holes from the journal; never stop publishing
                self.failed += len(groups)
                logger.exception("publishing run events to the channel layer failed")

    def _publish(self, runs: dict[str, list[dict[str, Any]]]) -> None:
        """One round trip for every run of the flush: a pipelined PUBLISH per run."""
        try:
            if self._redis is None:
                import redis

                self._redis = redis.Redis.from_url(settings.REDIS_URL)
            pipe = self._redis.pipeline(transaction=False)
            for name, messages in runs.items():
                pipe.publish(pubsub_channel(name), json.dumps({"events": messages}, default=str))
            pipe.execute()
            self.sent += len(runs)
        except Exception:  # the consumers fill holes from the journal; never stop publishing
            self.failed += len(runs)
            self._redis = None
            logger.exception("publishing run events to Redis failed")


class Watchlist:
    """Which runs some websocket is watching, so that workers publish only those runs' events.

    Publishing a message through channels-redis costs a worker about a third of a millisecond of CPU;
    for every event of every run that made a 3-node run 30 % dearer under load (bench/load.py), watched
    or not. Web processes' hubs record the runs they watch; the engine asks :meth:`watched`. A widget
    that follows a run it did not start watches it as a widget (an owner ending in ``WIDGETS``): only
    those runs cost a worker the lookup of the widgets a run feeds (:meth:`watched_by_widget`), and
    such a watch alone publishes none of the run's raw events.

    Distributed: a Redis sorted set, one member per (run, web process) scored with an expiry the hub
    renews while it watches; each process reads it at most every ``REFRESH_S``. A run that becomes
    watched is published at most ``REFRESH_S`` later: what commits in between reaches the client from
    the journal (the consumer fills again after ``LATE_FILL_S``). Embedded: counters in the one process.
    """

    KEY = "jetadmin:watched-runs"
    WIDGETS = "#widgets"
    TTL_S = 60.0
    REFRESH_S = 0.05
    LATE_FILL_S = 0.2

    def __init__(self) -> None:
        # the embedded default: run id -> watching hubs, for run streams and for widgets
        self.local: dict[str, int] = {}
        self.local_widgets: dict[str, int] = {}
        self.cached: set[str] = set()
        self.cached_widgets: set[str] = set()
        self.cached_at = 0.0
        self._redis: dict[int, Any] = {}  # pid -> sync client (engine side)
        self._async: dict[Any, Any] = {}  # event loop -> asyncio client (hub side)

    def distributed(self) -> bool:
        return bool(settings.REDIS_URL)

    # --- engine side ----------------------------------------------------------------------------
    def watched(self, iid: str) -> bool:
        if not self.distributed():
            return iid in self.local
        self._refresh()
        return iid in self.cached

    def watched_by_widget(self, iid: str) -> bool:
        if not self.distributed():
            return iid in self.local_widgets
        self._refresh()
        return iid in self.cached_widgets

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self.cached_at <= self.REFRESH_S:
            return
        self.cached_at = now
        try:
            client = self._redis.get(os.getpid())
            if client is None:
                import redis

                client = self._redis[os.getpid()] = redis.Redis.from_url(settings.REDIS_URL)
            members: list[Any] = list(client.zrangebyscore(self.KEY, time.time(), "+inf"))
        except Exception:  # Redis away: publishing would fail too; clients fill from the journal
            logger.warning("could not read the watched runs", exc_info=True)
            return
        runs: set[str] = set()
        widgets: set[str] = set()
        for member in members:
            iid, _, owner = bytes(member).decode().partition("|")
            (widgets if owner.endswith(self.WIDGETS) else runs).add(iid)
        self.cached, self.cached_widgets = runs, widgets

    # --- web side (a hub, in its event loop) --------------------------------------------------
    async def add(self, iids: list[str], owner: str) -> None:
        if not self.distributed():
            counts = self.local_widgets if owner.endswith(self.WIDGETS) else self.local
            for iid in iids:
                counts[iid] = counts.get(iid, 0) + 1
            return
        expiry = time.time() + self.TTL_S
        await self._client().zadd(self.KEY, {f"{iid}|{owner}": expiry for iid in iids})

    async def remove(self, iid: str, owner: str) -> None:
        if not self.distributed():
            counts = self.local_widgets if owner.endswith(self.WIDGETS) else self.local
            left = counts.get(iid, 0) - 1
            if left > 0:
                counts[iid] = left
            else:
                counts.pop(iid, None)
            return
        client = self._client()
        await client.zrem(self.KEY, f"{iid}|{owner}")
        await client.zremrangebyscore(self.KEY, "-inf", time.time())  # members of dead processes

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            import redis.asyncio

            client = self._async[loop] = redis.asyncio.Redis.from_url(settings.REDIS_URL)
        return client


watchlist = Watchlist()


async def _all(sends: list[Any]) -> None:
    await asyncio.gather(*sends)


publisher = Publisher()


def on_events(events: list[InstanceEvent], **_: Any) -> None:
    """Receiver of the engine's ``instance_events``: queue each run's rows for its group."""
    by_run: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        iid = str(event.instance_id)
        if event.seq is None or not watchlist.watched(iid):  # nobody follows it: nothing to send
            continue
        by_run.setdefault(iid, []).append(message(event))
    for iid, messages in by_run.items():
        publisher.put(group(iid), messages)
