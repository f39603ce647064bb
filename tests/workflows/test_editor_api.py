"""The workflow editor's API: pinned node outputs in test runs (and only there), the editor's keys
(positions, labels, sticky notes, pins) kept with the graph, version diff and restore, saved test
cases run against expectations, and ``manage.py test_workflows`` (text report, JUnit XML, exit codes)."""

from __future__ import annotations

import copy
import io
import logging
import uuid
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from django.core.management import CommandError, call_command

from apps.tenancy.models import AuditLog
from apps.tenancy.services import Actor
from apps.workflows.models import NodeRun, Workflow, WorkflowTestCase
from tests.conftest import add_member, assert_error, token_client
from tests.workflows.conftest import nodes


@pytest.fixture
def ctx(make_user, make_tenant):
    owner = make_user()
    tenant = make_tenant("Acme", owner=owner)
    return token_client(owner), f"/api/v1/tenants/{tenant.id}/workflows", tenant


def _graph(nodes_: list[dict[str, Any]], edges: list[tuple[str, ...]], **extra: Any) -> dict[str, Any]:
    """A graph in its saved (normalized) form: every node has ``inputs``, edges are source/target."""
    return {
        "nodes": [{"inputs": {}, **n} for n in nodes_],
        "edges": [
            {"source": e[0], "target": e[1], **({"sourceHandle": e[2]} if len(e) > 2 else {})} for e in edges
        ],
        **extra,
    }


def _node_run(instance_id: str, node_id: str) -> NodeRun:
    return NodeRun.objects.get(instance_id=instance_id, node_id=node_id, iteration="")


# --- 1. pinned outputs ------------------------------------------------------------------------------
THROWS = "throw new Error('the database is not reachable from a test run')"
PINNED_ROWS = {"rows": [{"id": 1, "total": 40}, {"id": 2, "total": 60}]}


def _pinned_pipeline(pin: dict[str, Any] | None) -> dict[str, Any]:
    """start → orders (javascript that throws, maybe pinned) → count (javascript) → end."""
    orders: dict[str, Any] = {"id": "orders", "type": "javascript", "inputs": {"code": THROWS}}
    if pin is not None:
        orders["pinned"] = pin
    return _graph(
        [
            {"id": "start", "type": "start"},
            orders,
            {"id": "count", "type": "javascript", "inputs": {"code": "return ctx.orders.rows.length"}},
            {
                "id": "end",
                "type": "end",
                "inputs": {
                    "output": {"count": "{{count}}", "first": "{{orders.rows[0].id}}", "n": "{{input.n}}"}
                },
            },
        ],
        [("start", "orders"), ("orders", "count"), ("count", "end")],
    )


