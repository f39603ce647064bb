"""Fair sharing of shared workers between tenants.

Two limits, each a setting with a per-tenant override on the tenant (0 = no limit):

* ``JETADMIN_TENANT_MAX_RUNNING_NODES`` — the claim of a node only succeeds while the tenant has fewer
  running nodes than this (one sub-select inside the claim statement). A refused node stays queued,
  marked throttled; the reconciler sends throttled nodes only as their tenant's slots free up. A
  flooding tenant therefore occupies at most this many worker slots, and its backlog waits in the
  database, not in the broker queue in front of other tenants' messages.
* ``JETADMIN_TENANT_MAX_STARTS_PER_MINUTE`` — runs started beyond this within a minute are admitted
  (nothing is refused or lost) but their first nodes are deferred to the next free minute window.

The limits are read through a small per-process cache (``CACHE_S``), so a change applies within seconds.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.tenancy import selectors as tenancy

CACHE_S = 5.0
# The lease_owner of a queued node refused for its tenant's running limit: the reconciler sends such
# nodes only as slots of their tenant free up (so a flooding tenant's backlog never churns the broker).
THROTTLED = "~throttled"
_cache: dict[str, tuple[float, int, int]] = {}
_lock = threading.Lock()


def limits(tenant_id: str) -> tuple[int, int]:
    """(max running nodes, max starts per minute) for the tenant; 0 means no limit."""
    now = time.monotonic()
    with _lock:
        hit = _cache.get(tenant_id)
    if hit is not None and now - hit[0] < CACHE_S:
        return hit[1], hit[2]
    running, starts = tenancy.tenant_limits(tenant_id=tenant_id)
    if running is None:
        running = settings.JETADMIN_TENANT_MAX_RUNNING_NODES
    if starts is None:
        starts = settings.JETADMIN_TENANT_MAX_STARTS_PER_MINUTE
    with _lock:
        _cache[tenant_id] = (now, running, starts)
    return running, starts


def clear() -> None:
    with _lock:
        _cache.clear()


def start_delay(tenant_id: str) -> float:
    """Seconds to hold back the run just created (0 when the tenant is within its start rate)."""
    _, per_minute = limits(tenant_id)
    if per_minute <= 0:
        return 0.0
    from apps.workflows.models import WorkflowInstance

    since = timezone.now() - timedelta(seconds=60)
    recent = WorkflowInstance.objects.filter(tenant_id=tenant_id, created_at__gte=since).count()
    return 60.0 * ((recent - 1) // per_minute) if recent > per_minute else 0.0


def free_slots(now: object = None) -> dict[uuid.UUID, int]:
    """For each tenant with throttled nodes: how many more nodes it may run now (limit - running)."""
    from django.db.models import Count

    from apps.workflows.models import NodeRun

    tenants = set(
        NodeRun.objects.filter(status="queued", lease_owner=THROTTLED)
        .values_list("instance__tenant_id", flat=True)
        .distinct()
    )
    if not tenants:
        return {}
    running = dict(
        NodeRun.objects.filter(
            status="running", lease_expires_at__isnull=False, instance__tenant_id__in=tenants
        )
        .values("instance__tenant_id")
        .annotate(n=Count("id"))
        .values_list("instance__tenant_id", "n")
    )
    free: dict[uuid.UUID, int] = {}
    for tenant in tenants:
        limit, _ = limits(str(tenant))
        free[tenant] = limit - running.get(tenant, 0) if limit > 0 else 1_000_000
    return free
