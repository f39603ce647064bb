"""The registry's base class and lookups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class WidgetDataError(ValueError):
    """The data does not fit the widget type; the message is meant for the user."""


class WidgetType:
    type: ClassVar[str]
    name: ClassVar[str]
    category: ClassVar[str] = "data"
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        """Field errors of a saved config (templates not resolved yet: only its shape is checked)."""
        return {}

    def process(self, config: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        """The view's data from the resolved config and the run's context; ``WidgetDataError`` if it
        cannot be drawn."""
        raise NotImplementedError

    def params(self, config: Mapping[str, Any]) -> list[str]:
        """The input parameters this widget sets when it re-runs its dashboard (input controls); a
        dashboard declares them, so its viewers may set them."""
        return []

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "category": self.category,
            "config_schema": self.config_schema,
        }


REGISTRY: dict[str, WidgetType] = {}


def register(cls: type[WidgetType]) -> type[WidgetType]:
    REGISTRY[cls.type] = cls()
    return cls


def get(type_name: str) -> WidgetType:
    try:
        return REGISTRY[type_name]
    except KeyError:
        raise WidgetDataError(f"Unknown widget type {type_name!r}.") from None


def required(config: Mapping[str, Any], *names: str) -> dict[str, list[str]]:
    return {name: ["This field is required."] for name in names if name not in config}
