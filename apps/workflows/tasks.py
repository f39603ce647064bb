"""Celery tasks of the workflow engine: thin, take ids, call the engine.

``execute_node`` is ``acks_late`` + ``reject_on_worker_lost`` and idempotent: its claim is a
conditional update, so a redelivered or duplicate message finds nothing to do. ``reconcile`` (beat,
every second) re-sends what the database says should run: see :func:`runtime.reconcile`.
"""

from __future__ import annotations

from celery import shared_task

from apps.workflows.engine import dispatch, runtime


@shared_task(name="workflows.execute_node", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def execute_node(instance_id: str, node_id: str, iteration: str = "") -> str | None:
    try:
        return runtime.run_task(instance_id, node_id, iteration)
    finally:
        dispatch.after_task()  # a worker slot frees up: let held work in, in fair shares


@shared_task(name="workflows.wake_node", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def wake_node(instance_id: str, node_id: str, iteration: str = "") -> str | None:
    """Sent with an ETA at a delay's end or a retry's backoff: run the node as soon as it is due."""
    try:
        return runtime.wake(instance_id, node_id, iteration)
    finally:
        dispatch.after_task()


@shared_task(name="workflows.reconcile", ignore_result=True)
def reconcile() -> int:
    from jetadmin import metrics

    done = runtime.reconcile()
    if done.expired:
        metrics.LEASES_EXPIRED.inc(done.expired)
    for reason, count in (("sent", done.sent), ("woken", done.woken), ("dispatched", done.dispatched)):
        if count:
            metrics.RESENDS.labels(reason).inc(count)
    return done.total()


@shared_task(name="workflows.prune", ignore_result=True)
def prune() -> dict[str, int]:
    """Retention (beat, every JETADMIN_RETENTION_TICK_S): delete ended runs past their tenant's limits."""
    from apps.workflows import retention

    return retention.prune().as_dict()


@shared_task(name="workflows.alert_failure", acks_late=True, ignore_result=True)
def alert_failure(instance_id: str) -> str | None:
    """A run failed: start its failure alert, if its workflow or tenant has one (once per failure)."""
    from apps.workflows import alerts

    return alerts.alert_failure(instance_id)
