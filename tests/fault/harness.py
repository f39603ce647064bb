"""Process plumbing for the fault tests: workers, reconciler, API server, Redis and PostgreSQL servers.

Every process runs in its own session (so a signal reaches its whole process group: a Celery worker's
prefork children included), writes its output to a log file, and carries a unique marker in its
command line (``python -X fault_marker=<marker>``; PostgreSQL's data directory is named after it), so
:meth:`Stack.close` can prove with ``pgrep -f`` that nothing was left behind. Redis and PostgreSQL
are private servers on free ports: the machine's shared services are never touched.

The figures each test measures are collected with :func:`report` and printed at the end of the run
(see ``conftest.py``) and written to ``tests/artifacts/fault/<test>.json``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import ARTIFACTS, ROOT, free_port
from tests.fault import faultnodes

NODE_MODULES = "tests.fault.faultnodes"
SUMMARIES: list[tuple[str, dict[str, Any]]] = []


def report(name: str, figures: dict[str, Any]) -> None:
    """Keep a test's measured figures for the end-of-run summary and write them as JSON."""
    SUMMARIES.append((name, figures))
    out = ARTIFACTS / "fault"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str))


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def pg_bin_dir() -> Path | None:
    """The directory of initdb/pg_ctl: the newest /usr/lib/postgresql/*/bin, else the PATH's."""

    def version(path: str) -> int:
        part = path.split("/")[4]
        return int(part) if part.isdigit() else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=version)
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).resolve().parent if which else None


# --- processes ------------------------------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def kill(self, timeout: float = 20) -> None:
        """SIGKILL the whole process group and reap the leader."""
        self.signal_group(signal.SIGCONT)  # a stopped group must not survive its own kill
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def owns(self, pid: int) -> bool:
        """Whether ``pid`` (e.g. a prefork child named in a lease owner) is in this process group."""
        try:
            return os.getpgid(pid) == self.popen.pid
        except ProcessLookupError:
            return False


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def lease_pid(owner: str) -> int | None:
    """The process id in a lease owner (``host:pid:thread``)."""
    parts = owner.split(":")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


