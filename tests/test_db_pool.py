"""Bounded database connections: a web process never holds more than its pool, and a burst waits.

A real ``manage.py serve`` with ``JETADMIN_DB_POOL_SIZE=4`` gets 64 concurrent requests that each hold
a connection for 0.25 s (tests/poolhold.py answers the PostgreSQL backend pid that served it). Every
request succeeds; at most 4 distinct backends served them and at most 4 were busy at any moment (sampled
from ``pg_stat_activity``); the burst took at least 64 x 0.25 / 4 s; and the pool's own counters (in
``/readyz``) show the requests that queued for a connection and how long they waited.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.REDIS_URL,
        reason="the connection pool is PostgreSQL's (the PostgreSQL + Redis pass runs this)",
    ),
]

POOL, REQUESTS, HOLD_S = 4, 64, 0.25


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 - the local test server
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300]


def test_a_burst_waits_for_the_pool_instead_of_opening_connections(serve_process):
    server = serve_process(JETADMIN_DB_POOL_SIZE=str(POOL), JETADMIN_NODE_MODULES="tests.poolhold")
    busy: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        with connection.cursor() as cursor:
            while not stop.wait(0.02):
                cursor.execute(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%' "
                    "AND state = 'active' AND pid <> pg_backend_pid()"
                )
                busy.append(int(cursor.fetchone()[0]))

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(REQUESTS) as pool:
            answers = list(pool.map(get, [f"{server.url}/test/hold-connection/?s={HOLD_S}"] * REQUESTS))
    finally:
        stop.set()
        sampler.join()
    elapsed = time.monotonic() - started
    status, ready = get(f"{server.url}/readyz")
    stats = ready["database_pool"]
    print(
        f"\npool of {POOL}: {REQUESTS} requests in {elapsed:.2f} s; at most {max(busy)} busy backends; "
        f"pool counters {stats}"
    )
    assert [code for code, _ in answers] == [200] * REQUESTS, [a for a in answers if a[0] != 200][:3]
    assert len({body["pid"] for _, body in answers}) <= POOL
    assert max(busy) <= POOL and max(busy) >= 2, busy
    assert elapsed >= REQUESTS * HOLD_S / POOL * 0.9, elapsed
    assert status == 200 and stats["pool_max"] == POOL
    assert stats["requests_queued"] >= REQUESTS - POOL - 4, stats  # they waited for a connection ...
    assert stats["requests_wait_ms"] > 1000 and stats["requests_errors"] == 0, stats  # ... and got one
