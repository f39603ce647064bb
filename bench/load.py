"""Benchmark: many clients starting runs through the API, on the distributed set and the embedded default.

    python bench/load.py [--runs 1000] [--clients 32,128] [--web-workers 2] [--workers 2]
                         [--concurrency 2] [--only distributed|embedded]

The distributed set runs as real processes, as docker-compose describes it: ``manage.py serve
--workers W`` (uvicorn), ``celery worker`` x N, ``celery beat``, on PostgreSQL (database
``jetadmin_load``) and Redis (db 13). The embedded default is one ``manage.py serve`` on SQLite.

For each client count C it fires ``--runs`` ``POST …/workflows/{id}/execute/`` (async) from C concurrent
keep-alive HTTP clients at a 3-node workflow (start → transform → end) and prints: requests refused
(anything but 202), accepted starts/s, completed runs/s (until the last accepted run has ended), the
execute call's p50/p95, and the peak number of PostgreSQL connections. Unloaded, it also measures the
execute call (async and sync) one request at a time.

In the same run it measures the **baseline** (bench/baseline.py, loaded with ``JETADMIN_NODE_MODULES``):
an endpoint on the same server doing the least an API-started run needs — authenticate, insert one row,
publish one Celery message that a worker acknowledges with one UPDATE — under the same load. The figure
that matters is jetadmin's completed runs/s as a share of the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB = "jetadmin_load"
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/13")
GRAPH = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "pick", "type": "transform", "inputs": {"data": "{{input.rows}}", "limit": 2}},
        {"id": "end", "type": "end", "inputs": {"output": "{{pick.result}}"}},
    ],
    "edges": [{"from": "start", "to": "pick"}, {"from": "pick", "to": "end"}],
}
BASELINE_TABLE = "CREATE TABLE bench_baseline (id bigserial PRIMARY KEY, done boolean NOT NULL DEFAULT false)"
CHAIN = {  # 40 trivial nodes in a row (bench/engine.py's W1), for the sync execute comparison
    "nodes": [{"id": "n0", "type": "start"}] + [{"id": f"n{i}", "type": "fanout"} for i in range(1, 40)],
    "edges": [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(39)],
}
RUN_INPUT = {"rows": [{"n": 1}, {"n": 2}, {"n": 3}]}
ACCOUNT = """
import json
from apps.tenancy import services
from apps.tenancy.models import User
from apps.workflows import services as workflows
user = User.objects.create_user(username="load", email="load@example.com", password="load-Pass-1234")
actor = services.Actor(user=user)
tenant = services.tenant_create(actor=actor, name="Load")
_, raw = services.auth_token_create(user=user)
flow = workflows.workflow_create(actor=actor, tenant=tenant, name="load", graph=json.loads({graph!r}))
chain = workflows.workflow_create(actor=actor, tenant=tenant, name="chain", graph=json.loads({chain!r}))
print("LOAD-ACCOUNT " + json.dumps({{
    "tenant": str(tenant.id), "token": raw, "workflow": str(flow.id), "chain": str(chain.id)
}}))
"""


# --- processes ------------------------------------------------------------------------------------------
@dataclass
class Procs:
    logdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()


def manage(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if out.returncode:
        raise SystemExit(f"manage.py {args[0]} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def account(env: dict[str, str]) -> dict[str, str]:
    out = manage(env, "shell", "-c", ACCOUNT.format(graph=json.dumps(GRAPH), chain=json.dumps(CHAIN)))
    line = next(line for line in out.splitlines() if line.startswith("LOAD-ACCOUNT "))
    return dict(json.loads(line.removeprefix("LOAD-ACCOUNT ")))


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode})")
        with contextlib.suppress(OSError), urllib.request.urlopen(url + "/healthz", timeout=2) as r:  # noqa: S310
            if r.status == 200:
                return
        time.sleep(0.2)
    raise SystemExit("the server did not come up")


def wait_log(procs: Procs, names: list[str], text: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not all(text in procs.log(n) for n in names):
        if time.monotonic() > deadline:
            raise SystemExit(
                f"{names} never logged {text!r}:\n" + "\n".join(procs.log(n)[-2000:] for n in names)
            )
        time.sleep(0.2)


# --- CPU accounting -------------------------------------------------------------------------------------
TICK = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, str, float]]:
    """``{pid: (ppid, command name, cpu seconds)}`` of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / TICK)
    return table


