"""Tenant isolation and role checks over every tenancy endpoint.

A member of tenant A gets 404 for tenant B and everything in it; a viewer gets 403 on every manage
action; an API key of A cannot reach B; a revoked key gets 401.
"""

from __future__ import annotations

from typing import Any

import pytest

from apps.tenancy import services
from apps.tenancy.models import Invite, Tenant
from tests.conftest import add_member, assert_error, key_client, role, token_client

pytestmark = pytest.mark.django_db


def _objects(tenant: Tenant, make_user: Any) -> dict[str, str]:
    """One object of each kind inside ``tenant``, for building URLs."""
    member = add_member(tenant, make_user(), "editor")
    custom = services.role_create(
        actor=services.SYSTEM, tenant=tenant, name="auditor", permissions=["audit.view"]
    )
    key, _ = services.api_key_create(
        actor=services.SYSTEM, tenant=tenant, name="ci", role=role(tenant, "viewer")
    )
    invite = Invite.objects.create(
        tenant=tenant,
        email="x@example.com",
        role=role(tenant, "viewer"),
        token_hash="h" * 64,
        expires_at="2999-01-01T00:00:00Z",
    )
    return {"member": str(member.id), "role": str(custom.id), "key": str(key.id), "invite": str(invite.id)}


def _endpoints(tid: str, ids: dict[str, str]) -> list[tuple[str, str, dict[str, Any] | None, bool]]:
    """(method, url, body, is_manage_action) for every tenant-scoped endpoint."""
    t = f"/api/v1/tenants/{tid}"
    return [
        ("get", f"{t}/", None, False),
        ("patch", f"{t}/", {"name": "renamed"}, True),
        ("delete", f"{t}/", None, True),
        ("get", f"{t}/members/", None, False),
        ("post", f"{t}/members/", {"user": "nobody", "role": "viewer"}, True),
        ("get", f"{t}/members/{ids['member']}/", None, False),
        ("patch", f"{t}/members/{ids['member']}/", {"role": "viewer"}, True),
        ("delete", f"{t}/members/{ids['member']}/", None, True),
        ("get", f"{t}/roles/", None, False),
        ("post", f"{t}/roles/", {"name": "r", "permissions": []}, True),
        ("get", f"{t}/roles/{ids['role']}/", None, False),
        ("patch", f"{t}/roles/{ids['role']}/", {"name": "r2"}, True),
        ("delete", f"{t}/roles/{ids['role']}/", None, True),
        ("get", f"{t}/api-keys/", None, True),
        ("post", f"{t}/api-keys/", {"name": "k", "role": "viewer"}, True),
        ("get", f"{t}/api-keys/{ids['key']}/", None, True),
        ("delete", f"{t}/api-keys/{ids['key']}/", None, True),
        ("get", f"{t}/invites/", None, True),
        ("post", f"{t}/invites/", {"email": "a@example.com", "role": "viewer"}, True),
        ("get", f"{t}/invites/{ids['invite']}/", None, True),
        ("delete", f"{t}/invites/{ids['invite']}/", None, True),
        ("get", f"{t}/audit-logs/", None, True),
    ]


def _call(client: Any, method: str, url: str, body: dict[str, Any] | None) -> Any:
    return (
        getattr(client, method)(url, body, format="json")
        if body is not None
        else getattr(client, method)(url)
    )


def test_member_of_a_gets_404_for_everything_in_b(make_user, make_tenant):
    alice = make_user()
    make_tenant("A", owner=alice)
    tenant_b = make_tenant("B")
    ids = _objects(tenant_b, make_user)
    client = token_client(alice)
    for method, url, body, _ in _endpoints(str(tenant_b.id), ids):
        assert_error(_call(client, method, url, body), 404, "not_found")
    assert Tenant.objects.filter(pk=tenant_b.pk).exists()


