"""The operations page (``/ops/``, staff only): what the whole installation is doing, across tenants.

Workers alive and the queues they consume (Celery's ``inspect`` in the distributed deployment, the
in-process worker on the embedded default), the ready queue's depth and oldest node, leases that
expired (a worker died or froze: the reconciler re-sends those nodes), the slowest node types of the
last hour, recent failed runs and each tenant's load. The body refreshes itself every few seconds
(htmx polling of ``/ops/body/``). It reads several apps, so it lives above them; no app imports it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Max, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from apps.tenancy.models import Tenant
from apps.workflows.models import NodeRun, WorkflowInstance
from apps.workflows.observe import queue_summary

LOOP_HEAD = "loop.iteration"
REFRESH_S = 5


def _staff(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("The operations page is for staff.")


def workers() -> list[dict[str, Any]]:
    """Workers that answered a ping, with their queues and running tasks (cached a few seconds)."""
    if settings.EMBEDDED:
        from jetadmin import embedded

        alive = embedded.running()
        return [
            {"name": "embedded (in the server process)", "alive": alive, "queues": ["celery"], "active": None}
        ]
    cached = cache.get("ops:workers")
    if cached is not None:
        return list(cached)
    from jetadmin.celery import app

    found = []
    try:
        inspect = app.control.inspect(timeout=1.0)
        queues = inspect.active_queues() or {}
        active = inspect.active() or {}
    except Exception as exc:  # the broker is down: say so instead of failing the page
        return [
            {
                "name": f"broker unreachable: {type(exc).__name__}",
                "alive": False,
                "queues": [],
                "active": None,
            }
        ]
    for name in sorted(queues):
        names = sorted(q.get("name", "?") for q in queues[name])
        found.append(_worker(name, True, names, len(active.get(name, []))))
    cache.set("ops:workers", found, REFRESH_S)
    return found


def _worker(name: str, alive: bool, queues: list[str], active: int | None = None) -> dict[str, Any]:
    return {"name": name, "alive": alive, "queues": queues, "active": active}


def overview() -> dict[str, Any]:
    now = timezone.now()
    nodes = NodeRun.objects.exclude(node_type=LOOP_HEAD)
    expired = (
        nodes.filter(status="running", lease_expires_at__lt=now)
        .select_related("instance__tenant")
        .order_by("lease_expires_at")
    )
    took = ExpressionWrapper(F("ended_at") - F("started_at"), output_field=DurationField())
    slowest = (
        nodes.filter(ended_at__gte=now - timedelta(hours=1), started_at__isnull=False)
        .values("node_type")
        .annotate(n=Count("id"), avg=Avg(took), worst=Max(took))
        .order_by("-avg")[:10]
    )
    since = now - timedelta(minutes=5)
    load = (
        Tenant.objects.annotate(
            running=Count(
                "workflow_instances__node_runs",
                filter=Q(workflow_instances__node_runs__status="running")
                & ~Q(workflow_instances__node_runs__node_type=LOOP_HEAD),
            ),
            queued=Count(
                "workflow_instances__node_runs", filter=Q(workflow_instances__node_runs__status="queued")
            ),
        )
        .filter(Q(running__gt=0) | Q(queued__gt=0))
        .order_by("-running", "-queued", "name")[:20]
    )
    started = dict(
        WorkflowInstance.objects.filter(created_at__gte=since)
        .values_list("tenant_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    failures = (
        WorkflowInstance.objects.filter(status="failed")
        .select_related("tenant", "workflow")
        .order_by("-ended_at", "-created_at")[:15]
    )
    depth, oldest = queue_summary(now)
    return {
        "now": now,
        "workers": workers(),
        "queue_depth": depth,
        "queue_oldest_s": oldest,
        "open_runs": WorkflowInstance.objects.filter(status__in=("queued", "running", "waiting")).count(),
        "expired_count": expired.count(),
        "expired": list(expired[:10]),
        "slowest": [{**row, "avg_ms": _ms(row["avg"]), "worst_ms": _ms(row["worst"])} for row in slowest],
        "load": [
            {"tenant": t, "running": t.running, "queued": t.queued, "started": started.get(t.id, 0)}
            for t in load
        ],
        "failures": list(failures),
        "refresh_s": REFRESH_S,
    }


def _ms(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return round(value.total_seconds() * 1000, 1)
    return round(float(value) / 1000, 1)  # a database that averages durations as microseconds


@login_required
def ops_page(request: HttpRequest) -> HttpResponse:
    _staff(request)
    return render(request, "ops/ops.html", overview())


@login_required
def ops_body(request: HttpRequest) -> HttpResponse:
    _staff(request)
    return render(request, "ops/_body.html", overview())
