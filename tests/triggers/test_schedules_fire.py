"""Firing schedules with a controllable clock: on time, timezones and DST, downtime, overlap, locking.

The clock is the ``now`` handed to :func:`schedules_fire_due`. Dates are in 2099 so the periodic tick
of an embedded worker (real time) never finds these schedules due while a test runs.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from apps.tenancy.services import Actor
from apps.triggers import services, tasks
from apps.triggers.cron import next_after
from apps.triggers.models import Schedule
from apps.workflows import services as workflows
from apps.workflows.models import WorkflowInstance


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def schedule(owner_tenant, echo_workflow):
    user, _ = owner_tenant
    workflow = echo_workflow()

    def make(cron: str, tz: str = "UTC", now: datetime | None = None, of=None, **extra) -> Schedule:
        return services.schedule_create(
            actor=Actor(user=user),
            workflow=of or workflow,
            cron_expr=cron,
            timezone_name=tz,
            now=now or utc(2099, 1, 15, 12, 1),
            **extra,
        )

    return make


def runs() -> int:
    return WorkflowInstance.objects.count()


@pytest.mark.django_db
def test_fires_at_the_due_minute_not_before(schedule):
    s = schedule("*/5 * * * *", now=utc(2099, 1, 15, 12, 1), input={"n": 1}, overlap="allow")
    assert s.next_run_at == utc(2099, 1, 15, 12, 5)
    assert services.schedules_fire_due(now=utc(2099, 1, 15, 12, 4, 59)) == 0
    assert runs() == 0
    assert services.schedules_fire_due(now=utc(2099, 1, 15, 12, 5)) == 1
    assert services.schedules_fire_due(now=utc(2099, 1, 15, 12, 5, 30)) == 0  # that tick is done
    s.refresh_from_db()
    assert s.next_run_at == utc(2099, 1, 15, 12, 10)
    assert s.last_run_at == utc(2099, 1, 15, 12, 5)
    instance = WorkflowInstance.objects.get()
    assert s.last_instance_id == instance.id
    assert (
        instance.trigger == "schedule"
        and instance.input == {"n": 1}
        and instance.workflow_id == s.workflow_id
    )
    assert services.schedules_fire_due(now=utc(2099, 1, 15, 12, 10)) == 1
    assert runs() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2099, 1, 15, 0), utc(2099, 1, 15, 8)),  # CET, UTC+1
        (utc(2099, 7, 15, 0), utc(2099, 7, 15, 7)),  # CEST, UTC+2
        (utc(2099, 1, 15, 8), utc(2099, 1, 16, 8)),  # exactly at a tick: the next one
    ],
)
def test_nine_in_berlin_is_eight_utc_in_winter_and_seven_in_summer(schedule, now, expected):
    s = schedule("0 9 * * *", "Europe/Berlin", now=now)
    assert s.next_run_at == expected
    assert services.schedules_fire_due(now=expected - timedelta(seconds=1)) == 0
    assert services.schedules_fire_due(now=expected) == 1


def _follow(s: Schedule, count: int) -> list[datetime]:
    """Let the clock run from tick to tick, firing each one; the UTC times the runs started at."""
    fired = []
    for _ in range(count):
        s.refresh_from_db()
        due = s.next_run_at
        assert due is not None
        assert services.schedules_fire_due(now=due - timedelta(seconds=1)) == 0
        assert services.schedules_fire_due(now=due) == 1
        fired.append(due)
    return fired


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("cron", "tz", "start", "expected"),
    [
        # In 2099 Berlin springs forward on March 29th and falls back on October 25th...
        ("0 9 * * *", "Europe/Berlin", utc(2099, 3, 27, 12), [(3, 28, 8), (3, 29, 7), (3, 30, 7)]),
        ("0 9 * * *", "Europe/Berlin", utc(2099, 10, 23, 12), [(10, 24, 7), (10, 25, 8), (10, 26, 8)]),
        # ...New York springs forward on March 8th.
        ("30 6 * * *", "America/New_York", utc(2099, 3, 7, 12), [(3, 8, 10), (3, 9, 10)]),
        ("0 12 * * *", "UTC", utc(2099, 3, 27, 12), [(3, 28, 12), (3, 29, 12), (3, 30, 12)]),
    ],
)
def test_daily_ticks_follow_the_wall_clock_across_dst_changes(schedule, cron, tz, start, expected):
    # No worker runs these: "allow", so a still-queued run does not make the next tick skip.
    s = schedule(cron, tz, now=start, overlap="allow")
    minute = int(cron.split()[0])
    assert _follow(s, len(expected)) == [utc(2099, m, d, h, minute) for m, d, h in expected]


def test_times_inside_dst_changes_fire_once_or_per_occurrence():
    berlin = "Europe/Berlin"
    # 02:30 does not exist on the spring-forward day: it fires once, an hour later (03:30 CEST).
    assert next_after("30 2 * * *", berlin, utc(2099, 3, 28, 23)) == utc(2099, 3, 29, 1, 30)
    assert next_after("30 2 * * *", berlin, utc(2099, 3, 29, 1, 30)) == utc(2099, 3, 30, 0, 30)
    # 02:30 happens twice on the fall-back day: a fixed-hour job fires at the first one only...
    assert next_after("30 2 * * *", berlin, utc(2099, 10, 24, 23)) == utc(2099, 10, 25, 0, 30)
    assert next_after("30 2 * * *", berlin, utc(2099, 10, 25, 0, 30)) == utc(2099, 10, 26, 1, 30)
    # ...an hourly job at both.
    hourly, t = [], utc(2099, 10, 24, 23)
    for _ in range(4):
        t = next_after("30 * * * *", berlin, t)
        hourly.append(t)
    assert hourly == [
        utc(2099, 10, 24, 23, 30),
        utc(2099, 10, 25, 0, 30),
        utc(2099, 10, 25, 1, 30),
        utc(2099, 10, 25, 2, 30),
    ]
    # Every minute across the spring gap: no instant twice, none skipped in UTC.
    t, seen = utc(2099, 3, 29, 0, 50), []
    for _ in range(20):
        t = next_after("* * * * *", berlin, t)
        seen.append(t)
    assert seen == [utc(2099, 3, 29, 0, 51) + timedelta(minutes=i) for i in range(20)]


@pytest.mark.django_db
def test_a_downtime_of_five_missed_ticks_runs_once(schedule):
    s = schedule("*/10 * * * *", now=utc(2099, 1, 15, 12, 0, 30))
    assert s.next_run_at == utc(2099, 1, 15, 12, 10)
    # Down from 12:01 to 12:55: the 12:10, 12:20, 12:30, 12:40 and 12:50 ticks were missed.
    recovered = utc(2099, 1, 15, 12, 55)
    assert services.schedules_fire_due(now=recovered) == 1
    assert services.schedules_fire_due(now=recovered) == 0
    assert services.schedules_fire_due(now=recovered + timedelta(seconds=30)) == 0
    assert runs() == 1
    s.refresh_from_db()
    assert s.next_run_at == utc(2099, 1, 15, 13, 0)
    assert s.next_run_at > recovered


@pytest.mark.django_db
def test_overlap_skip_starts_nothing_while_the_previous_run_is_open(schedule):
    s = schedule("* * * * *", now=utc(2099, 1, 15, 12, 0, 30))
    assert services.schedules_fire_due(now=utc(2099, 1, 15, 12, 1)) == 1
    first = WorkflowInstance.objects.get()
    assert first.status == "queued"  # no worker in this test: it stays open
    assert services.schedules_fire_due(now=utc(2099, 1, 15, 12, 2)) == 0
    WorkflowInstance.objects.filter(pk=first.pk).update(status="running")
    assert services.schedules_fire_due(now=utc(2099, 1, 15, 12, 3)) == 0
    s.refresh_from_db()
    assert s.skipped_count == 2 and s.last_skipped_at == utc(2099, 1, 15, 12, 3)
    assert s.last_instance_id == first.id and s.next_run_at == utc(2099, 1, 15, 12, 4)
    WorkflowInstance.objects.filter(pk=first.pk).update(status="succeeded")
    assert services.schedules_fire_due(now=utc(2099, 1, 15, 12, 4)) == 1
    assert runs() == 2


@pytest.mark.django_db
def test_overlap_allow_starts_a_run_every_tick(schedule):
    schedule("* * * * *", now=utc(2099, 1, 15, 12, 0, 30), overlap="allow")
    for minute in (1, 2, 3):
        assert services.schedules_fire_due(now=utc(2099, 1, 15, 12, minute)) == 1
    assert WorkflowInstance.objects.filter(status="queued").count() == 3


@pytest.mark.django_db
def test_disabled_schedules_never_fire(schedule, owner_tenant):
    off = schedule("* * * * *", enabled=False)
    assert off.next_run_at is None
    on = schedule("* * * * *", now=utc(2099, 1, 15, 12, 0, 30))
    services.schedule_update(actor=Actor(user=owner_tenant[0]), schedule=on, enabled=False)
    for day in (15, 16, 20):
        assert services.schedules_fire_due(now=utc(2099, 1, day, 13)) == 0
    assert runs() == 0
    # Enabled again, it counts from then: the time it was off is not made up for.
    services.schedule_update(
        actor=Actor(user=owner_tenant[0]), schedule=off, enabled=True, now=utc(2099, 1, 20, 13, 0, 30)
    )
    assert services.schedules_fire_due(now=utc(2099, 1, 20, 13, 1)) == 1


@pytest.mark.django_db
def test_a_deleted_workflow_takes_its_schedules_along(schedule, owner_tenant):
    s = schedule("* * * * *")
    workflows.workflow_delete(actor=Actor(user=owner_tenant[0]), workflow=s.workflow)
    assert not Schedule.objects.exists()
    assert services.schedules_fire_due(now=utc(2099, 2, 1)) == 0


@pytest.mark.django_db
def test_a_schedule_that_cannot_start_records_why_and_blocks_no_other(schedule, echo_workflow, monkeypatch):
    empty = echo_workflow("Empty")
    empty.current_version = None
    empty.save()
    no_graph = schedule("* * * * *", now=utc(2099, 1, 15, 12, 0, 30), of=empty)
    broken = schedule("* * * * *", now=utc(2099, 1, 15, 12, 0, 30))
    fine = schedule("* * * * *", now=utc(2099, 1, 15, 12, 0, 30))
    real_execute = services.workflow_execute

    def execute(**kwargs):
        if kwargs["input"] == {"broken": True}:
            raise RuntimeError("database exploded: secret detail")
        return real_execute(**kwargs)

    Schedule.objects.filter(pk=broken.pk).update(input={"broken": True})
    monkeypatch.setattr(services, "workflow_execute", execute)
    assert services.schedules_fire_due(now=utc(2099, 1, 15, 12, 1)) == 1
    no_graph.refresh_from_db()
    broken.refresh_from_db()
    fine.refresh_from_db()
    assert no_graph.last_error == workflows.MSG_NO_VERSION and no_graph.last_instance is None
    assert broken.last_error == services.MSG_START_FAILED and "secret" not in broken.last_error
    assert fine.last_error == "" and fine.last_instance is not None
    for s in (no_graph, broken, fine):
        assert s.next_run_at == utc(2099, 1, 15, 12, 2) and s.enabled
    assert runs() == 1


@pytest.mark.django_db
def test_the_periodic_task_and_the_command_fire_due_schedules(schedule):
    real_now = datetime.now(UTC)
    schedule("* * * * *", now=real_now - timedelta(days=1))  # due for a day: fires once
    assert tasks.fire_due_schedules() == 1
    assert tasks.fire_due_schedules() == 0
    schedule("0 9 * * *", "Europe/Berlin", now=utc(2099, 1, 15, 0))
    out = StringIO()
    call_command("fire_schedules", "--now", "2099-01-15T07:59:00", stdout=out)
    assert out.getvalue().strip() == "0 run(s) started"
    call_command("fire_schedules", "--now", "2099-01-15T09:00:00+01:00", stdout=out)
    assert out.getvalue().strip().endswith("1 run(s) started")
    assert runs() == 2


@pytest.mark.django_db(transaction=True)
def test_scheduled_run_succeeds_on_the_worker_with_trigger_schedule(schedule, embedded_worker):
    s = schedule("0 9 * * *", "Europe/Berlin", now=utc(2099, 7, 1), input={"city": "Berlin"})
    assert services.schedules_fire_due(now=s.next_run_at) == 1
    s.refresh_from_db()
    instance, timed_out = workflows.instance_wait(instance=s.last_instance, timeout_s=30)
    assert not timed_out
    assert instance.status == "succeeded", instance.error
    assert instance.trigger == "schedule" and instance.input == {"city": "Berlin"}
    assert instance.output == {"got": {"city": "Berlin"}}


@pytest.mark.django_db(transaction=True)
def test_two_tickers_at_once_fire_each_tick_once(schedule, embedded_worker):
    made = {schedule(f"{m} 12 * * *", now=utc(2099, 1, 15, 11), overlap="allow").pk: m for m in range(5)}
    now = utc(2099, 1, 15, 12, 30)
    barrier = threading.Barrier(4)
    results: list[int] = []
    crashes: list[BaseException] = []

    def tick() -> None:
        try:
            barrier.wait()
            results.append(services.schedules_fire_due(now=now))
        except BaseException as exc:  # a crashed ticker must fail the test, not only warn
            crashes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a ticker did not return within 60 s"
    assert not crashes, crashes
    assert len(results) == 4 and sum(results) == 5, results
    assert runs() == 5
    # Each schedule's next tick is tomorrow at its own minute (12:00 ... 12:04 UTC), known up front.
    expected = {pk: utc(2099, 1, 16, 12, minute) for pk, minute in made.items()}
    assert dict(Schedule.objects.values_list("pk", "next_run_at")) == expected
    assert set(WorkflowInstance.objects.values_list("trigger", flat=True)) == {"schedule"}
