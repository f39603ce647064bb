"""The engine end to end on the in-process worker: outputs, the error model, retries, loops, delays.

Each ``test_error_model_*`` is one row of the error model in docs/engine.md.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from apps.tenancy import services as tenancy
from apps.workflows import services
from apps.workflows.models import InstanceEvent, NodeRun
from tests.workflows import testnodes
from tests.workflows.conftest import nodes
from tests.workflows.graphs import SALES_INPUT, SALES_OUTPUT, SALES_REPORT, diamond

pytestmark = pytest.mark.django_db(transaction=True)
assert testnodes.Flaky  # registers the test node types in this process


@pytest.fixture(autouse=True)
def _ledger() -> None:
    testnodes.ledger_create()


def g(nodes_: list[dict[str, Any]], edges: list[tuple[str, ...]]) -> dict[str, Any]:
    out = []
    for edge in edges:
        item = {"source": edge[0], "target": edge[1]}
        if len(edge) > 2:
            item["sourceHandle"] = edge[2]
        out.append(item)
    return {"nodes": nodes_, "edges": out}


def test_sales_report_output(run_graph):
    instance = run_graph(SALES_REPORT, SALES_INPUT)
    assert instance.status == "succeeded", instance.error
    assert instance.output == SALES_OUTPUT
    assert nodes(instance)["empty"] == "skipped"
    assert set(nodes(instance, "each_month:0").values()) == {"succeeded"}


def test_sales_report_empty_branch(run_graph):
    instance = run_graph(SALES_REPORT, {"rows": [], "min_amount": 10})
    assert instance.status == "succeeded"
    assert instance.output == {"totals": [], "labels": []}
    assert nodes(instance)["each_month"] == "skipped" and nodes(instance)["end"] == "skipped"


def test_journal_is_ordered_and_complete(run_graph):
    instance = run_graph(diamond(3, "fanout"))
    types = list(
        InstanceEvent.objects.filter(instance=instance).order_by("id").values_list("type", "node_id")
    )
    assert types[0] == ("instance.queued", "")
    assert types[-1] == ("instance.succeeded", "")
    for node_id in ("start", "fan", "b0", "b1", "b2", "join", "after", "end"):
        seen = [t for t, n in types if n == node_id]
        assert seen == ["node.queued", "node.running", "node.succeeded"], (node_id, seen)


# --- error model ------------------------------------------------------------------------------------
CHAIN_AROUND = [("start", "x"), ("x", "after"), ("after", "end")]


def _around(x: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return g(
        [
            {"id": "start", "type": "start"},
            {"id": "x", **x, **extra},
            {"id": "after", "type": "fanout", "inputs": {"value": "{{x}}"}},
            {"id": "end", "type": "end", "inputs": {"output": "{{after.value}}"}},
        ],
        CHAIN_AROUND,
    )


def test_error_model_fail_fails_the_run_and_cancels_successors(run_graph):
    instance = run_graph(_around({"type": "flaky", "inputs": {"fail": True}}))
    assert instance.status == "failed"
    assert instance.error["node_id"] == "x" and instance.error["code"] == "flaky"
    assert nodes(instance) == {"start": "succeeded", "x": "failed", "after": "canceled", "end": "canceled"}


def test_error_model_retry_then_succeed(run_graph):
    instance = run_graph(
        _around({"type": "flaky", "inputs": {"succeed_on": 3}}, retry={"max_attempts": 3, "backoff_s": 0.05})
    )
    assert instance.status == "succeeded", instance.error
    x = NodeRun.objects.get(instance=instance, node_id="x")
    assert x.attempt == 3 and x.output == {"attempt": 3, "value": None}
    retrying = InstanceEvent.objects.filter(instance=instance, node_id="x", type="node.retrying")
    assert [e.data["attempt"] for e in retrying] == [1, 2]
    assert [e.data["retry_in_s"] for e in retrying] == [
        0.05,
        0.1,
    ]  # exponential backoff, kept in the database


def test_error_model_retries_exhausted_fail(run_graph):
    instance = run_graph(
        _around({"type": "flaky", "inputs": {"fail": True}}, retry={"max_attempts": 2, "backoff_s": 0.01})
    )
    assert instance.status == "failed"
    assert NodeRun.objects.get(instance=instance, node_id="x").attempt == 2


def test_error_model_non_retryable_errors_are_not_retried(run_graph):
    instance = run_graph(
        _around(
            {"type": "transform", "inputs": {"data": "{{input.missing}}"}},
            retry={"max_attempts": 5, "backoff_s": 0.01},
        )
    )
    assert instance.status == "failed"
    x = NodeRun.objects.get(instance=instance, node_id="x")
    assert x.attempt == 1 and x.error["code"] == "template_error"
    assert "input" in x.error["message"] and "missing" in x.error["message"]


def test_error_model_continue_runs_successors(run_graph):
    graph = _around({"type": "flaky", "inputs": {"fail": True}}, on_error="continue")
    graph["nodes"][2]["inputs"] = {"value": "{{x.error.code}}"}
    instance = run_graph(graph)
    assert instance.status == "succeeded", instance.error
    assert instance.output == "flaky"
    assert nodes(instance)["x"] == "failed"


def test_error_model_continue_gives_successors_the_error_object(run_graph):
    instance = run_graph(_around({"type": "flaky", "inputs": {"fail": True}}, on_error="continue"))
    # {{x}} of a failed node is {"error": {...}}: "after" runs with it and "end" returns it.
    assert instance.status == "succeeded", instance.error
    error = {"code": "flaky", "message": "flaky failure on attempt 1", "attempt": 1}
    assert instance.output == {"error": error}
    assert nodes(instance) == {"start": "succeeded", "x": "failed", "after": "succeeded", "end": "succeeded"}


def test_error_model_continue_then_reference_to_missing_output_fails_successor(run_graph):
    graph = _around({"type": "flaky", "inputs": {"fail": True}}, on_error="continue")
    graph["nodes"][2]["inputs"] = {"value": "{{x.value}}"}  # the output x would have had, had it succeeded
    instance = run_graph(graph)
    assert instance.status == "failed"
    assert nodes(instance) == {"start": "succeeded", "x": "failed", "after": "failed", "end": "canceled"}
    after = NodeRun.objects.get(instance=instance, node_id="after")
    assert after.error["code"] == "template_error" and after.attempt == 1
    # names the node, the input, the expression and the keys that do exist
    assert after.error["message"] == (
        "node 'after', input 'value': {{x.value}} — x has no key 'value'; available keys: error."
    )
    assert instance.error["node_id"] == "after" and instance.error["code"] == "template_error"


def test_error_model_continue_on_condition_takes_false(run_graph):
    graph = g(
        [
            {"id": "start", "type": "start"},
            {
                "id": "c",
                "type": "condition",
                "on_error": "continue",
                "inputs": {"left": "x", "operator": "matches_regex", "right": "("},
            },
            {"id": "yes", "type": "end", "inputs": {"output": "yes"}},
            {"id": "no", "type": "end", "inputs": {"output": "no"}},
        ],
        [("start", "c"), ("c", "yes", "true"), ("c", "no", "false")],
    )
    instance = run_graph(graph)
    assert instance.status == "succeeded" and instance.output == "no"
    assert nodes(instance) == {"start": "succeeded", "c": "failed", "yes": "skipped", "no": "succeeded"}


def test_error_model_route_follows_the_error_handle(run_graph):
    graph = g(
        [
            {"id": "start", "type": "start"},
            {"id": "x", "type": "flaky", "inputs": {"fail": True}, "on_error": "route"},
            {"id": "ok", "type": "end", "inputs": {"output": "ok"}},
            {"id": "handler", "type": "end", "inputs": {"output": "{{x.error}}"}},
        ],
        [("start", "x"), ("x", "ok"), ("x", "handler", "error")],
    )
    instance = run_graph(graph)
    assert instance.status == "succeeded"
    assert instance.output == {"code": "flaky", "message": "flaky failure on attempt 1", "attempt": 1}
    assert nodes(instance) == {"start": "succeeded", "x": "failed", "ok": "skipped", "handler": "succeeded"}


def test_error_model_route_without_error_edge_skips_successors(run_graph):
    graph = g(
        [
            {"id": "start", "type": "start"},
            {"id": "x", "type": "flaky", "inputs": {"fail": True}, "on_error": "route"},
            {"id": "end", "type": "end", "inputs": {"output": "ok"}},
        ],
        [("start", "x"), ("x", "end")],
    )
    instance = run_graph(graph)
    assert instance.status == "succeeded" and instance.output is None
    assert nodes(instance)["end"] == "skipped"


def test_error_model_join_all_with_failed_branch_fails_run(run_graph):
    graph = diamond(3, "fanout")
    graph["nodes"][3] = {"id": "b1", "type": "flaky", "inputs": {"fail": True}}
    instance = run_graph(graph)
    assert instance.status == "failed"
    assert nodes(instance)["join"] == "canceled"


def test_error_model_join_all_with_skipped_branch_runs_with_the_rest(run_graph):
    graph = g(
        [
            {"id": "start", "type": "start"},
            {"id": "c", "type": "condition", "inputs": {"left": 1, "operator": "equals", "right": 2}},
            {"id": "a", "type": "fanout", "inputs": {"value": "a"}},
            {"id": "b", "type": "fanout", "inputs": {"value": "b"}},
            {"id": "j", "type": "join"},
            {"id": "end", "type": "end", "inputs": {"output": "{{j}}"}},
        ],
        [("start", "c"), ("c", "a", "true"), ("start", "b"), ("a", "j"), ("b", "j"), ("j", "end")],
    )
    instance = run_graph(graph)
    assert instance.status == "succeeded"
    assert instance.output == {"b": {"value": "b"}}
    assert nodes(instance)["a"] == "skipped"


def test_error_model_join_all_branches_skipped_skips_join(run_graph):
    graph = g(
        [
            {"id": "start", "type": "start"},
            {"id": "c", "type": "condition", "inputs": {"left": 1, "operator": "equals", "right": 2}},
            {"id": "a", "type": "fanout"},
            {"id": "b", "type": "fanout"},
            {"id": "j", "type": "join"},
            {"id": "end", "type": "end", "inputs": {"output": "joined"}},
        ],
        [("start", "c"), ("c", "a", "true"), ("c", "b", "true"), ("a", "j"), ("b", "j"), ("j", "end")],
    )
    instance = run_graph(graph)
    assert instance.status == "succeeded" and instance.output is None
    assert nodes(instance) == {
        "start": "succeeded",
        "c": "succeeded",
        "a": "skipped",
        "b": "skipped",
        "j": "skipped",
        "end": "skipped",
    }


def test_error_model_join_any_runs_once_on_first_branch(run_graph):
    graph = g(
        [
            {"id": "start", "type": "start"},
            {"id": "fast", "type": "fanout", "inputs": {"value": "fast"}},
            {"id": "slow", "type": "sleep", "inputs": {"seconds": 0.5}},
            {"id": "j", "type": "join", "inputs": {"mode": "any"}},
            {"id": "end", "type": "end", "inputs": {"output": "{{j}}"}},
        ],
        [("start", "fast"), ("start", "slow"), ("fast", "j"), ("slow", "j"), ("j", "end")],
    )
    instance = run_graph(graph)
    assert instance.status == "succeeded"
    assert instance.output == {"fast": {"value": "fast"}}
    assert nodes(instance)["slow"] == "succeeded"  # the run waits for every branch before it ends
    assert InstanceEvent.objects.filter(instance=instance, node_id="j", type="node.running").count() == 1


def _loop_graph(body: dict[str, Any], concurrency: int = 1) -> dict[str, Any]:
    return g(
        [
            {"id": "start", "type": "start"},
            {"id": "l", "type": "loop", "inputs": {"items": "{{input.items}}", "concurrency": concurrency}},
            {"id": "b", **body},
            {"id": "end", "type": "end", "inputs": {"output": "{{l.results}}"}},
        ],
        [("start", "l"), ("l", "b", "loop"), ("l", "end", "completed")],
    )


def test_error_model_fail_inside_loop_fails_run_and_cancels_loop(run_graph):
    body = {"type": "flaky", "inputs": {"fail": "{{loop.item}}"}}
    instance = run_graph(_loop_graph(body), {"items": [False, True, False]})
    assert instance.status == "failed"
    assert instance.error["node_id"] == "b" and instance.error["iteration"] == "l:1"
    assert nodes(instance)["l"] == "canceled" and nodes(instance)["end"] == "canceled"


def test_error_model_continue_inside_loop_keeps_going(run_graph):
    body = {
        "type": "flaky",
        "inputs": {"fail": "{{loop.item}}", "value": "{{loop.index}}"},
        "on_error": "continue",
    }
    instance = run_graph(_loop_graph(body, concurrency=3), {"items": [False, True, False]})
    assert instance.status == "succeeded"
    assert instance.output == [{"attempt": 1, "value": 0}, None, {"attempt": 1, "value": 2}]


def test_error_model_route_inside_loop_handler_result(run_graph):
    graph = g(
        [
            {"id": "start", "type": "start"},
            {"id": "l", "type": "loop", "inputs": {"items": [1, 2]}},
            {"id": "x", "type": "flaky", "inputs": {"fail": True}, "on_error": "route"},
            {"id": "fix", "type": "fanout", "inputs": {"value": "{{x.error.code}}:{{loop.item}}"}},
            {"id": "end", "type": "end", "inputs": {"output": "{{l.results}}"}},
        ],
        [("start", "l"), ("l", "x", "loop"), ("x", "fix", "error"), ("l", "end", "completed")],
    )
    instance = run_graph(graph)
    assert instance.status == "succeeded"
    assert instance.output == [{"value": "flaky:1"}, {"value": "flaky:2"}]


def test_error_model_timeout(run_graph):
    graph = _around({"type": "javascript", "inputs": {"code": "while (true) {}"}}, timeout_s=0.5)
    started = time.monotonic()
    instance = run_graph(graph)
    assert time.monotonic() - started < 10
    assert instance.status == "failed"
    assert NodeRun.objects.get(instance=instance, node_id="x").error["code"] == "timeout"


def test_error_model_python_handler_timeout(run_graph):
    instance = run_graph(_around({"type": "sleep", "inputs": {"seconds": 0.6}}, timeout_s=0.2))
    assert instance.status == "failed"
    assert NodeRun.objects.get(instance=instance, node_id="x").error["code"] == "timeout"


def test_error_model_too_many_loop_items(run_graph):
    graph = _loop_graph({"type": "fanout"})
    graph["nodes"][1]["inputs"]["max_iterations"] = 2
    instance = run_graph(graph, {"items": [1, 2, 3]})
    assert instance.status == "failed" and instance.error["code"] == "too_many_items"


def test_error_model_cancel_stops_open_nodes(embedded_worker, owner_tenant):
    user, tenant = owner_tenant
    graph = _around({"type": "delay", "inputs": {"seconds": 30}})
    actor = tenancy.Actor(user=user)
    instance = services.workflow_test(actor=actor, tenant=tenant, graph=graph)
    deadline = time.monotonic() + 10
    while NodeRun.objects.get(instance=instance, node_id="x").status != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    services.instance_cancel(actor=actor, instance=instance, stop=True)
    instance.refresh_from_db()
    assert instance.status == "canceled"
    assert nodes(instance) == {"start": "succeeded", "x": "canceled", "after": "canceled", "end": "canceled"}


# --- loops, delays, retry ---------------------------------------------------------------------------
def test_loop_output_in_item_order_with_concurrency(run_graph):
    body = {"type": "sleep", "inputs": {"seconds": "{{loop.item}}"}}
    items = [0.3, 0.0, 0.2, 0.0, 0.1]
    instance = run_graph(_loop_graph(body, concurrency=5), {"items": items})
    assert instance.status == "succeeded"
    assert instance.output == [{"slept": s} for s in items]


def test_nested_loops_and_multi_node_bodies(run_graph):
    graph = g(
        [
            {"id": "start", "type": "start"},
            {"id": "outer", "type": "loop", "inputs": {"items": [[1, 2], [3]], "concurrency": 2}},
            {"id": "inner", "type": "loop", "inputs": {"items": "{{loop.item}}"}},
            {"id": "double", "type": "javascript", "inputs": {"code": "return ctx.loop.item * 2"}},
            {
                "id": "sum",
                "type": "aggregate",
                "inputs": {"data": [{"v": "{{inner.results}}"}], "metrics": [{"op": "count"}]},
            },
            {"id": "collect", "type": "fanout", "inputs": {"value": "{{inner.results}}"}},
            {"id": "end", "type": "end", "inputs": {"output": "{{outer.results}}"}},
        ],
        [
            ("start", "outer"),
            ("outer", "inner", "loop"),
            ("inner", "double", "loop"),
            ("inner", "sum", "completed"),
            ("sum", "collect"),
            ("outer", "end", "completed"),
        ],
    )
    instance = run_graph(graph)
    assert instance.status == "succeeded", instance.error
    assert instance.output == [{"value": [2, 4]}, {"value": [6]}]


def test_empty_loop_completes(run_graph):
    instance = run_graph(_loop_graph({"type": "fanout"}), {"items": []})
    assert instance.status == "succeeded" and instance.output == []


def test_delay_is_durable(run_graph):
    graph = _around({"type": "delay", "inputs": {"seconds": 0.4}})
    started = time.monotonic()
    instance = run_graph(graph)
    assert instance.status == "succeeded"
    assert time.monotonic() - started >= 0.4
    x = NodeRun.objects.get(instance=instance, node_id="x")
    assert x.output["waited_s"] >= 0.4
    assert InstanceEvent.objects.filter(instance=instance, node_id="x", type="node.waiting").exists()


def test_retry_from_failed_node_keeps_succeeded_outputs(embedded_worker, owner_tenant):
    testnodes.ledger_create()
    user, tenant = owner_tenant
    actor = tenancy.Actor(user=user)
    graph = g(
        [
            {"id": "start", "type": "start"},
            {"id": "side", "type": "ledger", "inputs": {"value": 1}},
            {"id": "x", "type": "flaky", "inputs": {"succeed_on": 2}},
            {"id": "end", "type": "end", "inputs": {"output": "{{x.attempt}}"}},
        ],
        [("start", "side"), ("side", "x"), ("x", "end")],
    )
    instance = services.workflow_test(actor=actor, tenant=tenant, graph=graph)
    instance, _ = services.instance_wait(instance=instance, timeout_s=20)
    assert instance.status == "failed"
    services.instance_retry(actor=actor, instance=instance)
    instance, _ = services.instance_wait(instance=instance, timeout_s=20)
    assert instance.status == "succeeded", instance.error
    assert instance.output == 2  # attempt numbers continue across a manual retry
    assert [node for _, node in testnodes.ledger_rows()] == ["side"]  # the succeeded node did not run again


def test_empty_graph_and_graph_without_start_are_refused(run_graph):
    from jetadmin.api.errors import ApplicationError

    with pytest.raises(ApplicationError) as empty:
        run_graph({"nodes": [], "edges": []})
    assert empty.value.details["graph"] == [
        {"node_id": None, "field": "nodes", "message": "A workflow needs at least a start node."}
    ]
    with pytest.raises(ApplicationError) as headless:
        run_graph({"nodes": [{"id": "end", "type": "end"}], "edges": []})
    assert headless.value.details["graph"] == [
        {"node_id": None, "field": "nodes", "message": "A workflow needs a start node (type 'start')."}
    ]


def test_error_model_continue_on_switch_takes_default(run_graph):
    graph = g(
        [
            {"id": "start", "type": "start"},
            {
                "id": "s",
                "type": "switch",
                "on_error": "continue",
                "inputs": {"value": "x", "cases": [{"id": "a", "operator": "matches_regex", "value": "("}]},
            },
            {"id": "a_end", "type": "end", "inputs": {"output": "a"}},
            {"id": "d_end", "type": "end", "inputs": {"output": "default"}},
        ],
        [("start", "s"), ("s", "a_end", "a"), ("s", "d_end", "default")],
    )
    instance = run_graph(graph)
    assert instance.status == "succeeded" and instance.output == "default"
    assert nodes(instance)["s"] == "failed" and nodes(instance)["a_end"] == "skipped"


def test_error_model_continue_on_loop_takes_completed(run_graph):
    graph = _loop_graph({"type": "fanout"})
    graph["nodes"][1]["inputs"]["max_iterations"] = 1
    graph["nodes"][1]["on_error"] = "continue"
    graph["nodes"][3]["inputs"]["output"] = "{{l.error.code}}"
    instance = run_graph(graph, {"items": [1, 2]})
    assert instance.status == "succeeded" and instance.output == "too_many_items"
    assert nodes(instance)["l"] == "failed"
    assert not NodeRun.objects.filter(instance=instance, node_id="b").exists()  # the body never ran


def test_error_model_continue_on_javascript_takes_success(run_graph):
    graph = _around(
        {"type": "javascript", "inputs": {"code": "throw new Error('boom')"}}, on_error="continue"
    )
    graph["nodes"][2]["inputs"] = {"value": "{{x.error.message}}"}
    instance = run_graph(graph)
    assert instance.status == "succeeded"
    assert "boom" in instance.output
