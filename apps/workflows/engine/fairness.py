"""Fair sharing of shared workers between tenants.

Two limits, each a setting with a per-tenant override on the tenant (0 = no limit):

* ``JETADMIN_TENANT_MAX_RUNNING_NODES`` — the claim of a node only succeeds while the tenant has fewer
  running nodes than this (one sub-select inside the claim statement). A refused node stays queued,
  "deferred" a moment; the reconciler sends it again. A flooding tenant therefore occupies at most
  this many worker slots, and its surplus messages are consumed in microseconds instead of hours.
* ``JETADMIN_TENANT_MAX_STARTS_PER_MINUTE`` — runs started beyond this within a minute are admitted
  (nothing is refused or lost) but their first nodes are deferred to the next free minute window.

The limits are read through a small per-process cache (``CACHE_S``), so a change applies within seconds.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.tenancy import selectors as tenancy

CACHE_S = 5.0
# A node refused for the running limit is sent again after about this long, times how many of the
# tenant's nodes wait per slot: re-sends then arrive at roughly ``limit / THROTTLE_DELAY_S`` per second
# whatever the backlog, instead of every waiting node being re-sent every tick.
THROTTLE_DELAY_S = 0.25
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


def throttle_delay(tenant_id: str, max_running: int) -> float:
    """Seconds until a node refused for the running limit is sent again (spread by the backlog)."""
    from apps.workflows.models import NodeRun

    waiting = NodeRun.objects.filter(instance__tenant_id=tenant_id, status="queued", deferred=True).count()
    per_slot = max(1.0, waiting / max(max_running, 1))
    return THROTTLE_DELAY_S * per_slot * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not security
