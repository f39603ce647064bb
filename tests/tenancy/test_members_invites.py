"""Members, roles and invites: the rules users rely on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core import mail

from apps.tenancy import services
from apps.tenancy.models import Membership, User
from jetadmin.celery import app as celery_app
from tests.conftest import PASSWORD, add_member, assert_error, role

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent_invite(make_user, make_tenant, settings, django_capture_on_commit_callbacks) -> Iterator[tuple]:
    """An invite created through the service; its email delivered by the send task run inline."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    owner = make_user()
    tenant = make_tenant("Acme", owner=owner)
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            invite = services.invite_create(
                actor=services.Actor(user=owner),
                tenant=tenant,
                email="new@example.com",
                role=role(tenant, "editor"),
            )
    finally:
        celery_app.conf.task_always_eager = False
    link = next(word for word in mail.outbox[-1].body.split() if "/invites/" in word)
    token = link.rstrip("/").rsplit("/", 1)[-1]
    yield tenant, invite, token, link


def test_invite_page_creates_an_account_and_logs_in(sent_invite, client):
    tenant, _, token, link = sent_invite
    assert link.startswith("http://127.0.0.1:8000/invites/jin_")
    page = client.get(f"/invites/{token}/")
    assert page.status_code == 200 and b"Join Acme" in page.content
    r = client.post(f"/invites/{token}/", {"username": "newbie", "password": "Another-Passw0rd-1"})
    assert r.status_code == 302 and r["Location"] == f"/t/{tenant.id}/"
    assert client.get(r["Location"]).status_code == 200
    assert Membership.objects.get(user__username="newbie").role.name == "editor"
    assert client.get(f"/invites/{token}/").status_code == 404  # single use


def test_invite_page_rejects_weak_password_and_keeps_the_invite(sent_invite, client):
    _, invite, token, _ = sent_invite
    r = client.post(f"/invites/{token}/", {"username": "newbie", "password": "123"})
    assert r.status_code == 200 and b"too short" in r.content
    invite.refresh_from_db()
    assert invite.accepted_at is None and not User.objects.filter(username="newbie").exists()


def test_logged_in_user_accepts_via_api(sent_invite, make_user, api):
    _, _, token, _ = sent_invite
    user = make_user()
    r = api(user).post("/api/v1/invites/accept/", {"token": token}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["role"]["name"] == "editor"
    assert_error(api(user).post("/api/v1/invites/accept/", {"token": token}, format="json"), 400)


def test_revoked_or_bogus_invites_are_refused(sent_invite, client, api):
    tenant, invite, token, _ = sent_invite
    owner = tenant.memberships.get(role__name="owner").user
    assert api(owner).delete(f"/api/v1/tenants/{tenant.id}/invites/{invite.id}/").status_code == 204
    r = client.post(
        "/api/v1/invites/accept/",
        {"token": token, "username": "x", "password": PASSWORD},
        content_type="application/json",
    )
    assert_error(r, 400, "validation_error")
    assert_error(
        client.post("/api/v1/invites/accept/", {"token": "jin_bogus"}, content_type="application/json"), 400
    )


def test_only_owners_grant_or_remove_owner(make_user, make_tenant, api):
    tenant = make_tenant("Acme")
    admin_user = make_user()
    add_member(tenant, admin_user, "admin")
    target = make_user()
    t = f"/api/v1/tenants/{tenant.id}"
    client = api(admin_user)
    assert_error(client.post(f"{t}/members/", {"user": target.username, "role": "owner"}, format="json"), 403)
    member = client.post(f"{t}/members/", {"user": target.username, "role": "editor"}, format="json").json()
    assert_error(client.patch(f"{t}/members/{member['id']}/", {"role": "owner"}, format="json"), 403)
    owner_membership = tenant.memberships.get(role__name="owner")
    assert_error(client.delete(f"{t}/members/{owner_membership.id}/"), 403)
    assert_error(client.delete(f"{t}/"), 403)  # admins hold tenant.manage but only owners delete


def test_second_owner_allows_the_first_to_leave(make_user, make_tenant, api):
    first = make_user()
    tenant = make_tenant("Acme", owner=first)
    second = make_user()
    t = f"/api/v1/tenants/{tenant.id}"
    client = api(first)
    assert (
        client.post(f"{t}/members/", {"user": second.username, "role": "owner"}, format="json").status_code
        == 201
    )
    mine = tenant.memberships.get(user=first)
    assert client.delete(f"{t}/members/{mine.id}/").status_code == 204
    assert_error(api(first).get(f"{t}/"), 404)


def test_custom_role_lifecycle(make_user, make_tenant, api):
    owner = make_user()
    tenant = make_tenant("Acme", owner=owner)
    t = f"/api/v1/tenants/{tenant.id}"
    client = api(owner)
    created = client.post(
        f"{t}/roles/", {"name": "ops", "permissions": ["query.run", "query.view"]}, format="json"
    )
    assert created.status_code == 201
    rid = created.json()["id"]
    assert created.json()["permissions"] == ["query.view", "query.run"]
    user = make_user()
    client.post(f"{t}/members/", {"user": user.username, "role": rid}, format="json")
    assert_error(client.delete(f"{t}/roles/{rid}/"), 409, "conflict")
    roles = client.get(f"{t}/roles/").json()
    assert [r["name"] for r in roles["results"]][:4] == ["admin", "editor", "owner", "viewer"]
    assert next(r for r in roles["results"] if r["id"] == rid)["member_count"] == 1


def test_me_and_tenant_creation(make_user, api):
    user = make_user()
    client = api(user)
    assert client.get("/api/v1/me/").json()["tenants"] == []
    tenant = client.post("/api/v1/tenants/", {"name": "Mine"}, format="json").json()
    me = client.get("/api/v1/me/").json()
    assert me["tenants"] == [{"id": tenant["id"], "name": "Mine", "role": "owner"}]
    listed = client.get("/api/v1/tenants/").json()
    assert listed["count"] == 1 and listed["results"][0]["role"] == "owner"
    assert len(client.get("/api/v1/permissions/").json()) == 15


def test_api_key_is_shown_once_and_works(make_user, make_tenant, api):
    owner = make_user()
    tenant = make_tenant("Acme", owner=owner)
    t = f"/api/v1/tenants/{tenant.id}"
    created = api(owner).post(f"{t}/api-keys/", {"name": "ci", "role": "viewer"}, format="json").json()
    assert created["key"].startswith(created["prefix"]) and len(created["key"]) > 40
    listed = api(owner).get(f"{t}/api-keys/").json()["results"]
    assert "key" not in listed[0] and listed[0]["prefix"] == created["prefix"]
    from tests.conftest import key_client

    assert key_client(created["key"]).get(f"{t}/members/").status_code == 200
    assert_error(key_client(created["key"]).get("/api/v1/me/"), 403)


def test_expired_token_is_refused(make_user, client):
    from datetime import timedelta

    from django.utils import timezone

    user = make_user()
    token, raw = services.auth_token_create(user=user)
    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save()
    assert_error(client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {raw}"), 401)
