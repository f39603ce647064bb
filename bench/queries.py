"""Benchmark: running a saved query through the API vs the same query through psycopg 3.

    python bench/queries.py [--runs 7] [--rows 10000] [--profile]

Needs PostgreSQL (postgres://postgres@127.0.0.1:5432). It creates the database ``jetadmin_bench``
if missing (kept afterwards, like bench/engine.py leaves it) and migrates it, (re)creates the table
``bench_rows`` there with ``--rows`` rows (integer, text, numeric, timestamptz), and saves the query
``SELECT id, name, amount, created_at FROM bench_rows WHERE id > %(min_id)s ORDER BY id`` on a
PostgreSQL datasource pointing at that same database, with a params schema and a row limit of
``--rows``. Then, after a warm-up, it measures as medians over ``--runs`` (the variants interleaved
within each run, so drift hits them all alike):

* raw, cold: psycopg 3 connect, execute with the bound parameter, fetchall, close — the endpoint
  opens a connection per run too;
* raw, warm: execute + fetchall on a connection opened once;
* endpoint in-process: ``POST /api/v1/tenants/{tid}/queries/{qid}/run/`` through DRF's APIClient
  (middleware, auth, tenant access, connector, JSON rendering; no sockets);
* endpoint over HTTP: the same POST with httpx (keep-alive) to ``manage.py serve --no-worker``
  (uvicorn) started as a subprocess on a free port with the same ``DATABASE_URL``;
* two parts of the in-process figure, to tell the driver/connector cost from serialization:
  ``services.query_run`` alone (connect, BEGIN, statement_timeout, prepared execute, fetch, close)
  and the endpoint's renderer (``ResultRenderer``, orjson) on its result (the rest is middleware,
  auth, tenant access, lookups).

Endpoint figures stop when the response body has arrived; parsing it (to check ``row_count``) is
not timed. It prints the medians, ms per 1k rows, the ratios endpoint/raw, and the number of
statements the app sends to its own database per request. ``--profile`` adds a cProfile of the
in-process endpoint (top functions by own and by cumulative time).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB = "jetadmin_bench"
NAME = "bench-queries"
# ``%(name)s``, not ``:name``: the PostgreSQL connector hands the text to psycopg as is, and ``:min_id``
# fails there with a syntax error (CONTRACT promises both styles; the SQLite connector takes ``:name``).
SQL = "SELECT id, name, amount, created_at FROM bench_rows WHERE id > %(min_id)s ORDER BY id"
PARAMS = {"min_id": 0}
PARAMS_SCHEMA = {
    "type": "object",
    "properties": {"min_id": {"type": "integer", "minimum": 0}},
    "required": ["min_id"],
    "additionalProperties": False,
}
# What the connector passes to psycopg.connect for the datasource below (sslmode left at libpq's
# default "prefer" on both sides).
RAW_CONNINFO: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 5432,
    "dbname": DB,
    "user": "postgres",
    "connect_timeout": 5,
}

os.environ.pop("REDIS_URL", None)  # embedded settings; the server runs with --no-worker
# The datasource is this machine's PostgreSQL: allow loopback past the outbound guard.
os.environ.setdefault("JETADMIN_OUTBOUND_ALLOW", "127.0.0.0/8")
os.environ.update(
    DATABASE_URL=f"{PG}/{DB}",
    DJANGO_SETTINGS_MODULE="jetadmin.settings",
    LOG_LEVEL="WARNING",
)
sys.path.insert(0, str(ROOT))


def ensure_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone() is None:
            conn.execute(f"CREATE DATABASE {DB}")


def create_rows(rows: int) -> None:
    import psycopg

    with psycopg.connect(**RAW_CONNINFO, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_rows")
        conn.execute(
            "CREATE TABLE bench_rows (id integer PRIMARY KEY, name text NOT NULL, "
            "amount numeric(12, 2) NOT NULL, created_at timestamptz NOT NULL)"
        )
        conn.execute(
            "INSERT INTO bench_rows SELECT i, 'customer ' || md5(i::text), "
            "round((random() * 100000)::numeric, 2), "
            "timestamptz '2024-01-01' + i * interval '37 seconds' "
            "FROM generate_series(1, %s) AS i",
            [rows],
        )
        conn.execute("ANALYZE bench_rows")


def setup_objects(rows: int) -> tuple[Any, str]:
    """A fresh owner's tenant with the datasource and saved query; returns (query, token)."""
    from apps.datasources import services as datasources
    from apps.queries import services as queries
    from apps.tenancy import services as tenancy
    from apps.tenancy.models import Tenant, User

    user = User.objects.filter(username=NAME).first() or User.objects.create_user(username=NAME)
    actor = tenancy.Actor(user=user)
    for old in Tenant.objects.filter(name=NAME, memberships__user=user):  # a previous run's
        tenancy.tenant_delete(actor=actor, tenant=old)
    tenant = tenancy.tenant_create(actor=actor, name=NAME)
    config = {"host": "127.0.0.1", "port": 5432, "database": DB, "user": "postgres"}
    source = datasources.datasource_create(
        actor=actor, tenant=tenant, name=NAME, type="postgresql", config=config
    )
    query = queries.query_create(
        actor=actor,
        tenant=tenant,
        name=NAME,
        datasource=source.id,
        body=SQL,
        params_schema=PARAMS_SCHEMA,
        row_limit=rows,
    )
    _, token = tenancy.auth_token_create(user=user)
    return query, token


