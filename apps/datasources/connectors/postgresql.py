"""PostgreSQL through psycopg 3. Parameters are bound by the driver (``:name`` is rewritten to psycopg's
``%(name)s`` by the marker scanner, never to a value; other ``%`` are escaped) and every statement
goes through the extended protocol, which runs exactly one statement — so ``'; DROP TABLE …`` can
never become a second command. Rows are streamed in chunks and only ``row_limit + 1`` are kept.
Read-only is the server's: each transaction is ``BEGIN READ ONLY``. ``statement_timeout`` bounds
every query server-side. Connections are kept idle per datasource and process (pool.py); before
reuse :data:`RESET_SESSION` checks the connection and clears the previous query's session state
(temporary tables, ``SET``, roles, locks)."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from . import pool
from .base import (
    HOST_SCHEMA,
    AuthFailed,
    BadQuery,
    Connector,
    QueryTimeout,
    ReadOnlyViolation,
    Result,
    Unreachable,
    checked_addresses,
    register,
    rewrite_params,
    row_limit_for,
)


@register
class PostgreSQLConnector(Connector):
    type = "postgresql"
    name = "PostgreSQL"
    body_language = "sql"
    introspection_sql = (
        "SELECT CASE WHEN table_schema = 'public' THEN table_name "
        "ELSE table_schema || '.' || table_name END, "
        "column_name, data_type FROM information_schema.columns "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
        "ORDER BY table_schema, table_name, ordinal_position"
    )
    config_schema = {
        "type": "object",
        "required": ["host", "database", "user"],
        "additionalProperties": False,
        "properties": {
            "host": HOST_SCHEMA,
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 5432},
            "database": {"type": "string", "minLength": 1, "maxLength": 63},
            "user": {"type": "string", "minLength": 1, "maxLength": 63},
            "password": {"type": "string", "maxLength": 500, "writeOnly": True},
            "sslmode": {
                "type": "string",
                "enum": ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
                "default": "prefer",
            },
            "connect_timeout_s": {"type": "integer", "minimum": 1, "maximum": 30, "default": 5},
            "read_only": {"type": "boolean", "default": False},
        },
    }

    conn: psycopg.Connection[Any] | None = None

    def connect(self) -> None:
        c = self.config
        self.conn = pool.borrow(pool.key_for(self.type, c), _healthy, _discard)
        if self.conn is not None:
            self.conn.read_only = bool(c.get("read_only"))
            return
        port = int(c.get("port", 5432))
        addresses = checked_addresses(c["host"], port)
        try:
            self.conn = psycopg.connect(
                # libpq tries each checked address in turn; the name is for TLS checks and messages
                host=",".join([c["host"]] * len(addresses)),
                hostaddr=",".join(addresses),
                port=port,
                dbname=c["database"],
                user=c["user"],
                password=c.get("password") or None,
                sslmode=c.get("sslmode", "prefer"),
                connect_timeout=int(c.get("connect_timeout_s", 5)),
                application_name="jetadmin",
            )
        except psycopg.OperationalError as exc:
            raise _connect_error(exc, c) from None
        self.conn.read_only = bool(c.get("read_only"))

    def live(self) -> psycopg.Connection[Any]:
        if self.conn is None:
            raise Unreachable("Not connected.")
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            idle = not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            if not (idle and _healthy(conn)):  # reset now: no advisory lock or LISTEN waits in the pool
                _discard(conn)
            else:
                pool.give_back(pool.key_for(self.type, self.config), conn, _discard)

    def health_check(self) -> None:
        with self.session():
            self.live().execute("SELECT 1")

    def validate(self, body: Any) -> list[str]:
        if not isinstance(body, str) or not body.strip():
            return ["The query must be non-empty SQL text."]
        return []

    def execute(
        self, body: Any, params: Mapping[str, Any] | None = None, *, timeout_s: float = 30, row_limit: int = 0
    ) -> Result:
        self.require_valid(body)
        limit = row_limit_for(self, row_limit)
        cut_at_cap = bool(self.config.get("read_only")) or _reads(body)
        own = self.conn is None
        if own:
            self.connect()
        conn = self.live()
        started = time.monotonic()
        try:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, true)", [f"{int(timeout_s * 1000)}ms"]
                )
                sql, _ = rewrite_params(body, lambda name: f"%({name})s", escape_percent=True)
                fetched: list[Any] = []
                # Bound parameters over the extended protocol (one statement only), rows streamed in
                # chunks: a huge result is never held, only the first limit + 1 rows.
                try:
                    for row in cursor.stream(sql, dict(params or {}), size=_chunk_rows()):
                        if len(fetched) <= limit:
                            fetched.append(row)
                        elif cut_at_cap:
                            break  # psycopg cancels the rest: nothing to commit
                        # else: a write (INSERT ... RETURNING, WITH ... DELETE) runs to its end and
                        # commits; the extra rows are read and dropped, never held.
                except psycopg.ProgrammingError as exc:
                    if NO_RESULT not in str(exc):
                        raise
                    # A command without rows (DDL, DML without RETURNING): it ran; psycopg drained
                    # its result, so the transaction goes on to commit.
                columns = [d.name for d in cursor.description or []]
        except pg_errors.QueryCanceled:
            raise QueryTimeout(f"The query ran past its timeout of {timeout_s:g} s.") from None
        except pg_errors.ReadOnlySqlTransaction:
            raise ReadOnlyViolation("This datasource is read-only: PostgreSQL refused the write.") from None
        except psycopg.OperationalError as exc:
            raise Unreachable(f"PostgreSQL connection lost: {_first_line(exc)}") from None
        except (psycopg.Error, KeyError, TypeError) as exc:  # KeyError/TypeError: a missing parameter
            raise BadQuery(f"PostgreSQL: {_first_line(exc)}") from None
        finally:
            if own:
                self.close()
        rows = [list(r) for r in fetched[:limit]]
        return Result(columns, rows, len(rows), len(fetched) > limit, (time.monotonic() - started) * 1000)


# DISCARD ALL minus DEALLOCATE ALL: psycopg keeps its own cache of the statements it prepared.
RESET_SESSION = (
    "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; "
    "SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES"
)


STREAM_CHUNK_ROWS = 1000
_LEADING = re.compile(r"^(?:\s+|--[^\n]*|/\*.*?\*/|\()*", re.DOTALL)
READ_VERBS = {"select", "values", "table", "show", "explain"}


def _reads(sql: str) -> bool:
    """A statement that only returns rows (a plain SELECT ...): past the row cap it is cancelled
    rather than read to its end. Not a safety check — writes are refused by the read-only session;
    a write misread as a read would be rolled back whole, never half done."""
    words = _LEADING.sub("", sql, count=1).split(None, 1)
    return bool(words) and words[0].lower() in READ_VERBS


NO_RESULT = "didn't produce a result"  # psycopg's words for stream() over a command


def _chunk_rows() -> int:
    """Chunked rows need libpq 17 (the binary wheel has it); else row by row."""
    return STREAM_CHUNK_ROWS if psycopg.capabilities.has_stream_chunked() else 1


def _healthy(conn: psycopg.Connection[Any]) -> bool:
    if conn.closed:
        return False
    try:
        conn.rollback()
        conn.autocommit = True  # these cannot run inside a transaction
        conn.execute(RESET_SESSION)
        conn.autocommit = False
    except psycopg.Error:
        return False
    return True


def _discard(conn: psycopg.Connection[Any]) -> None:
    with contextlib.suppress(psycopg.Error):
        conn.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _connect_error(exc: psycopg.OperationalError, c: Mapping[str, Any]) -> Exception:
    text = str(exc)
    where = f"{c['host']}:{c.get('port', 5432)}"
    if "password authentication failed" in text or "no password supplied" in text:
        return AuthFailed(f"PostgreSQL at {where} refused user {c['user']!r}: check the user and password.")
    if "role" in text and "does not exist" in text:
        return AuthFailed(f"PostgreSQL at {where} has no user {c['user']!r}.")
    if "database" in text and "does not exist" in text:
        return Unreachable(f"PostgreSQL at {where} has no database {c['database']!r}.")
    if "timeout" in text:
        return Unreachable(f"PostgreSQL at {where} did not answer within {c.get('connect_timeout_s', 5)} s.")
    return Unreachable(f"Cannot reach PostgreSQL at {where}: {_first_line(exc)}")
