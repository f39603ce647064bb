"""The HTTP connectors (REST, GraphQL, and the Slack, SendGrid, Twilio, Stripe and webhook presets)
against real local HTTP servers that check each request the way the service does and answer in its
shape: auth modes, typed parameters, answers as tables, error mapping, timeouts, the outbound guard on
redirects, idempotency keys and webhook signatures. Nothing of httpx or of our code is mocked."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apps.datasources.connectors import base
from apps.datasources.connectors.http import (
    GraphQLConnector,
    RESTConnector,
    SendGridConnector,
    SlackConnector,
    StripeConnector,
    TwilioConnector,
    WebhookConnector,
)
from tests.conftest import free_port
from tests.datasources.fake_services import (
    App,
    FakeGraphQL,
    FakeSendGrid,
    FakeServer,
    FakeSlack,
    FakeStripe,
    FakeTwilio,
    Reply,
    Seen,
    reply_json,
    signature_ok,
)

Serve = Callable[..., FakeServer]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a :class:`FakeServer` (``serve(app, host=...)``); every one is shut down at teardown."""
    servers: list[FakeServer] = []

    def start(app: App, host: str = "127.0.0.1") -> FakeServer:
        server = FakeServer(app, host)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def loopback(settings: Any) -> None:
    settings.JETADMIN_OUTBOUND_ALLOW = ["127.0.0.0/8"]


# --- a small REST API ------------------------------------------------------------------------------------
USERS = [
    {"id": 1, "name": "Ada", "admin": True},
    {"id": 2, "name": "Linus"},
    {"id": 3, "name": "Grace", "admin": True},
]


def rest_api(
    authorized: Callable[[Seen], bool] = lambda req: True, *, release: threading.Event | None = None
) -> App:
    """Users, a text and a scalar endpoint, status and slow endpoints, and an echo of the request.
    ``/slow`` answers after 2 s, or, given ``release``, only once it is set (at most 30 s)."""

    def app(req: Seen) -> Reply:
        if req.path == "/api/healthz" and req.query.get("fail"):
            return reply_json({"detail": "database down"}, 503)
        if not authorized(req):
            return Reply(401, {"detail": "Invalid credentials."}, {"WWW-Authenticate": 'Basic realm="api"'})
        path = req.path.removeprefix("/api")
        if path == "/users":
            return reply_json(USERS)
        if path.startswith("/users/") and path[7:].isdigit():
            return reply_json(next(u for u in USERS if u["id"] == int(path[7:])))
        if path == "/text":
            return Reply(200, "pong\n")
        if path == "/numbers":
            return reply_json([3, 1, 2])
        if path.startswith("/status/"):
            return reply_json({"detail": f"the server chose {path[8:]}"}, int(path[8:]))
        if path == "/slow":
            if release is not None:
                release.wait(30)
                return reply_json({"late": True})
            return Reply(200, {"late": True}, delay_s=2)
        if path == "/healthz":
            return reply_json({"ok": True})
        if path.startswith(("/echo", "/v1/")):
            body = req.json() if req.body else None
            return reply_json({"method": req.method, "path": req.path, "body": body})
        return reply_json({"detail": "Not found."}, 404)

    return app


# --- REST: auth modes -----------------------------------------------------------------------------------
def test_rest_without_auth_sends_no_credentials(serve: Serve, loopback: None) -> None:
    server = serve(rest_api())
    r = RESTConnector({"base_url": server.url + "/api"}).execute({"path": "/users"})
    assert r.columns == ["id", "name", "admin"]
    assert r.rows == [[1, "Ada", True], [2, "Linus", None], [3, "Grace", True]]
    assert (r.row_count, r.truncated, r.extra) == (3, False, {"status": 200})
    (seen,) = server.seen
    assert (seen.method, seen.path) == ("GET", "/api/users")
    assert "authorization" not in seen.headers and "x-api-key" not in seen.headers


def test_rest_basic_auth_and_a_wrong_password(serve: Serve, loopback: None) -> None:
    server = serve(rest_api(lambda req: req.basic() == ("ada", "s3cret-Pw")))
    config = {"base_url": server.url + "/api", "auth_type": "basic", "username": "ada"}
    r = RESTConnector({**config, "password": "s3cret-Pw"}).execute({"path": "/users/1"})
    assert r.rows == [[1, "Ada", True]]
    assert server.seen[-1].headers["authorization"].startswith("Basic ")

    canary = "wr0ng-canary-pw-51"
    with pytest.raises(base.AuthFailed, match="401") as info:
        RESTConnector({**config, "password": canary}).execute({"path": "/users"})
    assert server.seen[-1].basic() == ("ada", canary)  # it was sent, and refused by the server
    assert canary not in str(info.value) and canary not in info.value.message
    assert "ada" not in info.value.message


