"""Benchmark: the workflow editor with a 200-node graph, in Chromium, on the embedded default.

    python bench/editor.py [--size 200] [--frames 240]

For the big graph and, as the baseline in the same run, the 2-node graph of a new workflow:
1. open: from navigation start until every node is drawn (ms);
2. frame times while the user pans (a mouse drag across the canvas in small steps) and zooms (Ctrl +
   wheel, in and out): requestAnimationFrame deltas, p50 / p95 / max (goal: p95 <= 33 ms, 30 fps);
3. the ratio of the big graph's p95 to the baseline's.
"""

from __future__ import annotations

import argparse
import itertools
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
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def big_graph(size: int = 200) -> dict[str, Any]:
    """``size`` nodes: start, then 20-row columns of transforms, each fed by its left neighbour; two notes."""
    nodes: list[dict[str, Any]] = [
        {"id": "start", "type": "start", "inputs": {}, "position": {"x": 40, "y": 900}}
    ]
    edges: list[dict[str, Any]] = []
    for i in range(size - 1):
        parent = "start" if i < 20 else f"t{i - 20}"
        nodes.append(
            {
                "id": f"t{i}",
                "type": "transform",
                "label": f"Step {i}",
                "inputs": {"data": f"{{{{{parent}.result}}}}", "limit": i + 1},
                "position": {"x": 300 + (i // 20) * 240, "y": 40 + (i % 20) * 90},
            }
        )
        edges.append({"source": parent, "target": f"t{i}"})
    notes = [
        {"id": "n1", "text": "The first column reads the input.", "position": {"x": 40, "y": 40}},
        {"id": "n2", "text": "Each step keeps one row more.", "position": {"x": 40, "y": 300}},
    ]
    return {"nodes": nodes, "edges": edges, "notes": notes}


def setup(size: int) -> tuple[str, str, str]:
    """A fresh demo; returns (tenant id, big workflow id, small workflow id)."""
    for args in (("migrate", "--noinput"), ("bootstrap_demo",)):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=True, capture_output=True)
    import django

    django.setup()
    from apps.tenancy.models import Membership
    from apps.tenancy.services import Actor
    from apps.workflows import services
    from apps.workflows.views import NEW_GRAPH

    membership = Membership.objects.select_related("tenant", "user").get(user__username="admin")
    actor = Actor(user=membership.user)
    big = services.workflow_create(actor=actor, tenant=membership.tenant, name="Big", graph=big_graph(size))
    small = services.workflow_create(actor=actor, tenant=membership.tenant, name="Small", graph=NEW_GRAPH)
    return str(membership.tenant.id), str(big.id), str(small.id)


RECORDER = """() => { window.__frames = []; window.__stop = false;
  const loop = (t) => { window.__frames.push(t); if (!window.__stop) requestAnimationFrame(loop); };
  requestAnimationFrame(loop); }"""


def measure(page: Any, url: str, frames: int, expected: int) -> dict[str, float]:
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_function(
        f"document.querySelectorAll('[data-testid=graph] [data-node-id]').length === {expected}"
    )
    opened = (time.perf_counter() - started) * 1000
    box = page.get_by_test_id("graph").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    view = "() => [window.JetEditor.editor.canvas_x, window.JetEditor.editor.zoom]"
    before = page.evaluate(view)
    page.evaluate(RECORDER)
    steps = frames // 2
    page.mouse.move(box["x"] + 4, box["y"] + 4)  # an empty corner: dragging there pans
    page.mouse.down()
    for i in range(steps):
        page.mouse.move(box["x"] + 4 + (i % 60) * 6, box["y"] + 4 + (i % 40) * 4)
    page.mouse.up()
    panned = page.evaluate(view)
    page.mouse.move(cx, cy)
    page.keyboard.down("Control")
    for i in range(steps // 4):
        page.mouse.wheel(0, -100 if (i // 10) % 2 == 0 else 100)
        page.wait_for_timeout(16)
    page.keyboard.up("Control")
    zoomed = page.evaluate("() => window.JetEditor.editor.zoom")
    times = page.evaluate("() => { window.__stop = true; return window.__frames; }")
    assert panned[0] != before[0], "the drag did not pan the canvas"
    assert zoomed != panned[1], "the wheel did not zoom"
    deltas = sorted(b - a for a, b in itertools.pairwise(times))
    return {
        "open_ms": opened,
        "frames": len(deltas),
        "p50": statistics.median(deltas),
        "p95": deltas[int(len(deltas) * 0.95) - 1],
        "max": deltas[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--frames", type=int, default=240)
    opts = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="jetadmin-editor-"))  # a fresh embedded default (the tests import us)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="jetadmin.settings", LOG_LEVEL="WARNING", JETADMIN_DATA_DIR=str(data)
    )
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    tenant, big, small = setup(opts.size)
    port = 8765
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)  # noqa: S310 - local server
                break
            except OSError:
                time.sleep(0.2)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(base + "/login/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", "jetadmin-demo")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(lambda u: "/login/" not in u)
            results = {}
            for name, wid, count in (
                ("baseline (2 nodes)", small, 2),
                (f"big ({opts.size} nodes)", big, opts.size),
            ):
                measure(page, f"{base}/t/{tenant}/workflows/{wid}/", opts.frames, count)  # warm caches
                results[name] = measure(page, f"{base}/t/{tenant}/workflows/{wid}/", opts.frames, count)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    for name, r in results.items():
        print(
            f"{name:<20} open {r['open_ms']:7.0f} ms   frames {r['frames']:4.0f}   "
            f"p50 {r['p50']:5.1f} ms   p95 {r['p95']:5.1f} ms   max {r['max']:6.1f} ms"
        )
    (baseline, big_r) = results.values()
    print(
        f"p95 ratio big/baseline: {big_r['p95'] / baseline['p95']:.2f}   goal p95 <= 33 ms: "
        f"{'met' if big_r['p95'] <= 33 else 'MISSED'}"
    )
    print(f"open ratio big/baseline: {big_r['open_ms'] / baseline['open_ms']:.2f}")


if __name__ == "__main__":
    main()
