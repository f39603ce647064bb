"""End-to-end: a staff member opens the operations page from the navigation and watches it refresh
itself (htmx polling) with a failed run listed; no console error."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from apps.tenancy.models import Tenant, User
from apps.workflows.models import WorkflowInstance
from tests.conftest import PASSWORD, ServerProcess
from tests.e2e.test_login import submit_login
from tests.e2e.test_pages import Watch

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_staff_open_the_operations_page_and_it_refreshes(
    page: Page,
    make_user: Callable[..., User],
    make_tenant: Callable[..., Tenant],
    serve_process: Callable[..., ServerProcess],
) -> None:
    watch = Watch(page, "ops")
    user = make_user(is_staff=True)
    tenant = make_tenant("Night shift", owner=user)
    WorkflowInstance.objects.create(
        tenant=tenant,
        graph={"nodes": [], "edges": []},
        status="failed",
        trigger="schedule",
        error={"code": "x", "message": "<img src=x onerror=alert(1)> the nightly export broke"},
        ended_at=timezone.now(),
    )
    server = serve_process()
    submit_login(page, server.url, user.username, PASSWORD)
    expect(page).to_have_url(f"{server.url}/t/{tenant.id}/")
    page.get_by_role("link", name="Operations").click()
    expect(page).to_have_url(f"{server.url}/ops/")
    failures = page.get_by_test_id("ops-failures")
    expect(failures).to_contain_text("<img src=x onerror=alert(1)> the nightly export broke")
    expect(page.get_by_test_id("ops-workers")).to_contain_text("alive")
    expect(page.get_by_test_id("ops-queue-depth")).to_have_text("0")
    first = page.get_by_test_id("ops-updated").inner_text()
    watch.shot("ops")
    expect(page.get_by_test_id("ops-updated")).not_to_have_text(first, timeout=15_000)  # it polled
    expect(failures).to_contain_text("the nightly export broke")
    watch.check()
