"""The ``subWorkflow`` node through the REST API: a child run per node, its output, failure, cancel
cascade (both ways), recursion, missing workflows and the nesting depth cap.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.tenancy.models import Tenant, User
from tests.conftest import assert_error, token_client
from tests.workflows import testnodes
from tests.workflows.polling import ENDED, states, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
assert testnodes.Flaky  # registers the test node types in this process (the embedded worker's too)


class Api:
    def __init__(self, client: APIClient, tenant: Tenant) -> None:
        self.client = client
        self.base = f"/api/v1/tenants/{tenant.id}/workflows"

    def create(self, graph: dict[str, Any], name: str = "Flow") -> str:
        r = self.client.post(f"{self.base}/", {"name": name, "graph": graph}, format="json")
        assert r.status_code == 201, r.content
        return str(r.json()["id"])

    def update(self, workflow_id: str, graph: dict[str, Any]) -> None:
        r = self.client.patch(f"{self.base}/{workflow_id}/", {"graph": graph}, format="json")
        assert r.status_code == 200, r.content

    def execute(self, workflow_id: str, input: Any = None) -> str:
        r = self.client.post(f"{self.base}/{workflow_id}/execute/", {"input": input or {}}, format="json")
        assert r.status_code == 202, r.content
        return str(r.json()["instance_id"])

    def test_run(self, graph: dict[str, Any], input: Any = None) -> str:
        r = self.client.post(f"{self.base}/test/", {"graph": graph, "input": input or {}}, format="json")
        assert r.status_code == 202, r.content
        return str(r.json()["instance_id"])

    def detail(self, iid: str) -> dict[str, Any]:
        r = self.client.get(f"{self.base}/instances/{iid}/")
        assert r.status_code == 200, r.content
        body: dict[str, Any] = r.json()
        return body

    def runs_of(self, workflow_id: str) -> list[dict[str, Any]]:
        r = self.client.get(f"{self.base}/instances/?workflow={workflow_id}")
        assert r.status_code == 200, r.content
        results: list[dict[str, Any]] = r.json()["results"]
        return results

    def events(self, iid: str) -> list[dict[str, Any]]:
        r = self.client.get(f"{self.base}/instances/{iid}/events/?page_size=500")
        assert r.status_code == 200, r.content
        results: list[dict[str, Any]] = r.json()["results"]
        return results

    def answer(self, iid: str, node_id: str, data: Any) -> Any:
        return self.client.post(
            f"{self.base}/instances/{iid}/input/", {"node_id": node_id, "data": data}, format="json"
        )

    def action(self, iid: str, name: str) -> Any:
        return self.client.post(f"{self.base}/instances/{iid}/{name}/", format="json")

    def wait_end(self, iid: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            detail = self.detail(iid)
            return detail if detail["status"] in ENDED else None

        found: dict[str, Any] = wait_for(
            check, what=f"run {iid} to end", seen=lambda: states(self.detail(iid))
        )
        return found

    def wait_waiting(self, iid: str, node_id: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            detail = self.detail(iid)
            assert detail["status"] not in ENDED, states(detail)
            node = detail["nodes"].get(node_id) or {}
            return detail if node.get("status") == "waiting" and detail["status"] == "waiting" else None

        found: dict[str, Any] = wait_for(
            check, what=f"{node_id} of {iid} waiting", seen=lambda: states(self.detail(iid))
        )
        return found

    def wait_child(self, iid: str, node_id: str = "sub") -> str:
        """The id of the child run the parent's subWorkflow node waits on."""
        detail = self.wait_waiting(iid, node_id)
        child = detail["nodes"][node_id]["waiting"]["child"]
        assert child, detail["nodes"][node_id]
        return str(child)


@pytest.fixture
def api(embedded_worker: Any, owner_tenant: tuple[User, Tenant]) -> Api:
    user, tenant = owner_tenant
    return Api(token_client(user), tenant)


def graph(nodes: list[dict[str, Any]], edges: list[tuple[str, ...]]) -> dict[str, Any]:
    out = []
    for edge in edges:
        item = {"source": edge[0], "target": edge[1]}
        if len(edge) > 2:
            item["sourceHandle"] = edge[2]
        out.append(item)
    return {"nodes": nodes, "edges": out}


