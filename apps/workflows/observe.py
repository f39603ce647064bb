"""The engine's metrics, counted from its journal after each commit (so a rolled-back transaction
counts nothing and each committed result counts once), and the scrape-time gauges read from the
database. The metric objects live in :mod:`jetadmin.metrics`."""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import Count, Min
from django.utils import timezone

from jetadmin import metrics

logger = logging.getLogger(__name__)

ENDED_NODE = {"node.succeeded", "node.failed", "node.skipped", "node.canceled"}
ENDED_RUN = {"instance.succeeded", "instance.failed", "instance.canceled"}


def on_events(sender: Any = None, events: Any = (), **_: Any) -> None:
    """Receiver of ``instance_events`` (in the process that committed them)."""
    from apps.workflows.engine import runtime

    for event in events:
        kind = event.type
        if kind in ENDED_NODE or kind == "node.running" or kind in ENDED_RUN or kind == "instance.queued":
            run = _run(runtime, str(event.instance_id))
            if run is None:
                continue
            if kind in ENDED_NODE:
                metrics.NODES_FINISHED.labels(run.graph.node_type(event.node_id), kind[5:]).inc()
            elif kind == "node.running":
                metrics.NODE_EXECUTIONS.labels(run.graph.node_type(event.node_id)).inc()
            elif kind == "instance.queued":
                metrics.RUNS_STARTED.labels(run.trigger).inc()
            else:
                status = kind[9:]
                metrics.RUNS_FINISHED.labels(run.trigger, status).inc()
                if run.created_at is not None:
                    seconds = (timezone.now() - run.created_at).total_seconds()
                    metrics.RUN_SECONDS.labels(run.trigger, status).observe(max(seconds, 0.0))


def _run(runtime: Any, instance_id: str) -> Any:
    try:
        return runtime.run_data(instance_id)
    except Exception:  # the run was deleted meanwhile: nothing to count by
        logger.debug("metrics: run %s is gone", instance_id)
        return None


def queue_summary(now: Any) -> tuple[int, float]:
    """(nodes queued to run, seconds the oldest of them has waited)."""
    from apps.workflows.models import NodeRun

    queued = NodeRun.objects.filter(status="queued").exclude(node_type="loop.iteration")
    summary = queued.aggregate(n=Count("id"), oldest=Min("created_at"))
    age = (now - summary["oldest"]).total_seconds() if summary["oldest"] else 0.0
    return summary["n"] or 0, max(age, 0.0)


def scrape_gauges() -> list[Any]:
    """Read at each scrape: what waits in the ready queue, for how long, and what runs per tenant."""
    from prometheus_client.core import GaugeMetricFamily

    from apps.workflows.models import NodeRun

    count, age = queue_summary(timezone.now())
    depth = GaugeMetricFamily("jetadmin_ready_queue_depth", "Nodes queued to run")
    depth.add_metric([], count)
    oldest = GaugeMetricFamily("jetadmin_ready_queue_oldest_seconds", "Age of the oldest queued node")
    oldest.add_metric([], age)
    running = GaugeMetricFamily(
        "jetadmin_tenant_running_nodes", "Nodes running now, per tenant", labels=["tenant"]
    )
    per_tenant = (
        NodeRun.objects.filter(status="running")
        .exclude(node_type="loop.iteration")
        .values("instance__tenant_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in per_tenant:
        running.add_metric([str(row["instance__tenant_id"])], row["n"])
    return [depth, oldest, running]
