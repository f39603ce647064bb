"""The embedded broker (jetadmin/membroker.py): a consumer waiting on an empty queue is woken by a publish
from another thread instead of finding the message at its next poll, and still times out when nothing
comes."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue

from jetadmin import membroker


@pytest.fixture
def queue() -> Queue:
    name = f"membroker-{uuid.uuid4().hex}"
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def collect(into: list[Any], key: str | None = None) -> Any:
    def on_message(body: Any, message: Any) -> None:
        into.append(body[key] if key else body)
        message.ack()

    return on_message


def publish(queue: Queue, body: Any) -> None:
    with Connection("memory://", transport=membroker.Transport) as conn:
        conn.Producer().publish(body, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue])


def test_a_publish_wakes_the_waiting_consumer(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(membroker, "IDLE_WAIT_S", 10.0)  # unwoken, the consumer would look again in 10 s
    got: list[Any] = []
    with Connection("memory://", transport=membroker.Transport) as conn:
        consumer = conn.Consumer([queue], callbacks=[collect(got)])
        with consumer:
            later = threading.Timer(0.2, publish, args=(queue, {"n": 1}))
            later.start()
            started = time.monotonic()
            conn.drain_events(timeout=30)
            waited = time.monotonic() - started
            later.join()
    assert got == [{"n": 1}]
    assert waited < 5, waited  # woken by the publish, not by its next look


def test_nothing_published_times_out(queue: Queue) -> None:
    with (
        Connection("memory://", transport=membroker.Transport) as conn,
        conn.Consumer([queue], callbacks=[lambda body, message: message.ack()]),
    ):
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            conn.drain_events(timeout=0.3)
        assert time.monotonic() - started >= 0.3


def test_messages_published_before_the_wait_are_all_delivered_in_order(queue: Queue) -> None:
    for n in range(5):
        publish(queue, {"n": n})
    got: list[Any] = []
    with (
        Connection("memory://", transport=membroker.Transport) as conn,
        conn.Consumer([queue], callbacks=[collect(got, "n")]),
    ):
        for _ in range(5):
            conn.drain_events(timeout=5)
    assert got == [0, 1, 2, 3, 4]
