"""Benchmark: dashboards on the embedded default (what `make run` serves).

    python bench/dashboards.py [--requests 100] [--clients 20] [--seconds 60] [--every 5]

1. Server time of the demo "Sales" dashboard grown to 12 widgets: p50/p95 over ``--requests`` in-process
   requests (middleware, session, tenant check, queries, template), and its ratio to the login page's
   time in the same run (a page that reads no tenant data).
2. SQL statements of a dashboard page with 5, 10, 25 and 50 widgets (goal: the same for all).
3. ``--clients`` simulated browsers against ``manage.py serve``: each loads the dashboard page, opens a
   websocket, connects every widget (``execute``), and every ``--every`` seconds reloads the page and
   connects them again, for ``--seconds``; prints pages loaded, HTTP errors (503 included), websocket
   errors, widget updates received, and the runs started: many viewers share one run per refresh
   interval (``--refresh``, the dashboard's), so about seconds / interval runs, not one per viewer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(tempfile.mkdtemp(prefix="jetadmin-dashboards-"))
os.environ.update(
    DJANGO_SETTINGS_MODULE="jetadmin.settings", LOG_LEVEL="WARNING", JETADMIN_DATA_DIR=str(DATA)
)
os.environ.pop("DATABASE_URL", None)
os.environ.pop("REDIS_URL", None)


def manage(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return out.stdout


def setup(refresh_s: int) -> dict[str, Any]:
    """A fresh demo, its Sales dashboard grown to 12 widgets, and boards of 5 to 50 widgets."""
    manage("migrate", "--noinput")
    manage("bootstrap_demo")
    import django

    django.setup()
    from apps.dashboards import services as dashboards
    from apps.dashboards.models import Dashboard
    from apps.tenancy.models import User
    from apps.tenancy.services import Actor
    from apps.widgets import services as widgets
    from apps.workflows.models import Workflow
    from jetadmin.demo import DEMO_PARAMS

    user = User.objects.get(username="admin")
    sales = Dashboard.objects.get(name="Sales")
    tenant, actor = sales.tenant, Actor(user=user)
    workflow = Workflow.objects.get(tenant=tenant, name="Monthly sales report")

    def widget(name: str) -> Any:
        return widgets.widget_create(
            actor=actor,
            tenant=tenant,
            name=name,
            type="stat",
            config={"value": "{{ctx.latest.revenue}}", "label": name},
            workflow=workflow.id,
            workflow_config={"input_params": DEMO_PARAMS},
        )

    layout = list(sales.layout)
    for i in range(12 - len(layout)):
        layout.append(
            {"widget": str(widget(f"Extra {i}").id), "x": (i % 4) * 3, "y": 8 + i // 4 * 2, "w": 3, "h": 2}
        )
    dashboards.dashboard_update(actor=actor, dashboard=sales, layout=layout, refresh_s=refresh_s)
    boards = {}
    for n in (5, 10, 25, 50):
        made = [widget(f"{n}-{i}") for i in range(n)]
        place = [
            {"widget": str(w.id), "x": (i % 4) * 3, "y": i // 4 * 2, "w": 3, "h": 2}
            for i, w in enumerate(made)
        ]
        boards[n] = dashboards.dashboard_create(actor=actor, tenant=tenant, name=f"Board {n}", layout=place)
    return {"tenant": tenant, "sales": sales, "boards": boards, "user": user}


def page_times(world: dict[str, Any], requests: int) -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    tenant = world["tenant"]
    client = Client()
    client.force_login(world["user"])

    def timed(who: Client, url: str) -> tuple[float, float]:
        for _ in range(3):
            who.get(url)
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            assert who.get(url).status_code == 200
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        return statistics.median(times), times[int(len(times) * 0.95) - 1]

    base = timed(Client(), "/login/")[0]
    p50, p95 = timed(client, reverse("dashboard-detail", args=[tenant.id, world["sales"].id]))
    print(
        f"Sales dashboard (12 widgets): p50 {p50:.1f} ms, p95 {p95:.1f} ms; login page p50 {base:.2f} ms "
        f"(x{p50 / base:.1f}); goal p50 <= 100 ms: {'met' if p50 <= 100 else 'MISSED'}"
    )
    counts = {}
    for n, board in world["boards"].items():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("dashboard-detail", args=[tenant.id, board.id])).status_code == 200
        counts[n] = len(queries)
    same = len(set(counts.values())) == 1
    print(f"SQL statements per dashboard page by widget count: {counts} ({'constant' if same else 'GROWS'})")


async def browser(
    url: str,
    page: str,
    cookie: str,
    widgets: list[str],
    board: str,
    stop: float,
    every: float,
    stats: dict[str, Any],
) -> None:
    from websockets.asyncio.client import connect

    host = url.split("//", 1)[1]
    headers = {"Cookie": cookie}

    def load() -> int:
        request = urllib.request.Request(url + page, headers=headers)  # noqa: S310 - the local server
        try:
            with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310 - the local server
                r.read()
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    async with connect(f"ws://{host}/ws/", additional_headers=headers, origin=url) as ws:  # type: ignore[arg-type]

        async def reader() -> None:
            async for raw in ws:
                message = json.loads(raw)
                event = message["event"]
                if event in ("error", "widget_workflow_error"):
                    stats["ws_errors"].append(message["data"])
                elif event in ("widget_context_update", "widget_workflow_status"):
                    stats["updates"] += 1
                    if message["data"].get("instance_id"):
                        stats["runs"].add(message["data"]["instance_id"])

        task = asyncio.create_task(reader())
        while time.monotonic() < stop:
            status = await asyncio.to_thread(load)
            stats["pages"] += 1
            if status != 200:
                stats["http_errors"].append(status)
            for wid in widgets:
                await ws.send(
                    json.dumps(
                        {
                            "event": "widget_workflow_connect",
                            "data": {"widget_id": wid, "mode": "execute", "dashboard_id": board},
                        }
                    )
                )
            await asyncio.sleep(every)
        task.cancel()


def load_test(world: dict[str, Any], clients: int, seconds: float, every: float) -> None:
    import socket

    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore

    from apps.widgets.models import WidgetRun

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (DATA / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1)  # noqa: S310
                break
            except OSError:
                time.sleep(0.2)
        session = SessionStore()
        user = world["user"]
        session.update(
            {
                "_auth_user_id": str(user.pk),
                "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
                "_auth_user_hash": user.get_session_auth_hash(),
            }
        )
        session.save()
        cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
        sales = world["sales"]
        widgets = [str(item["widget"]) for item in sales.layout]
        page = f"/t/{world['tenant'].id}/dashboards/{sales.id}/"
        runs_before = WidgetRun.objects.values("instance").distinct().count()
        stats: dict[str, Any] = {"pages": 0, "http_errors": [], "ws_errors": [], "updates": 0, "runs": set()}
        stop = time.monotonic() + seconds

        async def all_browsers() -> None:
            await asyncio.gather(
                *[
                    browser(url, page, cookie, widgets, str(sales.id), stop, every, stats)
                    for _ in range(clients)
                ]
            )

        started = time.monotonic()
        asyncio.run(all_browsers())
        took = time.monotonic() - started
        runs = WidgetRun.objects.values("instance").distinct().count() - runs_before
        print(
            f"{clients} browsers x {len(widgets)} widgets, every {every:g} s for {took:.0f} s: "
            f"{stats['pages']} pages loaded, "
            f"HTTP errors {len(stats['http_errors'])} {stats['http_errors'][:5]}, "
            f"websocket errors {len(stats['ws_errors'])} {stats['ws_errors'][:3]}, {stats['updates']} widget "
            f"updates, {runs} runs started (the dashboard refreshes every {world['sales'].refresh_s} s)"
        )
    finally:
        server.terminate()
        server.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--every", type=float, default=5)
    parser.add_argument("--refresh", type=int, default=5, help="the dashboard's refresh interval (s)")
    args = parser.parse_args()
    world = setup(args.refresh)
    page_times(world, args.requests)
    load_test(world, args.clients, args.seconds, args.every)


if __name__ == "__main__":
    main()
