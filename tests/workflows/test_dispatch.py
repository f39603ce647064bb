"""Admission to the broker (engine/dispatch.py): held when saturated, let in by weighted fair shares.

Driven in this process on the embedded broker with no worker consuming, so the backlog is exactly
what the test published.
"""

from __future__ import annotations

from collections import Counter

import pytest

from apps.tenancy import services as tenancy
from apps.workflows import services
from apps.workflows.engine import dispatch, runtime
from apps.workflows.models import NodeRun
from jetadmin import embedded
from jetadmin.celery import app
from tests.workflows.test_sql_count import CHAIN

pytestmark = pytest.mark.django_db(transaction=True)


def test_shares_follow_the_weights_place_by_place_and_never_exceed_what_is_held() -> None:
    shares = dispatch.Shares()
    assert shares.split(9, {"a": 100, "b": 100}, {"a": 2, "b": 1}) == {"a": 6, "b": 3}
    assert shares.split(9, {"a": 100, "b": 1}, {}) == {"a": 8, "b": 1}
    assert shares.split(5, {"a": 2, "b": 1}, {}) == {"a": 2, "b": 1}  # less held than room
    assert shares.split(0, {"a": 2}, {}) == {}
    # One place at a time (a worker freed one slot): A, B, A, A, B, A, ...
    one = [next(iter(shares.split(1, {"a": 9, "b": 9}, {"a": 2, "b": 1}))) for _ in range(300)]
    assert Counter(one) == {"a": 200, "b": 100}
    assert "".join(one[:6]) in ("abaaba", "aabaab", "baabaa")
    # A tenant with nothing held banks no credit: when it comes back it gets its share, not a burst.
    for _ in range(50):
        shares.split(1, {"a": 9}, {"a": 2, "b": 1})
    back = [next(iter(shares.split(1, {"a": 9, "b": 9}, {"a": 2, "b": 1}))) for _ in range(6)]
    assert Counter(back) == {"a": 4, "b": 2}


def purge() -> None:
    """Empty the broker (as if a worker took every message) and forget the cached backlog."""
    app.control.purge()
    dispatch.backlog(fresh=True)


@pytest.fixture
def quiet_broker(settings):
    embedded.stop()  # nobody consumes: the backlog is what the test published
    purge()
    settings.JETADMIN_DISPATCH_BACKLOG = 2
    yield
    purge()


def _start(user, tenant, n):
    return [
        services.workflow_test(actor=tenancy.Actor(user=user), tenant=tenant, graph=CHAIN, input={"x": 1})
        for _ in range(n)
    ]


def _held(instances) -> int:
    return NodeRun.objects.filter(instance__in=instances, lease_owner=dispatch.HELD, status="queued").count()


def test_saturated_backlog_holds_new_work_and_refill_lets_it_in_by_weight(
    quiet_broker, make_user, make_tenant, settings
):
    user_a, user_b = make_user(), make_user()
    a, b = make_tenant("A", owner=user_a), make_tenant("B", owner=user_b)
    a.share_weight = 2
    a.save()
    runs_a = _start(user_a, a, 8)
    assert dispatch.backlog(fresh=True) == 2 and _held(runs_a) == 6  # the first two went to the broker
    runs_b = _start(user_b, b, 4)
    assert _held(runs_b) == 4
    # A worker took both messages: three places, shared 2:1 — and B's oldest run is among them.
    purge()
    settings.JETADMIN_DISPATCH_BACKLOG = 3
    assert dispatch.refill() == 3
    assert (_held(runs_a), _held(runs_b)) == (4, 3)
    sent_b = NodeRun.objects.filter(instance__in=runs_b, node_id="start", lease_owner="").values_list(
        "instance_id", flat=True
    )
    assert list(sent_b) == [runs_b[0].id]
    assert dispatch.backlog(fresh=True) == 3
    assert dispatch.refill() == 0  # no room left: nothing more


def test_held_nodes_run_once_dispatched_and_the_reconciler_dispatches_them(
    quiet_broker, make_user, make_tenant, settings
):
    user = make_user()
    tenant = make_tenant("Solo", owner=user)
    runs = _start(user, tenant, 4)
    assert _held(runs) == 2
    # A held node is not "presumed lost" when its requeue time passes: only a refill sends it.
    NodeRun.objects.filter(instance__in=runs).update(available_at=runtime.now_utc())
    purge()  # both messages lost (Redis restarted empty)
    done = runtime.reconcile()
    assert (done.sent, done.dispatched, _held(runs)) == (2, 0, 2)  # the two presumed lost fill the room
    embedded.start()  # a worker runs those two; after each task it lets the held ones in
    for instance in runs:
        instance, timed_out = services.instance_wait(instance=instance, timeout_s=30)
        assert not timed_out and instance.status == "succeeded", instance.error