def test_ids_of_b_are_404_even_under_tenant_a(make_user, make_tenant):
    """Object ids of B used under A's URL (where alice IS the owner) are not found either."""
    alice = make_user()
    tenant_a = make_tenant("A", owner=alice)
    tenant_b = make_tenant("B")
    ids = _objects(tenant_b, make_user)
    client = token_client(alice)
    for method, url, body, _ in _endpoints(str(tenant_a.id), ids):
        if any(i in url for i in ids.values()):
            assert_error(_call(client, method, url, body), 404, "not_found")


def test_viewer_gets_403_on_every_manage_action(make_user, make_tenant):
    tenant = make_tenant("A")
    ids = _objects(tenant, make_user)
    viewer = make_user()
    add_member(tenant, viewer, "viewer")
    client = token_client(viewer)
    checked = 0
    for method, url, body, manage in _endpoints(str(tenant.id), ids):
        response = _call(client, method, url, body)
        if manage:
            assert_error(response, 403, "permission_denied")
            checked += 1
        else:
            assert response.status_code == 200, (method, url, response.content)
    assert checked == 17
    assert Tenant.objects.filter(pk=tenant.pk).exists()


def test_api_key_of_a_cannot_reach_b(make_user, make_tenant):
    tenant_a = make_tenant("A")
    tenant_b = make_tenant("B")
    ids = _objects(tenant_b, make_user)
    _, raw = services.api_key_create(
        actor=services.SYSTEM, tenant=tenant_a, name="k", role=role(tenant_a, "admin")
    )
    client = key_client(raw)
    assert client.get(f"/api/v1/tenants/{tenant_a.id}/members/").status_code == 200
    for method, url, body, _ in _endpoints(str(tenant_b.id), ids):
        assert_error(_call(client, method, url, body), 404, "not_found")
    listed = client.get("/api/v1/tenants/").json()["results"]
    assert [t["id"] for t in listed] == [str(tenant_a.id)]


def test_api_key_role_limits_it(make_tenant):
    tenant = make_tenant("A")
    _, raw = services.api_key_create(
        actor=services.SYSTEM, tenant=tenant, name="k", role=role(tenant, "viewer")
    )
    client = key_client(raw)
    assert client.get(f"/api/v1/tenants/{tenant.id}/roles/").status_code == 200
    assert_error(
        client.post(f"/api/v1/tenants/{tenant.id}/roles/", {"name": "x", "permissions": []}, format="json"),
        403,
        "permission_denied",
    )


def test_revoked_api_key_gets_401(make_tenant):
    tenant = make_tenant("A")
    key, raw = services.api_key_create(
        actor=services.SYSTEM, tenant=tenant, name="k", role=role(tenant, "admin")
    )
    client = key_client(raw)
    assert client.get(f"/api/v1/tenants/{tenant.id}/").status_code == 200
    services.api_key_revoke(actor=services.SYSTEM, api_key=key)
    assert_error(client.get(f"/api/v1/tenants/{tenant.id}/"), 401, "not_authenticated")
    assert_error(key_client("jak_not-a-real-key").get("/api/v1/tenants/"), 401, "not_authenticated")


def test_unauthenticated_gets_401_everywhere(make_user, make_tenant):
    from rest_framework.test import APIClient

    tenant = make_tenant("A")
    ids = _objects(tenant, make_user)
    client = APIClient()
    for method, url, body, _ in _endpoints(str(tenant.id), ids):
        assert_error(_call(client, method, url, body), 401, "not_authenticated")


def test_custom_role_grants_exactly_its_permissions(make_user, make_tenant, api):
    tenant = make_tenant("A")
    auditor_role = services.role_create(
        actor=services.SYSTEM, tenant=tenant, name="auditor", permissions=["audit.view"]
    )
    user = make_user()
    services.member_add(actor=services.SYSTEM, tenant=tenant, user=user, role=auditor_role)
    client = api(user)
    assert client.get(f"/api/v1/tenants/{tenant.id}/audit-logs/").status_code == 200
    assert_error(client.get(f"/api/v1/tenants/{tenant.id}/api-keys/"), 403, "permission_denied")
