"""Prometheus metrics, right across processes.

Every process (the web server, Celery's worker and its prefork children, beat) counts into its own
files under ``JETADMIN_METRICS_DIR`` (prometheus-client's multiprocess mode: the directory is put in
``PROMETHEUS_MULTIPROC_DIR`` by the settings, before prometheus-client is first imported), and
``GET /metrics`` adds up every process' files. Without the setting (the embedded default, one process)
the metrics live in the process' own registry.

Pitfalls this handles: a prefork child opens its own files after the fork (prometheus-client checks
the pid on each write), and its live gauges (websocket connections) are dropped when it exits
(:func:`process_exited`, from Celery's ``worker_process_shutdown``); counters of exited processes stay,
so totals never go down while the deployment runs. On start, a directory in which no process is alive
any more is emptied (a fresh deployment); otherwise only the live gauges of dead processes are removed.
Processes share the directory only on one host (one pid namespace): in containers, give each container
its own directory (a tmpfs) and let the worker serve it on ``JETADMIN_METRICS_PORT``.

What is counted where: runs and node results from the engine's journal after each commit
(:mod:`apps.workflows.observe`), node durations around the handler, reconciler re-sends in its task,
websocket connections and refilled holes in the consumer, HTTP requests in :class:`MetricsMiddleware`.
Queue depth, the oldest queued node's age and running nodes per tenant are read from the database at
scrape time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


from prometheus_client import Counter, Gauge, Histogram  # noqa: E402

RUNS_STARTED = Counter("jetadmin_runs_started", "Runs started", ["trigger"])
RUNS_FINISHED = Counter("jetadmin_runs_finished", "Runs that ended", ["trigger", "status"])
RUN_SECONDS = Histogram(
    "jetadmin_run_duration_seconds",
    "From a run's creation to its end",
    ["trigger", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 86400),
)
NODES_FINISHED = Counter("jetadmin_node_runs_finished", "Node runs that ended", ["type", "status"])
NODE_EXECUTIONS = Counter("jetadmin_node_executions", "Handler executions (attempts) by node type", ["type"])
NODE_SECONDS = Histogram(
    "jetadmin_node_duration_seconds",
    "One execution of a node's handler",
    ["type"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
LEASES_EXPIRED = Counter("jetadmin_lease_expiries", "Nodes whose worker lease expired (sent again)")
RESENDS = Counter("jetadmin_reconciler_resends", "Messages the reconciler sent again", ["reason"])
WS_CONNECTIONS = Gauge(
    "jetadmin_websocket_connections", "Open websocket connections", multiprocess_mode="livesum"
)
WS_REFILLED = Counter(
    "jetadmin_websocket_refilled_events", "Live events the channel layer dropped, refilled from the journal"
)
HTTP_REQUESTS = Counter("jetadmin_http_requests", "HTTP requests", ["method", "route", "status"])
HTTP_SECONDS = Histogram(
    "jetadmin_http_request_duration_seconds",
    "HTTP request duration",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

_PID = re.compile(r"_(\d+)\.db$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_directory() -> None:
    """At a process' start: empty a directory nobody alive writes to; else drop dead processes' live
    gauges (their counters stay: totals must not go down while the deployment runs)."""
    directory = multiprocess_dir()
    if not directory:
        return
    from prometheus_client import multiprocess

    files = list(Path(directory).glob("*.db"))
    pids = {int(m.group(1)) for f in files if (m := _PID.search(f.name))}
    live = {pid for pid in pids if _alive(pid)} - {os.getpid()}
    if not live:
        for f in files:
            f.unlink(missing_ok=True)
        return
    for pid in pids - live - {os.getpid()}:
        multiprocess.mark_process_dead(pid, directory)


def process_exited(pid: int | None = None) -> None:
    directory = multiprocess_dir()
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid(), directory)


def serve(port: int) -> None:
    """Serve this host's metrics (every process of the directory) on ``port``, from a thread."""
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

    registry = REGISTRY
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    start_http_server(port, registry=registry)


def exposition(extra: Callable[[], Any] | None = None) -> tuple[bytes, str]:
    """The text format of every process' metrics, plus ``extra``'s (read at scrape time)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    if extra is not None:
        scrape = CollectorRegistry()
        scrape.register(_Collect(extra))
        body += generate_latest(scrape)
    return body, CONTENT_TYPE_LATEST


class _Collect:
    def __init__(self, collect: Callable[[], Any]) -> None:
        self._collect = collect

    def collect(self) -> Any:
        return self._collect()


def route_of(request: Any) -> str:
    """A request's route pattern (``api/v1/tenants/<uuid:tenant_id>/…``): bounded label values."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return "/" + (match.route or match.view_name or "unknown")


class MetricsMiddleware:
    """Counts every HTTP request by method, route pattern and status, and times it."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        import time

        began = time.perf_counter()
        response = self.get_response(request)
        route = route_of(request)
        method = request.method if request.method in _METHODS else "other"
        HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
        HTTP_SECONDS.labels(method, route).observe(time.perf_counter() - began)
        return response


_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
