"""Control flow beyond edges, through the REST API on the embedded worker: ``end`` with ``terminate``,
``join`` in ``any`` mode with ``cancel_others`` (a cancelling discriminator), cancelling one node, and
input sent to a node before it waits (kept, unless ``if_waiting``). Each is checked against the journal:
nothing starts or succeeds after a terminate or a cancel took effect."""

from __future__ import annotations

from typing import Any

import pytest

from apps.tenancy.models import Tenant, User
from tests.conftest import assert_error, token_client
from tests.workflows.polling import ENDED, states, wait_for
from tests.workflows.test_waiting import Api, approval_graph, graph

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api(embedded_worker: Any, owner_tenant: tuple[User, Tenant]) -> Api:
    user, tenant = owner_tenant
    return Api(token_client(user), tenant)


def ended(api: Api, iid: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: (d := api.detail(iid))["status"] in ENDED and d,
        what=f"run {iid} to end",
        seen=lambda: states(api.detail(iid)),
    )
    return found


def after(events: list[dict[str, Any]], seq: int, *types: str) -> list[dict[str, Any]]:
    return [e for e in events if e["seq"] > seq and e["type"] in types]


def test_end_with_terminate_ends_the_run_at_once(api: Api) -> None:
    iid = api.run(
        graph(
            [
                {"id": "start", "type": "start"},
                {"id": "quick", "type": "end", "inputs": {"output": "early", "terminate": True}},
                {"id": "slow", "type": "delay", "inputs": {"seconds": 30}},
                {"id": "later", "type": "end", "inputs": {"output": "late"}},
            ],
            [("start", "quick"), ("start", "slow"), ("slow", "later")],
        )
    )
    detail = ended(api, iid)
    assert detail["status"] == "succeeded" and detail["output"] == "early"
    assert {n: v["status"] for n, v in detail["nodes"].items()} == {
        "start": "succeeded",
        "quick": "succeeded",
        "slow": "canceled",
        "later": "canceled",
    }
    events = api.events(iid)
    assert {e["node_id"] for e in events if e["type"] == "node.canceled"} == {"slow", "later"}
    done = next(e for e in events if e["type"] == "instance.succeeded")
    assert not after(events, done["seq"], "node.running", "node.succeeded", "node.queued")


def test_join_any_with_cancel_others_cancels_the_losing_branches(api: Api) -> None:
    iid = api.run(
        graph(
            [
                {"id": "start", "type": "start"},
                {"id": "fast", "type": "fanout"},
                {"id": "slow", "type": "delay", "inputs": {"seconds": 30}},
                {"id": "slower", "type": "delay", "inputs": {"seconds": 60}},
                {"id": "side", "type": "delay", "inputs": {"seconds": 0.2}},
                {"id": "first", "type": "join", "inputs": {"mode": "any", "cancel_others": True}},
                {"id": "end", "type": "end", "inputs": {"output": "{{first}}"}},
                {"id": "side_end", "type": "end", "inputs": {"output": "side"}},
            ],
            [
                ("start", "fast"),
                ("start", "slow"),
                ("slow", "slower"),
                ("slower", "first"),
                ("fast", "first"),
                ("start", "side"),
                ("side", "side_end"),  # not a branch into the join: left alone
                ("first", "end"),
            ],
        )
    )
    detail = ended(api, iid)
    statuses = {n: v["status"] for n, v in detail["nodes"].items()}
    assert detail["status"] == "succeeded", states(detail)
    assert statuses["slow"] == "canceled" and statuses["slower"] == "canceled"
    assert statuses["first"] == "succeeded" and statuses["end"] == "succeeded"
    assert statuses["side"] == "succeeded" and statuses["side_end"] == "succeeded"
    assert set(detail["nodes"]["end"]["output"]) == {"fast"}  # the join's output: the branch that won


