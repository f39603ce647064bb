"""The widget type registry: each type's data shaping and its errors (apps/widgets/types)."""

from __future__ import annotations

import pytest

from apps.widgets import types
from apps.widgets.types import WidgetDataError

ROWS = [{"month": "Jan", "sales": 3, "cost": 1}, {"month": "Feb", "sales": 5, "cost": 2}]


def process(kind: str, config: dict) -> object:
    return types.get(kind).process(config, {})


def test_the_registry_lists_the_types_with_schemas():
    assert {"raw", "bar", "line", "pie", "radar", "scatter", "bubble", "table", "stat"} <= set(types.REGISTRY)
    bar = types.get("bar").describe()
    assert bar["type"] == "bar" and bar["category"] == "chart" and bar["config_schema"]["type"] == "object"
    with pytest.raises(WidgetDataError, match="Unknown widget type 'nope'"):
        types.get("nope")


@pytest.mark.parametrize("kind", ["bar", "line", "pie", "radar"])
def test_category_charts_from_rows_and_from_datasets(kind):
    assert process(kind, {"data": ROWS, "x": "month", "y": ["sales", "cost"]}) == {
        "labels": ["Jan", "Feb"],
        "datasets": [{"label": "sales", "data": [3, 5]}, {"label": "cost", "data": [1, 2]}],
    }
    given = {"labels": ["a", "b"], "datasets": [{"label": "n", "data": [1, 2]}]}
    assert process(kind, given) == given
    # a query node's result ({columns, rows, ...}) can be passed as it is
    assert process(kind, {"data": {"rows": ROWS}, "x": "month", "y": "sales"})["datasets"] == [
        {"label": "sales", "data": [3, 5]}
    ]


def test_point_charts():
    assert process("scatter", {"data": ROWS, "x": "sales", "y": "cost"}) == {
        "datasets": [{"label": "cost", "data": [{"x": 3, "y": 1}, {"x": 5, "y": 2}]}]
    }
    assert process("bubble", {"data": ROWS, "x": "sales", "y": "cost", "r": "sales"})["datasets"][0][
        "data"
    ] == [
        {"x": 3, "y": 1, "r": 3},
        {"x": 5, "y": 2, "r": 5},
    ]
    with pytest.raises(WidgetDataError, match=r"scatter data must be \{x, y\} points"):
        process("scatter", {"datasets": [{"data": [1, 2]}]})


def test_chart_errors_name_the_problem():
    with pytest.raises(WidgetDataError, match="data must be a list of rows, not str"):
        process("bar", {"data": "oops", "x": "a", "y": "b"})
    with pytest.raises(WidgetDataError, match="row 1 has no field 'sales'; it has: month"):
        process("bar", {"data": [{"month": "a", "sales": 1}, {"month": "b"}], "x": "month", "y": "sales"})
    with pytest.raises(WidgetDataError, match=r"datasets\[0\] needs data"):
        process("line", {"labels": [], "datasets": [{"label": "x"}]})


def test_chart_configs_are_validated_when_saved():
    bar = types.get("bar")
    assert bar.validate_config({"data": "{{ctx.q}}", "x": "a", "y": ["b"]}) == {}
    assert bar.validate_config({"labels": [], "datasets": []}) == {}
    assert bar.validate_config({}) == {"datasets": ["Give either labels + datasets, or data + x + y."]}
    assert bar.validate_config({"data": [], "x": "a"}) == {"y": ["This field is required."]}
    assert bar.validate_config({"data": [], "x": "a", "y": 3}) == {
        "y": ["The name of a field, or a list of names."]
    }


def test_table():
    out = process("table", {"rows": ROWS})
    assert out == {
        "columns": [
            {"field": "month", "label": "month"},
            {"field": "sales", "label": "sales"},
            {"field": "cost", "label": "cost"},
        ],
        "rows": ROWS,
        "page_size": 25,
        "total": 2,
    }
    lists = process("table", {"rows": [["a", 1]], "columns": ["name", {"field": "n", "label": "N"}]})
    assert lists["rows"] == [{"name": "a", "n": 1}] and lists["columns"][1] == {"field": "n", "label": "N"}
    with pytest.raises(WidgetDataError, match="rows that are not objects need columns"):
        process("table", {"rows": [[1, 2]]})
    assert types.get("table").validate_config({"page_size": 0}) == {
        "rows": ["This field is required."],
        "page_size": ["An integer from 1 to 1000."],
    }


def test_stat_and_raw():
    assert process("stat", {"value": 12.5, "label": "Revenue", "delta": -2}) == {
        "value": 12.5,
        "label": "Revenue",
        "delta": -2,
    }
    with pytest.raises(WidgetDataError, match="value must be a number or a text, not list"):
        process("stat", {"value": [1]})
    with pytest.raises(WidgetDataError, match="value must be a number or a text, not bool"):
        process("stat", {"value": True})
    assert types.get("raw").process({}, {"input": {"a": 1}, "n": 2, "__widgetInput": 3}) == {
        "input": {"a": 1},
        "n": 2,
    }
    assert types.get("raw").process({"data": [1]}, {"n": 2}) == [1]