def test_rest_bearer_token(serve: Serve, loopback: None) -> None:
    server = serve(rest_api(lambda req: req.bearer() == "tok-123"))
    config = {"base_url": server.url + "/api", "auth_type": "bearer"}
    assert RESTConnector({**config, "token": "tok-123"}).execute({"path": "/users"}).row_count == 3
    assert server.seen[-1].headers["authorization"] == "Bearer tok-123"
    with pytest.raises(base.AuthFailed, match="check the credentials") as info:
        RESTConnector({**config, "token": "tok-expired"}).execute({"path": "/users"})
    assert "tok-expired" not in info.value.message


def test_rest_api_key_in_a_custom_header(serve: Serve, loopback: None) -> None:
    server = serve(rest_api(lambda req: req.headers.get("x-custom-key") == "k-987"))
    config = {"base_url": server.url + "/api", "auth_type": "api_key", "api_key_header": "X-Custom-Key"}
    assert RESTConnector({**config, "api_key": "k-987"}).execute({"path": "/users"}).row_count == 3
    assert "authorization" not in server.seen[-1].headers and "x-api-key" not in server.seen[-1].headers
    with pytest.raises(base.AuthFailed):
        RESTConnector({**config, "api_key": "k-000"}).execute({"path": "/users"})
    # without a header name the key goes in X-API-Key
    default = serve(rest_api(lambda req: req.headers.get("x-api-key") == "k-1"))
    config = {**config, "base_url": default.url + "/api", "api_key_header": ""}
    RESTConnector({**config, "api_key": "k-1"}).execute({"path": "/healthz"})
    assert default.seen[-1].headers["x-api-key"] == "k-1"


# --- REST: parameters -----------------------------------------------------------------------------------
def test_rest_whole_value_params_keep_their_type(serve: Serve, loopback: None) -> None:
    server = serve(rest_api())
    who = "O'Brien & co=1"
    body = {
        "method": "post",
        "path": "/echo",
        "query": {"limit": ":n", "active": ":flag", "ids": ":ids", "skip": ":none", "q": "name = :n"},
        "headers": {"X-Count": ":n", "X-Who": "%(who)s"},
        "body": {
            "n": ":n",
            "flag": ":flag",
            "ids": ":ids",
            "none": ":none",
            "nested": {"who": "%(who)s", "list": [":n", "text :n", "%(who)s!"]},
        },
    }
    params = {"n": 5, "flag": True, "ids": [1, 2], "none": None, "who": who}
    r = RESTConnector({"base_url": server.url + "/api"}).execute(body, params)
    assert r.rows[0][:2] == ["POST", "/api/echo"]
    (seen,) = server.seen
    # the query string is text: typed values become their text, a list repeats, None is left out
    assert seen.query == {"limit": ["5"], "active": ["true"], "ids": ["1", "2"], "q": ["name = :n"]}
    assert (seen.headers["x-count"], seen.headers["x-who"]) == ("5", who)
    assert seen.json() == {
        "n": 5,
        "flag": True,
        "ids": [1, 2],
        "none": None,
        "nested": {"who": who, "list": [5, "text :n", "%(who)s!"]},
    }
    with pytest.raises(base.BadQuery, match="Missing query parameter: n"):
        RESTConnector({"base_url": server.url}).execute({"query": {"x": ":n"}})
    assert len(server.seen) == 1


def test_rest_path_params_are_one_quoted_segment(serve: Serve, loopback: None) -> None:
    server = serve(rest_api())
    c = RESTConnector({"base_url": server.url + "/api/v1"})
    cases = {
        "../etc": "..%2Fetc",
        "../../admin": "..%2F..%2Fadmin",
        "a b?x=1#frag": "a%20b%3Fx%3D1%23frag",
        "%2e%2e": "%252e%252e",
        "/etc/passwd": "%2Fetc%2Fpasswd",
        42: "42",
    }
    for value, segment in cases.items():
        c.execute({"path": "/files/{name}/meta"}, {"name": value})
        seen = server.seen[-1]
        assert seen.path == f"/api/v1/files/{segment}/meta", value
        assert seen.query == {}
    with pytest.raises(base.BadQuery, match="Missing query parameter: name"):
        c.execute({"path": "/files/{name}"})