def test_join_any_without_cancel_others_waits_for_every_branch(api: Api) -> None:
    iid = api.run(
        graph(
            [
                {"id": "start", "type": "start"},
                {"id": "fast", "type": "fanout"},
                {"id": "slow", "type": "delay", "inputs": {"seconds": 0.3}},
                {"id": "first", "type": "join", "inputs": {"mode": "any"}},
                {"id": "end", "type": "end", "inputs": {"output": "done"}},
            ],
            [("start", "fast"), ("start", "slow"), ("slow", "first"), ("fast", "first"), ("first", "end")],
        )
    )
    detail = ended(api, iid)
    assert detail["status"] == "succeeded" and detail["nodes"]["slow"]["status"] == "succeeded"


def cancel_node(api: Api, iid: str, node_id: str) -> Any:
    return api.client.post(f"{api.base}/instances/{iid}/nodes/{node_id}/cancel/", {}, format="json")


def test_cancelling_one_node_fails_the_run_with_canceled(api: Api) -> None:
    iid = api.run(
        graph(
            [
                {"id": "start", "type": "start"},
                {"id": "slow", "type": "delay", "inputs": {"seconds": 30}},
                {"id": "end", "type": "end", "inputs": {"output": "never"}},
            ],
            [("start", "slow"), ("slow", "end")],
        )
    )
    api.wait_node(iid, "slow", "waiting")
    r = cancel_node(api, iid, "slow")
    assert r.status_code == 200, r.content
    detail = ended(api, iid)
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "canceled" and detail["error"]["node_id"] == "slow"
    assert {n: v["status"] for n, v in detail["nodes"].items()} == {
        "start": "succeeded",
        "slow": "canceled",
        "end": "canceled",
    }
    assert_error(cancel_node(api, iid, "slow"), 409, "conflict")  # not open any more
    assert_error(cancel_node(api, iid, "nope"), 400, "validation_error")


def test_cancelling_a_node_with_an_error_route_takes_it(api: Api) -> None:
    iid = api.run(
        graph(
            [
                {"id": "start", "type": "start"},
                {"id": "ask", "type": "approval", "on_error": "route", "inputs": {"message": "ok?"}},
                {"id": "yes", "type": "end", "inputs": {"output": "approved"}},
                {"id": "gave_up", "type": "end", "inputs": {"output": "gave up"}},
            ],
            [("start", "ask"), ("ask", "yes", "approved"), ("ask", "gave_up", "error")],
        )
    )
    api.wait_node(iid, "ask", "waiting")
    assert cancel_node(api, iid, "ask").status_code == 200
    detail = ended(api, iid)
    assert detail["status"] == "succeeded" and detail["output"] == "gave up", states(detail)
    assert detail["nodes"]["ask"]["status"] == "canceled"
    assert detail["nodes"]["gave_up"]["status"] == "succeeded"
    assert detail["nodes"]["yes"]["status"] == "skipped"


def test_input_sent_before_the_node_waits_is_kept_and_taken(api: Api) -> None:
    flow = approval_graph()
    flow["nodes"].insert(1, {"id": "first", "type": "delay", "inputs": {"seconds": 0.5}})
    flow["edges"][0] = {"source": "start", "target": "first"}
    flow["edges"].insert(1, {"source": "first", "target": "ask"})
    iid = api.run(flow)
    early = api.answer(iid, "ask", {"decision": "approved", "comment": "in advance"})
    assert early.status_code == 202, early.content  # kept: the approval does not wait yet
    detail = ended(api, iid)
    assert detail["status"] == "succeeded", states(detail)
    assert detail["output"]["branch"] == "approved" and detail["output"]["comment"] == "in advance"


def test_input_with_if_waiting_before_the_node_waits_is_409_and_not_kept(api: Api) -> None:
    flow = approval_graph()
    flow["nodes"].insert(1, {"id": "first", "type": "delay", "inputs": {"seconds": 0.5}})
    flow["edges"][0] = {"source": "start", "target": "first"}
    flow["edges"].insert(1, {"source": "first", "target": "ask"})
    iid = api.run(flow)
    refused = api.input(iid, {"node_id": "ask", "data": {"decision": "approved"}, "if_waiting": True})
    assert_error(refused, 409, "conflict")
    api.wait_node(iid, "ask", "waiting")  # it waits: nothing was kept
    assert api.answer(iid, "ask", {"decision": "rejected"}).status_code == 200
    assert ended(api, iid)["output"]["branch"] == "rejected"


