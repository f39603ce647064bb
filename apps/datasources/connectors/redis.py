"""Redis through redis-py, one command per query.

A body is ``"HGETALL user:1"`` (split like a shell line) or ``{"command": "HGETALL", "args": ["user:1"]}``.
An argument that is exactly ``:name`` or ``%(name)s`` is replaced by that parameter's value. Every
argument travels as its own length-prefixed protocol element, so a value such as ``"x\\r\\nFLUSHALL"``
is stored literally and can never become a second command.

Commands that administer the server, run scripts, change the connection's state or stream instead of
replying are refused always (:data:`REFUSED`), as is anything Redis itself flags ``admin``. Read-only
is decided by the server's own classification: ``COMMAND INFO`` (cached per connection) must know the
command — or its subcommand, e.g. ``XGROUP CREATE`` — and must not flag it ``write`` or ``pubsub``.
``timeout_s`` bounds every socket read, so a blocking command (``BLPOP``, ``XREAD BLOCK``) waits at
most that long. Connections are kept idle per datasource and process (pool.py), PINGed before reuse;
the refusals above are also what keeps a pooled connection's state clean (no SELECT, MULTI, SUBSCRIBE).

Replies are decoded as text and normalized: a scalar is one ``value`` row, an array one ``value`` row
per element, HGETALL/HSCAN/HRANDFIELD WITHVALUES ``field, value`` rows, WITHSCORES/ZSCAN/ZPOP
``member, score`` rows, INFO ``field, value`` rows; a SCAN-family cursor goes to ``cursor``.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import pool
from .base import (
    HOST_SCHEMA,
    AuthFailed,
    BadQuery,
    Connector,
    ConnectorError,
    QueryTimeout,
    ReadOnlyViolation,
    Result,
    Unreachable,
    bind_values,
    checked_addresses,
    register,
    row_limit_for,
)

Arg = str | int | float

_ADMIN = "it administers the server"
_DATA = "it wipes or swaps whole databases"
_SCRIPT = "it runs server-side code, which this connector cannot check"
_STREAM = "it turns the connection into a stream of messages instead of one reply"
_STATE = "it changes the connection's state; set the database, user and password in the datasource config"
_TX = "a transaction spans several commands, and a query runs exactly one"

#: Refused in every mode, with the reason shown to the user. Anything the server flags ``admin``
#: (SLOWLOG RESET, LATENCY RESET, CLUSTER …, module admin commands) is refused as well at run time.
REFUSED: dict[str, str] = {
    **dict.fromkeys(["FLUSHALL", "FLUSHDB", "SWAPDB"], _DATA),
    **dict.fromkeys(["CONFIG", "SHUTDOWN", "DEBUG", "SAVE", "BGSAVE", "BGREWRITEAOF", "FAILOVER"], _ADMIN),
    **dict.fromkeys(["SYNC", "PSYNC", "REPLCONF", "REPLICAOF", "SLAVEOF", "MIGRATE", "CLUSTER"], _ADMIN),
    **dict.fromkeys(["MODULE", "ACL", "CLIENT", "PFDEBUG", "PFSELFTEST"], _ADMIN),
    **dict.fromkeys(
        ["EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "SCRIPT", "FUNCTION", "FCALL", "FCALL_RO"], _SCRIPT
    ),
    **dict.fromkeys(
        ["MONITOR", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"],
        _STREAM,
    ),
    **dict.fromkeys(["SELECT", "AUTH", "HELLO", "RESET", "QUIT", "READONLY", "READWRITE"], _STATE),
    **dict.fromkeys(["MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"], _TX),
    "KEYS": (
        "it walks every key in one blocking call and stalls the server on a large database; "
        "use SCAN 0 MATCH <pattern> COUNT 1000 and follow the returned cursor"
    ),
}

_MARKER = re.compile(r":(?P<colname>[A-Za-z_]\w*)|%\((?P<pyname>[A-Za-z_]\w*)\)s")
_SCAN = {"SCAN": ["value"], "SSCAN": ["value"], "HSCAN": ["field", "value"], "ZSCAN": ["member", "score"]}
_SHAPE_HINT = (
    'The query must be a Redis command such as "HGETALL user:1" '
    'or {"command": "HGETALL", "args": ["user:1"]}.'
)


@dataclass
class Link:
    """One server connection and what that server said about its commands (``COMMAND INFO``)."""

    conn: redis.Connection
    command_info: dict[str, list[Any] | None] = field(default_factory=dict)
    broken: bool = False  # a timeout or lost connection: never handed to the next borrower


@register
class RedisConnector(Connector):
    type = "redis"
    name = "Redis"
    category = "database"
    config_schema = {
        "type": "object",
        "required": ["host"],
        "additionalProperties": False,
        "properties": {
            "host": HOST_SCHEMA,
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 6379},
            "db": {"type": "integer", "minimum": 0, "maximum": 15, "default": 0},
            "username": {
                "type": "string",
                "maxLength": 255,
                "description": "An ACL user (Redis 6+); leave empty for the default user.",
            },
            "password": {"type": "string", "maxLength": 500, "writeOnly": True},
            "tls": {"type": "boolean", "default": False},
            "connect_timeout_s": {"type": "integer", "minimum": 1, "maximum": 30, "default": 5},
            "read_only": {"type": "boolean", "default": False},
        },
    }

    link: Link | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def where(self) -> str:
        return f"{self.config['host']}:{self.config.get('port', 6379)}"

    def connect(self) -> None:
        c = self.config
        self.link = pool.borrow(pool.key_for(self.type, c), _healthy, _discard)
        if self.link is not None:
            return
        timeout = int(c.get("connect_timeout_s", 5))
        port = int(c.get("port", 6379))
        addresses = checked_addresses(c["host"], port)
        kwargs: dict[str, Any] = {
            # The checked address; with TLS the name, for the certificate check (checked, not pinned).
            "host": c["host"] if c.get("tls") else addresses[0],
            "port": port,
            "db": int(c.get("db", 0)),
            "username": c.get("username") or None,
            "password": c.get("password") or None,
            "socket_connect_timeout": timeout,
            "socket_timeout": timeout,
            "protocol": 2,  # RESP2: every Redis-compatible server speaks it (RESP3 needs Redis 6 and HELLO)
            "retry": Retry(NoBackoff(), 0),  # a failure is reported, never silently retried
            "decode_responses": True,
            "encoding_errors": "backslashreplace",  # binary values show as \xNN, never crash the decode
            # no client_name: CLIENT SETNAME needs a permission that a least-privilege ACL user may lack
        }
        if c.get("tls"):
            conn: redis.Connection = redis.SSLConnection(
                **kwargs, ssl_cert_reqs="required", ssl_check_hostname=True
            )
        else:
            conn = redis.Connection(**kwargs)
        for other in [] if c.get("tls") else addresses[1:]:  # nothing listens at the first: the next
            try:
                conn.connect()
                break
            except redis.ConnectionError:
                conn.disconnect()
                conn.host = other
        try:
            conn.connect()
            conn.send_command("PING")  # a server that wants a password says so here at the latest
            conn.read_response()
        except redis.RedisError as exc:
            conn.disconnect()
            raise self._connect_error(exc) from None
        self.link = Link(conn)

    def live(self) -> Link:
        if self.link is None:
            raise Unreachable("Not connected.")
        return self.link

    def close(self) -> None:
        if self.link is not None:
            link, self.link = self.link, None
            if link.broken:
                _discard(link)
            else:
                pool.give_back(pool.key_for(self.type, self.config), link, _discard)

    def health_check(self) -> None:
        with self.session():
            reply = self._call(
                self.live(), "PING", [], timeout_s=float(self.config.get("connect_timeout_s", 5))
            )
            if reply != "PONG":
                raise Unreachable(f"Redis at {self.where()} answered PING with {reply!r}.")

    # --- work --------------------------------------------------------------------------------------
    def validate(self, body: Any) -> list[str]:
        return _parse(body)[0]

    def execute(
        self, body: Any, params: Mapping[str, Any] | None = None, *, timeout_s: float = 30, row_limit: int = 0
    ) -> Result:
        problems, parsed = _parse(body)
        if problems or parsed is None:
            raise BadQuery(problems[0] if problems else _SHAPE_HINT)
        command, raw_args = parsed
        args = _bind(raw_args, params)
        limit = row_limit_for(self, row_limit)
        own = self.link is None
        if own:
            self.connect()
        link = self.live()
        started = time.monotonic()
        try:
            self._check_allowed(link, command, args, timeout_s)
            reply = self._call(link, command, args, timeout_s=timeout_s)
        finally:
            if own:
                self.close()
        columns, rows, extra = _normalize(command, args, reply)
        kept = rows[:limit]  # the reply is already in memory: bound ranges (LRANGE k 0 99) on big keys
        return Result(columns, kept, len(kept), len(rows) > limit, (time.monotonic() - started) * 1000, extra)

    # --- internals ---------------------------------------------------------------------------------
    def _call(self, link: Link, command: str, args: list[Arg], *, timeout_s: float) -> Any:
        """One command and its raw (decoded) reply; redis-py errors become typed ConnectorErrors."""
        try:
            _set_timeout(link.conn, timeout_s)
            link.conn.send_command(command, *args)
            return link.conn.read_response()
        except redis.RedisError as exc:
            if not isinstance(exc, redis.ResponseError):  # the server's error reply leaves it usable
                link.broken = True
            raise self._query_error(exc, command, timeout_s) from None

    def _query_error(self, exc: redis.RedisError, command: str, timeout_s: float) -> ConnectorError:
        where = self.where()
        if isinstance(exc, redis.AuthenticationError):  # on a reconnect
            return self._connect_error(exc)
        if isinstance(exc, redis.TimeoutError):
            return QueryTimeout(f"The Redis command {command} ran past its timeout of {timeout_s:g} s.")
        if isinstance(exc, redis.BusyLoadingError):
            return Unreachable(f"Redis at {where} is loading its dataset; try again shortly.")
        if isinstance(exc, redis.ConnectionError):
            return Unreachable(f"Redis connection to {where} lost: {_first_line(exc)}")
        if isinstance(exc, redis.ReadOnlyError):
            return ReadOnlyViolation(f"Redis at {where} is a read-only replica: it refused {command}.")
        # ResponseError: unknown command, wrong arguments, WRONGTYPE, NOPERM, OOM …
        return BadQuery(f"Redis: {_first_line(exc)}")

    def _check_allowed(self, link: Link, command: str, args: list[Arg], timeout_s: float) -> None:
        """Refuse what the server flags ``admin``; on a read-only datasource, also anything it does not
        know or flags ``write``/``pubsub``. The flags come from ``COMMAND INFO``, cached per connection."""
        read_only = bool(self.config.get("read_only"))
        try:
            label, flags = self._flags(link, command, args, timeout_s)
        except BadQuery as exc:  # e.g. NOPERM: the ACL user may not run COMMAND INFO
            if not read_only:
                return  # nothing to classify with: REFUSED still applied, and Redis enforces its ACL
            raise ReadOnlyViolation(
                f"This datasource is read-only, and Redis would not describe {command} ({exc.message}); "
                "grant the Redis user +command|info."
            ) from None
        if flags is not None and "admin" in flags:
            raise BadQuery(
                f"{label} is not allowed from a query: Redis flags it as an administration command."
            )
        if not read_only:
            return
        if flags is None:
            raise ReadOnlyViolation(
                f"This datasource is read-only, and Redis does not know the command {label}, "
                "so it cannot be checked."
            )
        for flag, what in (("write", "writes data"), ("pubsub", "publishes messages")):
            if flag in flags:
                raise ReadOnlyViolation(
                    f"This datasource is read-only: Redis classifies {label} as a command that {what}."
                )

    def _flags(
        self, link: Link, command: str, args: list[Arg], timeout_s: float
    ) -> tuple[str, set[str] | None]:
        """The command's name as shown (with its subcommand, if it has those) and the server's flags for
        it; no flags when the server does not know it."""
        name = command.lower()
        if name not in link.command_info:
            reply = self._call(link, "COMMAND", ["INFO", name], timeout_s=timeout_s)
            link.command_info[name] = reply[0] if isinstance(reply, list) and reply else None
        entry = link.command_info[name]
        if not isinstance(entry, list) or len(entry) < 3:
            return command, None
        subcommands = entry[9] if len(entry) > 9 and entry[9] else []  # Redis 7+: "xgroup|create", …
        if not subcommands or not args:  # Redis < 7 flags the container; alone it is an arity error
            return command, {str(f) for f in entry[2]}
        label = f"{command} {str(args[0]).upper()}"
        wanted = f"{name}|{str(args[0]).lower()}"
        for sub in subcommands:
            if isinstance(sub, list) and sub and sub[0] == wanted:
                return label, {str(f) for f in sub[2]}
        return label, None

    def _connect_error(self, exc: redis.RedisError) -> ConnectorError:
        c = self.config
        where = self.where()
        text = _first_line(exc)
        if isinstance(exc, redis.AuthenticationWrongNumberOfArgsError):
            return AuthFailed(
                f"Redis at {where} does not support usernames (ACL users need Redis 6 or later): "
                "clear the username."
            )
        if isinstance(exc, redis.AuthenticationError):
            if "without any password configured" in text or "no password is set" in text:
                return AuthFailed(
                    f"Redis at {where} has no password configured, but this datasource sends one: "
                    "clear the password."
                )
            if not c.get("password"):
                return AuthFailed(
                    f"Redis at {where} requires a password: set the password (and the username, for an "
                    "ACL user) in the datasource config."
                )
            user = f" for user {c['username']!r}" if c.get("username") else ""
            return AuthFailed(
                f"Redis at {where} refused the password{user}: check the username and password."
            )
        if isinstance(exc, redis.TimeoutError):
            hint = " over TLS: check that the server expects TLS" if c.get("tls") else ""
            return Unreachable(
                f"Redis at {where} did not answer within {c.get('connect_timeout_s', 5)} s{hint}."
            )
        if isinstance(exc, redis.InvalidResponse):
            return Unreachable(
                f"{where} did not answer like a Redis server ({text}): check the host, port and tls setting."
            )
        if isinstance(exc, redis.BusyLoadingError):
            return Unreachable(f"Redis at {where} is loading its dataset; try again shortly.")
        if isinstance(exc, redis.ConnectionError):
            return Unreachable(f"Cannot reach Redis at {where}: {text}")
        if "DB index" in text:
            return Unreachable(f"Redis at {where} has no database {c.get('db', 0)}: {text}")
        return Unreachable(f"Redis at {where} refused the connection: {text}")


# --- body, parameters, reply ---------------------------------------------------------------------------
def _parse(body: Any) -> tuple[list[str], tuple[str, list[Arg]] | None]:
    """Problems with the body, and ``(COMMAND, args)`` when there are none."""
    if isinstance(body, str):
        try:
            words = shlex.split(body)
        except ValueError as exc:
            return [f"The command cannot be split into arguments: {exc} (check the quotes)."], None
        if not words:
            return [_SHAPE_HINT], None
        command: str = words[0]
        args: list[Arg] = list(words[1:])
    elif isinstance(body, Mapping):
        unknown = sorted(str(k) for k in body if k not in ("command", "args"))
        if unknown:
            return [f'Unknown key(s) in the query: {", ".join(unknown)}; use "command" and "args".'], None
        name, args_value = body.get("command"), body.get("args", [])
        if not isinstance(name, str) or not name.strip():
            return ['"command" must be a non-empty Redis command name, e.g. "HGETALL".'], None
        if len(name.split()) != 1:
            return ['"command" must be a single word; put the rest in "args".'], None
        if not isinstance(args_value, list):
            return ['"args" must be a list of strings or numbers.'], None
        bad = [
            i for i, a in enumerate(args_value) if isinstance(a, bool) or not isinstance(a, str | int | float)
        ]
        if bad:
            return [f'"args" must hold strings or numbers; item {bad[0]} is not one.'], None
        command, args = name.strip(), list(args_value)
    else:
        return [_SHAPE_HINT], None
    command = command.upper()
    if command in REFUSED:
        return [f"{command} is not allowed from a query: {REFUSED[command]}."], None
    return [], (command, args)


def _bind(args: list[Arg], params: Mapping[str, Any] | None) -> list[Arg]:
    """``args`` with each whole-argument ``:name`` / ``%(name)s`` replaced by its parameter's value."""
    markers: list[tuple[int, str]] = []
    for i, arg in enumerate(args):
        match = _MARKER.fullmatch(arg) if isinstance(arg, str) else None
        if match:
            markers.append((i, match.group("colname") or match.group("pyname")))
    values = bind_values([name for _, name in markers], params)  # BadQuery names any missing parameter
    bound = list(args)
    for (i, name), value in zip(markers, values, strict=True):
        bound[i] = _param_value(name, value)
    return bound


