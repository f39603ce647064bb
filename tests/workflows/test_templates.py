"""Template resolution (CONTRACT "Workflows": templates). Pure: no database."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.workflows.engine import templates as t
from apps.workflows.engine.templates import Reference, TemplateError

CONTEXT: dict[str, Any] = {
    "input": {"x": 7, "name": "Ada", "since": "2024-01-01"},
    "query_1": {
        "result": [{"id": 1, "tags": ["a", "b"]}, {"id": 2, "tags": []}],
        "row_count": 2,
        "meta": {"odd key": 1, "it's": 2, 'say "hi"': 3, "0": "zero"},
        "nothing": None,
        "flag": False,
        "ratio": 0.5,
    },
    "loop": {"item": {"sku": "X-1"}, "index": 3},
}


def resolve(value: Any, **kwargs: Any) -> Any:
    return t.resolve(value, CONTEXT, node_id="me", field="f", **kwargs)


def error_of(value: Any, context: dict[str, Any] | None = None, **kwargs: Any) -> str:
    """Resolve ``value``, which must fail, and return the message."""
    with pytest.raises(TemplateError) as info:
        t.resolve(value, CONTEXT if context is None else context, **kwargs)
    return str(info.value)


# --- roots and paths ---------------------------------------------------------------------------------
def test_input_reference() -> None:
    assert resolve("{{input.x}}") == 7
    assert resolve("{{input.name}}") == "Ada"


def test_node_reference_equals_ctx_reference() -> None:
    for path in ("row_count", "result[0].id", "result[1].tags", "meta", "result"):
        assert resolve(f"{{{{query_1.{path}}}}}") == resolve(f"{{{{ctx.query_1.{path}}}}}")
    assert resolve("{{ctx.query_1.row_count}}") == 2
    assert resolve("{{ctx.input.x}}") == 7


def test_loop_reference() -> None:
    assert resolve("{{loop.item.sku}}") == "X-1"
    assert resolve("{{loop.index}}") == 3


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("query_1.result[0].id", 1),
        ("query_1.result[1].id", 2),
        ("query_1.result.0.id", 1),  # .0 works as an index too
        ("query_1.result[0].tags[1]", "b"),
        ('query_1.meta["odd key"]', 1),
        ("query_1.meta['odd key']", 1),
        ("query_1.meta['it\\'s']", 2),
        ('query_1.meta["say \\"hi\\""]', 3),
        ('query_1["meta"]["0"]', "zero"),
        ("query_1['result'][0]['tags'][0]", "a"),
        ("query_1.meta.0", "zero"),  # a numeric key on an object is looked up as a string
    ],
)
def test_path_syntax(expression: str, expected: Any) -> None:
    assert resolve("{{" + expression + "}}") == expected


@pytest.mark.parametrize(
    "value",
    ["{{ input.x }}", "{{input.x }}", "{{  input.x}}", "{{\tinput.x\n}}", "  {{ input.x }}  "],
)
def test_whitespace_inside_braces_and_around_a_single_expression(value: str) -> None:
    assert resolve(value) == 7


# --- types ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expression", "expected", "kind"),
    [
        ("{{query_1.result}}", CONTEXT["query_1"]["result"], list),
        ("{{query_1.row_count}}", 2, int),
        ("{{query_1.meta}}", CONTEXT["query_1"]["meta"], dict),
        ("{{query_1.nothing}}", None, type(None)),
        ("{{query_1.flag}}", False, bool),
        ("{{query_1.ratio}}", 0.5, float),
        ("{{input.name}}", "Ada", str),
        ("{{query_1.result[1].tags}}", [], list),
    ],
)
def test_a_single_expression_keeps_its_type(expression: str, expected: Any, kind: type) -> None:
    value = resolve(expression)
    assert value == expected
    assert type(value) is kind


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Hello {{input.name}}!", "Hello Ada!"),
        ("n={{query_1.row_count}}", "n=2"),
        ("m={{query_1.meta}}", "m=" + json.dumps(CONTEXT["query_1"]["meta"], ensure_ascii=False)),
        ("r={{query_1.result[1]}}", 'r={"id": 2, "tags": []}'),
        ("{{input.x}}{{input.x}}", "77"),
        ("{{input.name}} and {{ctx.input.name}}", "Ada and Ada"),
        ("none={{query_1.nothing}}", "none=null"),
        ("flag={{query_1.flag}}", "flag=false"),
        ("ratio={{query_1.ratio}}", "ratio=0.5"),
        ("no templates here", "no templates here"),
        ("", ""),
    ],
)
def test_mixed_text_stringifies(value: str, expected: str) -> None:
    assert resolve(value) == expected


def test_dict_stringified_in_text_is_json() -> None:
    text = resolve("data: {{query_1.result[0]}}")
    assert json.loads(text.removeprefix("data: ")) == {"id": 1, "tags": ["a", "b"]}


def test_non_strings_pass_through() -> None:
    for value in (1, 2.5, True, None, [], {}):
        assert resolve(value) == value


def test_dicts_and_lists_resolve_recursively() -> None:
    value = {
        "since": "{{input.since}}",
        "rows": "{{query_1.result}}",
        "nested": [{"n": "{{query_1.row_count}}"}, "x{{input.x}}", 3, None, ["{{loop.index}}"]],
        "plain": "text",
    }
    assert resolve(value) == {
        "since": "2024-01-01",
        "rows": CONTEXT["query_1"]["result"],
        "nested": [{"n": 2}, "x7", 3, None, [3]],
        "plain": "text",
    }


def test_resolved_values_are_not_resolved_again() -> None:
    context = {"input": {"x": "{{input.secret}}", "secret": "s3cr3t"}}
    assert t.resolve("{{input.x}}", context) == "{{input.secret}}"
    assert t.resolve("a {{input.x}} b", context) == "a {{input.secret}} b"
    assert t.resolve({"k": ["{{input.x}}"]}, context) == {"k": ["{{input.secret}}"]}


def test_resolve_does_not_mutate_its_input() -> None:
    value = {"a": ["{{input.x}}"]}
    resolve(value)
    assert value == {"a": ["{{input.x}}"]}


# --- errors --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "expression",
    ["query_1.result[-1]", "query_1.result[2]", "query_1.result[99].id", "query_1.result.5"],
)
def test_negative_or_out_of_range_index_is_an_error(expression: str) -> None:
    error_of("{{" + expression + "}}", node_id="me", field="f")


def test_out_of_range_index_error_shows_the_indexes() -> None:
    message = error_of("{{query_1.result[2]}}", node_id="me", field="f")
    assert "indexes 0..1" in message


@pytest.mark.parametrize(
    "path",
    [
        "__class__",
        "__init__",
        "__proto__",
        "prototype",
        "constructor",
        "meta['__proto__']",
        'meta["constructor"]',
        "meta.prototype.x",
        "result[0].__dict__",
    ],
)
def test_dunder_and_prototype_path_parts_are_refused(path: str) -> None:
    expression = "{{query_1." + path + "}}"
    with pytest.raises(TemplateError, match="not allowed"):
        resolve(expression)
    with pytest.raises(TemplateError, match="not allowed"):
        t.references(expression)
    with pytest.raises(TemplateError, match="not allowed"):
        t.parse(expression[2:-2])


@pytest.mark.parametrize("root", ["__proto__", "constructor", "prototype", "__builtins__", "ctx.__class__"])
def test_forbidden_roots_are_refused(root: str) -> None:
    with pytest.raises(TemplateError, match="not allowed"):
        t.parse(f"{root}.x")


def test_refused_even_when_the_key_exists() -> None:
    context = {"n": {"constructor": 1, "__proto__": 2}}
    for key in ("constructor", "__proto__"):
        assert "not allowed" in error_of("{{n." + key + "}}", context)


def test_missing_key_error_names_node_field_expression_and_available_keys() -> None:
    message = error_of("{{query_1.rows}}", node_id="chart_data", field="params.rows")
    assert "chart_data" in message  # the node
    assert "params.rows" in message  # the input field
    assert "{{query_1.rows}}" in message  # the expression
    for key in ("result", "row_count", "meta", "nothing"):  # what does exist
        assert key in message


def test_missing_nested_key_error_names_where_it_stopped() -> None:
    message = error_of("{{query_1.result[0].name}}", node_id="n1", field="data")
    assert "n1" in message
    assert "'data'" in message
    assert "{{query_1.result[0].name}}" in message
    assert "query_1.result[0]" in message
    assert "id" in message
    assert "tags" in message


def test_missing_root_error_lists_the_context() -> None:
    message = error_of("{{ghost.x}}", node_id="n1", field="value")
    assert "'ghost'" in message
    assert "n1" in message
    assert "value" in message
    for root in ("input", "query_1", "loop"):
        assert root in message


def test_field_name_of_a_nested_value_in_errors() -> None:
    message = error_of({"params": {"rows": ["ok", "{{query_1.nope}}"]}}, node_id="n1")
    assert "params.rows[1]" in message
    assert "n1" in message


def test_path_through_a_scalar_is_an_error() -> None:
    message = error_of("{{query_1.row_count.x}}", node_id="n", field="f")
    assert "int" in message
    message = error_of("{{query_1.nothing.x}}", node_id="n", field="f")
    assert "NoneType" in message


def test_empty_containers_say_so() -> None:
    assert "empty" in error_of("{{n.x}}", {"n": {}}, node_id="n", field="f")
    assert "empty" in error_of("{{n[0]}}", {"n": []}, node_id="n", field="f")


@pytest.mark.parametrize(
    "value",
    [
        "{{}}",
        "{{ }}",
        "{{1abc}}",
        "{{input.}}",
        "{{input..x}}",
        "{{input[x]}}",
        "{{ctx}}",
        "{{ctx[0]}}",
        "{{input.x + 1}}",
        "{{input['x}}",
        "a {{ input x }} b",
    ],
)
def test_unparseable_expressions_are_errors(value: str) -> None:
    error_of(value)


def test_key_listing_is_capped() -> None:
    context = {"n": {f"k{i:03}": i for i in range(100)}}
    message = error_of("{{n.missing}}", context, node_id="n", field="f")
    assert "k000" in message
    assert f"k{t.MAX_KEYS_SHOWN - 1:03}" in message
    assert f"k{t.MAX_KEYS_SHOWN:03}" not in message


# --- references ---------------------------------------------------------------------------------------
def test_references_strip_ctx_and_walk_containers() -> None:
    refs = t.references(
        {
            "a": "{{ctx.query_1.result[0].id}}",
            "b": ["x {{input.since}} y {{ loop.item }}", {"c": "{{other['k']}}"}],
            "d": 5,
            "e": None,
        }
    )
    assert refs == [
        Reference(expression="ctx.query_1.result[0].id", root="query_1", path=("result", 0, "id")),
        Reference(expression="input.since", root="input", path=("since",)),
        Reference(expression="loop.item", root="loop", path=("item",)),
        Reference(expression="other['k']", root="other", path=("k",)),
    ]


def test_references_of_plain_values_are_empty() -> None:
    assert t.references("no braces") == []
    assert t.references(42) == []
    assert t.references({"a": [1, {"b": None}]}) == []


def test_parse_ctx_and_plain_forms_agree() -> None:
    plain, via_ctx = t.parse("n.a[0]['b']"), t.parse("ctx.n.a[0]['b']")
    assert (plain.root, plain.path) == (via_ctx.root, via_ctx.path) == ("n", ("a", 0, "b"))


def test_is_dynamic() -> None:
    assert t.is_dynamic("{{input.x}}")
    assert t.is_dynamic("a {{ b")
    assert not t.is_dynamic("plain")
    assert not t.is_dynamic(["{{input.x}}"])
    assert not t.is_dynamic(None)


# --- properties ---------------------------------------------------------------------------------------
KEYS = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda k: k not in t.FORBIDDEN and not k.startswith("__")
)
SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
VALUES = st.recursive(
    SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(KEYS, c, max_size=3), max_leaves=10
)


@settings(max_examples=200, deadline=None)
@given(key=KEYS, value=VALUES)
def test_single_expression_returns_the_value_itself(key: str, value: Any) -> None:
    context = {"n": {key: value}}
    assert t.resolve("{{n." + key + "}}", context) == value
    assert t.resolve("{{ ctx.n['" + key + "'] }}", context) == value


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=30))
def test_text_without_templates_is_unchanged(text: str) -> None:
    if "{{" not in text:
        assert t.resolve(text, {}) == text


TOKENS = [
    "{{",
    "}}",
    "{",
    "}",
    "a",
    "b",
    ".",
    "[0]",
    "[1]",
    "['a']",
    '["b"]',
    "[",
    "]",
    "'",
    '"',
    "\\",
    " ",
    "ctx",
    "__",
    "x",
    "0",
    "-",
]


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from(TOKENS), max_size=14))
def test_resolve_only_raises_template_error(parts: list[str]) -> None:
    with contextlib.suppress(TemplateError):
        t.resolve("".join(parts), {"a": {"b": [1, {"a": 2}], "c": 3}, "b": "x"})
