"""The connector contract: a plain class per datasource type, registered by its ``type`` string.

A connector declares its identity (``type``, ``name``, ``category``) and the JSON Schema of its
config — secret fields carry ``"writeOnly": true`` — and implements ``connect/close/execute/
validate/health_check``. ``execute`` returns a normalized :class:`Result` (``columns, rows,
row_count, truncated, duration_ms``) and raises typed :class:`ConnectorError` subclasses whose
messages tell a user what to fix. Connectors hold no workflow logic and never format values into
query text: parameters are bound by the driver.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import jsonschema


class ConnectorError(Exception):
    code: ClassVar[str] = "connector_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigInvalid(ConnectorError):
    code = "config_invalid"

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


class AuthFailed(ConnectorError):
    code = "auth_failed"


class Unreachable(ConnectorError):
    code = "unreachable"


class QueryTimeout(ConnectorError):
    code = "timeout"


class BadQuery(ConnectorError):
    code = "bad_query"


class ReadOnlyViolation(BadQuery):
    code = "read_only"


class DestinationRefused(ConnectorError):
    """The outbound guard (jetadmin/outbound.py) refused the address or URL."""

    code = "outbound_refused"


# A database host is one name or address: no socket paths ("/var/run/postgresql" would reach the local
# server without a password) and no host lists (each would escape the check).
HOST_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[^/,\s]+$"}


def checked_addresses(host: str, port: int) -> list[str]:
    """The addresses of a database or mail host that the outbound guard allows (jetadmin/outbound.py):
    connectors connect to these, not to the name, so DNS cannot answer differently at connect time."""
    from jetadmin import outbound

    try:
        return outbound.resolve(host, port)
    except outbound.Unresolvable as exc:
        raise Unreachable(exc.message) from None
    except outbound.OutboundRefused as exc:
        raise DestinationRefused(exc.message) from None


@dataclass
class Result:
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    duration_ms: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "rows": self.rows,
            "row_count": self.row_count,
            "truncated": self.truncated,
            "duration_ms": round(self.duration_ms, 2),
            **self.extra,
        }


class Connector:
    type: ClassVar[str]
    name: ClassVar[str]
    category: ClassVar[str] = "database"
    # A statement listing (table, column, data type) rows, for the query editor's schema browser;
    # None where the connector has no tables.
    introspection_sql: ClassVar[str | None] = None
    # The editor's language for a query body: "sql" (SQL text) or "json" (a request object).
    body_language: ClassVar[str] = "json"
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    default_row_limit: ClassVar[int] = 10_000
    # Set by callers that retry (workflow nodes); connectors with writes that can carry it do.
    idempotency_key: str | None = None

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)

    # --- lifecycle ---------------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the connection (or pool); raise AuthFailed / Unreachable with an actionable message."""

    def close(self) -> None:
        pass

    @contextlib.contextmanager
    def session(self) -> Iterator[Connector]:
        self.connect()
        try:
            yield self
        finally:
            self.close()

    # --- work --------------------------------------------------------------------------------------
    def validate(self, body: Any) -> list[str]:
        """Problems with a query body, without running it (empty when it looks runnable)."""
        return []

    def require_valid(self, body: Any) -> None:
        """BadQuery with the first problem :meth:`validate` finds (every ``execute`` starts here)."""
        problems = self.validate(body)
        if problems:
            raise BadQuery(problems[0])

    def execute(
        self, body: Any, params: Mapping[str, Any] | None = None, *, timeout_s: float = 30, row_limit: int = 0
    ) -> Result:
        raise NotImplementedError

    def health_check(self) -> None:
        """Raise a ConnectorError when the datasource cannot be used; return quietly when it can."""
        self.connect()
        self.close()

    # --- metadata ----------------------------------------------------------------------------------
    @classmethod
    def secret_fields(cls) -> list[str]:
        props = cls.config_schema.get("properties", {})
        return sorted(name for name, spec in props.items() if spec.get("writeOnly"))

    @classmethod
    def check_config(cls, config: Any) -> dict[str, Any]:
        """The config validated against the schema; ConfigInvalid names each bad field."""
        errors: dict[str, list[str]] = {}
        for error in jsonschema.Draft202012Validator(cls.config_schema).iter_errors(config):
            path = ".".join(str(p) for p in error.absolute_path)
            if error.validator == "required" and isinstance(error.instance, dict):
                for name in error.validator_value:
                    if name not in error.instance:
                        errors.setdefault(name, ["This field is required."])
                continue
            errors.setdefault(path or "config", []).append(_without_value(error))
        if errors:
            first = next(iter(errors.items()))
            raise ConfigInvalid(f"Invalid {cls.name} config: {first[0]}: {first[1][0]}", errors)
        return dict(config)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "type": cls.type,
            "name": cls.name,
            "category": cls.category,
            "config_schema": cls.config_schema,
        }


