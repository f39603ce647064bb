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


@st.composite
def dags_with_control_flow(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[int, float] | None]:
    """Random DAGs that also hold short delays, terminating ends, cancelling joins and while loops; and
    maybe a (node index, seconds) at which the test cancels that one node while the run goes on."""
    count = draw(st.integers(min_value=2, max_value=20))
    nodes: list[dict[str, Any]] = [{"id": "n0", "type": "start"}]
    edges: list[dict[str, Any]] = []
    body: list[dict[str, Any]] = []
    body_edges: list[dict[str, Any]] = []
    for i in range(1, count):
        kind = draw(st.sampled_from(["fanout", "delay", "condition", "join", "end", "while"]))
        node: dict[str, Any] = {"id": f"n{i}", "type": kind}
        if kind == "while":  # a while loop of 0-3 iterations whose body is one short delay
            limit = draw(st.integers(min_value=0, max_value=3))
            node = {
                "id": f"n{i}",
                "type": "loop",
                "inputs": {"while": {"left": "{{loop.index}}", "operator": "less_than", "right": limit}},
            }
            body.append({"id": f"b{i}", "type": "delay", "inputs": {"seconds": 0.02}})
            body_edges.append({"source": f"n{i}", "target": f"b{i}", "sourceHandle": "loop"})
        elif kind == "delay":
            node["inputs"] = {"seconds": draw(st.sampled_from([0, 0.05, 0.2]))}
            node["on_error"] = draw(st.sampled_from(["fail", "route"]))
        elif kind == "condition":
            node["inputs"] = {"left": draw(st.booleans()), "operator": "equals", "right": True}
        elif kind == "join":
            node["inputs"] = {
                "mode": draw(st.sampled_from(["all", "any"])),
                "cancel_others": draw(st.booleans()),
            }
        elif kind == "end":
            node["inputs"] = {"output": i, "terminate": draw(st.booleans())}
        nodes.append(node)
        for p in draw(
            st.lists(st.integers(min_value=0, max_value=i - 1), min_size=1, max_size=3, unique=True)
        ):
            parent = nodes[p]
            if parent["type"] == "end":
                continue
            edge: dict[str, Any] = {"source": parent["id"], "target": node["id"]}
            if parent["type"] == "condition":
                edge["sourceHandle"] = draw(st.sampled_from(["true", "false"]))
            elif parent["type"] == "loop":
                edge["sourceHandle"] = "completed"
            elif parent.get("on_error") == "route":
                edge["sourceHandle"] = draw(st.sampled_from(["output", "error"]))
            edges.append(edge)
    nodes += body  # loop bodies last: no later node hangs off them (that would cross the loop's scope)
    edges += body_edges
    cancel = None
    if draw(st.booleans()):
        cancel = (draw(st.integers(min_value=1, max_value=count - 1)), draw(st.sampled_from([0, 0.05, 0.15])))
    return {"nodes": nodes, "edges": edges}, cancel


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=dags_with_control_flow())
def test_random_dags_with_terminate_cancelling_joins_and_node_cancels_end_cleanly(
    embedded_worker, owner_tenant, case
):
    import time

    from apps.tenancy.services import Actor
    from apps.workflows import services
    from apps.workflows.engine import control
    from apps.workflows.models import InstanceEvent

    graph, cancel = case
    user, tenant = owner_tenant
    instance = services.workflow_test(actor=Actor(user=user), tenant=tenant, graph=graph)
    if cancel is not None:
        time.sleep(cancel[1])
        control.cancel_node(str(instance.id), f"n{cancel[0]}", "", reason="canceled by the test")
    instance, timed_out = services.instance_wait(instance=instance, timeout_s=60)
    assert not timed_out, dict(NodeRun.objects.filter(instance=instance).values_list("node_id", "status"))
    assert instance.status in ("succeeded", "failed")
    statuses = dict(NodeRun.objects.filter(instance=instance, iteration="").values_list("node_id", "status"))
    assert set(statuses) == {
        n["id"] for n in graph["nodes"] if not n["id"].startswith("b")
    }  # b*: loop bodies
    every = set(NodeRun.objects.filter(instance=instance).values_list("status", flat=True))
    still_open = list(
        NodeRun.objects.filter(instance=instance)
        .exclude(status__in=NODE_TERMINAL)
        .values_list("node_id", "iteration", "node_type", "status")
    )
    assert every <= NODE_TERMINAL, (still_open, statuses)  # iterations too
    time.sleep(0.3)  # a worker still finishing a canceled node has had its chance to write (it must not)
    rows = (
        InstanceEvent.objects.filter(instance=instance).order_by("seq").values_list("seq", "type", "node_id")
    )
    events = [(int(seq or 0), t, n) for seq, t, n in rows]
    ended = next(seq for seq, t, _ in events if t in ("instance.succeeded", "instance.failed"))
    late = [
        (t, n)
        for seq, t, n in events
        if seq > ended and t in ("node.running", "node.succeeded", "node.queued")
    ]
    assert not late, (late, statuses)
    canceled_at = {n: seq for seq, t, n in events if t == "node.canceled"}
    after_cancel = [
        (t, n) for seq, t, n in events if n in canceled_at and seq > canceled_at[n] and t != "node.canceled"
    ]
    assert not after_cancel, (after_cancel, statuses)
