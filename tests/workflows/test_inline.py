"""Chains run inline: a worker runs a node's single released successor itself, without a broker hop,
and a successor released that way but never claimed (the worker died) is sent by the waker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.tenancy import services as tenancy
from apps.workflows import services
from apps.workflows.engine import runtime
from apps.workflows.models import InstanceEvent, NodeRun
from jetadmin import embedded
from tests.workflows.test_sql_count import CHAIN

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def instance(owner_tenant):
    embedded.stop()  # nothing but this test may claim the nodes
    user, tenant = owner_tenant
    return services.workflow_test(actor=tenancy.Actor(user=user), tenant=tenant, graph=CHAIN, input={"x": 7})


def test_a_chain_runs_in_one_task(instance):
    assert runtime.run_task(str(instance.id), "start") == "succeeded"
    instance.refresh_from_db()
    assert instance.status == "succeeded" and instance.output == 7
    owners = set(NodeRun.objects.filter(instance=instance).values_list("started_at", flat=True))
    assert len(owners) == 4
    types = list(InstanceEvent.objects.filter(instance=instance, node_id="b").values_list("type", flat=True))
    assert types == ["node.queued", "node.running", "node.succeeded"]


def test_an_inline_successor_left_behind_by_a_dying_worker_still_runs(instance):
    """The worker saves "a" and would run "b" itself next, but dies first. On SQLite "b" was released
    deferred for a short grace and the waker sends it after that; on PostgreSQL the statement that saved
    "a" already claimed "b" for this worker, so it is a lost lease like any other and the reconciler
    queues it again once the lease runs out."""
    iid = str(instance.id)
    runtime.execute(iid, "start")
    runtime._local.inline = True  # as inside run_task, but the worker "dies" before running the next node
    try:
        runtime.execute(iid, "a")
    finally:
        runtime._local.inline = False
    b = NodeRun.objects.get(instance=instance, node_id="b")
    assert runtime.execute(iid, "b") is None  # a plain message does not take it over
    if connection.vendor == "postgresql":
        assert (b.status, b.attempt, b.lease_owner == runtime.worker_id()) == ("running", 1, True)
        assert runtime.wake_due() == 0  # its lease is still valid
        NodeRun.objects.filter(pk=b.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        attempts = 2  # the claim that died counts, as for any worker lost mid-node
    else:
        assert (b.status, b.deferred) == ("queued", True)
        assert b.available_at is not None
        assert b.available_at > timezone.now() + timedelta(seconds=runtime.INLINE_GRACE_S - 2)
        assert runtime.wake_due() == 0  # not due yet
        NodeRun.objects.filter(pk=b.pk).update(available_at=timezone.now() - timedelta(seconds=1))
        attempts = 1
    embedded.start()  # its beat ticker runs the reconciler, whose message its worker consumes
    try:
        instance, timed_out = services.instance_wait(instance=instance, timeout_s=15)
        assert not timed_out and instance.status == "succeeded" and instance.output == 7
        b.refresh_from_db()
        assert (b.status, b.deferred, b.attempt) == ("succeeded", False, attempts)
    finally:
        embedded.quiesce()


def test_budget_zero_sends_every_node_through_the_broker(instance, settings):
    settings.JETADMIN_INLINE_BUDGET_S = 0
    assert runtime.run_task(str(instance.id), "start") == "succeeded"
    a = NodeRun.objects.get(instance=instance, node_id="a")
    assert (a.status, a.deferred) == ("queued", False)
    assert a.available_at is not None  # when the reconciler would presume its message lost
