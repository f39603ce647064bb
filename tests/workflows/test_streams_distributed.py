"""Run streams across processes: two ``manage.py serve`` web processes, two ``celery worker`` processes and
``celery beat`` on PostgreSQL and Redis. A run is started through web-1's API; a websocket client (the
``websockets`` library, not the test communicator) connected to web-2 receives every event of it, in
order, with contiguous ``seq``. Then a widget connected on web-1 and on web-2 with the same parameters
shares one run, and both hear its processed data from the workers. PostgreSQL pass only, like the
other distributed tests."""

from __future__ import annotations

import contextlib
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
from tests.widgets.conftest import BAR, ROWS
from tests.widgets.test_bridge import CHART
from tests.widgets.test_bridge import SLOW as WIDGET_SLOW
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
        widget_messages = widget_on_both(web1.url, web2.url, token, str(tenant.id))
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

    on_web1, on_web2 = widget_messages
    assert on_web1[0]["event"] == on_web2[0]["event"] == "widget_workflow_connected"
    shared = on_web1[0]["data"]["instance_id"]
    assert on_web2[0]["data"]["instance_id"] == shared  # same widget, same parameters: one run
    for heard in (on_web1, on_web2):
        assert {m["data"]["instance_id"] for m in heard} == {shared}
        assert heard[-1]["data"]["status"] == "succeeded" and heard[-1]["data"]["processed_data"] == CHART
        drawn = [m["data"] for m in heard if m["event"] == "widget_context_update"]
        assert drawn and drawn[0]["processed_data"] == CHART  # processed by a worker, heard live


def widget_on_both(url1: str, url2: str, token: str, tid: str) -> list[list[dict[str, Any]]]:
    flow = api(
        url1, token, "POST", f"/api/v1/tenants/{tid}/workflows/", {"name": "Sales", "graph": WIDGET_SLOW}
    )
    body = {
        "name": "Sales",
        "type": "bar",
        "config": BAR,
        "workflow": flow["id"],
        "workflow_config": {"input_params": {"rows": ROWS, "limit": 3}},
    }
    widget = api(url1, token, "POST", f"/api/v1/tenants/{tid}/widgets/", body)
    heard: list[list[dict[str, Any]]] = []
    with contextlib.ExitStack() as stack:
        clients = [
            stack.enter_context(
                connect(
                    url.replace("http://", "ws://") + "/ws/",
                    additional_headers={"Origin": url},
                    open_timeout=10,
                )
            )
            for url in (url1, url2)
        ]
        for ws in clients:
            ws.send(json.dumps({"event": "authenticate", "data": {"token": token}}))
            assert json.loads(ws.recv(timeout=10))["event"] == "authenticated"
            connect_msg = {"widget_id": widget["id"], "mode": "execute"}
            ws.send(json.dumps({"event": "widget_workflow_connect", "data": connect_msg}))
            heard.append([json.loads(ws.recv(timeout=10))])
        for ws, got in zip(clients, heard, strict=True):
            while got[-1]["event"] != "widget_workflow_status":
                got.append(json.loads(ws.recv(timeout=30)))
    return heard
