"""Every page answers as the API does: 404 to a signed-in non-member (for the tenant and for every
object in it), 403 to a member whose role lacks the page's permission, 200 to one who has it; every
page action (POST) is refused the same way and needs a CSRF token; a signed-out visitor is sent to
the login page. The table below walks every tenant page URL of jetadmin/urls.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.dashboards import services as dashboard_services
from apps.datasources import services as datasource_services
from apps.queries import services as query_services
from apps.tenancy import services as tenancy
from apps.tenancy.models import PERMISSIONS, Membership, Role, Tenant, User
from apps.triggers import services as trigger_services
from apps.widgets import services as widget_services
from apps.workflows import services as workflow_services
from jetadmin import urls
from tests.conftest import PASSWORD, role

pytestmark = pytest.mark.django_db

GRAPH = {
    "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
    "edges": [{"from": "start", "to": "end"}],
}

# url name -> (method, permission or None for any member, extra URL kwargs by object)
PAGES: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "tenant-home": ("GET", None, ()),
    "dashboard-list": ("GET", "dashboard.view", ()),
    "dashboard-new": ("GET", "dashboard.manage", ()),
    "dashboard-detail": ("GET", "dashboard.view", ("dashboard_id",)),
    "dashboard-edit": ("GET", "dashboard.manage", ("dashboard_id",)),
    "dashboard-share": ("POST", "dashboard.manage", ("dashboard_id",)),
    "dashboard-share-revoke": ("POST", "dashboard.manage", ("dashboard_id", "link_id")),
    "widget-export": ("GET", "widget.view", ("widget_id",)),
    "datasource-list": ("GET", "datasource.view", ()),
    "datasource-new": ("GET", "datasource.manage", ()),
    "datasource-detail": ("GET", "datasource.view", ("datasource_id",)),
    "datasource-delete": ("GET", "datasource.manage", ("datasource_id",)),
    "datasource-test": ("POST", "datasource.view", ("datasource_id",)),
    "datasource-test-unsaved": ("POST", "datasource.manage", ()),
    "query-list": ("GET", "query.view", ()),
    "query-new": ("GET", "query.manage", ()),
    "query-detail": ("GET", "query.view", ("query_id",)),
    "query-delete": ("POST", "query.manage", ("query_id",)),
    "query-run": ("POST", "query.run", ()),
    "query-params": ("POST", "query.view", ()),
    "query-schema": ("GET", "query.view", ()),
    "workflow-list": ("GET", "workflow.view", ()),
    "workflow-new": ("GET", "workflow.manage", ()),
    "workflow-detail": ("GET", "workflow.view", ("workflow_id",)),
    "workflow-run": ("POST", "workflow.run", ("workflow_id",)),
    "schedule-add": ("POST", "workflow.manage", ("workflow_id",)),
    "schedule-change": ("POST", "workflow.manage", ("workflow_id", "schedule_id")),
    "webhook-add": ("POST", "workflow.manage", ("workflow_id",)),
    "webhook-revoke": ("POST", "workflow.manage", ("workflow_id", "webhook_id")),
    "run-list": ("GET", "workflow.view", ()),
    "inbox": ("GET", "workflow.view", ()),
    "run-page": ("GET", "workflow.view", ("instance_id",)),
    "run-action": ("POST", "workflow.run", ("instance_id", "action")),
    "settings": ("GET", None, ()),
    "audit": ("GET", "audit.view", ()),
    "settings-invite": ("POST", "member.manage", ()),
    "settings-invite-revoke": ("POST", "member.manage", ("invite_id",)),
    "settings-member": ("POST", "member.manage", ("member_id",)),
    "settings-role-new": ("POST", "member.manage", ()),
    "settings-api-key-new": ("POST", "tenant.manage", ()),
    "settings-api-key-revoke": ("POST", "tenant.manage", ("key_id",)),
}


def test_the_table_covers_every_tenant_page() -> None:
    names = {p.name for p in urls.pages}
    assert names == set(PAGES), names ^ set(PAGES)


@pytest.fixture
def world(
    make_user: Callable[..., User], make_tenant: Callable[..., Tenant], tmp_path: Any, settings: Any
) -> dict[str, Any]:
    settings.JETADMIN_SQLITE_ROOT = str(tmp_path)
    owner = make_user()
    tenant = make_tenant("Walk", owner=owner)
    actor = tenancy.Actor(user=owner)
    source = datasource_services.datasource_create(
        actor=actor, tenant=tenant, name="db", type="sqlite", config={"path": "x.db"}
    )
    query = query_services.query_create(
        actor=actor, tenant=tenant, name="q", datasource=source.id, body="SELECT 1"
    )
    workflow = workflow_services.workflow_create(actor=actor, tenant=tenant, name="w", graph=GRAPH)
    instance = workflow_services.workflow_test(actor=actor, tenant=tenant, graph=GRAPH)
    invite = tenancy.invite_create(
        actor=actor, tenant=tenant, email="x@example.com", role=role(tenant, "viewer")
    )
    schedule = trigger_services.schedule_create(actor=actor, workflow=workflow, cron_expr="0 7 * * *")
    webhook, _ = trigger_services.webhook_create(actor=actor, workflow=workflow, name="h")
    widget = widget_services.widget_create(
        actor=actor, tenant=tenant, name="w", type="stat", config={"value": 1}
    )
    dashboard = dashboard_services.dashboard_create(
        actor=actor,
        tenant=tenant,
        name="d",
        layout=[{"widget": str(widget.id), "x": 0, "y": 0, "w": 4, "h": 2}],
    )
    link, _ = dashboard_services.share_create(actor=actor, dashboard=dashboard, days=1)
    key, _ = tenancy.api_key_create(actor=actor, tenant=tenant, name="k", role=role(tenant, "viewer"))
    member = Membership.objects.get(tenant=tenant, user=owner)
    ids = {
        "datasource_id": source.id,
        "query_id": query.id,
        "workflow_id": workflow.id,
        "instance_id": instance.id,
        "invite_id": invite.id,
        "member_id": member.id,
        "key_id": key.id,
        "widget_id": widget.id,
        "dashboard_id": dashboard.id,
        "link_id": link.id,
        "schedule_id": schedule.id,
        "webhook_id": webhook.id,
        "action": "cancel",
    }
    return {"owner": owner, "tenant": tenant, "ids": ids}


def url(name: str, tenant_id: Any, ids: dict[str, Any]) -> str:
    return reverse(name, kwargs={"tenant_id": tenant_id, **{k: ids[k] for k in PAGES[name][2]}})


def login(user: User, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def request(client: Client, name: str, address: str) -> Any:
    method = PAGES[name][0]
    return client.get(address) if method == "GET" else client.post(address, {})


@pytest.mark.parametrize("name", sorted(PAGES))
def test_a_non_member_gets_404(
    name: str, world: dict[str, Any], make_user: Callable[..., User], make_tenant: Callable[..., Tenant]
) -> None:
    stranger = make_user()
    make_tenant("Elsewhere", owner=stranger)  # a member of another tenant, with every permission there
    response = request(login(stranger), name, url(name, world["tenant"].id, world["ids"]))
    assert response.status_code == 404, response.status_code
    assert b"Walk" not in response.content  # nothing of the tenant leaks


@pytest.mark.parametrize("name", sorted(n for n, (_, _, objects) in PAGES.items() if objects))
def test_an_object_of_another_tenant_is_404(
    name: str, world: dict[str, Any], make_tenant: Callable[..., Tenant]
) -> None:
    """The owner's own tenant in the URL, another tenant's object id: 404, never its page."""
    other = make_tenant("Mine", owner=world["owner"])
    response = request(login(world["owner"]), name, url(name, other.id, world["ids"]))
    assert response.status_code == 404, response.status_code


@pytest.mark.parametrize("name", sorted(PAGES))
def test_a_member_without_the_permission_gets_403(
    name: str, world: dict[str, Any], make_user: Callable[..., User]
) -> None:
    tenant, permission = world["tenant"], PAGES[name][1]
    everything_else = [code for code in PERMISSIONS if code != permission] if permission else []
    limited = Role.objects.create(tenant=tenant, name=f"all but {permission}", permissions=everything_else)
    user = make_user()
    Membership.objects.create(tenant=tenant, user=user, role=limited)
    response = request(login(user), name, url(name, tenant.id, world["ids"]))
    if permission is None:
        assert response.status_code == 200, response.status_code
    else:
        assert response.status_code == 403, (response.status_code, response.content[:300])


@pytest.mark.parametrize("name", sorted(n for n, (m, _, _) in PAGES.items() if m == "GET"))
def test_a_member_with_the_permission_sees_the_page(name: str, world: dict[str, Any]) -> None:
    response = login(world["owner"]).get(url(name, world["tenant"].id, world["ids"]))
    assert response.status_code == 200, (response.status_code, response.content[:500])


@pytest.mark.parametrize("name", sorted(n for n, (m, _, _) in PAGES.items() if m == "POST"))
def test_every_action_needs_a_csrf_token(name: str, world: dict[str, Any]) -> None:
    response = login(world["owner"], csrf=True).post(url(name, world["tenant"].id, world["ids"]), {})
    assert response.status_code == 403, response.status_code


@pytest.mark.parametrize("name", sorted(PAGES))
def test_signed_out_goes_to_the_login_page(name: str, world: dict[str, Any]) -> None:
    response = request(Client(), name, url(name, world["tenant"].id, world["ids"]))
    assert response.status_code == 302 and response["Location"].startswith("/login/?next="), response
