"""Unit tests of the core node types: ``nodes.get(type).run(inputs, ctx)`` with a minimal context.

Pure: no database, no engine. ``inputs`` are given as the engine hands them over (templates already
resolved); ``ctx.data`` is frozen like the engine's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest

from apps.workflows import nodes
from apps.workflows.nodes import base
from apps.workflows.nodes.base import NodeContext, NodeError, StartLoop, Wait, freeze, thaw
from apps.workflows.nodes.core import OPERATORS, compare

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def make_ctx(
    data: Mapping[str, Any] | None = None,
    *,
    state: Mapping[str, Any] | None = None,
    upstream: tuple[str, ...] = (),
    now: dt.datetime | None = NOW,
) -> NodeContext:
    return NodeContext(
        instance_id="inst-1",
        tenant_id="tenant-1",
        node_id="n",
        iteration="",
        attempt=1,
        idempotency_key="inst-1:n:1",
        deadline=None,
        data=freeze(dict(data or {})),
        state=state,
        upstream=upstream,
        now=now,
    )


def run(node_type: str, inputs: dict[str, Any], ctx: NodeContext | None = None) -> Any:
    return nodes.get(node_type).run(inputs, ctx or make_ctx())


def condition(left: Any, operator: str, right: Any = None) -> bool:
    out = run("condition", {"left": left, "operator": operator, "right": right})
    assert set(out) == {"result"}
    return bool(out["result"])


# --- condition: every operator -------------------------------------------------------------------------
CASES: list[tuple[Any, str, Any, bool]] = [
    # equals / not_equals
    (1, "equals", 1, True),
    ("a", "equals", "a", True),
    ("a", "equals", "b", False),
    ("10", "equals", 10, True),  # numeric strings compare numerically
    ("10.0", "equals", "10", True),
    (1.5, "equals", "1.50", True),
    (None, "equals", None, True),
    (None, "equals", "", False),
    ([1, 2], "equals", [1, 2], True),
    ({"a": 1}, "equals", {"a": 1}, True),
    ("abc", "equals", "ABC", False),
    ("10", "not_equals", 10, False),
    ("a", "not_equals", "b", True),
    (None, "not_equals", 0, True),
    # contains / not_contains: substrings, list members, object keys
    ("hello world", "contains", "lo w", True),
    ("hello", "contains", "xyz", False),
    ([1, 2, 3], "contains", 2, True),
    ([1, 2, 3], "contains", 4, False),
    ((1, 2, 3), "contains", 3, True),  # a frozen list from the context
    ({"a": 1}, "contains", "a", True),
    ({"a": 1}, "contains", 1, False),
    (None, "contains", "x", False),
    (12345, "contains", 234, True),
    ("hello", "not_contains", "xyz", True),
    ([1, 2], "not_contains", 2, False),
    # starts_with / ends_with
    ("hello", "starts_with", "he", True),
    ("hello", "starts_with", "lo", False),
    (12345, "starts_with", 12, True),
    ("hello", "ends_with", "lo", True),
    ("hello", "ends_with", "he", False),
    # ordering: numbers (and numeric strings) numerically, the rest as strings
    (10, "greater_than", 9, True),
    ("10", "greater_than", "9", True),  # as strings "10" < "9"
    ("10", "greater_than", 9.5, True),
    (9, "greater_than", 9, False),
    ("b", "greater_than", "a", True),
    ("2024-02-01", "greater_than", "2024-01-31", True),
    (None, "greater_than", 1, False),
    (1, "greater_than", None, False),
    ("9", "less_than", "10", True),
    (10, "less_than", 9, False),
    (None, "less_than", 1, False),
    (5, "greater_or_equal", 5, True),
    ("5", "greater_or_equal", "5.0", True),
    (4, "greater_or_equal", 5, False),
    ("5", "less_or_equal", "5.0", True),
    (6, "less_or_equal", 5, False),
    ("-1", "less_or_equal", 0, True),
    # is_empty / is_not_empty
    ([], "is_empty", None, True),
    ({}, "is_empty", None, True),
    ("", "is_empty", None, True),
    (None, "is_empty", None, True),
    ((), "is_empty", None, True),
    (MappingProxyType({}), "is_empty", None, True),
    ([0], "is_empty", None, False),
    ("0", "is_empty", None, False),
    (0, "is_empty", None, False),
    (False, "is_empty", None, False),
    (" ", "is_empty", None, False),
    ([], "is_not_empty", None, False),
    ({"a": None}, "is_not_empty", None, True),
    (None, "is_not_empty", None, False),
    # matches_regex (search, not fullmatch)
    ("order-123", "matches_regex", r"\d+", True),
    ("order", "matches_regex", r"^\d+$", False),
    ("abc", "matches_regex", "^b", False),
    (42, "matches_regex", "^4", True),
    ("ABC", "matches_regex", "(?i)abc", True),
]


@pytest.mark.parametrize(("left", "operator", "right", "expected"), CASES)
def test_condition_operators(left: Any, operator: str, right: Any, expected: bool) -> None:
    assert condition(left, operator, right) is expected
    assert compare(left, operator, right) is expected


def test_every_contract_operator_is_covered() -> None:
    assert {op for _, op, _, _ in CASES} == set(OPERATORS)
    assert set(OPERATORS) == {
        "equals",
        "not_equals",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
        "greater_than",
        "less_than",
        "greater_or_equal",
        "less_or_equal",
        "is_empty",
        "is_not_empty",
        "matches_regex",
    }


def test_booleans_do_not_equal_numbers() -> None:
    assert condition(True, "equals", 1) is False
    assert condition(False, "equals", 0) is False


@pytest.mark.parametrize("pattern", ["(", "[a-", "*x", "(?P<1>x)"])
def test_matches_regex_with_a_bad_pattern_raises_node_error(pattern: str) -> None:
    with pytest.raises(NodeError) as info:
        condition("abc", "matches_regex", pattern)
    assert info.value.code == "bad_input"
    assert "regular expression" in info.value.message
    assert pattern in info.value.message


def test_matches_regex_refuses_a_long_pattern() -> None:
    with pytest.raises(NodeError) as info:
        condition("abc", "matches_regex", "a" * 501)
    assert info.value.code == "bad_input"
    assert "500" in info.value.message
    assert condition("a" * 10, "matches_regex", "a" * 500) is False


def test_unknown_operator_raises_node_error() -> None:
    with pytest.raises(NodeError) as info:
        condition(1, "eq", 1)
    assert info.value.code == "bad_input"
    assert "'eq'" in info.value.message
    assert "equals" in info.value.message


def test_condition_with_branches_takes_the_first_that_holds() -> None:
    inputs = {
        "branches": [
            {"id": "big", "left": 50, "operator": "greater_than", "right": 100},
            {"id": "medium", "left": 50, "operator": "greater_than", "right": 10},
            {"id": "small", "left": 50, "operator": "greater_than", "right": 0},  # also holds
        ]
    }
    out = run("condition", inputs)
    assert out == {"result": True, "branch": "medium"}
    assert nodes.get("condition").route(out, inputs) == "medium"


def test_condition_with_branches_none_holds_takes_default() -> None:
    inputs = {"branches": [{"id": "x", "left": None, "operator": "is_not_empty"}]}
    out = run("condition", inputs)
    assert out == {"result": False, "branch": "default"}
    assert nodes.get("condition").route(out, inputs) == "default"


def test_condition_with_no_branches_takes_default() -> None:
    inputs: dict[str, Any] = {"branches": []}
    out = run("condition", inputs)
    assert nodes.get("condition").route(out, inputs) == "default"


def test_condition_route_true_false() -> None:
    cond = nodes.get("condition")
    inputs = {"left": 3, "operator": "less_than", "right": 4}
    out = run("condition", inputs)
    assert out == {"result": True}
    assert cond.route(out, inputs) == "true"
    assert cond.route({"result": False}, inputs) == "false"


# --- switch -------------------------------------------------------------------------------------------
SWITCH = {
    "cases": [
        {"id": "one", "value": 1},
        {"id": "text", "operator": "starts_with", "value": "ab"},
        {"id": "big", "operator": "greater_than", "value": 100},
        {"id": "also_one", "value": 1},
    ]
}


@pytest.mark.parametrize(
    ("value", "matched"),
    [
        (1, "one"),
        ("1", "one"),
        (1.0, "one"),
        (500, "big"),
        ("abc", "text"),
        ("zz", "big"),  # a string against a number compares as strings: "zz" > "100"
        (50, "default"),
        (None, "default"),
    ],
)
def test_switch_takes_the_first_matching_case_or_default(value: Any, matched: str) -> None:
    inputs = {"value": value, **SWITCH}
    out = run("switch", inputs)
    assert out == {"matched": matched}
    assert nodes.get("switch").route(out, inputs) == matched


def test_switch_without_cases_matching_takes_default() -> None:
    assert run("switch", {"value": 1, "cases": []}) == {"matched": "default"}


# --- transform ----------------------------------------------------------------------------------------
PEOPLE = [
    {"name": "ann", "team": "b", "age": 31, "addr": {"city": "Oslo"}},
    {"name": "bob", "team": "a", "age": 25, "addr": {"city": "Rome"}},
    {"name": "cy", "team": "b", "age": None, "addr": {"city": "Oslo"}},
    {"name": "dee", "team": "a", "age": 40, "addr": None},
    {"name": "eve", "team": "b", "age": "9", "addr": {"city": "Lima"}},
]


def transform(**inputs: Any) -> list[dict[str, Any]]:
    out = run("transform", {"data": PEOPLE, **inputs})
    assert set(out) == {"result"}
    return out["result"]


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [r["name"] for r in rows]


def test_transform_without_options_returns_the_rows() -> None:
    assert transform() == PEOPLE


def test_transform_filter() -> None:
    assert names(transform(filter=[{"field": "age", "operator": "greater_than", "value": 30}])) == [
        "ann",
        "dee",
    ]
    assert names(transform(filter=[{"field": "age", "operator": "less_than", "value": "10"}])) == ["eve"]
    both = [
        {"field": "team", "operator": "equals", "value": "b"},
        {"field": "addr.city", "operator": "equals", "value": "Oslo"},
    ]
    assert names(transform(filter=both)) == ["ann", "cy"]
    assert names(transform(filter=[{"field": "age", "operator": "is_empty"}])) == ["cy"]
    assert names(transform(filter=[{"field": "missing", "operator": "is_empty"}])) == names(PEOPLE)


def test_transform_select_keeps_listed_fields_even_missing_ones() -> None:
    assert transform(select=["name", "addr.city", "nope"], limit=2) == [
        {"name": "ann", "addr.city": "Oslo", "nope": None},
        {"name": "bob", "addr.city": "Rome", "nope": None},
    ]


def test_transform_rename() -> None:
    rows = transform(select=["name", "team"], rename={"name": "who", "ghost": "x"})
    assert rows[0] == {"who": "ann", "team": "b"}
    assert all(set(r) == {"who", "team"} for r in rows)


def test_transform_sort_single_key_numbers_numerically_none_last() -> None:
    assert names(transform(sort=[{"field": "age"}])) == ["eve", "bob", "ann", "dee", "cy"]


def test_transform_sort_multi_key_with_desc() -> None:
    rows = transform(sort=[{"field": "team"}, {"field": "name", "desc": True}])
    assert names(rows) == ["dee", "bob", "eve", "cy", "ann"]
    rows = transform(sort=[{"field": "team", "desc": True}, {"field": "addr.city"}, {"field": "name"}])
    assert names(rows) == ["eve", "ann", "cy", "bob", "dee"]


def test_transform_sort_is_stable() -> None:
    rows = transform(sort=[{"field": "team"}])
    assert names(rows) == ["bob", "dee", "ann", "cy", "eve"]


def test_transform_sort_strings_after_numbers() -> None:
    data = [{"v": "b"}, {"v": 2}, {"v": None}, {"v": "a"}, {"v": 10}]
    out = run("transform", {"data": data, "sort": [{"field": "v"}]})["result"]
    assert [r["v"] for r in out] == [2, 10, "a", "b", None]


def test_transform_sort_desc_keeps_none_last() -> None:
    assert names(transform(sort=[{"field": "age", "desc": True}]))[-1] == "cy"


def test_transform_limit() -> None:
    assert names(transform(limit=2)) == ["ann", "bob"]
    assert transform(limit=0) == []
    assert len(transform(limit=100)) == len(PEOPLE)


def test_transform_pipeline_order_filter_sort_limit_select_rename() -> None:
    rows = transform(
        filter=[{"field": "team", "operator": "equals", "value": "b"}],
        sort=[{"field": "name", "desc": True}],
        limit=2,
        select=["name", "age"],
        rename={"age": "years"},
    )
    assert rows == [{"name": "eve", "years": "9"}, {"name": "cy", "years": None}]


def test_transform_accepts_frozen_context_data_and_returns_plain_rows() -> None:
    frozen = freeze({"rows": PEOPLE})["rows"]
    out = run(
        "transform", {"data": frozen, "filter": [{"field": "name", "operator": "equals", "value": "ann"}]}
    )
    assert out == {"result": [PEOPLE[0]]}
    row = out["result"][0]
    assert type(row) is dict
    assert type(row["addr"]) is dict


def test_transform_does_not_mutate_its_data() -> None:
    data = [{"a": 2}, {"a": 1}]
    run("transform", {"data": data, "sort": [{"field": "a"}], "rename": {"a": "b"}})
    assert data == [{"a": 2}, {"a": 1}]


@pytest.mark.parametrize(
    ("data", "message"),
    [("rows", "must be a list of objects, got str"), (None, "NoneType"), ([{"a": 1}, 5], "`data[1]`")],
)
def test_transform_bad_data_raises_node_error(data: Any, message: str) -> None:
    with pytest.raises(NodeError) as info:
        run("transform", {"data": data})
    assert info.value.code == "bad_input"
    assert message in info.value.message


def test_data_nodes_are_not_retryable() -> None:
    assert nodes.get("transform").retryable is False
    assert nodes.get("aggregate").retryable is False
    assert nodes.get("delay").retryable is True


# --- aggregate ----------------------------------------------------------------------------------------
SALES = [
    {"region": "eu", "shop": "x", "amount": 10, "items": 1},
    {"region": "us", "shop": "y", "amount": 2.5, "items": None},
    {"region": "eu", "shop": "z", "amount": 5, "items": 3},
    {"region": "us", "shop": "y", "amount": None, "items": 2},
    {"region": "eu", "shop": "x", "amount": "7", "items": 4},
]
ALL_METRICS = [
    {"field": "amount", "op": "sum"},
    {"field": "amount", "op": "avg"},
    {"op": "count"},
    {"field": "items", "op": "count"},
    {"field": "amount", "op": "min"},
    {"field": "amount", "op": "max"},
]


def aggregate(data: Any = None, **inputs: Any) -> list[dict[str, Any]]:
    out = run("aggregate", {"data": SALES if data is None else data, **inputs})
    assert set(out) == {"result"}
    return out["result"]


def test_aggregate_group_by_with_every_metric() -> None:
    assert aggregate(group_by=["region"], metrics=ALL_METRICS) == [
        {
            "region": "eu",
            "sum_amount": 22.0,  # "7" counts as a number; the sum is then a float
            "avg_amount": 22 / 3,
            "count": 3,
            "count_items": 3,
            "min_amount": 5,
            "max_amount": 10,
        },
        {
            "region": "us",
            "sum_amount": 2.5,
            "avg_amount": 2.5,  # None is left out
            "count": 2,
            "count_items": 1,  # count(field) counts non-null values
            "min_amount": 2.5,
            "max_amount": 2.5,
        },
    ]


def test_aggregate_without_group_by_is_one_group() -> None:
    assert aggregate(metrics=[{"op": "count"}, {"field": "items", "op": "max"}]) == [
        {"count": 5, "max_items": 4}
    ]


def test_aggregate_sum_of_ints_is_an_int() -> None:
    rows = aggregate(data=[{"n": 1}, {"n": 2}], metrics=[{"field": "n", "op": "sum"}])
    assert rows == [{"sum_n": 3}]
    assert type(rows[0]["sum_n"]) is int


def test_aggregate_as_names() -> None:
    rows = aggregate(
        group_by=["region", "shop"],
        metrics=[{"field": "amount", "op": "max", "as": "top"}, {"op": "count", "as": "n"}],
    )
    assert rows == [
        {"region": "eu", "shop": "x", "top": 10, "n": 2},  # 10 > "7", compared as numbers
        {"region": "us", "shop": "y", "top": 2.5, "n": 2},
        {"region": "eu", "shop": "z", "top": 5, "n": 1},
    ]


def test_aggregate_min_max_compare_numeric_strings_numerically() -> None:
    rows = aggregate(
        data=[{"v": "10"}, {"v": "9"}, {"v": "100"}],
        metrics=[{"field": "v", "op": "min"}, {"field": "v", "op": "max"}],
    )
    assert rows == [{"min_v": "9", "max_v": "100"}]


def test_aggregate_group_by_a_nested_and_an_unhashable_field() -> None:
    data = [
        {"k": {"a": [1]}, "t": {"c": 1}},
        {"k": {"a": [1]}, "t": {"c": 1}},
        {"k": {"a": [2]}, "t": {"c": 2}},
    ]
    rows = aggregate(data=data, group_by=["k", "t.c"], metrics=[{"op": "count"}])
    assert rows == [{"k": {"a": [1]}, "t.c": 1, "count": 2}, {"k": {"a": [2]}, "t.c": 2, "count": 1}]


def test_aggregate_of_empty_data() -> None:
    assert aggregate(data=[], group_by=["region"], metrics=[{"op": "count"}]) == []
    assert aggregate(data=[], metrics=[{"op": "count"}, {"field": "amount", "op": "avg"}]) == [
        {"count": 0, "avg_amount": None}
    ]
    assert aggregate(data=[], metrics=[{"field": "a", "op": "min"}, {"field": "a", "op": "max"}]) == [
        {"min_a": None, "max_a": None}
    ]


def test_aggregate_avg_of_a_group_without_values_is_none() -> None:
    rows = aggregate(
        data=[{"g": 1, "v": None}, {"g": 2, "v": 4}], group_by=["g"], metrics=[{"field": "v", "op": "avg"}]
    )
    assert rows == [{"g": 1, "avg_v": None}, {"g": 2, "avg_v": 4.0}]


@pytest.mark.parametrize(
    "data",
    [[], [{"g": 1, "v": None}]],
    ids=["empty-data", "only-nulls"],
)
def test_aggregate_sum_of_no_values_is_zero(data: list[dict[str, Any]]) -> None:
    assert aggregate(data=data, metrics=[{"field": "v", "op": "sum"}]) == [{"sum_v": 0}]


@pytest.mark.parametrize("op", ["sum", "avg"])
def test_aggregate_non_number_raises_a_clear_node_error(op: str) -> None:
    with pytest.raises(NodeError) as info:
        aggregate(data=[{"v": 1}, {"v": "abc"}], metrics=[{"field": "v", "op": op}])
    assert info.value.code == "bad_input"
    for part in (op, "'v'", "'abc'", "not a number"):
        assert part in info.value.message


def test_aggregate_booleans_are_not_numbers() -> None:
    with pytest.raises(NodeError, match="True"):
        aggregate(data=[{"v": True}], metrics=[{"field": "v", "op": "sum"}])


def test_aggregate_bad_data_raises_node_error() -> None:
    with pytest.raises(NodeError, match="must be a list"):
        aggregate(data={"a": 1}, metrics=[{"op": "count"}])


def test_aggregate_validate_inputs_wants_a_field_except_for_count() -> None:
    agg = nodes.get("aggregate")
    assert agg.validate_inputs({"metrics": [{"op": "count"}]}) == []
    assert agg.validate_inputs({"metrics": [{"op": "count"}, {"op": "max"}]}) == [
        ("metrics[1].field", "The 'max' metric needs a field.")
    ]


# --- loop, delay, join, start, end, fanout --------------------------------------------------------------
def test_loop_returns_start_loop() -> None:
    assert run("loop", {"items": [1, 2, 3], "concurrency": 2}) == StartLoop(items=[1, 2, 3], concurrency=2)
    assert run("loop", {"items": []}) == StartLoop(items=[], concurrency=1)


def test_loop_accepts_a_frozen_list() -> None:
    directive = run("loop", {"items": freeze([{"a": 1}, 2])})
    assert isinstance(directive, StartLoop)
    assert isinstance(directive.items, list)
    assert len(directive.items) == 2


def test_loop_max_iterations() -> None:
    assert run("loop", {"items": [1, 2], "max_iterations": 2}).items == [1, 2]
    with pytest.raises(NodeError) as info:
        run("loop", {"items": [1, 2, 3], "max_iterations": 2})
    assert info.value.code == "too_many_items"
    assert "3 items" in info.value.message
    assert "max_iterations=2" in info.value.message
    with pytest.raises(NodeError, match="max_iterations=0"):
        run("loop", {"items": [1], "max_iterations": 0})


def test_loop_default_max_iterations_is_1000() -> None:
    assert len(run("loop", {"items": list(range(1000))}).items) == 1000
    with pytest.raises(NodeError, match="1001 items"):
        run("loop", {"items": list(range(1001))})


def test_delay_waits_first_then_reports_the_wait() -> None:
    first = run("delay", {"seconds": 90}, make_ctx(now=NOW))
    assert isinstance(first, Wait)
    assert first.until == NOW + dt.timedelta(seconds=90)
    assert first.state == {"until": first.until.isoformat(), "started": NOW.isoformat()}
    later = NOW + dt.timedelta(seconds=91.25)
    again = run("delay", {"seconds": 90}, make_ctx(now=later, state=first.state))
    assert again == {"waited_s": 91.25}


def test_delay_of_zero_and_fractional_seconds() -> None:
    assert run("delay", {"seconds": 0}).until == NOW
    assert run("delay", {"seconds": 0.5}).until == NOW + dt.timedelta(milliseconds=500)


def test_delay_without_now_uses_the_clock() -> None:
    before = dt.datetime.now(dt.UTC)
    directive = run("delay", {"seconds": 10}, make_ctx(now=None))
    assert (
        before + dt.timedelta(seconds=10)
        <= directive.until
        <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)
    )


def test_join_maps_upstream_ids_to_their_outputs() -> None:
    ctx = make_ctx(
        {"input": {"x": 1}, "a": {"rows": [1, 2]}, "b": [{"k": "v"}], "c": None, "other": 5},
        upstream=("a", "b", "c", "skipped_one"),
    )
    out = run("join", {"mode": "all"}, ctx)
    assert out == {"a": {"rows": [1, 2]}, "b": [{"k": "v"}], "c": None}
    assert type(out["a"]) is dict  # thawed, not read-only views
    assert type(out["a"]["rows"]) is list
    assert type(out["b"]) is list


def test_join_without_upstream_is_empty() -> None:
    assert run("join", {}, make_ctx({"a": 1})) == {}


def test_start_returns_the_input_and_end_its_output() -> None:
    assert run("start", {}, make_ctx({"input": {"since": "2024"}})) == {"since": "2024"}
    assert run("start", {}, make_ctx({})) == {}
    assert run("end", {"output": [1, {"a": 2}]}) == [1, {"a": 2}]
    assert run("end", {}) is None
    assert run("fanout", {"value": 3}) == {"value": 3}
    assert run("fanout", {}) == {"value": None}


# --- handles and routes ---------------------------------------------------------------------------------
def test_condition_handles_and_routes() -> None:
    cond = nodes.get("condition")
    plain = {"left": 1, "operator": "equals", "right": 1}
    assert cond.handles_for(plain) == ("true", "false")
    assert cond.default_handle(plain) is None
    assert cond.continue_route(plain) == "false"
    branches = {"branches": [{"id": "x", "operator": "is_empty"}, {"id": "y", "operator": "is_empty"}]}
    assert cond.handles_for(branches) == ("x", "y", "default")
    assert cond.default_handle(branches) is None
    assert cond.continue_route(branches) == "default"
    assert cond.route({"result": True, "branch": "y"}, branches) == "y"


def test_switch_handles_and_routes() -> None:
    sw = nodes.get("switch")
    assert sw.handles_for(SWITCH) == ("one", "text", "big", "also_one", "default")
    assert sw.handles_for({}) == ("default",)
    assert sw.handles_for({"cases": "{{a.cases}}"}) == ("default",)
    assert sw.default_handle(SWITCH) is None
    assert sw.default_handle({"cases": []}) is None  # even with a single handle
    assert sw.continue_route(SWITCH) == "default"
    assert sw.route({"matched": "big"}, SWITCH) == "big"


def test_loop_handles_and_routes() -> None:
    loop = nodes.get("loop")
    assert loop.handles_for({"items": []}) == ("loop", "completed")
    assert loop.default_handle({"items": []}) is None
    assert loop.route({"results": []}, {"items": []}) == "completed"
    assert loop.continue_route({"items": []}) == "completed"


def test_end_handles_and_routes() -> None:
    end = nodes.get("end")
    assert end.handles_for({}) == ()
    assert end.default_handle({}) is None
    assert end.route(None, {}) == "output"
    assert end.continue_route({}) == "output"


@pytest.mark.parametrize("node_type", ["start", "fanout", "join", "delay", "transform", "aggregate"])
def test_single_handle_types_default_to_output(node_type: str) -> None:
    node_type_ = nodes.get(node_type)
    assert node_type_.handles_for({}) == ("output",)
    assert node_type_.default_handle({}) == "output"
    assert node_type_.route({}, {}) == "output"
    assert node_type_.continue_route({}) == "output"


def test_describe_lists_the_schemas_and_handles() -> None:
    described = nodes.get("loop").describe()
    assert described["type"] == "loop"
    assert described["handles"] == ["loop", "completed"]
    assert set(described["inputs_schema"]["properties"]) >= {"items", "while", "max_iterations"}
    assert set(described) >= {"type", "name", "category", "inputs_schema", "outputs_schema", "handles"}


def test_core_types_are_registered() -> None:
    assert {
        "start",
        "end",
        "condition",
        "switch",
        "fanout",
        "join",
        "loop",
        "delay",
        "transform",
        "aggregate",
    } <= set(nodes.REGISTRY)


# --- registry -----------------------------------------------------------------------------------------
class _Echo(nodes.NodeType):
    type = "test_echo"
    name = "Echo"
    handles = ("left", "right")

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        return {"echo": inputs}


class _Other(nodes.NodeType):
    type = "test_other"
    name = "Other"


class _DuplicateStart(nodes.NodeType):
    type = "start"
    name = "Not the real start"


def test_registered_adds_and_removes_a_temporary_type() -> None:
    with pytest.raises(base.UnknownNodeType):
        nodes.get("test_echo")
    with nodes.registered(_Echo, _Other):
        echo = nodes.get("test_echo")
        assert isinstance(echo, _Echo)
        assert isinstance(nodes.get("test_other"), _Other)
        assert echo.run({"a": 1}, make_ctx()) == {"echo": {"a": 1}}
        assert echo.default_handle({}) is None  # two handles
        assert echo.continue_route({}) == "left"
        assert "test_echo" in base.UnknownNodeType("zzz").message
    with pytest.raises(base.UnknownNodeType) as info:
        nodes.get("test_echo")
    assert "test_echo" not in info.value.message.split("known types:")[1]
    assert "start" in info.value.message
    assert "test_other" not in nodes.REGISTRY


def test_registered_removes_the_type_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), nodes.registered(_Echo):
        assert "test_echo" in nodes.REGISTRY
        raise RuntimeError("boom")
    assert "test_echo" not in nodes.REGISTRY


def test_registering_a_type_twice_is_refused_and_keeps_the_original() -> None:
    original = nodes.get("start")
    with pytest.raises(ValueError, match="registered twice"), nodes.registered(_DuplicateStart):
        pass
    assert nodes.get("start") is original


def test_registered_cleans_up_when_a_later_class_fails() -> None:
    try:
        with pytest.raises(ValueError), nodes.registered(_Other, _DuplicateStart):
            pass
        assert "test_other" not in nodes.REGISTRY
    finally:
        nodes.REGISTRY.pop("test_other", None)


def test_unknown_node_type_message() -> None:
    with pytest.raises(base.UnknownNodeType) as info:
        nodes.get("teleport")
    assert str(info.value) == info.value.message
    assert "'teleport'" in info.value.message
    assert "condition" in info.value.message


# --- base helpers -------------------------------------------------------------------------------------
def test_node_error_defaults() -> None:
    err = NodeError("nope")
    assert (err.message, err.code, err.retryable, str(err)) == ("nope", "node_error", True, "nope")


def test_freeze_is_read_only_and_thaw_gives_plain_values() -> None:
    value = {"a": [1, {"b": 2}], "c": None}
    frozen = freeze(value)
    with pytest.raises(TypeError):
        frozen["a"] = 1
    assert isinstance(frozen["a"], tuple)
    assert thaw(frozen) == value
    assert type(thaw(frozen)["a"][1]) is dict