def test_rest_dot_segment_path_params_cannot_climb(serve: Serve, loopback: None) -> None:
    server = serve(rest_api())
    c = RESTConnector({"base_url": server.url + "/api/v1"})
    for value in ("..", "."):
        c.execute({"path": "/users/{id}/posts"}, {"id": value})
        path = server.seen[-1].path
        assert path.startswith("/api/v1/users/") and path.endswith("/posts"), (value, path)
        assert path.count("/") == 5, (value, path)


def test_rest_header_param_with_crlf_never_injects_a_header(serve: Serve, loopback: None) -> None:
    server = serve(rest_api())
    c = RESTConnector({"base_url": server.url + "/api"})
    with pytest.raises(base.ConnectorError):
        c.execute({"path": "/echo", "headers": {"X-Who": ":who"}}, {"who": "x\r\nX-Injected: 1"})
    assert all("x-injected" not in seen.headers for seen in server.seen)


def test_rest_header_param_with_crlf_is_a_bad_query(serve: Serve, loopback: None) -> None:
    server = serve(rest_api())
    c = RESTConnector({"base_url": server.url + "/api"})
    with pytest.raises(base.BadQuery):
        c.execute({"path": "/echo", "headers": {"X-Who": ":who"}}, {"who": "x\r\nX-Injected: 1"})


# --- REST: answers and errors ---------------------------------------------------------------------------
def test_rest_answers_become_tables(serve: Serve, loopback: None) -> None:
    c = RESTConnector({"base_url": serve(rest_api()).url + "/api"})
    one = c.execute({"path": "/users/2"})
    assert (one.columns, one.rows, one.row_count) == (["id", "name"], [[2, "Linus"]], 1)
    text = c.execute({"path": "/text"})
    assert (text.columns, text.rows) == (["body"], [["pong\n"]])
    scalars = c.execute({"path": "/numbers"})
    assert (scalars.columns, scalars.rows) == (["value"], [[3], [1], [2]])
    capped = c.execute({"path": "/users"}, row_limit=2)
    assert (capped.rows, capped.row_count, capped.truncated) == (
        [[1, "Ada", True], [2, "Linus", None]],
        2,
        True,
    )


def test_rest_status_codes_map_to_typed_errors(serve: Serve, loopback: None) -> None:
    c = RESTConnector({"base_url": serve(rest_api()).url + "/api"})
    for status in (400, 404, 409, 422):
        with pytest.raises(base.BadQuery, match=f"answered {status}: .*the server chose {status}"):
            c.execute({"path": f"/status/{status}"})
    for status in (429, 500, 502, 503):
        with pytest.raises(base.Unreachable, match=f"answered {status}"):
            c.execute({"path": f"/status/{status}"})
    for status in (401, 403):
        with pytest.raises(base.AuthFailed, match=f"answered {status}"):
            c.execute({"path": f"/status/{status}"})
    with pytest.raises(base.BadQuery, match="answered 404"):
        c.execute({"path": "/nowhere"})
    with pytest.raises(base.BadQuery, match="method must be one of"):
        c.execute({"method": "TRACE", "path": "/users"})


def test_rest_slow_server_times_out_fast(serve: Serve, loopback: None) -> None:
    """The server holds its answer for 30 s; the 0.5 s timeout must end the request soon after 0.5 s.
    "Soon" is measured against the same request answered at once (a baseline taken here, so a loaded
    machine slows both) with seconds of headroom; without the timeout it would take the full 30 s."""
    release = threading.Event()
    server = serve(rest_api(release=release))
    config = {"base_url": server.url + "/api"}
    started = time.monotonic()
    assert RESTConnector(config).execute({"path": "/healthz"}, timeout_s=0.5).rows == [[True]]
    baseline = time.monotonic() - started
    try:
        started = time.monotonic()
        with pytest.raises(base.QueryTimeout, match=r"did not answer within 0\.5 s"):
            RESTConnector(config).execute({"path": "/slow"}, timeout_s=0.5)
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert 0.5 <= elapsed < 0.5 + 5 * baseline + 3, (
        f"timed out after {elapsed:.3f} s (baseline {baseline:.3f} s)"
    )
    assert [s.path for s in server.seen] == ["/api/healthz", "/api/slow"]


def test_rest_connection_refused_is_unreachable(loopback: None) -> None:
    port = free_port()  # bound and closed again: nothing listens there
    with pytest.raises(base.Unreachable, match=f"Cannot connect to http://127.0.0.1:{port}/"):
        RESTConnector({"base_url": f"http://127.0.0.1:{port}"}).execute({"path": "/users"})