def cpu_by_kind(roots: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each named group of process trees, plus PostgreSQL and Redis."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[str, float] = {}
    for kind, pids in roots.items():
        stack, total = list(pids), 0.0
        while stack:
            pid = stack.pop()
            if pid in table:
                total += table[pid][2]
                stack += children.get(pid, [])
        out[kind] = total
    out["postgres"] = sum(cpu for _, name, cpu in table.values() if name.startswith("postgres"))
    out["redis"] = sum(cpu for _, name, cpu in table.values() if name.startswith("redis-server"))
    out["load client"] = sum(cpu for pid, (_, _, cpu) in table.items() if pid == os.getpid())
    return out


# --- the HTTP load ---------------------------------------------------------------------------------------
@dataclass
class Burst:
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    accepted: int = 0
    started: float = 0.0
    sent_s: float = 0.0  # until the last answer
    done_s: float | None = None  # until the last accepted run (or baseline row) was done
    peak_connections: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process kind during the burst

    def line(self, label: str) -> str:
        lat = sorted(self.latencies)
        p50 = lat[len(lat) // 2] * 1000 if lat else 0
        p95 = lat[int(len(lat) * 0.95)] * 1000 if lat else 0
        refused = sum(n for s, n in self.statuses.items() if s != 202)
        done = f"{self.accepted / self.done_s:7.1f}" if self.done_s else "    n/a"
        return (
            f"{label:<26} refused {refused:4d} | accepted {self.accepted / self.sent_s:7.1f}/s | "
            f"completed {done}/s | p50 {p50:6.1f} ms | p95 {p95:6.1f} ms | "
            f"peak PG connections {self.peak_connections or '-'} | "
            f"statuses {dict(sorted(self.statuses.items()))}"
        )

    def cpu_line(self) -> str:
        per = 1000.0 / max(self.accepted, 1)
        parts = " | ".join(f"{kind} {seconds * per:5.2f}" for kind, seconds in self.cpu.items())
        return f"{'':<26} CPU s per 1000 accepted: {parts}"

    def completed_per_s(self) -> float:
        return self.accepted / self.done_s if self.done_s else 0.0


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes]:
    writer.write(raw)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length, chunked = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    body = b""
    while (size := int((await reader.readline()).strip(), 16)) > 0:
        body += await reader.readexactly(size)
        await reader.readline()
    await reader.readline()
    return status, body


def http_request(method: str, host: str, port: int, path: str, token: str, body: Any = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Token {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


async def _burst(host: str, port: int, raw: bytes, total: int, clients: int, burst: Burst) -> None:
    remaining = [total]

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while remaining[0] > 0:
                remaining[0] -= 1
                t = time.perf_counter()
                try:
                    status, _ = await _request(reader, writer, raw)
                except (ConnectionError, asyncio.IncompleteReadError):
                    status = 0
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                burst.latencies.append(time.perf_counter() - t)
                burst.statuses[status] = burst.statuses.get(status, 0) + 1
                burst.accepted += status == 202
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))


def fire(
    host: str,
    port: int,
    raw: bytes,
    total: int,
    clients: int,
    done: Callable[[], int],
    connections: Callable[[], int] | None,
    roots: dict[str, list[int]],
    timeout: float = 300,
) -> Burst:
    """Send ``total`` requests from ``clients`` connections; then wait until ``done()`` counts every
    accepted one (sampling the database's connection count meanwhile)."""
    burst = Burst()
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            with contextlib.suppress(Exception):
                burst.peak_connections = max(burst.peak_connections, connections() if connections else 0)

    before = done()
    cpu_before = cpu_by_kind(roots)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    burst.started = time.perf_counter()
    asyncio.run(_burst(host, port, raw, total, clients, burst))
    burst.sent_s = time.perf_counter() - burst.started
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done() - before >= burst.accepted:
            burst.done_s = time.perf_counter() - burst.started
            break
        time.sleep(0.05)
    stop.set()
    sampler.join()
    cpu_after = cpu_by_kind(roots)
    burst.cpu = {kind: cpu_after[kind] - cpu_before.get(kind, 0.0) for kind in cpu_after}
    return burst


def unloaded(host: str, port: int, raw: bytes, count: int = 40) -> float:
    """p50 of one request at a time, on one keep-alive connection (the first few are warm-up)."""

    async def go() -> list[float]:
        reader, writer = await asyncio.open_connection(host, port)
        out = []
        for i in range(count + 5):
            t = time.perf_counter()
            status, body = await _request(reader, writer, raw)
            if status >= 300:
                raise SystemExit(f"unloaded request answered {status}: {body[:300]!r}")
            if i >= 5:
                out.append(time.perf_counter() - t)
            await asyncio.sleep(0.02)  # let the run finish: measure an idle system
        writer.close()
        return out

    return statistics.median(asyncio.run(go())) * 1000


# --- the two deployments -----------------------------------------------------------------------------------
def pg_counter(url: str, sql: str) -> Callable[[], int]:
    conn = psycopg.connect(url, autocommit=True)

    def count() -> int:
        return int(conn.execute(sql).fetchone()[0])  # type: ignore[index]

    return count


@contextlib.contextmanager
def distributed(args: argparse.Namespace, logdir: Path) -> Iterator[dict[str, Any]]:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG}/{DB}",
        "REDIS_URL": REDIS,
        "JETADMIN_NODE_MODULES": "bench.baseline",
        "LOG_LEVEL": "WARNING",
        "JETADMIN_DATA_DIR": str(logdir / "data"),
    }
    manage(env, "migrate", "--noinput", "-v", "0")
    acct = account(env)
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        conn.execute(BASELINE_TABLE)
    procs = Procs(logdir)
    port = 18700
    try:
        server = procs.start(
            "serve",
            [sys.executable, "manage.py", "serve", "--port", str(port), "--workers", str(args.web_workers)],
            env,
        )
        names = []
        workers = []
        for i in range(args.workers):
            names.append(f"worker{i}")
            worker = procs.start(
                names[-1],
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "jetadmin",
                    "worker",
                    "-P",
                    "prefork",
                    "-c",
                    str(args.concurrency),
                    "-n",
                    f"load{i}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "-l",
                    "info",
                ],
                {**env, "LOG_LEVEL": "INFO"},
            )
            workers.append(worker.pid)
        beat = procs.start(
            "beat",
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
                str(logdir / "beat-schedule"),
            ],
            env,
        )
        wait_http(f"http://127.0.0.1:{port}", server)
        wait_log(procs, names, "ready.")
        db_url = f"{PG}/{DB}"
        yield {
            "port": port,
            "account": acct,
            "roots": {"web": [server.pid], "workers": workers, "beat": [beat.pid]},
            "runs_done": pg_counter(
                db_url,
                "SELECT COUNT(*) FROM workflows_workflowinstance WHERE status IN "
                "('succeeded', 'failed', 'canceled')",
            ),
            "baseline_done": pg_counter(db_url, "SELECT COUNT(*) FROM bench_baseline WHERE done"),
            "connections": pg_counter(
                f"{PG}/postgres",
                f"SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '{DB}'",  # noqa: S608,  # noqa: S608
            ),
            "failed": pg_counter(
                db_url, "SELECT COUNT(*) FROM workflows_workflowinstance WHERE status <> 'succeeded'"
            ),
        }
    finally:
        procs.stop()


