"""The workflows API: CRUD with versions, validation, runs (async/sync/test), stop/cancel/retry, journal."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.tenancy.models import AuditLog
from apps.workflows.engine import graph as graph_engine
from apps.workflows.models import WorkflowInstance
from tests.conftest import add_member, assert_error, token_client
from tests.workflows import testnodes
from tests.workflows.graphs import SALES_INPUT, SALES_OUTPUT, SALES_REPORT

assert testnodes.Flaky

SIMPLE = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "end", "type": "end", "inputs": {"output": {"hello": "{{input.name}}"}}},
    ],
    "edges": [{"from": "start", "to": "end"}],
}


@pytest.fixture
def ctx(make_user, make_tenant):
    owner = make_user()
    tenant = make_tenant("Acme", owner=owner)
    return token_client(owner), f"/api/v1/tenants/{tenant.id}/workflows", tenant


@pytest.mark.django_db
def test_node_types_listed(client, make_user):
    r = token_client(make_user()).get("/api/v1/node-types/")
    assert r.status_code == 200
    types = {t["type"]: t for t in r.json()}
    for name in (
        "start",
        "end",
        "condition",
        "switch",
        "fanout",
        "join",
        "loop",
        "delay",
        "transform",
        "aggregate",
        "javascript",
    ):
        assert name in types
        assert {"type", "name", "category", "inputs_schema", "outputs_schema", "handles"} <= set(types[name])
    assert types["loop"]["handles"] == ["loop", "completed"]


@pytest.mark.django_db
def test_crud_and_versions(ctx):
    client, w, tenant = ctx
    r = client.post(f"{w}/", {"name": "Hello", "graph": SIMPLE}, format="json")
    assert r.status_code == 201, r.content
    wf = r.json()
    assert wf["version"] == 1 and wf["graph"]["nodes"][0]["id"] == "start"
    url = f"{w}/{wf['id']}/"
    assert client.patch(url, {"name": "Hello 2"}, format="json").json()["version"] == 1  # no graph change
    same = client.patch(url, {"graph": SIMPLE}, format="json").json()
    assert same["version"] == 1
    changed = json.loads(json.dumps(SIMPLE))
    changed["nodes"][1]["inputs"]["output"] = "bye"
    assert client.patch(url, {"graph": changed}, format="json").json()["version"] == 2
    versions = client.get(f"{url}versions/").json()
    assert [v["version"] for v in versions["results"]] == [2, 1]
    assert versions["results"][1]["graph"]["nodes"][1]["inputs"]["output"] == {"hello": "{{input.name}}"}
    assert client.get(f"{w}/").json()["count"] == 1
    assert client.delete(url).status_code == 204
    assert_error(client.get(url), 404)
    actions = set(AuditLog.objects.filter(tenant=tenant).values_list("action", flat=True))
    assert {"workflow.create", "workflow.update", "workflow.delete"} <= actions


@pytest.mark.django_db
def test_invalid_graph_is_400_naming_node_and_field(ctx):
    client, w, _ = ctx
    bad = {
        "nodes": [{"id": "start", "type": "start"}, {"id": "x", "type": "transform", "inputs": {}}],
        "edges": [{"from": "start", "to": "x"}, {"from": "x", "to": "ghost"}],
    }
    error = assert_error(
        client.post(f"{w}/", {"name": "Bad", "graph": bad}, format="json"), 400, "validation_error"
    )
    problems = error["details"]["graph"]
    assert {"node_id": "x", "field": "inputs", "message": "'data' is a required property"} in problems
    assert any(p["node_id"] == "x" and "ghost" in p["message"] for p in problems)
    r = client.post(f"{w}/validate/", {"graph": bad}, format="json")
    assert r.status_code == 200 and r.json()["valid"] is False and len(r.json()["errors"]) == 2
    assert client.post(f"{w}/validate/", {"graph": SIMPLE}, format="json").json() == {
        "valid": True,
        "errors": [],
        "graph": {  # the graph as it would be saved
            "nodes": [
                {"id": "start", "type": "start", "inputs": {}},
                {"id": "end", "type": "end", "inputs": {"output": {"hello": "{{input.name}}"}}},
            ],
            "edges": [{"source": "start", "target": "end"}],
        },
    }


@pytest.mark.django_db(transaction=True)
def test_execute_sync_and_async(ctx, embedded_worker):
    client, w, _ = ctx
    wf = client.post(f"{w}/", {"name": "Sales", "graph": SALES_REPORT}, format="json").json()
    r = client.post(
        f"{w}/{wf['id']}/execute/", {"input": SALES_INPUT, "mode": "sync", "timeout_s": 30}, format="json"
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["status"] == "succeeded" and body["output"] == SALES_OUTPUT and body["timed_out"] is False
    r = client.post(f"{w}/{wf['id']}/execute/", {"input": {"name": "x"}}, format="json")
    assert r.status_code == 202 and r.json()["status"] == "queued"
    iid = r.json()["instance_id"]
    detail = client.get(f"{w}/instances/{iid}/").json()
    assert detail["workflow"] == wf["id"] and detail["version"] == 1 and detail["is_test"] is False
    listed = client.get(f"{w}/instances/?workflow={wf['id']}").json()
    assert listed["count"] == 2


@pytest.mark.django_db(transaction=True)
def test_test_run_detail_events_and_stop(ctx, embedded_worker):
    client, w, _ = ctx
    r = client.post(f"{w}/test/", {"graph": SIMPLE, "input": {"name": "Ada"}, "mode": "sync"}, format="json")
    assert r.status_code == 200 and r.json()["output"] == {"hello": "Ada"}
    iid = r.json()["instance_id"]
    detail = client.get(f"{w}/instances/{iid}/").json()
    assert detail["is_test"] is True and detail["workflow"] is None
    assert detail["nodes"]["end"]["status"] == "succeeded" and detail["nodes"]["end"]["attempts"] == 1
    events = client.get(f"{w}/instances/{iid}/events/").json()["results"]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1)) and events[-1]["type"] == "instance.succeeded"
    later = client.get(f"{w}/instances/{iid}/events/?after={seqs[2]}").json()["results"]
    assert [e["seq"] for e in later] == seqs[3:]
    assert_error(client.get(f"{w}/instances/{iid}/events/?after=x"), 400)
    assert_error(client.delete(f"{w}/instances/{iid}/stop/"), 409, "conflict")

    slow = {
        "nodes": [{"id": "start", "type": "start"}, {"id": "d", "type": "delay", "inputs": {"seconds": 60}}],
        "edges": [{"from": "start", "to": "d"}],
    }
    iid = client.post(f"{w}/test/", {"graph": slow}, format="json").json()["instance_id"]
    r = client.delete(f"{w}/instances/{iid}/stop/")
    assert r.status_code == 200 and r.json()["status"] == "canceled"


@pytest.mark.django_db(transaction=True)
def test_sync_wait_is_capped_by_the_server_setting(ctx, embedded_worker, settings):
    client, w, _ = ctx
    settings.JETADMIN_MAX_SYNC_WAIT_S = 0.3
    slow = {
        "nodes": [{"id": "start", "type": "start"}, {"id": "d", "type": "delay", "inputs": {"seconds": 60}}],
        "edges": [{"from": "start", "to": "d"}],
    }
    wf = client.post(f"{w}/", {"name": "Slow", "graph": slow}, format="json").json()
    started = time.monotonic()
    r = client.post(f"{w}/{wf['id']}/execute/", {"mode": "sync", "timeout_s": 30}, format="json")
    waited = time.monotonic() - started
    assert r.status_code == 200 and r.json()["timed_out"] is True, r.content
    assert 0.3 <= waited < 15, waited  # the cap, not the request's 30 s
    assert client.post(f"{w}/instances/{r.json()['instance_id']}/cancel/").json()["status"] == "canceled"


@pytest.mark.django_db(transaction=True)
def test_sync_timeout_and_cancel_and_retry(ctx, embedded_worker):
    client, w, _ = ctx
    slow = {
        "nodes": [{"id": "start", "type": "start"}, {"id": "d", "type": "delay", "inputs": {"seconds": 60}}],
        "edges": [{"from": "start", "to": "d"}],
    }
    wf = client.post(f"{w}/", {"name": "Slow", "graph": slow}, format="json").json()
    r = client.post(f"{w}/{wf['id']}/execute/", {"mode": "sync", "timeout_s": 0.3}, format="json")
    assert (
        r.status_code == 200 and r.json()["timed_out"] is True and r.json()["status"] in ("running", "queued")
    )
    iid = r.json()["instance_id"]
    assert_error(client.delete(f"{w}/instances/{iid}/stop/"), 409)  # not a test run
    assert client.post(f"{w}/instances/{iid}/cancel/").json()["status"] == "canceled"
    assert_error(client.post(f"{w}/instances/{iid}/cancel/"), 409)
    assert_error(client.post(f"{w}/instances/{iid}/retry/"), 409)

    flaky = {
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "x", "type": "flaky", "inputs": {"succeed_on": 2}},
            {"id": "end", "type": "end", "inputs": {"output": "{{x.attempt}}"}},
        ],
        "edges": [{"from": "start", "to": "x"}, {"from": "x", "to": "end"}],
    }
    r = client.post(f"{w}/test/", {"graph": flaky, "mode": "sync"}, format="json").json()
    assert r["status"] == "failed" and r["error"]["node_id"] == "x"
    retried = client.post(f"{w}/instances/{r['instance_id']}/retry/")
    assert retried.status_code == 200
    instance = WorkflowInstance.objects.get(pk=r["instance_id"])
    from apps.workflows import services

    instance, _ = services.instance_wait(instance=instance, timeout_s=20)
    assert instance.status == "succeeded" and instance.output == 2


@pytest.mark.django_db
def test_rbac_and_isolation(ctx, make_user, make_tenant):
    client, w, tenant = ctx
    wf = client.post(f"{w}/", {"name": "Hello", "graph": SIMPLE}, format="json").json()
    viewer = make_user()
    add_member(tenant, viewer, "viewer")
    vc = token_client(viewer)
    assert vc.get(f"{w}/{wf['id']}/").status_code == 200
    assert_error(vc.post(f"{w}/", {"name": "x", "graph": SIMPLE}, format="json"), 403)
    assert_error(vc.patch(f"{w}/{wf['id']}/", {"name": "x"}, format="json"), 403)
    assert_error(vc.delete(f"{w}/{wf['id']}/"), 403)
    assert_error(vc.post(f"{w}/{wf['id']}/execute/", {}, format="json"), 403)
    assert_error(vc.post(f"{w}/test/", {"graph": SIMPLE}, format="json"), 403)
    outsider = token_client(make_user())
    assert_error(outsider.get(f"{w}/{wf['id']}/"), 404)
    other = make_tenant("Other")
    assert_error(client.get(f"/api/v1/tenants/{other.id}/workflows/{wf['id']}/"), 404)
    mine = make_tenant("Mine", owner=tenant.memberships.first().user)
    assert_error(client.get(f"/api/v1/tenants/{mine.id}/workflows/{wf['id']}/"), 404)  # another tenant's URL


@pytest.mark.django_db
def test_bad_run_input(ctx):
    client, w, _ = ctx
    wf = client.post(f"{w}/", {"name": "Hello", "graph": SIMPLE}, format="json").json()
    for body in ({"input": [1, 2]}, {"mode": "later"}, {"timeout_s": -1}, {"timeout_s": "soon"}):
        assert_error(client.post(f"{w}/{wf['id']}/execute/", body, format="json"), 400)
    assert_error(client.post(f"{w}/test/", {}, format="json"), 400)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=25,
)
NODE = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["a", "b", "c", "start", "end", "loop", 1]),
        "type": st.sampled_from(["start", "end", "condition", "loop", "join", "transform", "nope", None]),
    },
    optional={"inputs": JSON, "on_error": st.sampled_from(["fail", "route", "x"]), "retry": JSON},
)
EDGE = st.fixed_dictionaries(
    {"source": st.sampled_from(["a", "b", "c", "start", "end", None])},
    optional={
        "target": st.sampled_from(["a", "b", "c", "end"]),
        "to": JSON,
        "sourceHandle": st.sampled_from(["true", "false", "loop", "completed", "error", "output", 3]),
    },
)
GRAPHS = JSON | st.fixed_dictionaries(
    {"nodes": st.lists(NODE, max_size=6), "edges": st.lists(EDGE, max_size=8)}
)


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graph=GRAPHS)
def test_random_graphs_never_500(ctx, graph):
    """Any JSON as a graph: never a 500, and exactly the engine's problems, field by field — listed by
    validate, and as the details of create's 400 (created only when there are none)."""
    client, w, _ = ctx
    validate = client.post(f"{w}/validate/", {"graph": graph}, format="json")
    create = client.post(f"{w}/", {"name": "fuzz", "graph": graph}, format="json")
    refused = None  # the request's own checks, before the engine sees the graph
    if has_nul(graph):  # in any string or key: PostgreSQL's jsonb refuses it, so every database does
        refused = {"body": ["It contains a NUL character (\\u0000), which cannot be stored."]}
    elif graph is None:
        refused = {"graph": ["This field may not be null."]}
    if refused:
        for r in (validate, create):
            error = assert_error(r, 400, "validation_error")
            assert error["details"] == refused, error
        return
    problems = engine_problems(graph)
    assert validate.status_code == 200, validate.content
    assert {k: validate.json()[k] for k in ("valid", "errors")} == {"valid": not problems, "errors": problems}
    if not problems:
        assert create.status_code == 201, create.content
        return
    error = assert_error(create, 400)
    assert error["details"] == {"graph": problems}, error
    first = problems[0]
    where = f"node {first['node_id']!r}, {first['field']}" if first["node_id"] else first["field"]
    assert error["message"] == f"The workflow graph is invalid. {where}: {first['message']}"


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(has_nul(v) for v in value)


