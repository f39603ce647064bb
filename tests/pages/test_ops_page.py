"""The operations page (/ops/): staff only; shows workers, the ready queue, expired leases, the slowest
node types, recent failures (their messages as text) and each tenant's load; its body is a partial
the page polls."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from apps.tenancy.services import Actor
from apps.workflows import services
from apps.workflows.models import NodeRun, WorkflowInstance

pytestmark = pytest.mark.django_db(transaction=True)

WAITING = {
    "nodes": [{"id": "start", "type": "start"}, {"id": "ok", "type": "approval", "inputs": {}}],
    "edges": [{"source": "start", "target": "ok"}],
}


def test_only_staff_see_it(make_user: Any) -> None:
    client = Client()
    assert client.get("/ops/").status_code == 302  # to the login page
    client.force_login(make_user())
    assert client.get("/ops/").status_code == 403
    assert client.get("/ops/body/").status_code == 403
    client.force_login(make_user(is_staff=True))
    assert client.get("/ops/").status_code == 200


def test_it_shows_failures_as_text_expired_leases_and_load(make_user: Any, make_tenant: Any) -> None:
    user = make_user(is_staff=True)
    tenant = make_tenant("Night <b>shift</b>", owner=user)
    failing = WorkflowInstance.objects.create(
        tenant=tenant,
        graph={"nodes": [], "edges": []},
        status="failed",
        trigger="schedule",
        error={"code": "x", "message": "<script>alert(1)</script> broke"},
        ended_at=timezone.now(),
    )
    stuck = services.workflow_test(actor=Actor(user=user), tenant=tenant, graph=WAITING)
    NodeRun.objects.filter(instance=stuck, node_id="start").update(
        status="running",
        lease_owner="host:123:t1",
        lease_expires_at=timezone.now() - timedelta(seconds=30),
        started_at=timezone.now() - timedelta(seconds=60),
    )
    NodeRun.objects.create(
        instance=stuck,
        node_id="slow",
        node_type="delay",
        status="succeeded",
        started_at=timezone.now() - timedelta(seconds=2),
        ended_at=timezone.now(),
    )
    client = Client()
    client.force_login(user)
    body = client.get("/ops/body/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; broke" in body and "<script>alert" not in body
    assert f"/t/{tenant.id}/runs/{failing.id}/" in body
    assert 'data-testid="ops-expired-count">1<' in body and "host:123:t1" in body
    assert "<code>delay</code>" in body and "Night &lt;b&gt;shift&lt;/b&gt;" in body
    if settings.EMBEDDED:  # the in-process worker, alive or not
        assert "embedded (in the server process)" in body
    else:  # no celery worker runs in this test: the broker answers with nobody, or is unreachable
        assert "no worker answered" in body or "broker unreachable" in body, body
    page = client.get("/ops/").content.decode()
    assert 'hx-get="/ops/body/"' in page and 'hx-trigger="every 5s"' in page