def calls(workflow_id: str, input: Any = None, end_output: Any = "{{sub.output}}") -> dict[str, Any]:
    """start → sub (subWorkflow of ``workflow_id``) → end."""
    sub_inputs: dict[str, Any] = {"workflow": workflow_id}
    if input is not None:
        sub_inputs["input"] = input
    return graph(
        [
            {"id": "start", "type": "start"},
            {"id": "sub", "type": "subWorkflow", "inputs": sub_inputs},
            {"id": "end", "type": "end", "inputs": {"output": end_output}},
        ],
        [("start", "sub"), ("sub", "end")],
    )


# The child computes its output from its input with plain data nodes.
CHILD = graph(
    [
        {"id": "start", "type": "start"},
        {
            "id": "pick",
            "type": "transform",
            "inputs": {
                "data": "{{input.rows}}",
                "filter": [{"field": "qty", "operator": "greater_than", "value": 1}],
                "select": ["name"],
            },
        },
        {
            "id": "end",
            "type": "end",
            "inputs": {"output": {"names": "{{pick.result}}", "who": "{{input.who}}"}},
        },
    ],
    [("start", "pick"), ("pick", "end")],
)
ROWS = [{"name": "bolt", "qty": 3}, {"name": "nut", "qty": 1}, {"name": "gear", "qty": 2}]
CHILD_OUTPUT = {"names": [{"name": "bolt"}, {"name": "gear"}], "who": "ann"}

FAILING_CHILD = graph(
    [
        {"id": "start", "type": "start"},
        {"id": "boom", "type": "flaky", "inputs": {"fail": True}},
        {"id": "end", "type": "end", "inputs": {"output": "{{boom.value}}"}},
    ],
    [("start", "boom"), ("boom", "end")],
)

WAITING_CHILD = graph(
    [
        {"id": "start", "type": "start"},
        {"id": "ask", "type": "approval", "inputs": {}},
        {"id": "end", "type": "end", "inputs": {"output": {"decision": "{{ask.decision}}"}}},
    ],
    [("start", "ask"), ("ask", "end", "approved"), ("ask", "end", "rejected")],
)


# --- success ----------------------------------------------------------------------------------------
def test_parent_gets_the_child_output(api: Api) -> None:
    child_wf = api.create(CHILD, "Child")
    parent_wf = api.create(
        calls(
            child_wf,
            input={"rows": "{{input.rows}}", "who": "{{input.name}}"},
            end_output={"child": "{{sub.output}}", "run": "{{sub.instance_id}}"},
        ),
        "Parent",
    )
    iid = api.execute(parent_wf, {"rows": ROWS, "name": "ann"})
    done = api.wait_end(iid)
    assert done["status"] == "succeeded", done["error"]

    children = api.runs_of(child_wf)
    assert len(children) == 1
    child = api.detail(children[0]["id"])
    assert done["output"] == {"child": CHILD_OUTPUT, "run": child["id"]}
    assert done["nodes"]["sub"]["output"] == {"output": CHILD_OUTPUT, "instance_id": child["id"]}
    assert child["status"] == "succeeded"
    assert child["trigger"] == "subworkflow"
    assert child["parent"] == iid
    assert child["depth"] == 1
    assert child["input"] == {"rows": ROWS, "who": "ann"}
    assert child["output"] == CHILD_OUTPUT
    assert child["workflow"] == child_wf and child["version"] == 1
    assert done["depth"] == 0 and done["parent"] is None and done["trigger"] != "subworkflow"

    sub_events = [e for e in api.events(iid) if e["node_id"] == "sub"]
    assert [e["type"] for e in sub_events] == [
        "node.queued",
        "node.running",
        "node.waiting",
        "node.queued",
        "node.running",
        "node.succeeded",
    ]
    assert sub_events[2]["data"]["child"] == child["id"]
    assert sub_events[3]["data"]["reason"] == "child_ended"
    assert sub_events[3]["data"]["child"] == child["id"]


def test_child_without_input_gets_an_empty_object(api: Api) -> None:
    child_wf = api.create(
        graph(
            [
                {"id": "start", "type": "start"},
                {"id": "end", "type": "end", "inputs": {"output": "{{input}}"}},
            ],
            [("start", "end")],
        ),
        "Echo",
    )
    iid = api.test_run(calls(child_wf))  # a test run (unsaved graph) may call a saved workflow too
    done = api.wait_end(iid)
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == {}
    child = api.runs_of(child_wf)[0]
    assert child["input"] == {} and child["parent"] == iid and child["depth"] == 1


