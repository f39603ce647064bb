"""Validation reports every problem of a graph at once, each naming node and field, and only real ones:
no edge reported as dangling because its node has its own error, no cycle naming nodes outside it, no
"not an ancestor" for a reference whose edge was refused for its own reason."""

from __future__ import annotations

from typing import Any

import pytest

from apps.workflows.engine import graph as g
from apps.workflows.services import graph_problems


def problems(nodes: list[dict[str, Any]], edges: list[tuple[str, ...]]) -> list[tuple[str | None, str, str]]:
    raw = {
        "nodes": nodes,
        "edges": [
            {"source": e[0], "target": e[1], **({"sourceHandle": e[2]} if len(e) > 2 else {})} for e in edges
        ],
    }
    return [(p["node_id"], p["field"], p["message"]) for p in graph_problems(raw)]


START = {"id": "start", "type": "start"}
END = {"id": "end", "type": "end"}


def test_a_cycle_names_exactly_its_nodes() -> None:
    found = problems(
        [START, {"id": "a", "type": "fanout"}, {"id": "b", "type": "fanout"}, END],
        [("start", "a"), ("a", "b"), ("b", "a"), ("b", "end")],
    )
    assert found == [
        (
            "a",
            "edges",
            "The graph has a cycle through a, b (only a loop's body may lead back to its loop node).",
        )
    ]


def test_two_cycles_are_two_errors() -> None:
    ids = ["a", "b", "c", "d"]
    found = problems(
        [START, *({"id": i, "type": "fanout"} for i in ids), END],
        [("start", "a"), ("a", "b"), ("b", "a"), ("start", "c"), ("c", "d"), ("d", "c"), ("d", "end")],
    )
    assert [f[2].split(" (")[0] for f in found] == [
        "The graph has a cycle through a, b",
        "The graph has a cycle through c, d",
    ]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"id": "x", "type": "noSuchType"}, "type"),
        ({"id": "input", "type": "fanout"}, "id"),
        ({"id": "x", "type": "fanout", "pinned": {"nope": 1}}, "pinned"),
    ],
)
def test_a_bad_node_is_one_error_not_one_per_edge(bad: dict[str, Any], field: str) -> None:
    found = problems([START, bad, END], [("start", bad["id"]), (bad["id"], "end")])
    assert found and all(f[0] == bad["id"] and f[1].startswith(field) for f in found), found


def test_a_reference_to_a_bad_node_is_not_reported_again() -> None:
    found = problems(
        [
            START,
            {"id": "x", "type": "noSuchType"},
            {"id": "end", "type": "end", "inputs": {"output": "{{x.value}}"}},
        ],
        [("start", "x"), ("x", "end")],
    )
    assert [f[:2] for f in found] == [("x", "type")]


def test_every_kind_of_error_in_one_answer() -> None:
    found = problems(
        [
            START,
            {"id": "code", "type": "javascript", "inputs": {"code": 5}},  # schema
            {"id": "late", "type": "end", "inputs": {"output": "{{ghost.result}}"}},  # a missing node
            {"id": "c", "type": "fanout"},
            {"id": "d", "type": "fanout"},  # c ↔ d: a cycle
            {"id": "cond", "type": "condition", "inputs": {"left": 1, "operator": "equals", "right": 1}},
        ],
        [
            ("start", "code"),
            ("code", "late", "success"),
            ("start", "c"),
            ("c", "d"),
            ("d", "c"),
            ("start", "cond"),
            ("cond", "late", "maybe"),  # no such handle
        ],
    )
    assert {(f[0], f[1]) for f in found} == {
        ("code", "inputs.code"),
        ("cond", "edges[6].sourceHandle"),
        ("c", "edges"),
        ("late", "inputs"),
    }, found
    assert any("'ghost', which is not a node" in f[2] for f in found)


def test_a_refused_edge_does_not_also_make_its_reference_a_non_ancestor() -> None:
    found = problems(
        [
            START,
            {"id": "cond", "type": "condition", "inputs": {"left": 1, "operator": "equals", "right": 1}},
            {"id": "end", "type": "end", "inputs": {"output": "{{cond.result}}"}},
        ],
        [("start", "cond"), ("cond", "end", "sideways")],
    )
    assert [f[:2] for f in found] == [("cond", "edges[1].sourceHandle")]


def test_empty_and_startless_graphs_are_refused() -> None:
    assert problems([], []) == [(None, "nodes", "A workflow needs at least a start node.")]
    assert problems([END], []) == [(None, "nodes", "A workflow needs a start node (type 'start').")]
    assert g.build({"nodes": [START, END], "edges": [{"source": "start", "target": "end"}]}).order == [
        "start",
        "end",
    ]


def test_the_api_answers_one_400_listing_all(client_for_owner: Any) -> None:
    client, base = client_for_owner
    graph = {
        "nodes": [
            START,
            {"id": "code", "type": "javascript", "inputs": {"code": 5}},
            {"id": "x", "type": "nope"},
        ],
        "edges": [{"source": "start", "target": "code"}, {"source": "start", "target": "x"}],
    }
    response = client.post(f"{base}/", {"name": "bad", "graph": graph}, format="json")
    assert response.status_code == 400
    listed = {(e["node_id"], e["field"]) for e in response.json()["error"]["details"]["graph"]}
    assert listed == {("code", "inputs.code"), ("x", "type")}


@pytest.fixture
def client_for_owner(make_user: Any, make_tenant: Any, db: Any) -> tuple[Any, str]:
    from rest_framework.test import APIClient

    user = make_user()
    tenant = make_tenant("Validation", owner=user)
    client = APIClient()
    client.force_authenticate(user)
    return client, f"/api/v1/tenants/{tenant.id}/workflows"
