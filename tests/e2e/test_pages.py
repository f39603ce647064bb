"""End-to-end journeys through the pages, in Chromium against ``manage.py serve``, as a user would:
connect a SQLite datasource through its form, test it, write a parameterised query, run it, page and
export the rows; run the demo workflow from its page and watch every node succeed live; approve a
waiting step from the run page; invite a member and create an API key. Each step saves a screenshot
under tests/artifacts/pages/; no console error is allowed anywhere."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Dialog, Error, Locator, Page, Response, expect

from apps.tenancy.models import Tenant, User
from apps.tenancy.services import Actor
from apps.workflows import services as workflow_services
from jetadmin.demo import report_graph
from tests.conftest import ARTIFACTS, PASSWORD, ServerProcess
from tests.e2e.test_login import submit_login
from tests.test_ops import _manage
from tests.workflows.conftest import _embedded_session, embedded_worker  # noqa: F401 - fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = ARTIFACTS / "pages"


class Watch:
    """Console errors, page errors and failed responses of one page, and numbered screenshots."""

    def __init__(self, page: Page, name: str, *, confirm: bool = False) -> None:
        self.page, self.name, self.n, self.confirm = page, name, 0, confirm
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", self._page_error)
        page.on("dialog", self._dialog)
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console: {message.text}")

    def _page_error(self, error: Error) -> None:
        self.problems.append(f"pageerror: {error}")

    def _dialog(self, dialog: Dialog) -> None:
        if self.confirm and dialog.type == "confirm":  # a destructive action's "are you sure?"
            dialog.accept()
            return
        self.problems.append(f"dialog: {dialog.message}")  # a script ran (an XSS payload would open one)
        dialog.dismiss()

    def _response(self, response: Response) -> None:
        if response.status >= 500:
            self.problems.append(f"{response.status} {response.url}")

    def shot(self, step: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.n += 1
        self.page.screenshot(path=str(SHOTS / f"{self.name}-{self.n:02d}-{step}.png"), full_page=True)

    def check(self) -> None:
        assert not self.problems, self.problems


def nav(page: Page, section: str) -> Locator:
    return page.get_by_test_id("nav").get_by_role("link", name=section)


@pytest.fixture
def shop_root(tmp_path: Path) -> Path:
    """A SQLite root holding shop.db: 120 orders with totals 1..120."""
    root = tmp_path / "sqlite"
    root.mkdir()
    conn = sqlite3.connect(root / "shop.db")
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL)")
    conn.executemany(
        "INSERT INTO orders (customer, total) VALUES (?, ?)", [(f"c{i % 7}", float(i)) for i in range(1, 121)]
    )
    conn.commit()
    conn.close()
    return root


def test_datasource_and_query_journey(
    page: Page,
    make_user: Callable[..., User],
    make_tenant: Callable[..., Tenant],
    serve_process: Callable[..., ServerProcess],
    shop_root: Path,
) -> None:
    watch = Watch(page, "query")
    user = make_user()
    tenant = make_tenant("Shop", owner=user)
    server = serve_process(JETADMIN_SQLITE_ROOT=str(shop_root))
    submit_login(page, server.url, user.username, PASSWORD)
    expect(page).to_have_url(f"{server.url}/t/{tenant.id}/")

    nav(page, "Datasources").click()
    expect(page.get_by_text("No datasources yet")).to_be_visible()
    watch.shot("empty-datasources")
    page.get_by_role("link", name="Add a datasource").first.click()
    page.locator("[data-type=sqlite]").click()
    page.fill("#id_name", "Shop DB")
    page.fill("[name='f.path']", "missing.db")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("[data-testid=test-result] .test-result")).to_have_attribute("data-ok", "false")
    expect(page.locator("[data-testid=test-result]")).to_contain_text("No SQLite database")
    watch.shot("test-failed")
    page.fill("[name='f.path']", "shop.db")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("[data-testid=test-result] .test-result")).to_have_attribute("data-ok", "true")
    watch.shot("test-ok")
    page.get_by_role("button", name="Create datasource").click()
    expect(page.locator(".messages")).to_contain_text("Datasource 'Shop DB' created.")
    page.get_by_role("button", name="Test saved connection").click()
    expect(page.locator("[data-testid=test-result] .test-result")).to_have_attribute("data-ok", "true")
    nav(page, "Datasources").click()
    expect(page.locator("[data-testid=datasources]")).to_contain_text("healthy")
    watch.shot("datasource-list")

    nav(page, "Queries").click()
    page.get_by_role("link", name="New query").first.click()
    page.select_option("#id_datasource", label="Shop DB (sqlite)")
    expect(page.locator("[data-testid=schema] [data-table=orders]")).to_be_visible()  # the schema browser
    page.fill("#id_name", "Big orders")
    page.locator(".CodeMirror").click()
    page.keyboard.type("SELECT id, customer, total FROM ")
    page.locator("[data-table=orders] summary button").click()  # inserts the table's name
    page.keyboard.type(" WHERE total >= :min_total ORDER BY id")
    expect(page.locator("[name='f.min_total']")).to_be_visible()  # a parameter input appeared
    page.fill("[name='f.min_total']", "41")
    watch.shot("editor")
    page.locator(".CodeMirror").click()
    page.keyboard.press("Control+Enter")
    results = page.locator("table[data-role=results]")
    expect(page.locator("[data-testid=row-count]")).to_have_text("80 rows")
    expect(results.locator("tbody tr:visible")).to_have_count(50)  # page one of two
    expect(results.locator("tbody tr:visible").first.locator("td").nth(2)).to_have_text("41.0")
    watch.shot("results")
    page.locator("[data-role=pager]").get_by_role("button", name="Next →").click()
    expect(results.locator("tbody tr:visible")).to_have_count(30)
    expect(page.locator("[data-role=page-label]")).to_have_text("Rows 51\u201380 of 80")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "id,customer,total" and len(lines) == 81 and lines[1] == "41,c6,41", lines[:3]
    assert download.value.suggested_filename == "Big_orders.csv"
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Query 'Big orders' saved.")
    expect(page.locator("h1")).to_have_text("Big orders")
    watch.shot("saved")
    # a bad parameter value comes back as a readable error, not a blank grid
    page.fill("[name='f.min_total']", "")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("[data-testid=run-error]")).to_contain_text("min_total")
    watch.shot("run-error")
    watch.check()


def demo_graph() -> dict[str, Any]:
    return report_graph("a query")


def _fresh_demo(tmp_path: Path) -> tuple[str, str]:
    env = {"JETADMIN_DATA_DIR": str(tmp_path)}
    assert _manage("migrate", "--noinput", **env).returncode == 0
    out = _manage("bootstrap_demo", **env)
    assert out.returncode == 0, out.stderr
    return out.stdout.split("/t/")[1].split("/")[0], out.stdout.split('"Monthly sales report" (')[1].split(
        ")"
    )[0]


def test_run_the_demo_workflow_from_its_page(
    page: Page, tmp_path: Path, serve_process: Callable[..., ServerProcess]
) -> None:
    watch = Watch(page, "demo-run")
    tenant_id, workflow_id = _fresh_demo(tmp_path)
    server = serve_process(embedded_dir=tmp_path)
    submit_login(page, server.url, "admin", "jetadmin-demo")
    nav(page, "Workflows").click()
    page.get_by_role("link", name="Monthly sales report").click()
    expect(page).to_have_url(f"{server.url}/t/{tenant_id}/workflows/{workflow_id}/")
    nodes = page.locator("[data-testid=graph] [data-node-id]")
    expect(nodes).to_have_count(len(demo_graph()["nodes"]))
    watch.shot("workflow")
    expect(page.locator("[name='f.since']")).to_have_value("2026-01-01")  # from the start node's schema
    page.get_by_role("button", name="Run workflow").click()
    expect(page.locator("[data-testid=live]")).to_have_attribute("data-state", "live")
    expect(page.locator("[data-testid=run-status]")).to_have_text("succeeded", timeout=30_000)
    for i in range(nodes.count()):
        expect(nodes.nth(i)).to_have_attribute("data-status", "succeeded")
    # what is not streamed is redrawn at the end: no cancel button, every node's duration
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(page.locator("[data-testid=timeline] tbody tr")).to_have_count(nodes.count())
    watch.shot("run-succeeded")
    nav(page, "Runs").click()
    expect(page.locator("[data-testid=runs] tbody tr")).to_have_count(1)
    expect(page.locator("[data-testid=runs]")).to_contain_text("succeeded")
    watch.shot("runs")
    watch.check()


APPROVAL = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "ok", "type": "approval", "inputs": {"message": "Ship the <b>order</b>?"}},
        {"id": "end", "type": "end", "inputs": {"output": "{{ok}}"}},
    ],
    "edges": [{"from": "start", "to": "ok"}, {"from": "ok", "to": "end", "handle": "approved"}],
}


@pytest.mark.usefixtures("embedded_worker")
def test_approve_a_waiting_step_from_the_run_page(
    page: Page,
    make_user: Callable[..., User],
    make_tenant: Callable[..., Tenant],
    serve_process: Callable[..., ServerProcess],
) -> None:
    watch = Watch(page, "approval")
    user = make_user()
    tenant = make_tenant("Approvals", owner=user)
    workflow = workflow_services.workflow_create(
        actor=Actor(user=user), tenant=tenant, name="Ship", graph=APPROVAL
    )
    server = serve_process()
    submit_login(page, server.url, user.username, PASSWORD)
    page.goto(f"{server.url}/t/{tenant.id}/workflows/{workflow.id}/")
    page.get_by_role("button", name="Run workflow").click()
    expect(page.locator("[data-testid=run-status]")).to_have_text("waiting", timeout=30_000)
    approvals = page.locator("[data-testid=approvals]")
    expect(approvals).to_contain_text("Ship the <b>order</b>?")  # text, not markup
    watch.shot("waiting")
    approvals.locator("input[name=comment]").fill("looks right")
    approvals.get_by_role("button", name="Approve").click()
    expect(page.locator(".messages")).to_contain_text("approved")
    expect(page.locator("[data-testid=run-status]")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("[data-node-id=end]")).to_have_attribute("data-status", "succeeded")
    watch.shot("approved")
    watch.check()


def test_invite_a_member_and_create_an_api_key(
    page: Page,
    make_user: Callable[..., User],
    make_tenant: Callable[..., Tenant],
    serve_process: Callable[..., ServerProcess],
) -> None:
    watch = Watch(page, "settings")
    user = make_user()
    tenant = make_tenant("Team", owner=user)
    server = serve_process()
    submit_login(page, server.url, user.username, PASSWORD)
    nav(page, "Settings").click()
    page.fill("#id_invite_email", "new.person@example.com")
    page.select_option("#id_invite_role", label="editor")
    page.get_by_role("button", name="Send invite").click()
    expect(page.locator(".messages")).to_contain_text("Invite sent to new.person@example.com.")
    expect(page.locator("[data-testid=invites]")).to_contain_text("new.person@example.com")
    watch.shot("invited")
    page.fill("#id_key_name", "CI pipeline")
    page.get_by_role("button", name="Create API key").click()
    raw = page.locator("[data-testid=api-key-value]").inner_text().strip()
    watch.shot("key-shown")
    request = urllib.request.Request(  # noqa: S310 - local test server
        f"{server.url}/api/v1/tenants/{tenant.id}/workflows/", headers={"Authorization": f"Api-Key {raw}"}
    )
    with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310
        assert r.status == 200 and json.loads(r.read())["count"] == 0
    page.reload()  # shown once: gone on the next view
    expect(page.locator("[data-testid=api-key-value]")).to_have_count(0)
    expect(page.locator("[data-testid=api-keys]")).to_contain_text("CI pipeline")
    toggle = page.locator("[data-theme-toggle]")
    expect(toggle).to_have_text("Theme: auto")
    toggle.click()
    toggle.click()
    expect(toggle).to_have_text("Theme: dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 19, 28)", background  # the dark tokens
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")  # kept in this browser
    watch.shot("dark")
    watch.check()


@pytest.mark.usefixtures("embedded_worker")
def test_schedule_and_webhook_from_the_workflow_page(
    page: Page,
    make_user: Callable[..., User],
    make_tenant: Callable[..., Tenant],
    serve_process: Callable[..., ServerProcess],
) -> None:
    watch = Watch(page, "triggers", confirm=True)  # the schedule's delete asks first
    user = make_user()
    tenant = make_tenant("Triggers", owner=user)
    simple = {
        "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
        "edges": [{"from": "start", "to": "end"}],
    }
    workflow = workflow_services.workflow_create(
        actor=Actor(user=user), tenant=tenant, name="Nightly", graph=simple
    )
    server = serve_process()
    submit_login(page, server.url, user.username, PASSWORD)
    page.goto(f"{server.url}/t/{tenant.id}/workflows/{workflow.id}/")
    page.get_by_text("Add a schedule").click()
    page.fill("#id_cron", "not a cron")
    page.get_by_role("button", name="Add schedule").click()
    expect(page.locator(".messages li.error")).to_contain_text("cron")
    page.get_by_text("Add a schedule").click()
    page.fill("#id_cron", "30 6 * * 1-5")
    page.fill("#id_tz", "Europe/Paris")
    page.get_by_role("button", name="Add schedule").click()
    expect(page.locator("[data-testid=schedules]")).to_contain_text("30 6 * * 1-5")
    page.locator("[data-testid=schedules]").get_by_role("button", name="Pause").click()
    expect(page.locator("[data-testid=schedules]")).to_contain_text("paused")
    watch.shot("schedule")
    page.get_by_text("Add a webhook").click()
    page.fill("#id_hook_name", "from the shop")
    page.get_by_role("button", name="Add webhook").click()
    hook = page.locator("[data-testid=webhook-url]").inner_text().strip()
    watch.shot("webhook")
    assert "/api/v1/hooks/jwh_" in hook
    request = urllib.request.Request(  # noqa: S310 - local test server
        server.url + hook[hook.index("/api/") :],
        data=b'{"order": 7}',
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310
        assert r.status in (200, 201, 202)
    nav(page, "Runs").click()
    expect(page.locator("[data-testid=runs] tbody tr")).to_have_count(1)
    expect(page.locator("[data-testid=runs]")).to_contain_text("webhook")
    page.goto(f"{server.url}/t/{tenant.id}/workflows/{workflow.id}/")
    expect(page.locator("[data-testid=webhook-url]")).to_have_count(0)  # shown once
    page.locator("[data-testid=schedules]").get_by_role("button", name="Delete").click()
    expect(page.locator("[data-testid=schedules]")).to_contain_text("No schedules.")
    watch.check()