def test_early_input_that_does_not_fit_is_dropped_and_the_node_waits(api: Api) -> None:
    flow = approval_graph(approvers=["someone-else"])
    flow["nodes"].insert(1, {"id": "first", "type": "delay", "inputs": {"seconds": 0.5}})
    flow["edges"][0] = {"source": "start", "target": "first"}
    flow["edges"].insert(1, {"source": "first", "target": "ask"})
    iid = api.run(flow)
    assert api.answer(iid, "ask", {"decision": "approved"}).status_code == 202
    api.wait_node(iid, "ask", "waiting")
    waited = [e for e in api.events(iid) if e["type"] == "node.waiting" and e["node_id"] == "ask"]
    assert waited and "early_input_refused" in waited[-1]["data"]


def test_the_run_page_cancels_one_waiting_step(api: Api, owner_tenant: tuple[User, Tenant]) -> None:
    from django.test import Client

    user, tenant = owner_tenant
    iid = api.run(approval_graph())
    api.wait_node(iid, "ask", "waiting")
    browser = Client()
    browser.force_login(user)
    page = browser.get(f"/t/{tenant.id}/runs/{iid}/")
    assert page.status_code == 200 and b"Cancel step" in page.content
    r = browser.post(f"/t/{tenant.id}/runs/{iid}/cancel-node/", {"node_id": "ask"})
    assert r.status_code == 302
    detail = ended(api, iid)
    assert detail["status"] == "failed" and detail["nodes"]["ask"]["status"] == "canceled"
    assert b"Cancel step" not in browser.get(f"/t/{tenant.id}/runs/{iid}/").content


def while_graph(condition: dict[str, Any], **loop_inputs: Any) -> dict[str, Any]:
    """start → count (a while loop whose body doubles its index) → end with the loop's output."""
    return graph(
        [
            {"id": "start", "type": "start"},
            {"id": "count", "type": "loop", "inputs": {"while": condition, **loop_inputs}},
            {"id": "double", "type": "javascript", "inputs": {"code": "return ctx.loop.index * 2"}},
            {"id": "end", "type": "end", "inputs": {"output": "{{count}}"}},
        ],
        [("start", "count"), ("count", "double", "loop"), ("count", "end", "completed")],
    )


def test_while_loop_runs_as_long_as_its_condition_holds(api: Api) -> None:
    iid = api.run(
        while_graph({"left": "{{loop.index}}", "operator": "less_than", "right": "{{input.n}}"}), {"n": 4}
    )
    detail = ended(api, iid)
    assert detail["status"] == "succeeded", states(detail)
    assert detail["output"] == {"results": [0, 2, 4, 6]}


def test_while_loop_reads_the_previous_result(api: Api) -> None:
    # iterate until the previous iteration's result reaches 10: 0, 2, 4, 6, 8, 10
    condition = {"left": "{{loop.last}}", "operator": "not_equals", "right": 10}
    detail = ended(api, api.run(while_graph(condition)))
    assert detail["output"] == {"results": [0, 2, 4, 6, 8, 10]}, states(detail)


def test_while_loop_that_never_holds_runs_no_iteration(api: Api) -> None:
    detail = ended(api, api.run(while_graph({"left": 1, "operator": "equals", "right": 2})))
    assert detail["status"] == "succeeded" and detail["output"] == {"results": []}


def test_while_loop_is_bounded_by_max_iterations(api: Api) -> None:
    detail = ended(api, api.run(while_graph({"left": 1, "operator": "equals", "right": 1}, max_iterations=3)))
    assert detail["output"] == {"results": [0, 2, 4], "stopped": "max_iterations"}, states(detail)


def test_loop_needs_items_or_while_not_both(api: Api) -> None:
    both = while_graph({"left": 1, "operator": "equals", "right": 1}, items=[1])
    r = api.client.post(f"{api.base}/", {"name": "both", "graph": both}, format="json")
    error = assert_error(r, 400, "validation_error")
    assert any(e["field"] == "inputs.items" for e in error["details"]["graph"])