def _without_value(error: jsonschema.ValidationError) -> str:
    """The schema's complaint without the rejected value: config errors may be about a secret, and
    a 400 must never echo one ("'s3cr…' is too long" becomes "The value is too long")."""
    shown = repr(error.instance)
    message = error.message
    if shown in message:
        message = (
            message.replace(shown, "The value", 1)
            if message.startswith(shown)
            else message.replace(shown, "the value")
        )
    return message


REGISTRY: dict[str, type[Connector]] = {}


def register(cls: type[Connector]) -> type[Connector]:
    if cls.type in REGISTRY:
        raise ValueError(f"connector type {cls.type!r} is registered twice")
    REGISTRY[cls.type] = cls
    return cls


def get(type_name: str) -> type[Connector]:
    try:
        return REGISTRY[type_name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigInvalid(f"Unknown datasource type {type_name!r}; known types: {known}.") from None


def row_limit_for(connector: Connector, row_limit: int) -> int:
    return row_limit if row_limit > 0 else connector.default_row_limit


# --- named parameters --------------------------------------------------------------------------------
# SQL connectors accept ``:name`` and ``%(name)s`` (CONTRACT). This scanner finds them outside quoted
# text, quoted identifiers and comments, so a driver can bind them in its own style; ``::`` casts and
# ``:=`` are left alone. It only ever replaces a marker with a driver placeholder, never with a value.
def _param_re(mysql: bool) -> re.Pattern[str]:
    quoted = r"'(?:[^'\\]|\\.|'')*'" if mysql else r"(?<!\w)[eE]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'"
    dquoted = r'"(?:[^"\\]|\\.|"")*"' if mysql else r'"(?:[^"]|"")*"'
    comments = r"--[^\n]*|\#[^\n]*|/\*.*?\*/" if mysql else r"--[^\n]*|/\*.*?\*/"
    return re.compile(
        rf"""(?P<skip>{quoted}|{dquoted}|`[^`]*`|{comments}|\$(?P<tag>\w*)\$.*?\$(?P=tag)\$|::)"""
        r"""|%\((?P<pyname>[A-Za-z_]\w*)\)s|(?<![:\w]):(?P<colname>[A-Za-z_]\w*)|(?P<percent>%)""",
        re.DOTALL,
    )


_PARAM_RES = {False: _param_re(False), True: _param_re(True)}


def rewrite_params(
    sql: str, placeholder: Callable[[str], str], *, mysql: bool = False, escape_percent: bool = False
) -> tuple[str, list[str]]:
    """``sql`` with every ``:name`` / ``%(name)s`` marker replaced by ``placeholder(name)``, and the
    names in order of appearance. ``mysql`` adds its ``#`` comments and backslash escapes.
    ``escape_percent`` doubles every other ``%`` (in strings and comments too), for drivers that
    read ``%`` as a placeholder (psycopg): ``LIKE 'a%'`` and ``7 % 3`` stay what they were."""
    names: list[str] = []

    def swap(match: re.Match[str]) -> str:
        if match.group("skip") is not None:
            skipped = match.group("skip")
            return skipped.replace("%", "%%") if escape_percent else skipped
        if match.group("percent") is not None:
            return "%%" if escape_percent else "%"
        name = match.group("pyname") or match.group("colname")
        names.append(name)
        return placeholder(name)

    return _PARAM_RES[mysql].sub(swap, sql), names


def bind_values(names: list[str], params: Mapping[str, Any] | None) -> list[Any]:
    """The values for positional placeholders; BadQuery names a missing parameter."""
    given = dict(params or {})
    missing = sorted({n for n in names if n not in given})
    if missing:
        raise BadQuery(f"Missing query parameter(s): {', '.join(missing)}.")
    return [given[n] for n in names]
