"""Saved queries: run with parameters (bound, never interpolated), row caps, timeouts, read-only
datasources, clear errors, permissions and isolation."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from apps.queries.models import DataQuery
from tests.conftest import add_member, assert_error, token_client

INJECTIONS = [
    "'; DROP TABLE orders; --",
    "x' OR '1'='1",
    "COMMIT; DELETE FROM orders; --",
    "1); DELETE FROM orders; --",
]


@pytest.fixture
def ctx(make_user, make_tenant, tmp_path: Path, settings: Any):
    settings.JETADMIN_SQLITE_ROOT = str(tmp_path)
    conn = sqlite3.connect(tmp_path / "shop.db")
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL)")
    conn.executemany(
        "INSERT INTO orders (customer, total) VALUES (?, ?)", [(f"c{i % 4}", i) for i in range(40)]
    )
    conn.commit()
    conn.close()
    owner = make_user()
    tenant = make_tenant("Q", owner=owner)
    client = token_client(owner)
    base = f"/api/v1/tenants/{tenant.id}"

    def datasource(name: str, **config: Any) -> str:
        r = client.post(
            f"{base}/datasources/",
            {"name": name, "type": "sqlite", "config": {"path": "shop.db", **config}},
            format="json",
        )
        assert r.status_code == 201, r.content
        return str(r.json()["id"])

    return client, base, tenant, datasource, tmp_path / "shop.db"


def orders(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0])


def save(client: Any, base: str, ds: str, body: str, **extra: Any) -> str:
    r = client.post(
        f"{base}/queries/",
        {"name": extra.pop("name", "q"), "datasource": ds, "body": body, **extra},
        format="json",
    )
    assert r.status_code == 201, r.content
    return str(r.json()["id"])


@pytest.mark.django_db
def test_run_with_params_and_row_cap(ctx) -> None:
    client, base, _, datasource, _ = ctx
    ds = datasource("shop")
    schema = {"type": "object", "required": ["who"], "properties": {"who": {"type": "string"}}}
    qid = save(
        client,
        base,
        ds,
        "SELECT id, total FROM orders WHERE customer = :who ORDER BY id",
        params_schema=schema,
        row_limit=5,
    )
    r = client.post(f"{base}/queries/{qid}/run/", {"params": {"who": "c1"}}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["columns"] == ["id", "total"] and body["row_count"] == 5 and body["truncated"] is True
    assert body["rows"][0] == [2, 1.0] and body["duration_ms"] >= 0
    error = assert_error(client.post(f"{base}/queries/{qid}/run/", {"params": {}}, format="json"), 400)
    assert "params" in error["details"]
    error = assert_error(
        client.post(f"{base}/queries/{qid}/run/", {"params": {"who": 3}}, format="json"), 400
    )
    assert "params.who" in error["details"]


@pytest.mark.django_db
def test_injection_corpus_through_the_api_never_writes(ctx) -> None:
    client, base, _, datasource, path = ctx
    ds = datasource("shop")
    qid = save(client, base, ds, "SELECT COUNT(*) AS n FROM orders WHERE customer = :who")
    for value in INJECTIONS:
        r = client.post(f"{base}/queries/{qid}/run/", {"params": {"who": value}}, format="json")
        assert r.status_code == 200 and r.json()["rows"] == [[0]], r.content
    for body in ("SELECT 1; DELETE FROM orders", "SELECT 1; DROP TABLE orders"):
        r = client.post(f"{base}/queries/test/", {"datasource": ds, "body": body}, format="json")
        assert_error(r, 400, "bad_query")
    assert orders(path) == 40


@pytest.mark.django_db
def test_read_only_datasource_refuses_writes_at_the_database(ctx) -> None:
    client, base, _, datasource, path = ctx
    ro = datasource("shop-ro", read_only=True)
    r = client.post(f"{base}/queries/test/", {"datasource": ro, "body": "DELETE FROM orders"}, format="json")
    error = assert_error(r, 400, "read_only")
    assert "read-only" in error["message"]
    assert orders(path) == 40


@pytest.mark.django_db
def test_errors_are_clear_and_never_500(ctx) -> None:
    client, base, _, datasource, _ = ctx
    ds = datasource("shop")
    assert_error(
        client.post(f"{base}/queries/test/", {"datasource": ds, "body": "SELEC nope"}, format="json"),
        400,
        "bad_query",
    )
    slow = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n"
    qid = save(client, base, ds, slow, timeout_s=0.2, name="slow")
    assert_error(client.post(f"{base}/queries/{qid}/run/", {}, format="json"), 504, "timeout")
    error = assert_error(
        client.post(f"{base}/queries/", {"name": "e", "datasource": ds, "body": ""}, format="json"), 400
    )
    assert "body" in error["details"]
    bad_schema = {"name": "s", "datasource": ds, "body": "SELECT 1", "params_schema": {"type": 7}}
    assert (
        "params_schema"
        in assert_error(client.post(f"{base}/queries/", bad_schema, format="json"), 400)["details"]
    )
    ghost = "00000000-0000-4000-8000-000000000000"
    assert_error(
        client.post(
            f"{base}/queries/", {"name": "g", "datasource": ghost, "body": "SELECT 1"}, format="json"
        ),
        404,
    )
    assert not DataQuery.objects.filter(name__in=["e", "s", "g"]).exists()


@pytest.mark.django_db
def test_permissions_and_isolation(ctx, make_user, make_tenant) -> None:
    client, base, tenant, datasource, _ = ctx
    ds = datasource("shop")
    qid = save(client, base, ds, "SELECT 1 AS one")
    viewer = make_user()
    add_member(tenant, viewer, "viewer")
    as_viewer = token_client(viewer)
    assert as_viewer.get(f"{base}/queries/{qid}/").status_code == 200
    assert_error(as_viewer.post(f"{base}/queries/{qid}/run/", {}, format="json"), 403)
    editor = make_user()
    add_member(tenant, editor, "editor")
    assert token_client(editor).post(f"{base}/queries/{qid}/run/", {}, format="json").json()["rows"] == [[1]]
    other_owner = make_user()
    other = make_tenant("Other", owner=other_owner)
    other_client = token_client(other_owner)
    assert_error(other_client.get(f"/api/v1/tenants/{other.id}/queries/{qid}/"), 404)
    r = other_client.post(
        f"/api/v1/tenants/{other.id}/queries/test/", {"datasource": ds, "body": "SELECT 1"}, format="json"
    )
    assert_error(r, 404)  # another tenant's datasource does not exist for this tenant


def test_result_renderer_writes_values_as_drf_would() -> None:
    """The orjson renderer of query results gives the same JSON as DRF's encoder for every value a
    driver returns (and hex for binary, which DRF's encoder cannot do)."""
    import datetime as dt
    import uuid
    from decimal import Decimal

    from rest_framework.renderers import JSONRenderer

    from jetadmin.api.renderers import ResultRenderer

    values = [
        Decimal("12.50"),
        Decimal("7"),
        dt.datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.datetime(2026, 3, 1, 12, 30),
        dt.date(2026, 3, 1),
        dt.time(8, 15, 30),
        dt.timedelta(hours=1, seconds=3),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        None,
        True,
        "naïve ✓",
        10**15,
        1.5,
    ]
    data = {"columns": ["v"], "rows": [[v] for v in values], "row_count": len(values)}
    assert json.loads(ResultRenderer().render(data)) == json.loads(JSONRenderer().render(data))
    assert json.loads(ResultRenderer().render({"b": b"\x00\xff"})) == {"b": "00ff"}