class Stack:
    """The processes (and servers) of one fault test; :meth:`close` ends all of them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.marker = uuid.uuid4().hex[:12]
        self.procs: list[Proc] = []
        self.redis: list[RedisServer] = []
        self.clusters: list[PgCluster] = []
        self.counter = 0
        self.closed = False

    # ---- generic
    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        self.counter += 1
        log = self.tmp / f"{self.counter:03d}-{name}.log"
        with log.open("wb") as out:  # the child keeps its own copy of the descriptor
            popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def python(self) -> list[str]:
        return [sys.executable, "-X", f"fault_marker={self.marker}"]

    def run(self, name: str, args: list[str], env: dict[str, str], timeout: float = 180) -> str:
        """Run ``python manage.py <args>`` to its end (killed at ``timeout``); returns its output."""
        proc = self.spawn(name, [*self.python(), "manage.py", *args], env)
        try:
            code = proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"{name} did not finish in {timeout}s:\n{proc.tail()}") from None
        if code != 0:
            raise AssertionError(f"{name} exited with {code}:\n{proc.tail(80)}")
        return proc.text()

    # ---- the product's processes
    def worker(
        self, name: str, env: dict[str, str], concurrency: int = 4, *, supervised: bool = False
    ) -> Proc:
        """``celery worker`` (prefork); ``supervised``: under a restart loop, see :meth:`supervise`."""
        argv = [
            *self.python(),
            "-m",
            "celery",
            "-A",
            "jetadmin",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(concurrency),
            "-n",
            f"{name}-{self.marker}@%h",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "info",
        ]
        return self.supervise(name, argv, env) if supervised else self.spawn(name, argv, env)

    def supervise(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        """Run ``argv`` again whenever it exits, as a process supervisor (systemd, Kubernetes) would.

        Each exit is logged as ``PROCESS EXITED rc=<code>``: see :meth:`exits`. The loop and its
        child share one process group, so :meth:`Proc.kill` and :meth:`Proc.owns` cover both.
        """
        inner = " ".join(argv)
        script = f'while :; do {inner}; echo "PROCESS EXITED rc=$?"; sleep 0.2; done'
        # The marker is in the shell's own command line too, so pgrep finds the loop itself.
        return self.spawn(name, ["sh", "-c", script, f"fault_marker={self.marker}"], env)

    @staticmethod
    def exits(proc: Proc) -> int:
        return proc.text().count("PROCESS EXITED")

    @staticmethod
    def reconciler_sent(proc: Proc) -> int:
        """Messages the reconciler sent (due backoffs, throttled nodes, and messages presumed lost)."""
        return sum(int(n) for n in re.findall(r"messages sent: (\d+)", proc.text()))

    @staticmethod
    def wait_ready(procs: list[Proc], timeout: float = 90) -> None:
        def ready() -> bool:
            for proc in procs:
                if not proc.alive():
                    raise AssertionError(f"{proc.name} exited:\n{proc.tail()}")
            return all("ready." in proc.text() for proc in procs)

        wait_for("workers to be ready", ready, timeout)

    def reconciler(self, env: dict[str, str], every: float = 0.5) -> Proc:
        """``manage.py reconcile --every N``, supervised: the command ends at its first uncaught error
        (e.g. while the database or the broker is away); how often that happened is :meth:`exits`."""
        return self.supervise(
            "reconciler", [*self.python(), "manage.py", "reconcile", "--every", str(every)], env
        )

    def server(self, env: dict[str, str], timeout: float = 60) -> tuple[Proc, str]:
        port = free_port()
        proc = self.spawn("serve", [*self.python(), "manage.py", "serve", "--port", str(port)], env)
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if not proc.alive():
                raise AssertionError(f"serve exited:\n{proc.tail()}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:  # noqa: S310 - local server
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_for("the API server", up, timeout)
        return proc, url

    def redis_server(self) -> RedisServer:
        server = RedisServer(self, free_port())
        server.start()
        self.redis.append(server)
        return server

    def pg_cluster(self) -> PgCluster:
        cluster = PgCluster(self.marker, free_port())
        self.clusters.append(cluster)
        cluster.init()
        cluster.start()
        return cluster

    # ---- the end
    def leftovers(self) -> list[str]:
        found = subprocess.run(
            ["pgrep", "-a", "-f", f"fault_marker={self.marker}|jetadmin-fault-{self.marker}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        own = str(os.getpid())
        return [line for line in found.stdout.splitlines() if line and line.split()[0] != own]

    def close(self) -> list[str]:
        """Kill every process group, stop the servers, remove their data; returns what had to be
        killed by the final ``pgrep`` sweep (it should be nothing)."""
        if self.closed:
            return []
        self.closed = True
        for proc in reversed(self.procs):
            proc.kill()
        for server in self.redis:
            server.kill()
        for cluster in self.clusters:
            cluster.destroy()
        # A group's leader is reaped at once, but its SIGKILLed members (a worker's prefork children
        # behind a supervisor's shell) may take a moment to be torn down: give them a few seconds.
        deadline = time.monotonic() + 10
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.2)
        for line in left:  # each is ours: it carries this test's marker
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(line.split()[0]), signal.SIGKILL)
        return left


# --- Redis -----------------------------------------------------------------------------------------------
class RedisServer:
    """A private ``redis-server`` without persistence: killing it loses every queued message."""

    def __init__(self, stack: Stack, port: int) -> None:
        self.stack, self.port = stack, port
        self.proc: Proc | None = None
        self.dir = stack.tmp / f"redis-{port}"
        self.dir.mkdir(exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> None:
        binary = redis_server_binary()
        assert binary, "redis-server is not installed"
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = self.stack.spawn(f"redis-{self.port}", [*argv, "--dir", str(self.dir)], dict(os.environ))
        wait_for(f"redis-server on port {self.port}", self.ping, timeout, interval=0.05)

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.alive():
            self.proc.kill()


# --- PostgreSQL --------------------------------------------------------------------------------------------
class PgCluster:
    """A throwaway PostgreSQL cluster (initdb into a temp dir) on its own port and socket directory.

    PostgreSQL refuses to run as root: when the tests run as root, initdb and pg_ctl run as the
    ``postgres`` user (``runuser``) on a directory that user owns.
    """

    def __init__(self, marker: str, port: int) -> None:
        bindir = pg_bin_dir()
        assert bindir, "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        self.bin, self.port = bindir, port
        self.root = Path(tempfile.mkdtemp(prefix=f"jetadmin-fault-{marker}-"))
        self.data = self.root / "data"
        self.logfile = self.root / "postgres.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.running = False

    def _run(self, argv: list[str], timeout: float = 120) -> str:
        done = subprocess.run(
            [*self.as_user, *argv], capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise AssertionError(f"{argv[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def url(self, db: str = "jetadmin") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def init(self) -> None:
        options = ["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale", "C", "--no-sync"]
        self._run([str(self.bin / "initdb"), "-D", str(self.data), *options])

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        pg_ctl = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile)]
        self._run([*pg_ctl, "-w", "-t", "60", "-o", options, "start"])
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"], timeout=60)
        self.running = False

    def create_database(self, name: str = "jetadmin") -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def destroy(self) -> None:
        if self.running or (self.data / "postmaster.pid").exists():
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        return ""


# --- the API, as a client sees it ---------------------------------------------------------------------------
@dataclass
class Api:
    url: str
    token: str

    def request(self, method: str, path: str, body: Any = None, timeout: float = 15) -> tuple[int, Any]:
        """(status, parsed body); status 0 when no HTTP answer came (refused, reset, timed out)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - local test server
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - local test server
                status, raw = int(r.status), r.read()
        except urllib.error.HTTPError as exc:
            status, raw = int(exc.code), exc.read()
        except OSError as exc:
            status, raw = 0, f"{type(exc).__name__}: {exc}".encode()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")[:2000]


