"""Retention: ended runs, with their journal, node rows and blobs, are deleted once they are old.

Each tenant keeps ended runs for ``retention_days`` (failed ones for ``retention_failed_days``, so
they can be looked into longer) and at most ``retention_max_runs`` ended runs per workflow; an empty
setting takes the ``JETADMIN_RETENTION_*`` default and 0 means no limit. Runs that are still open are
never touched. The beat task ``workflows.prune`` (every ``JETADMIN_RETENTION_TICK_S``) deletes in
batches of ``JETADMIN_RETENTION_BATCH`` runs, one short transaction each with a pause between them,
so the engine's own writes never queue behind it; S3 objects of deleted blobs go after the commit.
Expired node-cache rows are pruned by the same task.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from apps.tenancy.models import Tenant
from apps.workflows.models import (
    Blob,
    InstanceEvent,
    InstanceStatus,
    JournalCounter,
    NodeCache,
    NodeRun,
    WorkflowInstance,
)

logger = logging.getLogger(__name__)

ENDED = (InstanceStatus.SUCCEEDED, InstanceStatus.FAILED, InstanceStatus.CANCELED)


@dataclass
class Pruned:
    runs: int = 0
    node_runs: int = 0
    events: int = 0
    blobs: int = 0
    s3_objects: int = 0
    cache_rows: int = 0

    def add(self, other: Pruned) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Policy:
    days: int
    failed_days: int
    max_runs: int

    @classmethod
    def of(cls, tenant: Tenant) -> Policy:
        def pick(value: int | None, default: int) -> int:
            return default if value is None else value

        return cls(
            days=pick(tenant.retention_days, settings.JETADMIN_RETENTION_DAYS),
            failed_days=pick(tenant.retention_failed_days, settings.JETADMIN_RETENTION_FAILED_DAYS),
            max_runs=pick(tenant.retention_max_runs, settings.JETADMIN_RETENTION_MAX_RUNS),
        )


def expired(tenant: Tenant, policy: Policy, now: datetime) -> QuerySet[WorkflowInstance]:
    """The tenant's ended runs past their age (failed ones past theirs)."""
    runs = WorkflowInstance.objects.filter(tenant=tenant)
    by_age = Q(pk__in=[])
    if policy.days:
        by_age |= Q(
            status__in=(InstanceStatus.SUCCEEDED, InstanceStatus.CANCELED),
            ended_at__lt=now - timedelta(days=policy.days),
        )
    if policy.failed_days:
        by_age |= Q(status=InstanceStatus.FAILED, ended_at__lt=now - timedelta(days=policy.failed_days))
    return runs.filter(by_age)


def over_count(tenant: Tenant, policy: Policy, now: datetime, limit: int) -> list[Any]:
    """Up to ``limit`` ended runs beyond the newest ``max_runs`` of each workflow (failed runs within
    their own age are kept)."""
    if not policy.max_runs:
        return []
    ended = WorkflowInstance.objects.filter(tenant=tenant, status__in=ENDED, workflow__isnull=False)
    crowded = (
        ended.values("workflow_id")
        .order_by()
        .annotate(n=Count("id"))
        .filter(n__gt=policy.max_runs)
        .values_list("workflow_id", flat=True)
    )
    keep = Q(status=InstanceStatus.FAILED)
    if policy.failed_days:
        keep &= Q(ended_at__gte=now - timedelta(days=policy.failed_days))
    ids: list[Any] = []
    for workflow_id in crowded:
        beyond = ended.filter(workflow_id=workflow_id).order_by("-created_at", "-id")[policy.max_runs :]
        ids += list(
            ended.filter(pk__in=beyond.values("id"))
            .exclude(keep)
            .values_list("id", flat=True)[: limit - len(ids)]
        )
        if len(ids) >= limit:
            break
    return ids


def _due(tenant: Tenant, policy: Policy, now: datetime, limit: int) -> list[Any]:
    return list(expired(tenant, policy, now).values_list("id", flat=True)[:limit]) or over_count(
        tenant, policy, now, limit
    )


def delete_runs(ids: list[Any]) -> Pruned:
    """Delete these runs with everything that hangs off them, in one transaction; their S3 objects go
    after it commits (a failed object delete is logged, never undoes the rows)."""
    done = Pruned()
    if not ids:
        return done
    with transaction.atomic():
        blobs = Blob.objects.filter(instance_id__in=ids)
        keys = list(blobs.exclude(key="").values_list("key", flat=True))
        # Raw deletes: no per-row signals (the blob signal would fetch every blob's content).
        done.blobs = blobs._raw_delete(blobs.db)
        events = InstanceEvent.objects.filter(instance_id__in=ids)
        done.events = events._raw_delete(events.db)
        node_runs = NodeRun.objects.filter(instance_id__in=ids)
        done.node_runs = node_runs._raw_delete(node_runs.db)
        counters = JournalCounter.objects.filter(instance_id__in=ids)
        counters._raw_delete(counters.db)
        # What is left (widget runs, a schedule's last run, child runs' parent link) through the ORM.
        done.runs = (
            WorkflowInstance.objects.filter(pk__in=ids)
            .only("id")
            .delete()[1]
            .get(WorkflowInstance._meta.label, 0)
        )
        if keys:
            transaction.on_commit(lambda: _delete_objects(keys, done))
    return done


def _delete_objects(keys: list[str], done: Pruned) -> None:
    from apps.workflows import blobs

    bucket = settings.JETADMIN_BLOB_S3_BUCKET
    if not bucket:
        return
    client = blobs._s3()
    for start in range(0, len(keys), 1000):  # S3 deletes at most 1,000 keys per call
        chunk = keys[start : start + 1000]
        try:
            client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
            )
            done.s3_objects += len(chunk)
        except Exception:
            logger.exception("retention: could not delete %d S3 objects from %s", len(chunk), bucket)


def prune(
    *, tenant: Tenant | None = None, now: datetime | None = None, budget_s: float | None = None
) -> Pruned:
    """Delete what the retention settings say is due, batch by batch, until nothing is due or the time
    budget is spent (the next tick goes on)."""
    now = now or timezone.now()
    started = time.monotonic()
    budget = settings.JETADMIN_RETENTION_BUDGET_S if budget_s is None else budget_s
    batch, pause = settings.JETADMIN_RETENTION_BATCH, settings.JETADMIN_RETENTION_PAUSE_S
    total = Pruned()
    tenants = [tenant] if tenant is not None else list(Tenant.objects.order_by("id"))
    for t in tenants:
        policy = Policy.of(t)
        while time.monotonic() - started < budget:
            ids = _due(t, policy, now, batch)
            if not ids:
                break
            total.add(delete_runs(ids))
            time.sleep(pause)
    total.cache_rows = _prune_cache(now, batch)
    if total.runs or total.cache_rows:
        logger.info("retention: pruned %s", total.as_dict())
    return total


def _prune_cache(now: datetime, batch: int) -> int:
    removed = 0
    while True:
        ids = list(NodeCache.objects.filter(expires_at__lt=now).values_list("id", flat=True)[:batch])
        if not ids:
            return removed
        removed += NodeCache.objects.filter(pk__in=ids).delete()[0]
