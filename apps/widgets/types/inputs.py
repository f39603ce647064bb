"""Input widgets: ``select``, ``date-range``, ``form`` and ``button``. They draw controls, not data.
``action: "rerun"`` (the default for select, date-range and form) sets the named input parameters of
every widget on the dashboard and runs their workflow again (the dashboard declares these parameters,
so a member with ``widget.view`` may set them); ``action: "send_input"`` sends the values to the
widget's own run with ``widget_send_input`` (a run that waits for input resumes). ``process`` returns
the control's description with its templates resolved (options may come from a run)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from apps.widgets.types.base import WidgetDataError, WidgetType, register, required

ACTIONS = ("rerun", "send_input")
MAX_OPTIONS = 1000


def _action(config: Mapping[str, Any], default: str) -> str:
    action = config.get("action", default)
    if action not in ACTIONS:
        raise WidgetDataError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}.")
    return str(action)


def _name(config: Mapping[str, Any], field: str) -> str:
    value = config.get(field)
    if not isinstance(value, str) or not value.strip():
        raise WidgetDataError(f"{field} must name an input parameter.")
    return value


class InputType(WidgetType):
    category = "input"


@register
class Select(InputType):
    type = "select"
    name = "Select"
    config_schema = {
        "type": "object",
        "required": ["param", "options"],
        "properties": {
            "label": {"type": "string"},
            "param": {"type": "string", "description": "the input parameter it sets"},
            "options": {"description": "a list of values (or of {value, label}), or a template"},
            "action": {"enum": list(ACTIONS)},
        },
    }

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        return required(config, "param", "options")

    def params(self, config: Mapping[str, Any]) -> list[str]:
        return [config["param"]] if isinstance(config.get("param"), str) else []

    def process(self, config: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        options = config.get("options")
        if isinstance(options, Mapping) and isinstance(options.get("rows"), list):
            options = options["rows"]
        if not isinstance(options, list):
            raise WidgetDataError(f"options must be a list, not {type(options).__name__}.")
        if len(options) > MAX_OPTIONS:
            raise WidgetDataError(f"{len(options):,} options; at most {MAX_OPTIONS:,} are shown.")
        shaped = []
        for option in options:
            if isinstance(option, Mapping):
                if "value" not in option:
                    raise WidgetDataError("an option object needs a value.")
                value = option["value"]
                shaped.append({"value": value, "label": str(option.get("label", value))})
            elif isinstance(option, str | int | float) and not isinstance(option, bool):
                shaped.append({"value": option, "label": str(option)})
            else:
                raise WidgetDataError(
                    f"an option must be a value or {{value, label}}, not {type(option).__name__}."
                )
        return {
            "control": "select",
            "label": str(config.get("label") or config.get("param")),
            "param": _name(config, "param"),
            "options": shaped,
            "action": _action(config, "rerun"),
        }


@register
class DateRange(InputType):
    type = "date-range"
    name = "Date range"
    config_schema = {
        "type": "object",
        "required": ["param_from"],
        "properties": {
            "label": {"type": "string"},
            "param_from": {"type": "string"},
            "param_to": {"type": "string"},
            "action": {"enum": list(ACTIONS)},
        },
    }

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        return required(config, "param_from")

    def params(self, config: Mapping[str, Any]) -> list[str]:
        return [config[k] for k in ("param_from", "param_to") if isinstance(config.get(k), str)]

    def process(self, config: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        out = {
            "control": "date-range",
            "label": str(config.get("label") or "Dates"),
            "param_from": _name(config, "param_from"),
            "action": _action(config, "rerun"),
        }
        if config.get("param_to") is not None:
            out["param_to"] = _name(config, "param_to")
        return out


@register
class Form(InputType):
    type = "form"
    name = "Form"
    config_schema = {
        "type": "object",
        "required": ["schema"],
        "properties": {
            "label": {"type": "string"},
            "schema": {"type": "object", "description": "a JSON Schema of an object: one field per property"},
            "action": {"enum": list(ACTIONS)},
            "submit_label": {"type": "string"},
        },
    }

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        errors = required(config, "schema")
        if not errors and isinstance(config["schema"], dict):
            try:
                Draft202012Validator.check_schema(config["schema"])
            except SchemaError as exc:
                errors["schema"] = [f"Not a valid JSON Schema: {exc.message}"]
        return errors

    def params(self, config: Mapping[str, Any]) -> list[str]:
        schema = config.get("schema")
        if config.get("action", "rerun") != "rerun" or not isinstance(schema, dict):
            return []
        return [str(name) for name in (schema.get("properties") or {})]

    def process(self, config: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        schema = config.get("schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
            raise WidgetDataError("schema must be a JSON Schema with properties (one field each).")
        return {
            "control": "form",
            "label": str(config.get("label") or ""),
            "schema": schema,
            "action": _action(config, "rerun"),
            "submit_label": str(config.get("submit_label") or "Apply"),
        }


@register
class Button(InputType):
    type = "button"
    name = "Button"
    config_schema = {
        "type": "object",
        "required": ["label"],
        "properties": {
            "label": {"type": "string"},
            "action": {"enum": list(ACTIONS)},
            "data": {"description": "what send_input sends (an object)"},
        },
    }

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        return required(config, "label")

    def process(self, config: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        data = config.get("data", {})
        if not isinstance(data, Mapping):
            raise WidgetDataError(f"data must be an object, not {type(data).__name__}.")
        return {
            "control": "button",
            "label": str(config.get("label")),
            "action": _action(config, "rerun"),
            "data": data,
        }
