"""MySQL and MariaDB through mysql-connector-python (pure Python). Every user statement is a server-side
prepared statement: ``:name`` / ``%(name)s`` become ``?`` markers whose values the server binds, and the
prepared protocol runs exactly one statement (multi-statements are never enabled) — so
``'; DROP TABLE …`` can never become a second command.

Read-only is the server's: before each query the *session* is set to ``TRANSACTION READ ONLY`` and the
query runs inside ``START TRANSACTION READ ONLY``. The session setting matters: DDL implicitly commits
the open transaction, and a plain ``START TRANSACTION READ ONLY`` would then let ``DROP TABLE`` run
outside it; with the session read-only the server refuses it (error 1792) too.

The timeout is the server's as well: ``max_statement_time`` (MariaDB, any statement) or
``max_execution_time`` (MySQL, SELECT only), with a client read timeout a little longer as the backstop.
``sql_select_limit`` asks the server for at most ``row_limit + 1`` rows of a SELECT without its own LIMIT.

Only ``ssl_mode: verify_identity`` refuses a server without TLS before authenticating; ``required``
checks that the session is encrypted once connected (the driver has no "encrypt without verifying"
pre-auth switch).

Connections are kept idle per datasource and process (pool.py). When given back a connection is reset
with COM_RESET_CONNECTION (temporary tables, user variables and session settings of the previous
query are gone) and its charset and autocommit are set again; one that fails this is dropped."""

from __future__ import annotations

import contextlib
import math
import re
import socket
import time
from collections.abc import Mapping
from typing import Any

import mysql.connector
from mysql.connector import errors as my_errors
from mysql.connector.connection import MySQLConnection
from mysql.connector.constants import ClientFlag, FieldType
from mysql.connector.cursor import MySQLCursorPrepared

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
    rewrite_params,
    row_limit_for,
)

READ_TIMEOUT_MARGIN_S = 2  # the client gives up this long after the server should have
BINARY_CHARSET = 63
CANNOT_CONNECT_ERRNOS = {2002, 2003}  # nothing listens there: try the next address
TIMEOUT_ERRNOS = {1969, 3024}  # MariaDB ER_STATEMENT_TIMEOUT, MySQL ER_QUERY_TIMEOUT
READ_ONLY_ERRNOS = {1792, 1290}  # read-only transaction; server running with --read-only
AUTH_ERRNOS = {1045, 1698, 1130}  # access denied (with / without password), host not allowed


class _PreparedCursor(MySQLCursorPrepared):
    """The driver's prepared cursor with two fixes:

    * YEAR columns: the pure-Python binary-protocol parser has no YEAR case and reads the 2-byte
      integer as a length-prefixed string, which corrupts (or crashes on) every later column. It is
      parsed as the SMALLINT it is on the wire.
    * A statement with ``?`` markers executed without values is silently *not executed* by the driver;
      here it is an error, like a wrong number of values already is.
    """

    def _handle_result(self, result: Any) -> None:
        super()._handle_result(result)
        if self._description:
            self._description = [
                (d[0], FieldType.SHORT, *d[2:]) if d[1] == FieldType.YEAR else d for d in self._description
            ]

    def execute(self, operation: Any, params: Any = None, map_results: bool = False) -> None:
        super().execute(operation, params, map_results)
        markers = (self._prepared or {}).get("parameters")
        if isinstance(markers, list) and markers and not params:
            raise my_errors.ProgrammingError(
                f"The query has {len(markers)} unnamed placeholder(s) (? or %s) but no values; "
                "name parameters :name or %(name)s.",
                errno=1210,
            )


