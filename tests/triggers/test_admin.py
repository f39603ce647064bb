"""The triggers admin: pages render, secrets and token hashes are never shown, actions audit."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.tenancy.models import AuditLog
from apps.tenancy.services import Actor
from apps.triggers import services
from apps.triggers.models import Schedule, Webhook


@pytest.mark.django_db
def test_admin_pages_hide_secrets_and_actions_go_through_services(make_user, owner_tenant, echo_workflow):
    user, tenant = owner_tenant
    workflow = echo_workflow()
    webhook, token = services.webhook_create(
        actor=Actor(user=user), workflow=workflow, name="CRM", secret="admin-must-not-see"
    )
    schedule = services.schedule_create(actor=Actor(user=user), workflow=workflow, cron_expr="0 9 * * *")
    staff = make_user(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    for url in (
        "/admin/triggers/webhook/",
        f"/admin/triggers/webhook/{webhook.id}/change/",
        "/admin/triggers/schedule/",
        f"/admin/triggers/schedule/{schedule.id}/change/",
    ):
        page = client.get(url)
        assert page.status_code == 200, url
        html = page.content.decode()
        for secret in ("admin-must-not-see", webhook.token_hash, token):
            assert secret not in html, url

    r = client.post(
        "/admin/triggers/schedule/", {"action": "disable", "_selected_action": [str(schedule.id)]}
    )
    assert r.status_code == 302
    schedule.refresh_from_db()
    assert schedule.enabled is False and schedule.next_run_at is None
    r = client.post("/admin/triggers/webhook/", {"action": "revoke", "_selected_action": [str(webhook.id)]})
    assert r.status_code == 302
    assert Webhook.objects.get().revoked_at is not None
    actions = set(AuditLog.objects.filter(tenant=tenant, actor=staff).values_list("action", flat=True))
    assert actions == {"schedule.update", "webhook.revoke"}
    assert Schedule.objects.count() == 1
