"""Operations: health probes, the real server process, deploy checks, migrations, the embedded worker."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from channels.testing.websocket import WebsocketCommunicator
from django.core import mail

from jetadmin import embedded
from jetadmin.celery import app as celery_app
from jetadmin.demo import DEMO_WIDGETS, months_covered
from tests.conftest import ROOT, free_port, token_client


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - local test server
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.django_db
def test_healthz_and_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200, r.content
    assert {name: check["ok"] for name, check in r.json()["checks"].items()} == {
        "database": True,
        "broker": True,
        "channel_layer": True,
    }


@pytest.mark.django_db(transaction=True)
def test_serve_process_answers_and_readyz_reports_a_dead_broker(serve_process):
    server = serve_process()
    assert _get(server.url + "/healthz") == (200, {"status": "ok"})
    status, body = _get(server.url + "/readyz")
    assert status == 200, body
    # A server whose Redis is unreachable is alive but not ready, and says what is down.
    dead = serve_process(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert _get(dead.url + "/healthz")[0] == 200
    status, body = _get(dead.url + "/readyz")
    assert status == 503
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["channel_layer"]["ok"] is False


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")} | env
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=120
    )


PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(60),
    "DATABASE_URL": "postgres://jetadmin@db.internal:5432/jetadmin",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "ALLOWED_HOSTS": "jetadmin.example.com",
}


def test_check_deploy_only_warns_about_what_the_readme_justifies():
    out = _manage("check", "--deploy", **PRODUCTION_ENV)
    assert out.returncode == 0, out.stderr
    codes = sorted(set(__import__("re").findall(r"\((\S+\.W\d+)\)", out.stderr + out.stdout)))
    assert codes == ["security.W004", "security.W008"], out.stderr
    readme = (ROOT / "README.md").read_text()
    for code in codes:
        assert code in readme, f"{code} is not justified in the README"
    hardened = PRODUCTION_ENV | {
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "SECURE_HSTS_PRELOAD": "true",
    }
    out = _manage("check", "--deploy", "--fail-level", "WARNING", **hardened)
    assert out.returncode == 0, out.stderr
    assert "no issues" in out.stdout


def test_no_missing_migrations():
    out = _manage("makemigrations", "--check", "--dry-run")
    assert out.returncode == 0, out.stdout + out.stderr


def test_openapi_schema_is_valid(client):
    out = _manage("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    assert out.returncode == 0, out.stderr
    r = client.get("/api/schema/?format=json")
    assert r.status_code == 200
    paths = json.loads(r.content)["paths"]
    assert "/api/v1/tenants/{tenant_id}/members/" in paths
    assert all(op.get("summary") for path in paths.values() for op in path.values() if isinstance(op, dict))
    assert client.get("/api/docs/").status_code == 200


@pytest.fixture(scope="session")
def embedded_worker() -> Iterator[object]:
    worker = embedded.start(concurrency=2)
    yield worker
    embedded.stop()


@celery_app.task(name="tests.add")
def add(x: int, y: int) -> int:
    return x + y


@pytest.mark.django_db(transaction=True)
def test_invite_email_is_sent_by_a_real_celery_worker(embedded_worker, make_user, make_tenant, settings):
    """The invite service queues a Celery task after commit; the in-process worker sends the mail."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    owner = make_user()
    tenant = make_tenant("Acme", owner=owner)
    r = token_client(owner).post(
        f"/api/v1/tenants/{tenant.id}/invites/", {"email": "new@example.com", "role": "viewer"}, format="json"
    )
    assert r.status_code == 201, r.content
    deadline = time.monotonic() + 15
    while not mail.outbox and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new@example.com"]
    assert "Acme" in message.subject and "/invites/jin_" in message.body
    assert celery_app.conf.task_always_eager is False


