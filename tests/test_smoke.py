from __future__ import annotations

import pytest

from tests.conftest import assert_error


@pytest.mark.django_db
def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


@pytest.mark.django_db
def test_token_login_and_me(client, make_user, make_tenant, api):
    user = make_user("alice")
    tenant = make_tenant("Acme", owner=user)
    r = client.post(
        "/api/v1/auth/token/",
        {"username": "alice", "password": "correct-horse-battery-staple-9"},
        content_type="application/json",
    )
    assert r.status_code == 201, r.content
    token = r.json()["token"]
    me = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}")
    assert me.status_code == 200
    assert me.json()["tenants"] == [{"id": str(tenant.id), "name": "Acme", "role": "owner"}]
    assert_error(client.get("/api/v1/me/"), 401, "not_authenticated")
