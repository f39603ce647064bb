"""The SSRF corpus: every outbound entry point (REST, GraphQL and webhook connectors, the httpRequest
and notify nodes) refuses every target below, and listeners on the loopback addresses those targets
spell record zero connections. An allowed server on 127.0.0.2 redirects to forbidden places: the
redirect is re-checked, so it is refused too."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.datasources.connectors.base import ConnectorError
from apps.datasources.connectors.http import GraphQLConnector, RESTConnector, WebhookConnector
from apps.workflows.nodes.base import NodeContext, NodeError
from apps.workflows.nodes.integrations import HTTPRequest, Notify
from jetadmin import outbound


class Listener:
    """A TCP listener that only counts connections."""

    def __init__(self, family: int, host: str) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


class Redirector(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        target = parse_qs(urlsplit(self.path).query).get("to", [""])[0]
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def listeners(settings: Any) -> Iterator[dict[str, Any]]:
    settings.JETADMIN_OUTBOUND_ALLOW = ["127.0.0.2/32"]  # only the redirector is allowed
    v4 = Listener(socket.AF_INET, "127.0.0.1")
    v6 = Listener(socket.AF_INET6, "::1")
    redirector = ThreadingHTTPServer(("127.0.0.2", 0), Redirector)
    threading.Thread(target=redirector.serve_forever, daemon=True).start()
    yield {"v4": v4, "v6": v6, "redirect": f"http://127.0.0.2:{redirector.server_port}/r?to="}
    redirector.shutdown()
    redirector.server_close()
    v4.close()
    v6.close()


def corpus(p: int, p6: int, redirect: str) -> list[str]:
    own_name = socket.gethostname()
    targets = [
        f"http://127.0.0.1:{p}/",
        f"http://2130706433:{p}/",  # decimal
        f"http://0x7f000001:{p}/",  # hex
        f"http://0x7f.0.0.1:{p}/",  # hex, dotted
        f"http://0177.0.0.1:{p}/",  # octal
        f"http://127.1:{p}/",  # short form
        f"http://[::1]:{p6}/",
        f"http://[::ffff:127.0.0.1]:{p}/",  # IPv4-mapped IPv6
        f"http://[::ffff:7f00:1]:{p}/",
        f"http://[0:0:0:0:0:ffff:127.0.0.1]:{p}/",
        f"http://[64:ff9b::7f00:1]:{p}/",  # NAT64 of 127.0.0.1
        f"http://[2002:7f00:1::]:{p}/",  # 6to4 of 127.0.0.1
        f"http://localhost:{p}/",  # a name resolving to loopback
        f"http://localhost.:{p}/",
        f"http://0.0.0.0:{p}/",
        f"http://0:{p}/",
        f"http://[::]:{p6}/",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        f"http://10.0.0.1:{p}/",
        f"http://192.168.1.1:{p}/",
        f"http://172.16.0.1:{p}/",
        f"http://100.64.0.1:{p}/",  # carrier-grade NAT
        f"http://127.0.0.2:1@127.0.0.1:{p}/",  # userinfo that looks like an allowed host
        "file:///etc/passwd",
        f"gopher://127.0.0.1:{p}/_SET%20x%201",
        f"ftp://127.0.0.1:{p}/",
        f"dict://127.0.0.1:{p}/",
        redirect + f"http://127.0.0.1:{p}/",  # an allowed host redirecting to a private address
        redirect + f"http://[::1]:{p6}/",
        redirect + "http://169.254.169.254/latest/meta-data/",
        redirect + "file:///etc/passwd",
        redirect + f"gopher://127.0.0.1:{p}/",
    ]
    if socket.gethostbyname(own_name).startswith("127."):
        targets.append(f"http://{own_name}:{p}/")
    return targets


def ctx() -> NodeContext:
    return NodeContext(
        instance_id="i", tenant_id="t", node_id="n", iteration="", attempt=1,
        idempotency_key="k", deadline=None, data={},
    )  # fmt: skip


ENTRY_POINTS: dict[str, Callable[[str], Any]] = {
    "rest": lambda url: RESTConnector({"base_url": url}).execute({"method": "GET"}, timeout_s=3),
    "graphql": lambda url: GraphQLConnector({"base_url": url}).execute("{ me }", timeout_s=3),
    "webhook": lambda url: WebhookConnector({"url": url}).execute({"x": 1}, timeout_s=3),
    "httpRequest": lambda url: HTTPRequest().run({"url": url, "timeout_s": 3}, ctx()),
    "notify": lambda url: Notify().run({"channel": "webhook", "url": url, "body": "x"}, ctx()),
}


def refused(exc: BaseException) -> bool:
    """Refused by the guard — or a name this machine cannot resolve (``localhost.`` on some
    resolvers), which connects nowhere either; the listeners count what did connect."""
    if isinstance(exc, outbound.OutboundRefused):
        return True
    if isinstance(exc, ConnectorError | NodeError):
        return exc.code == "outbound_refused" or exc.message.startswith("Cannot resolve host")
    return False


@pytest.mark.django_db
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_the_corpus_is_refused_and_nothing_connects(entry: str, listeners: dict[str, Any]) -> None:
    targets = corpus(listeners["v4"].port, listeners["v6"].port, listeners["redirect"])
    assert len(targets) >= 20
    not_refused = []
    for url in targets:
        try:
            ENTRY_POINTS[entry](url)
        except Exception as exc:  # the assertion below names what came out
            if not refused(exc):
                not_refused.append(f"{url}: {type(exc).__name__}: {exc}")
        else:
            not_refused.append(f"{url}: succeeded")
    assert not_refused == []
    assert (listeners["v4"].accepted, listeners["v6"].accepted) == (0, 0)


@pytest.mark.django_db
def test_the_allow_list_opens_exactly_its_range(listeners: dict[str, Any], settings: Any) -> None:
    """The control: the same listener is reached once its range is allowed, so the zero above is
    the guard's doing and not a listener that cannot be reached."""
    settings.JETADMIN_OUTBOUND_ALLOW = ["127.0.0.1/32"]
    with pytest.raises(ConnectorError) as caught:
        RESTConnector({"base_url": f"http://127.0.0.1:{listeners['v4'].port}/"}).execute({}, timeout_s=2)
    assert caught.value.code == "unreachable"  # it connected; the listener hung up without answering
    assert listeners["v4"].accepted == 1
    with pytest.raises(outbound.OutboundRefused):
        outbound.resolve("127.0.0.3", 80)  # the neighbour is still refused
    with pytest.raises(outbound.OutboundRefused, match="never allowed"):
        settings.JETADMIN_OUTBOUND_ALLOW = ["0.0.0.0/0", "::/0"]
        outbound.check_address("169.254.169.254")  # metadata stays refused whatever is allowed


