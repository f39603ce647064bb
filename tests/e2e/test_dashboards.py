"""End-to-end: the demo's Sales dashboard in Chromium on a fresh embedded default (as `make run`
leaves it). Every widget draws data (charts have drawn pixels, the table has rows, the number shows),
the provenance names the run that produced it, CSV export downloads the rows, a reload paints the
last data at once (no "Loading…"), and Refresh starts a new run that every widget moves to, live."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from apps.dashboards import services as dashboards
from apps.tenancy.models import Tenant, User
from apps.tenancy.services import Actor
from apps.widgets import services as widgets
from apps.workflows import services as workflow_services
from jetadmin.demo import DEMO_WIDGETS
from tests.conftest import PASSWORD, ServerProcess, add_member
from tests.e2e.test_login import submit_login
from tests.e2e.test_pages import Watch, _fresh_demo, nav
from tests.workflows.conftest import _embedded_session, embedded_worker  # noqa: F401 - fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DRAWN = """(canvas) => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
  return n;
}"""


def runs_shown(page: Page) -> set[str]:
    return {el.get_attribute("data-instance-id") or "" for el in page.locator("[data-role=provenance]").all()}


def test_the_demo_sales_dashboard(
    page: Page, tmp_path: Path, serve_process: Callable[..., ServerProcess]
) -> None:
    watch = Watch(page, "dashboard")
    tenant_id, _ = _fresh_demo(tmp_path)
    server = serve_process(embedded_dir=tmp_path)
    submit_login(page, server.url, "admin", "jetadmin-demo")
    nav(page, "Dashboards").click()
    page.get_by_role("link", name="Sales").click()
    widgets = page.locator("[data-widget-id]")
    expect(widgets).to_have_count(len(DEMO_WIDGETS))
    for i in range(len(DEMO_WIDGETS)):  # first visit: nothing to show yet, then the run's data arrives live
        expect(widgets.nth(i)).to_have_attribute("data-state", "done", timeout=30_000)
    expect(page.locator("[data-testid=live]")).to_have_attribute("data-state", "live")
    watch.shot("first-visit")

    for canvas in page.locator("[data-widget-id] canvas").all():  # two bar charts, a line and a pie
        assert canvas.evaluate(DRAWN) > 1000, "a chart drew nothing"
    assert page.locator("[data-widget-id] canvas").count() == 4
    expect(page.locator("[data-widget-type=table] tbody tr")).to_have_count(10)
    grouped = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")  # the stat's "number" format: 48,886.75
    expect(page.locator("[data-widget-type=stat] [data-role=value]")).to_have_text(grouped)
    runs = runs_shown(page)
    assert len(runs) == 1 and "" not in runs, runs  # one run fed every widget
    (run,) = runs
    monthly = page.locator("[data-widget-type=bar]", has_text="Revenue by month")
    link = monthly.locator("[data-role=run-link]")
    expect(link).to_contain_text("Monthly sales report v1 · run " + run[:8])
    assert link.get_attribute("href") == f"/t/{tenant_id}/runs/{run}/"

    with page.expect_download() as download:
        page.locator("[data-widget-type=table] [data-role=export-csv]").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "ordered_at,region,product,quantity,total" and len(lines) == 11, lines[:2]

    page.reload()  # the last data is painted by the server: no spinner
    expect(page.locator("[data-role=loading]")).to_have_count(0)
    assert page.locator("[data-widget-type=pie] canvas").evaluate(DRAWN) > 1000
    assert runs_shown(page) == {run}  # the run is reused within the refresh interval
    # A refresh reuses a run started within JETADMIN_WIDGET_REFRESH_MIN_S (2 s: viewers refreshing together
    # share it); this test is faster than a person, so it lets that window pass first.
    page.wait_for_timeout(2100)
    page.get_by_role("button", name="Refresh").click()
    expect(monthly.locator("[data-role=provenance]")).not_to_have_attribute(
        "data-instance-id", run, timeout=30_000
    )
    for i in range(len(DEMO_WIDGETS)):
        expect(widgets.nth(i)).to_have_attribute("data-state", "done", timeout=30_000)
    new = runs_shown(page)
    assert len(new) == 1 and run not in new, new  # one new run for the whole dashboard
    watch.shot("refreshed")

    # a filter re-runs the workflow with its value; the URL keeps it, so the view can be shared
    before = page.locator("[data-widget-type=stat] [data-role=value]").inner_text()
    since = (date.today() - timedelta(days=120)).replace(day=1)  # the demo's orders end today
    page.fill("input[name='f.since']", since.isoformat())
    expect(page).to_have_url(f"{page.url.split('?')[0]}?f.since={since.isoformat()}")
    expect(monthly.locator("[data-role=provenance]")).not_to_have_attribute(
        "data-instance-id", next(iter(new)), timeout=30_000
    )
    for i in range(len(DEMO_WIDGETS)):
        expect(widgets.nth(i)).to_have_attribute("data-state", "done", timeout=30_000)
    assert monthly.locator("canvas").evaluate("c => Chart.getChart(c).data.labels[0]") == since.strftime(
        "%Y-%m"
    )
    watch.shot("filtered")

    # clicking a slice of the pie filters every widget to that product (and says so in the URL)
    pie = page.locator("[data-widget-type=pie] canvas")
    box = pie.bounding_box()
    assert box is not None
    first_slice = "c => Chart.getChart(c).getDatasetMeta(0).data[0].tooltipPosition()"
    slice_at = pie.evaluate(f"c => {{ const p = ({first_slice})(c); return [p.x, p.y]; }}")
    label = pie.evaluate("c => Chart.getChart(c).data.labels[0]")
    pie.click(position={"x": slice_at[0], "y": slice_at[1]})
    expect(page.locator("select[name='f.product']")).to_have_value(label)
    assert f"f.product={label}" in page.url
    for i in range(len(DEMO_WIDGETS)):
        expect(widgets.nth(i)).to_have_attribute("data-state", "done", timeout=30_000)
    expect(page.locator("[data-widget-type=table] tbody tr").first).to_contain_text(label)
    assert page.locator("[data-widget-type=pie] canvas").evaluate("c => Chart.getChart(c).data.labels") == [
        label
    ]
    assert page.locator("[data-widget-type=stat] [data-role=value]").inner_text() != before
    watch.shot("cross-filtered")

    # clicking a bar of "Revenue by region" narrows to that region as well
    bars = page.locator("[data-widget-type=bar]", has_text="Revenue by region").locator("canvas")
    first_bar = "c => Chart.getChart(c).getDatasetMeta(0).data[0].tooltipPosition()"
    bar_at = bars.evaluate(f"c => {{ const p = ({first_bar})(c); return [p.x, p.y + 5]; }}")
    region = bars.evaluate("c => Chart.getChart(c).data.labels[0]")
    bars.click(position={"x": bar_at[0], "y": bar_at[1]})
    expect(page.locator("select[name='f.region']")).to_have_value(region)
    assert f"f.region={region}" in page.url and f"f.product={label}" in page.url
    for i in range(len(DEMO_WIDGETS)):
        expect(widgets.nth(i)).to_have_attribute("data-state", "done", timeout=30_000)
    cells = page.locator("[data-widget-type=table] tbody tr td:nth-child(2)")
    expect(cells.first).to_have_text(region)
    assert set(cells.all_inner_texts()) == {region}
    watch.shot("region")

    page.reload()  # the shared URL opens filtered: no unfiltered data painted first
    expect(page.locator("select[name='f.product']")).to_have_value(label)
    expect(page.locator("[data-widget-type=table] tbody tr").first).to_contain_text(label, timeout=30_000)
    link.click()
    expect(page.locator("[data-testid=run-status]")).to_have_text("succeeded")
    watch.check()


PAYLOADS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=2">',
    '<a href="javascript:window.__xss=3">click</a>',
    '"><svg onload=window.__xss=4>',
]


def test_content_widgets_render_and_nothing_runs(
    page: Page,
    make_user: Callable[..., User],
    make_tenant: Callable[..., Tenant],
    serve_process: Callable[..., ServerProcess],
) -> None:
    """Markdown, HTML, text and a Vega-Lite chart without a workflow (static content) and a table whose
    cells, labels and names carry HTML and script: all drawn, as text or sanitized, and no script runs."""
    watch = Watch(page, "dashboard-content")
    user = make_user()
    tenant = make_tenant("Content", owner=user)
    actor = Actor(user=user)
    joined = " ".join(PAYLOADS)
    made = [
        widgets.widget_create(
            actor=actor,
            tenant=tenant,
            name=PAYLOADS[1],
            type="markdown",
            config={"text": f"# Notes\n\n**Bold** and {joined}"},
        ),
        widgets.widget_create(
            actor=actor,
            tenant=tenant,
            name="HTML",
            type="html",
            config={"html": f"<p class='x'>Kept <em>markup</em></p>{joined}"},
        ),
        widgets.widget_create(actor=actor, tenant=tenant, name="Text", type="text", config={"text": joined}),
        widgets.widget_create(
            actor=actor,
            tenant=tenant,
            name="Vega",
            type="vega-lite",
            config={
                "spec": {
                    "mark": "bar",
                    "data": {"values": [{"k": p, "v": i + 1} for i, p in enumerate(PAYLOADS)]},
                    "encoding": {
                        "x": {"field": "k", "type": "nominal"},
                        "y": {"field": "v", "type": "quantitative"},
                    },
                }
            },
        ),
        widgets.widget_create(
            actor=actor,
            tenant=tenant,
            name="Cells",
            type="table",
            config={"rows": [{"payload": p, "n": i} for i, p in enumerate(PAYLOADS)]},
        ),
    ]
    layout = [
        {"widget": str(w.id), "x": (i % 2) * 6, "y": (i // 2) * 4, "w": 6, "h": 4} for i, w in enumerate(made)
    ]
    board = dashboards.dashboard_create(actor=actor, tenant=tenant, name=PAYLOADS[3], layout=layout)
    server = serve_process()
    submit_login(page, server.url, user.username, PASSWORD)
    # the payload's <img src=x> survives sanitizing as a harmless relative image: answer it, not 404
    page.route("**/dashboards/*/x", lambda route: route.fulfill(status=204, body=""))
    page.goto(f"{server.url}/t/{tenant.id}/dashboards/{board.id}/")
    expect(page.locator("[data-widget-type=markdown] h1")).to_have_text("Notes")
    expect(page.locator("[data-widget-type=html] em")).to_have_text("markup")
    expect(page.locator("[data-widget-type=text]")).to_contain_text("<script>window.__xss=1</script>")
    expect(page.locator("[data-widget-type=table] tbody tr")).to_have_count(4)
    expect(page.locator("[data-widget-type=table]")).to_contain_text('<img src=x onerror="window.__xss=2">')
    canvas = page.locator("[data-widget-type=vega-lite] canvas")
    expect(canvas).to_have_count(1)
    page.wait_for_timeout(500)
    assert canvas.evaluate(DRAWN) > 500, "the Vega-Lite chart drew nothing"
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 150, box  # and it is on screen
    for link in page.locator("[data-widget-type=markdown] a, [data-widget-type=html] a").all():
        assert not (link.get_attribute("href") or "").lower().startswith("javascript:")
    watch.shot("content")
    page.mouse.click(10, 10)
    assert page.evaluate("window.__xss") is None
    assert (
        page.locator(
            '[data-widget-id] script:not([type="application/json"]), '
            "[data-widget-id] svg[onload], [data-widget-id] img[onerror]"
        ).count()
        == 0
    )
    watch.check()


def test_a_share_link_opens_read_only_for_a_signed_out_browser_until_revoked(
    page: Page, browser: Browser, tmp_path: Path, serve_process: Callable[..., ServerProcess]
) -> None:
    watch = Watch(page, "share")
    _fresh_demo(tmp_path)
    server = serve_process(embedded_dir=tmp_path)
    submit_login(page, server.url, "admin", "jetadmin-demo")
    nav(page, "Dashboards").click()
    page.get_by_role("link", name="Sales").click()
    widgets = page.locator("[data-widget-id]")
    for i in range(len(DEMO_WIDGETS)):  # the widgets have data (a run) before the dashboard is shared
        expect(widgets.nth(i)).to_have_attribute("data-state", "done", timeout=30_000)
    page.get_by_text("Share", exact=True).click()
    page.get_by_role("button", name="Create a share link").click()
    url = page.locator("[data-testid=share-url]").inner_text().strip()
    assert "/share/jsh_" in url
    watch.shot("link")

    outsider = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        shared = outsider.new_page()
        seen = Watch(shared, "share-outsider")
        shared.goto(url)
        expect(shared.locator("[data-testid=shared]")).to_be_visible()
        expect(shared.locator("[data-testid=nav]")).to_have_count(0)
        expect(shared.locator("[data-widget-id]")).to_have_count(len(DEMO_WIDGETS))
        expect(shared.locator("[data-role=loading]")).to_have_count(0)  # the last data, at once
        monthly = shared.locator("[data-widget-type=bar]", has_text="Revenue by month")
        assert monthly.locator("canvas").evaluate(DRAWN) > 1000
        for i in range(len(DEMO_WIDGETS)):  # the link's websocket session replays each widget's latest run
            expect(shared.locator("[data-widget-id]").nth(i)).to_have_attribute(
                "data-state", "done", timeout=30_000
            )
        expect(
            shared.locator("[data-role=export-csv], [data-role=refresh-all], [data-role=filters]")
        ).to_have_count(0)
        expect(shared.locator("a[data-role=run-link]")).to_have_count(0)  # no links into member pages
        seen.shot("shared")
        seen.check()

        page.reload()
        page.locator("[data-testid=share-links]").get_by_role("button", name="Revoke").click()
        expect(page.locator(".messages")).to_contain_text("revoked")
        response = shared.goto(url)
        assert response is not None and response.status == 404
    finally:
        outsider.close()
    watch.check()


def test_edit_the_layout_by_drag_and_resize(
    page: Page, tmp_path: Path, serve_process: Callable[..., ServerProcess]
) -> None:
    watch = Watch(page, "dashboard-edit")
    _fresh_demo(tmp_path)
    server = serve_process(embedded_dir=tmp_path)
    submit_login(page, server.url, "admin", "jetadmin-demo")
    nav(page, "Dashboards").click()
    page.get_by_role("link", name="Sales").click()
    page.get_by_role("link", name="Edit layout").click()
    items = page.locator("[data-testid=layout-editor] .grid-stack-item")
    expect(items).to_have_count(len(DEMO_WIDGETS))
    stat = page.locator(".grid-stack-item", has_text="Revenue this month")
    expect(stat.locator(".ui-resizable-handle")).to_have_count(1)  # gridstack has taken the grid over
    before = stat.bounding_box()
    assert before is not None
    page.mouse.move(before["x"] + 100, before["y"] + 130)  # grab it below its text; drag it right
    page.mouse.down()
    for step in range(1, 20):
        page.mouse.move(before["x"] + 100 + step * 25, before["y"] + 130, steps=2)
        page.wait_for_timeout(20)
    page.mouse.up()
    expect(stat).not_to_have_attribute("gs-x", "0")
    stat.hover()  # the resize handle shows on hover
    handle = stat.locator(".ui-resizable-se")
    box = handle.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # and make it taller
    page.mouse.down()
    page.mouse.move(box["x"] + 5, box["y"] + 200, steps=12)
    page.mouse.up()
    page.locator(".grid-stack-item", has_text="Top orders").get_by_role("button", name="Remove").click()
    expect(items).to_have_count(len(DEMO_WIDGETS) - 1)
    page.get_by_label("Add a widget").select_option(label="Top orders (table)")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(items).to_have_count(len(DEMO_WIDGETS))
    added = page.locator(".grid-stack-item", has_text="Top orders")
    expect(added).to_have_attribute("gs-w", "4")  # placed 4 columns wide, 3 rows high
    expect(added).to_have_attribute("gs-h", "3")
    watch.shot("edited")
    page.get_by_role("button", name="Save layout").click()
    expect(page.locator(".messages")).to_contain_text("saved")
    tiles = page.locator("[data-widget-id]")
    expect(tiles).to_have_count(len(DEMO_WIDGETS))
    moved = page.locator("[data-widget-type=stat]").get_attribute("style") or ""
    assert "grid-column:1/" not in moved.replace(" ", ""), moved  # no longer in the first column
    assert "span 2" not in moved.split("grid-row")[1], moved  # taller than the 2 rows it had
    watch.shot("saved")
    watch.check()


ECHO = {
    "nodes": [
        {
            "id": "start",
            "type": "start",
            "inputs": {"schema": {"type": "object", "properties": {"n": {"type": "integer", "default": 1}}}},
        },
        {"id": "end", "type": "end", "inputs": {"output": "{{start.n}}"}},
    ],
    "edges": [{"from": "start", "to": "end"}],
}


@pytest.mark.usefixtures("embedded_worker")
def test_input_widgets_rerun_the_dashboard_for_a_viewer(
    page: Page,
    make_user: Callable[..., User],
    make_tenant: Callable[..., Tenant],
    serve_process: Callable[..., ServerProcess],
) -> None:
    """A select and a form (static input widgets) set the parameter `n` the number widget's workflow
    reads; a viewer (widget.view, no workflow.run) may, because the dashboard declares it."""
    watch = Watch(page, "dashboard-inputs")
    owner, viewer = make_user(), make_user()
    tenant = make_tenant("Inputs", owner=owner)
    add_member(tenant, viewer, "viewer")
    actor = Actor(user=owner)
    flow = workflow_services.workflow_create(actor=actor, tenant=tenant, name="Echo", graph=ECHO)
    number = widgets.widget_create(
        actor=actor, tenant=tenant, name="N", type="stat", config={"value": "{{ctx.start.n}}"},
        workflow=flow.id, workflow_config={"input_params": {"n": 1}},
    )  # fmt: skip
    picker = widgets.widget_create(
        actor=actor, tenant=tenant, name="Pick n", type="select", config={"param": "n", "options": [1, 2, 3]}
    )
    ask_n = {"schema": {"type": "object", "properties": {"n": {"type": "integer"}}}, "submit_label": "Set"}
    form = widgets.widget_create(actor=actor, tenant=tenant, name="Type n", type="form", config=ask_n)
    layout = [
        {"widget": str(w.id), "x": i * 4, "y": 0, "w": 4, "h": 3}
        for i, w in enumerate((number, picker, form))
    ]
    board = dashboards.dashboard_create(actor=actor, tenant=tenant, name="Echo board", layout=layout)
    server = serve_process()
    submit_login(page, server.url, viewer.username, PASSWORD)
    page.goto(f"{server.url}/t/{tenant.id}/dashboards/{board.id}/")
    value = page.locator("[data-widget-type=stat] [data-role=value]")
    expect(value).to_have_text("1", timeout=30_000)
    page.locator("[data-widget-type=select] select").select_option("3")
    expect(value).to_have_text("3", timeout=30_000)
    page.locator("[data-widget-type=form] input[name=n]").fill("7")
    page.get_by_role("button", name="Set").click()
    expect(value).to_have_text("7", timeout=30_000)
    expect(page.locator("[data-widget-type=stat]")).to_have_attribute("data-state", "done")
    watch.shot("rerun")
    watch.check()
