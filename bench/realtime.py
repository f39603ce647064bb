"""Benchmark: run streams over websockets on the distributed set.

    python bench/realtime.py [--clients 100] [--watchers 10] [--runs 15] [--only latency|cost]

Starts the distributed set as bench/load.py does (``manage.py serve --workers 2``, two ``celery worker``,
``celery beat``, PostgreSQL + Redis) and measures:

* **Latency**: ``--clients`` websocket clients (the ``websockets`` library) join one run of 40 short
  delays in a row; for every journal event each client receives, the time from the event's row being
  written (its ``at``) to the client's receipt. Prints p50, p95 and max over all (client, event) pairs,
  and checks every client got every event once, in order.
* **Publishing cost**: W1 (a 40-node chain of trivial nodes, as bench/engine.py), started through the
  API with no watcher and with ``--watchers`` clients joined to each run, interleaved; the run's own
  duration (created → ended, from the database), median of ``--runs`` each, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import DB, PG, _request, cpu_by_kind, distributed, http_request  # noqa: E402

# W1 behind a 1 s gate, so that watchers have joined before the chain runs; timed from the gate's end.
GATED_W1 = {
    "nodes": [{"id": "n0", "type": "start"}, {"id": "gate", "type": "delay", "inputs": {"seconds": 1.0}}]
    + [{"id": f"n{i}", "type": "fanout"} for i in range(1, 40)],
    "edges": [{"from": "n0", "to": "gate"}, {"from": "gate", "to": "n1"}]
    + [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(1, 39)],
}
DELAYS = {  # a 2 s gate (every client joins meanwhile), then 40 short delays in a row
    "nodes": [{"id": "start", "type": "start"}, {"id": "gate", "type": "delay", "inputs": {"seconds": 2}}]
    + [{"id": f"d{i}", "type": "delay", "inputs": {"seconds": 0.02}} for i in range(40)],
    "edges": [{"from": "start", "to": "gate"}, {"from": "gate", "to": "d0"}]
    + [{"from": f"d{i}", "to": f"d{i + 1}"} for i in range(39)],
}


def api(port: int, token: str, path: str, body: Any) -> Any:
    raw = http_request("POST", "127.0.0.1", port, path, token, body)

    async def send() -> Any:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        status, data = await _request(reader, writer, raw)
        writer.close()
        if status >= 400:
            raise SystemExit(f"POST {path} answered {status}: {data[:300]!r}")
        return json.loads(data)

    return asyncio.run(send())


async def client(
    port: int, token: str, iid: str, ready: asyncio.Event | None = None
) -> list[tuple[int, float]]:
    """Join ``iid``; (seq, receipt time) of every event until the run's end."""
    got: list[tuple[int, float]] = []
    async with connect(f"ws://127.0.0.1:{port}/ws/", origin=f"http://127.0.0.1:{port}") as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"event": "authenticate", "data": {"token": token}}))
        await ws.recv()
        await ws.send(json.dumps({"event": "workflow_run_join", "data": {"instance_id": iid}}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
            if msg["event"] == "workflow_run_joined" and ready is not None:
                ready.set()
            if "seq" in msg["data"]:
                got.append((msg["data"]["seq"], time.time()))
            if msg["event"] == "workflow_status_update" and msg["data"]["status"] in ("succeeded", "failed"):
                return got


def written_at(iid: str) -> dict[int, float]:
    with psycopg.connect(f"{PG}/{DB}") as conn:
        rows = conn.execute(
            "SELECT seq, extract(epoch FROM at) FROM workflows_instanceevent WHERE instance_id = %s", [iid]
        ).fetchall()
    return {int(seq): float(at) for seq, at in rows}


def run_duration(iid: str) -> float:
    """ms from the gate node's end to the run's end."""
    with psycopg.connect(f"{PG}/{DB}") as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM i.ended_at - r.ended_at), i.status FROM workflows_workflowinstance i"
            " JOIN workflows_noderun r ON r.instance_id = i.id AND r.node_id = 'gate' WHERE i.id = %s",
            [iid],
        ).fetchone()
    assert row is not None and row[1] == "succeeded", row
    return float(row[0]) * 1000


