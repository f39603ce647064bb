"""End-to-end: log in, fail to log in, and log out in a real browser against ``manage.py serve``."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect

from apps.tenancy.models import Tenant, User
from tests.conftest import ARTIFACTS, PASSWORD, ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TENANT_NAME = "Acme Robotics"


def path_of(page: Page) -> str:
    return urlparse(page.url).path


def submit_login(page: Page, base_url: str, username: str, password: str) -> None:
    """Open ``/`` (which redirects to the login page) and submit the login form (callers wait)."""
    page.goto(f"{base_url}/")
    page.wait_for_url(lambda url: urlparse(url).path == "/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.get_by_role("button", name="Log in").click()


@pytest.fixture
def owner_and_tenant(
    make_user: Callable[..., User], make_tenant: Callable[..., Tenant]
) -> tuple[User, Tenant]:
    user = make_user()
    return user, make_tenant(TENANT_NAME, owner=user)


def test_login_lands_on_tenant_home(
    page: Page,
    owner_and_tenant: tuple[User, Tenant],
    serve_process: Callable[..., ServerProcess],
) -> None:
    user, tenant = owner_and_tenant
    server = serve_process()

    submit_login(page, server.url, user.username, PASSWORD)

    expect(page).to_have_url(f"{server.url}/t/{tenant.id}/")
    expect(page.locator("[data-testid=tenant-name]")).to_have_text(TENANT_NAME)
    expect(page.locator("[data-testid=role]")).to_have_text("owner")
    expect(page.locator("[data-testid=username]")).to_have_text(user.username)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "login-tenant-home.png", full_page=True)


def test_wrong_password_shows_error(
    page: Page,
    owner_and_tenant: tuple[User, Tenant],
    serve_process: Callable[..., ServerProcess],
) -> None:
    user, _ = owner_and_tenant
    server = serve_process()

    submit_login(page, server.url, user.username, PASSWORD + "-wrong")

    error = page.locator(".error[role=alert]")
    expect(error).to_be_visible()
    assert path_of(page) == "/login/"
    expect(error).to_contain_text("didn't match")
    expect(page.locator("#id_username")).to_have_value(user.username)
    expect(page.locator("[data-testid=tenant-name]")).to_have_count(0)
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)


def test_logout_ends_the_session(
    page: Page,
    owner_and_tenant: tuple[User, Tenant],
    serve_process: Callable[..., ServerProcess],
) -> None:
    user, tenant = owner_and_tenant
    server = serve_process()
    tenant_url = f"{server.url}/t/{tenant.id}/"

    submit_login(page, server.url, user.username, PASSWORD)
    expect(page).to_have_url(tenant_url)

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(lambda url: urlparse(url).path == "/login/")
    expect(page.locator("#id_username")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)

    page.goto(tenant_url)
    assert path_of(page) == "/login/"
    assert parse_qs(urlparse(page.url).query).get("next") == [f"/t/{tenant.id}/"]
    expect(page.locator("[data-testid=tenant-name]")).to_have_count(0)
