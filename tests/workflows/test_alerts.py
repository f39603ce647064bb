"""Failure alerts: a failing scheduled (webhook, API) run starts its error workflow once, an error
workflow that fails never alerts (not even when it names itself), a notify alert reaches a real local
HTTP server, and the settings are checked (400 with the field named)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.tenancy.models import Tenant, User
from apps.tenancy.services import Actor
from apps.triggers import services as triggers
from apps.triggers.models import Schedule
from apps.workflows import alerts, services
from apps.workflows.models import Trigger, Workflow, WorkflowInstance
from tests.queries.test_http_nodes import Recorder, server  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db(transaction=True)

FAILING = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "boom", "type": "javascript", "inputs": {"code": "throw new Error('the report broke')"}},
    ],
    "edges": [{"source": "start", "target": "boom"}],
}
QUIET = {"nodes": [{"id": "start", "type": "start"}], "edges": []}


def wait_for(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def ended(run: WorkflowInstance) -> WorkflowInstance:
    run, timed_out = services.instance_wait(instance=run, timeout_s=30)
    assert not timed_out
    return run


def make(tenant: Tenant, user: User, name: str, graph: dict[str, Any]) -> Workflow:
    return services.workflow_create(actor=Actor(user=user), tenant=tenant, name=name, graph=graph)


def test_a_failing_scheduled_run_starts_its_error_workflow_once_and_a_failing_error_workflow_never_alerts(
    embedded_worker: Any, owner_tenant: tuple[User, Tenant]
) -> None:
    user, tenant = owner_tenant
    actor = Actor(user=user)
    errors = make(tenant, user, "On failure", FAILING)  # it fails too ...
    services.workflow_update(
        actor=actor, workflow=errors, on_failure={"workflow": str(errors.id)}
    )  # ... on itself
    report = make(tenant, user, "Nightly report", FAILING)
    services.workflow_update(actor=actor, workflow=report, on_failure={"workflow": str(errors.id)})
    schedule = triggers.schedule_create(actor=actor, workflow=report, cron_expr="0 3 * * *")
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now() - timedelta(seconds=1))

    assert triggers.schedules_fire_due() == 1
    failed = WorkflowInstance.objects.get(workflow=report)
    assert failed.trigger == Trigger.SCHEDULE and ended(failed).status == "failed"

    wait_for(lambda: WorkflowInstance.objects.filter(workflow=errors).exists())
    alert = ended(WorkflowInstance.objects.get(workflow=errors))
    assert alert.trigger == Trigger.ERROR and alert.status == "failed"
    summary = alert.input["failed_run"]
    assert summary["id"] == str(failed.id) and summary["trigger"] == "schedule"
    assert summary["workflow"] == {"id": str(report.id), "name": "Nightly report"}
    assert "the report broke" in summary["error"]["message"]
    assert summary["url"] == f"/t/{tenant.id}/runs/{failed.id}/"

    time.sleep(1.0)  # the error run's own failure has had its chance to alert (it must not)
    assert WorkflowInstance.objects.filter(workflow=errors).count() == 1
    alert.refresh_from_db()
    assert alert.alerted_at is None
    # A redelivered alert message for the same failure is a no-op.
    assert alerts.alert_failure(str(failed.id)) is None
    assert WorkflowInstance.objects.filter(trigger=Trigger.ERROR).count() == 1
    failed.refresh_from_db()
    assert failed.alerted_at is not None


def test_test_runs_never_alert_and_a_workflow_setting_wins_over_the_tenants(
    embedded_worker: Any, owner_tenant: tuple[User, Tenant]
) -> None:
    user, tenant = owner_tenant
    actor = Actor(user=user)
    tenant_wide = make(
        tenant, user, "Tenant alert", {"nodes": [{"id": "start", "type": "start"}], "edges": []}
    )
    own = make(tenant, user, "Own alert", {"nodes": [{"id": "start", "type": "start"}], "edges": []})
    from apps.tenancy import services as tenancy

    tenancy.tenant_update(actor=actor, tenant=tenant, on_failure={"workflow": str(tenant_wide.id)})
    plain = make(tenant, user, "Plain", FAILING)
    special = make(tenant, user, "Special", FAILING)
    services.workflow_update(actor=actor, workflow=special, on_failure={"workflow": str(own.id)})

    ended(services.workflow_test(actor=actor, tenant=tenant, graph=FAILING, workflow=plain))
    first = ended(services.workflow_execute(actor=actor, workflow=plain))
    second = ended(services.workflow_execute(actor=actor, workflow=special))
    assert first.status == second.status == "failed"
    wait_for(lambda: WorkflowInstance.objects.filter(trigger=Trigger.ERROR).count() == 2)
    time.sleep(0.5)
    alerts_by_workflow = dict(
        WorkflowInstance.objects.filter(trigger=Trigger.ERROR).values_list("workflow__name", "input")
    )
    assert alerts_by_workflow["Tenant alert"]["failed_run"]["id"] == str(first.id)
    assert alerts_by_workflow["Own alert"]["failed_run"]["id"] == str(second.id)
    assert len(alerts_by_workflow) == 2  # the test run did not alert


def test_a_notify_alert_reaches_the_webhook(
    embedded_worker: Any,
    owner_tenant: tuple[User, Tenant],
    server: Recorder,  # noqa: F811
) -> None:
    user, tenant = owner_tenant
    actor = Actor(user=user)
    report = make(tenant, user, "Nightly report", FAILING)
    services.workflow_update(
        actor=actor,
        workflow=report,
        on_failure={"notify": {"channel": "webhook", "url": server.url + "/alerts"}},
    )
    failed = ended(services.workflow_execute(actor=actor, workflow=report, trigger=Trigger.WEBHOOK))
    assert failed.status == "failed"
    wait_for(lambda: WorkflowInstance.objects.filter(trigger=Trigger.ERROR).exists())
    alert = ended(WorkflowInstance.objects.get(trigger=Trigger.ERROR))
    assert alert.status == "succeeded", alert.error
    assert len(server.requests) == 1
    body = server.requests[0]["body"].decode()
    assert str(failed.id) in body and "the report broke" in body and "Nightly report" in body


def test_the_settings_are_checked(owner_tenant: tuple[User, Tenant], make_tenant: Any) -> None:
    user, tenant = owner_tenant
    client = APIClient()
    client.force_authenticate(user)
    report = make(tenant, user, "Report", FAILING)
    elsewhere = make(make_tenant("Other"), user, "Elsewhere", FAILING)
    url = f"/api/v1/tenants/{tenant.id}/workflows/{report.id}/"
    for bad, field in (
        ({"workflow": str(elsewhere.id)}, "on_failure.workflow"),
        ({"workflow": "not-a-uuid"}, "on_failure.workflow"),
        ({"notify": {"channel": "email"}}, "on_failure.notify.to"),
        ({"notify": {"channel": "pigeon"}}, "on_failure.notify.channel"),
        ({"notify": {"channel": "webhook", "url": "http://x", "body": "mine"}}, "on_failure.notify.body"),
        ({"page": "me"}, "on_failure"),
        ("yes", "on_failure"),
    ):
        response = client.patch(url, {"on_failure": bad}, format="json")
        assert response.status_code == 400, (bad, response.content)
        assert field in response.json()["error"]["details"], (bad, response.json())
    good = {"notify": {"channel": "email", "to": "ops@example.com"}}
    response = client.patch(url, {"on_failure": good}, format="json")
    assert response.status_code == 200 and response.json()["on_failure"] == good
    response = client.patch(url, {"on_failure": None}, format="json")
    assert response.status_code == 200 and response.json()["on_failure"] is None

    tenant_url = f"/api/v1/tenants/{tenant.id}/"
    response = client.patch(tenant_url, {"on_failure": {"workflow": str(elsewhere.id)}}, format="json")
    assert response.status_code == 400 and "on_failure.workflow" in response.json()["error"]["details"]
    response = client.patch(tenant_url, {"on_failure": {"workflow": str(report.id)}}, format="json")
    assert response.status_code == 200 and response.json()["on_failure"] == {"workflow": str(report.id)}
