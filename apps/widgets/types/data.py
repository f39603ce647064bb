"""Data widgets: ``raw`` (the data as it is), ``table`` and ``stat``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apps.widgets.types.base import WidgetDataError, WidgetType, register, required

DEFAULT_PAGE_SIZE = 25


@register
class Raw(WidgetType):
    type = "raw"
    name = "Raw data"
    config_schema = {
        "type": "object",
        "properties": {"data": {"description": "What to show; the run's whole context if absent."}},
    }

    def process(self, config: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        if "data" in config:
            return config["data"]
        return {key: value for key, value in context.items() if not key.startswith("__")}


@register
class Table(WidgetType):
    type = "table"
    name = "Table"
    config_schema = {
        "type": "object",
        "required": ["rows"],
        "properties": {
            "rows": {"description": "A list of objects (or of lists, with columns)."},
            "columns": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field"],
                    "properties": {"field": {"type": "string"}, "label": {"type": "string"}},
                },
            },
            "page_size": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
    }

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        errors = required(config, "rows")
        size = config.get("page_size", DEFAULT_PAGE_SIZE)
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 1000:
            errors["page_size"] = ["An integer from 1 to 1000."]
        columns = config.get("columns")
        if columns is not None and not isinstance(columns, str):  # a template is checked when resolved
            try:
                _columns(columns)
            except WidgetDataError as exc:
                errors["columns"] = [str(exc)]
        return errors

    def process(self, config: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        rows = config.get("rows")
        if isinstance(rows, Mapping) and isinstance(rows.get("rows"), list):  # a query node's result
            rows = rows["rows"]
        if not isinstance(rows, list):
            raise WidgetDataError(f"rows must be a list, not {type(rows).__name__}.")
        columns = _columns(config.get("columns")) if config.get("columns") is not None else None
        if columns is None:
            seen: dict[str, None] = {}
            for row in rows:
                if not isinstance(row, Mapping):
                    raise WidgetDataError("rows that are not objects need columns.")
                seen.update(dict.fromkeys(str(key) for key in row))
            columns = [{"field": field, "label": field} for field in seen]
        shaped = [row if isinstance(row, Mapping) else _row_of(row, columns) for row in rows]
        return {
            "columns": columns,
            "rows": [{c["field"]: row.get(c["field"]) for c in columns} for row in shaped],
            "page_size": config.get("page_size", DEFAULT_PAGE_SIZE),
            "total": len(shaped),
        }


def _columns(columns: Any) -> list[dict[str, str]]:
    if not isinstance(columns, list):
        raise WidgetDataError("columns must be a list of {field, label?}.")
    out = []
    for column in columns:
        if isinstance(column, str):
            column = {"field": column}
        if not isinstance(column, Mapping) or not isinstance(column.get("field"), str):
            raise WidgetDataError("each column needs a field (a string).")
        out.append({"field": column["field"], "label": str(column.get("label") or column["field"])})
    return out


def _row_of(values: Any, columns: list[dict[str, str]]) -> dict[str, Any]:
    if not isinstance(values, list):
        raise WidgetDataError(f"a row must be an object or a list, not {type(values).__name__}.")
    return {c["field"]: values[i] if i < len(values) else None for i, c in enumerate(columns)}


@register
class Stat(WidgetType):
    type = "stat"
    name = "Statistic"
    config_schema = {
        "type": "object",
        "required": ["value"],
        "properties": {
            "value": {"description": "A number or a short text."},
            "label": {"type": "string"},
            "delta": {"description": "The change to show next to the value (a number)."},
            "format": {"type": "string", "description": "e.g. 'number', 'percent', 'currency:EUR'"},
        },
    }

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        return required(config, "value")

    def process(self, config: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        value = config.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float, str, type(None))):
            raise WidgetDataError(f"value must be a number or a text, not {type(value).__name__}.")
        delta = config.get("delta")
        if delta is not None and (not isinstance(delta, (int, float)) or isinstance(delta, bool)):
            raise WidgetDataError(f"delta must be a number, not {type(delta).__name__}.")
        out: dict[str, Any] = {"value": value}
        for key in ("label", "delta", "format"):
            if config.get(key) is not None:
                out[key] = config[key]
        return out
