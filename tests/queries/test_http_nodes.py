"""httpRequest and notify on the embedded worker against a real local HTTP server: parsed answers,
status handling, the Idempotency-Key kept across retries, the outbound guard, and notify's channels."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from apps.datasources import services as datasources
from apps.tenancy.services import Actor

pytestmark = pytest.mark.django_db(transaction=True)


class Recorder(ThreadingHTTPServer):
    """Records every request; answers from ``script`` (a list of (status, body) consumed in order,
    the last one repeating)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, Any]] = [(200, {"ok": True})]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class Handler(BaseHTTPRequestHandler):
    server: Recorder

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.server.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": raw}
        )
        script = self.server.script
        status, body = script.pop(0) if len(script) > 1 else script[0]
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server(settings: Any) -> Iterator[Recorder]:
    settings.JETADMIN_OUTBOUND_ALLOW = ["127.0.0.0/8"]
    srv = Recorder()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def one_node(node_type: str, inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "call", "type": node_type, "inputs": inputs, **extra},
            {"id": "end", "type": "end", "inputs": {"output": "{{call}}"}},
        ],
        "edges": [{"from": "start", "to": "call"}, {"from": "call", "to": "end"}],
    }


def test_http_request_parses_json_and_sends_the_idempotency_key(run_graph, server) -> None:
    server.script = [(200, {"items": [1, 2, 3]})]
    instance = run_graph(
        one_node(
            "httpRequest",
            {
                "method": "POST",
                "url": server.url + "/orders",
                "query": {"page": "{{input.page}}"},
                "headers": {"X-Trace": "t1"},
                "body": {"id": "{{input.page}}"},
            },
        ),
        {"page": 2},
    )
    assert instance.status == "succeeded", instance.error
    assert instance.output["status"] == 200 and instance.output["body"] == {"items": [1, 2, 3]}
    (request,) = server.requests
    assert request["path"] == "/orders?page=2" and json.loads(request["body"]) == {"id": 2}
    assert request["headers"]["X-Trace"] == "t1" and request["headers"]["Idempotency-Key"]


def test_a_retried_request_carries_the_same_idempotency_key(run_graph, server) -> None:
    server.script = [(503, "busy"), (200, "done")]
    instance = run_graph(
        one_node("httpRequest", {"url": server.url + "/x"}, retry={"max_attempts": 3, "backoff_s": 0.01})
    )
    assert instance.status == "succeeded", instance.error
    assert instance.output["body"] == "done"
    keys = [r["headers"]["Idempotency-Key"] for r in server.requests]
    assert len(keys) == 2 and keys[0] == keys[1]


def test_status_handling(run_graph, server) -> None:
    server.script = [(404, {"error": "no such order"})]
    passed = run_graph(one_node("httpRequest", {"url": server.url + "/o/1", "fail_on_status": False}))
    assert passed.status == "succeeded" and passed.output["status"] == 404
    failed = run_graph(
        one_node("httpRequest", {"url": server.url + "/o/1"}, retry={"max_attempts": 3, "backoff_s": 0.01})
    )
    assert failed.status == "failed"
    assert failed.error["code"] == "http_status" and failed.error["attempt"] == 1  # a 404 is not retried
    assert "404" in failed.error["message"]


def test_the_outbound_guard_refuses_without_connecting(run_graph, server, settings) -> None:
    settings.JETADMIN_OUTBOUND_ALLOW = []
    instance = run_graph(
        one_node("httpRequest", {"url": server.url + "/"}, retry={"max_attempts": 3, "backoff_s": 0.01})
    )
    assert instance.status == "failed" and instance.error["code"] == "outbound_refused"
    assert instance.error["attempt"] == 1 and "JETADMIN_OUTBOUND_ALLOW" in instance.error["message"]
    assert server.requests == []


def test_notify_webhook_and_slack_incoming_webhook_by_url(run_graph, server) -> None:
    hook = run_graph(
        one_node(
            "notify",
            {"channel": "webhook", "url": server.url + "/hook", "subject": "Done", "body": {"n": 3}},
        )
    )
    assert hook.status == "succeeded", hook.error
    assert hook.output["delivered"] is True
    sent = server.requests[-1]
    assert json.loads(sent["body"]) == {"subject": "Done", "body": {"n": 3}, "to": None}
    assert sent["headers"]["Idempotency-Key"]

    slack = run_graph(
        one_node("notify", {"channel": "slack", "url": server.url + "/services/T/B/X", "body": "hi"})
    )
    assert slack.status == "succeeded", slack.error
    assert json.loads(server.requests[-1]["body"]) == {"text": "hi"}


def test_notify_slack_through_a_slack_datasource(run_graph, server, owner_tenant) -> None:
    user, tenant = owner_tenant
    source = datasources.datasource_create(
        actor=Actor(user=user),
        tenant=tenant,
        name="slack",
        type="slack",
        config={"token": "xoxb-canary-token", "base_url": server.url + "/api"},
    )
    server.script = [(200, {"ok": True, "channel": "C1", "ts": "1700000000.000100"})]
    instance = run_graph(
        one_node(
            "notify",
            {"channel": "slack", "datasource": str(source.id), "to": "#ops", "subject": "S", "body": "b"},
        )
    )
    assert instance.status == "succeeded", instance.error
    assert instance.output == {"delivered": True, "id": "1700000000.000100"}
    sent = server.requests[-1]
    assert sent["path"] == "/api/chat.postMessage"
    assert sent["headers"]["Authorization"] == "Bearer xoxb-canary-token"
    assert json.loads(sent["body"]) == {"channel": "#ops", "text": "*S*\nb"}
    # The wrong kind of datasource for the channel is a clear, non-retried error.
    wrong = run_graph(one_node("notify", {"channel": "email", "datasource": str(source.id), "to": "a@b.c"}))
    assert wrong.status == "failed" and wrong.error["code"] == "invalid_input"


def test_notify_inputs_are_checked_when_the_graph_is_saved(run_graph) -> None:
    from apps.workflows.engine import graph as graphs

    with pytest.raises(graphs.GraphInvalid) as caught:
        graphs.build(one_node("notify", {"channel": "webhook"}))
    assert "url" in str(caught.value.errors)


def test_notify_email_through_an_smtp_datasource(run_graph, owner_tenant, settings) -> None:
    """A real SMTP server (aiosmtpd): the email arrives; the Message-ID comes from the node's
    idempotency key (tests/datasources/test_smtp.py shows it is the same on every attempt)."""
    from aiosmtpd.controller import Controller

    from tests.conftest import free_port

    settings.JETADMIN_OUTBOUND_ALLOW = ["127.0.0.0/8"]
    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope.content)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        user, tenant = owner_tenant
        source = datasources.datasource_create(
            actor=Actor(user=user),
            tenant=tenant,
            name="mail",
            type="smtp",
            config={
                "host": "127.0.0.1",
                "port": controller.port,
                "security": "none",
                "from_email": "reports@example.com",
            },
        )
        inputs = {
            "channel": "email",
            "datasource": str(source.id),
            "to": "{{input.to}}",
            "subject": "Monthly report",
            "body": "Revenue is up.",
        }
        instance = run_graph(one_node("notify", inputs), {"to": "ops@example.com"})
        assert instance.status == "succeeded", instance.error
        (raw,) = received
        text = raw.decode()
        assert "Subject: Monthly report" in text and "To: ops@example.com" in text
        assert "Revenue is up." in text and instance.output["id"] in text
    finally:
        controller.stop()