def test_a_chain_of_three_nests_depths(api: Api) -> None:
    c = api.create(CHILD, "C")
    b = api.create(calls(c, input="{{input}}"), "B")
    a = api.create(calls(b, input="{{input}}", end_output={"deep": "{{sub.output}}"}), "A")
    iid = api.execute(a, {"rows": ROWS, "who": "ann"})
    done = api.wait_end(iid)
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == {"deep": CHILD_OUTPUT}
    (b_run,) = api.runs_of(b)
    (c_run,) = api.runs_of(c)
    assert (b_run["parent"], b_run["depth"]) == (iid, 1)
    assert (c_run["parent"], c_run["depth"]) == (b_run["id"], 2)


def test_child_waiting_for_approval_keeps_the_parent_waiting(api: Api) -> None:
    child_wf = api.create(WAITING_CHILD, "Needs approval")
    iid = api.execute(api.create(calls(child_wf), "Parent"))
    child = api.wait_child(iid)
    api.wait_waiting(child, "ask")
    detail = api.detail(iid)
    assert detail["status"] == "waiting"
    assert detail["nodes"]["sub"]["waiting"] == {"child": child}
    assert detail["nodes"]["end"]["status"] == "pending"

    error = assert_error(api.answer(iid, "sub", {"decision": "approved"}), 409, "conflict")  # not for input
    assert "sub" in error["message"]
    assert api.detail(iid)["nodes"]["sub"]["status"] == "waiting"

    assert api.answer(child, "ask", {"decision": "approved"}).status_code == 200
    done = api.wait_end(iid)
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == {"decision": "approved"}
    assert api.detail(child)["status"] == "succeeded"


def test_waiting_for_a_child_does_not_count_as_an_attempt(api: Api) -> None:
    child_wf = api.create(FAILING_CHILD, "Failing")
    done = api.wait_end(api.execute(api.create(calls(child_wf), "Parent")))
    assert done["status"] == "failed"
    assert done["nodes"]["sub"]["error"]["code"] == "subworkflow_failed"
    assert (done["nodes"]["sub"]["attempts"], done["nodes"]["sub"]["error"]["attempt"]) == (1, 1)


# --- failure ------------------------------------------------------------------------------------------
def test_child_failure_fails_the_parent_node_and_run(api: Api) -> None:
    child_wf = api.create(FAILING_CHILD, "Failing")
    iid = api.execute(api.create(calls(child_wf), "Parent"))
    done = api.wait_end(iid)
    assert done["status"] == "failed"
    (child,) = api.runs_of(child_wf)
    assert child["status"] == "failed"
    assert child["error"]["code"] == "flaky" and child["error"]["node_id"] == "boom"

    sub = done["nodes"]["sub"]
    assert sub["status"] == "failed"
    assert sub["error"]["code"] == "subworkflow_failed"
    assert child["id"] in sub["error"]["message"]
    assert "flaky failure" in sub["error"]["message"]
    assert done["error"]["code"] == "subworkflow_failed"
    assert done["error"]["node_id"] == "sub"
    assert done["nodes"]["end"]["status"] == "canceled"
    assert len(api.runs_of(child_wf)) == 1  # a failed child is not retried by starting another


def test_child_failure_can_be_routed(api: Api) -> None:
    child_wf = api.create(FAILING_CHILD, "Failing")
    parent = graph(
        [
            {"id": "start", "type": "start"},
            {"id": "sub", "type": "subWorkflow", "inputs": {"workflow": child_wf}, "on_error": "route"},
            {"id": "ok", "type": "end", "inputs": {"output": "fine"}},
            {"id": "recover", "type": "end", "inputs": {"output": {"code": "{{sub.error.code}}"}}},
        ],
        [("start", "sub"), ("sub", "ok", "output"), ("sub", "recover", "error")],
    )
    done = api.wait_end(api.execute(api.create(parent, "Routed")))
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == {"code": "subworkflow_failed"}
    assert done["nodes"]["ok"]["status"] == "skipped"


def test_retry_of_the_parent_starts_a_new_child(api: Api) -> None:
    child_wf = api.create(FAILING_CHILD, "Fixed later")
    iid = api.execute(api.create(calls(child_wf, input={"rows": ROWS, "who": "ann"}), "Parent"))
    assert api.wait_end(iid)["status"] == "failed"
    api.update(child_wf, CHILD)  # the child is fixed: a new version
    r = api.action(iid, "retry")
    assert r.status_code == 200, r.content
    done = api.wait_end(iid)
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == CHILD_OUTPUT
    runs = api.runs_of(child_wf)
    assert sorted(r["status"] for r in runs) == ["failed", "succeeded"]
    assert {r["version"] for r in runs} == {1, 2}
    assert all(r["parent"] == iid for r in runs)