# --- the four measured variants: each returns seconds ------------------------------------------------
def raw_cold(rows: int) -> float:
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(**RAW_CONNINFO) as conn:
        fetched = conn.execute(SQL, PARAMS).fetchall()
    elapsed = time.perf_counter() - started
    check(len(fetched), rows, "raw cold")
    return elapsed


def raw_warm(conn: Any, rows: int) -> float:
    started = time.perf_counter()
    fetched = conn.execute(SQL, PARAMS).fetchall()
    conn.rollback()  # end the implicit transaction, as a fresh connection would
    elapsed = time.perf_counter() - started
    check(len(fetched), rows, "raw warm")
    return elapsed


def endpoint_inprocess(client: Any, path: str, rows: int) -> float:
    started = time.perf_counter()
    response = client.post(path, {"params": PARAMS}, format="json")
    body = response.content
    elapsed = time.perf_counter() - started
    check_response(response.status_code, body, rows, "in-process")
    return elapsed


def endpoint_http(client: Any, path: str, rows: int) -> float:
    started = time.perf_counter()
    response = client.post(path, json={"params": PARAMS})
    body = response.content
    elapsed = time.perf_counter() - started
    check_response(response.status_code, body, rows, "HTTP")
    return elapsed


def service_only(query: Any, rows: int) -> float:
    from apps.queries import services

    started = time.perf_counter()
    result = services.query_run(query=query, params=PARAMS)
    elapsed = time.perf_counter() - started
    check(result["row_count"], rows, "service")
    return elapsed


def render_only(result: dict[str, Any]) -> float:
    started = time.perf_counter()
    render_body(result)
    return time.perf_counter() - started


def render_body(result: dict[str, Any]) -> bytes:
    from jetadmin.api.renderers import ResultRenderer  # what the run endpoint renders with

    return ResultRenderer().render(result)


def check(got: int, want: int, what: str) -> None:
    if got != want:
        raise SystemExit(f"{what}: got {got} rows, expected {want}")


def check_response(status: int, body: bytes, rows: int, what: str) -> None:
    if status != 200:
        raise SystemExit(f"{what}: HTTP {status}: {body[:500]!r}")
    data = json.loads(body)
    if data.get("truncated"):
        raise SystemExit(f"{what}: the result was truncated at {data.get('row_count')} rows")
    check(data["row_count"], rows, f"{what} row_count")
    check(len(data["rows"]), rows, f"{what} rows")


