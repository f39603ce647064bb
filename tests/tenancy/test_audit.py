"""Every mutating endpoint writes an AuditLog row, and no secret ever lands in one."""

from __future__ import annotations

import json

import pytest
from django.core import mail
from django.forms.models import model_to_dict
from rest_framework.test import APIClient

from apps.tenancy.models import AuditLog, Invite, User
from tests.conftest import PASSWORD, add_member

pytestmark = pytest.mark.django_db


def _audit_dump() -> str:
    rows = [model_to_dict(row) | {"created_at": str(row.created_at)} for row in AuditLog.objects.all()]
    return json.dumps(rows, default=str)


def test_every_mutating_endpoint_writes_an_audit_row_without_secrets(
    make_user, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from jetadmin.celery import app

    app.conf.task_always_eager = True
    try:
        _run_scenario(make_user, django_capture_on_commit_callbacks)
    finally:
        app.conf.task_always_eager = False


def _run_scenario(make_user, capture) -> None:
    make_user("owner")
    other = make_user("other")
    anon = APIClient()
    secrets: list[str] = [PASSWORD, "new-Passw0rd-for-invitee"]
    expected: list[str] = []

    def did(action: str) -> None:
        expected.append(action)
        actions = list(AuditLog.objects.order_by("created_at", "id").values_list("action", flat=True))
        assert actions == expected, f"after {action}: {actions}"

    r = anon.post("/api/v1/auth/token/", {"username": "owner", "password": PASSWORD}, format="json")
    token = r.json()["token"]
    secrets.append(token)
    did("auth.token_create")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    tid = client.post("/api/v1/tenants/", {"name": "Acme"}, format="json").json()["id"]
    did("tenant.create")
    t = f"/api/v1/tenants/{tid}"
    assert client.patch(f"{t}/", {"name": "Acme 2"}, format="json").status_code == 200
    did("tenant.update")

    role_id = client.post(f"{t}/roles/", {"name": "ops", "permissions": ["query.run"]}, format="json").json()[
        "id"
    ]
    did("role.create")
    assert (
        client.patch(
            f"{t}/roles/{role_id}/", {"permissions": ["query.run", "query.view"]}, format="json"
        ).status_code
        == 200
    )
    did("role.update")

    member = client.post(f"{t}/members/", {"user": other.username, "role": "ops"}, format="json").json()
    did("member.add")
    assert client.patch(f"{t}/members/{member['id']}/", {"role": "viewer"}, format="json").status_code == 200
    did("member.update")
    assert client.delete(f"{t}/members/{member['id']}/").status_code == 204
    did("member.remove")
    assert client.delete(f"{t}/roles/{role_id}/").status_code == 204
    did("role.delete")

    created = client.post(f"{t}/api-keys/", {"name": "ci", "role": "admin"}, format="json").json()
    secrets.append(created["key"])
    did("api_key.create")
    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Api-Key {created['key']}")
    assert keyed.patch(f"{t}/", {"name": "by key"}, format="json").status_code == 200
    did("tenant.update")
    assert AuditLog.objects.filter(action="tenant.update", api_key_id=created["id"], actor=None).count() == 1
    assert client.delete(f"{t}/api-keys/{created['id']}/").status_code == 204
    did("api_key.revoke")

    with capture(execute=True):
        client.post(f"{t}/invites/", {"email": "new@example.com", "role": "editor"}, format="json").json()
    did("invite.create")
    assert len(mail.outbox) == 1
    invite_token = next(w for w in mail.outbox[0].body.split() if "/invites/jin_" in w).rsplit("/", 2)[-2]
    secrets.append(invite_token)
    r = anon.post(
        "/api/v1/invites/accept/",
        {"token": invite_token, "username": "invitee", "password": "new-Passw0rd-for-invitee"},
        format="json",
    )
    assert r.status_code == 201, r.content
    did("invite.accept")
    assert User.objects.get(username="invitee").memberships.get().role.name == "editor"

    with capture(execute=True):
        second = client.post(
            f"{t}/invites/", {"email": "b@example.com", "role": "viewer"}, format="json"
        ).json()
    did("invite.create")
    assert client.delete(f"{t}/invites/{second['id']}/").status_code == 204
    did("invite.revoke")
    assert Invite.objects.get(pk=second["id"]).revoked_at is not None

    assert client.delete("/api/v1/auth/token/").status_code == 204
    did("auth.token_revoke")

    # Log in again to delete the tenant (the old token is gone).
    token2 = anon.post(
        "/api/v1/auth/token/", {"username": "owner", "password": PASSWORD}, format="json"
    ).json()["token"]
    secrets.append(token2)
    did("auth.token_create")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token2}")
    assert client.delete(f"{t}/").status_code == 204
    did("tenant.delete")
    assert AuditLog.objects.filter(action="tenant.delete", tenant_name="by key").exists()

    dump = _audit_dump()
    for secret in secrets:
        assert secret not in dump, "a secret leaked into the audit log"
        assert secret[12:] not in dump
    for user in User.objects.all():
        assert user.password not in dump


def test_audit_rows_record_ip_actor_and_object(make_user, make_tenant, api):
    owner = make_user()
    tenant = make_tenant("Acme", owner=owner)
    client = api(owner)
    r = client.post(
        f"/api/v1/tenants/{tenant.id}/roles/",
        {"name": "x", "permissions": []},
        format="json",
        REMOTE_ADDR="10.1.2.3",
    )
    row = AuditLog.objects.get(action="role.create")
    assert (row.actor, row.tenant, row.object_type, row.object_id, row.ip) == (
        owner,
        tenant,
        "role",
        r.json()["id"],
        "10.1.2.3",
    )
    listed = client.get(f"/api/v1/tenants/{tenant.id}/audit-logs/?action=role.create").json()
    assert listed["count"] == 1
    assert listed["results"][0]["actor"]["username"] == owner.username


def test_failed_actions_write_nothing(make_user, make_tenant, api):
    tenant = make_tenant("Acme")
    viewer = make_user()
    add_member(tenant, viewer, "viewer")
    client = api(viewer)
    before = AuditLog.objects.count()
    client.post(f"/api/v1/tenants/{tenant.id}/roles/", {"name": "x", "permissions": []}, format="json")
    client.post(f"/api/v1/tenants/{tenant.id}/roles/", {"name": "x", "permissions": ["nope"]}, format="json")
    assert AuditLog.objects.count() == before