def wait_done(iid: str, timeout: float = 60) -> float:
    """Wait for the run's end, polling on one connection (a new connection per poll would start a
    PostgreSQL backend on the bench's cores while an unwatched run is still going)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        while time.monotonic() < deadline:
            status = conn.execute(
                "SELECT status FROM workflows_workflowinstance WHERE id = %s", [iid]
            ).fetchone()
            if status and status[0] in ("succeeded", "failed"):
                return run_duration(iid)
            time.sleep(0.05)
    raise SystemExit(f"run {iid} did not end")


def latency(port: int, acct: dict[str, str], clients: int) -> None:
    base = f"/api/v1/tenants/{acct['tenant']}/workflows"
    flow = api(port, acct["token"], f"{base}/", {"name": "delays", "graph": DELAYS})
    iid = api(port, acct["token"], f"{base}/{flow['id']}/execute/", {})["instance_id"]

    async def go() -> tuple[list[list[tuple[int, float]]], float]:
        readies = [asyncio.Event() for _ in range(clients)]
        tasks = [asyncio.create_task(client(port, acct["token"], iid, r)) for r in readies]
        await asyncio.gather(*(r.wait() for r in readies))
        all_joined = time.time()
        return list(await asyncio.gather(*tasks)), all_joined

    results, all_joined = asyncio.run(go())
    at = written_at(iid)
    expected = sorted(at)
    delays = []
    for got in results:
        assert [seq for seq, _ in got] == expected, "a client missed or repeated an event"
        # Events written before every client had joined were replayed, not streamed: left out.
        delays += [(received - at[seq]) * 1000 for seq, received in got if at[seq] > all_joined + 0.05]
    delays.sort()
    q = statistics.quantiles(delays, n=100)
    print(
        f"latency, {clients} clients, {len(delays) // clients} streamed events each: row written -> client "
        f"receipt p50 {q[49]:.1f} ms | p95 {q[94]:.1f} ms | max {delays[-1]:.1f} ms "
        f"(every client got all {len(expected)} events, in order)"
    )


def publishing_cost(
    port: int, acct: dict[str, str], watchers: int, runs: int, roots: dict[str, list[int]]
) -> None:
    base = f"/api/v1/tenants/{acct['tenant']}/workflows"
    flow = api(port, acct["token"], f"{base}/", {"name": "gated W1", "graph": GATED_W1})
    alone: list[float] = []
    watched: list[float] = []
    cpu: dict[str, dict[str, float]] = {"alone": {}, "watched": {}}

    async def watch(iid: str) -> None:
        await asyncio.gather(*(client(port, acct["token"], iid) for _ in range(watchers)))

    def measured(kind: str, durations: list[float], watch_it: bool) -> None:
        before = cpu_by_kind(roots)
        iid = api(port, acct["token"], f"{base}/{flow['id']}/execute/", {})["instance_id"]
        if watch_it:
            asyncio.run(watch(iid))
        durations.append(wait_done(iid))
        after = cpu_by_kind(roots)
        for name, seconds in after.items():
            cpu[kind][name] = cpu[kind].get(name, 0.0) + seconds - before[name]

    for _ in range(runs):
        measured("alone", alone, False)
        measured("watched", watched, True)
    a, w = statistics.median(alone), statistics.median(watched)
    # Each watched run against the unwatched run just before it: on a shared machine whose speed drifts
    # during the bench, the median of these pairs is steadier than the ratio of the two medians.
    paired = statistics.median(wr / ar for ar, wr in zip(alone, watched, strict=True))
    print(
        f"W1 40-node chain (gate end -> run end, median of {runs}): alone {a:.1f} ms | "
        f"with {watchers} watchers {w:.1f} ms | ratio {w / a:.2f} "
        f"(median of paired ratios {paired:.2f})"
    )
    for kind, by_process in cpu.items():  # the bench's own CPU includes its watchers' clients
        parts = " | ".join(f"{name} {seconds * 1000 / runs:.1f}" for name, seconds in by_process.items())
        print(f"  CPU ms per run, {kind}: {parts}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--watchers", type=int, default=10)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--only", choices=["latency", "cost"], help="measure just one of the two")
    args = parser.parse_args()
    logdir = Path(tempfile.mkdtemp(prefix="jetadmin-realtime-"))
    print(f"logs in {logdir}")
    with distributed(args, logdir) as s:
        port, acct = s["port"], s["account"]
        print(
            f"== distributed: serve --workers {args.web_workers}, {args.workers} x celery worker -c "
            f"{args.concurrency}, beat; PostgreSQL + Redis (channels-redis)"
        )
        if args.only != "cost":
            latency(port, acct, args.clients)
        if args.only != "latency":
            publishing_cost(port, acct, args.watchers, args.runs, s["roots"])


if __name__ == "__main__":
    main()
