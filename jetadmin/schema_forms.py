"""HTML forms generated from a JSON Schema (a datasource type's config, a query's parameters, a node's
inputs), and the submitted form read back into a typed object.

Only the flat shape these schemas use is covered: each top-level property becomes one field — text,
number, whole number, checkbox, a choice for ``enum``, a password input for ``writeOnly`` (secret)
fields, and a JSON text area for objects and arrays. Validation stays with the schema's owner (the
service); :func:`read` reports only what it could not parse ("Enter a whole number.").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

KEEP = "********"  # a secret left empty on an edit form keeps its stored value (the services' mask)


@dataclass
class Field:
    name: str
    label: str
    kind: str  # text | password | number | integer | checkbox | select | json
    required: bool = False
    value: Any = ""
    choices: list[str] = field(default_factory=list)
    help: str = ""
    errors: list[str] = field(default_factory=list)
    stored: bool = False  # a secret with a stored value (left empty, it is kept)

    @property
    def input_name(self) -> str:
        return f"f.{self.name}"


def _kind(prop: dict[str, Any]) -> str:
    if prop.get("writeOnly"):
        return "password" if prop.get("type") == "string" else "json"
    if "enum" in prop:
        return "select"
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return {"boolean": "checkbox", "integer": "integer", "number": "number", "string": "text"}.get(
        str(kind), "json"
    )


def _shown(kind: str, value: Any) -> Any:
    if kind == "json":
        return "" if value in (None, "") else json.dumps(value, indent=2)
    if kind == "checkbox":
        return bool(value)
    return "" if value is None else value


def fields(
    schema: dict[str, Any] | None,
    values: dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
    *,
    error_prefix: str = "",
) -> list[Field]:
    """One :class:`Field` per property, filled from ``values`` (else the schema's default); errors are
    taken from ``errors[error_prefix + name]`` (the services' field-level details)."""
    schema = schema or {}
    values = values or {}
    errors = errors or {}
    required = set(schema.get("required") or [])
    out = []
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        kind = _kind(prop)
        stored = kind == "password" and values.get(name) == KEEP
        value = "" if kind == "password" else values.get(name, prop.get("default"))
        out.append(
            Field(
                name=name,
                label=str(prop.get("title") or name.replace("_", " ").capitalize()),
                kind=kind,
                required=name in required,
                value=_shown(kind, value),
                choices=[str(c) for c in prop.get("enum") or []],
                help=str(prop.get("description") or ""),
                errors=list(errors.get(error_prefix + name, [])),
                stored=stored,
            )
        )
    return out


def read(
    schema: dict[str, Any] | None, data: QueryDict, *, editing: bool = False
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The object a submitted form describes, and per-field parse errors. Empty optional fields are
    left out (the schema's default applies); on an edit form an empty secret is sent as the mask, so
    the stored value is kept, unless its "clear" box is ticked."""
    schema = schema or {}
    required = set(schema.get("required") or [])
    out: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        kind = _kind(prop)
        key = f"f.{name}"
        if kind == "checkbox":
            out[name] = data.get(key) in ("on", "true", "1")
            continue
        raw = str(data.get(key, "")).strip() if kind != "password" else str(data.get(key, ""))
        if kind == "password" and editing:
            if data.get(f"{key}.clear"):
                out[name] = ""
            elif raw == "":
                out[name] = KEEP
            else:
                out[name] = raw
            continue
        if raw == "":
            if name in required:
                out[name] = ""  # the schema's owner names the missing field
            continue
        try:
            out[name] = _parse(kind, raw)
        except ValueError as exc:
            errors[name] = [str(exc)]
    return out, errors


def _parse(kind: str, raw: str) -> Any:
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError("Enter a whole number.") from None
    if kind == "number":
        try:
            return float(raw)
        except ValueError:
            raise ValueError("Enter a number.") from None
    if kind == "json":
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"Enter valid JSON ({exc}).") from None
    return raw
