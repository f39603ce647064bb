"""Bad input gets a 4xx in the contract's error shape, never a 500, and changes nothing."""

from __future__ import annotations

import uuid

import pytest

from apps.tenancy.models import AuditLog, Role
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_client(make_user, make_tenant, api):
    owner = make_user()
    tenant = make_tenant("Acme", owner=owner)
    return api(owner), f"/api/v1/tenants/{tenant.id}", tenant


def test_malformed_json(owner_client):
    client, t, _ = owner_client
    for body in ["{", '{"name": }', "\xff\xfe", "nul\x00l"]:
        r = client.generic("POST", f"{t}/roles/", body.encode("latin-1"), content_type="application/json")
        assert_error(r, 400, "validation_error")


def test_body_must_be_an_object(owner_client):
    client, t, _ = owner_client
    for body in ["[]", "1", '"name"', "null"]:
        r = client.generic("POST", f"{t}/roles/", body, content_type="application/json")
        assert_error(r, 400, "validation_error")


def test_wrong_types_name_the_field(owner_client):
    client, t, _ = owner_client
    cases = [
        (f"{t}/roles/", {"name": {"a": 1}, "permissions": []}, "name"),
        (f"{t}/roles/", {"name": "x", "permissions": "query.run"}, "permissions"),
        (f"{t}/roles/", {"name": "x", "permissions": ["not.a.permission"]}, "permissions"),
        (f"{t}/roles/", {"name": "x" * 500, "permissions": []}, "name"),
        (f"{t}/invites/", {"email": "not-an-email", "role": "viewer"}, "email"),
        (f"{t}/members/", {"user": ["a"], "role": "viewer"}, "user"),
        ("/api/v1/tenants/", {"name": None}, "name"),
        ("/api/v1/tenants/", {"name": ""}, "name"),
    ]
    for url, body, field in cases:
        error = assert_error(client.post(url, body, format="json"), 400, "validation_error")
        assert field in error["details"], (url, body, error)


def test_missing_fields(owner_client):
    client, t, _ = owner_client
    for url, fields in [
        (f"{t}/roles/", {"name", "permissions"}),
        (f"{t}/members/", {"user", "role"}),
        (f"{t}/api-keys/", {"name", "role"}),
        (f"{t}/invites/", {"email", "role"}),
        ("/api/v1/tenants/", {"name"}),
        ("/api/v1/auth/token/", {"username", "password"}),
    ]:
        error = assert_error(client.post(url, {}, format="json"), 400, "validation_error")
        assert set(error["details"]) == fields, (url, error)


def test_unknown_ids(owner_client):
    client, t, _ = owner_client
    missing = uuid.uuid4()
    for url in [
        f"{t}/members/{missing}/",
        f"{t}/roles/{missing}/",
        f"{t}/api-keys/{missing}/",
        f"{t}/invites/{missing}/",
        f"/api/v1/tenants/{missing}/",
    ]:
        assert_error(client.get(url), 404, "not_found")
        assert_error(client.delete(url), 404, "not_found")
    assert_error(client.get(f"{t}/members/not-a-uuid/"), 404, "not_found")
    # Unknown references inside a body are a 400 naming the field.
    error = assert_error(
        client.post(f"{t}/api-keys/", {"name": "k", "role": str(missing)}, format="json"), 400
    )
    assert "role" in error["details"]
    error = assert_error(
        client.post(f"{t}/members/", {"user": "ghost", "role": "viewer"}, format="json"), 400
    )
    assert "user" in error["details"]


def test_oversize_body_is_413(owner_client, settings):
    client, t, _ = owner_client
    before = Role.objects.count()
    huge = '{"name": "' + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + '", "permissions": []}'
    assert_error(
        client.generic("POST", f"{t}/roles/", huge, content_type="application/json"), 413, "payload_too_large"
    )
    assert Role.objects.count() == before


def test_oversize_body_without_content_length_is_413(owner_client, settings):
    """The parser enforces the limit itself, whatever the Content-Length header says."""
    import io

    from jetadmin.api.errors import PayloadTooLarge
    from jetadmin.api.parsers import LimitedJSONParser

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    with pytest.raises(PayloadTooLarge):
        LimitedJSONParser().parse(io.BytesIO(b'{"a": "' + b"x" * 200 + b'"}'))


def test_wrong_method_and_media_type(owner_client):
    client, t, _ = owner_client
    assert_error(client.put(f"{t}/roles/", {}, format="json"), 405, "method_not_allowed")
    assert_error(
        client.generic("POST", f"{t}/roles/", "name=x", content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    )
    assert_error(client.get("/api/v1/does-not-exist/"), 404, "not_found")


def test_bad_pagination(owner_client):
    client, t, _ = owner_client
    assert_error(client.get(f"{t}/roles/?page=999"), 404, "not_found")
    assert_error(client.get(f"{t}/roles/?page=abc"), 404, "not_found")
    page = client.get(f"{t}/roles/?page_size=100000").json()
    assert set(page) == {"count", "next", "previous", "results"} and page["count"] == 4


def test_business_rule_errors(owner_client, make_user):
    client, t, tenant = owner_client
    owner_membership = tenant.memberships.get()
    error = assert_error(client.delete(f"{t}/members/{owner_membership.id}/"), 400)
    assert "owner" in error["message"]
    error = assert_error(
        client.patch(f"{t}/members/{owner_membership.id}/", {"role": "viewer"}, format="json"), 400
    )
    viewer_role = Role.objects.get(tenant=tenant, name="viewer")
    assert_error(client.patch(f"{t}/roles/{viewer_role.id}/", {"name": "x"}, format="json"), 400)
    assert_error(client.delete(f"{t}/roles/{viewer_role.id}/"), 400)
    assert_error(
        client.post(f"{t}/roles/", {"name": "viewer", "permissions": []}, format="json"), 409, "conflict"
    )
    user = make_user()
    assert (
        client.post(f"{t}/members/", {"user": user.email, "role": "viewer"}, format="json").status_code == 201
    )
    assert_error(client.post(f"{t}/members/", {"user": user.username, "role": "viewer"}, format="json"), 409)


def test_bad_credentials(client, make_user):
    user = make_user()
    r = client.post(
        "/api/v1/auth/token/",
        {"username": user.username, "password": "wrong"},
        content_type="application/json",
    )
    assert_error(r, 401)
    assert_error(client.get("/api/v1/me/", HTTP_AUTHORIZATION="Token"), 401)
    assert_error(client.get("/api/v1/me/", HTTP_AUTHORIZATION="Token a b"), 401)
    assert_error(client.get("/api/v1/me/", HTTP_AUTHORIZATION="Token nope"), 401)
    assert not AuditLog.objects.filter(action="auth.token_create").exists()


def test_login_is_throttled(client, make_user):
    user = make_user()
    codes = [
        client.post(
            "/api/v1/auth/token/",
            {"username": user.username, "password": "wrong"},
            content_type="application/json",
        ).status_code
        for _ in range(35)
    ]
    assert codes[0] == 401 and codes[-1] == 429
