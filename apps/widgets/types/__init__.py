"""The widget type registry: ``type`` -> :class:`WidgetType`.

A type describes its ``config`` (a JSON Schema, served by ``GET /api/v1/widget-types/``) and turns a
config whose templates are already resolved into the data its view draws (``process``). Charts take
Chart.js's data shape (``{labels, datasets}``) or rows with the fields to plot (``{data, x, y}``).
Other apps add types with :func:`register`; this package registers the data types (``raw``,
``table``, ``stat``), the charts, the content types (``text``, ``markdown``, ``html``,
``vega-lite``) and the inputs (``select``, ``date-range``, ``form``, ``button``).
"""

from __future__ import annotations

from apps.widgets.types import charts, content, data, inputs  # noqa: F401  (registers the built-in types)
from apps.widgets.types.base import REGISTRY, WidgetDataError, WidgetType, get, register

__all__ = ["REGISTRY", "WidgetDataError", "WidgetType", "get", "register"]
