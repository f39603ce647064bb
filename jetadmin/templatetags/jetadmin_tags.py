"""Template filters of the pages: values shown as text (JSON for objects and lists, never HTML)."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def cell(value: Any) -> str:
    """A value in a grid cell or a panel: JSON for objects and lists, text for the rest."""
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


@register.filter
def pretty(value: Any) -> str:
    """A value as indented JSON (for <pre> blocks)."""
    return json.dumps(value, default=str, ensure_ascii=False, indent=2)


@register.filter
def elapsed(start: Any, end: Any) -> str:
    """The time between two datetimes as "340 ms", "4.2 s" or "3 min 5 s"; "—" when one is missing."""
    if not start or not end:
        return "—"
    ms = (end - start).total_seconds() * 1000
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(int(ms // 1000), 60)
    return f"{minutes} min {seconds} s"


@register.filter
def is_number(value: Any) -> bool:
    """Numbers are right-aligned in grids (booleans are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@register.filter
def get(mapping: Any, key: str) -> Any:
    """``mapping[key]`` (None when missing), for rows keyed by a column's field."""
    return mapping.get(key) if isinstance(mapping, dict) else None