@register
class MySQLConnector(Connector):
    type = "mysql"
    name = "MySQL / MariaDB"
    body_language = "sql"
    introspection_sql = (
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = DATABASE() ORDER BY table_name, ordinal_position"
    )
    config_schema = {
        "type": "object",
        "required": ["host", "database", "user"],
        "additionalProperties": False,
        "properties": {
            "host": HOST_SCHEMA,
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 3306},
            "database": {"type": "string", "minLength": 1, "maxLength": 64},
            "user": {"type": "string", "minLength": 1, "maxLength": 80},
            "password": {"type": "string", "maxLength": 500, "writeOnly": True},
            "ssl_mode": {
                "type": "string",
                "enum": ["disabled", "preferred", "required", "verify_identity"],
                "default": "preferred",
                "description": "preferred: TLS when the server offers it; required: fail without TLS; "
                "verify_identity: TLS with the certificate checked against the system CAs and host.",
            },
            "connect_timeout_s": {"type": "integer", "minimum": 1, "maximum": 30, "default": 5},
            "read_only": {"type": "boolean", "default": False},
        },
    }

    conn: MySQLConnection | None = None
    mariadb: bool = True

    def where(self) -> str:
        return f"{self.config['host']}:{self.config.get('port', 3306)}"

    def connect(self) -> None:
        c = self.config
        borrowed = pool.borrow(pool.key_for(self.type, c), _alive, _discard)
        if borrowed is not None:
            self.conn = borrowed
            self.mariadb = "mariadb" in (borrowed.server_info or "").lower()
            return
        ssl_mode = c.get("ssl_mode", "preferred")
        options: dict[str, Any] = {}
        if ssl_mode == "disabled":
            options["ssl_disabled"] = True
        elif ssl_mode == "verify_identity":
            options.update(ssl_verify_cert=True, ssl_verify_identity=True)
        port = int(c.get("port", 3306))
        addresses = checked_addresses(c["host"], port)
        # The socket goes to a checked address (the next one if it refuses); only verify_identity
        # must name the host to check its certificate (the driver resolves it again: checked, not pinned).
        targets = [c["host"]] if ssl_mode == "verify_identity" else addresses
        for n, target in enumerate(targets, 1):
            try:
                conn = self._connect_to(target, port, options)
            except my_errors.Error as exc:
                if n < len(targets) and getattr(exc, "errno", None) in CANNOT_CONNECT_ERRNOS:
                    continue
                raise self._scrub(_connect_error(exc, c)) from None
            break
        assert isinstance(conn, MySQLConnection)  # noqa: S101 - use_pure=True
        self.conn = conn
        _no_delay(conn)
        self.mariadb = "mariadb" in (conn.server_info or "").lower()
        if ssl_mode == "required" and not conn.is_secure:
            self.drop()
            raise Unreachable(
                f"MySQL at {self.where()} did not offer TLS, and ssl_mode is 'required'; "
                "enable TLS on the server or choose another ssl_mode."
            )

    def _connect_to(self, target: str, port: int, options: dict[str, Any]) -> Any:
        c = self.config
        return mysql.connector.connect(
            use_pure=True,  # the YEAR fix above is a pure-Python cursor class
            host=target,
            port=port,
            database=c["database"],
            user=c["user"],
            password=c.get("password") or "",
            connection_timeout=int(c.get("connect_timeout_s", 5)),
            charset="utf8mb4",
            autocommit=False,
            allow_local_infile=False,  # a hostile server must not be able to ask for our files
            client_flags=[-ClientFlag.MULTI_STATEMENTS],
            **options,
        )

    def live(self) -> MySQLConnection:
        if self.conn is None:
            raise Unreachable("Not connected.")
        return self.conn

    def close(self) -> None:
        """Give the connection back to the idle pool (``drop`` closes one that must not be reused)."""
        if self.conn is not None:
            conn, self.conn = self.conn, None
            if not conn.in_transaction and _reset(conn):  # no GET_LOCK or temp table waits in the pool
                pool.give_back(pool.key_for(self.type, self.config), conn, _discard)
            else:
                _discard(conn)

    def drop(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            _discard(conn)

    def health_check(self) -> None:
        with self.session():
            cursor = self.live().cursor()
            try:
                cursor.execute("SELECT 1")
                cursor.fetchall()
            except my_errors.Error as exc:
                message = f"MySQL at {self.where()} failed a health check: {_text(exc)}"
                raise self._scrub(Unreachable(message)) from None
            finally:
                cursor.close()

    def validate(self, body: Any) -> list[str]:
        if not isinstance(body, str) or not body.strip():
            return ["The query must be non-empty SQL text."]
        return []

    def execute(
        self, body: Any, params: Mapping[str, Any] | None = None, *, timeout_s: float = 30, row_limit: int = 0
    ) -> Result:
        self.require_valid(body)
        sql, names = rewrite_params(body, lambda _name: "?", mysql=True)
        values = bind_values(names, params)
        limit = row_limit_for(self, row_limit)
        read_only = bool(self.config.get("read_only"))
        own = self.conn is None
        if own:
            self.connect()
        conn = self.live()
        started = time.monotonic()
        columns: list[str] = []
        fetched: list[Any] = []
        extra: dict[str, Any] = {}
        try:
            conn.read_timeout = math.ceil(timeout_s) + READ_TIMEOUT_MARGIN_S
            self._begin(conn, timeout_s, limit, read_only)
            cursor = conn.cursor(cursor_class=_PreparedCursor)
            try:
                cursor.execute(sql, values)  # one statement, values bound by the server
                description = cursor.description or []
                if description:
                    columns = [str(d[0]) for d in description]
                    fetched = [_row(r, description) for r in cursor.fetchmany(limit + 1)]
                    while cursor.fetchmany(1000):  # the rest of a result with its own larger LIMIT
                        pass
                else:
                    extra["affected_rows"] = max(cursor.rowcount, 0)
            finally:
                with contextlib.suppress(my_errors.Error):
                    cursor.close()
            if read_only:
                conn.rollback()
            else:
                conn.commit()
        except (my_errors.ReadTimeoutError, my_errors.WriteTimeoutError):
            self.drop()  # the driver has dropped the socket already
            raise QueryTimeout(
                f"The query ran past its timeout of {timeout_s:g} s (MySQL did not answer in time)."
            ) from None
        except my_errors.Error as exc:
            error = self._scrub(_query_error(exc, timeout_s))
            if isinstance(error, Unreachable):
                self.drop()
            else:
                self._rollback_quietly()
            raise error from None
        except (TypeError, ValueError, OverflowError) as exc:  # a value the driver cannot bind
            self._rollback_quietly()
            raise BadQuery(f"MySQL: cannot bind a query parameter: {exc}") from None
        finally:
            if own:
                self.close()
        rows = fetched[:limit]
        return Result(
            columns, rows, len(rows), len(fetched) > limit, (time.monotonic() - started) * 1000, extra
        )

    # --- helpers -----------------------------------------------------------------------------------
    def _begin(self, conn: MySQLConnection, timeout_s: float, limit: int, read_only: bool) -> None:
        """Bound the session (server timeout, row limit) and open the transaction. The session's
        transaction mode is set every time: a previous statement may have been ``SET SESSION ...``."""
        if self.mariadb:
            timer, value = "max_statement_time", max(float(timeout_s), 0.001)  # seconds
        else:
            timer, value = "max_execution_time", max(math.ceil(timeout_s * 1000), 1)  # milliseconds
        setup = conn.cursor(cursor_class=_PreparedCursor)
        try:
            setup.execute(f"SET SESSION {timer} = ?, sql_select_limit = ?", [value, limit + 1])
        finally:
            setup.close()
        mode = "READ ONLY" if read_only else "READ WRITE"
        text = conn.cursor()
        try:
            text.execute(f"SET SESSION TRANSACTION {mode}")
            text.execute(f"START TRANSACTION {mode}")
        finally:
            text.close()

    def _rollback_quietly(self) -> None:
        if self.conn is not None:
            try:
                self.conn.rollback()
            except (my_errors.Error, OSError):
                self.drop()  # a connection that cannot roll back is not reused

    def _scrub(self, error: Exception) -> Exception:
        """The error, with the password (should a message ever carry it) replaced."""
        password = str(self.config.get("password") or "")
        if len(password) >= 3 and isinstance(error, ConnectorError):
            error.message = error.message.replace(password, "***")
            error.args = (error.message,)
        return error


def _no_delay(conn: MySQLConnection) -> None:
    """TCP_NODELAY, which the pure-Python driver does not set: closing a prepared statement is a
    message without a reply, and Nagle's algorithm would then hold the next command until the
    server's delayed ACK (~40 ms per statement)."""
    sock = getattr(getattr(conn, "_socket", None), "sock", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _row(row: Any, description: list[Any]) -> list[Any]:
    return [_value(v, d) for v, d in zip(row, description, strict=False)]


def _value(value: Any, desc: Any) -> Any:
    """Driver values as they are, except raw bytes: a BIT is its integer, text (and MySQL's JSON, sent
    with the binary charset) is str; genuinely binary columns stay bytes."""
    if isinstance(value, bytearray):
        value = bytes(value)
    if isinstance(value, bytes):
        if desc[1] == FieldType.BIT:
            return int.from_bytes(value, "big")
        if desc[1] == FieldType.JSON or desc[8] != BINARY_CHARSET:
            return value.decode("utf-8", errors="replace")
    return value


def _text(exc: my_errors.Error) -> str:
    msg = str(getattr(exc, "msg", "") or exc).strip()
    return (msg.splitlines() or [type(exc).__name__])[0]


def _query_error(exc: my_errors.Error, timeout_s: float) -> Exception:
    errno = getattr(exc, "errno", None) or 0
    if errno in TIMEOUT_ERRNOS and getattr(exc, "sqlstate", None):  # the driver's own 3024 has none
        return QueryTimeout(f"The query ran past its timeout of {timeout_s:g} s.")
    if errno in READ_ONLY_ERRNOS:
        return ReadOnlyViolation("This datasource is read-only: MySQL refused the write.")
    if isinstance(exc, my_errors.OperationalError | my_errors.InterfaceError) and errno >= 2000:
        return Unreachable(f"MySQL connection lost: {_text(exc)}")
    if errno > 0:
        return BadQuery(f"MySQL error {errno}: {_text(exc)}")
    return BadQuery(f"MySQL: {_text(exc)}")


def _reset(conn: MySQLConnection) -> bool:
    """Make a pooled connection like a new one; False (it is then dropped) when that fails."""
    try:
        if not conn.cmd_reset_connection():  # servers before MySQL 5.7.3 cannot reset cheaply
            return False
        conn.set_charset_collation("utf8mb4")
        conn.autocommit = False
    except (my_errors.Error, OSError):
        return False
    return True


def _alive(conn: MySQLConnection) -> bool:
    """A pooled connection (reset when it was given back) still answers."""
    try:
        return bool(conn.is_connected())  # a round trip (COM_PING)
    except (my_errors.Error, OSError):
        return False


def _discard(conn: MySQLConnection) -> None:
    with contextlib.suppress(my_errors.Error, OSError):
        conn.close()


def _connect_error(exc: my_errors.Error, c: Mapping[str, Any]) -> Exception:
    errno = getattr(exc, "errno", None) or 0
    where = f"{c['host']}:{c.get('port', 3306)}"
    if isinstance(exc, my_errors.ConnectionTimeoutError):
        return Unreachable(
            f"MySQL at {where} did not answer within {c.get('connect_timeout_s', 5)} s: "
            "check the host, the port and any firewall."
        )
    if errno in AUTH_ERRNOS:
        if errno == 1130:
            return AuthFailed(f"MySQL at {where} does not accept connections from this host: {_text(exc)}")
        return AuthFailed(f"MySQL at {where} refused user {c['user']!r}: check the user and password.")
    if errno == 1044:
        return AuthFailed(f"MySQL at {where}: user {c['user']!r} may not use database {c['database']!r}.")
    if errno == 1049:
        return Unreachable(f"MySQL at {where} has no database {c['database']!r}.")
    if errno == 2026:
        return Unreachable(f"MySQL at {where}: TLS could not be set up as ssl_mode requires: {_text(exc)}")
    reason = re.search(r"\(([^()]*)\)\s*$", _text(exc))
    return Unreachable(f"Cannot reach MySQL at {where}: {reason.group(1) if reason else _text(exc)}")
