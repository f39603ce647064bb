"""The visual workflow editor in Chromium, as a user works with it: build a workflow from start → end by
dragging nodes from the palette, connecting handles and filling the forms; see a validation error on the
misconfigured node, fix it, save; test-run it and watch every node turn succeeded; pin a node's output and
test-run again without executing it; undo and redo a deletion; copy two nodes into another workflow;
compare and restore versions; run a workflow test case. Screenshots go to tests/artifacts/pages/editor-*;
no console error is allowed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from bench.editor import big_graph
from tests.conftest import ServerProcess
from tests.e2e.test_login import submit_login
from tests.e2e.test_pages import Watch, _fresh_demo, nav

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RUN_TIMEOUT_MS = 30_000


def node(page: Page, node_id: str) -> Locator:
    return page.locator(f"[data-testid=graph] .drawflow-node[data-node-id='{node_id}']")


def connect(page: Page, source: str, target: str, handle: str | None = None) -> None:
    """Drag from the source's output handle to the target's input, in small steps as a hand would."""
    out = node(page, source).locator(f".output[data-handle='{handle}']" if handle else ".output").first
    inp = node(page, target).locator(".input").first
    a, b = out.bounding_box(), inp.bounding_box()
    assert a and b
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    for i in range(1, 9):
        page.mouse.move(
            a["x"] + (b["x"] - a["x"]) * i / 8 + b["width"] / 2,
            a["y"] + (b["y"] - a["y"]) * i / 8 + b["height"] / 2,
        )
    page.mouse.up()


def drop(page: Page, type_name: str, x: float, y: float) -> None:
    """Drag a palette item onto the canvas at (x, y) relative to the canvas."""
    page.locator(f".wf-item[data-type='{type_name}']").drag_to(
        page.get_by_test_id("graph"), target_position={"x": x, "y": y}
    )


def api(page: Page, server: ServerProcess, path: str) -> Any:
    response = page.request.get(f"{server.url}{path}")
    assert response.ok, response.text()
    return response.json()


def named(listing: dict[str, Any], name: str) -> dict[str, Any]:
    return next(row for row in listing["results"] if row["name"] == name)


def graph_in_editor(page: Page) -> dict[str, Any]:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.JetEditor.graph))")


def test_build_validate_save_and_test_run_a_workflow(
    page: Page, tmp_path: Path, serve_process: Callable[..., ServerProcess]
) -> None:
    watch = Watch(page, "editor-build")
    tenant_id, _ = _fresh_demo(tmp_path)
    server = serve_process(embedded_dir=tmp_path)
    submit_login(page, server.url, "admin", "jetadmin-demo")
    nav(page, "Workflows").click()
    page.get_by_role("link", name="New workflow").first.click()
    page.fill("#id_name", "Orders by month, by hand")
    page.get_by_role("button", name="Create workflow").click()
    expect(page.locator("[data-testid=graph] [data-node-id]")).to_have_count(2)  # start → end
    expect(page.get_by_test_id("editor-state")).to_contain_text("version 1")
    watch.shot("new")

    query_id = named(api(page, server, f"/api/v1/tenants/{tenant_id}/queries/"), "Orders since")["id"]
    # the end node moves right to make room; start → end is replaced by start → orders → monthly → end
    page.locator(".drawflow .connection .main-path").first.click(force=True)  # a flat line: no height
    page.keyboard.press("Delete")
    expect(page.locator(".drawflow .connection")).to_have_count(0)
    page.get_by_test_id("editor").get_by_role("button", name="Fit").click()
    box = page.get_by_test_id("graph").bounding_box()
    assert box
    drop(page, "dataQuery", box["width"] * 0.45, box["height"] * 0.3)
    orders = page.locator("[data-testid=graph] .drawflow-node[data-type=dataQuery]")
    expect(orders).to_have_count(1)
    # a data query without a query is refused by validation: the error shows on the node and in the panel
    expect(orders).to_have_class(re.compile("has-error"))
    expect(orders.locator("[data-role=node-error]")).to_contain_text("query")
    watch.shot("validation-error")
    panel = page.get_by_test_id("panel")
    panel.locator("#wf-id").fill("orders")
    panel.locator("#wf-id").press("Tab")
    expect(node(page, "orders")).to_have_count(1)
    node(page, "orders").click()
    panel.locator("[name=query]").fill(query_id)
    panel.locator("[name=query]").press("Tab")
    node(page, "orders").click()
    panel.locator("[name=params]").fill(
        '{"since": "{{start.since}}", "product": "{{start.product}}", "region": "{{start.region}}"}'
    )
    panel.locator("[name=params]").press("Tab")
    expect(node(page, "orders")).not_to_have_class(re.compile("has-error"))

    drop(page, "aggregate", box["width"] * 0.45, box["height"] * 0.65)
    monthly = page.locator("[data-testid=graph] .drawflow-node[data-type=aggregate]")
    expect(monthly).to_have_count(1)
    panel.locator("#wf-id").fill("monthly")
    panel.locator("#wf-id").press("Tab")
    node(page, "monthly").click()
    # template completion: the data field offers the upstream nodes' fields
    node(page, "monthly").click()
    connect(page, "start", "orders")
    connect(page, "orders", "monthly")
    connect(page, "monthly", "end")
    node(page, "monthly").click()
    values = page.eval_on_selector_all("#wf-refs option", "els => els.map(e => e.value)")
    assert "{{orders.result}}" in values, values
    panel.locator("[name=data]").fill("{{orders.result}}")
    panel.locator("[name=data]").press("Tab")
    node(page, "monthly").click()
    panel.locator("[name=group_by]").fill('["month"]')
    panel.locator("[name=group_by]").press("Tab")
    node(page, "monthly").click()
    panel.locator("[name=metrics]").fill('[{"field": "total", "op": "sum", "as": "revenue"}]')
    panel.locator("[name=metrics]").press("Tab")
    node(page, "end").click()
    panel.locator("[name=output]").fill("{{monthly.result}}")
    panel.locator("[name=output]").press("Tab")
    expect(page.locator("[data-testid=graph] .drawflow-node.has-error")).to_have_count(0)
    expect(page.locator(".drawflow .connection")).to_have_count(3)
    watch.shot("built")

    page.get_by_test_id("editor").get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("editor-state")).to_contain_text("Saved · version 2")
    saved = named(api(page, server, f"/api/v1/tenants/{tenant_id}/workflows/"), "Orders by month, by hand")[
        "graph"
    ]
    assert {n["id"] for n in saved["nodes"]} == {"start", "orders", "monthly", "end"}
    assert {(e["source"], e["target"]) for e in saved["edges"]} == {
        ("start", "orders"),
        ("orders", "monthly"),
        ("monthly", "end"),
    }
    assert all("position" in n for n in saved["nodes"])

    page.get_by_test_id("graph").click(position={"x": 5, "y": 5})  # nothing selected: the workflow panel
    page.fill("#wf-test-input", json.dumps({"since": "2026-01-01", "product": "", "region": ""}))
    page.get_by_test_id("editor").get_by_role("button", name="Test run").click()
    expect(page.get_by_test_id("editor")).to_have_attribute(
        "data-test-status", "succeeded", timeout=RUN_TIMEOUT_MS
    )
    for node_id in ("start", "orders", "monthly", "end"):
        expect(node(page, node_id)).to_have_attribute("data-status", "succeeded")
    node(page, "monthly").click()
    expect(panel.locator("[data-role=node-output]")).to_contain_text("revenue")
    watch.shot("test-run")
    watch.check()


def test_pin_undo_copy_versions_and_test_cases(
    page: Page, tmp_path: Path, serve_process: Callable[..., ServerProcess]
) -> None:
    watch = Watch(page, "editor-debug", confirm=True)
    tenant_id, workflow_id = _fresh_demo(tmp_path)
    server = serve_process(embedded_dir=tmp_path)
    submit_login(page, server.url, "admin", "jetadmin-demo")
    page.goto(f"{server.url}/t/{tenant_id}/workflows/{workflow_id}/")
    editor = page.get_by_test_id("editor")
    panel = page.get_by_test_id("panel")
    nodes = page.locator("[data-testid=graph] [data-node-id]")
    expect(nodes).to_have_count(9)

    # a test run of the saved graph, every node lights up
    page.fill("#wf-test-input", json.dumps({"since": "2026-01-01", "product": "", "region": ""}))
    editor.get_by_role("button", name="Test run").click()
    expect(editor).to_have_attribute("data-test-status", "succeeded", timeout=RUN_TIMEOUT_MS)
    for i in range(9):
        expect(nodes.nth(i)).to_have_attribute("data-status", "succeeded")
    watch.shot("first-run")

    first_run = editor.get_attribute("data-test-run")
    assert first_run

    # open that run in the editor (from its run page) and re-run from `monthly` with its upstream outputs
    page.goto(f"{server.url}/t/{tenant_id}/runs/{first_run}/")
    page.get_by_role("link", name="Open in editor").click()
    expect(nodes).to_have_count(9)
    expect(node(page, "orders")).to_have_attribute("data-status", "succeeded")  # the run's statuses
    node(page, "monthly").click()
    expect(panel.locator("[data-role=node-output]")).to_contain_text("revenue")
    panel.get_by_role("button", name="Re-run from here").click()
    expect(editor).not_to_have_attribute("data-test-run", first_run)
    expect(editor).to_have_attribute("data-test-status", "succeeded", timeout=RUN_TIMEOUT_MS)
    rerun = api(
        page,
        server,
        f"/api/v1/tenants/{tenant_id}/workflows/instances/{editor.get_attribute('data-test-run')}/",
    )
    first = api(page, server, f"/api/v1/tenants/{tenant_id}/workflows/instances/{first_run}/")
    assert rerun["nodes"]["orders"]["output"] == first["nodes"]["orders"]["output"]
    watch.shot("rerun-from-node")
    page.goto(f"{server.url}/t/{tenant_id}/workflows/{workflow_id}/")
    expect(nodes).to_have_count(9)

    # a sticky note and an automatic layout
    editor.get_by_role("button", name="Note").click()
    page.locator("[data-testid=graph] .wf-note textarea").fill("Orders come from the demo database.")
    page.locator("[data-testid=graph] .wf-note textarea").press("Tab")
    editor.get_by_role("button", name="Tidy up").click()
    positions = [(n["position"]["x"], n["position"]["y"]) for n in graph_in_editor(page)["nodes"]]
    assert len(set(positions)) == 9  # no two nodes on one spot
    assert graph_in_editor(page)["notes"][0]["text"] == "Orders come from the demo database."

    # pin the query's output (typed in): the next test run does not execute it and uses the pin
    node(page, "orders").click()
    panel.get_by_text("Pin an output").click()
    pinned_rows = [
        {
            "ordered_at": "2026-03-01",
            "month": "2026-03",
            "region": "North",
            "product": "Widget",
            "quantity": 1,
            "total": 7,
        }
    ]
    panel.locator("#wf-pin").fill(json.dumps({"result": pinned_rows}))
    panel.get_by_role("button", name="Pin output").click()
    expect(node(page, "orders").locator(".wf-pin")).to_have_text("pinned")
    page.get_by_test_id("graph").click(position={"x": 5, "y": 5})
    editor.get_by_role("button", name="Test run").click()
    expect(editor).to_have_attribute("data-test-status", "succeeded", timeout=RUN_TIMEOUT_MS)
    node(page, "monthly").click()
    output = json.loads(panel.locator("[data-role=node-output]").inner_text())
    assert output["result"] == [{"month": "2026-03", "revenue": 7, "orders": 1}]
    watch.shot("pinned-run")

    # undo and redo a deletion
    node(page, "top").click()
    page.keyboard.press("Delete")
    expect(nodes).to_have_count(8)
    page.keyboard.press("Control+z")
    expect(nodes).to_have_count(9)
    expect(node(page, "top")).to_have_count(1)
    page.keyboard.press("Control+Shift+z")
    expect(nodes).to_have_count(8)
    page.keyboard.press("Control+z")
    expect(nodes).to_have_count(9)
    watch.shot("undo-redo")

    # save (version 2: the pin), then compare with version 1 and restore it
    editor.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("editor-state")).to_contain_text("Saved · version 2")
    editor.get_by_role("button", name="Versions").click()
    expect(panel.get_by_test_id("versions").locator("tbody tr")).to_have_count(2)
    panel.get_by_role("button", name="Compare").click()
    diff = panel.get_by_test_id("diff")
    expect(diff).to_contain_text("v1 → v2")
    expect(diff).to_contain_text("node orders: pinned")
    expect(diff).to_contain_text("~ notes")
    expect(node(page, "orders")).to_have_attribute("data-diff", "changed")
    watch.shot("diff")
    panel.locator("tr[data-version='1']").get_by_role("button", name="Restore").click()
    expect(page.get_by_test_id("editor-state")).to_contain_text("Restored version 1 as version 3")
    expect(node(page, "orders").locator(".wf-pin")).to_have_count(0)
    restored = api(page, server, f"/api/v1/tenants/{tenant_id}/workflows/{workflow_id}/")
    first = api(page, server, f"/api/v1/tenants/{tenant_id}/workflows/{workflow_id}/versions/1/")
    assert restored["version"] == 3 and restored["graph"] == first["graph"]
    watch.shot("restored")

    # the demo's test cases, run from the editor
    editor.get_by_role("button", name="Tests").click()
    case = panel.locator("li[data-case='Three orders in two months']")
    case.get_by_role("button", name="Run").click()
    expect(case.locator("[data-role=verdict]")).to_have_text("passed", timeout=RUN_TIMEOUT_MS)
    watch.shot("test-case")

    # copy two nodes, paste them into another workflow
    editor.get_by_role("button", name="Tests").click()
    node(page, "by_product").click()
    node(page, "by_region").click(modifiers=["Shift"])
    expect(page.locator("[data-testid=graph] .wf-selected")).to_have_count(2)
    page.keyboard.press("Control+c")
    expect(page.get_by_test_id("editor-state")).to_contain_text("Copied 2 node(s)")
    page.goto(f"{server.url}/t/{tenant_id}/workflows/new/")
    page.fill("#id_name", "Copy target")
    page.get_by_role("button", name="Create workflow").click()
    expect(nodes).to_have_count(2)
    page.get_by_test_id("graph").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+v")
    expect(nodes).to_have_count(4)
    expect(node(page, "by_product")).to_have_count(1)
    # their data came from `orders`, which this workflow has not: validation says so; feed them from start
    expect(page.locator("[data-testid=graph] .drawflow-node.has-error")).to_have_count(2)
    for pasted in ("by_product", "by_region"):
        node(page, pasted).click()
        panel.locator("[name=data]").fill("{{start.rows}}")
        panel.locator("[name=data]").press("Tab")
        connect(page, "start", pasted)
    expect(page.locator("[data-testid=graph] .drawflow-node.has-error")).to_have_count(0)
    editor.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("editor-state")).to_contain_text("Saved · version 2")
    target = named(api(page, server, f"/api/v1/tenants/{tenant_id}/workflows/"), "Copy target")
    by_region = next(n for n in target["graph"]["nodes"] if n["id"] == "by_region")
    assert by_region["inputs"]["group_by"] == ["region"]
    watch.shot("pasted")
    watch.check()


def test_a_200_node_graph_opens_and_saves_unchanged(
    page: Page,
    make_user: Callable[..., Any],
    make_tenant: Callable[..., Any],
    serve_process: Callable[..., ServerProcess],
) -> None:
    from apps.tenancy.services import Actor
    from apps.workflows import services as workflow_services
    from tests.conftest import PASSWORD

    watch = Watch(page, "editor-200")
    user = make_user()
    tenant = make_tenant("Big", owner=user)
    graph = big_graph()
    workflow = workflow_services.workflow_create(
        actor=Actor(user=user), tenant=tenant, name="Big", graph=graph
    )
    stored = workflow.current_version.graph
    server = serve_process()
    submit_login(page, server.url, user.username, PASSWORD)
    page.goto(f"{server.url}/t/{tenant.id}/workflows/{workflow.id}/")
    expect(page.locator("[data-testid=graph] [data-node-id]")).to_have_count(200)
    expect(page.locator("[data-testid=graph] .wf-note")).to_have_count(2)
    expect(page.locator(".drawflow .connection")).to_have_count(199)
    expect(page.get_by_test_id("editor-state")).to_contain_text("Saved · version 1")
    assert graph_in_editor(page) == stored  # ids, positions, labels, notes, inputs: as stored
    page.get_by_test_id("editor").get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("editor-state")).to_contain_text("Saved · version 1")  # nothing changed
    after = api(page, server, f"/api/v1/tenants/{tenant.id}/workflows/{workflow.id}/")
    assert after["version"] == 1 and after["graph"] == stored
    # one node moved: the save is a new version and every other key comes back unchanged
    page.evaluate("() => { const g = window.JetEditor.graph; g.nodes[5].position = {x: 1234, y: 567}; }")
    page.get_by_test_id("editor").get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("editor-state")).to_contain_text("Saved · version 2")
    after = api(page, server, f"/api/v1/tenants/{tenant.id}/workflows/{workflow.id}/")
    expected = json.loads(json.dumps(stored))
    expected["nodes"][5]["position"] = {"x": 1234, "y": 567}
    assert after["graph"] == expected
    watch.shot("opened")
    watch.check()


def test_build_the_demo_workflow_by_drag_and_drop_and_forms(
    page: Page, tmp_path: Path, serve_process: Callable[..., ServerProcess]
) -> None:
    """The demo's "Monthly sales report" (nine nodes), built node by node from a new workflow: every node
    dragged from the palette and named, every input typed into the form its type's schema generates,
    every edge drawn between handles; saved, it equals the demo's graph; test-run, every node succeeds."""
    from jetadmin.demo import report_graph

    watch = Watch(page, "editor-demo")
    page.set_viewport_size({"width": 1700, "height": 1100})
    tenant_id, _ = _fresh_demo(tmp_path)
    server = serve_process(embedded_dir=tmp_path)
    submit_login(page, server.url, "admin", "jetadmin-demo")
    page.goto(f"{server.url}/t/{tenant_id}/workflows/new/")
    page.fill("#id_name", "Sales, by hand")
    page.get_by_role("button", name="Create workflow").click()
    nodes = page.locator("[data-testid=graph] [data-node-id]")
    expect(nodes).to_have_count(2)
    for existing in ("start", "end"):  # dropped again below, where the layout wants them
        node(page, existing).click()
        page.keyboard.press("Delete")
    expect(nodes).to_have_count(0)
    for _ in range(3):  # room for five columns of nodes
        page.get_by_test_id("editor").get_by_role("button", name="Zoom out").click()

    query_id = named(api(page, server, f"/api/v1/tenants/{tenant_id}/queries/"), "Orders since")["id"]
    target = report_graph(query_id)
    schemas = {t["type"]: t["inputs_schema"] for t in api(page, server, "/api/v1/node-types/")}
    columns = {"start": 0, "orders": 1, "shape": 2, "top": 2, "by_product": 2, "by_region": 2, "monthly": 3}
    columns |= {"end": 4, "latest": 4}
    rows: dict[int, int] = {}
    box = page.get_by_test_id("graph").bounding_box()
    assert box
    panel = page.get_by_test_id("panel")
    for spec in target["nodes"]:
        column = columns[spec["id"]]
        row = rows[column] = rows.get(column, -1) + 1
        drop(page, spec["type"], box["width"] * (0.07 + 0.19 * column), box["height"] * (0.12 + 0.22 * row))
        panel.locator("#wf-id").fill(spec["id"])
        panel.locator("#wf-id").press("Tab")
        expect(node(page, spec["id"])).to_have_count(1)
        properties = schemas[spec["type"]].get("properties", {})
        for key, value in spec.get("inputs", {}).items():
            node(page, spec["id"]).click()
            field = panel.locator(f"[name='{key}']")
            kind = properties.get(key, {}).get("type")
            typed = value if isinstance(value, str) else json.dumps(value)
            field.fill(str(value) if kind in ("integer", "number") else typed)
            field.press("Tab")
    watch.shot("nodes")
    for edge in target["edges"]:
        connect(page, edge["from"], edge["to"])
    expect(page.locator(".drawflow .connection")).to_have_count(len(target["edges"]))
    expect(page.locator("[data-testid=graph] .drawflow-node.has-error")).to_have_count(0)
    watch.shot("built")

    page.get_by_test_id("editor").get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("editor-state")).to_contain_text("Saved · version 2")
    saved = named(api(page, server, f"/api/v1/tenants/{tenant_id}/workflows/"), "Sales, by hand")["graph"]
    assert {n["id"]: (n["type"], n["inputs"]) for n in saved["nodes"]} == {
        n["id"]: (n["type"], n.get("inputs", {})) for n in target["nodes"]
    }
    assert {(e["source"], e["target"]) for e in saved["edges"]} == {
        (e["from"], e["to"]) for e in target["edges"]
    }

    page.get_by_test_id("graph").click(position={"x": 5, "y": 5})
    page.fill("#wf-test-input", json.dumps({"since": "2026-01-01", "product": "", "region": ""}))
    page.get_by_test_id("editor").get_by_role("button", name="Test run").click()
    expect(page.get_by_test_id("editor")).to_have_attribute(
        "data-test-status", "succeeded", timeout=RUN_TIMEOUT_MS
    )
    for spec in target["nodes"]:
        expect(node(page, spec["id"])).to_have_attribute("data-status", "succeeded")
    watch.shot("test-run")
    watch.check()
