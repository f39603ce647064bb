"""What a hostile or broken server cannot do to an HTTP connector or the httpRequest node: send more
than the size cap, trickle bytes past the timeout, receive custom credential headers after a
cross-origin redirect, make an error message quote a secret, or turn an odd answer into a 500."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from apps.datasources.connectors import base
from apps.datasources.connectors.http import GraphQLConnector, RESTConnector, SlackConnector
from apps.workflows.nodes.base import NodeContext, NodeError
from apps.workflows.nodes.integrations import HTTPRequest
from jetadmin import outbound

Route = Callable[[BaseHTTPRequestHandler], None]


class Server:
    def __init__(self, host: str, routes: dict[str, Route]) -> None:
        self.seen: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _go(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.seen.append({k.lower(): v for k, v in self.headers.items()})
                routes[self.path.split("?")[0]](self)

            do_GET = do_POST = _go

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://{host}:{self.httpd.server_port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def send(
    handler: BaseHTTPRequestHandler,
    body: bytes,
    content_type: str = "application/json",
    status: int = 200,
    **headers: str,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def huge(handler: BaseHTTPRequestHandler) -> None:
    size = outbound.MAX_RESPONSE_BYTES + 1024 * 1024
    handler.send_response(200)
    handler.send_header("Content-Type", "application/octet-stream")
    handler.send_header("Content-Length", str(size))
    handler.end_headers()
    chunk = b"x" * 65536
    try:
        for _ in range(size // len(chunk)):
            handler.wfile.write(chunk)
    except OSError:
        pass  # the client hung up at the cap


@functools.cache  # built when a test asks, not at import (200 MB of zeros to compress)
def _gzip_of_zeros(megabytes: int, layers: int = 1) -> bytes:
    data = b""
    for layer in range(layers):
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip header
        if layer == 0:
            zeros = bytes(1024 * 1024)
            data = b"".join(packer.compress(zeros) for _ in range(megabytes)) + packer.flush()
        else:
            data = packer.compress(data) + packer.flush()
    return data


def bomb(megabytes: int, encoding: str, layers: int = 1) -> Route:
    """Zeros gzipped ``layers`` times: 200 MB are ~200 KB on the wire."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        body = _gzip_of_zeros(megabytes, layers)
        send(handler, body, "application/json", **{"Content-Encoding": encoding})

    return route