@contextlib.contextmanager
def embedded(args: argparse.Namespace, logdir: Path) -> Iterator[dict[str, Any]]:
    import sqlite3

    data = logdir / "embedded"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(JETADMIN_DATA_DIR=str(data), JETADMIN_NODE_MODULES="bench.baseline", LOG_LEVEL="WARNING")
    manage(env, "migrate", "--noinput", "-v", "0")
    acct = account(env)
    db = data / "jetadmin.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE bench_baseline (id INTEGER PRIMARY KEY, done BOOLEAN NOT NULL DEFAULT 0)")
    procs = Procs(logdir)
    port = 18701
    try:
        server = procs.start("embedded", [sys.executable, "manage.py", "serve", "--port", str(port)], env)
        wait_http(f"http://127.0.0.1:{port}", server)

        def counter(sql: str) -> Callable[[], int]:
            def count() -> int:
                with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
                    return int(conn.execute(sql).fetchone()[0])

            return count

        yield {
            "port": port,
            "account": acct,
            "roots": {"server (web + worker)": [server.pid]},
            "runs_done": counter(
                "SELECT COUNT(*) FROM workflows_workflowinstance "
                "WHERE status IN ('succeeded', 'failed', 'canceled')"
            ),
            "baseline_done": counter("SELECT COUNT(*) FROM bench_baseline WHERE done"),
            "connections": None,
            "failed": counter("SELECT COUNT(*) FROM workflows_workflowinstance WHERE status <> 'succeeded'"),
        }
    finally:
        procs.stop()


