"""The reconciler and leases, driven step by step in this process (no worker consumes meanwhile).

Covers each thing a dead, frozen or unlucky worker can leave behind: an expired lease, a lost message,
a finished scope nobody closed; lease renewal for long nodes; a lost lease's save affecting no row;
the ``worker_lost`` cap; the configuration check on visibility_timeout; fair-sharing throttles.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.utils import timezone

from apps.tenancy import services as tenancy
from apps.workflows import services
from apps.workflows.engine import fairness, leases, runtime
from apps.workflows.models import InstanceEvent, NodeRun, WorkflowInstance
from jetadmin import embedded
from jetadmin.celery import app
from tests.conftest import ROOT, subprocess_env
from tests.workflows import testnodes  # noqa: F401  (registers the "sleep" node type)
from tests.workflows.test_sql_count import CHAIN

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "slow", "type": "sleep", "inputs": {"seconds": 1.2}},
        {"id": "end", "type": "end", "inputs": {"output": "{{slow.slept}}"}},
    ],
    "edges": [{"from": "start", "to": "slow"}, {"from": "slow", "to": "end"}],
}


@pytest.fixture
def start_run(owner_tenant):
    embedded.stop()  # nothing but this test may claim the nodes
    app.control.purge()  # messages left by earlier tests would count as a saturated backlog
    fairness.clear()
    user, tenant = owner_tenant

    def start(graph=CHAIN, input=None):
        return services.workflow_test(
            actor=tenancy.Actor(user=user), tenant=tenant, graph=graph, input=input or {"x": 7}
        )

    yield start
    fairness.clear()


def claim_as(instance, node_id, owner, lease_s=30.0):
    return runtime._claim(runtime.run_data(str(instance.id)), node_id, "", owner, lease_s)


def node(instance, node_id):
    return NodeRun.objects.get(instance=instance, node_id=node_id, iteration="")


def events(instance, node_id):
    return list(InstanceEvent.objects.filter(instance=instance, node_id=node_id).values_list("type", "data"))


def test_an_expired_lease_is_queued_again_and_the_old_owner_cannot_save(start_run, settings):
    settings.JETADMIN_INLINE_BUDGET_S = 0
    instance = start_run()
    iid = str(instance.id)
    assert runtime.execute(iid, "start") == "succeeded"
    claimed = claim_as(instance, "a", "dead-worker")  # a worker claims "a", then dies
    assert claimed is not None
    assert runtime.reconcile().expired == 0  # the lease is still valid: nothing to do
    NodeRun.objects.filter(instance=instance, node_id="a").update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    done = runtime.reconcile()
    assert done.expired == 1
    a = node(instance, "a")
    assert (a.status, a.lease_owner, a.deferred) == ("queued", "", False)
    assert ("node.queued", {"status": "queued", "attempt": 1, "reason": "lease_expired"}) in events(
        instance, "a"
    )
    # Another worker runs it to the end; the dead worker's late save affects no row.
    assert runtime.execute(iid, "a", owner="worker-2") == "succeeded"
    run_id, attempt, _, _ = claimed
    stale = runtime.Attempt(runtime.run_data(iid), "a", "", run_id, "dead-worker", attempt, {})
    assert runtime._succeed(stale, {"late": True}, "output") is None
    assert node(instance, "a").output != {"late": True}
    assert [t for t, _ in events(instance, "a")].count("node.succeeded") == 1
    runtime.run_task(iid, "b")
    runtime.run_task(iid, "end")
    instance.refresh_from_db()
    assert instance.status == "succeeded" and instance.output == 7


def test_a_lost_message_is_sent_again_after_requeue_after(start_run, settings):
    settings.JETADMIN_INLINE_BUDGET_S = 0
    instance = start_run()
    start = node(instance, "start")
    assert start.status == "queued" and start.available_at is not None
    assert runtime.reconcile().sent == 0  # its message may still be on the way
    NodeRun.objects.filter(pk=start.pk).update(available_at=timezone.now() - timedelta(seconds=1))
    assert runtime.reconcile().sent == 1  # presumed lost (e.g. Redis restarted empty): sent again
    start.refresh_from_db()
    assert start.available_at > timezone.now() + timedelta(seconds=settings.JETADMIN_REQUEUE_AFTER_S - 5)
    assert runtime.reconcile().sent == 0  # once per requeue period, not every tick


def test_a_scope_left_open_by_a_dead_worker_is_completed(start_run, settings):
    settings.JETADMIN_INLINE_BUDGET_S = 0
    instance = start_run()
    iid = str(instance.id)
    for node_id in ("start", "a", "b", "end"):
        runtime.execute(iid, node_id)
    # Simulate a worker killed between the last commit and closing the run.
    WorkflowInstance.objects.filter(pk=instance.pk).update(status="running", ended_at=None, output=None)
    assert runtime.reconcile().completed == 1
    instance.refresh_from_db()
    assert instance.status == "succeeded" and instance.output == 7
    assert runtime.reconcile().completed == 0


def test_a_node_that_keeps_losing_its_worker_fails_with_worker_lost(start_run, settings):
    settings.JETADMIN_INLINE_BUDGET_S = 0
    settings.JETADMIN_MAX_LEASE_LOSSES = 2
    instance = start_run()
    iid = str(instance.id)
    runtime.execute(iid, "start")
    for i in range(3):  # max_attempts (1) + 2 lost leases
        assert claim_as(instance, "a", f"dead-{i}") is not None
        NodeRun.objects.filter(instance=instance, node_id="a").update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        runtime.reconcile()
    a = node(instance, "a")
    assert a.status == "failed" and a.error["code"] == "worker_lost" and a.attempt == 3
    instance.refresh_from_db()
    assert instance.status == "failed" and instance.error["node_id"] == "a"


def test_a_long_node_renews_its_lease_and_runs_once(start_run, settings, embedded_worker):
    settings.JETADMIN_LEASE_S = 0.4  # renewed every ~0.13 s while the 1.2 s node sleeps
    instance = start_run(SLOW)
    seen = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        slow = node(instance, "slow")
        if slow.status == "running" and slow.lease_expires_at:
            seen.append(slow.lease_expires_at)
        runtime.reconcile()  # an eager reconciler must find nothing expired
        if WorkflowInstance.objects.get(pk=instance.pk).status == "succeeded":
            break
        time.sleep(0.05)
    slow = node(instance, "slow")
    assert (slow.status, slow.attempt) == ("succeeded", 1), slow.error
    assert len(set(seen)) >= 3, "the lease was not renewed while the node ran"
    assert [t for t, _ in events(instance, "slow")].count("node.running") == 1


def test_renewal_stops_extending_a_lease_that_was_taken_over(start_run):
    instance = start_run()
    claimed = claim_as(instance, "start", "me")
    assert claimed is not None
    run_id = claimed[0]
    NodeRun.objects.filter(pk=run_id).update(lease_owner="someone-else")
    renewer = leases.Renewer()
    renewer.renew({run_id: "me"})
    assert run_id in renewer.lost


def test_reconcile_command_prints_what_it_did(start_run, capsys):
    start_run()
    call_command("reconcile")
    assert "expired leases re-queued: 0" in capsys.readouterr().out


def test_startup_refuses_a_visibility_timeout_shorter_than_twice_the_time_limit():
    env = subprocess_env(
        REDIS_URL="redis://127.0.0.1:6379/15", CELERY_TASK_TIME_LIMIT="600", CELERY_VISIBILITY_TIMEOUT="900"
    )
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "jetadmin.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "CELERY_VISIBILITY_TIMEOUT (900 s) must be at least twice CELERY_TASK_TIME_LIMIT (600 s)" in (
        result.stderr
    )


def test_running_limit_refuses_the_claim_and_defers_the_node(start_run, settings):
    settings.JETADMIN_TENANT_MAX_RUNNING_NODES = 1
    first, second = start_run(), start_run()
    assert claim_as(first, "start", "w1") is not None  # the tenant's one slot
    assert claim_as(second, "start", "w2") is None  # refused: over the limit
    held = node(second, "start")
    assert (held.status, held.deferred, held.lease_owner) == ("queued", True, fairness.THROTTLED)
    assert runtime.reconcile().sent == 0  # the tenant's one slot is still taken: not sent (no churn)
    NodeRun.objects.filter(instance=first, node_id="start").update(status="succeeded")
    assert runtime.reconcile().sent == 1  # a slot freed: sent
    held.refresh_from_db()
    assert (held.deferred, held.lease_owner) == (False, "")
    assert runtime.reconcile().sent == 0
    assert claim_as(second, "start", "w2") is not None


def test_throttled_nodes_are_sent_only_as_slots_free_up(start_run, settings):
    settings.JETADMIN_TENANT_MAX_RUNNING_NODES = 2
    runs = [start_run() for _ in range(6)]
    claimed = [claim_as(r, "start", f"w{i}") for i, r in enumerate(runs)]
    assert [c is not None for c in claimed] == [True, True, False, False, False, False]
    assert runtime.reconcile().sent == 0
    NodeRun.objects.filter(instance=runs[0], node_id="start").update(status="succeeded")
    assert runtime.reconcile().sent == 1  # one slot free: the oldest throttled node, only
    sent = [node(r, "start").lease_owner == "" for r in runs[2:]]
    assert sent == [True, False, False, False]


def test_a_tenant_override_beats_the_default(start_run, settings, owner_tenant):
    settings.JETADMIN_TENANT_MAX_RUNNING_NODES = 1
    _, tenant = owner_tenant
    tenant.max_running_nodes = 0  # this tenant: no limit
    tenant.save()
    first, second = start_run(), start_run()
    assert claim_as(first, "start", "w1") is not None
    assert claim_as(second, "start", "w2") is not None


def test_start_rate_defers_runs_beyond_the_limit(start_run, settings):
    settings.JETADMIN_TENANT_MAX_STARTS_PER_MINUTE = 2
    runs = [start_run() for _ in range(5)]
    roots = [node(r, "start") for r in runs]
    assert [r.deferred for r in roots] == [False, False, True, True, True]
    later = roots[2].available_at - timezone.now()
    assert timedelta(seconds=55) < later <= timedelta(seconds=60)
    assert roots[4].available_at - timezone.now() > timedelta(seconds=115)
    throttled = InstanceEvent.objects.get(instance=runs[2], type="instance.queued")
    assert "throttled_until" in throttled.data


class _FailingOnce(leases.Renewer):
    """A renewer whose lease store (the database) fails on its first tick."""

    def __init__(self) -> None:
        super().__init__()
        self.to_fail = 1

    def renew(self, held: dict[int, str]) -> None:
        if self.to_fail:
            self.to_fail -= 1
            raise OperationalError("server closed the connection unexpectedly")
        super().renew(held)


def test_renewer_thread_survives_a_failing_lease_store_and_renews_afterwards(start_run, settings):
    settings.JETADMIN_LEASE_S = 0.3  # a renewal tick every 0.1 s
    instance = start_run()
    claimed = claim_as(instance, "start", "me", lease_s=0.3)
    assert claimed is not None
    run_id = claimed[0]
    first_expiry = node(instance, "start").lease_expires_at
    renewer = _FailingOnce()
    with renewer.hold(run_id, "me"):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (renewer.failures and renewer.renewals):
            if renewer.thread is None or not renewer.thread.is_alive():
                break
            time.sleep(0.02)
        assert renewer.thread is not None and renewer.thread.is_alive(), "the renewer thread died"
        assert (renewer.failures, renewer.to_fail) == (1, 0), "the lease store never failed"
        assert renewer.renewals >= 1, "no renewal after the failed tick"
    renewed = node(instance, "start")
    assert renewed.lease_owner == "me" and renewed.lease_expires_at > first_expiry
    assert run_id not in renewer.lost