# --- what the database says -------------------------------------------------------------------------------
CursorFactory = Callable[[], contextlib.AbstractContextManager[Any]]


def ledger_reset(cursor_factory: CursorFactory) -> None:
    with cursor_factory() as cursor:
        cursor.execute(faultnodes.DROP_SQL)
        cursor.execute(faultnodes.CREATE_SQL)


def ledger_drop(cursor_factory: CursorFactory) -> None:
    with cursor_factory() as cursor:
        cursor.execute(faultnodes.DROP_SQL)


def instance_statuses(cursor_factory: CursorFactory, tenant_id: str) -> dict[str, int]:
    with cursor_factory() as cursor:
        cursor.execute(
            "SELECT status, count(*) FROM workflows_workflowinstance WHERE tenant_id = %s::uuid "
            "GROUP BY status",
            [tenant_id],
        )
        return {str(s): int(n) for s, n in cursor.fetchall()}


def wait_instances(
    cursor_factory: CursorFactory, tenant_id: str, expected: int | None, timeout: float
) -> dict[str, int]:
    """Poll until every run of the tenant has ended (and, if given, ``expected`` runs exist)."""
    deadline = time.monotonic() + timeout
    statuses: dict[str, int] = {}
    while time.monotonic() < deadline:
        statuses = instance_statuses(cursor_factory, tenant_id)
        total = sum(statuses.values())
        still_open = sum(statuses.get(s, 0) for s in ("queued", "running", "waiting"))
        if still_open == 0 and (expected is None or total >= expected):
            return statuses
        time.sleep(0.5)
    return statuses


def outcome(cursor_factory: CursorFactory, tenant_id: str, nodes: list[str]) -> dict[str, Any]:
    """The acceptance figures of a tenant's runs, straight from the tables.

    * ``lost_nodes``: expected node runs of succeeded runs that did not succeed (or are missing).
    * ``missing_ledger`` / ``extra_ledger``: idempotency keys of succeeded nodes without a ledger row,
      and ledger rows with a key no node of these runs has.
    * ``duplicate_ledger_rows``: rows beyond one per key (the UNIQUE key makes this 0 by construction;
      measured anyway). ``repeated_executions``: side effects that ran again (``executions - 1``).
    * ``duplicate_success_events``: (run, node) pairs with more than one ``node.succeeded`` event.
    """
    with cursor_factory() as cursor:
        cursor.execute(
            "SELECT id::text, status FROM workflows_workflowinstance WHERE tenant_id = %s::uuid", [tenant_id]
        )
        runs = {str(i): str(s) for i, s in cursor.fetchall()}
        cursor.execute(
            "SELECT r.instance_id::text, r.node_id, r.status, r.attempt FROM workflows_noderun r "
            "JOIN workflows_workflowinstance i ON i.id = r.instance_id WHERE i.tenant_id = %s::uuid",
            [tenant_id],
        )
        counted = set(nodes)  # the ledger nodes (not the graph's start)
        node_runs = [(str(i), str(n), str(s), int(a)) for i, n, s, a in cursor.fetchall() if n in counted]
        cursor.execute(
            "SELECT e.instance_id::text, e.node_id, e.type, e.data FROM workflows_instanceevent e "
            "JOIN workflows_workflowinstance i ON i.id = e.instance_id WHERE i.tenant_id = %s::uuid "
            "AND e.type IN ('node.succeeded', 'node.failed', 'node.queued')",
            [tenant_id],
        )
        events = [(str(i), str(n), str(t), d) for i, n, t, d in cursor.fetchall() if n in counted]
        cursor.execute(faultnodes.ROWS_SQL)
        ledger = [(str(k), str(n), int(x)) for k, n, x, *_ in cursor.fetchall()]

    succeeded_runs = {i for i, s in runs.items() if s == "succeeded"}
    succeeded_nodes = {(i, n) for i, n, s, _ in node_runs if s == "succeeded"}
    lost = [(i, n) for i in sorted(succeeded_runs) for n in nodes if (i, n) not in succeeded_nodes]
    expected_keys = {f"{i}:{n}" for i, n in succeeded_nodes}
    all_keys = {f"{i}:{n}" for i in runs for n in nodes}
    keys = [k for k, _, _ in ledger]
    success_events: dict[tuple[str, str], int] = {}
    for i, n, t, _ in events:
        if t == "node.succeeded":
            success_events[(i, n)] = success_events.get((i, n), 0) + 1
    data_of = [d if isinstance(d, dict) else json.loads(d or "{}") for *_, d in events]
    lease_requeues = sum(
        1
        for (_, _, t, _), d in zip(events, data_of, strict=True)
        if t == "node.queued" and d.get("reason") == "lease_expired"
    )
    return {
        "runs": len(runs),
        "run_statuses": {s: sum(1 for v in runs.values() if v == s) for s in sorted(set(runs.values()))},
        "stuck_runs": sum(1 for s in runs.values() if s in ("queued", "running", "waiting")),
        "node_runs_expected": len(succeeded_runs) * len(nodes),
        "node_runs_succeeded": len(succeeded_nodes),
        "lost_nodes": len(lost),
        "lost_examples": lost[:5],
        "ledger_rows": len(keys),
        "duplicate_ledger_rows": len(keys) - len(set(keys)),
        "missing_ledger": len(expected_keys - set(keys)),
        "extra_ledger": len(set(keys) - all_keys),
        "repeated_executions": sum(x - 1 for _, _, x in ledger),
        "nodes_executed_more_than_once": sum(1 for _, _, x in ledger if x > 1),
        "max_executions_of_a_node": max((x for _, _, x in ledger), default=0),
        "reclaimed_claims": sum(a - 1 for *_, a in node_runs if a > 1),
        "lease_expired_requeues": lease_requeues,
        "success_events": sum(success_events.values()),
        "duplicate_success_events": sum(1 for c in success_events.values() if c > 1),
        "failed_events": sum(1 for _, _, t, _ in events if t == "node.failed"),
    }