def measure(name: str, setup: Any, args: argparse.Namespace) -> None:
    host = "127.0.0.1"
    with setup as s:
        port, acct = s["port"], s["account"]
        base = f"/api/v1/tenants/{acct['tenant']}/workflows"
        execute = http_request(
            "POST", host, port, f"{base}/{acct['workflow']}/execute/", acct["token"], {"input": RUN_INPUT}
        )
        sync = http_request(
            "POST",
            host,
            port,
            f"{base}/{acct['workflow']}/execute/",
            acct["token"],
            {"input": RUN_INPUT, "mode": "sync", "timeout_s": 10},
        )
        baseline = http_request("POST", host, port, "/bench/baseline/", acct["token"], {})
        chain = http_request(
            "POST",
            host,
            port,
            f"{base}/{acct['chain']}/execute/",
            acct["token"],
            {"mode": "sync", "timeout_s": 30},
        )
        print(f"\n== {name}")
        print(
            f"unloaded p50: execute (async) {unloaded(host, port, execute):.1f} ms | "
            f"execute (sync, run to its end) {unloaded(host, port, sync):.1f} ms | "
            f"baseline {unloaded(host, port, baseline):.1f} ms | "
            f"40-node chain (sync) {unloaded(host, port, chain, count=15):.1f} ms"
        )
        for clients in args.clients:
            b = fire(
                host, port, baseline, args.runs, clients, s["baseline_done"], s["connections"], s["roots"]
            )
            print(b.line(f"baseline, {clients} clients"))
            print(b.cpu_line())
            r = fire(host, port, execute, args.runs, clients, s["runs_done"], s["connections"], s["roots"])
            print(r.line(f"jetadmin, {clients} clients"))
            print(r.cpu_line())
            share = r.completed_per_s() / b.completed_per_s() if b.completed_per_s() else 0
            print(f"{'':<26} completed runs/s as a share of the baseline: {share:.2f}")
        print(f"runs not succeeded: {s['failed']()}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--clients", type=lambda v: [int(x) for x in v.split(",")], default=[32, 128])
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--only", choices=["distributed", "embedded"])
    args = parser.parse_args()
    logdir = Path(tempfile.mkdtemp(prefix="jetadmin-load-"))
    print(f"logs in {logdir}")
    if args.only != "embedded":
        measure(
            f"distributed: serve --workers {args.web_workers}, {args.workers} x celery worker -c "
            f"{args.concurrency}, beat; PostgreSQL + Redis",
            distributed(args, logdir),
            args,
        )
    if args.only != "distributed":
        measure("embedded default: one process, SQLite, in-process worker", embedded(args, logdir), args)


if __name__ == "__main__":
    main()
