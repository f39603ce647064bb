"""Nodes that wait for a person (``approval``, ``dataCollection``), driven through the REST API.

CONTRACT: ``POST .../workflows/instances/{iid}/input/`` ``{node_id, data, iteration?}`` resumes a
waiting node; 400 with field errors when the data does not fit, 403 when the person may not answer,
409 when that node is not waiting. Expiry (``expires_s``) takes the ``expired`` handle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.tenancy.models import Tenant, User
from apps.workflows.models import NodeRun
from tests.conftest import add_member, assert_error, token_client
from tests.workflows.polling import ENDED, states, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class Api:
    """The workflows API of one tenant, as one user."""

    def __init__(self, client: APIClient, tenant: Tenant) -> None:
        self.client = client
        self.tenant = tenant
        self.base = f"/api/v1/tenants/{tenant.id}/workflows"

    def as_user(self, user: User) -> Api:
        return Api(token_client(user), self.tenant)

    def create(self, graph: dict[str, Any], name: str = "Waiting") -> str:
        r = self.client.post(f"{self.base}/", {"name": name, "graph": graph}, format="json")
        assert r.status_code == 201, r.content
        return str(r.json()["id"])

    def execute(self, workflow_id: str, input: Any = None) -> str:
        r = self.client.post(f"{self.base}/{workflow_id}/execute/", {"input": input or {}}, format="json")
        assert r.status_code == 202, r.content
        return str(r.json()["instance_id"])

    def run(self, graph: dict[str, Any], input: Any = None) -> str:
        return self.execute(self.create(graph), {"item": "crate"} if input is None else input)

    def detail(self, iid: str) -> dict[str, Any]:
        r = self.client.get(f"{self.base}/instances/{iid}/")
        assert r.status_code == 200, r.content
        body: dict[str, Any] = r.json()
        return body

    def events(self, iid: str) -> list[dict[str, Any]]:
        r = self.client.get(f"{self.base}/instances/{iid}/events/?page_size=500")
        assert r.status_code == 200, r.content
        results: list[dict[str, Any]] = r.json()["results"]
        return results

    def input(self, iid: str, body: Any) -> Any:
        return self.client.post(f"{self.base}/instances/{iid}/input/", body, format="json")

    def answer(self, iid: str, node_id: str, data: Any) -> Any:
        return self.input(iid, {"node_id": node_id, "data": data})

    def action(self, iid: str, name: str) -> Any:
        return self.client.post(f"{self.base}/instances/{iid}/{name}/", format="json")

    def wait_node(self, iid: str, node_id: str, status: str) -> dict[str, Any]:
        """Wait until ``node_id`` has ``status``; returns the instance detail at that moment."""

        def check() -> dict[str, Any] | None:
            detail = self.detail(iid)
            node = detail["nodes"].get(node_id) or {}
            return detail if node.get("status") == status else None

        found: dict[str, Any] = wait_for(
            check, what=f"node {node_id} of {iid} to be {status}", seen=lambda: states(self.detail(iid))
        )
        return found

    def wait_waiting(self, iid: str, node_id: str) -> dict[str, Any]:
        """Wait until the node AND the run are ``waiting`` (the run shows it waits for a person)."""

        def check() -> dict[str, Any] | None:
            detail = self.detail(iid)
            node = detail["nodes"].get(node_id) or {}
            assert detail["status"] not in ENDED, states(detail)  # ended: it will never wait
            return detail if node.get("status") == "waiting" and detail["status"] == "waiting" else None

        found: dict[str, Any] = wait_for(
            check, what=f"{node_id} of {iid} waiting", seen=lambda: states(self.detail(iid))
        )
        return found

    def wait_end(self, iid: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            detail = self.detail(iid)
            return detail if detail["status"] in ENDED else None

        found: dict[str, Any] = wait_for(
            check, what=f"run {iid} to end", seen=lambda: states(self.detail(iid))
        )
        return found


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


def approval_graph(**ask_inputs: Any) -> dict[str, Any]:
    """start → ask (approval) → one end node per handle, each saying which branch ran."""
    return graph(
        [
            {"id": "start", "type": "start"},
            {"id": "ask", "type": "approval", "inputs": {"message": "Ship {{input.item}}?", **ask_inputs}},
            {
                "id": "yes",
                "type": "end",
                "inputs": {
                    "output": {"branch": "approved", "by": "{{ask.by}}", "comment": "{{ask.comment}}"}
                },
            },
            {"id": "no", "type": "end", "inputs": {"output": {"branch": "rejected", "by": "{{ask.by}}"}}},
            {"id": "late", "type": "end", "inputs": {"output": {"branch": "expired"}}},
        ],
        [
            ("start", "ask"),
            ("ask", "yes", "approved"),
            ("ask", "no", "rejected"),
            ("ask", "late", "expired"),
        ],
    )


FORM_SCHEMA = {
    "type": "object",
    "required": ["name", "qty"],
    "properties": {"name": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
}


def form_graph(schema: Any = None, **form_inputs: Any) -> dict[str, Any]:
    return graph(
        [
            {"id": "start", "type": "start"},
            {
                "id": "form",
                "type": "dataCollection",
                "inputs": {"schema": schema or FORM_SCHEMA, **form_inputs},
            },
            {
                "id": "got",
                "type": "end",
                "inputs": {"output": {"form": "{{form.data}}", "by": "{{form.by}}"}},
            },
            {"id": "late", "type": "end", "inputs": {"output": {"branch": "expired"}}},
        ],
        [("start", "form"), ("form", "got", "submitted"), ("form", "late", "expired")],
    )


def node_events(events: list[dict[str, Any]], node_id: str) -> list[str]:
    return [e["type"] for e in events if e["node_id"] == node_id]


# --- approval ---------------------------------------------------------------------------------------
def test_approve_takes_the_approved_branch(api: Api, owner_tenant: tuple[User, Tenant]) -> None:
    user, _ = owner_tenant
    iid = api.run(approval_graph(), {"item": "crate"})
    detail = api.wait_waiting(iid, "ask")
    ask = detail["nodes"]["ask"]
    assert ask["waiting"]["since"], ask
    assert ask["waiting"]["expires_at"] is None  # no expires_s: waits forever
    assert {n: detail["nodes"][n]["status"] for n in ("start", "yes", "no", "late")} == {
        "start": "succeeded",
        "yes": "pending",
        "no": "pending",
        "late": "pending",
    }

    r = api.answer(iid, "ask", {"decision": "approved", "comment": "ok"})
    assert r.status_code == 200, r.content
    assert r.json()["id"] == iid
    assert r.json()["status"] in ("running", "succeeded")  # no longer waiting

    done = api.wait_end(iid)
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == {"branch": "approved", "by": user.username, "comment": "ok"}
    nodes = done["nodes"]
    assert nodes["ask"]["status"] == "succeeded"
    assert nodes["ask"]["output"] == {"decision": "approved", "comment": "ok", "by": user.username}
    assert nodes["ask"]["route"] == "approved"
    assert nodes["ask"]["waiting"] is None
    assert nodes["ask"]["attempts"] == 1  # waiting for a person is not an attempt
    assert {n: nodes[n]["status"] for n in ("yes", "no", "late")} == {
        "yes": "succeeded",
        "no": "skipped",
        "late": "skipped",
    }

    events = api.events(iid)
    assert node_events(events, "ask") == [
        "node.queued",
        "node.running",
        "node.waiting",
        "node.queued",
        "node.running",
        "node.succeeded",
    ]
    ask_events = [e for e in events if e["node_id"] == "ask"]
    assert ask_events[2]["data"]["kind"] == "input"
    assert ask_events[3]["data"]["reason"] == "input"
    assert ask_events[3]["data"]["by"] == user.username
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    run_events = [e["type"] for e in events if e["type"].startswith("instance.")]
    assert "instance.waiting" in run_events
    assert run_events[-1] == "instance.succeeded"


def test_reject_takes_the_rejected_branch(api: Api, owner_tenant: tuple[User, Tenant]) -> None:
    user, _ = owner_tenant
    iid = api.run(approval_graph(), {"item": "crate"})
    api.wait_waiting(iid, "ask")
    r = api.answer(iid, "ask", {"decision": "rejected"})
    assert r.status_code == 200, r.content
    done = api.wait_end(iid)
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == {"branch": "rejected", "by": user.username}
    nodes = done["nodes"]
    assert nodes["ask"]["output"] == {"decision": "rejected", "comment": None, "by": user.username}
    assert nodes["ask"]["route"] == "rejected"
    assert {n: nodes[n]["status"] for n in ("yes", "no", "late")} == {
        "yes": "skipped",
        "no": "succeeded",
        "late": "skipped",
    }


def test_expiry_takes_the_expired_branch_then_input_is_409(api: Api) -> None:
    iid = api.run(approval_graph(expires_s=1))
    detail = api.wait_waiting(iid, "ask")
    waiting = detail["nodes"]["ask"]["waiting"]
    assert waiting["since"] and waiting["expires_at"]
    assert waiting["expires_at"] > waiting["since"]

    done = api.wait_end(iid)  # nobody answers: the reconciler wakes the node when it expires
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == {"branch": "expired"}
    assert done["nodes"]["ask"]["output"] == {"decision": "expired", "comment": None, "by": None}
    assert done["nodes"]["ask"]["route"] == "expired"
    assert {n: done["nodes"][n]["status"] for n in ("yes", "no", "late")} == {
        "yes": "skipped",
        "no": "skipped",
        "late": "succeeded",
    }
    ask_events = [e for e in api.events(iid) if e["node_id"] == "ask"]
    assert [e["type"] for e in ask_events][2:4] == ["node.waiting", "node.queued"]
    assert ask_events[3]["data"]["reason"] == "due"

    error = assert_error(api.answer(iid, "ask", {"decision": "approved"}), 409, "conflict")
    assert "not waiting" in error["message"]
    assert api.detail(iid)["output"] == {"branch": "expired"}  # the late answer changed nothing


def test_invalid_input_is_400_and_the_node_keeps_waiting(api: Api, owner_tenant: tuple[User, Tenant]) -> None:
    user, _ = owner_tenant
    iid = api.run(approval_graph())
    api.wait_waiting(iid, "ask")

    error = assert_error(api.answer(iid, "ask", {"decision": "maybe"}), 400, "validation_error")
    assert set(error["details"]) == {"data.decision"}
    error = assert_error(api.answer(iid, "ask", {"decision": "approved", "comment": 5}), 400)
    assert set(error["details"]) == {"data.comment"}
    error = assert_error(api.answer(iid, "ask", {"decision": "approved", "extra": 1}), 400)
    assert set(error["details"]) == {"data"}
    error = assert_error(api.answer(iid, "ask", "approved"), 400, "validation_error")
    assert set(error["details"]) == {"data"}
    error = assert_error(api.answer(iid, "ask", ["approved"]), 400, "validation_error")
    assert set(error["details"]) == {"data"}
    error = assert_error(api.input(iid, {"data": {"decision": "approved"}}), 400, "validation_error")
    assert set(error["details"]) == {"node_id"}
    error = assert_error(api.input(iid, {"node_id": "ask"}), 400, "validation_error")
    assert set(error["details"]) == {"data"}
    error = assert_error(api.answer(iid, "ghost", {"decision": "approved"}), 400, "validation_error")
    assert set(error["details"]) == {"node_id"}
    error = assert_error(api.input(iid, ["ask"]), 400, "validation_error")

    detail = api.detail(iid)  # nothing was lost: still waiting, same since
    assert detail["status"] == "waiting"
    assert detail["nodes"]["ask"]["status"] == "waiting"
    assert detail["nodes"]["ask"]["waiting"]["since"]
    assert not [e for e in api.events(iid) if e["node_id"] == "ask" and e["data"].get("reason") == "input"]

    assert api.answer(iid, "ask", {"decision": "approved", "comment": "fine"}).status_code == 200
    done = api.wait_end(iid)
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == {"branch": "approved", "by": user.username, "comment": "fine"}


# --- 409: the node is not waiting --------------------------------------------------------------------
def test_input_twice_is_409(api: Api) -> None:
    iid = api.run(approval_graph())
    api.wait_waiting(iid, "ask")
    assert api.answer(iid, "ask", {"decision": "rejected"}).status_code == 200
    assert_error(api.answer(iid, "ask", {"decision": "approved"}), 409, "conflict")  # already answered
    done = api.wait_end(iid)
    assert done["status"] == "succeeded"
    assert done["output"]["branch"] == "rejected"  # the first answer counts
    assert_error(api.answer(iid, "ask", {"decision": "approved"}), 409, "conflict")  # run succeeded
    assert_error(api.answer(iid, "start", {"decision": "approved"}), 409, "conflict")  # never waited
    assert_error(api.answer(iid, "yes", {}), 409, "conflict")


def test_input_to_a_delay_waiting_on_its_timer_is_409(api: Api) -> None:
    iid = api.run(
        graph(
            [
                {"id": "start", "type": "start"},
                {"id": "pause", "type": "delay", "inputs": {"seconds": 60}},
                {"id": "end", "type": "end", "inputs": {"output": "{{pause.waited_s}}"}},
            ],
            [("start", "pause"), ("pause", "end")],
        )
    )
    detail = api.wait_node(iid, "pause", "waiting")
    assert detail["status"] == "running"  # a timer does not make the run wait for a person
    error = assert_error(api.answer(iid, "pause", {}), 409, "conflict")
    assert "pause" in error["message"]
    assert api.detail(iid)["nodes"]["pause"]["status"] == "waiting"  # untouched
    assert api.action(iid, "cancel").status_code == 200


# --- who may answer -------------------------------------------------------------------------------------
def test_approvers_limit_who_may_answer(
    api: Api, owner_tenant: tuple[User, Tenant], make_user: Callable[..., User]
) -> None:
    _, tenant = owner_tenant
    approver = make_user("someone-else")
    editor = make_user()
    viewer = make_user()
    outsider = make_user()
    add_member(tenant, approver, "editor")
    add_member(tenant, editor, "editor")
    add_member(tenant, viewer, "viewer")

    iid = api.run(approval_graph(approvers=["someone-else"]))
    api.wait_waiting(iid, "ask")
    ok = {"decision": "approved", "comment": "lgtm"}

    assert_error(api.answer(iid, "ask", ok), 403, "permission_denied")  # the owner is not listed
    assert_error(api.as_user(editor).answer(iid, "ask", ok), 403, "permission_denied")
    assert_error(api.as_user(viewer).answer(iid, "ask", ok), 403, "permission_denied")  # no workflow.run
    assert_error(api.as_user(outsider).answer(iid, "ask", ok), 404, "not_found")  # not a member
    assert api.detail(iid)["nodes"]["ask"]["status"] == "waiting"

    r = api.as_user(approver).answer(iid, "ask", ok)
    assert r.status_code == 200, r.content
    done = api.wait_end(iid)
    assert done["status"] == "succeeded", done["error"]
    assert done["nodes"]["ask"]["output"] == {"decision": "approved", "comment": "lgtm", "by": "someone-else"}
    assert done["output"] == {"branch": "approved", "by": "someone-else", "comment": "lgtm"}


def test_non_approver_403_says_who_may_answer(api: Api) -> None:
    iid = api.run(approval_graph(approvers=["someone-else"]))
    api.wait_waiting(iid, "ask")
    error = assert_error(api.answer(iid, "ask", {"decision": "approved"}), 403, "permission_denied")
    assert "someone-else" in error["message"]


def test_approvers_match_email_case_insensitively(
    api: Api, owner_tenant: tuple[User, Tenant], make_user: Callable[..., User]
) -> None:
    _, tenant = owner_tenant
    approver = make_user()
    add_member(tenant, approver, "editor")
    iid = api.run(approval_graph(approvers=[approver.email.upper()]))
    api.wait_waiting(iid, "ask")
    assert api.as_user(approver).answer(iid, "ask", {"decision": "rejected"}).status_code == 200
    done = api.wait_end(iid)
    assert done["output"] == {"branch": "rejected", "by": approver.username}


def test_viewer_and_outsider_cannot_answer_an_open_approval(
    api: Api, owner_tenant: tuple[User, Tenant], make_user: Callable[..., User]
) -> None:
    _, tenant = owner_tenant
    viewer, outsider, editor = make_user(), make_user(), make_user()
    add_member(tenant, viewer, "viewer")
    add_member(tenant, editor, "editor")
    iid = api.run(approval_graph())
    api.wait_waiting(iid, "ask")
    assert_error(api.as_user(viewer).answer(iid, "ask", {"decision": "approved"}), 403, "permission_denied")
    assert_error(api.as_user(outsider).answer(iid, "ask", {"decision": "approved"}), 404, "not_found")
    assert api.as_user(viewer).detail(iid)["nodes"]["ask"]["status"] == "waiting"  # viewers may look
    assert api.as_user(editor).answer(iid, "ask", {"decision": "approved"}).status_code == 200
    assert api.wait_end(iid)["output"]["by"] == editor.username


# --- dataCollection ---------------------------------------------------------------------------------
def test_data_collection_validates_against_its_schema(api: Api, owner_tenant: tuple[User, Tenant]) -> None:
    user, _ = owner_tenant
    iid = api.run(form_graph())
    detail = api.wait_waiting(iid, "form")
    assert detail["nodes"]["form"]["waiting"]["since"]

    error = assert_error(api.answer(iid, "form", {}), 400, "validation_error")
    assert set(error["details"]) == {"data.name", "data.qty"}
    assert set(error["details"]["data.name"]) == {"This field is required."}
    error = assert_error(api.answer(iid, "form", {"qty": 1}), 400, "validation_error")
    assert error["details"] == {"data.name": ["This field is required."]}
    error = assert_error(api.answer(iid, "form", {"name": "bolt"}), 400)
    assert set(error["details"]) == {"data.qty"}
    error = assert_error(api.answer(iid, "form", {"name": "bolt", "qty": 0}), 400)
    assert set(error["details"]) == {"data.qty"}
    error = assert_error(api.answer(iid, "form", {"name": "bolt", "qty": "three"}), 400)
    assert set(error["details"]) == {"data.qty"}
    error = assert_error(api.answer(iid, "form", {"name": 7, "qty": 2}), 400)
    assert set(error["details"]) == {"data.name"}
    error = assert_error(api.answer(iid, "form", ["bolt", 2]), 400)
    assert set(error["details"]) == {"data"}
    assert api.detail(iid)["nodes"]["form"]["status"] == "waiting"

    r = api.answer(iid, "form", {"name": "bolt", "qty": 3})
    assert r.status_code == 200, r.content
    done = api.wait_end(iid)
    assert done["status"] == "succeeded", done["error"]
    assert done["nodes"]["form"]["output"] == {"data": {"name": "bolt", "qty": 3}, "by": user.username}
    assert done["nodes"]["form"]["route"] == "submitted"
    assert done["nodes"]["late"]["status"] == "skipped"
    assert done["output"] == {"form": {"name": "bolt", "qty": 3}, "by": user.username}


def test_data_collection_reports_each_missing_field_once(api: Api) -> None:
    iid = api.run(form_graph())
    api.wait_waiting(iid, "form")
    error = assert_error(api.answer(iid, "form", {}), 400, "validation_error")
    assert error["details"] == {
        "data.name": ["This field is required."],
        "data.qty": ["This field is required."],
    }


def test_data_collection_expires(api: Api) -> None:
    iid = api.run(form_graph(expires_s=0.5))
    done = api.wait_end(iid)
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == {"branch": "expired"}
    assert done["nodes"]["form"]["route"] == "expired"
    assert done["nodes"]["got"]["status"] == "skipped"
    assert_error(api.answer(iid, "form", {"name": "bolt", "qty": 3}), 409, "conflict")


def test_invalid_form_schema_is_400_at_create(api: Api) -> None:
    r = api.client.post(f"{api.base}/", {"name": "Bad form", "graph": form_graph({"type": 5})}, format="json")
    error = assert_error(r, 400, "validation_error")
    problems = error["details"]["graph"]
    assert [(p["node_id"], p["field"]) for p in problems] == [("form", "inputs.schema")], problems
    assert "Not a valid JSON Schema" in problems[0]["message"]
    r = api.client.post(f"{api.base}/validate/", {"graph": form_graph({"type": 5})}, format="json")
    assert r.status_code == 200 and r.json()["valid"] is False
    error = assert_error(
        api.client.post(f"{api.base}/", {"name": "No schema", "graph": form_graph("x")}, format="json"), 400
    )
    assert [(p["node_id"], p["field"]) for p in error["details"]["graph"]] == [("form", "inputs.schema")]


# --- cancel and resume ---------------------------------------------------------------------------------
def test_cancel_while_waiting_then_resume(api: Api, owner_tenant: tuple[User, Tenant]) -> None:
    user, _ = owner_tenant
    iid = api.run(approval_graph())
    api.wait_waiting(iid, "ask")

    r = api.action(iid, "cancel")
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "canceled"
    detail = api.detail(iid)
    assert detail["status"] == "canceled"
    assert detail["error"]["code"] == "canceled"
    assert {n: v["status"] for n, v in detail["nodes"].items()} == {
        "start": "succeeded",
        "ask": "canceled",
        "yes": "canceled",
        "no": "canceled",
        "late": "canceled",
    }
    assert detail["nodes"]["ask"]["waiting"] is None
    assert_error(api.answer(iid, "ask", {"decision": "approved"}), 409, "conflict")
    assert_error(api.action(iid, "cancel"), 409, "conflict")

    r = api.action(iid, "resume")
    assert r.status_code == 200, r.content
    assert r.json()["status"] in ("running", "waiting")
    detail = api.wait_waiting(iid, "ask")  # the approval asks again
    assert detail["error"] is None
    assert detail["nodes"]["start"]["status"] == "succeeded"
    assert detail["nodes"]["ask"]["waiting"]["since"]

    assert api.answer(iid, "ask", {"decision": "approved", "comment": "again"}).status_code == 200
    done = api.wait_end(iid)
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == {"branch": "approved", "by": user.username, "comment": "again"}
    events = api.events(iid)
    run_events = [(e["type"], e["data"].get("reason")) for e in events if e["node_id"] == ""]
    resumed = run_events.index(("instance.running", "resume"))
    assert run_events[resumed - 1][0] == "instance.canceled"
    assert ("instance.waiting", None) in run_events[resumed:]  # it waited for the person again
    assert run_events[-1][0] == "instance.succeeded"
    ask_reasons = [
        e["data"].get("reason") for e in events if e["node_id"] == "ask" and e["type"] == "node.queued"
    ]
    assert ask_reasons == [None, "resume", "input"]

    assert_error(api.action(iid, "resume"), 409, "conflict")  # a succeeded run is not resumed
    assert_error(api.answer(iid, "ask", {"decision": "approved"}), 409, "conflict")


# --- several waiting nodes ---------------------------------------------------------------------------
def test_approvals_in_a_loop_are_answered_by_iteration(api: Api, owner_tenant: tuple[User, Tenant]) -> None:
    user, _ = owner_tenant
    iid = api.run(
        graph(
            [
                {"id": "start", "type": "start"},
                {"id": "each", "type": "loop", "inputs": {"items": "{{input.items}}", "concurrency": 2}},
                {"id": "ask", "type": "approval", "inputs": {"message": "Ship {{loop.item}}?"}},
                {"id": "end", "type": "end", "inputs": {"output": "{{each.results}}"}},
            ],
            [("start", "each"), ("each", "ask", "loop"), ("each", "end", "completed")],
        ),
        {"items": ["crate", "box"]},
    )
    waiting = wait_for(
        lambda: (
            set(
                NodeRun.objects.filter(instance_id=iid, node_id="ask", status="waiting").values_list(
                    "iteration", flat=True
                )
            )
            == {"each:0", "each:1"}
        ),
        what="both iterations waiting",
    )
    assert waiting
    # Two iterations park at the same moment, each seeing the other still running: the reconciler
    # marks the run waiting on its next pass.
    wait_for(lambda: api.detail(iid)["status"] == "waiting", timeout=5, what="the run to show waiting")

    error = assert_error(api.answer(iid, "ask", {"decision": "approved"}), 400, "validation_error")
    assert set(error["details"]) == {"iteration"}
    assert "each:0" in error["message"] and "each:1" in error["message"]
    error = assert_error(
        api.input(iid, {"node_id": "ask", "iteration": "each:7", "data": {"decision": "approved"}}), 400
    )
    assert set(error["details"]) == {"node_id"}

    r = api.input(iid, {"node_id": "ask", "iteration": "each:1", "data": {"decision": "approved"}})
    assert r.status_code == 200, r.content
    assert_error(
        api.input(iid, {"node_id": "ask", "iteration": "each:1", "data": {"decision": "approved"}}), 409
    )
    r = api.input(iid, {"node_id": "ask", "iteration": "each:0", "data": {"decision": "rejected"}})
    assert r.status_code == 200, r.content
    done = api.wait_end(iid)
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == [
        {"decision": "rejected", "comment": None, "by": user.username},
        {"decision": "approved", "comment": None, "by": user.username},
    ]


def _two_approvals() -> dict[str, Any]:
    return graph(
        [
            {"id": "start", "type": "start"},
            {"id": "fan", "type": "fanout"},
            {"id": "a1", "type": "approval", "inputs": {}},
            {"id": "a2", "type": "approval", "inputs": {}},
            {"id": "join", "type": "join", "inputs": {"mode": "all"}},
            {
                "id": "end",
                "type": "end",
                "inputs": {"output": {"a1": "{{a1.decision}}", "a2": "{{a2.decision}}"}},
            },
        ],
        [
            ("start", "fan"),
            ("fan", "a1"),
            ("fan", "a2"),
            ("a1", "join", "approved"),
            ("a1", "join", "rejected"),
            ("a2", "join", "approved"),
            ("a2", "join", "rejected"),
            ("join", "end"),
        ],
    )


def test_two_parallel_approvals_both_answered(api: Api) -> None:
    iid = api.run(_two_approvals())
    api.wait_waiting(iid, "a1")
    api.wait_waiting(iid, "a2")
    assert api.answer(iid, "a2", {"decision": "rejected"}).status_code == 200
    api.wait_node(iid, "a2", "succeeded")
    assert api.answer(iid, "a1", {"decision": "approved"}).status_code == 200
    done = api.wait_end(iid)
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == {"a1": "approved", "a2": "rejected"}


def test_run_still_shows_waiting_while_another_approval_is_open(api: Api) -> None:
    iid = api.run(_two_approvals())
    api.wait_waiting(iid, "a1")
    api.wait_waiting(iid, "a2")
    assert api.answer(iid, "a1", {"decision": "approved"}).status_code == 200
    detail = api.wait_node(iid, "a1", "succeeded")
    assert detail["nodes"]["join"]["status"] == "pending"
    assert detail["nodes"]["a2"]["status"] == "waiting"
    # Nothing can run: the run waits only for the person who answers a2.
    wait_for(
        lambda: api.detail(iid)["status"] == "waiting",
        timeout=2,
        what="the run to show waiting",
        seen=lambda: states(api.detail(iid)),
    )
