"""The pure workflow graph: normalise, validate (node-level errors), loop scopes, and fuzzing.

No database: these tests only call :func:`apps.workflows.engine.graph.build` and read the result.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from apps.workflows import nodes
from apps.workflows.engine import graph as g
from apps.workflows.engine.graph import GraphError, GraphInvalid


# --- helpers -----------------------------------------------------------------------------------------
def node(node_id: str, node_type: str, **fields: Any) -> dict[str, Any]:
    """A node dict; ``inputs`` and any envelope field (on_error, retry...) go through ``fields``."""
    return {"id": node_id, "type": node_type, **fields}


def edge(source: str, target: str, handle: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"source": source, "target": target}
    if handle is not None:
        out["sourceHandle"] = handle
    return out


def graph(nodes_: list[dict[str, Any]], edges: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"nodes": nodes_, "edges": edges or []}


def errors_of(raw: Any) -> list[GraphError]:
    """Build ``raw``, which must be invalid, and return its errors."""
    with pytest.raises(GraphInvalid) as info:
        g.build(raw)
    assert info.value.errors, "GraphInvalid must carry at least one error"
    return info.value.errors


def find(errors: list[GraphError], node_id: str | None, field: str, *message_parts: str) -> GraphError:
    """The first error naming ``node_id`` whose field contains ``field`` and whose message has the parts."""
    for err in errors:
        if err.node_id == node_id and field in err.field and all(p in err.message for p in message_parts):
            return err
    raise AssertionError(
        f"no error for node {node_id!r}, field ~{field!r}, message ~{message_parts!r} in "
        f"{[e.as_dict() for e in errors]}"
    )


def start_transform(**transform_inputs: Any) -> dict[str, Any]:
    return graph(
        [node("start", "start"), node("t", "transform", inputs={"data": [], **transform_inputs})],
        [edge("start", "t")],
    )


# --- validation battery -------------------------------------------------------------------------------
def test_simple_cycle_is_rejected() -> None:
    errors = errors_of(
        graph(
            [node("s", "start"), node("a", "fanout"), node("b", "fanout")],
            [edge("s", "a"), edge("a", "b"), edge("b", "a")],
        )
    )
    err = find(errors, "a", "edges", "cycle")
    assert "b" in err.message


def test_cycle_inside_a_loop_body_not_via_the_back_edge_is_rejected() -> None:
    # L -loop-> a -> b -> a: a and b are the body, but b -> a is not a back edge (a is not the loop).
    errors = errors_of(
        graph(
            [
                node("s", "start"),
                node("L", "loop", inputs={"items": [1, 2]}),
                node("a", "fanout"),
                node("b", "fanout"),
                node("e", "end"),
            ],
            [
                edge("s", "L"),
                edge("L", "a", "loop"),
                edge("a", "b"),
                edge("b", "a"),
                edge("b", "L"),  # the legitimate back edge
                edge("L", "e", "completed"),
            ],
        )
    )
    find(errors, "a", "edges", "cycle")


def test_edge_from_after_the_loop_back_to_the_loop_is_a_cycle_not_a_back_edge() -> None:
    # x hangs off 'completed', so it is not in the body: x -> L closes a real cycle.
    errors = errors_of(
        graph(
            [
                node("s", "start"),
                node("L", "loop", inputs={"items": [1]}),
                node("a", "fanout"),
                node("x", "fanout"),
            ],
            [edge("s", "L"), edge("L", "a", "loop"), edge("L", "x", "completed"), edge("x", "L")],
        )
    )
    find(errors, "L", "edges", "cycle")


@pytest.mark.parametrize(
    ("edge_", "node_id"),
    [
        (edge("start", "ghost"), "start"),  # the source exists: the error is the source's
        (edge("ghost", "start"), None),  # no such source: a graph-level error
        ({"from": "start", "to": "ghost"}, "start"),
    ],
)
def test_dangling_edge_is_rejected(edge_: dict[str, Any], node_id: str | None) -> None:
    errors = errors_of(graph([node("start", "start"), node("e", "end")], [edge_]))
    find(errors, node_id, "edges[0]", "ghost")


def test_duplicate_node_ids_are_rejected() -> None:
    errors = errors_of(graph([node("a", "start"), node("a", "end")]))
    find(errors, "a", "id", "Duplicate")


def test_unknown_node_type_lists_the_known_types() -> None:
    errors = errors_of(graph([node("s", "start"), node("x", "teleport")], [edge("s", "x")]))
    err = find(errors, "x", "type", "teleport")
    for known in ("start", "end", "condition", "loop", "transform", "aggregate"):
        assert known in err.message


def test_bad_source_handle_is_rejected_and_lists_the_handles() -> None:
    errors = errors_of(
        graph(
            [node("c", "condition", inputs={"left": 1, "operator": "equals", "right": 1}), node("e", "end")],
            [edge("c", "e", "maybe")],
        )
    )
    err = find(errors, "c", "sourceHandle", "maybe")
    assert "true" in err.message
    assert "false" in err.message


@pytest.mark.parametrize(
    "source",
    [
        node("c", "condition", inputs={"left": 1, "operator": "equals", "right": 1}),
        node("c", "switch", inputs={"value": 1, "cases": [{"id": "one", "value": 1}]}),
        node("c", "loop", inputs={"items": [1]}),
    ],
    ids=["condition", "switch", "loop"],
)
def test_edge_from_a_branching_node_must_name_its_handle(source: dict[str, Any]) -> None:
    errors = errors_of(graph([source, node("e", "end")], [edge("c", "e")]))
    find(errors, "c", "edges[0].sourceHandle", "must name its sourceHandle")


def test_non_string_source_handle_is_rejected() -> None:
    errors = errors_of(graph([node("s", "start"), node("e", "end")], [edge("s", "e") | {"sourceHandle": 3}]))
    find(errors, "s", "sourceHandle", "string")


def test_edge_from_an_end_node_is_rejected() -> None:
    errors = errors_of(graph([node("e", "end"), node("f", "fanout")], [edge("e", "f")]))
    find(errors, "e", "sourceHandle")


def test_self_edge_is_rejected() -> None:
    errors = errors_of(graph([node("a", "fanout")], [edge("a", "a")]))
    find(errors, "a", "edges[0]", "itself")


def _branches(b_inputs: dict[str, Any]) -> dict[str, Any]:
    return graph(
        [
            node("s", "start"),
            node("c", "condition", inputs={"left": "{{s.x}}", "operator": "is_empty"}),
            node("a", "fanout", inputs={"value": "{{s.x}}"}),
            node("b", "fanout", inputs=b_inputs),
            node("d", "fanout"),
        ],
        [edge("s", "c"), edge("c", "a", "true"), edge("c", "b", "false"), edge("b", "d")],
    )


@pytest.mark.parametrize(
    ("b_inputs", "root", "why"),
    [
        ({"value": "{{a.value}}"}, "a", "not an ancestor"),  # a sibling branch
        ({"value": "{{ctx.a.value}}"}, "a", "not an ancestor"),  # the same through ctx.
        ({"value": "{{d.value}}"}, "d", "not an ancestor"),  # a downstream node
        ({"value": {"deep": ["x {{ghost.y}}"]}}, "ghost", "not a node of this graph"),
    ],
    ids=["sibling", "sibling-ctx", "downstream", "missing"],
)
def test_reference_to_a_non_ancestor_or_missing_node_is_rejected(
    b_inputs: dict[str, Any], root: str, why: str
) -> None:
    errors = errors_of(_branches(b_inputs))
    find(errors, "b", "inputs", repr(root), why)


def test_reference_to_itself_is_rejected() -> None:
    errors = errors_of(
        graph([node("s", "start"), node("a", "fanout", inputs={"value": "{{a.value}}"})], [edge("s", "a")])
    )
    find(errors, "a", "inputs", "not an ancestor")


def test_loop_item_outside_a_loop_is_rejected() -> None:
    errors = errors_of(
        graph([node("s", "start"), node("a", "fanout", inputs={"value": "{{loop.item}}"})], [edge("s", "a")])
    )
    find(errors, "a", "inputs", "loop.item", "only available inside a loop")


def test_loop_item_in_the_items_of_a_top_level_loop_is_rejected() -> None:
    errors = errors_of(graph([node("L", "loop", inputs={"items": "{{loop.item}}"})]))
    find(errors, "L", "inputs", "only available inside a loop")


def test_unparseable_template_is_rejected() -> None:
    errors = errors_of(graph([node("a", "fanout", inputs={"value": "{{a.__class__}}"})]))
    find(errors, "a", "inputs", "__class__")


@pytest.mark.parametrize(
    ("node_", "field", "message_part"),
    [
        (node("n", "transform"), "inputs", "'data' is a required property"),
        (node("n", "transform", inputs={"data": 5}), "inputs.data", "array"),
        (node("n", "transform", inputs={"data": [], "limit": -1}), "inputs.limit", "minimum"),
        (
            node("n", "aggregate", inputs={"data": [], "metrics": [{"field": "x", "op": "median"}]}),
            "inputs.metrics[0].op",
            "median",
        ),
        (node("n", "aggregate", inputs={"data": [], "metrics": []}), "inputs.metrics", ""),
        (node("n", "aggregate", inputs={"data": [], "metrics": [{"op": "sum"}]}), "metrics[0].field", "sum"),
        (node("n", "loop", inputs={"items": [], "concurrency": 0}), "inputs.concurrency", "minimum"),
        (node("n", "loop", inputs={"items": [], "concurrency": 101}), "inputs.concurrency", "maximum"),
        (node("n", "loop", inputs={}), "inputs", "items"),
        (node("n", "condition", inputs={"left": 1, "operator": "eq", "right": 1}), "inputs.operator", "eq"),
        (node("n", "condition", inputs={"left": 1, "right": 1}), "inputs.operator", "operator"),
        (
            node("n", "condition", inputs={"branches": [{"id": "a", "operator": "is_empty"}] * 2}),
            "inputs.branches",
            "unique",
        ),
        (
            node("n", "condition", inputs={"branches": [{"id": "default", "operator": "is_empty"}]}),
            "inputs.branches",
            "default",
        ),
        (node("n", "switch", inputs={"value": 1}), "inputs", "cases"),
        (node("n", "switch", inputs={"cases": [{"id": "x"}, {"id": "x"}]}), "inputs.cases", "unique"),
        (node("n", "delay", inputs={"seconds": -1}), "inputs.seconds", "minimum"),
        (node("n", "join", inputs={"mode": "some"}), "inputs.mode", "some"),
        (node("n", "fanout", inputs=[1, 2]), "inputs", "object"),
        (node("n", "fanout", on_error="explode"), "on_error", "explode"),
        (node("n", "fanout", retry={"max_attempts": 0}), "retry.max_attempts", "minimum"),
        (node("n", "fanout", timeout_s=0), "timeout_s", ""),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("inputs") else None,
)
def test_schema_invalid_node_is_rejected(node_: dict[str, Any], field: str, message_part: str) -> None:
    err = find(errors_of(graph([node_])), "n", field)
    assert message_part in err.message


@pytest.mark.parametrize("reserved", ["input", "loop", "ctx"])
def test_reserved_ids_are_rejected(reserved: str) -> None:
    find(errors_of(graph([node(reserved, "fanout")])), reserved, "id", "not 'input', 'loop' or 'ctx'")


@pytest.mark.parametrize("bad_id", ["", "1abc", "a b", "a.b", "a" * 101, "é"])
def test_malformed_ids_are_rejected(bad_id: str) -> None:
    find(errors_of(graph([node(bad_id, "fanout")])), bad_id, "id")


def test_node_id_with_a_trailing_newline_is_rejected() -> None:
    find(errors_of(graph([node("a\n", "fanout")])), "a\n", "id")


def test_node_after_a_loop_reachable_from_the_body_crosses_scope() -> None:
    errors = errors_of(
        graph(
            [
                node("s", "start"),
                node("L", "loop", inputs={"items": [1, 2]}),
                node("a", "fanout"),
                node("after", "end"),
            ],
            [edge("s", "L"), edge("L", "a", "loop"), edge("a", "after"), edge("L", "after", "completed")],
        )
    )
    find(errors, "after", "edges", "crosses a loop boundary")


def test_reference_from_after_the_loop_into_its_body_is_rejected() -> None:
    errors = errors_of(
        graph(
            [
                node("s", "start"),
                node("L", "loop", inputs={"items": [1, 2]}),
                node("a", "fanout", inputs={"value": "{{loop.item}}"}),
                node("e", "end", inputs={"output": "{{a.value}}"}),
            ],
            [edge("s", "L"), edge("L", "a", "loop"), edge("a", "L"), edge("L", "e", "completed")],
        )
    )
    find(errors, "e", "inputs", "'a'", "not an ancestor")


@pytest.mark.parametrize("raw", [None, [], "graph", 3, {"nodes": {}, "edges": []}, {"nodes": [], "edges": 1}])
def test_non_graph_shapes_are_rejected(raw: Any) -> None:
    errors = errors_of(raw)
    assert all(e.node_id is None for e in errors)


def test_every_problem_is_reported_not_just_the_first() -> None:
    errors = errors_of(
        graph(
            [node("a", "teleport"), node("b", "transform"), node("input", "fanout"), "junk"],
            [edge("a", "nowhere"), 5],
        )
    )
    find(errors, "a", "type")
    find(errors, "b", "inputs")
    find(errors, "input", "id")
    find(errors, None, "nodes[3]")
    find(errors, None, "edges[1]")
    assert len(errors) >= 5


def test_graph_invalid_message_and_as_dict() -> None:
    with pytest.raises(GraphInvalid) as info:
        g.build(graph([node("a", "teleport")]))
    assert "a.type" in str(info.value)
    assert info.value.errors[0].as_dict() == {
        "node_id": "a",
        "field": "type",
        "message": info.value.errors[0].message,
    }


@pytest.mark.parametrize("handle", ["true", "false"])
def test_condition_with_templated_branches_does_not_accept_true_false_edges(handle: str) -> None:
    """With ``branches`` a condition's handles are the branch ids and ``default``; a template names no
    ids when the graph is saved, so the template is refused, and so is an edge from ``true``/``false``."""
    errors = errors_of(
        graph(
            [
                node("s", "start"),
                node("c", "condition", inputs={"branches": "{{s.branches}}"}),
                node("e", "end"),
            ],
            [edge("s", "c"), edge("c", "e", handle)],
        )
    )
    assert [e.as_dict() for e in errors] == [
        {
            "node_id": "c",
            "field": "inputs.branches",
            "message": "`branches` must be a list written in the graph, not a template: its ids are the "
            "node's handles.",
        },
        {
            "node_id": "c",
            "field": "edges[1].sourceHandle",
            "message": f"'c' (condition) has no handle {handle!r}; handles: default.",
        },
    ]


# --- positive cases ------------------------------------------------------------------------------------
def test_contract_example_builds() -> None:
    built = g.build(
        {
            "nodes": [
                {"id": "start", "type": "start"},
                {
                    "id": "t",
                    "type": "transform",
                    "inputs": {"data": "{{input.rows}}", "filter": [{"field": "x", "operator": "equals"}]},
                },
                {
                    "id": "check",
                    "type": "condition",
                    "inputs": {"left": "{{t.result}}", "operator": "is_not_empty", "right": 0},
                },
                {"id": "end", "type": "end", "inputs": {"output": {"rows": "{{ctx.t.result}}"}}},
            ],
            "edges": [
                {"source": "start", "target": "t"},
                {"source": "t", "target": "check"},
                {"source": "check", "target": "end", "sourceHandle": "true"},
            ],
        }
    )
    assert built.order == ["start", "t", "check", "end"]
    assert [(e.source, e.target, e.handle) for e in built.edges] == [
        ("start", "t", "output"),
        ("t", "check", "output"),
        ("check", "end", "true"),
    ]
    assert built.refs("end") == {"t"}
    assert built.refs("t") == set()  # input is not a node
    assert built.upstream("end") == ["check"]
    assert built.ancestors("end") == {"start", "t", "check"}
    assert built.roots() == ["start"]
    assert built.inputs("start") == {}  # missing inputs normalised to {}
    assert built.on_error("t") == "fail"


def test_from_to_aliases_and_handle_alias_are_accepted() -> None:
    built = g.build(
        graph(
            [node("s", "start"), node("c", "condition", inputs={"operator": "is_empty"}), node("e", "end")],
            [{"from": "s", "to": "c"}, {"from": "c", "to": "e", "handle": "false"}],
        )
    )
    assert [(e.source, e.target, e.handle) for e in built.edges] == [
        ("s", "c", "output"),
        ("c", "e", "false"),
    ]


def test_duplicate_edges_are_collapsed() -> None:
    built = g.build(graph([node("s", "start"), node("e", "end")], [edge("s", "e"), edge("s", "e", "output")]))
    assert len(built.edges) == 1
    assert built.in_count("e") == 1


@pytest.mark.parametrize(
    ("node_type", "inputs"),
    [
        ("transform", {"data": "{{start.rows}}"}),
        ("transform", {"data": [], "limit": "{{start.n}}", "select": "{{start.fields}}"}),
        ("aggregate", {"data": "{{start.rows}}", "metrics": "{{start.metrics}}"}),
        ("loop", {"items": "{{start.rows}}", "concurrency": "{{start.c}}"}),
        ("delay", {"seconds": "{{ start.seconds }}"}),
        ("condition", {"left": 1, "operator": "{{start.op}}"}),
    ],
)
def test_templated_value_where_the_schema_wants_another_type_passes(
    node_type: str, inputs: dict[str, Any]
) -> None:
    built = g.build(
        graph([node("start", "start"), node("n", node_type, inputs=inputs)], [edge("start", "n")])
    )
    assert "n" in built.nodes


def _nested_loops() -> dict[str, Any]:
    return graph(
        [
            node("s", "start"),
            node("O", "loop", inputs={"items": "{{s.groups}}"}),
            node("I", "loop", inputs={"items": "{{loop.item.rows}}"}),
            node("x", "fanout", inputs={"value": "{{loop.item}}"}),
            node("y", "fanout", inputs={"value": "{{x.value}} of {{s.name}}"}),
            node("z", "fanout", inputs={"value": "{{I.results}}"}),
            node("e", "end", inputs={"output": "{{O.results}}"}),
        ],
        [
            edge("s", "O"),
            edge("O", "I", "loop"),
            edge("I", "x", "loop"),
            edge("x", "y"),
            edge("y", "I"),  # back edge to the inner loop
            edge("I", "z", "completed"),
            edge("z", "O"),  # back edge to the outer loop
            edge("O", "e", "completed"),
        ],
    )


def test_nested_loop_bodies_scopes_and_chains() -> None:
    built = g.build(_nested_loops())
    assert built.body == {"O": {"I", "x", "y", "z"}, "I": {"x", "y"}}
    assert built.scope == {"s": None, "O": None, "e": None, "I": "O", "z": "O", "x": "I", "y": "I"}
    assert built.loop_chain("x") == ["O", "I"]
    assert built.loop_chain("y") == ["O", "I"]
    assert built.loop_chain("I") == ["O"]
    assert built.loop_chain("z") == ["O"]
    assert built.loop_chain("s") == []
    assert built.members("I") == ["x", "y"]
    assert built.roots() == ["s"]
    assert built.roots("O") == ["I"]
    assert built.roots("I") == ["x"]
    assert built.sinks("I") == ["y"]
    assert built.sinks("O") == ["z"]
    # Back edges are drawn but not scheduled: they are in edges, not in out/into.
    assert g.Edge("y", "I", "output") in built.edges
    assert all(e.target != "I" or e.source == "O" for e in built.into["I"])
    assert built.out["y"] == []
    assert built.settles("O") == [g.Edge("O", "e", "completed")]
    assert built.settles("I") == [g.Edge("I", "z", "completed")]
    assert built.in_count("x") == 0
    assert built.is_loop_edge(g.Edge("O", "I", "loop"))
    assert not built.is_loop_edge(g.Edge("O", "e", "completed"))
    order = built.order
    assert order.index("s") < order.index("O") < order.index("I") < order.index("x") < order.index("y")
    assert order.index("I") < order.index("z")
    assert order.index("O") < order.index("e")


def test_loop_body_with_back_edge_and_branches() -> None:
    built = g.build(
        graph(
            [
                node("s", "start"),
                node("L", "loop", inputs={"items": [1, 2, 3], "concurrency": 2, "max_iterations": 10}),
                node(
                    "c", "condition", inputs={"left": "{{loop.item}}", "operator": "greater_than", "right": 1}
                ),
                node("big", "fanout", inputs={"value": "{{loop.index}}"}),
                node("small", "fanout"),
                node("j", "join", inputs={"mode": "any"}),
                node("e", "end", inputs={"output": "{{L.results}}"}),
            ],
            [
                edge("s", "L"),
                edge("L", "c", "loop"),
                edge("c", "big", "true"),
                edge("c", "small", "false"),
                edge("big", "j"),
                edge("small", "j"),
                edge("j", "L"),
                edge("L", "e", "completed"),
            ],
        )
    )
    assert built.body["L"] == {"c", "big", "small", "j"}
    assert built.sinks("L") == ["j"]
    assert built.roots("L") == ["c"]
    assert built.upstream("j") == ["big", "small"]
    assert built.scope["e"] is None


def test_loop_with_several_body_entries() -> None:
    built = g.build(
        graph(
            [
                node("start", "start"),
                node("L", "loop", inputs={"items": []}),
                node("a", "fanout"),
                node("b", "fanout"),
            ],
            [edge("start", "L"), edge("L", "a", "loop"), edge("L", "b", "loop")],
        )
    )
    assert built.body["L"] == {"a", "b"}
    assert built.roots("L") == ["a", "b"]
    assert built.sinks("L") == ["a", "b"]


def test_on_error_route_allows_the_error_handle() -> None:
    built = g.build(
        graph(
            [
                node("s", "start"),
                node("t", "transform", inputs={"data": "{{s.rows}}"}, on_error="route"),
                node("ok", "end", inputs={"output": "{{t.result}}"}),
                node("bad", "end", inputs={"output": "{{t.error}}"}),
            ],
            [edge("s", "t"), edge("t", "ok"), edge("t", "bad", "error")],
        )
    )
    assert built.on_error("t") == "route"
    assert g.Edge("t", "bad", "error") in built.edges
    # 'output' is still the default handle: with an error handle there are two, but the edge without
    # sourceHandle above still resolved to the type's own single handle.
    assert g.Edge("t", "ok", "output") in built.edges


@pytest.mark.parametrize("on_error", [None, "fail", "continue"])
def test_error_handle_is_forbidden_without_on_error_route(on_error: str | None) -> None:
    extra = {"on_error": on_error} if on_error else {}
    errors = errors_of(
        graph(
            [node("s", "start"), node("t", "fanout", **extra), node("bad", "end")],
            [edge("s", "t"), edge("t", "bad", "error")],
        )
    )
    find(errors, "t", "sourceHandle", "'error'")


def test_switch_and_condition_branch_handles() -> None:
    built = g.build(
        graph(
            [
                node("s", "start"),
                node(
                    "sw",
                    "switch",
                    inputs={
                        "value": "{{s.kind}}",
                        "cases": [{"id": "a", "value": 1}, {"id": "b", "value": 2}],
                    },
                ),
                node(
                    "c",
                    "condition",
                    inputs={"branches": [{"id": "hot", "left": 1, "operator": "greater_than", "right": 0}]},
                ),
                node("e1", "end"),
                node("e2", "end"),
                node("e3", "end"),
            ],
            [
                edge("s", "sw"),
                edge("sw", "c", "a"),
                edge("sw", "e1", "default"),
                edge("c", "e2", "hot"),
                edge("c", "e3", "default"),
            ],
        )
    )
    assert {e.handle for e in built.edges if e.source == "sw"} == {"a", "default"}
    assert {e.handle for e in built.edges if e.source == "c"} == {"hot", "default"}


def test_loop_item_is_allowed_in_the_items_of_a_nested_loop() -> None:
    built = g.build(_nested_loops())
    assert built.refs("I") == set()
    assert built.refs("y") == {"x", "s"}
    assert built.refs("e") == {"O"}


def test_empty_graph_is_refused_but_trusted_empty_graph_builds() -> None:
    assert [e.message for e in errors_of({})] == ["A workflow needs at least a start node."]
    built = g.build({}, trusted=True)  # a run's pinned graph is not judged again
    assert built.nodes == {}
    assert built.roots() == []


# --- scheduling rules (pure) --------------------------------------------------------------------------
def test_edge_active_and_readiness_rules() -> None:
    e = g.Edge("a", "b", "true")
    assert g.edge_active(e, "succeeded", "true")
    assert g.edge_active(e, "failed", "true")
    assert not g.edge_active(e, "succeeded", "false")
    assert not g.edge_active(e, "skipped", "true")
    assert not g.edge_active(e, "succeeded", "")
    assert g.readiness(0, 1, False) == "ready"
    assert g.readiness(1, 1, True) == "ready"
    assert g.readiness(1, 1, False) == "wait"
    assert g.readiness(0, 0, False) == "skip"
    assert g.readiness(2, 0, True) == "wait"


def test_counters_ignore_loop_edges() -> None:
    built = g.build(_nested_loops())
    assert g.counters(built, "I", {}) == (0, 0)  # its only in-edge is O's loop edge
    assert g.counters(built, "z", {}) == (1, 0)
    assert g.counters(built, "z", {"I": ("succeeded", "completed")}) == (0, 1)
    assert g.counters(built, "z", {"I": ("skipped", "")}) == (0, 0)
    assert g.counters(built, "z", {"I": ("running", "")}) == (1, 0)


# --- hypothesis ----------------------------------------------------------------------------------------
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _check_built(built: g.Graph) -> None:
    """Invariants of any graph that build() accepts."""
    assert sorted(built.order) == sorted(built.nodes)
    position = {n: i for i, n in enumerate(built.order)}
    for e in built.edges:
        assert e.source in built.nodes
        assert e.target in built.nodes
        assert isinstance(e.handle, str)
        assert e.handle
    for source, outs in built.out.items():
        for e in outs:
            assert e.source == source
            assert position[e.source] < position[e.target]
    for node_id in built.nodes:
        chain = built.loop_chain(node_id)
        assert all(built.node_type(loop) == "loop" for loop in chain)
        assert node_id not in chain


def _build_or_invalid(raw: Any) -> None:
    try:
        built = g.build(raw)
    except GraphInvalid as exc:
        assert exc.errors
        assert all(isinstance(e, GraphError) for e in exc.errors)
        assert all(isinstance(e.field, str) and isinstance(e.message, str) for e in exc.errors)
        return
    _check_built(built)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=JSON | st.fixed_dictionaries({"nodes": JSON, "edges": JSON}))
def test_random_json_only_ever_raises_graph_invalid(raw: Any) -> None:
    _build_or_invalid(raw)


GOOD_IDS = ["a", "b", "c", "d", "e", "f", "g"]
BAD_IDS = ["input", "loop", "ctx", "1x", "a b", ""]
TYPES = [*sorted(nodes.REGISTRY), "teleport", "", "Start"]
HANDLES = ["true", "false", "loop", "completed", "default", "output", "error", "success", "x", "y", ""]
INPUT_KEYS = [
    "data",
    "items",
    "left",
    "right",
    "operator",
    "value",
    "cases",
    "branches",
    "metrics",
    "group_by",
    "filter",
    "select",
    "rename",
    "sort",
    "limit",
    "seconds",
    "concurrency",
    "max_iterations",
    "mode",
    "output",
    "code",
    "id",
    "op",
    "field",
]
TEMPLATES = st.sampled_from(
    [
        "{{a.x}}",
        "{{ctx.b.y[0]}}",
        "{{loop.item}}",
        "{{loop.index}}",
        "{{input.x}}",
        "{{ghost.x}}",
        "{{ctx}}",
        "{{a.__class__}}",
        "x {{c.y}} {{d}}",
        "{{",
        "{{}}",
        "{{e['k']}}",
    ]
)
REFS = st.sampled_from(["{{input.x}}", "{{input.rows}}", "{{a.x}}", "{{ctx.b.y[0]}}", "{{loop.item}}"])
OPERATORS = st.sampled_from(["equals", "greater_than", "is_empty", "matches_regex"])

# Inputs that pass each type's schema (templates may still point anywhere).
WELL_FORMED: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "start": st.just({}),
    "end": st.fixed_dictionaries({}, optional={"output": JSON_SCALARS | REFS}),
    "fanout": st.fixed_dictionaries({}, optional={"value": REFS}),
    "join": st.fixed_dictionaries({}, optional={"mode": st.sampled_from(["all", "any"])}),
    "loop": st.fixed_dictionaries(
        {"items": st.lists(JSON_SCALARS, max_size=3) | REFS},
        optional={"concurrency": st.integers(1, 3)},
    ),
    "condition": st.fixed_dictionaries({"left": REFS | JSON_SCALARS, "operator": OPERATORS})
    | st.fixed_dictionaries(
        {
            "branches": st.lists(
                st.fixed_dictionaries({"id": st.sampled_from(["x", "y"]), "operator": OPERATORS}),
                max_size=2,
                unique_by=lambda b: b["id"],
            )
        }
    ),
    "switch": st.fixed_dictionaries(
        {
            "value": REFS,
            "cases": st.lists(
                st.fixed_dictionaries({"id": st.sampled_from(["x", "y"]), "value": JSON_SCALARS}),
                max_size=2,
                unique_by=lambda c: c["id"],
            ),
        }
    ),
    "delay": st.fixed_dictionaries({"seconds": st.integers(0, 5)}),
    "transform": st.fixed_dictionaries({"data": st.just([]) | REFS}),
    "aggregate": st.fixed_dictionaries(
        {"data": REFS, "metrics": st.just([{"op": "count"}, {"op": "sum", "field": "n"}])}
    ),
}


def _values(safe: bool) -> st.SearchStrategy[Any]:
    """Junk-ish input values: scalars, templates and plausible shapes (cases/branches/metrics...).

    ``safe`` leaves out the odd shapes that once crashed validate_inputs (kept as a separate test):
    non-iterable truthy scalars and unhashable ids in ``cases``/``branches``/``metrics``.
    """
    ids = st.sampled_from(["x", "y", "default", "a"]) | (st.just(None) if safe else JSON)
    items = st.fixed_dictionaries(
        {},
        optional={
            "id": ids,
            "operator": st.sampled_from(["equals", "eq", "is_empty", "matches_regex"]) | TEMPLATES,
            "value": JSON | TEMPLATES,
            "left": JSON | TEMPLATES,
            "op": st.sampled_from(["sum", "count", "median"]),
            "field": st.sampled_from(["x", ""]) | JSON,
            "desc": st.booleans(),
        },
    )
    structured = st.lists(items | JSON_SCALARS, max_size=3)
    scalars = JSON_SCALARS.filter(lambda v: not v or isinstance(v, str)) if safe else JSON_SCALARS
    return structured | TEMPLATES | scalars | (st.lists(JSON, max_size=3) if not safe else st.nothing())


def _junk_node(safe: bool) -> st.SearchStrategy[Any]:
    node_id = st.sampled_from(GOOD_IDS + BAD_IDS) | st.integers() | st.none()
    envelope = st.fixed_dictionaries(
        {"id": node_id, "type": st.sampled_from(TYPES)},
        optional={
            "inputs": st.dictionaries(st.sampled_from(INPUT_KEYS), _values(safe), max_size=5)
            | (JSON if not safe else st.none()),
            "on_error": st.sampled_from(["fail", "continue", "route", "bad"]),
            "retry": st.fixed_dictionaries({"max_attempts": st.integers(-1, 3)}),
            "label": st.text(max_size=5) | st.none(),
        },
    )
    return envelope | JSON_SCALARS


def _junk_edge() -> st.SearchStrategy[Any]:
    node_id = st.sampled_from(GOOD_IDS + BAD_IDS + ["ghost"]) | st.integers() | st.none()
    handle = st.sampled_from(HANDLES) | st.integers() | st.none()
    keys = ["source", "target", "from", "to", "sourceHandle", "handle"]
    edge_ = st.fixed_dictionaries({}, optional={k: handle if "andle" in k else node_id for k in keys})
    return edge_ | JSON_SCALARS


@st.composite
def _graphs(draw: st.DrawFn, safe: bool) -> dict[str, Any]:
    """Well-formed nodes and edges between them (forward, sometimes backward); half the time with junk."""
    messy = draw(st.booleans())

    def now_and_then(one_in: int) -> bool:
        return messy and draw(st.integers(1, one_in)) == 1

    nodes_: list[Any] = []
    ids = draw(st.lists(st.sampled_from(GOOD_IDS), max_size=7, unique=True))
    if ids and now_and_then(5):
        ids.append(ids[0])  # a duplicate id
    handles: dict[str, list[str]] = {}
    for node_id in ids:
        if now_and_then(8):
            nodes_.append(draw(_junk_node(safe)))
            continue
        node_type = draw(st.sampled_from(sorted(WELL_FORMED)))
        inputs = draw(WELL_FORMED[node_type])
        if now_and_then(3):  # corrupt one input of an otherwise well-formed node
            inputs = {**inputs, draw(st.sampled_from(sorted(inputs) or INPUT_KEYS)): draw(_values(safe))}
        extra = draw(st.fixed_dictionaries({}, optional={"on_error": st.sampled_from(["continue", "route"])}))
        nodes_.append({"id": node_id, "type": node_type, "inputs": inputs, **extra})
        handles[node_id] = list(nodes.get(node_type).handles_for(inputs)) + (
            ["error"] if extra.get("on_error") == "route" else []
        )
    edges: list[Any] = []
    for _ in range(draw(st.integers(0, 12))):
        if now_and_then(8):
            edges.append(draw(_junk_edge()))
            continue
        if now_and_then(10) and ids:
            i = j = draw(st.integers(0, len(ids) - 1))  # a self edge
        elif len(ids) < 2:
            continue
        else:
            i, j = sorted(draw(st.lists(st.integers(0, len(ids) - 1), min_size=2, max_size=2, unique=True)))
        if draw(st.integers(1, 8)) == 1:
            i, j = j, i  # backwards: back edges into loops, or cycles
        own = handles.get(ids[i], [])
        if now_and_then(4):
            handle = draw(st.none() | st.sampled_from(HANDLES))
        elif own:
            handle = draw(st.sampled_from(own))
        else:
            continue  # an end node (no handles) or a junk node
        aliases = draw(st.booleans())
        edge_: dict[str, Any] = {
            "from" if aliases else "source": ids[i],
            "to" if aliases else "target": ids[j],
        }
        if handle is not None:
            edge_["sourceHandle"] = handle
        edges.append(edge_)
    return {"nodes": nodes_, "edges": edges}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_graphs(safe=True))
def test_random_graphs_only_raise_graph_invalid_or_build(raw: Any) -> None:
    _build_or_invalid(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_graphs(safe=False))
@example(raw={"nodes": [{"id": "c", "type": "condition", "inputs": {"branches": 5}}], "edges": []})
def test_random_graphs_with_any_input_shape_only_raise_graph_invalid_or_build(raw: Any) -> None:
    _build_or_invalid(raw)


@pytest.mark.parametrize(
    "node_",
    [
        node("n", "condition", inputs={"branches": 5}),
        node("n", "condition", inputs={"branches": [{"id": [1], "operator": "equals"}]}),
        node("n", "switch", inputs={"cases": True}),
        node("n", "switch", inputs={"cases": [{"id": {"a": 1}}]}),
        node("n", "aggregate", inputs={"data": [], "metrics": 5}),
    ],
    ids=["branches-int", "branch-id-list", "cases-bool", "case-id-dict", "metrics-int"],
)
def test_malformed_collections_are_reported_not_raised(node_: dict[str, Any]) -> None:
    find(errors_of(graph([node_])), "n", "inputs")
