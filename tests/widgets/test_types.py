"""The widget type registry: each type's data shaping and its errors (apps/widgets/types)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

from apps.widgets import types
from apps.widgets.types import WidgetDataError

ROWS = [{"month": "Jan", "sales": 3, "cost": 1}, {"month": "Feb", "sales": 5, "cost": 2}]


def process(kind: str, config: dict) -> Any:
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


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("pie", {"data": "x", "x": "a", "y": "b"}, "data must be a list of rows, not str"),
        ("pie", {"data": [{"a": 1}], "x": "a", "y": "sales"}, "row 0 has no field 'sales'; it has: a"),
        ("pie", {"labels": ["a"], "datasets": [{"label": "n"}]}, r"datasets\[0\] needs data"),
        ("radar", {"data": 5, "x": "a", "y": "b"}, "data must be a list of rows, not int"),
        ("radar", {"data": [{"month": "J"}], "x": "month", "y": "sales"}, "row 0 has no field 'sales'"),
        ("radar", {"data": [["J", 1]], "x": "month", "y": "sales"}, "row 0 is not an object"),
        ("bubble", {"data": [{"x": 1, "y": 2}], "x": "x", "y": "y", "r": "r"}, "row 0 has no field 'r'"),
        ("bubble", {"data": "nope"}, "data must be a list of rows, not str"),
        ("bubble", {"data": [1, 2]}, "x must name a field"),
        ("bubble", {"datasets": [{"data": [{"x": 1}]}]}, r"bubble data must be \{x, y\} points"),
        ("text", {"text": ["a"]}, "text must be text, not list"),
        ("text", {"text": {"a": 1}}, "text must be text, not dict"),
    ],
)
def test_malformed_data_gets_a_clear_error(kind: str, config: dict, message: str) -> None:
    with pytest.raises(WidgetDataError, match=message):
        process(kind, config)


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


def elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, attrs))

    Collect().feed(html)
    return found


XSS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">y</a>',
    "<svg onload=alert(1)>",
    '<iframe src="https://evil.example"></iframe>',
    '<p style="background:url(javascript:alert(1))">s</p>',
    '<form action="https://evil.example"><input name=p></form>',
]


def test_text_markdown_and_html():
    assert process("text", {"text": "a <b>\nline"}) == {"text": "a <b>\nline"}  # drawn as text by the page
    md = process(
        "markdown", {"text": "# Title\n\n**bold** and [a link](https://example.com)\n\n|a|b|\n|-|-|\n|1|2|"}
    )
    assert (
        "<h1>Title</h1>" in md["html"]
        and "<strong>bold</strong>" in md["html"]
        and "<td>1</td>" in md["html"]
    )
    assert 'href="https://example.com"' in md["html"] and 'rel="noopener noreferrer"' in md["html"]
    for payload in XSS:
        for kind, field in (("html", "html"), ("markdown", "text")):
            html = process(kind, {field: payload})["html"]
            for tag, attrs in elements(html):  # what a browser would build from it
                assert tag not in ("script", "iframe", "svg", "form", "input", "style"), (kind, payload, html)
                for name, value in attrs:
                    assert not name.startswith("on") and name != "style", (kind, payload, html)
                    assert not (value or "").strip().lower().startswith("javascript:"), (kind, payload, html)
    kept = process(
        "html",
        {"html": '<p class="note">Hi <a href="/t/x/">there</a><img src="https://x/y.png" alt="y"></p>'},
    )
    assert kept["html"] == (
        '<p class="note">Hi <a href="/t/x/" rel="noopener noreferrer">there</a>'
        '<img src="https://x/y.png" alt="y"></p>'
    )
    with pytest.raises(WidgetDataError, match="text must be text"):
        process("markdown", {"text": ["a"]})
    with pytest.raises(WidgetDataError, match="at most"):
        process("html", {"html": "x" * 200_001})
    assert types.get("html").validate_config({}) == {"html": ["This field is required."]}


def test_vega_lite():
    rows = [{"month": "Jan", "revenue": 3}]
    spec = {
        "mark": "bar",
        "data": {"values": rows},
        "encoding": {"x": {"field": "month"}, "y": {"field": "revenue"}},
    }
    assert process("vega-lite", {"spec": spec}) == {"spec": spec}
    with pytest.raises(WidgetDataError, match="only use inline data"):
        process("vega-lite", {"spec": {"mark": "bar", "data": {"url": "https://evil.example/x.csv"}}})
    with pytest.raises(WidgetDataError, match="only use inline data"):
        process(
            "vega-lite",
            {"spec": {"layer": [{"mark": {"type": "image"}, "encoding": {"url": {"value": "x"}}}]}},
        )
    with pytest.raises(WidgetDataError, match="must be a list of rows"):
        process("vega-lite", {"spec": {"mark": "bar", "data": {"values": "oops"}}})
    with pytest.raises(WidgetDataError, match="spec must be an object"):
        process("vega-lite", {"spec": [1]})
    assert types.get("vega-lite").validate_config({"spec": 3}) == {"spec": ["A Vega-Lite spec (an object)."]}


def test_input_controls():
    select = process(
        "select", {"param": "product", "options": ["a", {"value": 2, "label": "Two"}], "label": "P"}
    )
    assert select == {
        "control": "select",
        "label": "P",
        "param": "product",
        "options": [{"value": "a", "label": "a"}, {"value": 2, "label": "Two"}],
        "action": "rerun",
    }
    rows = process("select", {"param": "p", "options": {"rows": ["x"]}})  # a query node's result
    assert rows["options"] == [{"value": "x", "label": "x"}]
    for bad, message in (
        ({"param": "p", "options": "a,b"}, "options must be a list"),
        ({"param": "p", "options": [{"label": "no value"}]}, "needs a value"),
        ({"param": "p", "options": [[1]]}, "an option must be"),
        ({"param": "", "options": []}, "must name an input parameter"),
        ({"param": "p", "options": [], "action": "delete"}, "action must be one of"),
        ({"param": "p", "options": list(range(1001))}, "at most 1,000"),
    ):
        with pytest.raises(WidgetDataError, match=message):
            process("select", bad)
    dates = process("date-range", {"param_from": "since", "param_to": "until"})
    assert dates == {
        "control": "date-range",
        "label": "Dates",
        "param_from": "since",
        "param_to": "until",
        "action": "rerun",
    }
    with pytest.raises(WidgetDataError, match="param_from must name"):
        process("date-range", {"param_from": 3})
    schema = {"type": "object", "properties": {"qty": {"type": "integer"}}}
    form = process("form", {"schema": schema, "action": "send_input"})
    assert form["control"] == "form" and form["action"] == "send_input" and form["schema"] == schema
    with pytest.raises(WidgetDataError, match="with properties"):
        process("form", {"schema": {"type": "object"}})
    assert (
        types.get("form")
        .validate_config({"schema": {"type": 7}})["schema"][0]
        .startswith("Not a valid JSON Schema")
    )
    assert process("button", {"label": "Go", "action": "send_input", "data": {"ok": True}})["data"] == {
        "ok": True
    }
    with pytest.raises(WidgetDataError, match="data must be an object"):
        process("button", {"label": "Go", "data": [1]})
    # what a dashboard declares for its viewers: the parameters the controls set when they re-run
    assert types.get("select").params({"param": "product"}) == ["product"]
    assert types.get("date-range").params({"param_from": "a", "param_to": "b"}) == ["a", "b"]
    assert types.get("form").params({"schema": schema}) == ["qty"]
    assert types.get("form").params({"schema": schema, "action": "send_input"}) == []