def slow_headers(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    try:
        for n in range(100):  # one header line every 0.3 s: each read is quick, the whole is not
            handler.send_header(f"X-Slow-{n}", "1")
            handler.flush_headers()
            time.sleep(0.3)
        handler.end_headers()
    except OSError:
        pass


def trickle(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", "100")
    handler.end_headers()
    try:
        for _ in range(100):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.3)  # each read is quick: only a total deadline stops this
    except OSError:
        pass


@pytest.fixture
def servers(settings: Any) -> Iterator[dict[str, Server]]:
    settings.JETADMIN_OUTBOUND_ALLOW = ["127.0.0.0/8"]
    other = Server("127.0.0.3", {"/landing": lambda h: send(h, b"{}")})
    first = Server(
        "127.0.0.2",
        {
            "/huge": huge,
            "/trickle": trickle,
            "/text": lambda h: send(h, b"not json", "text/plain"),
            "/chat.postMessage": lambda h: send(h, b"ok", "text/plain"),  # a proxy page, not Slack
            "/errors-object": lambda h: send(h, b'{"errors": {"message": "no such field"}}'),
            "/away": lambda h: send(h, b"", Location=other.url + "/landing", status=302),
            "/bomb": bomb(200, "gzip"),
            "/double-bomb": bomb(50, "gzip, gzip", layers=2),
            "/small-gzip": bomb(1, "gzip"),
            "/slow-headers": slow_headers,
        },
    )
    yield {"first": first, "other": other}
    first.close()
    other.close()


def ctx(deadline: float | None = None) -> NodeContext:
    return NodeContext(
        instance_id="i", tenant_id="t", node_id="n", iteration="", attempt=1,
        idempotency_key="k", deadline=deadline, data={},
    )  # fmt: skip


def test_a_response_over_the_cap_is_refused(servers: dict[str, Server]) -> None:
    with pytest.raises(base.BadQuery, match="larger than 10 MB"):
        RESTConnector({"base_url": servers["first"].url}).execute({"path": "/huge"})
    with pytest.raises(NodeError) as caught:
        HTTPRequest().run({"url": servers["first"].url + "/huge"}, ctx())
    assert caught.value.code == "response_too_large" and not caught.value.retryable
    assert servers["first"].seen[0]["accept-encoding"] == "identity"  # nothing inflates past the cap


def test_a_trickling_server_cannot_outlast_the_timeout(servers: dict[str, Server]) -> None:
    started = time.monotonic()
    with pytest.raises(base.QueryTimeout):
        RESTConnector({"base_url": servers["first"].url}).execute({"path": "/trickle"}, timeout_s=1)
    assert time.monotonic() - started < 3
    started = time.monotonic()
    with pytest.raises(NodeError) as caught:
        HTTPRequest().run(
            {"url": servers["first"].url + "/trickle", "timeout_s": 30}, ctx(time.monotonic() + 1)
        )
    assert caught.value.code == "timeout" and time.monotonic() - started < 3
    with pytest.raises(NodeError, match="ran out of time"):  # no time left: not even a connection
        HTTPRequest().run({"url": servers["first"].url + "/text"}, ctx(time.monotonic() - 1))


def test_custom_credential_headers_stay_with_their_origin(servers: dict[str, Server]) -> None:
    first, other = servers["first"], servers["other"]
    HTTPRequest().run(
        {"url": first.url + "/away", "headers": {"X-API-Key": "SECRET123", "Accept": "application/json"}},
        ctx(),
    )
    rest = {"base_url": first.url, "auth_type": "api_key", "api_key": "SECRET456", "headers": {"X-T": "t"}}
    RESTConnector(rest).execute({"path": "/away", "headers": {"X-Param": "p"}})
    assert first.seen[0]["x-api-key"] == "SECRET123" and first.seen[1]["x-api-key"] == "SECRET456"
    for headers in other.seen:
        assert not {"x-api-key", "x-t", "x-param", "authorization"} & set(headers), headers
    assert other.seen[0]["accept"] == "application/json" and other.seen[0]["idempotency-key"] == "k"


def test_an_unsendable_secret_is_never_quoted(servers: dict[str, Server]) -> None:
    for token in ("TOPSECRET-TOKEN\n", "TOPSECRET-TÖKEN"):
        connector = RESTConnector({"base_url": servers["first"].url, "auth_type": "bearer", "token": token})
        with pytest.raises(base.BadQuery) as caught:
            connector.execute({"path": "/text"})
        assert "TOPSECRET" not in caught.value.message and "line break" in caught.value.message


def test_odd_answers_are_errors_not_crashes(servers: dict[str, Server]) -> None:
    with pytest.raises(base.BadQuery, match="did not answer with a JSON object"):
        SlackConnector({"token": "xoxb-1", "base_url": servers["first"].url}).execute(
            {"channel": "C1", "text": "hi"}
        )
    with pytest.raises(base.BadQuery, match="no such field"):
        GraphQLConnector({"base_url": servers["first"].url + "/errors-object"}).execute("{ x }")


def test_a_compression_bomb_is_cut_without_inflating_it(servers: dict[str, Server]) -> None:
    c = RESTConnector({"base_url": servers["first"].url})
    assert c.execute({"path": "/small-gzip"}).rows[0][0] == "\x00" * (1024 * 1024)  # gzip is read
    tracemalloc.start()
    try:
        with pytest.raises(base.BadQuery, match="larger than 10 MB"):
            c.execute({"path": "/bomb"})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 1024 * 1024  # the cap holds after inflation, not after 200 MB of it
    with pytest.raises(base.BadQuery, match="does not read"):
        c.execute({"path": "/double-bomb"})


def test_trickled_headers_cannot_outlast_the_timeout(servers: dict[str, Server]) -> None:
    started = time.monotonic()
    with pytest.raises(base.QueryTimeout):
        RESTConnector({"base_url": servers["first"].url}).execute({"path": "/slow-headers"}, timeout_s=1)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("health_path", [".evil.example/", "@127.0.0.3:1/", ":1/x"])
def test_a_health_path_cannot_leave_the_base_url(servers: dict[str, Server], health_path: str) -> None:
    config = {
        "base_url": servers["first"].url,
        "auth_type": "bearer",
        "token": "T",
        "health_path": health_path,
    }
    connector = RESTConnector(config)
    with contextlib.suppress(base.ConnectorError):
        connector.health_check()
    assert all(h.get("authorization") != "Bearer T" for h in servers["other"].seen)
    url = connector.base_url() + connector.health_request()["path"]
    assert url.startswith(servers["first"].url + "/")  # the path is made relative to the base URL
    with pytest.raises((base.BadQuery, base.DestinationRefused)):  # a raw path never leaves either
        connector.send({"method": "GET", "path": health_path}, 2)