# --- cancel cascade -----------------------------------------------------------------------------------
def test_cancel_of_the_parent_cancels_the_child(api: Api) -> None:
    child_wf = api.create(WAITING_CHILD, "Needs approval")
    iid = api.execute(api.create(calls(child_wf), "Parent"))
    child = api.wait_child(iid)
    api.wait_waiting(child, "ask")

    r = api.action(iid, "cancel")
    assert r.status_code == 200, r.content
    parent = api.detail(iid)
    assert parent["status"] == "canceled"
    assert parent["nodes"]["sub"]["status"] == "canceled"
    assert parent["nodes"]["end"]["status"] == "canceled"
    kid = api.detail(child)
    assert kid["status"] == "canceled"
    assert kid["error"]["code"] == "canceled"
    assert kid["nodes"]["ask"]["status"] == "canceled"
    assert kid["nodes"]["end"]["status"] == "canceled"
    assert_error(api.answer(child, "ask", {"decision": "approved"}), 409, "conflict")
    assert_error(api.action(child, "cancel"), 409, "conflict")
    assert api.detail(iid)["status"] == "canceled"  # the child's end did not wake the canceled parent


def test_resume_of_a_canceled_parent_starts_a_new_child(api: Api) -> None:
    child_wf = api.create(WAITING_CHILD, "Needs approval")
    iid = api.execute(api.create(calls(child_wf), "Parent"))
    first = api.wait_child(iid)
    api.wait_waiting(first, "ask")
    assert api.action(iid, "cancel").status_code == 200
    assert api.detail(first)["status"] == "canceled"

    r = api.action(iid, "resume")
    assert r.status_code == 200, r.content
    second = api.wait_child(iid)
    assert second != first
    api.wait_waiting(second, "ask")
    assert api.detail(first)["status"] == "canceled"  # the old child stays canceled
    assert api.answer(second, "ask", {"decision": "rejected"}).status_code == 200
    done = api.wait_end(iid)
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == {"decision": "rejected"}
    assert sorted(r["status"] for r in api.runs_of(child_wf)) == ["canceled", "succeeded"]


def test_cancel_cascades_through_grandchildren(api: Api) -> None:
    c = api.create(WAITING_CHILD, "C")
    b = api.create(calls(c), "B")
    a = api.execute(api.create(calls(b), "A"))
    b_run = api.wait_child(a)
    c_run = api.wait_child(b_run)
    api.wait_waiting(c_run, "ask")
    assert api.detail(b_run)["depth"] == 1 and api.detail(c_run)["depth"] == 2
    assert api.action(a, "cancel").status_code == 200
    assert [api.detail(i)["status"] for i in (a, b_run, c_run)] == ["canceled", "canceled", "canceled"]
    assert api.detail(c_run)["nodes"]["ask"]["status"] == "canceled"


def test_failure_of_the_parent_cancels_the_child(api: Api) -> None:
    child_wf = api.create(WAITING_CHILD, "Needs approval")
    parent = graph(
        [
            {"id": "start", "type": "start"},
            {"id": "fan", "type": "fanout"},
            {"id": "sub", "type": "subWorkflow", "inputs": {"workflow": child_wf}},
            {"id": "gate", "type": "approval", "inputs": {}},
            {"id": "boom", "type": "flaky", "inputs": {"fail": True}},
        ],
        [("start", "fan"), ("fan", "sub"), ("fan", "gate"), ("gate", "boom", "approved")],
    )
    iid = api.execute(api.create(parent, "Parent"))
    child = api.wait_child(iid)
    api.wait_waiting(child, "ask")
    api.wait_waiting(iid, "gate")
    assert api.answer(iid, "gate", {"decision": "approved"}).status_code == 200
    done = api.wait_end(iid)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "flaky" and done["error"]["node_id"] == "boom"
    assert done["nodes"]["sub"]["status"] == "canceled"
    kid = api.detail(child)
    assert kid["status"] == "canceled"
    assert kid["nodes"]["ask"]["status"] == "canceled"


def test_cancel_of_the_child_fails_the_parent_node(api: Api) -> None:
    child_wf = api.create(WAITING_CHILD, "Needs approval")
    iid = api.execute(api.create(calls(child_wf), "Parent"))
    child = api.wait_child(iid)
    api.wait_waiting(child, "ask")

    assert api.action(child, "cancel").status_code == 200
    done = api.wait_end(iid)
    assert done["status"] == "failed"
    sub = done["nodes"]["sub"]
    assert sub["status"] == "failed"
    assert sub["error"]["code"] == "subworkflow_canceled"
    assert child in sub["error"]["message"]
    assert done["error"]["code"] == "subworkflow_canceled" and done["error"]["node_id"] == "sub"
    assert api.detail(child)["status"] == "canceled"


