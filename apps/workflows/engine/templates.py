"""Template resolution: ``{{input.x}}``, ``{{node.path}}``, ``{{ctx.node.path}}``, ``{{loop.item}}``.

Pure (no ORM, no I/O). Paths take ``.key``, ``[0]`` and ``["key"]``. A value that is exactly one
expression keeps its type (lists stay lists — charts depend on it); expressions inside a longer
string are stringified (strings as they are, everything else as JSON). Dicts and lists are resolved
recursively. Dunder and prototype-like path parts are refused, except the root ``__widgetInput`` (what a
widget sent into the run, ``ctx.__widgetInput``). A missing key raises
:class:`TemplateError` naming the node, the input, the expression and the keys that do exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EXPRESSION = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.S)
SINGLE = re.compile(r"^\s*\{\{\s*(.*?)\s*\}\}\s*$", re.S)
_IDENT = r"[A-Za-z_][A-Za-z0-9_\-]*"
_PART = re.compile(rf"\.({_IDENT}|\d+)|\[(\d+)\]|\[\"((?:[^\"\\]|\\.)*)\"\]|\['((?:[^'\\]|\\.)*)'\]")
_ROOT = re.compile(rf"^({_IDENT})")
FORBIDDEN = {"__proto__", "prototype", "constructor"}
WIDGET_INPUT = "__widgetInput"  # what a widget sent into the run: the one double-underscore root
MAX_KEYS_SHOWN = 20


class TemplateError(ValueError):
    """A template that cannot be parsed or resolved; the message is meant for the user."""


@dataclass(frozen=True)
class Reference:
    expression: str  # as written, without the braces
    root: str  # "input", "loop", or a node id ("ctx." already stripped)
    path: tuple[str | int, ...]


def parse(expression: str) -> Reference:
    """``ctx.a.b[0]["c"]`` → Reference(root="a", path=("b", 0, "c"))."""
    text = expression.strip()
    match = _ROOT.match(text)
    if not match:
        raise TemplateError(f"{{{{{expression}}}}} is not a valid reference (expected e.g. {{{{input.x}}}}).")
    root = match.group(1)
    pos = match.end()
    parts: list[str | int] = []
    while pos < len(text):
        part = _PART.match(text, pos)
        if not part:
            raise TemplateError(f"{{{{{expression}}}}}: cannot parse the path at {text[pos:]!r}.")
        key, index, dq, sq = part.groups()
        if index is not None:
            parts.append(int(index))
        elif key is not None:
            parts.append(int(key) if key.isdigit() else key)
        else:
            raw = dq if dq is not None else sq
            parts.append(raw.replace('\\"', '"').replace("\\'", "'").replace("\\\\", "\\"))
        pos = part.end()
    if root == "ctx":
        if not parts or not isinstance(parts[0], str):
            raise TemplateError(
                f"{{{{{expression}}}}}: ctx must be followed by a node id, e.g. ctx.node.field."
            )
        root, parts = parts[0], parts[1:]
    for p in parts if root == WIDGET_INPUT else (root, *parts):
        if isinstance(p, str) and (p in FORBIDDEN or p.startswith("__")):
            raise TemplateError(f"{{{{{expression}}}}}: the path part {p!r} is not allowed.")
    return Reference(expression=text, root=str(root), path=tuple(parts))


def references(value: Any) -> list[Reference]:
    """Every reference inside a value (strings, dicts and lists, recursively)."""
    found: list[Reference] = []
    if isinstance(value, str):
        found.extend(parse(m.group(1)) for m in EXPRESSION.finditer(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            found.extend(references(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(references(item))
    return found


def is_dynamic(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _keys(value: Any) -> str:
    if isinstance(value, Mapping):
        keys = [str(k) for k in value][:MAX_KEYS_SHOWN]
        return ", ".join(keys) if keys else "(none: the object is empty)"
    if isinstance(value, list):
        return f"indexes 0..{len(value) - 1}" if value else "(none: the list is empty)"
    return f"(none: the value is {type(value).__name__})"


def lookup(ref: Reference, context: Mapping[str, Any], *, where: str) -> Any:
    if ref.root not in context:
        raise TemplateError(
            f"{where}: {{{{{ref.expression}}}}} refers to {ref.root!r}, which is not in the context; "
            f"available: {_keys(context)}."
        )
    value = context[ref.root]
    walked = ref.root
    for part in ref.path:
        if isinstance(value, Mapping) and (str(part) in value):
            value = value[str(part)]
        elif isinstance(value, list) and isinstance(part, int) and -len(value) <= part < len(value):
            value = value[part]
        else:
            raise TemplateError(
                f"{where}: {{{{{ref.expression}}}}} — {walked!s} has no key {part!r}; "
                f"available keys: {_keys(value)}."
            )
        walked += f"[{part}]" if isinstance(part, int) else f".{part}"
    return value


def _stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def resolve(value: Any, context: Mapping[str, Any], *, node_id: str = "?", field: str = "") -> Any:
    """Resolve every template in ``value`` against ``context``; ``field`` names the input for errors."""
    where = f"node {node_id!r}, input {field or '(inputs)'!r}"
    if isinstance(value, str):
        if "{{" not in value:
            return value
        single = SINGLE.match(value)
        if single and "{{" not in single.group(1):
            return lookup(parse(single.group(1)), context, where=where)
        return EXPRESSION.sub(lambda m: _stringify(lookup(parse(m.group(1)), context, where=where)), value)
    if isinstance(value, Mapping):
        return {
            k: resolve(v, context, node_id=node_id, field=f"{field}.{k}" if field else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [resolve(v, context, node_id=node_id, field=f"{field}[{i}]") for i, v in enumerate(value)]
    return value