@pytest.mark.parametrize(
    "address",
    ["::127.0.0.1", "::169.254.169.254", "::ffff:0:7f00:1", "64:ff9b:1::a9fe:a9fe", "fec0::1", "fc00::1"],
)
def test_ipv6_outside_global_unicast_is_never_public(address: str, settings: Any) -> None:
    """IPv4-compatible, SIIT, local-use NAT64, site-local and unique-local forms: refused like
    private ranges (Python calls some of them global)."""
    settings.JETADMIN_OUTBOUND_ALLOW = []
    with pytest.raises(outbound.OutboundRefused):
        outbound.check_address(address)
    assert str(outbound.check_address("2606:4700::1111")) == "2606:4700::1111"  # public IPv6 passes


@pytest.mark.parametrize(
    ("type_name", "config"),
    [
        ("postgresql", {"host": "127.0.0.1", "port": 5432, "database": "postgres", "user": "postgres"}),
        ("postgresql", {"host": "localhost", "port": 5432, "database": "postgres", "user": "postgres"}),
        ("mysql", {"host": "127.0.0.1", "port": 3306, "database": "mysql", "user": "root"}),
        ("redis", {"host": "127.0.0.1", "port": 6379}),
        ("redis", {"host": "169.254.169.254", "port": 80}),
        ("smtp", {"host": "127.0.0.1", "port": 25, "security": "none", "from_email": "a@b.co"}),
    ],
)
def test_database_and_mail_connectors_go_through_the_guard(
    type_name: str, config: dict, settings: Any
) -> None:
    """A tenant cannot point a datasource at jetadmin's own PostgreSQL or Redis (or any private
    host) unless an administrator allowed its range."""
    from apps.datasources import connectors
    from apps.datasources.connectors.base import DestinationRefused

    settings.JETADMIN_OUTBOUND_ALLOW = []
    cls = connectors.get(type_name)
    with pytest.raises(DestinationRefused):
        cls(cls.check_config(config)).health_check()


@pytest.mark.parametrize("host", ["/var/run/postgresql", "db1,db2", "db host"])
def test_socket_paths_and_host_lists_are_not_hosts(host: str) -> None:
    from apps.datasources.connectors.base import ConfigInvalid
    from apps.datasources.connectors.postgresql import PostgreSQLConnector

    with pytest.raises(ConfigInvalid) as caught:
        PostgreSQLConnector.check_config({"host": host, "database": "d", "user": "u"})
    assert list(caught.value.errors) == ["host"]


def test_an_unresolvable_host_is_unreachable_not_refused(settings: Any) -> None:
    from apps.datasources.connectors.base import Unreachable

    settings.JETADMIN_OUTBOUND_ALLOW = []
    for run in (
        lambda: WebhookConnector({"url": "http://no-such-host.invalid/hook"}).health_check(),
        lambda: RESTConnector({"base_url": "http://no-such-host.invalid/"}).execute({}, timeout_s=3),
    ):
        with pytest.raises(Unreachable, match="Cannot resolve host"):
            run()
