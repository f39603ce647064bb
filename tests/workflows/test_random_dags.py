"""Property: random DAGs (up to 30 nodes, random branch choices and failures) always end with every
node in exactly one terminal state and the run itself terminal."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.workflows.engine.states import NODE_TERMINAL
from apps.workflows.models import NodeRun
from tests.workflows import testnodes

pytestmark = pytest.mark.django_db(transaction=True)
assert testnodes.Flaky


@st.composite
def dags(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(min_value=2, max_value=30))
    nodes: list[dict[str, Any]] = [{"id": "n0", "type": "start"}]
    edges: list[dict[str, Any]] = []
    for i in range(1, count):
        kind = draw(st.sampled_from(["fanout", "condition", "flaky", "join", "end"]))
        node: dict[str, Any] = {"id": f"n{i}", "type": kind}
        if kind == "condition":
            node["inputs"] = {"left": draw(st.booleans()), "operator": "equals", "right": True}
        elif kind == "flaky":
            node["inputs"] = {"fail": draw(st.booleans())}
            node["on_error"] = draw(st.sampled_from(["fail", "continue", "route"]))
        elif kind == "join":
            node["inputs"] = {"mode": draw(st.sampled_from(["all", "any"]))}
        elif kind == "end":
            node["inputs"] = {"output": i}
        nodes.append(node)
        parents = draw(
            st.lists(st.integers(min_value=0, max_value=i - 1), min_size=1, max_size=3, unique=True)
        )
        for p in parents:
            parent = nodes[p]
            if parent["type"] == "end":
                continue
            edge: dict[str, Any] = {"source": parent["id"], "target": node["id"]}
            if parent["type"] == "condition":
                edge["sourceHandle"] = draw(st.sampled_from(["true", "false"]))
            elif parent.get("on_error") == "route":
                edge["sourceHandle"] = draw(st.sampled_from(["output", "error"]))
            edges.append(edge)
    return {"nodes": nodes, "edges": edges}


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(graph=dags())
def test_random_dags_always_end(run_graph, graph):
    instance = run_graph(graph, timeout=60)
    assert instance.status in ("succeeded", "failed")
    statuses = dict(NodeRun.objects.filter(instance=instance).values_list("node_id", "status"))
    assert set(statuses) == {n["id"] for n in graph["nodes"]}  # exactly one run per node
    assert set(statuses.values()) <= NODE_TERMINAL, statuses
    fatal = [
        n["id"]
        for n in graph["nodes"]
        if n.get("on_error", "fail") == "fail" and statuses[n["id"]] == "failed"
    ]
    assert (instance.status == "failed") == bool(fatal), (instance.status, fatal, statuses)
