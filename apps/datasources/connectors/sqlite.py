"""SQLite files under ``JETADMIN_SQLITE_ROOT`` (never elsewhere: a path cannot reach jetadmin's own
database). Parameters are bound by sqlite3 (``:name``); read-only opens the file with ``mode=ro``, so
the library itself refuses writes; the timeout interrupts the statement from a progress handler."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings

from .base import (
    BadQuery,
    ConfigInvalid,
    Connector,
    QueryTimeout,
    ReadOnlyViolation,
    Result,
    Unreachable,
    register,
    row_limit_for,
)


def sqlite_root() -> Path:
    return Path(settings.JETADMIN_SQLITE_ROOT).resolve()


@register
class SQLiteConnector(Connector):
    type = "sqlite"
    name = "SQLite"
    body_language = "sql"
    introspection_sql = (
        "SELECT m.name, p.name, p.type FROM sqlite_master m JOIN pragma_table_info(m.name) p "
        "WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid"
    )
    config_schema = {
        "type": "object",
        "required": ["path"],
        "additionalProperties": False,
        "properties": {
            "path": {
                "type": "string",
                "minLength": 1,
                "maxLength": 500,
                "description": "A database file under JETADMIN_SQLITE_ROOT (relative to it).",
            },
            "read_only": {"type": "boolean", "default": False},
        },
    }

    conn: sqlite3.Connection | None = None

    def file(self) -> Path:
        root = sqlite_root()
        path = (root / str(self.config["path"])).resolve()
        if root not in path.parents:
            raise ConfigInvalid(
                f"path must be a file under the SQLite root ({root}); {self.config['path']!r} is outside it.",
                {"path": ["Outside the SQLite root."]},
            )
        return path

    def connect(self) -> None:
        path = self.file()
        if not path.is_file():
            raise Unreachable(f"No SQLite database at {self.config['path']!r} (under {sqlite_root()}).")
        mode = "ro" if self.config.get("read_only") else "rw"
        try:
            self.conn = sqlite3.connect(f"file:{quote(str(path))}?mode={mode}", uri=True, timeout=5)
        except sqlite3.Error as exc:
            raise Unreachable(f"Cannot open {self.config['path']!r}: {exc}") from None

    def live(self) -> sqlite3.Connection:
        if self.conn is None:
            raise Unreachable("Not connected.")
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def health_check(self) -> None:
        with self.session():
            try:
                self.live().execute("SELECT 1").fetchone()
            except sqlite3.DatabaseError as exc:
                raise Unreachable(f"{self.config['path']!r} is not a usable SQLite database: {exc}") from None

    def validate(self, body: Any) -> list[str]:
        if not isinstance(body, str) or not body.strip():
            return ["The query must be non-empty SQL text."]
        if not sqlite3.complete_statement(body if body.rstrip().endswith(";") else body + ";"):
            return ["The SQL statement is incomplete."]
        return []

    def execute(
        self, body: Any, params: Mapping[str, Any] | None = None, *, timeout_s: float = 30, row_limit: int = 0
    ) -> Result:
        self.require_valid(body)
        limit = row_limit_for(self, row_limit)
        own = self.conn is None
        if own:
            self.connect()
        conn = self.live()
        started = time.monotonic()
        deadline = started + timeout_s
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
        try:
            cursor = conn.execute(body, dict(params or {}))  # one statement; bound parameters only
            columns = [d[0] for d in cursor.description or []]
            fetched = cursor.fetchmany(limit + 1) if columns else []
            if not columns:
                conn.commit()
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "interrupted" in text:
                raise QueryTimeout(f"The query ran past its timeout of {timeout_s:g} s.") from None
            if "readonly" in text or "read-only" in text:
                raise ReadOnlyViolation(
                    "This datasource is read-only: the database refused the write."
                ) from None
            raise BadQuery(f"SQLite: {text}") from None
        except (sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.DataError) as exc:
            raise BadQuery(f"SQLite: {exc}") from None
        except sqlite3.Warning as exc:  # "You can only execute one statement at a time."
            raise BadQuery(f"SQLite: {exc}") from None
        finally:
            conn.set_progress_handler(None, 0)
            if own:
                self.close()
        rows = [list(r) for r in fetched[:limit]]
        return Result(columns, rows, len(rows), len(fetched) > limit, (time.monotonic() - started) * 1000)