# --- the server --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server(port: int) -> Iterator[str]:
    import httpx

    log = Path(tempfile.mkdtemp(prefix="jetadmin-bench-")) / "serve.log"
    cmd = [sys.executable, "manage.py", "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=dict(os.environ),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start:\n{log.read_text(errors='replace')}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


# --- reporting -----------------------------------------------------------------------------------------
def statements_per_request(client: Any, path: str) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        client.post(path, {"params": PARAMS}, format="json")
    return [q["sql"] for q in ctx.captured_queries]


def profile(call: Callable[[], Any], times: int = 5, top: int = 20) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(times):
        call()
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true", help="cProfile the in-process endpoint")
    args = parser.parse_args()
    rows = args.rows

    ensure_database()
    import django

    django.setup()
    import httpx
    import psycopg
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from apps.queries import services

    call_command("migrate", verbosity=0)
    create_rows(rows)
    query, token = setup_objects(rows)
    path = f"/api/v1/tenants/{query.tenant_id}/queries/{query.id}/run/"
    result = services.query_run(query=query, params=PARAMS)  # what the view hands the renderer
    auth = f"Token {token}"
    inproc = APIClient()
    inproc.credentials(HTTP_AUTHORIZATION=auth)

    times: dict[str, list[float]] = {}
    with (
        server(free_port()) as base,
        httpx.Client(base_url=base, headers={"Authorization": auth}, timeout=60) as http,
        psycopg.connect(**RAW_CONNINFO) as warm,
    ):
        variants: dict[str, Callable[[], float]] = {
            "raw_cold": lambda: raw_cold(rows),
            "raw_warm": lambda: raw_warm(warm, rows),
            "service": lambda: service_only(query, rows),
            "render": lambda: render_only(result),
            "inproc": lambda: endpoint_inprocess(inproc, path, rows),
            "http": lambda: endpoint_http(http, path, rows),
        }
        for run in variants.values():  # warm up: imports, connections, caches, the server's first request
            run(), run()
        for _ in range(args.runs):
            for name, run in variants.items():
                times.setdefault(name, []).append(run())
    statements = statements_per_request(inproc, path)
    med = {name: statistics.median(values) * 1000 for name, values in times.items()}

    per_k = rows / 1000
    labels = {
        "raw_cold": "raw psycopg, cold (connect+run+close)",
        "raw_warm": "raw psycopg, warm connection",
        "service": "  part: query_run() service (connector)",
        "render": "  part: ResultRenderer of the result",
        "inproc": "endpoint in-process (APIClient)",
        "http": "endpoint over HTTP (uvicorn+httpx)",
    }
    print(f"jetadmin saved-query run bench: {rows} rows, median of {args.runs} runs")
    print(f"{'':40} {'ms':>9} {'ms/1k rows':>11} {'x raw cold':>11} {'x raw warm':>11}")
    for name, label in labels.items():
        ms = med[name]
        x_cold, x_warm = ms / med["raw_cold"], ms / med["raw_warm"]
        print(f"{label:40} {ms:9.1f} {ms / per_k:11.2f} {x_cold:11.2f} {x_warm:11.2f}")
    print(
        f"overhead over raw cold: in-process {(med['inproc'] - med['raw_cold']) / per_k:.2f} ms/1k rows, "
        f"HTTP {(med['http'] - med['raw_cold']) / per_k:.2f} ms/1k rows; "
        f"HTTP over in-process {med['http'] - med['inproc']:.1f} ms"
    )
    rest = med["inproc"] - med["service"] - med["render"]
    print(
        f"in-process = service {med['service']:.1f} + render {med['render']:.1f} "
        f"+ the rest (middleware, auth, tenant access, query lookup, test client) {rest:.1f} ms; "
        f"response body {len(render_body(result)) / 1e6:.2f} MB"
    )
    print(f"app-database statements per request: {len(statements)}")
    for sql in statements:
        print(f"  {sql[:150]}")
    if args.profile:
        print(profile(lambda: inproc.post(path, {"params": PARAMS}, format="json")))


if __name__ == "__main__":
    main()