@pytest.mark.django_db
def test_admin_never_shows_key_hashes(make_user, make_tenant, client):
    from apps.tenancy import services
    from apps.tenancy.models import APIKey, Role

    admin = make_user(is_staff=True, is_superuser=True)
    tenant = make_tenant("Acme", owner=admin)
    key, raw = services.api_key_create(
        actor=services.SYSTEM, tenant=tenant, name="ci", role=Role.objects.get(tenant=tenant, name="admin")
    )
    client.force_login(admin)
    for url in [
        "/admin/tenancy/apikey/",
        f"/admin/tenancy/apikey/{key.id}/change/",
        "/admin/tenancy/auditlog/",
        "/admin/tenancy/tenant/",
        "/admin/tenancy/membership/",
        "/admin/tenancy/role/",
        "/admin/tenancy/invite/",
        "/admin/tenancy/authtoken/",
        "/admin/tenancy/user/",
    ]:
        r = client.get(url)
        assert r.status_code == 200, url
        body = r.content.decode()
        assert APIKey.objects.get().key_hash not in body and raw not in body


@pytest.mark.django_db  # channels closes old DB connections around each message
def test_websocket_envelope():
    async_to_sync(_websocket_envelope)()


async def _websocket_envelope() -> None:
    from jetadmin.asgi import application

    communicator = WebsocketCommunicator(application, "/ws/", headers=[(b"origin", b"http://127.0.0.1")])
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"event": "ping", "data": {"n": 1}})
    assert await communicator.receive_json_from() == {"event": "pong", "data": {"n": 1}}
    await communicator.send_json_to({"event": "nope"})
    reply = await communicator.receive_json_from()
    assert reply["event"] == "error" and reply["data"]["code"] == "unknown_event"
    await communicator.disconnect()


def test_fresh_demo_start_runs_the_monthly_sales_report(tmp_path, serve_process):
    """What `make run` does on a fresh machine: migrate, bootstrap_demo (twice: idempotent), serve on
    the embedded default; then the demo workflow runs through the API and returns monthly totals."""
    env = {"JETADMIN_DATA_DIR": str(tmp_path)}
    assert _manage("migrate", "--noinput", **env).returncode == 0
    first = _manage("bootstrap_demo", **env)
    second = _manage("bootstrap_demo", **env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "Username  admin" in first.stdout and "Password  jetadmin-demo" in first.stdout
    assert first.stdout.split("Tenant")[1].split("\n")[0] == second.stdout.split("Tenant")[1].split("\n")[0]
    tenant_id = first.stdout.split("/t/")[1].split("/")[0]
    workflow_id = first.stdout.split('"Monthly sales report" (')[1].split(")")[0]

    server = serve_process(embedded_dir=tmp_path)
    token = _post(server.url + "/api/v1/auth/token/", {"username": "admin", "password": "jetadmin-demo"})[1]
    status, run = _post(
        f"{server.url}/api/v1/tenants/{tenant_id}/workflows/{workflow_id}/execute/",
        {"input": {"since": "2026-01-01"}, "mode": "sync", "timeout_s": 60},
        token=token["token"],
    )
    assert status == 200 and run["status"] == "succeeded", run
    months = run["output"]
    assert [m["month"] for m in months] == months_covered()  # the demo's orders end today
    assert all(m["orders"] > 0 and m["revenue"] > 0 for m in months)

    # the demo widgets (created once, though bootstrap ran twice) draw the same report
    listing = urllib.request.Request(  # noqa: S310 - local test server
        f"{server.url}/api/v1/tenants/{tenant_id}/widgets/",
        headers={"Authorization": f"Token {token['token']}"},
    )
    with urllib.request.urlopen(listing, timeout=30) as r:  # noqa: S310 - local test server
        widgets = {w["name"]: w for w in json.loads(r.read())["results"]}
    assert set(widgets) == {name for name, *_ in DEMO_WIDGETS}
    status, data = _post(
        f"{server.url}/api/v1/tenants/{tenant_id}/widgets/{widgets['Revenue by month']['id']}/data/",
        {"execution_mode": "SYNC", "timeout_s": 60},
        token=token["token"],
    )
    assert status == 200 and data["status"] == "succeeded", data
    assert data["processed_data"] == {
        "labels": [m["month"] for m in months],
        "datasets": [{"label": "revenue", "data": [m["revenue"] for m in months]}],
    }


def _post(url: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Token {token}"} if token else {})
    request = urllib.request.Request(  # noqa: S310 - local test server
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=90) as r:  # noqa: S310 - local test server
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