def test_rest_health_check_uses_health_path(serve: Serve, loopback: None) -> None:
    server = serve(rest_api(lambda req: req.bearer() == "tok"))
    config = {
        "base_url": server.url + "/api",
        "auth_type": "bearer",
        "token": "tok",
        "health_path": "/healthz",
    }
    RESTConnector(config).health_check()
    assert [(s.method, s.path) for s in server.seen] == [("GET", "/api/healthz")]
    with pytest.raises(base.AuthFailed):
        RESTConnector({**config, "token": "nope"}).health_check()
    with pytest.raises(base.Unreachable, match="503"):
        RESTConnector({**config, "health_path": "/healthz?fail=1"}).health_check()


# --- REST: the outbound guard ---------------------------------------------------------------------------
def test_loopback_is_refused_without_the_allow_list(serve: Serve, settings: Any) -> None:
    settings.JETADMIN_OUTBOUND_ALLOW = []
    server = serve(rest_api())
    with pytest.raises(base.DestinationRefused, match="JETADMIN_OUTBOUND_ALLOW"):
        RESTConnector({"base_url": server.url}).execute({"path": "/users"})
    with pytest.raises(base.DestinationRefused):
        RESTConnector({"base_url": server.url, "health_path": "/healthz"}).health_check()
    assert server.connections == 0


def test_redirect_to_a_refused_address_never_connects(serve: Serve, settings: Any) -> None:
    settings.JETADMIN_OUTBOUND_ALLOW = ["127.0.0.2/32"]
    inner = serve(rest_api(), host="127.0.0.1")
    targets = {
        "/to-loopback": inner.url + "/api/users",
        "/to-metadata": "http://169.254.169.254/latest/meta-data/",
        "/to-gopher": "gopher://127.0.0.2:70/_x",
        "/to-self": "/api/users",
    }
    outer = serve(
        lambda req: (
            Reply(302, None, {"Location": targets[req.path]}) if req.path in targets else rest_api()(req)
        ),
        host="127.0.0.2",
    )
    c = RESTConnector({"base_url": outer.url})
    for path in ("/to-loopback", "/to-metadata", "/to-gopher"):
        with pytest.raises(base.DestinationRefused):
            c.execute({"path": path})
    assert inner.connections == 0 and inner.seen == []
    assert c.execute({"path": "/to-self"}).row_count == 3  # a redirect to an allowed place is followed
    assert [s.path for s in outer.seen] == [
        "/to-loopback",
        "/to-metadata",
        "/to-gopher",
        "/to-self",
        "/api/users",
    ]


def test_cross_origin_redirect_drops_the_authorization_header(serve: Serve, settings: Any) -> None:
    settings.JETADMIN_OUTBOUND_ALLOW = ["127.0.0.2/32", "127.0.0.3/32"]
    other = serve(lambda req: reply_json({"headers": sorted(req.headers)}), host="127.0.0.3")
    outer = serve(lambda req: Reply(302, None, {"Location": other.url + "/landing"}), host="127.0.0.2")
    for auth in (
        {"auth_type": "bearer", "token": "tok-secret"},
        {"auth_type": "basic", "username": "u", "password": "pw-secret"},
    ):
        RESTConnector({"base_url": outer.url, **auth}).execute({"path": "/x"})
        assert "authorization" in outer.seen[-1].headers
        assert "authorization" not in other.seen[-1].headers, auth


def test_cross_origin_redirect_drops_the_api_key(serve: Serve, settings: Any) -> None:
    settings.JETADMIN_OUTBOUND_ALLOW = ["127.0.0.2/32", "127.0.0.3/32"]
    other = serve(lambda req: reply_json({"headers": sorted(req.headers)}), host="127.0.0.3")
    outer = serve(lambda req: Reply(302, None, {"Location": other.url + "/landing"}), host="127.0.0.2")
    config = {"base_url": outer.url, "auth_type": "api_key", "api_key_header": "X-Custom-Key", "api_key": "k"}
    RESTConnector(config).execute({"path": "/x"})
    assert outer.seen[-1].headers["x-custom-key"] == "k"
    assert "x-custom-key" not in other.seen[-1].headers


