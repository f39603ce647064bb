"""Real local HTTP servers for the HTTP connector tests, and fakes of the services jetadmin talks to
(Slack, SendGrid, Twilio, Stripe, a GraphQL API) that check each request the way the service does and
answer in its shape.

A :class:`FakeServer` is a stdlib ``ThreadingHTTPServer`` on a thread. Its ``app`` is a function from a
:class:`Seen` request to a :class:`Reply`; every request is recorded in ``seen`` and every accepted TCP
connection counted in ``connections`` (so a test can prove nothing reached a server).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    """One request as the server received it (``path`` is the raw, still percent-encoded path)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        pairs = parse_qs(self.body.decode(), keep_blank_values=True, strict_parsing=bool(self.body))
        assert all(len(v) == 1 for v in pairs.values()), pairs
        return {k: v[0] for k, v in pairs.items()}

    def basic(self) -> tuple[str, str] | None:
        """The user and password of a Basic ``Authorization`` header, as a server decodes it."""
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user, password

    def bearer(self) -> str | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" else None


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list → JSON, str → text/plain, bytes → as is, None → empty
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def reply_json(data: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(status, data, headers)


App = Callable[[Seen], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still sleeping does not hold up shutdown
    fake: FakeServer

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self.fake.lock:
            self.fake.connections += 1
        return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout tests) is not an error worth a traceback


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        parts = urlsplit(self.path)
        seen = Seen(
            self.command,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            {k.lower(): v for k, v in self.headers.items()},
            self.rfile.read(length) if length else b"",
        )
        with fake.lock:
            fake.seen.append(seen)
        try:
            reply = fake.app(seen)
        except Exception as exc:  # a fake's own bug shows up as a 500 the test can read
            reply = Reply(500, {"fake_error": repr(exc)})
        if reply.delay_s:
            time.sleep(reply.delay_s)
        body = reply.body
        headers = dict(reply.headers)
        if isinstance(body, dict | list):
            raw = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            raw = body.encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        else:
            raw = body or b""
        self.send_response(reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


class FakeServer:
    def __init__(self, app: App, host: str = "127.0.0.1") -> None:
        self.app = app
        self.seen: list[Seen] = []
        self.connections = 0
        self.lock = threading.Lock()
        self._httpd = _Server((host, 0), _Handler)
        self._httpd.fake = self
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


# --- services ------------------------------------------------------------------------------------------
class FakeSlack:
    """Slack's Web API: HTTP 200 always, ``ok: false`` with an error code when something is wrong."""

    def __init__(self, token: str, channels: dict[str, str]) -> None:
        self.token, self.channels = token, channels  # channel name → id
        self.posted: list[dict[str, Any]] = []

    def __call__(self, req: Seen) -> Reply:
        if req.method != "POST":
            return Reply(405, "method_not_allowed")
        if req.bearer() != self.token:
            return reply_json(
                {"ok": False, "error": "not_authed" if req.bearer() is None else "invalid_auth"}
            )
        if req.path == "/auth.test":
            return reply_json({"ok": True, "team": "Acme", "user": "jetbot", "bot_id": "B1"})
        if req.path != "/chat.postMessage":
            return reply_json({"ok": False, "error": "unknown_method"}, 404)
        if not req.headers.get("content-type", "").startswith("application/json"):
            return reply_json({"ok": False, "error": "invalid_form_data"})
        message = req.json()
        channel = self.channels.get(message.get("channel", "").lstrip("#"), message.get("channel"))
        if channel not in self.channels.values():
            return reply_json({"ok": False, "error": "channel_not_found"})
        if not message.get("text") and not message.get("blocks"):
            return reply_json({"ok": False, "error": "no_text"})
        ts = f"1700000000.{len(self.posted) + 100:06d}"
        self.posted.append(message)
        return reply_json({"ok": True, "channel": channel, "ts": ts, "message": {"text": message["text"]}})


class FakeSendGrid:
    """SendGrid's v3 mail API: 202 with an empty body and ``X-Message-Id``, or 4xx ``{errors: [...]}``."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.sent: list[dict[str, Any]] = []

    @staticmethod
    def _error(status: int, message: str, field_name: str | None = None) -> Reply:
        return reply_json({"errors": [{"message": message, "field": field_name, "help": None}]}, status)

    def __call__(self, req: Seen) -> Reply:
        if req.bearer() != self.api_key:
            return self._error(401, "The provided authorization grant is invalid, expired, or revoked")
        if req.path == "/v3/scopes" and req.method == "GET":
            return reply_json({"scopes": ["mail.send"]})
        if (req.method, req.path) != ("POST", "/v3/mail/send"):
            return self._error(404, "resource not found")
        if not req.headers.get("content-type", "").startswith("application/json"):
            return self._error(415, "Content-Type should be application/json.")
        mail = req.json()
        personalizations = mail.get("personalizations")
        if not isinstance(personalizations, list) or not personalizations:
            return self._error(400, "The personalizations field is required.", "personalizations")
        for p in personalizations:
            to = p.get("to")
            if not isinstance(to, list) or not to or not all("@" in str(r.get("email", "")) for r in to):
                return self._error(400, "Does not contain a valid address.", "personalizations.0.to")
        if "@" not in str((mail.get("from") or {}).get("email", "")):
            return self._error(400, "The from email does not contain a valid address.", "from.email")
        if not mail.get("subject"):
            return self._error(400, "The subject is required.", "subject")
        content = mail.get("content")
        if not isinstance(content, list) or not content or not all(c.get("value") for c in content):
            return self._error(400, "The content value must be a string at least one character.", "content")
        types = [c.get("type") for c in content]
        if "text/plain" in types and types[0] != "text/plain":
            return self._error(400, "If present, text/plain must be first.", "content.0.type")
        self.sent.append(mail)
        return Reply(202, None, {"X-Message-Id": f"msg-{len(self.sent)}"})


class FakeTwilio:
    """Twilio's Messages API: Basic auth ``AccountSid:AuthToken``, form-encoded To/From/Body."""

    def __init__(self, account_sid: str, auth_token: str, numbers: set[str]) -> None:
        self.sid, self.token, self.numbers = account_sid, auth_token, numbers  # numbers we own
        self.messages: list[dict[str, str]] = []

    def _error(self, status: int, code: int, message: str) -> Reply:
        return reply_json(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status,
        )

    def __call__(self, req: Seen) -> Reply:
        if req.basic() != (self.sid, self.token):
            return Reply(
                401,
                {"code": 20003, "message": "Authenticate", "status": 401},
                {"WWW-Authenticate": 'Basic realm="Twilio API"', "Content-Type": "application/json"},
            )
        account = f"/2010-04-01/Accounts/{self.sid}"
        if req.method == "GET" and req.path == f"{account}.json":
            return reply_json({"sid": self.sid, "status": "active"})
        if (req.method, req.path) != ("POST", f"{account}/Messages.json"):
            return self._error(404, 20404, "The requested resource was not found")
        if req.headers.get("content-type") != "application/x-www-form-urlencoded":
            return self._error(400, 20001, "Unsupported content type")
        form = req.form()
        if not form.get("To"):
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not form["To"].startswith("+") or not form["To"][1:].isdigit():
            return self._error(400, 21211, f"Invalid 'To' Phone Number: {form['To']}")
        if form.get("From") not in self.numbers:
            return self._error(400, 21606, "The From phone number is not a valid message-capable number.")
        if not form.get("Body"):
            return self._error(400, 21602, "Message body is required.")
        sid = "SM" + uuid.uuid4().hex
        self.messages.append(form)
        return reply_json({"sid": sid, "status": "queued", "to": form["To"], "body": form["Body"]}, 201)


def _unflatten(form: dict[str, str]) -> dict[str, Any]:
    """Stripe's form decoding: ``metadata[plan]=pro`` → ``{"metadata": {"plan": "pro"}}``."""
    out: dict[str, Any] = {}
    for key, value in form.items():
        names = key.replace("]", "").split("[")
        target = out
        for name in names[:-1]:
            target = target.setdefault(name, {})
        target[names[-1]] = value
    return out


class FakeStripe:
    """Stripe's API for customers: Bearer secret key, form-encoded writes, list objects, and the
    idempotency cache (same key + same parameters → the first response replayed, nothing created;
    same key + other parameters → 400 ``idempotency_error``)."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.customers: list[dict[str, Any]] = [
            {"id": f"cus_seed{i}", "object": "customer", "email": f"seed{i}@example.com", "metadata": {}}
            for i in range(5)
        ]
        self.idempotency: dict[tuple[str, str], tuple[bytes, Reply]] = {}

    @staticmethod
    def _error(status: int, kind: str, message: str, **extra: str) -> Reply:
        return reply_json({"error": {"type": kind, "message": message, **extra}}, status)

    def __call__(self, req: Seen) -> Reply:
        key = req.bearer() or ""
        if key != self.api_key:
            return self._error(401, "invalid_request_error", f"Invalid API Key provided: {key[:8]}****")
        if req.method == "GET" and req.path == "/v1/balance":
            return reply_json({"object": "balance", "available": [{"amount": 0, "currency": "usd"}]})
        if req.method == "GET" and req.path == "/v1/customers":
            limit = int(req.query.get("limit", ["10"])[0])
            if not 1 <= limit <= 100:
                return self._error(400, "invalid_request_error", "Invalid integer: limit", param="limit")
            data = self.customers[:limit]
            return reply_json(
                {
                    "object": "list",
                    "url": "/v1/customers",
                    "has_more": len(self.customers) > limit,
                    "data": data,
                }
            )
        if req.method == "POST" and req.path == "/v1/customers":
            if req.headers.get("content-type") != "application/x-www-form-urlencoded":
                return self._error(400, "invalid_request_error", "Invalid request: use form encoding")
            idem = req.headers.get("idempotency-key")
            if idem:
                cached = self.idempotency.get((key, idem))
                if cached:
                    body, reply = cached
                    if body != req.body:
                        return self._error(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same parameters "
                            "they were first used with.",
                        )
                    return Reply(reply.status, reply.body, {**reply.headers, "Idempotent-Replayed": "true"})
            values = _unflatten(req.form())
            customer = {
                "id": f"cus_{uuid.uuid4().hex[:14]}",
                "object": "customer",
                "email": values.get("email"),
                "name": values.get("name"),
                "metadata": values.get("metadata", {}),
            }
            self.customers.append(customer)
            reply = reply_json(customer, 200, **{"Request-Id": f"req_{uuid.uuid4().hex[:10]}"})
            if idem:
                self.idempotency[(key, idem)] = (req.body, reply)
            return reply
        return self._error(
            404, "invalid_request_error", f"Unrecognized request URL ({req.method}: {req.path})."
        )


class FakeGraphQL:
    """A GraphQL endpoint: ``POST {query, variables}``; knows ``users(role)`` and ``__typename``."""

    USERS = [
        {"id": 1, "name": "Ada", "role": "admin"},
        {"id": 2, "name": "Linus", "role": "dev"},
        {"id": 3, "name": "Grace", "role": "admin"},
    ]

    def __call__(self, req: Seen) -> Reply:
        if req.method != "POST" or not req.headers.get("content-type", "").startswith("application/json"):
            return reply_json({"errors": [{"message": "Must provide query string."}]}, 400)
        payload = req.json()
        query, variables = payload.get("query"), payload.get("variables") or {}
        if not isinstance(query, str):
            return reply_json({"errors": [{"message": "Must provide query string."}]}, 400)
        if query.strip() == "{ __typename }":
            return reply_json({"data": {"__typename": "Query"}})
        if "users" in query:
            if "$role" in query and "role" not in variables:
                message = 'Variable "$role" of required type "String!" was not provided.'
                return reply_json({"errors": [{"message": message}]}, 200)
            users = [u for u in self.USERS if u["role"] == variables["role"]] if "role" in variables else []
            limit = variables.get("limit")
            return reply_json({"data": {"users": users[:limit] if isinstance(limit, int) else users}})
        return reply_json({"errors": [{"message": f"Cannot query field on type Query: {query[:40]}"}]})


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)
