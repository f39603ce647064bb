"""The datasources API: CRUD, masked secrets (a canary never leaves the server), connection tests,
tenant isolation and permissions."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from apps.datasources.models import Datasource
from apps.tenancy.models import AuditLog
from tests.conftest import (
    add_member,
    assert_error,
    pg_test_server,
    pg_test_server_or_skip,
    redis_test_server,
    token_client,
)

pytestmark = pytest.mark.usefixtures("local_servers")

CANARY = "canary-pw-7d3e91"
# The test PostgreSQL (JETADMIN_TEST_PG_URL, as scripts/test.sh): trust auth, so any password works.
PG = {**pg_test_server(), "database": "postgres", "password": CANARY}
PG_AT = f"{PG['host']}:{PG['port']}"


@pytest.fixture
def live_pg() -> None:
    """The test really connects to PostgreSQL: skipped without it, a failure under ``CI=true``."""
    pg_test_server_or_skip()


@pytest.fixture
def ctx(make_user, make_tenant, tmp_path: Path, settings: Any):
    settings.JETADMIN_SQLITE_ROOT = str(tmp_path)
    sqlite3.connect(tmp_path / "shop.db").execute("CREATE TABLE t (x)").connection.close()
    owner = make_user()
    tenant = make_tenant("DS", owner=owner)
    return token_client(owner), f"/api/v1/tenants/{tenant.id}/datasources/", tenant


@pytest.mark.django_db
def test_types_list_marks_secret_fields_write_only(ctx) -> None:
    client, _, _ = ctx
    types = {t["type"]: t for t in client.get("/api/v1/datasource-types/").json()}
    assert {"postgresql", "sqlite"} <= set(types)
    assert types["postgresql"]["config_schema"]["properties"]["password"]["writeOnly"] is True


@pytest.mark.django_db
@pytest.mark.usefixtures("live_pg")
def test_crud_masks_secrets_and_keeps_them_on_patch(ctx) -> None:
    client, url, tenant = ctx
    r = client.post(url, {"name": "warehouse", "type": "postgresql", "config": PG}, format="json")
    assert r.status_code == 201, r.content
    created = r.json()
    assert created["config"]["password"] == "********" and created["config"]["user"] == "postgres"
    stored = Datasource.objects.get(pk=created["id"])
    assert CANARY not in json.dumps(stored.config) and CANARY not in stored.secrets_encrypted

    detail = f"{url}{created['id']}/"
    r = client.patch(detail, {"config": {"password": "********", "port": PG["port"]}}, format="json")
    assert r.status_code == 200, r.content
    from apps.datasources import services

    assert services.full_config(Datasource.objects.get(pk=created["id"]))["password"] == CANARY
    assert client.post(f"{detail}test/").json()["ok"] is True  # trust auth here: any password works

    everything = json.dumps([client.get(url).json(), client.get(detail).json()])
    audit = json.dumps(list(AuditLog.objects.filter(tenant=tenant).values("changes", "action")))
    assert CANARY not in everything and CANARY not in audit
    assert client.delete(detail).status_code == 204
    assert not Datasource.objects.filter(pk=created["id"]).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "type": "oracle", "config": {}}, "type"),
        ({"name": "x", "type": "postgresql", "config": {"host": "db"}}, "config.database"),
        ({"name": "x", "type": "postgresql", "config": {**PG, "port": "five"}}, "config.port"),
        ({"name": "x", "type": "sqlite", "config": {"path": "a.db", "extra": 1}}, "config"),
        ({"name": "x", "type": "sqlite", "config": [1]}, "config"),
        ({"type": "sqlite", "config": {"path": "a.db"}}, "name"),
    ],
)
def test_bad_config_is_400_naming_the_field(ctx, body, field) -> None:
    client, url, _ = ctx
    error = assert_error(client.post(url, body, format="json"), 400, "validation_error")
    assert field in error["details"], error
    assert not Datasource.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("live_pg")
def test_connection_tests_report_clear_messages(ctx) -> None:
    client, url, _ = ctx
    ok = client.post(f"{url}test/", {"type": "sqlite", "config": {"path": "shop.db"}}, format="json").json()
    assert ok["ok"] is True and ok["latency_ms"] >= 0
    missing = client.post(
        f"{url}test/", {"type": "sqlite", "config": {"path": "nope.db"}}, format="json"
    ).json()
    assert missing["ok"] is False and "No SQLite database" in missing["message"]
    bad_user = {**PG, "user": "nobody_here"}
    r = client.post(f"{url}test/", {"type": "postgresql", "config": bad_user}, format="json").json()
    assert r["ok"] is False and r["message"] == f"PostgreSQL at {PG_AT} has no user 'nobody_here'.", r
    r = client.post(f"{url}test/", {"type": "postgresql", "config": {**PG, "port": 1}}, format="json").json()
    assert r["ok"] is False and r["message"].startswith(f"Cannot reach PostgreSQL at {PG['host']}:1: "), r


@pytest.mark.django_db
def test_duplicate_name_is_400(ctx) -> None:
    client, url, _ = ctx
    body = {"name": "same", "type": "sqlite", "config": {"path": "shop.db"}}
    assert client.post(url, body, format="json").status_code == 201
    error = assert_error(client.post(url, body, format="json"), 400)
    assert "name" in error["details"]


@pytest.mark.django_db
def test_isolation_and_permissions(ctx, make_user, make_tenant) -> None:
    client, url, tenant = ctx
    created = client.post(
        url, {"name": "s", "type": "sqlite", "config": {"path": "shop.db"}}, format="json"
    ).json()
    stranger = token_client(make_user())
    assert_error(stranger.get(f"{url}{created['id']}/"), 404)
    other_owner = make_user()
    other = make_tenant("Other", owner=other_owner)
    other_url = f"/api/v1/tenants/{other.id}/datasources/{created['id']}/"
    assert_error(token_client(other_owner).get(other_url), 404)
    viewer = make_user()
    add_member(tenant, viewer, "viewer")
    as_viewer = token_client(viewer)
    assert as_viewer.get(url).status_code == 200
    assert_error(
        as_viewer.post(url, {"name": "v", "type": "sqlite", "config": {"path": "a"}}, format="json"), 403
    )
    assert_error(as_viewer.delete(f"{url}{created['id']}/"), 403)
    assert_error(
        as_viewer.post(f"{url}test/", {"type": "sqlite", "config": {"path": "shop.db"}}, format="json"), 403
    )


# Through the API, for every connector type: a good config connects, bad credentials and a wrong
# host give {ok: false} with a message naming what to fix (never a 500, never the secret). The last
# item is a regular expression the whole message must match: a wrong port and refused credentials
# read differently.
H, REFUSED = re.escape(PG["host"]), r"(?i:.*connection refused\.?)"
MY_OK = {"host": "127.0.0.1", "port": 3306, "database": "mysql", "user": "root"}
REDIS_HOST, REDIS_PORT = redis_test_server()
REDIS_OK = {"host": REDIS_HOST, "port": REDIS_PORT}
GOOD_AND_BAD = [
    (
        "postgresql",
        PG,
        {**PG, "password": "", "user": "nobody_here"},
        rf"PostgreSQL at {re.escape(PG_AT)} has no user 'nobody_here'\.",
    ),
    ("postgresql", PG, {**PG, "port": 1}, rf"Cannot reach PostgreSQL at {H}:1: {REFUSED}"),
    (
        "mysql",
        MY_OK,
        {**MY_OK, "password": CANARY},
        r"MySQL at 127\.0\.0\.1:3306 refused user 'root': check the user and password\.",
    ),
    ("mysql", MY_OK, {**MY_OK, "port": 1}, rf"Cannot reach MySQL at 127\.0\.0\.1:1: {REFUSED}"),
    (
        "redis",
        REDIS_OK,
        {**REDIS_OK, "port": 1},
        rf"Cannot reach Redis at {re.escape(REDIS_HOST)}:1: {REFUSED}",
    ),
    (
        "redis",
        REDIS_OK,
        {**REDIS_OK, "username": "nobody", "password": CANARY},
        rf"Redis at {re.escape(f'{REDIS_HOST}:{REDIS_PORT}')} refused the password for user 'nobody': "
        r"check the username and password\.",
    ),
    ("rest", None, {"base_url": "http://127.0.0.1:1/api"}, r"Cannot connect to http://127\.0\.0\.1:1/api\."),
    (
        "graphql",
        None,
        {"base_url": "http://127.0.0.1:1/graphql"},
        r"Cannot connect to http://127\.0\.0\.1:1/graphql\.",
    ),
    (
        "slack",
        None,
        {"token": CANARY, "base_url": "http://127.0.0.1:1/api"},
        r"Cannot connect to http://127\.0\.0\.1:1/api/auth\.test\.",
    ),
    (
        "smtp",
        None,
        {"host": "127.0.0.1", "port": 1, "security": "none", "from_email": "a@b.co"},
        r"SMTP server 127\.0\.0\.1:1 refused the connection: check the host and port\.",
    ),
    (
        "s3",
        None,
        {
            "bucket": "reports",
            "region": "us-east-1",
            "endpoint_url": "http://127.0.0.1:1",
            "access_key_id": "AKIDEXAMPLE",
            "secret_access_key": CANARY,
            "timeout_s": 2,
        },
        r"Cannot connect to S3 bucket 'reports' at 127\.0\.0\.1:1: check the endpoint URL and region\.",
    ),
]
BAD_KINDS = ["user", "port", "password", "port", "port", "password", "port", "port", "port", "port", "port"]
GOOD_AND_BAD_IDS = [f"{row[0]}-wrong-{kind}" for row, kind in zip(GOOD_AND_BAD, BAD_KINDS, strict=True)]


@pytest.mark.django_db
@pytest.mark.parametrize(("type_name", "good", "bad", "says"), GOOD_AND_BAD, ids=GOOD_AND_BAD_IDS)
def test_connection_test_of_every_type_is_clear(ctx, settings, type_name, good, bad, says) -> None:
    client, url, _ = ctx
    settings.JETADMIN_OUTBOUND_ALLOW = ["127.0.0.0/8"]
    if type_name == "postgresql":
        pg_test_server_or_skip()
    if good is not None:
        r = client.post(f"{url}test/", {"type": type_name, "config": good}, format="json")
        assert r.status_code == 200 and r.json()["ok"] is True, r.json()
    r = client.post(f"{url}test/", {"type": type_name, "config": bad}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["ok"] is False and re.fullmatch(says, body["message"]), body
    assert CANARY not in r.content.decode()


@pytest.mark.django_db
def test_moving_a_datasource_drops_its_secrets_unless_sent_again(ctx) -> None:
    """Otherwise an editor could point a saved token at their own server and run a connection test."""
    from apps.datasources import services

    client, url, _ = ctx
    config = {"base_url": "https://api.example.com", "auth_type": "bearer", "token": CANARY}
    created = client.post(url, {"name": "api", "type": "rest", "config": config}, format="json").json()
    detail = f"{url}{created['id']}/"
    kept = client.patch(detail, {"config": {"timeout_s": 20, "token": "********"}}, format="json")
    assert kept.status_code == 200 and kept.json()["config"]["token"] == "********"
    moved = client.patch(detail, {"config": {"base_url": "https://attacker.example"}}, format="json")
    assert moved.status_code == 200 and "token" not in moved.json()["config"]
    assert "token" not in services.full_config(Datasource.objects.get(pk=created["id"]))
    # Sending the secret along with the move keeps it working; a required secret must be sent.
    resent = {"base_url": "https://api2.example.com", "token": "new-token"}
    assert client.patch(detail, {"config": resent}, format="json").json()["config"]["token"] == "********"
    slack = client.post(
        url, {"name": "s", "type": "slack", "config": {"token": CANARY}}, format="json"
    ).json()
    r = client.patch(f"{url}{slack['id']}/", {"config": {"base_url": "https://evil.example"}}, format="json")
    assert "config.token" in assert_error(r, 400, "validation_error")["details"]


@pytest.mark.django_db
def test_resending_an_unchanged_destination_is_not_a_move(ctx) -> None:
    from apps.datasources import services

    client, url, _ = ctx
    config = {k: v for k, v in PG.items() if k != "port"}  # saved without the default port
    created = client.post(url, {"name": "pg", "type": "postgresql", "config": config}, format="json").json()
    patch = {"port": 5432, "host": PG["host"], "password": "********"}  # 5432: the default port
    r = client.patch(f"{url}{created['id']}/", {"config": patch}, format="json")
    assert r.status_code == 200 and r.json()["config"]["password"] == "********"
    assert services.full_config(Datasource.objects.get(pk=created["id"]))["password"] == CANARY