def test_idempotency_key_is_sent_on_writes_only(serve: Serve, loopback: None) -> None:
    server = serve(rest_api())
    c = RESTConnector({"base_url": server.url + "/api"})
    c.execute({"method": "POST", "path": "/echo", "body": {"a": 1}})
    assert "idempotency-key" not in server.seen[-1].headers
    c.idempotency_key = "k1"
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        c.execute({"method": method, "path": "/echo", "body": {"a": 1}})
        assert server.seen[-1].headers["idempotency-key"] == "k1", method
    c.execute({"method": "GET", "path": "/echo"})
    assert "idempotency-key" not in server.seen[-1].headers


def test_rest_check_config_refuses_non_http_urls() -> None:
    for url in ("file:///etc/passwd", "gopher://x", "ftp://example.com/x"):
        with pytest.raises(base.ConfigInvalid) as info:
            RESTConnector.check_config({"base_url": url})
        assert list(info.value.errors) == ["base_url"], url
        assert "http" in info.value.errors["base_url"][0]
    assert RESTConnector.check_config({"base_url": "https://api.example.com/v1"})["base_url"]
    with pytest.raises(base.ConfigInvalid) as info:
        RESTConnector.check_config({"base_url": "http://x", "auth_type": "digest"})
    assert "auth_type" in info.value.errors


# --- GraphQL --------------------------------------------------------------------------------------------
USERS_QUERY = (
    "query Users($role: String!, $limit: Int) { users(role: $role, limit: $limit) { id name role } }"
)


def test_graphql_query_with_params_as_variables(serve: Serve, loopback: None) -> None:
    server = serve(FakeGraphQL())
    c = GraphQLConnector({"base_url": server.url + "/graphql", "auth_type": "bearer", "token": "gql"})
    body = {"query": USERS_QUERY, "variables": {"limit": ":limit"}, "operation_name": "Users"}
    r = c.execute(body, {"role": "admin", "limit": 5})
    assert r.columns == ["id", "name", "role"]
    assert r.rows == [[1, "Ada", "admin"], [3, "Grace", "admin"]]
    assert r.extra["data"] == {"users": [dict(zip(r.columns, row, strict=True)) for row in r.rows]}
    (seen,) = server.seen
    assert (seen.method, seen.path, seen.headers["authorization"]) == ("POST", "/graphql", "Bearer gql")
    assert seen.json() == {
        "query": USERS_QUERY,
        "variables": {"limit": 5, "role": "admin"},
        "operationName": "Users",
    }
    capped = c.execute(USERS_QUERY, {"role": "admin"}, row_limit=1)  # the query as plain text
    assert (capped.row_count, capped.truncated) == (1, True)


def test_graphql_errors_are_bad_queries(serve: Serve, loopback: None) -> None:
    c = GraphQLConnector({"base_url": serve(FakeGraphQL()).url})
    with pytest.raises(base.BadQuery, match=r'GraphQL error: Variable "\$role" of required type'):
        c.execute(USERS_QUERY)
    with pytest.raises(base.BadQuery, match="Cannot query field"):
        c.execute("{ orders { id } }")
    with pytest.raises(base.BadQuery, match="A GraphQL query is its text"):
        c.execute({"variables": {}})


def test_graphql_non_json_answer_is_a_bad_query(serve: Serve, loopback: None) -> None:
    html = serve(lambda req: Reply(200, b"<html>gateway</html>", {"Content-Type": "text/html"}))
    with pytest.raises(base.BadQuery, match="did not answer with GraphQL JSON: <html>gateway"):
        GraphQLConnector({"base_url": html.url}).execute("{ users { id } }")
    plain_json = serve(lambda req: reply_json({"users": []}))
    with pytest.raises(base.BadQuery, match="did not answer with GraphQL JSON"):
        GraphQLConnector({"base_url": plain_json.url}).execute("{ users { id } }")


def test_graphql_health_check_asks_for_typename(serve: Serve, loopback: None) -> None:
    server = serve(FakeGraphQL())
    GraphQLConnector({"base_url": server.url + "/graphql"}).health_check()
    (seen,) = server.seen
    assert (seen.method, seen.path, seen.json()) == ("POST", "/graphql", {"query": "{ __typename }"})


# --- Slack ----------------------------------------------------------------------------------------------
SLACK_TOKEN = "xoxb-1111-2222-good"


@pytest.fixture
def slack(serve: Serve, loopback: None) -> tuple[FakeSlack, FakeServer]:
    fake = FakeSlack(SLACK_TOKEN, {"general": "C1"})
    return fake, serve(fake)


