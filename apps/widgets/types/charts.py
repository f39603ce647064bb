"""Chart widgets (Chart.js's types): ``bar``, ``line``, ``pie``, ``radar``, ``scatter``, ``bubble``.

``config`` is Chart.js's data shape, ``{labels, datasets: [{label, data}]}`` (scatter and bubble
``data`` are ``{x, y[, r]}`` points), or rows with the fields to plot: ``{data: <rows>, x: <field>,
y: <field or [fields]>}`` (bubble: ``r: <field>`` too). ``process`` returns Chart.js's shape either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from apps.widgets.types.base import WidgetDataError, WidgetType, register

_DATASET = {
    "type": "object",
    "required": ["data"],
    "properties": {"label": {"type": "string"}, "data": {"description": "values, or {x, y[, r]} points"}},
}


class Chart(WidgetType):
    category = "chart"
    points: ClassVar[bool] = False  # scatter/bubble: datasets hold {x, y[, r]} points
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "oneOf": [
            {"required": ["labels", "datasets"]},
            {"required": ["data", "x", "y"]},
        ],
        "properties": {
            "labels": {"description": "category labels (a list, or a template)"},
            "datasets": {"type": "array", "items": _DATASET},
            "data": {"description": "rows (a list of objects, or a template)"},
            "x": {"type": "string"},
            "y": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "r": {"type": "string"},
            "options": {"type": "object", "description": "passed to Chart.js as they are"},
        },
    }

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        if "datasets" in config:
            if not isinstance(config["datasets"], (list, str)):
                return {"datasets": ["A list of {label, data}."]}
            return {} if "labels" in config or self.points else {"labels": ["This field is required."]}
        errors = {name: ["This field is required."] for name in ("data", "x", "y") if name not in config}
        if not errors and not isinstance(config["x"], str):
            errors["x"] = ["The name of a field."]
        y = config.get("y")
        if not errors and not (
            isinstance(y, str) or (isinstance(y, list) and all(isinstance(f, str) for f in y))
        ):
            errors["y"] = ["The name of a field, or a list of names."]
        if errors and "datasets" not in config and "data" not in config:
            errors = {"datasets": ["Give either labels + datasets, or data + x + y."]}
        return errors

    def process(self, config: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        out = self._from_datasets(config) if "datasets" in config else self._from_rows(config)
        if isinstance(config.get("options"), Mapping):
            out["options"] = config["options"]
        return out

    def _from_datasets(self, config: Mapping[str, Any]) -> dict[str, Any]:
        datasets = config["datasets"]
        if not isinstance(datasets, list):
            raise WidgetDataError(f"datasets must be a list, not {type(datasets).__name__}.")
        shaped = []
        for i, dataset in enumerate(datasets):
            if not isinstance(dataset, Mapping) or not isinstance(dataset.get("data"), list):
                raise WidgetDataError(f"datasets[{i}] needs data (a list).")
            shaped.append({**dataset, "label": str(dataset.get("label", f"Series {i + 1}"))})
            if self.points:
                for point in dataset["data"]:
                    _check_point(point, self.type)
        out: dict[str, Any] = {"datasets": shaped}
        if "labels" in config:
            labels = config["labels"]
            if not isinstance(labels, list):
                raise WidgetDataError(f"labels must be a list, not {type(labels).__name__}.")
            out["labels"] = labels
        return out

    def _from_rows(self, config: Mapping[str, Any]) -> dict[str, Any]:
        rows = config.get("data")
        if isinstance(rows, Mapping) and isinstance(rows.get("rows"), list):  # a query node's result
            rows = rows["rows"]
        if not isinstance(rows, list):
            raise WidgetDataError(f"data must be a list of rows, not {type(rows).__name__}.")
        x = config.get("x")
        ys = config.get("y")
        fields = [ys] if isinstance(ys, str) else ys
        if not isinstance(x, str) or not isinstance(fields, list) or not fields:
            raise WidgetDataError("x must name a field, y a field or a list of fields.")
        radius = config.get("r") if self.points and isinstance(config.get("r"), str) else None
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise WidgetDataError(f"row {i} is not an object.")
            for field in (x, *fields, *([radius] if radius else [])):
                if field not in row:
                    raise WidgetDataError(
                        f"row {i} has no field {field!r}; it has: {', '.join(map(str, row))}."
                    )
        if self.points:
            datasets = []
            for field in fields:
                points = []
                for row in rows:
                    point = {"x": row[x], "y": row[field]}
                    if radius:
                        point["r"] = row[radius]
                    points.append(point)
                datasets.append({"label": field, "data": points})
            return {"datasets": datasets}
        return {
            "labels": [row[x] for row in rows],
            "datasets": [{"label": field, "data": [row[field] for row in rows]} for field in fields],
        }


def _check_point(point: Any, kind: str) -> None:
    if not isinstance(point, Mapping) or "x" not in point or "y" not in point:
        raise WidgetDataError(f"{kind} data must be {{x, y}} points, not {point!r:.60}.")


@register
class Bar(Chart):
    type = "bar"
    name = "Bar chart"


@register
class Line(Chart):
    type = "line"
    name = "Line chart"


@register
class Pie(Chart):
    type = "pie"
    name = "Pie chart"


@register
class Radar(Chart):
    type = "radar"
    name = "Radar chart"


@register
class Scatter(Chart):
    type = "scatter"
    name = "Scatter plot"
    points = True


@register
class Bubble(Chart):
    type = "bubble"
    name = "Bubble chart"
    points = True
