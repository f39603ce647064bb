"""Webhooks: tokens shown once, the public hook (HMAC signature, body → input, rate limit), revoking."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from rest_framework.test import APIClient

from apps.tenancy.models import AuditLog
from apps.triggers import services
from apps.triggers.models import Webhook
from apps.workflows import services as workflows
from apps.workflows.models import WorkflowInstance
from tests.conftest import add_member, assert_error, token_client
from tests.triggers.conftest import url_of

SECRET = "s3cret-hmac-key-that-must-not-leak"


@pytest.fixture
def ctx(owner_tenant, echo_workflow):
    user, tenant = owner_tenant
    workflow = echo_workflow()
    return token_client(user), url_of(tenant, workflow, "webhooks"), tenant, workflow


def create(client, url, **body):
    r = client.post(url, body, format="json")
    assert r.status_code == 201, r.content
    return r.json()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def hook(token: str, body: bytes | str = b"", signature: str | None = None, client=None):
    headers = {"HTTP_X_JETADMIN_SIGNATURE": signature} if signature is not None else {}
    raw = body.encode() if isinstance(body, str) else body
    return (client or APIClient()).post(
        f"/api/v1/hooks/{token}/", data=raw, content_type="application/json", **headers
    )


def runs() -> int:
    return WorkflowInstance.objects.count()


@pytest.mark.django_db
def test_create_shows_the_token_once_and_never_the_secret(ctx):
    client, url, tenant, _ = ctx
    created = create(client, url, name="CRM", secret=SECRET)
    assert set(created) == {"id", "name", "token", "url", "has_secret", "created_at"}
    token = created["token"]
    assert token.startswith("jwh_") and len(token) > 40
    assert created["url"] == f"http://testserver/api/v1/hooks/{token}/"
    assert created["has_secret"] is True and created["name"] == "CRM"
    plain = create(client, url)
    assert plain["has_secret"] is False and plain["token"] != token

    r = client.get(url)
    listed = r.json()
    assert listed["count"] == 2
    assert {w["id"] for w in listed["results"]} == {created["id"], plain["id"]}
    first = next(w for w in listed["results"] if w["id"] == created["id"])
    assert first["prefix"] == token[:12] and first["has_secret"] is True and first["is_active"] is True
    assert "token" not in first and "secret" not in first
    for text in (token, plain["token"], SECRET):
        assert text not in r.content.decode()
    stored = Webhook.objects.get(pk=created["id"])
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {stored.token_hash, stored.prefix, stored.name}

    audit = AuditLog.objects.filter(tenant=tenant, action="webhook.create")
    assert audit.count() == 2
    dumped = json.dumps(list(AuditLog.objects.filter(tenant=tenant).values("changes")))
    for text in (token, plain["token"], SECRET):
        assert text not in dumped


@pytest.mark.django_db
def test_fire_without_secret_starts_a_run_with_the_body_as_input(ctx):
    client, url, _, workflow = ctx
    token = create(client, url)["token"]
    body = {"order": 42, "items": [{"sku": "A", "qty": 2}], "note": "ünïcode"}
    r = hook(token, json.dumps(body))
    assert r.status_code == 202, r.content
    started = r.json()
    assert set(started) == {"instance_id", "status"} and started["status"] == "queued"
    instance = WorkflowInstance.objects.get(pk=started["instance_id"])
    assert instance.input == body and instance.trigger == "webhook" and instance.workflow_id == workflow.id
    # An empty body is an empty input.
    r = hook(token, b"")
    assert r.status_code == 202, r.content
    assert WorkflowInstance.objects.get(pk=r.json()["instance_id"]).input == {}
    assert Webhook.objects.get().last_used_at is not None


@pytest.mark.django_db
def test_signature_is_checked_and_a_bad_one_starts_nothing(ctx):
    client, url, _, _ = ctx
    token = create(client, url, secret=SECRET)["token"]
    body = json.dumps({"event": "paid"}).encode()
    good = sign(body)

    before = runs()
    for signature in (
        None,  # missing
        "",
        good[len("sha256=") :],  # no scheme
        "sha1=" + good[len("sha256=") :],
        sign(body, "wrong-secret"),
        sign(body + b" "),  # a signature of another body
        "sha256=" + "0" * 64,
        "sha256=not-hex",
        "sha256=\u00e9" + good[len("sha256=") + 1 :],  # non-ASCII
    ):
        error = assert_error(hook(token, body, signature), 401)
        assert "X-Jetadmin-Signature" in error["message"]
    assert runs() == before  # nothing started

    r = hook(token, body, good)
    assert r.status_code == 202, r.content
    assert runs() == before + 1
    assert WorkflowInstance.objects.get(pk=r.json()["instance_id"]).input == {"event": "paid"}
    assert hook(token, body, good.upper().replace("SHA256=", "sha256=")).status_code == 202  # hex case


@pytest.mark.django_db
def test_unknown_and_revoked_tokens_are_404(ctx, make_user):
    client, url, tenant, _ = ctx
    created = create(client, url)
    token = created["token"]
    assert_error(hook("jwh_nope"), 404, "not_found")
    assert_error(hook(token[:-1]), 404)

    viewer = make_user()
    add_member(tenant, viewer, "viewer")
    assert_error(token_client(viewer).delete(f"{url}{created['id']}/"), 403, "permission_denied")
    assert hook(token, "{}").status_code == 202

    assert client.delete(f"{url}{created['id']}/").status_code == 204
    before = runs()
    assert_error(hook(token, "{}"), 404, "not_found")
    assert runs() == before
    listed = client.get(url).json()["results"][0]
    assert listed["is_active"] is False and listed["revoked_at"] is not None
    assert client.delete(f"{url}{created['id']}/").status_code == 204  # revoking twice is fine
    actions = AuditLog.objects.filter(tenant=tenant, object_type="webhook").values_list("action", flat=True)
    assert sorted(actions) == ["webhook.create", "webhook.revoke", "webhook.revoke"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    ["[1, 2]", "3", '"text"', "null", "not json", "{", "\xff\xfe", '{"a": "\\u0000"}', '{"\\u0000": 1}'],
)
def test_a_body_that_is_not_a_json_object_is_400(ctx, body):
    client, url, _, _ = ctx
    token = create(client, url)["token"]
    raw = body.encode("latin-1") if body == "\xff\xfe" else body.encode()
    error = assert_error(hook(token, raw), 400, "validation_error")
    assert "body" in error["details"]
    assert runs() == 0


@pytest.mark.django_db
def test_rate_limit_answers_429_with_retry_after(ctx, settings, monkeypatch):
    client, url, _, _ = ctx
    settings.JETADMIN_WEBHOOK_RATE = "3/min"
    clock = {"now": 60 * 20_000 + 20.0}  # 20 s into a minute window
    monkeypatch.setattr(services, "_now_s", lambda: clock["now"])
    token = create(client, url)["token"]
    other = create(client, url)["token"]
    for _ in range(3):
        assert hook(token, "{}").status_code == 202
    r = hook(token, "{}")
    error = assert_error(r, 429, "throttled")
    assert r["Retry-After"] == "40"
    assert error["details"] == {"retry_after_s": 40}
    assert runs() == 3
    assert hook(other, "{}").status_code == 202  # a counter per webhook
    clock["now"] += 40  # the next window
    assert hook(token, "{}").status_code == 202
    assert runs() == 5


@pytest.mark.django_db
def test_the_hook_needs_no_login_and_no_csrf_token(ctx):
    client, url, _, _ = ctx
    token = create(client, url)["token"]
    csrf_client = APIClient(enforce_csrf_checks=True)
    assert hook(token, "{}", client=csrf_client).status_code == 202
    # Credentials of someone else change nothing: the token is the credential.
    assert hook(token, "{}", client=client).status_code == 202
    assert_error(APIClient().get(f"/api/v1/hooks/{token}/"), 405)


@pytest.mark.django_db
def test_webhook_api_permissions_and_tenants(ctx, make_user, make_tenant):
    client, url, tenant, workflow = ctx
    create(client, url)
    viewer = make_user()
    add_member(tenant, viewer, "viewer")
    vc = token_client(viewer)
    assert vc.get(url).json()["count"] == 1
    assert_error(vc.post(url, {"name": "x"}, format="json"), 403, "permission_denied")
    stranger = make_user()
    other = make_tenant("Other", owner=stranger)
    sc = token_client(stranger)
    assert_error(sc.get(url), 404)
    assert_error(sc.post(url_of(other, workflow, "webhooks"), {}, format="json"), 404)
    assert_error(client.post(url, {"name": "x" * 201}, format="json"), 400, "validation_error")
    assert Webhook.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_webhook_run_succeeds_on_the_worker(ctx, embedded_worker):
    client, url, _, _ = ctx
    token = create(client, url, secret=SECRET)["token"]
    body = json.dumps({"hello": "world"}).encode()
    r = hook(token, body, sign(body))
    assert r.status_code == 202, r.content
    instance = WorkflowInstance.objects.get(pk=r.json()["instance_id"])
    instance, timed_out = workflows.instance_wait(instance=instance, timeout_s=30)
    assert not timed_out and instance.status == "succeeded", instance.error
    assert instance.trigger == "webhook" and instance.output == {"got": {"hello": "world"}}


@pytest.mark.django_db
@pytest.mark.parametrize(("depth", "status"), [(50, 202), (99, 202), (100, 400), (900, 400), (5000, 400)])
def test_deeply_nested_bodies_are_400_not_a_server_error(ctx, depth, status):
    client, url, _, _ = ctx
    token = create(client, url)["token"]
    body = '{"a": ' + "[" * depth + "]" * depth + "}"  # depth + 1 levels with the outer object
    r = hook(token, body)
    assert r.status_code == status, r.content[:300]
    if status == 400:
        assert "body" in assert_error(r, 400, "validation_error")["details"]
    assert runs() == (1 if status == 202 else 0)