def test_slack_posts_a_message(slack: tuple[FakeSlack, FakeServer]) -> None:
    fake, server = slack
    c = SlackConnector({"token": SLACK_TOKEN, "base_url": server.url})
    r = c.execute({"channel": "C1", "text": ":msg", "icon": "ignored"}, {"msg": "Deploy done"})
    assert (r.columns, r.rows) == (["delivered", "id", "channel"], [[True, "1700000000.000100", "C1"]])
    (seen,) = server.seen
    assert (seen.method, seen.path) == ("POST", "/chat.postMessage")
    assert seen.headers["authorization"] == f"Bearer {SLACK_TOKEN}"
    assert seen.json() == {"channel": "C1", "text": "Deploy done"}
    assert fake.posted == [{"channel": "C1", "text": "Deploy done"}]


def test_slack_errors_in_a_200_answer(slack: tuple[FakeSlack, FakeServer]) -> None:
    fake, server = slack
    with pytest.raises(base.AuthFailed, match="invalid_auth"):
        SlackConnector({"token": "xoxb-revoked", "base_url": server.url}).execute(
            {"channel": "C1", "text": "x"}
        )
    good = SlackConnector({"token": SLACK_TOKEN, "base_url": server.url})
    with pytest.raises(base.BadQuery, match="channel_not_found"):
        good.execute({"channel": "C404", "text": "x"})
    with pytest.raises(base.BadQuery, match="text is required"):
        good.execute({"channel": "C1"})
    assert fake.posted == [] and len(server.seen) == 2


def test_slack_health_check_calls_auth_test(slack: tuple[FakeSlack, FakeServer]) -> None:
    _, server = slack
    SlackConnector({"token": SLACK_TOKEN, "base_url": server.url}).health_check()
    assert [(s.method, s.path) for s in server.seen] == [("POST", "/auth.test")]
    with pytest.raises(base.AuthFailed):
        SlackConnector({"token": "xoxb-bad", "base_url": server.url}).health_check()


# --- SendGrid -------------------------------------------------------------------------------------------
def test_sendgrid_sends_mail(serve: Serve, loopback: None) -> None:
    fake = FakeSendGrid("SG.good-key")
    server = serve(fake)
    config = {"api_key": "SG.good-key", "from_email": "ops@example.com", "base_url": server.url}
    mail = {"to": ":to", "subject": "Weekly report", "text": "Numbers attached", "html": "<b>Numbers</b>"}
    r = SendGridConnector(config).execute(mail, {"to": ["a@example.com", "b@example.com"]})
    assert (r.columns, r.rows) == (["delivered", "id"], [[True, "msg-1"]])
    (seen,) = server.seen
    assert (seen.method, seen.path, seen.headers["authorization"]) == (
        "POST",
        "/v3/mail/send",
        "Bearer SG.good-key",
    )
    assert fake.sent == [
        {
            "personalizations": [{"to": [{"email": "a@example.com"}, {"email": "b@example.com"}]}],
            "from": {"email": "ops@example.com"},
            "subject": "Weekly report",
            "content": [
                {"type": "text/plain", "value": "Numbers attached"},
                {"type": "text/html", "value": "<b>Numbers</b>"},
            ],
        }
    ]
    single = SendGridConnector(config).execute({"to": "c@example.com", "subject": "s", "text": "t"})
    assert single.rows == [[True, "msg-2"]]

    with pytest.raises(base.BadQuery, match=r"400.*valid address"):
        SendGridConnector(config).execute({"to": "not-an-address", "subject": "s", "text": "t"})
    with pytest.raises(base.AuthFailed, match="401"):
        SendGridConnector({**config, "api_key": "SG.revoked"}).execute(mail, {"to": "a@example.com"})
    assert len(fake.sent) == 2


def test_sendgrid_health_check(serve: Serve, loopback: None) -> None:
    server = serve(FakeSendGrid("SG.k"))
    config = {"api_key": "SG.k", "from_email": "ops@example.com", "base_url": server.url}
    SendGridConnector(config).health_check()
    assert [(s.method, s.path) for s in server.seen] == [("GET", "/v3/scopes")]
    with pytest.raises(base.AuthFailed):
        SendGridConnector({**config, "api_key": "SG.other"}).health_check()


# --- Twilio ---------------------------------------------------------------------------------------------
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_FROM = "+15005550006"


