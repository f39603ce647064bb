"""End-to-end: a run's page follows the run live over the websocket, in a real browser against
``manage.py serve``; and the page answers 404 to a non-member and 403 without ``workflow.view``."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

import pytest
from django.test import Client
from playwright.sync_api import Page, expect

from apps.tenancy import services as tenancy
from apps.tenancy.models import Role, Tenant, User
from tests.conftest import ARTIFACTS, PASSWORD, ServerProcess, add_member
from tests.e2e.test_login import submit_login
from tests.workflows.conftest import _embedded_session, embedded_worker  # noqa: F401 - fixtures
from tests.workflows.test_streams import SLOW

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def start_run(server: ServerProcess, user: User, tenant: Tenant) -> str:
    """Through the server's API, so that its own worker (embedded default) or the workers on the
    shared broker run it and its channel layer carries the events."""
    raw = tenancy.auth_token_create(user=user)[1]
    request = urllib.request.Request(  # noqa: S310 - a local test server
        f"{server.url}/api/v1/tenants/{tenant.id}/workflows/test/",
        data=json.dumps({"graph": SLOW}).encode(),
        headers={"Authorization": f"Token {raw}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
        return str(json.loads(response.read())["instance_id"])


# The PostgreSQL pass: the server only serves; this process' worker runs the nodes (on the shared broker).
@pytest.mark.usefixtures("embedded_worker")
def test_the_run_page_follows_the_run_live(
    page: Page,
    make_user: Callable[..., User],
    make_tenant: Callable[..., Tenant],
    serve_process: Callable[..., ServerProcess],
) -> None:
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    user = make_user()
    tenant = make_tenant("Live runs", owner=user)
    server = serve_process()
    submit_login(page, server.url, user.username, PASSWORD)
    expect(page).to_have_url(f"{server.url}/t/{tenant.id}/")

    iid = start_run(server, user, tenant)
    page.goto(f"{server.url}/t/{tenant.id}/runs/{iid}/")
    expect(page.locator("[data-testid=live]")).to_have_attribute("data-state", "live")
    expect(page.locator("[data-testid=run-status]")).to_have_text("succeeded", timeout=30_000)
    rows = page.locator("[data-testid=nodes] tbody tr")
    expect(rows).to_have_count(14)
    for i in range(14):
        expect(rows.nth(i).locator("[data-role=status]")).to_have_text("succeeded")
    journal = page.locator("[data-testid=journal] li")
    expect(journal.first).to_contain_text("run succeeded")
    count = int(page.locator("[data-testid=event-count]").inner_text())
    assert count == journal.count() and count > 60  # every journal event, once
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "run-page-live.png", full_page=True)
    assert not problems, problems


@pytest.mark.usefixtures("embedded_worker")
def test_the_run_page_is_404_for_non_members_and_403_without_workflow_view(
    make_user: Callable[..., User], make_tenant: Callable[..., Tenant]
) -> None:
    owner, outsider, blind = make_user(), make_user(), make_user()
    tenant = make_tenant("Private runs", owner=owner)
    membership = add_member(tenant, blind, "viewer")
    membership.role = Role.objects.create(tenant=tenant, name="no-workflows", permissions=["query.view"])
    membership.save()
    from apps.workflows import services

    iid = services.workflow_test(actor=tenancy.Actor(user=owner), tenant=tenant, graph=SLOW).id
    url = f"/t/{tenant.id}/runs/{iid}/"
    for user, status in ((owner, 200), (outsider, 404), (blind, 403)):
        client = Client()
        client.force_login(user)
        assert client.get(url).status_code == status, user
    client = Client()
    client.force_login(owner)
    assert client.get(f"/t/{tenant.id}/runs/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert client.get(url).content.count(b'data-node="') == 14
