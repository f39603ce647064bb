"""Large outputs off the hot rows: a query returning 50,000 rows keeps its NodeRun row small (a
reference with a preview), the downstream aggregate reads every row, the run's detail answers about as
fast as a small run's, the full output downloads, and a deleted run's blobs go with it — in the database
store and in S3 (a moto server)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from rest_framework.test import APIClient

from apps.tenancy.models import Tenant, User
from apps.tenancy.services import Actor
from apps.workflows import blobs
from apps.workflows.models import Blob, NodeRun, WorkflowInstance
from tests.conftest import free_port

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 50_000


@pytest.fixture
def big_query(owner_tenant: tuple[User, Tenant], tmp_path: Path, settings: Any) -> str:
    from apps.datasources import services as datasources
    from apps.queries import services as queries

    user, tenant = owner_tenant
    settings.JETADMIN_SQLITE_ROOT = str(tmp_path)
    conn = sqlite3.connect(tmp_path / "big.db")
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, region TEXT, total REAL)")
    conn.executemany(
        "INSERT INTO orders (region, total) VALUES (?, ?)",
        [(f"r{i % 4}", float(i % 100)) for i in range(ROWS)],
    )
    conn.commit()
    conn.close()
    actor = Actor(user=user)
    ds = datasources.datasource_create(
        actor=actor, tenant=tenant, name="big", type="sqlite", config={"path": "big.db", "read_only": True}
    )
    query = queries.query_create(
        actor=actor,
        tenant=tenant,
        name="all orders",
        datasource=ds.id,
        body="SELECT * FROM orders",
        row_limit=ROWS,
    )
    return str(query.id)


def report(query_id: str | None) -> dict[str, Any]:
    """start → orders (the big query, or a tiny inline list) → totals (aggregate by region) → end."""
    orders: dict[str, Any] = (
        {"id": "orders", "type": "dataQuery", "inputs": {"query": query_id}}
        if query_id
        else {
            "id": "orders",
            "type": "javascript",
            "inputs": {"code": "return {result: [{region: 'r0', total: 1}]}"},
        }
    )
    return {
        "nodes": [
            {"id": "start", "type": "start"},
            orders,
            {
                "id": "totals",
                "type": "aggregate",
                "inputs": {
                    "data": "{{orders.result}}",
                    "group_by": ["region"],
                    "metrics": [
                        {"field": "total", "op": "count", "as": "n"},
                        {"field": "total", "op": "sum", "as": "sum"},
                    ],
                },
            },
            {"id": "end", "type": "end", "inputs": {"output": "{{totals.result}}"}},
        ],
        "edges": [
            {"source": "start", "target": "orders"},
            {"source": "orders", "target": "totals"},
            {"source": "totals", "target": "end"},
        ],
    }


def detail_ms(client: APIClient, base: str, iid: str) -> float:
    """The fastest of 15 requests: the detail's own cost, without the noise of a busy machine."""
    times = []
    for _ in range(15):
        began = time.perf_counter()
        response = client.get(f"{base}/instances/{iid}/")
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200
    return min(times)


def check_big_run(run_graph: Any, owner_tenant: tuple[User, Tenant], big_query: str) -> WorkflowInstance:
    user, tenant = owner_tenant
    big = run_graph(report(big_query), timeout=120)
    assert big.status == "succeeded", big.error
    row = NodeRun.objects.get(instance=big, node_id="orders", iteration="")
    assert blobs.is_ref(row.output)
    assert len(json.dumps(row.output)) < 5_000  # the row keeps a reference and a preview, not 50,000 rows
    assert row.output["preview"]["result"]["count"] == ROWS
    assert sum(r["n"] for r in big.output) == ROWS  # the aggregate read every row
    assert sum(r["sum"] for r in big.output) == sum(float(i % 100) for i in range(ROWS))

    small = run_graph(report(None))
    client = APIClient()
    client.force_authenticate(user)
    base = f"/api/v1/tenants/{tenant.id}/workflows"
    detail_ms(client, base, str(small.id))  # warm up
    ratio = detail_ms(client, base, str(big.id)) / detail_ms(client, base, str(small.id))
    print(f"instance detail: 50,000-row run vs small run = {ratio:.2f}x (time, printed only)")
    # What made the detail slow was its size; a few-millisecond timing is too noisy to assert on a
    # shared machine (0.7-1.6x between runs), so the assertion is on the bytes the detail carries.
    sizes = [len(client.get(f"{base}/instances/{iid}/").content) for iid in (big.id, small.id)]
    assert sizes[0] < 1.5 * sizes[1] + 10_000, sizes

    from django.test import Client

    browser = Client()
    browser.force_login(user)
    page = browser.get(f"/t/{tenant.id}/runs/{big.id}/")
    assert page.status_code == 200 and b"Kept in the blob store" in page.content
    assert f"/instances/{big.id}/nodes/orders/output/".encode() in page.content

    download = client.get(f"{base}/instances/{big.id}/nodes/orders/output/")
    assert download.status_code == 200 and download["Content-Disposition"].startswith("attachment")
    assert len(json.loads(download.content)["result"]) == ROWS
    return big


def test_a_50000_row_output_lives_in_the_database_blob_store(
    run_graph: Any, owner_tenant: tuple[User, Tenant], big_query: str
) -> None:
    big = check_big_run(run_graph, owner_tenant, big_query)
    # the query's output, and the aggregate's resolved inputs (they hold the same rows)
    assert sorted(Blob.objects.filter(instance=big).values_list("node_id", flat=True)) == ["orders", "totals"]
    big.delete()
    assert not Blob.objects.exists()


@pytest.fixture
def s3_bucket(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    settings.JETADMIN_BLOB_S3_ENDPOINT = f"http://{host}:{port}"
    settings.JETADMIN_BLOB_S3_BUCKET = "jetadmin-blobs"
    client = boto3.client("s3", endpoint_url=settings.JETADMIN_BLOB_S3_ENDPOINT)
    client.create_bucket(Bucket="jetadmin-blobs")
    yield client
    server.stop()


def test_a_50000_row_output_lives_in_s3(
    run_graph: Any, owner_tenant: tuple[User, Tenant], big_query: str, s3_bucket: Any
) -> None:
    big = check_big_run(run_graph, owner_tenant, big_query)
    stored = Blob.objects.filter(instance=big)
    assert stored.count() == 2 and all(b.key and not b.content for b in stored)
    listed = s3_bucket.list_objects_v2(Bucket="jetadmin-blobs").get("Contents", [])
    assert sorted(o["Key"] for o in listed) == sorted(b.key for b in stored)
    WorkflowInstance.objects.filter(pk=big.pk).delete()
    assert not Blob.objects.exists()
    assert s3_bucket.list_objects_v2(Bucket="jetadmin-blobs").get("KeyCount") == 0


def test_small_outputs_stay_in_their_rows(run_graph: Any) -> None:
    small = run_graph(report(None))
    assert not blobs.is_ref(NodeRun.objects.get(instance=small, node_id="orders").output)
    assert not Blob.objects.filter(instance=small).exists()