def _param_value(name: str, value: Any) -> Arg:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    raise BadQuery(
        f"Query parameter {name!r} is {type(value).__name__}; a Redis argument must be text or a number "
        "(encode it, e.g. as JSON text, first)."
    )


def _normalize(
    command: str, args: list[Arg], reply: Any
) -> tuple[list[str], list[list[Any]], dict[str, Any]]:
    words = {a.upper() for a in args if isinstance(a, str)}
    extra: dict[str, Any] = {}
    columns = ["value"]
    if command in _SCAN and isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], list):
        extra["cursor"], reply = reply[0], reply[1]
        columns = _SCAN[command]
    elif command == "HGETALL" or (command == "HRANDFIELD" and "WITHVALUES" in words):
        columns = ["field", "value"]
    elif (command.startswith("Z") and "WITHSCORES" in words) or command in ("ZPOPMIN", "ZPOPMAX"):
        columns = ["member", "score"]
    elif command == "INFO" and isinstance(reply, str):
        pairs = (
            line.split(":", 1) for line in reply.splitlines() if ":" in line and not line.startswith("#")
        )
        return ["field", "value"], [[k, v] for k, v in pairs], extra
    if not isinstance(reply, list):
        return columns[:1], [[reply]], extra
    if len(columns) == 2 and len(reply) % 2 == 0 and not any(isinstance(x, list) for x in reply):
        return columns, [[reply[i], reply[i + 1]] for i in range(0, len(reply), 2)], extra
    return ["value"], [[item] for item in reply], extra


def _healthy(link: Link) -> bool:
    """A borrowed connection answers PING within its connect timeout (a dropped socket reconnects here)."""
    if link.broken:
        return False
    try:
        _set_timeout(link.conn, float(link.conn.socket_connect_timeout or 5))
        link.conn.send_command("PING")
        return bool(link.conn.read_response() == "PONG")
    except redis.RedisError:
        return False


def _discard(link: Link) -> None:
    with contextlib.suppress(redis.RedisError, OSError):
        link.conn.disconnect()


def _set_timeout(conn: redis.Connection, timeout_s: float) -> None:
    """Bound every socket read by ``timeout_s`` on the live socket (and on any reconnect)."""
    if conn.socket_timeout == timeout_s:
        return
    conn.socket_timeout = timeout_s
    update = getattr(conn, "update_current_socket_timeout", None)  # recent redis-py
    if update is not None:
        update(timeout_s)
    else:
        conn.disconnect()  # older redis-py: the next command reconnects with the new timeout


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