# --- refusals -----------------------------------------------------------------------------------------
def _sub_failure(api: Api, iid: str) -> dict[str, Any]:
    done = api.wait_end(iid)
    assert done["status"] == "failed", states(done)
    assert done["error"]["node_id"] == "sub"
    error: dict[str, Any] = done["nodes"]["sub"]["error"]
    assert done["error"]["code"] == error["code"]
    return error


def test_a_workflow_calling_itself_fails_with_recursion(api: Api) -> None:
    wf = api.create(CHILD, "Ouroboros")
    api.update(wf, calls(wf))
    iid = api.execute(wf)
    error = _sub_failure(api, iid)
    assert error["code"] == "subworkflow_recursion"
    assert "Ouroboros" in error["message"]
    assert [r["id"] for r in api.runs_of(wf)] == [iid]  # no child run was started


def test_indirect_recursion_fails_in_the_child(api: Api) -> None:
    a = api.create(CHILD, "A")
    b = api.create(calls(a), "B")
    api.update(a, calls(b))
    iid = api.execute(a)
    assert _sub_failure(api, iid)["code"] == "subworkflow_failed"
    (b_run,) = api.runs_of(b)
    b_detail = api.detail(b_run["id"])
    assert b_detail["status"] == "failed"
    assert b_detail["nodes"]["sub"]["error"]["code"] == "subworkflow_recursion"
    assert [r["id"] for r in api.runs_of(a)] == [iid]


@pytest.mark.parametrize("target", ["missing", "not-a-uuid", "other-tenant"])
def test_unknown_workflow_is_not_found(
    api: Api, target: str, make_user: Callable[..., User], make_tenant: Callable[..., Tenant]
) -> None:
    if target == "missing":
        workflow_id = str(uuid.uuid4())
    elif target == "not-a-uuid":
        workflow_id = "not-a-uuid"
    else:
        stranger = make_user()
        other = Api(token_client(stranger), make_tenant("Other", owner=stranger))
        workflow_id = other.create(CHILD, "Theirs")
    error = _sub_failure(api, api.execute(api.create(calls(workflow_id), "Parent")))
    assert error["code"] == "subworkflow_not_found"
    assert workflow_id in error["message"]
    if target == "other-tenant":
        assert other.runs_of(workflow_id) == []  # nothing ran in the other tenant


def test_depth_cap(api: Api, settings: Any) -> None:
    settings.JETADMIN_MAX_SUBWORKFLOW_DEPTH = 1
    c = api.create(CHILD, "C")
    b = api.create(calls(c), "B")
    a = api.create(calls(b), "A")
    iid = api.execute(a)
    assert _sub_failure(api, iid)["code"] == "subworkflow_failed"
    (b_run,) = api.runs_of(b)
    b_detail = api.detail(b_run["id"])
    assert b_detail["depth"] == 1 and b_detail["status"] == "failed"
    assert b_detail["nodes"]["sub"]["error"]["code"] == "subworkflow_depth"
    assert b_detail["error"]["code"] == "subworkflow_depth"
    assert api.runs_of(c) == []


def test_a_child_given_a_list_as_input_fails_with_a_clear_error(api: Api) -> None:
    """The child's start node refuses a non-object input by name (it used to fail with Python's own
    'dictionary update sequence' TypeError)."""
    child_wf = api.create(
        graph([{"id": "start", "type": "start"}, {"id": "end", "type": "end"}], [("start", "end")]),
        "Takes an object",
    )
    iid = api.test_run(calls(child_wf, input=[1, 2]))
    done = api.wait_end(iid)
    assert done["status"] == "failed", done
    child = api.runs_of(child_wf)[0]
    assert child["status"] == "failed"
    detail = api.detail(child["id"])
    assert detail["error"]["code"] == "bad_input", detail["error"]
    assert detail["error"]["message"] == "The run's input must be an object, not a list."


def test_runs_filtered_by_a_malformed_workflow_id_is_a_400(api: Api) -> None:
    error = assert_error(api.client.get(f"{api.base}/instances/?workflow=not-a-uuid"), 400)
    assert error["details"] == {"workflow": ["Not a valid id."]}