def test_twilio_sends_an_sms(serve: Serve, loopback: None) -> None:
    fake = FakeTwilio(TWILIO_SID, "auth-token-1", {TWILIO_FROM})
    server = serve(fake)
    config = {"account_sid": TWILIO_SID, "auth_token": "auth-token-1", "from_number": TWILIO_FROM}
    c = TwilioConnector({**TwilioConnector.check_config(config), "base_url": server.url})
    r = c.execute({"to": ":phone", "body": "Your code is 123 & more"}, {"phone": "+15551234567"})
    assert r.columns == ["delivered", "id", "status"]
    (row,) = r.rows
    assert row[0] is True and row[1].startswith("SM") and len(row[1]) == 34 and row[2] == "queued"
    (seen,) = server.seen
    assert (seen.method, seen.path) == ("POST", f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json")
    assert seen.basic() == (TWILIO_SID, "auth-token-1")
    assert fake.messages == [{"To": "+15551234567", "From": TWILIO_FROM, "Body": "Your code is 123 & more"}]

    with pytest.raises(base.BadQuery, match=r"400.*21211"):
        c.execute({"to": "555-1234", "body": "x"})
    with pytest.raises(base.AuthFailed, match="401") as info:
        TwilioConnector({**c.config, "auth_token": "wrong-token"}).execute(
            {"to": "+15551234567", "body": "x"}
        )
    assert "wrong-token" not in info.value.message
    c.health_check()
    assert (server.seen[-1].method, server.seen[-1].path) == (
        "GET",
        f"/2010-04-01/Accounts/{TWILIO_SID}.json",
    )
    assert len(fake.messages) == 1


def test_twilio_config_schema() -> None:
    good = {"account_sid": TWILIO_SID, "auth_token": "t", "from_number": TWILIO_FROM}
    assert TwilioConnector.check_config(good) == good
    for field, bad in (
        ("account_sid", "AC123"),
        ("account_sid", "SK" + "0" * 32),
        ("account_sid", TWILIO_SID + "/../x"),
        ("from_number", "555-0100"),
        ("from_number", "+0123"),
    ):
        with pytest.raises(base.ConfigInvalid) as info:
            TwilioConnector.check_config({**good, field: bad})
        assert list(info.value.errors) == [field], (field, bad)
    with pytest.raises(base.ConfigInvalid) as info:
        TwilioConnector.check_config({"account_sid": TWILIO_SID})
    assert {"auth_token", "from_number"} <= set(info.value.errors)


# --- Stripe ---------------------------------------------------------------------------------------------
STRIPE_KEY = "sk_test_51Hgood"


@pytest.fixture
def stripe(serve: Serve, loopback: None) -> tuple[FakeStripe, StripeConnector, FakeServer]:
    fake = FakeStripe(STRIPE_KEY)
    server = serve(fake)
    connector = StripeConnector(
        {**StripeConnector.check_config({"api_key": STRIPE_KEY}), "base_url": server.url}
    )
    return fake, connector, server


def test_stripe_lists_are_tables_of_their_data(
    stripe: tuple[FakeStripe, StripeConnector, FakeServer],
) -> None:
    _, c, server = stripe
    c.idempotency_key = "never-on-get"
    r = c.execute({"path": "/v1/customers", "params": {"limit": ":n"}}, {"n": 3})
    assert r.columns == ["id", "object", "email", "metadata"]
    assert [row[0] for row in r.rows] == ["cus_seed0", "cus_seed1", "cus_seed2"]
    (seen,) = server.seen
    assert (seen.method, seen.path, seen.query) == ("GET", "/v1/customers", {"limit": ["3"]})
    assert seen.headers["authorization"] == f"Bearer {STRIPE_KEY}"
    assert "idempotency-key" not in seen.headers
    with pytest.raises(base.BadQuery, match=r"400.*limit"):
        c.execute({"path": "/v1/customers", "params": {"limit": 1000}})
    with pytest.raises(base.BadQuery, match="path must start with /v1/"):
        c.execute({"path": "/v2/customers"})
    c.health_check()
    assert server.seen[-1].path == "/v1/balance"


def test_stripe_retried_create_with_the_same_key_creates_one_customer(
    stripe: tuple[FakeStripe, StripeConnector, FakeServer],
) -> None:
    fake, c, server = stripe
    c.idempotency_key = "wf-42:node-7:0"
    body = {
        "method": "POST",
        "path": "/v1/customers",
        "params": {"email": ":email", "name": "Ada L", "metadata": {"plan": "pro"}},
    }
    first = c.execute(body, {"email": "ada@example.com"})
    assert first.columns[:3] == ["id", "object", "email"]
    created = dict(zip(first.columns, first.rows[0], strict=True))
    assert created["metadata"] == {"plan": "pro"} and created["email"] == "ada@example.com"
    seen = server.seen[-1]
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert seen.headers["idempotency-key"] == "wf-42:node-7:0"
    assert seen.form() == {"email": "ada@example.com", "name": "Ada L", "metadata[plan]": "pro"}

    retried = c.execute(body, {"email": "ada@example.com"})  # the node ran again after a crash
    assert retried.rows == first.rows
    assert len(server.seen) == 2 and server.seen[-1].headers["idempotency-key"] == "wf-42:node-7:0"
    assert [cu["email"] for cu in fake.customers].count("ada@example.com") == 1
    assert len(fake.customers) == 6

    with pytest.raises(base.BadQuery, match="idempotency_error"):
        c.execute(body, {"email": "other@example.com"})
    c.idempotency_key = "wf-42:node-7:1"
    c.execute(body, {"email": "ada@example.com"})
    assert len(fake.customers) == 7


def test_stripe_bad_key_and_config(stripe: tuple[FakeStripe, StripeConnector, FakeServer]) -> None:
    _, c, server = stripe
    with pytest.raises(base.AuthFailed, match="401") as info:
        StripeConnector({**c.config, "api_key": "sk_test_revokedKEY"}).execute({"path": "/v1/customers"})
    assert "revoked" not in info.value.message
    for key in ("pk_live_abc", "secret"):
        with pytest.raises(base.ConfigInvalid) as cfg:
            StripeConnector.check_config({"api_key": key})
        assert list(cfg.value.errors) == ["api_key"]
    with pytest.raises(base.BadQuery, match=r"404.*Unrecognized request URL"):
        c.execute({"path": "/v1/customers/{id}"}, {"id": "../balance"})
    assert server.seen[-1].path == "/v1/customers/..%2Fbalance"


# --- Webhook --------------------------------------------------------------------------------------------
def webhook_receiver(secret: str | None) -> App:
    def app(req: Seen) -> Reply:
        if req.method != "POST" or req.headers.get("content-type") != "application/json":
            return reply_json({"error": "POST JSON"}, 400)
        signature = req.headers.get("x-jetadmin-signature")
        if secret is not None and not signature_ok(secret, req.body, signature):
            return reply_json({"error": "bad signature"}, 401)
        json.loads(req.body)
        return Reply(200, "ok", {"X-Request-Id": "req-1"})

    return app


def test_webhook_posts_signed_json(serve: Serve, loopback: None) -> None:
    server = serve(webhook_receiver("whsec_abc"))
    config = {"url": server.url + "/hooks/in", "signing_secret": "whsec_abc"}
    c = WebhookConnector(WebhookConnector.check_config(config))
    event = {"event": "order.paid", "order": ":id", "tags": ["a", ":tag"]}
    r = c.execute(event, {"id": 42, "tag": "vip"})
    assert (r.columns, r.rows) == (["delivered", "id", "status"], [[True, "req-1", 200]])
    (seen,) = server.seen
    assert (seen.method, seen.path) == ("POST", "/hooks/in")
    assert seen.json() == {"event": "order.paid", "order": 42, "tags": ["a", "vip"]}
    assert signature_ok("whsec_abc", seen.body, seen.headers["x-jetadmin-signature"])

    with pytest.raises(base.AuthFailed):
        WebhookConnector({**config, "signing_secret": "whsec_other"}).execute(event, {"id": 1, "tag": "x"})
    unsigned = serve(webhook_receiver(None))
    WebhookConnector({"url": unsigned.url}).execute({"ping": True})
    assert "x-jetadmin-signature" not in unsigned.seen[-1].headers


def test_webhook_health_check_sends_nothing_but_checks_the_address(serve: Serve, settings: Any) -> None:
    server = serve(webhook_receiver(None))
    c = WebhookConnector({"url": server.url + "/hooks/in"})
    settings.JETADMIN_OUTBOUND_ALLOW = ["127.0.0.0/8"]
    c.health_check()
    settings.JETADMIN_OUTBOUND_ALLOW = []
    with pytest.raises(base.DestinationRefused, match="loopback"):
        c.health_check()
    with pytest.raises(base.DestinationRefused):
        c.execute({"ping": True})
    assert server.connections == 0 and server.seen == []
    with pytest.raises(base.ConfigInvalid) as info:
        WebhookConnector.check_config({"url": "file:///etc/passwd"})
    assert list(info.value.errors) == ["url"]
