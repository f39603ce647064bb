"""The embedded default's Celery broker: kombu's in-process ``memory`` transport, woken instead of polled.

kombu's memory transport has no way to block until a message arrives: its consumer looks at the queues
and sleeps for the polling interval when they are empty. Polled every 2 ms, a message waited about a
millisecond before a worker thread saw it, and the polling thread woke 500 times a second competing for
the interpreter with the thread running the nodes. Here a publish sets an event the consumer waits on,
so an idle embedded worker costs nothing and picks a message up as soon as it is published. While every
worker slot is busy (a message is waiting but may not be taken yet) the consumer polls as before, since
a slot freeing up publishes nothing.

Selected by ``CELERY_BROKER_TRANSPORT`` in the settings when there is no Redis.
"""

from __future__ import annotations

import threading
import time
from queue import Empty
from typing import Any

from kombu.transport import memory

_arrived = threading.Event()  # one per process: every memory channel shares the same queues
IDLE_WAIT_S = 0.1  # an upper bound only: a publish wakes the consumer at once


class Channel(memory.Channel):
    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        super()._put(queue, message, **kwargs)
        _arrived.set()


class Transport(memory.Transport):
    Channel = Channel

    # kombu's virtual transport has this signature (its own base class declares **kwargs)
    def drain_events(self, connection: Any, timeout: float | None = None) -> None:  # type: ignore[override]
        cycle = self.cycle
        if cycle is None:  # set when the transport is created; kombu's own drain would fail the same way
            raise RuntimeError("the memory transport has no consumer cycle")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            _arrived.clear()  # before looking: a publish after the look sets it again
            try:
                cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                pass
            left = IDLE_WAIT_S if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError()
            if any(q.qsize() for q in list(Channel.queues.values())):
                time.sleep(min(self.polling_interval or 0.002, left))  # waiting for a free slot
            else:
                _arrived.wait(min(left, IDLE_WAIT_S))
