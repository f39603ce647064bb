"""The Redis connector against real servers: the machine's shared Redis (db 13, only keys under a
per-test uuid prefix, never flushed) and a throwaway ``redis-server --requirepass`` for the auth cases.

The shared server is ``JETADMIN_TEST_REDIS_URL``'s (default 127.0.0.1:6379). Skipped when it does not
answer — except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from apps.datasources.connectors import base
from apps.datasources.connectors.redis import REFUSED, RedisConnector
from tests.conftest import free_port, redis_test_server

(HOST, PORT), DB = redis_test_server(), 13
SHARED = {"host": HOST, "port": PORT, "db": DB}
SECRET = "s3cret"
CI = os.environ.get("CI") == "true"


def _shared_redis_problem() -> str | None:
    client = redis.Redis(host=HOST, port=PORT, db=DB, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return str(exc)
    finally:
        client.close()
    return None


_PROBLEM = _shared_redis_problem()
pytestmark = [
    pytest.mark.skipif(_PROBLEM is not None and not CI, reason=f"no Redis at {HOST}:{PORT} ({_PROBLEM})"),
    pytest.mark.usefixtures("local_servers"),
]


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    client = redis.Redis(host=HOST, port=PORT, db=DB, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def prefix(raw: redis.Redis) -> Iterator[str]:
    """A key prefix of this test; its keys (and only those) are deleted afterwards."""
    p = f"jetadmin-test:{uuid.uuid4().hex}:"
    yield p
    keys = list(raw.scan_iter(match=f"{p}*", count=1000))
    if keys:
        raw.delete(*keys)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A private redis-server with ``--requirepass``; killed at teardown."""
    binary = shutil.which("redis-server")
    if binary is None:
        if CI:
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    port = free_port()
    log = tmp_path_factory.mktemp("redis-auth") / "redis.log"
    argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    argv += ["--requirepass", SECRET, "--daemonize", "no"]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_ping(proc, port, log, timeout=10)
        yield {"host": HOST, "port": port}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait_for_ping(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    client = redis.Redis(
        host=HOST, port=port, password=SECRET, socket_connect_timeout=0.5, socket_timeout=0.5
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"redis-server exited early:\n{log.read_text()}")
        try:
            if client.ping():
                return
        except redis.RedisError:
            time.sleep(0.05)
    raise AssertionError(f"redis-server on port {port} did not answer PING in {timeout}s:\n{log.read_text()}")


# --- identity, config, connecting ---------------------------------------------------------------------
def test_registered_and_config_schema() -> None:
    assert base.REGISTRY["redis"] is RedisConnector
    assert (RedisConnector.name, RedisConnector.category) == ("Redis", "database")
    assert RedisConnector.secret_fields() == ["password"]
    RedisConnector.check_config({**SHARED, "password": "x", "tls": False, "read_only": True})
    with pytest.raises(base.ConfigInvalid) as info:
        RedisConnector.check_config({"host": "h", "db": 16, "port": "x", "database": 1})
    assert {"db", "port", "config"} <= set(info.value.errors)
    with pytest.raises(base.ConfigInvalid) as info:
        RedisConnector.check_config({"port": 6379})
    assert "host" in info.value.errors


def test_health_check_and_unreachable() -> None:
    RedisConnector(SHARED).health_check()
    started = time.monotonic()
    with pytest.raises(base.Unreachable, match=r"Cannot reach Redis at 127\.0\.0\.1:1\b"):
        RedisConnector({"host": HOST, "port": 1}).health_check()
    with pytest.raises(base.Unreachable):
        RedisConnector({"host": HOST, "port": 1}).execute("PING")
    assert time.monotonic() - started < 3  # refused, not retried


def test_wrong_or_missing_password_is_auth_failed(auth_server: dict[str, Any]) -> None:
    wrong = "not-the-password-7f3a"
    with pytest.raises(base.AuthFailed, match="refused the password") as info:
        RedisConnector({**auth_server, "password": wrong}).health_check()
    assert f"{HOST}:{auth_server['port']}" in info.value.message
    assert wrong not in info.value.message and wrong not in str(info.value)
    with pytest.raises(base.AuthFailed, match="requires a password") as info:
        RedisConnector(auth_server).health_check()
    assert SECRET not in info.value.message
    with pytest.raises(base.AuthFailed, match="for user 'nobody'"):
        RedisConnector({**auth_server, "username": "nobody", "password": wrong}).health_check()
    good = RedisConnector({**auth_server, "password": SECRET})
    good.health_check()
    assert good.execute("PING").rows == [["PONG"]]


def test_acl_user_without_command_info(auth_server: dict[str, Any]) -> None:
    """An ACL user that may read but not run COMMAND INFO: writable datasources still work (the static
    refusals apply, Redis enforces its ACL); a read-only one refuses, since it cannot classify."""
    admin = redis.Redis(**auth_server, password=SECRET, decode_responses=True)
    admin.execute_command("ACL", "SETUSER", "reader", "on", ">reader-pw", "~*", "+@read", "+ping", "-command")
    admin.set("acl:k", "v")
    reader = {**auth_server, "username": "reader", "password": "reader-pw"}
    assert RedisConnector(reader).execute("GET acl:k").rows == [["v"]]
    with pytest.raises(base.BadQuery, match="no permissions to run the 'set' command"):
        RedisConnector(reader).execute("SET acl:k w")
    with pytest.raises(base.ReadOnlyViolation, match=r"grant the Redis user \+command\|info"):
        RedisConnector({**reader, "read_only": True}).execute("GET acl:k")
    assert admin.get("acl:k") == "v"
    admin.close()


def test_tls_or_protocol_mismatch_is_unreachable() -> None:
    with pytest.raises(base.Unreachable, match="over TLS: check that the server expects TLS"):
        RedisConnector({**SHARED, "tls": True, "connect_timeout_s": 1}).health_check()
    with socket.socket() as listener:  # a server that is not Redis
        listener.bind((HOST, 0))
        listener.listen()

        def answer_http() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        thread = threading.Thread(target=answer_http, daemon=True)
        thread.start()
        port = listener.getsockname()[1]
        with pytest.raises(base.Unreachable, match="did not answer like a Redis server"):
            RedisConnector({"host": HOST, "port": port, "connect_timeout_s": 2}).health_check()
        thread.join(timeout=5)


# --- running commands ---------------------------------------------------------------------------------
def test_set_and_get_with_params(raw: redis.Redis, prefix: str) -> None:
    c = RedisConnector(SHARED)
    key = f"{prefix}greeting"
    r = c.execute("SET :key :value", {"key": key, "value": "hello world"})
    assert (r.columns, r.rows, r.row_count, r.truncated) == (["value"], [["OK"]], 1, False)
    got = c.execute({"command": "get", "args": ["%(key)s"]}, {"key": key})
    assert got.rows == [["hello world"]] and raw.get(key) == "hello world"
    assert c.execute("GET :key", {"key": f"{prefix}missing"}).rows == [[None]]
    assert c.execute("INCRBY :key :by", {"key": f"{prefix}n", "by": 41}).rows == [[41]]
    assert c.execute(f"SET '{prefix}quoted' 'two words'").rows == [["OK"]]
    assert raw.get(f"{prefix}quoted") == "two words"
    with pytest.raises(base.BadQuery, match=r"Missing query parameter.*value"):
        c.execute("SET :key :value", {"key": key})
    with pytest.raises(base.BadQuery, match="'value' is dict"):
        c.execute("SET :key :value", {"key": key, "value": {"a": 1}})
    assert raw.get(key) == "hello world"
    raw.set(f"{prefix}bin", b"ok\xff\xfe")
    assert c.execute("GET :k", {"k": f"{prefix}bin"}).rows == [["ok\\xff\\xfe"]]  # not a decode crash
    # only whole arguments are markers: text around a marker is sent as it is
    c.execute({"command": "SET", "args": [f"{prefix}:key", "x:key"]}, {"key": "ignored"})
    assert raw.get(f"{prefix}:key") == "x:key"


def test_connections_are_pooled_and_broken_ones_dropped(prefix: str) -> None:
    config = {**SHARED, "connect_timeout_s": 7}  # a pool key of this test alone
    c = RedisConnector(config)
    with c.session():
        link = c.live()
        c.execute("SET :k 1", {"k": f"{prefix}a"})
        c.execute("GET :k", {"k": f"{prefix}a"}, timeout_s=2)
        assert c.live() is link and {"set", "get"} <= set(link.command_info)  # COMMAND INFO, cached
    assert c.link is None
    with c.session():
        assert c.live() is link  # borrowed back from the pool, with its cache
        with pytest.raises(base.QueryTimeout):
            c.execute("BLPOP :k 5", {"k": f"{prefix}missing"}, timeout_s=0.3)
        assert link.broken
    with c.session():
        assert c.live() is not link  # the timed-out connection was not given back
        assert c.execute("GET :k", {"k": f"{prefix}a"}).rows == [["1"]]


def test_hash_reply_is_field_value_rows(prefix: str) -> None:
    c = RedisConnector(SHARED)
    key = f"{prefix}user:1"
    assert c.execute("HSET :k name Ada lang Python", {"k": key}).rows == [[2]]
    r = c.execute({"command": "HGETALL", "args": [":k"]}, {"k": key})
    assert r.columns == ["field", "value"]
    assert sorted(r.rows) == [["lang", "Python"], ["name", "Ada"]] and r.row_count == 2
    assert c.execute("HGETALL :k", {"k": f"{prefix}none"}).rows == []
    assert c.execute("HGET :k name", {"k": key}).rows == [["Ada"]]


def test_list_reply_is_capped(raw: redis.Redis, prefix: str) -> None:
    key = f"{prefix}list"
    raw.rpush(key, *range(50))
    c = RedisConnector(SHARED)
    capped = c.execute("LRANGE :k 0 -1", {"k": key}, row_limit=7)
    assert (capped.columns, capped.row_count, capped.truncated) == (["value"], 7, True)
    assert capped.rows == [[str(i)] for i in range(7)]
    full = c.execute("LRANGE :k 0 -1", {"k": key})
    assert (full.row_count, full.truncated) == (50, False)
    exact = c.execute("LRANGE :k 0 6", {"k": key}, row_limit=7)
    assert (exact.row_count, exact.truncated) == (7, False)


def test_scan_and_sorted_set_shapes(raw: redis.Redis, prefix: str) -> None:
    raw.zadd(f"{prefix}z", {"a": 1, "b": 2.5})
    raw.hset(f"{prefix}h", mapping={"f": "v"})
    c = RedisConnector(SHARED)
    z = c.execute("ZRANGE :k 0 -1 WITHSCORES", {"k": f"{prefix}z"})
    assert (z.columns, z.rows) == (["member", "score"], [["a", "1"], ["b", "2.5"]])
    found, cursor = [], "0"
    while True:
        page = c.execute("SCAN :c MATCH :m COUNT 1000", {"c": cursor, "m": f"{prefix}*"})
        assert page.columns == ["value"] and "cursor" in page.as_dict()
        found += [row[0] for row in page.rows]
        cursor = page.extra["cursor"]
        if cursor == "0":
            break
    assert sorted(found) == [f"{prefix}h", f"{prefix}z"]
    h = c.execute("HSCAN :k 0", {"k": f"{prefix}h"})
    assert (h.columns, h.rows, h.extra) == (["field", "value"], [["f", "v"]], {"cursor": "0"})
    info = c.execute("INFO server")
    assert info.columns == ["field", "value"] and ["redis_mode", "standalone"] in info.rows


def test_injection_in_a_value_is_stored_literally(raw: redis.Redis, prefix: str) -> None:
    sentinel, key = f"{prefix}sentinel", f"{prefix}victim"
    raw.set(sentinel, "still here")
    c = RedisConnector(SHARED)
    for value in ("x\r\nFLUSHALL\r\n", "x\r\n*1\r\n$8\r\nFLUSHALL\r\n", "'; FLUSHDB", "a b c"):
        c.execute("SET :k :v", {"k": key, "v": value})
        assert c.execute("GET :k", {"k": key}).rows == [[value]]
        assert raw.get(key) == value
    assert raw.get(sentinel) == "still here"
    assert raw.exists(sentinel) == 1


def test_dangerous_commands_are_refused(raw: redis.Redis, prefix: str) -> None:
    sentinel = f"{prefix}sentinel"
    raw.set(sentinel, "still here")
    c = RedisConnector(SHARED)
    bodies: list[Any] = [
        "FLUSHALL",
        "flushdb ASYNC",
        {"command": "FlushAll"},
        "CONFIG SET maxmemory 1",
        "CONFIG GET *",
        "SHUTDOWN NOSAVE",
        "DEBUG SLEEP 0",
        "MONITOR",
        "SUBSCRIBE ch",
        "PSUBSCRIBE *",
        "SYNC",
        "REPLICAOF 127.0.0.1 1",
        "SLAVEOF NO ONE",
        "MIGRATE 127.0.0.1 1 k 0 1",
        "MODULE LIST",
        "ACL LIST",
        "SCRIPT FLUSH",
        "EVAL 'return 1' 0",
        "EVALSHA abc 0",
        "FUNCTION FLUSH",
        "CLIENT KILL TYPE normal",
        "SELECT 0",
        "MULTI",
        "KEYS *",
        "SWAPDB 0 13",
    ]
    for body in bodies:
        assert c.validate(body), body
        with pytest.raises(base.BadQuery) as info:
            c.execute(body)
        assert not isinstance(info.value, base.ReadOnlyViolation), body
    with pytest.raises(base.BadQuery, match="use SCAN"):
        c.execute("KEYS *")
    # not in REFUSED, but Redis flags it ``admin``: refused from the server's own classification
    assert "SLOWLOG" not in REFUSED and c.validate("SLOWLOG GET 1") == []
    with pytest.raises(base.BadQuery, match=r"SLOWLOG GET is not allowed.*administration"):
        c.execute("SLOWLOG GET 1")
    assert raw.get(sentinel) == "still here"


def test_read_only_uses_the_servers_command_flags(raw: redis.Redis, prefix: str) -> None:
    key = f"{prefix}k"
    raw.set(key, "original")
    raw.xadd(f"{prefix}stream", {"f": "v"})
    ro = RedisConnector({**SHARED, "read_only": True})
    for body in (
        "SET :k changed",
        "DEL :k",
        "EXPIRE :k 1",
        "BLPOP :k 1",
        "XGROUP CREATE :s g $",
        "PUBLISH c m",
    ):
        with pytest.raises(base.ReadOnlyViolation, match="read-only"):
            ro.execute(body, {"k": key, "s": f"{prefix}stream"})
    assert raw.get(key) == "original" and raw.ttl(key) == -1
    assert raw.xinfo_groups(f"{prefix}stream") == []
    with pytest.raises(base.ReadOnlyViolation, match="XGROUP CREATE"):
        ro.execute("XGROUP CREATE :s g $", {"s": f"{prefix}stream"})
    with pytest.raises(base.ReadOnlyViolation, match="does not know the command NOSUCHCMD"):
        ro.execute("NOSUCHCMD x")
    assert ro.execute("GET :k", {"k": key}).rows == [["original"]]
    assert ro.execute("OBJECT ENCODING :k", {"k": key}).rows == [["embstr"]]  # a read-only subcommand
    assert ro.execute("XINFO STREAM :s", {"s": f"{prefix}stream"}).row_count > 0
    assert ro.execute("EXISTS :k", {"k": key}).rows == [[1]]
    with pytest.raises(base.BadQuery, match="FLUSHALL"):  # refused before any read-only check
        ro.execute("FLUSHALL")
    RedisConnector(SHARED).execute("SET :k changed", {"k": key})  # the same write, allowed when writable
    assert raw.get(key) == "changed"


def test_redis_errors_are_bad_query(raw: redis.Redis, prefix: str) -> None:
    c = RedisConnector(SHARED)
    with pytest.raises(base.BadQuery, match="Redis: unknown command 'NOSUCHCMD'"):
        c.execute("NOSUCHCMD a b")
    with pytest.raises(base.BadQuery, match="Redis: wrong number of arguments for 'get'"):
        c.execute("GET")
    raw.hset(f"{prefix}h", "f", "v")
    with pytest.raises(base.BadQuery, match="WRONGTYPE"):
        c.execute("INCR :k", {"k": f"{prefix}h"})


def test_validate_reports_the_shape() -> None:
    c = RedisConnector(SHARED)
    assert c.validate("HGETALL user:1") == []
    assert c.validate({"command": "HGETALL", "args": ["user:1"]}) == []
    assert c.validate({"command": "LRANGE", "args": ["k", 0, -1]}) == []
    assert c.validate({"command": "PING"}) == []
    for body in (
        "",
        "   ",
        None,
        42,
        ["GET", "k"],
        "GET 'unbalanced",
        {"command": ""},
        {"command": "GET k"},
        {"command": "GET", "args": "k"},
        {"command": "GET", "args": [None]},
        {"command": "GET", "args": [True]},
        {"command": "GET", "args": [["nested"]]},
        {"cmd": "GET"},
    ):
        problems = c.validate(body)
        assert problems and all(isinstance(p, str) and p for p in problems), body
        with pytest.raises(base.BadQuery):
            c.execute(body)


def test_blocking_command_times_out(prefix: str) -> None:
    c = RedisConnector(SHARED)
    with c.session():
        started = time.monotonic()
        with pytest.raises(base.QueryTimeout, match=r"BLPOP ran past its timeout of 1 s"):
            c.execute("BLPOP :k 5", {"k": f"{prefix}missing"}, timeout_s=1)
        assert time.monotonic() - started < 3
        assert c.execute("PING", timeout_s=2).rows == [["PONG"]]  # the connection recovers
    assert RedisConnector(SHARED).execute("BLPOP :k 1", {"k": f"{prefix}none"}, timeout_s=5).rows == [[None]]


def test_timeout_without_live_socket_update(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """Older redis-py has no way to change a live socket's timeout: the connector reconnects instead."""
    monkeypatch.setattr(redis.Connection, "update_current_socket_timeout", None, raising=False)
    c = RedisConnector(SHARED)
    with c.session():
        assert c.execute("PING", timeout_s=2).rows == [["PONG"]]
        started = time.monotonic()
        with pytest.raises(base.QueryTimeout, match=r"timeout of 0\.5 s"):
            c.execute("BLPOP :k 5", {"k": f"{prefix}missing"}, timeout_s=0.5)
        assert time.monotonic() - started < 2.5
        assert c.execute("PING", timeout_s=3).rows == [["PONG"]]
