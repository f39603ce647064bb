"""Structured logs: JSON lines carrying the request id, tenant, run, node and attempt; text lines keep
the context too; and a real server (and, on PostgreSQL, real workers) started with LOG_FORMAT=json
writes nothing but JSON, with the engine's lines about a failing node naming it."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from apps.tenancy import services as tenancy
from apps.tenancy.models import Tenant, User
from apps.workflows import services
from apps.workflows.models import WorkflowInstance
from jetadmin import embedded, logs
from tests.conftest import _stop

pytestmark = pytest.mark.django_db(transaction=True)

FAILING = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "boom", "type": "transform", "inputs": {"data": "{{input.rows}}"}},
    ],
    "edges": [{"source": "start", "target": "boom"}],
}


class Lines(logging.Handler):
    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(formatter)
        self.addFilter(logs.ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_json_and_text_lines_carry_the_bound_context() -> None:
    log = logging.getLogger("jetadmin.test")
    as_json, as_text = Lines(logs.JsonFormatter()), Lines(logs.TextFormatter())
    for handler in (as_json, as_text):
        log.addHandler(handler)
    try:
        with logs.bind(request_id="r-1", tenant="t-1"), logs.bind(run="i-1", node="n1", attempt=2):
            log.warning("node failed (%s): %s", "bad", "it <broke>")
        log.info("outside")
    finally:
        for handler in (as_json, as_text):
            log.removeHandler(handler)
    first, second = (json.loads(line) for line in as_json.lines)
    assert first["message"] == "node failed (bad): it <broke>" and first["level"] == "warning"
    assert {k: first[k] for k in ("request_id", "tenant", "run", "node", "attempt")} == {
        "request_id": "r-1",
        "tenant": "t-1",
        "run": "i-1",
        "node": "n1",
        "attempt": 2,
    }
    assert "run" not in second and second["message"] == "outside"
    assert as_text.lines[0].endswith("[tenant=t-1 run=i-1 node=n1 attempt=2]")


def test_a_request_gets_an_id_and_its_tenant_on_every_line(owner_tenant: tuple[User, Tenant]) -> None:
    user, tenant = owner_tenant
    handler = Lines(logs.JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        client = Client()
        client.force_login(user)
        missing = client.get(
            f"/api/v1/tenants/{tenant.id}/workflows/00000000-0000-0000-0000-000000000000/",
            HTTP_X_REQUEST_ID="abc-123",
        )
        odd = client.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces\n")
    finally:
        logging.getLogger().removeHandler(handler)
    assert missing.status_code == 404 and missing["X-Request-ID"] == "abc-123"
    assert odd["X-Request-ID"] != "bad id with spaces\n" and len(odd["X-Request-ID"]) == 32
    lines = [json.loads(line) for line in handler.lines]
    not_found = [entry for entry in lines if entry["logger"] == "django.request"]
    assert not_found and not_found[0]["request_id"] == "abc-123"
    assert not_found[0]["tenant"] == str(tenant.id) and not_found[0]["user"] == str(user.pk)


def test_a_server_started_with_log_format_json_writes_only_json(
    tmp_path: Path, serve_process: Any, owner_tenant: tuple[User, Tenant]
) -> None:
    user, tenant = owner_tenant
    embedded.stop()
    workflow = services.workflow_create(
        actor=tenancy.Actor(user=user), tenant=tenant, name="Broken", graph=FAILING
    )
    _, raw = tenancy.auth_token_create(user=user)
    worker_logs: list[Path] = []
    procs: list[Any] = []
    if connection.vendor == "postgresql":  # distributed: the node runs in a worker process
        from tests.workflows.test_distributed import start_workers

        procs = start_workers(tmp_path, count=1, concurrency=2, LOG_FORMAT="json")
        worker_logs = [tmp_path / "worker0.log"]
    try:
        server = serve_process(LOG_FORMAT="json")
        request = urllib.request.Request(  # noqa: S310 - the local test server
            f"{server.url}/api/v1/tenants/{tenant.id}/workflows/{workflow.id}/execute/",
            data=json.dumps({"input": {"rows": "not a list"}}).encode(),
            headers={
                "Authorization": f"Token {raw}",
                "Content-Type": "application/json",
                "X-Request-ID": "run-it-1",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            assert response.status == 202 and response.headers["X-Request-ID"] == "run-it-1"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{server.url}/api/v1/tenants/{tenant.id}/nope/", timeout=10)  # noqa: S310
        run = WorkflowInstance.objects.get(workflow=workflow)
        deadline = time.monotonic() + 60
        while WorkflowInstance.objects.get(pk=run.pk).status not in ("failed", "succeeded"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        for proc in procs:
            _stop(proc, timeout=20)
    entries = []
    for path in [server.log, *worker_logs]:
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    entries.append(json.loads(line))  # every line is one JSON object
                except ValueError:
                    pytest.fail(f"{path.name} has a line that is not JSON: {line!r}")
    assert any(e["logger"] == "uvicorn.access" for e in entries)
    failed = [e for e in entries if e["message"].startswith("node failed")]
    assert failed, entries[-20:]
    assert failed[0]["run"] == str(run.id) and failed[0]["node"] == "boom" and failed[0]["attempt"] == 1
    assert failed[0]["tenant"] == str(tenant.id)
