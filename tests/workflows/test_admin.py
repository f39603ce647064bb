"""The admin's run page: the graph, input and output as indented JSON (escaped), and a link to the
run inspector instead of a raw JSON text box."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.tenancy.services import Actor
from apps.workflows import services

pytestmark = pytest.mark.django_db

GRAPH = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "end", "type": "end", "inputs": {"output": "<b>x</b>"}},
    ],
    "edges": [{"from": "start", "to": "end"}],
}


def test_a_run_in_the_admin_links_to_its_page_and_shows_escaped_json(make_user, make_tenant):
    staff = make_user(is_staff=True, is_superuser=True)
    tenant = make_tenant("Admin", owner=staff)
    run = services.workflow_test(actor=Actor(user=staff), tenant=tenant, graph=GRAPH, input={"q": "<script>"})
    client = Client()
    client.force_login(staff)
    response = client.get(reverse("admin:workflows_workflowinstance_change", args=[run.id]))
    assert response.status_code == 200
    page = response.content.decode()
    assert reverse("run-page", args=[tenant.id, run.id]) in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "&lt;script&gt;" in page
    assert '<script>"' not in page and "<b>x</b>" not in page
    assert "&quot;nodes&quot;: [" in page  # indented JSON (escaped), not one line of text
