"""Outbound safety (SSRF): every request jetadmin makes on a user's behalf goes through here.

A host is resolved once, **every** address it resolves to is checked, and the connection goes to a
checked address (so a DNS answer cannot change between check and connect). Link-local and cloud
metadata addresses, multicast and "this network" are always refused; loopback, private, shared and
other non-global ranges are refused unless ``JETADMIN_OUTBOUND_ALLOW`` (a list of CIDRs) covers the
address. Only ``http``/``https`` URLs are fetched, and each redirect is checked again the same way,
because it is a new connection through the same guarded transport.

``client()`` gives an httpx client whose transport does this; ``resolve()`` serves the non-HTTP
connectors (SMTP, S3) that connect to the returned address themselves.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import socket
import ssl
import time
import typing
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALWAYS_REFUSED = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network": 0.0.0.0 reaches the local host on Linux
        "169.254.0.0/16",  # link-local, including 169.254.169.254 (cloud metadata)
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "224.0.0.0/4",  # multicast
        "255.255.255.255/32",
        "::/128",
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "ff00::/8",  # IPv6 multicast
    )
]
SCHEMES = ("http", "https")
# IPv6 outside global unicast (2000::/3) is never "public": IPv4-compatible ::a.b.c.d, site-local
# fec0::/10, SIIT, local-use NAT64 ... are refused unless allowed, like private ranges.
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
MAX_RESPONSE_BYTES = 10 * 1024 * 1024


class OutboundRefused(Exception):
    """A destination jetadmin will not connect to; the message says why and what setting allows it."""

    code = "outbound_refused"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unresolvable(OutboundRefused):
    """The host has no address: a destination that is down or mistyped, not one that is forbidden."""

    code = "unreachable"


@functools.lru_cache(maxsize=16)
def _allowed(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


def allowed_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return _allowed(tuple(getattr(settings, "JETADMIN_OUTBOUND_ALLOW", ()) or ()))


def _plain(address: IPAddress) -> IPAddress:
    """IPv4 hidden in IPv6 (``::ffff:127.0.0.1``, 6to4, NAT64 well-known) judged as the IPv4 it is."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return address.ipv4_mapped
        if address.sixtofour:
            return address.sixtofour
        if address in ipaddress.ip_network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def check_address(raw: str | IPAddress) -> IPAddress:
    """The address if jetadmin may connect to it; OutboundRefused otherwise."""
    address = _plain(ipaddress.ip_address(raw) if isinstance(raw, str) else raw)
    if any(address in net for net in ALWAYS_REFUSED):
        raise OutboundRefused(
            f"Connections to {address} are refused: link-local, metadata, multicast and unspecified "
            "addresses are never allowed."
        )
    if address.is_global and (address.version == 4 or address in GLOBAL_UNICAST_V6):
        return address
    if any(address.version == net.version and address in net for net in allowed_networks()):
        return address
    kind = "loopback" if address.is_loopback else "private" if address.is_private else "non-public"
    raise OutboundRefused(
        f"Connections to {address} ({kind}) are refused; an administrator can allow its range "
        "with JETADMIN_OUTBOUND_ALLOW."
    )


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, all checked (one refused address refuses the host)."""
    if not host:
        raise OutboundRefused("The URL has no host.")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"Cannot resolve host {host!r}: {exc}.") from None
    addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    for address in addresses:
        check_address(address)
    return addresses


def check_url(url: str | httpx.URL) -> httpx.URL:
    """The URL parsed, if its scheme is http(s) and it names a host; the address is checked at connect."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(str(url).strip())
    except (httpx.InvalidURL, ValueError) as exc:
        raise OutboundRefused(f"Invalid URL: {exc}.") from None
    scheme = parsed.scheme.lower() or urlsplit(str(url)).scheme.lower()
    if scheme not in SCHEMES:
        shown = repr(scheme) if scheme else "a URL without one"
        raise OutboundRefused(f"Only http and https URLs are allowed, not {shown}.")
    if not parsed.host:
        raise OutboundRefused("The URL has no host.")
    return parsed


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends by the request's deadline: per-read timeouts
    alone let a server trickling header lines or body bytes hold a worker for ever."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self.inner, self.deadline = inner, deadline

    def _left(self, timeout: float | None) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("The request ran past its deadline.")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, self._left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, self._left(timeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self.inner.start_tls(ssl_context, server_hostname, self._left(timeout))
        return _DeadlineStream(tls, self.deadline)

    def get_extra_info(self, info: str) -> typing.Any:
        return self.inner.get_extra_info(info)


class _GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to checked addresses of the requested host, with
    every stream bound to the request's deadline."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in resolve(host, port):
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout("The request ran past its deadline.")
            wait = left if timeout is None else min(timeout, left)
            try:
                stream = super().connect_tcp(address, port, wait, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:  # try the next address
                last = exc
            else:
                return _DeadlineStream(stream, self.deadline)
        raise last or httpcore.ConnectError(f"Cannot connect to {host}:{port}.")


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """One verifying context for every client (loading the CA bundle costs ~30 ms a time)."""
    return httpx.create_ssl_context()


def _check_request(request: httpx.Request) -> None:
    check_url(request.url)


CROSS_ORIGIN_HEADERS = frozenset(
    {"accept", "accept-encoding", "content-type", "content-length", "host", "user-agent", "idempotency-key"}
)


def _origin_guard() -> Callable[[httpx.Request], None]:
    """A request hook that strips all but harmless headers once a redirect leaves the first origin."""
    first: list[tuple[bytes, str, int | None]] = []

    def hook(request: httpx.Request) -> None:
        origin = (request.url.raw_scheme, request.url.host, request.url.port)
        if not first:
            first.append(origin)
        elif origin != first[0]:
            for name in [n for n in request.headers if n.lower() not in CROSS_ORIGIN_HEADERS]:
                del request.headers[name]

    return hook


def client(
    *,
    timeout_s: float = 30,
    follow_redirects: bool = True,
    max_redirects: int = 5,
    headers: dict[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    deadline: float | None = None,
) -> httpx.Client:
    """An httpx client for user-directed requests: checked URLs, checked addresses, checked redirects,
    no proxies from the environment (they would bypass the address check). A redirect to another
    origin carries only the harmless headers (:data:`CROSS_ORIGIN_HEADERS`): API keys in custom
    headers go no further than ``Authorization``, which httpx drops itself. Everything — connecting,
    headers, body, redirects — ends by ``deadline`` (a ``time.monotonic()`` value; default: in
    ``timeout_s``). One client per request: the deadline is the client's."""
    if deadline is None:
        deadline = time.monotonic() + timeout_s
    transport = httpx.HTTPTransport(retries=0)
    transport._pool = httpcore.ConnectionPool(  # the public pool, with our connect step
        ssl_context=_ssl_context(),
        max_connections=10,
        network_backend=_GuardedBackend(deadline),
    )
    return httpx.Client(
        transport=transport,
        # Compressed answers would be inflated before the size cap sees them.
        headers={"Accept-Encoding": "identity", **(headers or {})},
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
        follow_redirects=follow_redirects,
        max_redirects=max_redirects,
        trust_env=False,
        auth=auth,
        event_hooks={"request": [_check_request, _origin_guard()]},
    )


class ResponseTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The response is larger than {limit // (1024 * 1024)} MB.")
        self.message = str(self)


class DeadlinePassed(Exception):
    pass


class UnsupportedEncoding(Exception):
    def __init__(self, encoding: str) -> None:
        super().__init__(f"The answer is compressed as {encoding!r}, which jetadmin does not read.")
        self.message = str(self)


def read_capped(
    response: httpx.Response, *, limit: int = MAX_RESPONSE_BYTES, deadline: float | None = None
) -> bytes:
    """The body of a streamed response, at most ``limit`` bytes *after* decompression
    (ResponseTooLarge beyond), read before ``deadline`` (DeadlinePassed after it). The raw bytes are
    inflated here a budget at a time — httpx would inflate each network chunk whole, and a few KB of
    gzip can be gigabytes. Only one layer of gzip/deflate is accepted besides identity."""
    encodings = [
        e.strip().lower() for e in response.headers.get("content-encoding", "").split(",") if e.strip()
    ]
    encodings = [e for e in encodings if e != "identity"]
    if len(encodings) > 1 or (encodings and encodings[0] not in ("gzip", "x-gzip", "deflate")):
        raise UnsupportedEncoding(", ".join(encodings))
    inflate = zlib.decompressobj(wbits=47) if encodings else None  # 47: gzip or zlib header
    chunks: list[bytes] = []
    size = 0
    for raw in response.iter_raw():
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlinePassed()
        data = raw
        while True:
            if inflate is not None:
                data = inflate.decompress(raw, limit - size + 1)
                raw = inflate.unconsumed_tail
            size += len(data)
            if size > limit:
                raise ResponseTooLarge(limit)
            chunks.append(data)
            if inflate is None or not raw:
                break
    if inflate is not None:
        chunks.append(inflate.flush())
        if size + len(chunks[-1]) > limit:
            raise ResponseTooLarge(limit)
    return b"".join(chunks)


def decode_body(response: httpx.Response, raw: bytes) -> Any:
    """A body read by :func:`read_capped`: parsed when it says it is JSON, text otherwise."""
    if "json" in response.headers.get("content-type", ""):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw.decode(response.encoding or "utf-8", errors="replace")


def safe_url(url: str | httpx.URL) -> str:
    """The URL without query string, fragment or credentials, for messages (query strings carry keys)."""
    try:
        return str(httpx.URL(str(url)).copy_with(query=None, fragment=None, username=None, password=None))
    except (httpx.InvalidURL, ValueError):
        return "the URL"


def describe_error(exc: Exception, url: str | httpx.URL) -> str:
    """A message a user can act on for a failed outbound request (never the request's secrets)."""
    where = safe_url(url)
    if isinstance(exc, OutboundRefused):
        return exc.message
    if isinstance(exc, httpx.TimeoutException):
        return f"{where} did not answer in time."
    if isinstance(exc, httpx.TooManyRedirects):
        return f"{where} redirected too many times."
    if isinstance(exc, httpx.UnsupportedProtocol):
        return f"Refused a redirect from {where} to a URL that is not http or https."
    if isinstance(exc, httpx.ConnectError):
        return f"Cannot connect to {where}."
    return f"Request to {where} failed: {type(exc).__name__}."
