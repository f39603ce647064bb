"""Run streams across processes: two ``manage.py serve`` web processes, two ``celery worker`` processes and
``celery beat`` on PostgreSQL and Redis. A run is started through web-1's API; a websocket client (the
``websockets`` library, not the test communicator) connected to web-2 receives every event of it, in
order, with contiguous ``seq``. PostgreSQL pass only, like the other distributed tests."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from apps.tenancy import services as tenancy
from apps.workflows.models import InstanceEvent
from tests.conftest import ROOT, _stop, subprocess_env
from tests.workflows.test_distributed import pytestmark as distributed_marks
from tests.workflows.test_distributed import workers  # noqa: F401 - the fixture
from tests.workflows.test_streams import SLOW

pytestmark = distributed_marks


def api(url: str, token: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - a local test server
        url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
        return json.loads(response.read())


def test_a_client_on_web_2_hears_every_event_of_a_run_started_on_web_1(
    workers,  # noqa: F811
    serve_process,
    owner_tenant,
    tmp_path: Path,
):
    workers(count=2, concurrency=2)
    beat = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "jetadmin",
            "beat",
            "-l",
            "warning",
            "-s",
            str(tmp_path / "beat"),
        ],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=(tmp_path / "beat.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        web1, web2 = serve_process(), serve_process()
        user, tenant = owner_tenant
        token = tenancy.auth_token_create(user=user)[1]
        ws_url = web2.url.replace("http://", "ws://") + "/ws/"
        with connect(ws_url, additional_headers={"Origin": web2.url}, open_timeout=10) as ws:
            ws.send(json.dumps({"event": "authenticate", "data": {"token": token}}))
            assert json.loads(ws.recv(timeout=10))["event"] == "authenticated"
            started = api(
                web1.url, token, "POST", f"/api/v1/tenants/{tenant.id}/workflows/test/", {"graph": SLOW}
            )
            iid = started["instance_id"]
            ws.send(json.dumps({"event": "workflow_run_join", "data": {"instance_id": iid}}))
            joined = json.loads(ws.recv(timeout=10))
            assert joined["event"] == "workflow_run_joined", joined
            got, arrived = [], []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                msg = json.loads(ws.recv(timeout=30))
                got.append(msg)
                arrived.append(time.monotonic())
                if msg["event"] == "workflow_status_update" and msg["data"]["status"] == "succeeded":
                    break
    finally:
        _stop(beat)
    rows = list(
        InstanceEvent.objects.filter(instance_id=iid).order_by("seq").values_list("seq", "type", "node_id")
    )
    assert [m["data"]["seq"] for m in got] == [seq for seq, _, _ in rows] == list(range(1, len(rows) + 1))
    assert len(rows) > 60  # 14 nodes, 12 of them delays that wait and wake
    updates = [
        (m["data"]["node_id"], m["data"]["status"]) for m in got if m["event"] == "workflow_node_update"
    ]
    assert updates == [
        (node, kind.removeprefix("node.")) for _, kind, node in rows if kind.startswith("node.")
    ]
    assert arrived[-1] - arrived[0] > 0.4  # the delays: most of the run was streamed live, not replayed