@pytest.mark.django_db(transaction=True)
def test_test_run_takes_the_pinned_output_without_executing_the_node(ctx, embedded_worker):
    client, w, _ = ctx
    # Unpinned, the node runs and fails: the pin below is what makes the run succeed.
    r = client.post(
        f"{w}/test/", {"graph": _pinned_pipeline(None), "input": {"n": 5}, "mode": "sync"}, format="json"
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["status"] == "failed" and body["error"]["node_id"] == "orders", body
    assert "the database is not reachable" in _node_run(body["instance_id"], "orders").error["message"]

    r = client.post(
        f"{w}/test/",
        {"graph": _pinned_pipeline({"output": PINNED_ROWS}), "input": {"n": 5}, "mode": "sync"},
        format="json",
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["status"] == "succeeded" and body["timed_out"] is False, body
    # downstream nodes read the pinned output through templates and ctx
    assert body["output"] == {"count": 2, "first": 1, "n": 5}
    orders = _node_run(body["instance_id"], "orders")
    assert orders.status == "succeeded" and orders.output == PINNED_ROWS and orders.error is None
    assert _node_run(body["instance_id"], "count").output == 2
    assert nodes(orders.instance) == {
        "start": "succeeded",
        "orders": "succeeded",
        "count": "succeeded",
        "end": "succeeded",
    }


def _branching(pin: dict[str, Any]) -> dict[str, Any]:
    """A condition that would take ``true`` (1 == 1), pinned; each branch ends the run with its name."""
    return _graph(
        [
            {"id": "start", "type": "start"},
            {
                "id": "c",
                "type": "condition",
                "inputs": {"left": 1, "operator": "equals", "right": 1},
                "pinned": pin,
            },
            {"id": "yes", "type": "end", "inputs": {"output": "yes {{c.result}}"}},
            {"id": "no", "type": "end", "inputs": {"output": "no {{c.result}}"}},
        ],
        [("start", "c"), ("c", "yes", "true"), ("c", "no", "false")],
    )


@pytest.mark.django_db(transaction=True)
def test_pinned_condition_routes_by_its_output_or_by_the_pins_route(ctx, embedded_worker):
    client, w, _ = ctx

    def run(pin: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        r = client.post(f"{w}/test/", {"graph": _branching(pin), "mode": "sync"}, format="json")
        assert r.status_code == 200, r.content
        body = r.json()
        assert body["status"] == "succeeded", body
        return body, nodes(_node_run(body["instance_id"], "c").instance)

    body, statuses = run({"output": {"result": False}})
    assert body["output"] == "no false"  # the pinned output, as JSON in a string
    assert statuses == {"start": "succeeded", "c": "succeeded", "yes": "skipped", "no": "succeeded"}
    assert _node_run(body["instance_id"], "c").route == "false"

    body, statuses = run({"output": {"result": False}, "route": "true"})  # the pin's route overrides
    assert body["output"] == "yes false"
    assert statuses["yes"] == "succeeded" and statuses["no"] == "skipped"

    # a route that is no handle of the node is refused before the run, naming the field
    r = client.post(f"{w}/test/", {"graph": _branching({"output": {}, "route": "sideways"})}, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["error"]["details"]["graph"] == [
        {
            "node_id": "c",
            "field": "pinned.route",
            "message": "'sideways' is not a handle of this node (true, false).",
        }
    ]


@pytest.mark.django_db(transaction=True)
def test_production_runs_ignore_pins(ctx, embedded_worker):
    client, w, _ = ctx
    graph = _graph(
        [
            {"id": "start", "type": "start"},
            {
                "id": "calc",
                "type": "javascript",
                "inputs": {"code": "return {total: ctx.input.n * 2}"},
                "pinned": {"output": {"total": 7}},
            },
            {"id": "end", "type": "end", "inputs": {"output": "{{calc.total}}"}},
        ],
        [("start", "calc"), ("calc", "end")],
    )
    r = client.post(f"{w}/", {"name": "Doubler", "graph": graph}, format="json")
    assert r.status_code == 201, r.content
    wf = r.json()
    assert wf["graph"]["nodes"][1]["pinned"] == {"output": {"total": 7}}  # saved with the workflow

    r = client.post(f"{w}/{wf['id']}/execute/", {"input": {"n": 5}, "mode": "sync"}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "succeeded" and r.json()["output"] == 10  # executed, not 7
    assert _node_run(r.json()["instance_id"], "calc").output == {"total": 10}

    # the same saved graph as a test run takes the pin
    r = client.post(
        f"{w}/test/",
        {"graph": wf["graph"], "input": {"n": 5}, "mode": "sync", "workflow": wf["id"]},
        format="json",
    )
    assert r.status_code == 200 and r.json()["output"] == 7, r.content

    # a pinned node that throws fails a production run: it is executed there
    graph["nodes"][1]["inputs"]["code"] = THROWS
    r = client.patch(f"{w}/{wf['id']}/", {"graph": graph}, format="json")
    assert r.status_code == 200 and r.json()["version"] == 2, r.content
    r = client.post(f"{w}/{wf['id']}/execute/", {"input": {"n": 5}, "mode": "sync"}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "failed" and r.json()["error"]["node_id"] == "calc", r.json()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "pin",
    [{"foo": 1}, {"route": "success"}, {"output": 1, "route": 3}, {"output": 1, "extra": True}, 5],
    ids=["unknown-key", "no-output", "route-not-string", "extra-key", "not-object"],
)
def test_invalid_pin_is_400_naming_the_node(ctx, pin):
    client, w, _ = ctx
    graph = _pinned_pipeline(None)
    graph["nodes"][1]["pinned"] = pin
    for response in (
        client.post(f"{w}/test/", {"graph": graph, "mode": "sync"}, format="json"),
        client.post(f"{w}/", {"name": "Bad pin", "graph": graph}, format="json"),
    ):
        error = assert_error(response, 400, "validation_error")
        problems = error["details"]["graph"]
        # the pin is reported first, on its node (the node's edges are then reported as dangling)
        assert problems[0]["node_id"] == "orders" and problems[0]["field"].startswith("pinned"), problems
        on_pins = [p for p in problems if p["field"].startswith("pinned")]
        assert {p["node_id"] for p in on_pins} == {"orders"}, problems
        assert error["message"].endswith(f"node 'orders', {problems[0]['field']}: {problems[0]['message']}")
    r = client.post(f"{w}/validate/", {"graph": graph}, format="json")
    assert r.status_code == 200 and r.json()["valid"] is False
    assert r.json()["errors"] == problems
    assert not Workflow.objects.filter(name="Bad pin").exists()


# --- 2. the editor's keys round-trip ------------------------------------------------------------------
EDITOR_GRAPH = _graph(
    [
        {"id": "start", "type": "start", "label": "Begin", "position": {"x": 0, "y": 0}},
        {
            "id": "calc",
            "type": "javascript",
            "label": "Double it",
            "position": {"x": 240.5, "y": -80},
            "inputs": {"code": "return {total: ctx.input.n * 2}"},
            "pinned": {"output": {"total": 7}},
        },
        {
            "id": "c",
            "type": "condition",
            "label": None,
            "position": {"x": 480, "y": 0},
            "inputs": {"left": "{{calc.total}}", "operator": "greater_than", "right": 10},
            "pinned": {"output": {"result": False}, "route": "false"},
        },
        {"id": "end", "type": "end", "position": {"x": 720, "y": 0}, "inputs": {"output": "{{calc}}"}},
    ],
    [("start", "calc"), ("calc", "c"), ("c", "end", "true")],
    notes=[
        {
            "id": "n1",
            "text": "Doubles **n**; the pin stands in for it in test runs.",
            "position": {"x": 10, "y": 200},
            "width": 180,
            "height": 90.5,
            "color": "yellow",
        },
        {"id": "n2", "text": "", "position": {"x": -50, "y": -50}},
    ],
)


@pytest.mark.django_db
def test_positions_labels_notes_and_pins_round_trip(ctx):
    client, w, _ = ctx
    r = client.post(f"{w}/", {"name": "Editor", "graph": EDITOR_GRAPH}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["graph"] == EDITOR_GRAPH
    url = f"{w}/{r.json()['id']}/"
    assert client.get(url).json()["graph"] == EDITOR_GRAPH
    version = client.get(f"{url}versions/1/")
    assert version.status_code == 200 and version.json()["version"] == 1
    assert version.json()["graph"] == EDITOR_GRAPH
    assert client.get(f"{url}versions/").json()["results"][0]["graph"] == EDITOR_GRAPH

    r = client.post(f"{w}/validate/", {"graph": EDITOR_GRAPH}, format="json")
    assert r.status_code == 200, r.content
    assert r.json() == {"valid": True, "errors": [], "graph": EDITOR_GRAPH}

    # the same graph in the editor's shorthand (from/to, no inputs) is saved in the same form
    loose = copy.deepcopy(EDITOR_GRAPH)
    loose["edges"] = [
        {"from": "start", "to": "calc"},
        {"from": "calc", "to": "c"},
        {"from": "c", "to": "end", "sourceHandle": "true"},
    ]
    del loose["nodes"][0]["inputs"]
    assert client.post(f"{w}/validate/", {"graph": loose}, format="json").json()["graph"] == EDITOR_GRAPH
    # ... so saving it is no change at all (no new version)
    assert client.patch(url, {"graph": loose}, format="json").json()["version"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("notes", "field"),
    [
        ([{"id": "n1", "text": 5}], "notes[0][text]"),
        ([{"id": "n1", "text": "ok"}, {"id": "n2", "text": ["not", "a", "string"]}], "notes[1][text]"),
        ([{"id": "n1"}], "notes[0]"),
        ([{"text": "ok", "position": "top left"}], "notes[0][position]"),
        ([{"text": "ok", "onclick": "x"}], "notes[0]"),
        ("a note", "notes"),
    ],
    ids=["text-int", "second-text-list", "no-text", "position-string", "extra-key", "not-a-list"],
)
def test_invalid_notes_are_reported_by_field(ctx, notes, field):
    client, w, _ = ctx
    graph = {**copy.deepcopy(EDITOR_GRAPH), "notes": notes}
    r = client.post(f"{w}/validate/", {"graph": graph}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["valid"] is False
    assert [(e["node_id"], e["field"]) for e in r.json()["errors"]] == [(None, field)], r.json()
    error = assert_error(client.post(f"{w}/", {"name": "Bad notes", "graph": graph}, format="json"), 400)
    assert [(e["node_id"], e["field"]) for e in error["details"]["graph"]] == [(None, field)]
    assert not Workflow.objects.filter(name="Bad notes").exists()


# --- 3. versions: diff and restore ---------------------------------------------------------------------
def _version_two() -> dict[str, Any]:
    """EDITOR_GRAPH with: start moved; calc relabelled, recoded, moved and unpinned; c only moved;
    end removed; check and finish added; edges rewired; a note edited."""
    graph = copy.deepcopy(EDITOR_GRAPH)
    start, calc, c, _end = graph["nodes"]
    start["position"] = {"x": 0, "y": 120}
    calc.update(
        label="Triple it", position={"x": 0, "y": 0}, inputs={"code": "return {total: ctx.input.n * 3}"}
    )
    del calc["pinned"]
    c["position"] = {"x": 500, "y": 10}
    graph["nodes"] = [
        start,
        calc,
        c,
        {"id": "check", "type": "condition", "inputs": {"left": 1, "operator": "equals", "right": 1}},
        {"id": "finish", "type": "end", "inputs": {"output": "{{calc}}"}},
    ]
    graph["edges"] = [
        {"source": "start", "target": "calc"},
        {"source": "calc", "target": "c"},
        {"source": "c", "target": "check", "sourceHandle": "true"},
        {"source": "check", "target": "finish", "sourceHandle": "false"},
    ]
    graph["notes"][0]["text"] = "Triples n."
    return graph


EXPECTED_DIFF = {
    "a": 1,
    "b": 2,
    "nodes": {
        "added": ["check", "finish"],
        "removed": ["end"],
        "changed": [{"id": "calc", "fields": ["label", "inputs", "pinned"]}],
        "moved": ["c", "start"],
    },
    "edges": {
        "added": [
            {"source": "c", "target": "check", "sourceHandle": "true"},
            {"source": "check", "target": "finish", "sourceHandle": "false"},
        ],
        "removed": [{"source": "c", "target": "end", "sourceHandle": "true"}],
    },
    "notes_changed": True,
}


@pytest.fixture
def versioned(ctx):
    """A workflow with versions 1 (EDITOR_GRAPH) and 2 (:func:`_version_two`)."""
    client, w, tenant = ctx
    r = client.post(f"{w}/", {"name": "Versioned", "graph": EDITOR_GRAPH}, format="json")
    assert r.status_code == 201, r.content
    url = f"{w}/{r.json()['id']}/"
    r = client.patch(url, {"graph": _version_two()}, format="json")
    assert r.status_code == 200 and r.json()["version"] == 2, r.content
    return client, url, tenant, w


@pytest.mark.django_db
def test_version_diff_lists_nodes_edges_moves_and_notes(versioned):
    client, url, _, _ = versioned
    r = client.get(f"{url}versions/diff/?a=1&b=2")
    assert r.status_code == 200, r.content
    assert r.json() == EXPECTED_DIFF

    back = client.get(f"{url}versions/diff/?a=2&b=1").json()
    assert back["a"] == 2 and back["b"] == 1
    assert back["nodes"] == {
        "added": ["end"],
        "removed": ["check", "finish"],
        "changed": [{"id": "calc", "fields": ["label", "inputs", "pinned"]}],
        "moved": ["c", "start"],
    }
    assert back["edges"] == {
        "added": EXPECTED_DIFF["edges"]["removed"],
        "removed": EXPECTED_DIFF["edges"]["added"],
    }

    same = client.get(f"{url}versions/diff/?a=2&b=2").json()
    assert same["nodes"] == {"added": [], "removed": [], "changed": [], "moved": []}
    assert same["edges"] == {"added": [], "removed": []} and same["notes_changed"] is False


@pytest.mark.django_db
def test_version_diff_needs_two_existing_versions(versioned):
    client, url, _, w = versioned
    for query, missing in (("b=2", "a"), ("a=1", "b"), ("", "a"), ("a=one&b=2", "a"), ("a=1&b=2.5", "b")):
        error = assert_error(client.get(f"{url}versions/diff/?{query}"), 400, "validation_error")
        assert list(error["details"]) == [missing], (query, error)
        assert missing in error["message"]
    assert_error(client.get(f"{url}versions/diff/?a=1&b=9"), 404)
    assert_error(client.get(f"{url}versions/diff/?a=0&b=2"), 404)
    assert_error(client.get(f"{url}versions/9/"), 404)
    other = client.post(f"{w}/", {"name": "Other", "graph": EDITOR_GRAPH}, format="json").json()
    assert_error(client.get(f"{w}/{other['id']}/versions/diff/?a=1&b=2"), 404)  # it has one version


@pytest.mark.django_db
def test_restore_makes_a_new_version_with_the_old_graph(versioned):
    client, url, tenant, _ = versioned
    r = client.post(f"{url}versions/1/restore/")
    assert r.status_code == 200, r.content
    assert r.json()["version"] == 3 and r.json()["graph"] == EDITOR_GRAPH
    assert client.get(url).json()["version"] == 3
    assert client.get(f"{url}versions/3/").json()["graph"] == client.get(f"{url}versions/1/").json()["graph"]
    assert client.get(f"{url}versions/2/").json()["graph"] == _version_two()  # history kept
    assert [v["version"] for v in client.get(f"{url}versions/").json()["results"]] == [3, 2, 1]
    diff = client.get(f"{url}versions/diff/?a=1&b=3").json()
    assert diff["nodes"] == {"added": [], "removed": [], "changed": [], "moved": []}
    log = AuditLog.objects.get(tenant=tenant, action="workflow.restore")
    assert log.changes == {"restored": 1, "version": 3}

    error = assert_error(client.post(f"{url}versions/3/restore/"), 409, "conflict")
    assert "3" in error["message"]
    assert client.get(url).json()["version"] == 3  # nothing made
    assert_error(client.post(f"{url}versions/7/restore/"), 404)

    r = client.post(f"{url}versions/2/restore/")
    assert r.status_code == 200 and r.json()["version"] == 4 and r.json()["graph"] == _version_two()


@pytest.mark.django_db
def test_restore_needs_manage_and_membership(versioned, make_user):
    client, url, tenant, _ = versioned
    viewer = make_user()
    add_member(tenant, viewer, "viewer")
    vc = token_client(viewer)
    assert vc.get(f"{url}versions/1/").status_code == 200
    assert vc.get(f"{url}versions/diff/?a=1&b=2").json() == EXPECTED_DIFF
    assert_error(vc.post(f"{url}versions/1/restore/"), 403)
    outsider = token_client(make_user())
    assert_error(outsider.post(f"{url}versions/1/restore/"), 404)
    assert_error(outsider.get(f"{url}versions/diff/?a=1&b=2"), 404)
    assert_error(outsider.get(f"{url}versions/1/"), 404)
    assert client.get(url).json()["version"] == 2  # neither restored anything
    assert not AuditLog.objects.filter(tenant=tenant, action="workflow.restore").exists()


# --- 4. test cases -------------------------------------------------------------------------------------
def _case_workflow() -> dict[str, Any]:
    """_pinned_pipeline with an editor's pin on ``orders`` (which a case does not inherit)."""
    graph = _pinned_pipeline({"output": {"rows": [{"id": 99}]}})
    graph["nodes"][3]["inputs"]["output"] = {"count": "{{count}}"}
    return graph


TWO_ORDERS = {
    "name": "two orders",
    "input": {"since": "2026-01-01"},
    "pinned": {"orders": PINNED_ROWS},
    "expect": {"output": {"count": 2}, "nodes": {"count": {"status": "succeeded", "output": 2}}},
}


@pytest.fixture
def case_wf(ctx):
    client, w, tenant = ctx
    r = client.post(f"{w}/", {"name": "Counter", "graph": _case_workflow()}, format="json")
    assert r.status_code == 201, r.content
    return client, f"{w}/{r.json()['id']}/tests/", w, tenant, r.json()["id"]


@pytest.mark.django_db
def test_test_case_crud(case_wf, make_user):
    client, tests, w, tenant, _ = case_wf
    r = client.post(tests, TWO_ORDERS, format="json")
    assert r.status_code == 201, r.content
    case = r.json()
    assert {k: case[k] for k in ("name", "input", "pinned", "expect")} == TWO_ORDERS
    assert case["last_result"] is None and uuid.UUID(case["id"])
    r = client.post(tests, {"name": "defaults"}, format="json")
    assert r.status_code == 201, r.content
    assert {k: r.json()[k] for k in ("input", "pinned", "expect")} == {
        "input": {},
        "pinned": {},
        "expect": {},
    }

    listed = client.get(tests).json()
    assert listed["count"] == 2 and [c["name"] for c in listed["results"]] == ["defaults", "two orders"]
    assert client.get(f"{tests}{case['id']}/").json() == case

    r = client.patch(
        f"{tests}{case['id']}/", {"name": "a pair", "expect": {"status": "succeeded"}}, format="json"
    )
    assert r.status_code == 200, r.content
    assert r.json()["name"] == "a pair" and r.json()["expect"] == {"status": "succeeded"}
    assert r.json()["pinned"] == TWO_ORDERS["pinned"] and r.json()["input"] == TWO_ORDERS["input"]
    saved = WorkflowTestCase.objects.get(pk=case["id"])
    assert saved.name == "a pair" and saved.expect == {"status": "succeeded"}
    error = assert_error(client.patch(f"{tests}{case['id']}/", {"name": "defaults"}, format="json"), 400)
    assert "name" in error["details"]
    error = assert_error(
        client.patch(f"{tests}{case['id']}/", {"expect": {"status": "done"}}, format="json"), 400
    )
    assert "expect.status" in error["details"]
    assert WorkflowTestCase.objects.get(pk=case["id"]).expect == {"status": "succeeded"}  # unchanged

    viewer = make_user()
    add_member(tenant, viewer, "viewer")
    vc = token_client(viewer)
    assert vc.get(tests).json()["count"] == 2
    assert_error(vc.post(tests, {**TWO_ORDERS, "name": "x"}, format="json"), 403)
    assert_error(vc.patch(f"{tests}{case['id']}/", {"name": "x"}, format="json"), 403)
    assert_error(vc.delete(f"{tests}{case['id']}/"), 403)
    assert_error(vc.post(f"{tests}{case['id']}/run/", {}, format="json"), 403)
    assert_error(token_client(make_user()).get(tests), 404)

    other = client.post(f"{w}/", {"name": "Other", "graph": _case_workflow()}, format="json").json()
    assert_error(client.get(f"{w}/{other['id']}/tests/{case['id']}/"), 404)  # not that workflow's case
    assert_error(client.get(f"{tests}{uuid.uuid4()}/"), 404)

    assert client.delete(f"{tests}{case['id']}/").status_code == 204
    assert_error(client.get(f"{tests}{case['id']}/"), 404)
    assert client.get(tests).json()["count"] == 1
    actions = set(AuditLog.objects.filter(tenant=tenant).values_list("action", flat=True))
    assert {"workflow.test_case.create", "workflow.test_case.update", "workflow.test_case.delete"} <= actions


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pinned": {"ghost": {"rows": []}}}, "pinned"),
        ({"pinned": [1, 2]}, "pinned"),
        ({"input": [1, 2]}, "input"),
        ({"expect": {"status": "bogus"}}, "expect.status"),
        ({"expect": {"nodes": {"count": {"status": "done"}}}}, "expect.nodes.count.status"),
        ({"expect": {"nodes": {"count": {"colour": "red"}}}}, "expect.nodes.count"),
        ({"expect": {"nodes": {"ghost": {"status": "succeeded"}}}}, "expect.nodes"),
        ({"expect": {"outcome": 1}}, "expect"),
        ({"expect": [1]}, "expect"),
    ],
)
def test_test_case_validation_names_the_field(case_wf, change, field):
    client, tests, *_ = case_wf
    error = assert_error(client.post(tests, {**TWO_ORDERS, **change}, format="json"), 400, "validation_error")
    assert field in error["details"], error
    assert error["message"].startswith(field), error
    assert not WorkflowTestCase.objects.exists()


@pytest.mark.django_db
def test_test_case_duplicate_name_is_400(case_wf):
    client, tests, *_ = case_wf
    assert client.post(tests, TWO_ORDERS, format="json").status_code == 201
    error = assert_error(client.post(tests, TWO_ORDERS, format="json"), 400, "validation_error")
    assert list(error["details"]) == ["name"]
    assert WorkflowTestCase.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_test_case_run_passes_and_fails_with_a_diff(case_wf, embedded_worker):
    client, tests, w, _, wf_id = case_wf
    case = client.post(tests, TWO_ORDERS, format="json").json()
    r = client.post(f"{tests}{case['id']}/run/", {}, format="json")
    assert r.status_code == 200, r.content
    result = r.json()
    assert result["passed"] is True and result["failures"] == [], result
    assert isinstance(result["duration_ms"], int) and result["duration_ms"] >= 0
    run = client.get(f"{w}/instances/{result['instance_id']}/").json()
    assert run["is_test"] is True and run["workflow"] == wf_id and run["status"] == "succeeded"
    # the case's pin, not the editor's one saved in the graph (1 row), stood in for the node
    assert _node_run(result["instance_id"], "orders").output == PINNED_ROWS
    assert run["output"] == {"count": 2}
    saved = client.get(f"{tests}{case['id']}/").json()["last_result"]
    assert saved["passed"] is True and saved["instance_id"] == result["instance_id"]

    wrong = client.post(
        tests,
        {
            **TWO_ORDERS,
            "name": "three orders",
            "expect": {"output": {"count": 3}, "nodes": {"count": {"status": "failed"}}},
        },
        format="json",
    ).json()
    r = client.post(f"{tests}{wrong['id']}/run/", {"timeout_s": 30}, format="json")
    assert r.status_code == 200, r.content
    result = r.json()
    assert result["passed"] is False
    assert result["failures"] == [
        {
            "where": "output",
            "expected": {"count": 3},
            "actual": {"count": 2},
            "diff": '--- expected\n+++ actual\n@@ -1,3 +1,3 @@\n {\n-  "count": 3\n+  "count": 2\n }',
        },
        {
            "where": "nodes.count.status",
            "expected": "failed",
            "actual": "succeeded",
            "diff": '--- expected\n+++ actual\n@@ -1 +1 @@\n-"failed"\n+"succeeded"',
        },
    ]
    stored = WorkflowTestCase.objects.get(pk=wrong["id"]).last_result
    assert stored["passed"] is False and stored["failures"] == result["failures"]
    assert client.get(f"{tests}{wrong['id']}/").json()["last_result"]["failures"] == result["failures"]
    # the first case's verdict is its own
    assert WorkflowTestCase.objects.get(pk=case["id"]).last_result["passed"] is True


@pytest.mark.django_db(transaction=True)
def test_test_case_without_its_pin_runs_the_node(case_wf, embedded_worker):
    """A case pins only what it names: the editor's pin in the saved graph is not used."""
    client, tests, *_ = case_wf
    fails = client.post(tests, {"name": "no pin", "expect": {"status": "failed"}}, format="json").json()
    result = client.post(f"{tests}{fails['id']}/run/", {}, format="json").json()
    assert result["passed"] is True, result
    assert _node_run(result["instance_id"], "orders").status == "failed"

    default = client.post(tests, {"name": "no pin, default expectation"}, format="json").json()
    result = client.post(f"{tests}{default['id']}/run/", {}, format="json").json()
    assert result["passed"] is False
    [failure] = result["failures"]
    assert (
        failure["where"] == "status" and failure["expected"] == "succeeded" and failure["actual"] == "failed"
    )
    assert '-"succeeded"' in failure["diff"] and '+"failed"' in failure["diff"]


# --- 5. manage.py test_workflows -----------------------------------------------------------------------
@pytest.fixture
def demo(owner_tenant, settings, tmp_path) -> Iterator[tuple[Actor, Workflow]]:
    """The demo's sales report with its test cases (their pins stand in for the database)."""
    from jetadmin.demo import DEMO_TEST_CASES, ensure_demo_test_cases, ensure_sales_demo

    settings.JETADMIN_SQLITE_ROOT = str(tmp_path)
    user, tenant = owner_tenant
    actor = Actor(user=user)
    report = ensure_sales_demo(actor=actor, tenant=tenant)
    cases = ensure_demo_test_cases(actor=actor, workflow=report)
    assert [c.name for c in cases] == [spec["name"] for spec in DEMO_TEST_CASES]
    assert [c.id for c in ensure_demo_test_cases(actor=actor, workflow=report)] == [c.id for c in cases]
    # the command quiets these loggers for its report: leave them as they were for other tests
    levels = {name: logging.getLogger(name).level for name in ("celery", "jetadmin.embedded")}
    yield actor, report
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _command(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("test_workflows", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.django_db(transaction=True)
def test_command_passes_the_demo_cases(demo, embedded_worker, tmp_path):
    _, report = demo
    junit = tmp_path / "junit.xml"
    code, out, _ = _command("--tenant", str(report.tenant_id), "--junit", str(junit))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("PASS  Monthly sales report / No orders  (")
    assert lines[1].startswith("PASS  Monthly sales report / Three orders in two months  (")
    assert lines[-1] == "2 passed, 0 failed" and "FAIL" not in out
    root = ET.parse(junit).getroot()  # noqa: S314 - the command's own file
    [suite] = root.findall("testsuite")
    assert suite.get("name") == "Monthly sales report" and suite.get("id") == str(report.id)
    assert (suite.get("tests"), suite.get("failures")) == ("2", "0")
    assert root.find(".//failure") is None
    verdicts = WorkflowTestCase.objects.filter(workflow=report).values_list("last_result", flat=True)
    assert [v["passed"] for v in verdicts] == [True, True]
    # --workflow by name runs the same cases
    code, out, _ = _command("--tenant", report.tenant.name, "--workflow", "Monthly sales report")
    assert code == 0 and out.splitlines()[-1] == "2 passed, 0 failed"


@pytest.mark.django_db(transaction=True)
def test_command_fails_with_a_diff_and_junit(demo, embedded_worker, tmp_path):
    from apps.workflows.testcases import test_case_create
    from jetadmin.demo import PINNED_ORDERS

    actor, report = demo
    test_case_create(
        actor=actor,
        workflow=report,
        name="Wrong totals",
        input={"since": "2026-01-01"},
        pinned={"orders": PINNED_ORDERS},
        expect={
            "output": [{"month": "2026-01", "orders": 2, "revenue": 100.0}],
            "nodes": {"latest": {"status": "failed"}},
        },
    )
    junit = tmp_path / "reports" / "junit.xml"
    junit.parent.mkdir()
    code, out, _ = _command("--tenant", str(report.tenant_id), "--junit", str(junit))
    assert code == 1, out
    lines = out.splitlines()
    assert [line.split("  ")[0] for line in lines if line[:4] in ("PASS", "FAIL")] == ["PASS", "PASS", "FAIL"]
    assert any(line.startswith("FAIL  Monthly sales report / Wrong totals  (") for line in lines)
    assert lines[-1] == "2 passed, 1 failed"
    # a readable diff of each mismatch, under the case
    assert "  output:" in lines and "  nodes.latest.status:" in lines
    assert "    --- expected" in lines and "    +++ actual" in lines
    assert '    +    "month": "2026-02",' in lines and '    +    "revenue": 150.0' in lines
    assert '    -"failed"' in lines and '    +"succeeded"' in lines

    root = ET.parse(junit).getroot()  # noqa: S314 - the command's own file
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    by_name = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(by_name) == {"No orders", "Three orders in two months", "Wrong totals"}
    failure = by_name["Wrong totals"].find("failure")
    assert failure is not None
    assert failure.get("message") == "output differs" and failure.get("type") == "mismatch"
    assert failure.text is not None
    assert failure.text.startswith("output:\n--- expected\n+++ actual")
    assert (
        'nodes.latest.status:\n--- expected\n+++ actual\n@@ -1 +1 @@\n-"failed"\n+"succeeded"' in failure.text
    )
    for name in ("No orders", "Three orders in two months"):
        assert by_name[name].find("failure") is None
        assert by_name[name].get("classname") == "Monthly sales report"
    for case in by_name.values():
        system_out = case.find("system-out")
        assert system_out is not None and system_out.text is not None
        assert system_out.text.startswith("run ") and uuid.UUID(system_out.text[4:])
        assert float(case.get("time", "-1")) >= 0
    assert WorkflowTestCase.objects.get(workflow=report, name="Wrong totals").last_result["passed"] is False


@pytest.mark.django_db
def test_command_without_cases_exits_2(owner_tenant, ctx):
    _, tenant = owner_tenant
    code, out, err = _command("--tenant", str(tenant.id))
    assert (code, err.strip(), out) == (2, "No test cases to run.", "")
    # a workflow without cases, by id: nothing to run either
    client, w, acme = ctx
    wf = client.post(f"{w}/", {"name": "Untested", "graph": EDITOR_GRAPH}, format="json").json()
    code, out, err = _command("--tenant", str(acme.id), "--workflow", wf["id"])
    assert (code, err.strip(), out) == (2, "No test cases to run.", "")
    with pytest.raises(CommandError, match="No workflow 'No such workflow' with test cases"):
        _command("--tenant", acme.name, "--workflow", "No such workflow")
    with pytest.raises(CommandError, match="No tenant"):
        call_command("test_workflows", "--tenant", "nobody", stdout=io.StringIO(), stderr=io.StringIO())
