"""Pages do not grow with data: every list and detail page makes the same number of SQL statements
with 3 rows of each kind as with 30 (pinned with django_assert_num_queries), so a tenant with
thousands of runs pays no per-row query. bench/pages.py times them at 100 workflows and 5,000 runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.datasources import services as datasource_services
from apps.queries import services as query_services
from apps.tenancy import services as tenancy
from apps.tenancy.models import Membership, Tenant, User
from apps.workflows import services as workflow_services
from tests.conftest import PASSWORD, role

pytestmark = pytest.mark.django_db

GRAPH = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "mid", "type": "fanout"},
        {"id": "end", "type": "end"},
    ],
    "edges": [{"from": "start", "to": "mid"}, {"from": "mid", "to": "end"}],
}


def grow(tenant: Tenant, owner: User, n: int, make_user: Callable[..., User], tag: str) -> dict[str, Any]:
    """``n`` more datasources, queries, workflows (each run twice), members, invites, keys."""
    actor = tenancy.Actor(user=owner)
    last: dict[str, Any] = {}
    for i in range(n):
        source = datasource_services.datasource_create(
            actor=actor, tenant=tenant, name=f"db{tag}{i}", type="sqlite", config={"path": f"{i}.db"}
        )
        query_services.query_create(
            actor=actor, tenant=tenant, name=f"q{tag}{i}", datasource=source.id, body="SELECT 1"
        )
        workflow = workflow_services.workflow_create(
            actor=actor, tenant=tenant, name=f"w{tag}{i}", graph=GRAPH
        )
        workflow_services.workflow_update(actor=actor, workflow=workflow, description=f"v{i}", graph=GRAPH)
        for _ in range(2):
            last["instance"] = workflow_services.workflow_execute(actor=actor, workflow=workflow)
        Membership.objects.create(tenant=tenant, user=make_user(), role=role(tenant, "viewer"))
        tenancy.invite_create(
            actor=actor, tenant=tenant, email=f"p{tag}{i}@example.com", role=role(tenant, "viewer")
        )
        tenancy.api_key_create(actor=actor, tenant=tenant, name=f"k{tag}{i}", role=role(tenant, "viewer"))
        last.update(datasource=source, workflow=workflow)
    return last


def page_urls(tenant: Tenant, objects: dict[str, Any]) -> dict[str, str]:
    t = tenant.id
    return {
        "home": reverse("tenant-home", args=[t]),
        "datasources": reverse("datasource-list", args=[t]),
        "datasource": reverse("datasource-detail", args=[t, objects["datasource"].id]),
        "datasource-delete": reverse("datasource-delete", args=[t, objects["datasource"].id]),
        "queries": reverse("query-list", args=[t]),
        "workflows": reverse("workflow-list", args=[t]),
        "workflow": reverse("workflow-detail", args=[t, objects["workflow"].id]),
        "runs": reverse("run-list", args=[t]),
        "runs-filtered": reverse("run-list", args=[t]) + f"?workflow={objects['workflow'].id}&status=queued",
        "run": reverse("run-page", args=[t, objects["instance"].id]),
        "settings": reverse("settings", args=[t]),
        "audit": reverse("audit", args=[t]),
    }


def counts(client: Client, urls: dict[str, str]) -> dict[str, int]:
    out = {}
    for name, url in urls.items():
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        out[name] = len(queries)
    return out


def test_statements_per_page_do_not_grow_with_rows(
    make_user: Callable[..., User],
    make_tenant: Callable[..., Tenant],
    settings: Any,
    tmp_path: Any,
    django_assert_num_queries: Any,
) -> None:
    settings.JETADMIN_SQLITE_ROOT = str(tmp_path)
    owner = make_user()
    tenant = make_tenant("Many", owner=owner)
    client = Client()
    assert client.login(username=owner.username, password=PASSWORD)
    small = grow(tenant, owner, 3, make_user, "a")
    few = counts(client, page_urls(tenant, small))
    large = grow(tenant, owner, 27, make_user, "b")  # 10x the rows of every kind
    for name, url in page_urls(tenant, large).items():
        with django_assert_num_queries(few[name]):
            assert client.get(url).status_code == 200, name
    assert max(few.values()) <= 12, few  # and few statements in all


def test_a_dashboard_page_makes_the_same_statements_for_5_and_50_widgets(
    make_user: Callable[..., User], make_tenant: Callable[..., Tenant], django_assert_num_queries: Any
) -> None:
    from apps.dashboards import services as dashboard_services
    from apps.widgets import services as widget_services

    owner = make_user()
    tenant = make_tenant("Boards", owner=owner)
    actor = tenancy.Actor(user=owner)
    workflow = workflow_services.workflow_create(actor=actor, tenant=tenant, name="w", graph=GRAPH)
    client = Client()
    assert client.login(username=owner.username, password=PASSWORD)

    def board(n: int) -> str:
        made = [
            widget_services.widget_create(
                actor=actor,
                tenant=tenant,
                name=f"{n}-{i}",
                type="stat",
                config={"value": "{{ctx.mid.x}}"},
                workflow=workflow.id,
            )
            for i in range(n)
        ]
        layout = [{"widget": str(w.id), "x": 0, "y": i, "w": 3, "h": 1} for i, w in enumerate(made)]
        dashboard = dashboard_services.dashboard_create(
            actor=actor, tenant=tenant, name=f"d{n}", layout=layout
        )
        return reverse("dashboard-detail", args=[tenant.id, dashboard.id])

    small, large = board(5), board(50)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(small).status_code == 200
    with django_assert_num_queries(len(queries)):
        assert client.get(large).status_code == 200