def engine_problems(raw: Any) -> list[dict[str, Any]]:
    """Every ``{node_id, field, message}`` the engine's graph builder reports for ``raw`` (none: valid)."""
    try:
        graph_engine.build(raw)
    except graph_engine.GraphInvalid as exc:
        problems = [e.as_dict() for e in exc.errors]
        for p in problems:
            assert set(p) == {"node_id", "field", "message"} and p["field"] and p["message"], p
        return problems
    return []


BATTERY = {
    "cycle": (
        {
            "nodes": [{"id": "a", "type": "fanout"}, {"id": "b", "type": "fanout"}],
            "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}],
        },
        "a",
        "edges",
    ),
    "dangling-edge": (
        {"nodes": [{"id": "a", "type": "start"}], "edges": [{"from": "a", "to": "ghost"}]},
        "a",
        "edges[0]",
    ),
    "duplicate-id": (
        {"nodes": [{"id": "a", "type": "start"}, {"id": "a", "type": "end"}], "edges": []},
        "a",
        "id",
    ),
    "unknown-type": ({"nodes": [{"id": "a", "type": "teleport"}], "edges": []}, "a", "type"),
    "bad-handle": (
        {
            "nodes": [
                {"id": "c", "type": "condition", "inputs": {"left": 1, "operator": "equals", "right": 1}},
                {"id": "e", "type": "end"},
            ],
            "edges": [{"source": "c", "target": "e", "sourceHandle": "maybe"}],
        },
        "c",
        "edges[0].sourceHandle",
    ),
    "non-ancestor-reference": (
        {
            "nodes": [
                {"id": "s", "type": "start"},
                {"id": "a", "type": "fanout"},
                {"id": "b", "type": "fanout", "inputs": {"value": "{{a.value}}"}},
            ],
            "edges": [{"from": "s", "to": "a"}, {"from": "s", "to": "b"}],
        },
        "b",
        "inputs",
    ),
    "schema-invalid-input": (
        {"nodes": [{"id": "l", "type": "loop", "inputs": {"items": [], "concurrency": 0}}], "edges": []},
        "l",
        "inputs.concurrency",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", sorted(BATTERY))
def test_validation_battery_is_400_naming_node_and_field(ctx, case):
    client, w, _ = ctx
    graph, node_id, field = BATTERY[case]
    error = assert_error(
        client.post(f"{w}/", {"name": case, "graph": graph}, format="json"), 400, "validation_error"
    )
    problems = error["details"]["graph"]
    assert any(p["node_id"] == node_id and p["field"] == field for p in problems), problems
    assert node_id in error["message"]
    checked = client.post(f"{w}/validate/", {"graph": graph}, format="json").json()
    assert checked["valid"] is False and checked["errors"] == problems
