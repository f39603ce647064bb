"""The inbox and the approvers' email: a step waiting for named approvers is in their inbox only and
emails them (through the real send task on the in-process worker); a step naming nobody is in every
member's inbox; a data form is answered from the run page with fields built from its schema."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from apps.tenancy.models import Tenant, User
from apps.tenancy.services import Actor
from apps.workflows import services
from apps.workflows.models import WorkflowInstance
from tests.conftest import PASSWORD, add_member

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(instance: WorkflowInstance, status: str, timeout: float = 20) -> WorkflowInstance:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        instance.refresh_from_db()
        if instance.status == status:
            return instance
        time.sleep(0.05)
    raise AssertionError(f"run is {instance.status}, not {status}")


def signed_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def graph(step: dict[str, Any], handle: str) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "start"},
            step,
            {"id": "end", "type": "end", "inputs": {"output": "{{ask}}"}},
        ],
        "edges": [{"from": "start", "to": "ask"}, {"from": "ask", "to": "end", "handle": handle}],
    }


def test_named_approvers_get_an_email_and_only_they_see_the_step(
    embedded_worker: Any, make_user: Callable[..., User], make_tenant: Callable[..., Tenant], settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.JETADMIN_PUBLIC_URL = "https://jet.example.com"
    mail.outbox = []
    owner, approver, other = make_user(), make_user(), make_user()
    tenant = make_tenant("Ops", owner=owner)
    add_member(tenant, approver, "editor")
    add_member(tenant, other, "editor")
    step = {
        "id": "ask",
        "type": "approval",
        "inputs": {"approvers": [approver.username, "Boss@Example.com"], "message": "Refund order 42?"},
    }
    workflow = services.workflow_create(
        actor=Actor(user=owner), tenant=tenant, name="Refunds", graph=graph(step, "approved")
    )
    run = wait_for(services.workflow_execute(actor=Actor(user=owner), workflow=workflow), "waiting")

    deadline = time.monotonic() + 15
    while not mail.outbox and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(mail.outbox) == 1, mail.outbox
    message = mail.outbox[0]
    assert sorted(message.to) == sorted([approver.email.lower(), "boss@example.com"])
    assert "Refunds" in message.subject and "Refund order 42?" in message.body
    assert f"https://jet.example.com/t/{tenant.id}/runs/{run.id}/" in message.body

    inbox = reverse("inbox", args=[tenant.id])
    assert b"Refund order 42?" in signed_in(approver).get(inbox).content
    assert b"Refund order 42?" not in signed_in(other).get(inbox).content
    assert b"Nothing waits for you" in signed_in(other).get(inbox).content

    # the approver answers from the run page; the run goes on
    page = reverse("run-action", args=[tenant.id, run.id, "approve"])
    response = signed_in(approver).post(page, {"node_id": "ask", "comment": "fine"})
    assert response.status_code == 302
    run = wait_for(run, "succeeded")
    assert run.output["decision"] == "approved" and run.output["comment"] == "fine"
    assert len(mail.outbox) == 1  # one email per wait
    assert b"Refund order 42?" not in signed_in(approver).get(inbox).content


def test_a_data_form_is_answered_from_the_run_page(
    embedded_worker: Any, make_user: Callable[..., User], make_tenant: Callable[..., Tenant]
) -> None:
    owner, member = make_user(), make_user()
    tenant = make_tenant("Forms", owner=owner)
    add_member(tenant, member, "editor")
    schema = {
        "type": "object",
        "required": ["qty"],
        "properties": {"qty": {"type": "integer", "minimum": 1}, "note": {"type": "string"}},
    }
    step = {"id": "ask", "type": "dataCollection", "inputs": {"schema": schema, "message": "How many?"}}
    workflow = services.workflow_create(
        actor=Actor(user=owner), tenant=tenant, name="Count", graph=graph(step, "submitted")
    )
    run = wait_for(services.workflow_execute(actor=Actor(user=owner), workflow=workflow), "waiting")
    client = signed_in(member)  # no approvers: every member with workflow.run may answer
    assert b"How many?" in client.get(reverse("inbox", args=[tenant.id])).content
    page = client.get(reverse("run-page", args=[tenant.id, run.id])).content.decode()
    assert 'name="f.qty"' in page and 'name="f.note"' in page

    submit = reverse("run-action", args=[tenant.id, run.id, "submit"])
    bad = client.post(submit, {"node_id": "ask", "f.qty": "zero"}, follow=True)
    assert "Enter a whole number." in bad.content.decode()  # a clear error; the step still waits
    assert WorkflowInstance.objects.get(pk=run.pk).status == "waiting"
    too_small = client.post(submit, {"node_id": "ask", "f.qty": "0"}, follow=True)
    assert "data.qty" in too_small.content.decode()
    client.post(submit, {"node_id": "ask", "f.qty": "3", "f.note": "<b>x</b>"})
    run = wait_for(run, "succeeded")
    assert run.output["data"] == {"qty": 3, "note": "<b>x</b>"}