def in_flight(cursor_factory: CursorFactory, tenant_id: str) -> dict[str, int]:
    """How many of a tenant's nodes are running (a worker is inside them) and queued (their message is
    in the broker or about to be) right now."""
    with cursor_factory() as cursor:
        cursor.execute(
            "SELECT r.status, COUNT(*) FROM workflows_noderun r JOIN workflows_workflowinstance i "
            "ON i.id = r.instance_id WHERE i.tenant_id = %s::uuid AND r.status IN ('running', 'queued') "
            "GROUP BY r.status",
            [tenant_id],
        )
        counts = {str(status): int(n) for status, n in cursor.fetchall()}
    return {"running": counts.get("running", 0), "queued": counts.get("queued", 0)}


def open_nodes(cursor_factory: CursorFactory, tenant_id: str, limit: int = 20) -> list[tuple[Any, ...]]:
    """Diagnostics for a failure message: node runs still open."""
    with cursor_factory() as cursor:
        cursor.execute(
            "SELECT r.instance_id::text, r.node_id, r.status, r.attempt, r.deferred, r.available_at, "
            "r.lease_owner, r.lease_expires_at FROM workflows_noderun r JOIN workflows_workflowinstance i "
            "ON i.id = r.instance_id WHERE i.tenant_id = %s::uuid "
            "AND r.status IN ('pending', 'queued', 'running', 'waiting') ORDER BY r.id LIMIT %s",
            [tenant_id, limit],
        )
        return [tuple(row) for row in cursor.fetchall()]


# --- graphs -----------------------------------------------------------------------------------------------
DAG_EDGES = [
    ("n0", "n1"),
    ("n0", "n2"),
    ("n0", "n3"),
    ("n1", "n4"),
    ("n2", "n4"),
    ("n3", "n4"),
    ("n4", "n5"),
    ("n5", "n6"),
    ("n5", "n7"),
    ("n6", "n8"),
    ("n7", "n8"),
    ("n8", "n9"),
]
DAG_NODES = [f"n{i}" for i in range(10)]


def ledger_dag(before_ms: int, after_ms: int) -> dict[str, Any]:
    """start, then ten ledger nodes: a fan-out to three, a join of three, a fan-out to two, a join of two."""
    inputs = {"before_ms": before_ms, "after_ms": after_ms}
    return {
        "nodes": [
            {"id": "start", "type": "start"},
            *({"id": n, "type": faultnodes.NODE_TYPE, "inputs": inputs} for n in DAG_NODES),
        ],
        "edges": [{"source": "start", "target": "n0"}, *({"source": a, "target": b} for a, b in DAG_EDGES)],
    }


def fault_env(base: dict[str, str], **extra: str) -> dict[str, str]:
    """A child's environment: ``base`` (e.g. :func:`tests.conftest.subprocess_env`), the fault node
    type loaded, and ``extra`` (REDIS_URL of the private Redis, lease and requeue times...)."""
    env = dict(base)
    env["JETADMIN_NODE_MODULES"] = NODE_MODULES
    env.update(extra)
    return env
