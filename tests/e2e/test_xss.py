"""XSS battery: names, descriptions, node outputs, query results and error messages carrying HTML and
script render as text on every page; in Chromium, no payload runs (no dialog, no ``window.__xss``),
and each page shows the payload's text."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from apps.datasources import services as datasource_services
from apps.queries import services as query_services
from apps.tenancy.models import Tenant, User
from apps.tenancy.services import Actor
from apps.workflows import services as workflow_services
from tests.conftest import PASSWORD, ServerProcess
from tests.e2e.test_login import submit_login
from tests.e2e.test_pages import Watch
from tests.workflows.conftest import _embedded_session, embedded_worker  # noqa: F401 - fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PAYLOADS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=2">',
    '"><svg onload=window.__xss=3>',
    "javascript:window.__xss=4",
    "{{7*7}}<b>bold</b>",
]
NAME = PAYLOADS[1]


def graph(payload: str) -> dict[str, object]:
    return {
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "make", "type": "javascript", "inputs": {"code": f"return {{html: {payload!r}}};"}},
            {"id": "boom", "type": "javascript", "inputs": {"code": f"throw new Error({payload!r});"}},
            {"id": "end", "type": "end", "inputs": {"output": "{{make}}"}},
        ],
        "edges": [
            {"from": "start", "to": "make"},
            {"from": "make", "to": "boom"},
            {"from": "boom", "to": "end"},
        ],
    }


@pytest.mark.usefixtures("embedded_worker")
def test_nothing_a_user_wrote_runs_as_script(
    page: Page,
    make_user: Callable[..., User],
    make_tenant: Callable[..., Tenant],
    serve_process: Callable[..., ServerProcess],
    tmp_path: Path,
    settings: object,
) -> None:
    root = tmp_path / "sqlite"
    root.mkdir()
    conn = sqlite3.connect(root / "x.db")
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [(p,) for p in PAYLOADS])
    conn.commit()
    conn.close()
    settings.JETADMIN_SQLITE_ROOT = str(root)  # type: ignore[attr-defined]

    user = make_user()
    tenant = make_tenant(NAME, owner=user)
    actor = Actor(user=user)
    source = datasource_services.datasource_create(
        actor=actor, tenant=tenant, name=NAME, type="sqlite", config={"path": "x.db"}
    )
    query = query_services.query_create(
        actor=actor, tenant=tenant, name=PAYLOADS[0], datasource=source.id, body="SELECT v FROM t"
    )
    workflow = workflow_services.workflow_create(
        actor=actor, tenant=tenant, name=PAYLOADS[2], description=PAYLOADS[0], graph=graph(PAYLOADS[1])
    )
    run = workflow_services.workflow_execute(actor=actor, workflow=workflow, input={"note": PAYLOADS[0]})
    run, timed_out = workflow_services.instance_wait(instance=run, timeout_s=30)
    assert not timed_out and run.status == "failed", run.status  # boom threw the payload

    server = serve_process(JETADMIN_SQLITE_ROOT=str(root))
    watch = Watch(page, "xss")
    submit_login(page, server.url, user.username, PASSWORD)
    base = f"{server.url}/t/{tenant.id}"
    pages = {
        "home": "/",
        "datasources": "/datasources/",
        "datasource": f"/datasources/{source.id}/",
        "datasource-delete": f"/datasources/{source.id}/delete/",
        "queries": "/queries/",
        "query": f"/queries/{query.id}/",
        "workflows": "/workflows/",
        "workflow": f"/workflows/{workflow.id}/",
        "runs": "/runs/",
        "run": f"/runs/{run.id}/",
        "settings": "/settings/",
        "audit": "/settings/audit/",
    }
    for name, path in pages.items():
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
        if name == "query":
            page.get_by_role("button", name="Run").click()
            expect(page.locator("table[data-role=results] tbody tr")).to_have_count(len(PAYLOADS))
            for payload in PAYLOADS:
                expect(page.locator("table[data-role=results]")).to_contain_text(payload)
        if name == "run":
            page.locator("[data-node-detail=make] summary").click()
            page.locator("[data-node-detail=boom] summary").click()
            expect(page.locator("[data-node-detail=make]")).to_contain_text("onerror")
            expect(page.locator("[data-node-detail=boom]")).to_contain_text("onerror")
        watch.shot(name)
        assert page.evaluate("window.__xss") is None, f"a payload ran on {name}"
        assert page.locator("img[src=x], svg[onload], b:text('bold')").count() == 0, name
        assert page.get_by_text("onerror", exact=False).count() + page.get_by_text("<script>").count() > 0, (
            name
        )
    watch.check()
