"""Dashboards API: CRUD, layout validation naming each bad entry, tenant isolation and permissions;
the widget export (CSV of a table and of a chart, JSON)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.test import Client
from rest_framework.exceptions import NotFound

from apps.dashboards import services as dashboards
from apps.dashboards.models import Dashboard
from apps.tenancy import services as tenancy
from apps.widgets import services as widgets
from apps.widgets.models import Widget
from tests.conftest import PASSWORD, add_member, assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def board(make_user, make_tenant) -> dict[str, Any]:
    owner = make_user()
    tenant = make_tenant("Boards", owner=owner)
    actor = tenancy.Actor(user=owner)
    stat = widgets.widget_create(actor=actor, tenant=tenant, name="n", type="stat", config={"value": 1})
    return {"owner": owner, "tenant": tenant, "stat": stat}


def url(board: dict[str, Any], *rest: str) -> str:
    return "/".join([f"/api/v1/tenants/{board['tenant'].id}/dashboards", *rest, ""])


def test_crud_and_layout_errors(api, board, make_tenant):
    client = api(board["owner"])
    place = {"widget": str(board["stat"].id), "x": 0, "y": 0, "w": 4, "h": 2}
    created = client.post(url(board), {"name": "Ops", "layout": [place], "refresh_s": 30}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["layout"] == [place] and body["refresh_s"] == 30
    did = body["id"]
    assert client.get(url(board))["content-type"] == "application/json"
    assert [d["name"] for d in client.get(url(board)).json()["results"]] == ["Ops"]
    patched = client.patch(url(board, did), {"name": "Ops 2", "refresh_s": 10}, format="json")
    assert patched.status_code == 200 and patched.json()["name"] == "Ops 2"

    foreign = widgets.widget_create(
        actor=tenancy.Actor(user=board["owner"]),
        tenant=make_tenant("Other", owner=board["owner"]),
        name="x",
        type="stat",
        config={"value": 2},
    )
    bad = [
        {"widget": str(foreign.id), "x": 0, "y": 0, "w": 2, "h": 2},
        {"widget": str(board["stat"].id), "x": 10, "y": 0, "w": 4, "h": 2},
        {"widget": "nope", "x": -1, "y": 0, "w": 0, "h": 2},
        "a string",
    ]
    error = assert_error(client.patch(url(board, did), {"layout": bad}, format="json"), 400)
    assert error["details"] == {
        "layout[0].widget": ["No such widget in this tenant."],
        "layout[1].w": ["x + w must be at most 12 (the grid's columns)."],
        "layout[2].widget": ["Expected a widget id."],
        "layout[2].x": ["Expected a whole number >= 0."],
        "layout[2].w": ["Expected a whole number >= 1."],
        "layout[3]": ["Expected {widget, x, y, w, h}."],
    }
    error = assert_error(client.patch(url(board, did), {"refresh_s": 1}, format="json"), 400)
    assert "refresh_s" in error["details"]
    error = assert_error(client.post(url(board), {"name": "Ops 2"}, format="json"), 400)
    assert error["details"] == {"name": ["Already used."]}
    assert Dashboard.objects.get(pk=did).layout == [place]  # nothing half-written
    assert client.delete(url(board, did)).status_code == 204
    assert not Dashboard.objects.filter(pk=did).exists()


def test_isolation_and_permissions(api, board, make_user):
    client = api(board["owner"])
    did = client.post(url(board), {"name": "Ops"}, format="json").json()["id"]
    stranger = make_user()
    assert_error(api(stranger).get(url(board, did)), 404)
    viewer = make_user()
    add_member(board["tenant"], viewer, "viewer")
    assert api(viewer).get(url(board, did)).status_code == 200
    assert_error(api(viewer).patch(url(board, did), {"name": "x"}, format="json"), 403)
    assert_error(api(viewer).post(url(board), {"name": "x"}, format="json"), 403)


def test_widget_export_as_csv_and_json(board, make_user):
    tenant = board["tenant"]
    table = Widget.objects.create(
        tenant=tenant,
        name="Top orders",
        type="table",
        last_data={
            "columns": [{"field": "id", "label": "id"}, {"field": "note", "label": "note"}],
            "rows": [{"id": 1, "note": 'a, "quoted" note'}, {"id": 2, "note": {"k": [1]}}],
            "page_size": 20,
            "total": 2,
        },
    )
    chart = Widget.objects.create(
        tenant=tenant,
        name="Revenue / month",
        type="bar",
        last_data={"labels": ["Jan", "Feb"], "datasets": [{"label": "revenue", "data": [10, 20]}]},
    )
    client = Client()
    assert client.login(username=board["owner"].username, password=PASSWORD)
    response = client.get(f"/t/{tenant.id}/widgets/{table.id}/export/?format=csv")
    assert response["Content-Disposition"] == 'attachment; filename="Top_orders.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [["id", "note"], ["1", 'a, "quoted" note'], ["2", '{"k": [1]}']]
    response = client.get(f"/t/{tenant.id}/widgets/{chart.id}/export/?format=csv")
    assert list(csv.reader(io.StringIO(response.content.decode()))) == [
        ["label", "revenue"],
        ["Jan", "10"],
        ["Feb", "20"],
    ]
    response = client.get(f"/t/{tenant.id}/widgets/{chart.id}/export/?format=json")
    assert response.json() == chart.last_data and response["Content-Type"] == "application/json"

    # the same through the API (a token), and its errors
    from tests.conftest import token_client

    api_client = token_client(board["owner"])
    base = f"/api/v1/tenants/{tenant.id}/widgets"
    exported = api_client.get(f"{base}/{table.id}/export/?format=csv")
    assert exported.status_code == 200 and exported["Content-Type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(exported.content.decode())))[1] == ["1", 'a, "quoted" note']
    assert api_client.get(f"{base}/{chart.id}/export/?format=json").json() == chart.last_data
    assert_error(api_client.get(f"{base}/{chart.id}/export/?format=xml"), 400)
    assert_error(token_client(make_user()).get(f"{base}/{chart.id}/export/"), 404)


def test_filters_are_validated(api, board):
    client = api(board["owner"])
    place = {"widget": str(board["stat"].id), "x": 0, "y": 0, "w": 4, "h": 2}
    good: list[dict[str, Any]] = [
        {"id": "since", "type": "date-range", "label": "Since", "param": "since", "param_to": "until"},
        {
            "id": "product",
            "type": "select",
            "param": "product",
            "options": ["a", "b"],
            "from_widget": place["widget"],
        },
    ]
    created = client.post(url(board), {"name": "F", "layout": [place], "filters": good}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["filters"][1] == {**good[1], "label": "product"}
    bad = [
        {"id": "1x", "type": "date-range", "param": "since"},
        {"id": "p", "type": "slider", "param": ""},
        {"id": "p", "type": "select", "param": "x", "options": "a,b", "from_widget": str(board["owner"].id)},
        7,
    ]
    error = assert_error(client.patch(url(board, created.json()["id"]), {"filters": bad}, format="json"), 400)
    assert error["details"] == {
        "filters[0].id": ["Letters, digits, _ and -, starting with a letter (at most 40)."],
        "filters[1].type": ["One of date-range, select."],
        "filters[1].param": ["The input parameter this filter sets."],
        "filters[2].id": ["Used by another filter."],
        "filters[2].options": ["A list of values."],
        "filters[2].from_widget": ["A widget of this dashboard's layout."],
        "filters[3]": ["Expected {id, type, label, param, ...}."],
    }
    # removing the widget a filter is fed by is refused while the filter names it
    error = assert_error(client.patch(url(board, created.json()["id"]), {"layout": []}, format="json"), 400)
    assert error["details"] == {"filters[1].from_widget": ["A widget of this dashboard's layout."]}


def test_a_widget_on_two_dashboards_is_fresh_for_the_shorter_interval(board, make_user):
    from apps.dashboards import selectors

    owner, tenant, stat = board["owner"], board["tenant"], board["stat"]
    actor = tenancy.Actor(user=owner)
    place = [{"widget": str(stat.id), "x": 0, "y": 0, "w": 3, "h": 2}]
    slow = dashboards.dashboard_create(actor=actor, tenant=tenant, name="slow", layout=place, refresh_s=300)
    dashboards.dashboard_create(actor=actor, tenant=tenant, name="fast", layout=place, refresh_s=10)
    dashboards.dashboard_create(actor=actor, tenant=tenant, name="other", refresh_s=5)  # without the widget
    params, fresh_s = selectors.shown_on(user=owner, api_key=None, widget_id=stat.id, dashboard_id=slow.id)
    assert fresh_s == 10.0 and params == ()
    viewer = make_user()
    add_member(tenant, viewer, "viewer")
    assert selectors.shown_on(user=viewer, api_key=None, widget_id=stat.id, dashboard_id=slow.id)[1] == 10.0
    with pytest.raises(NotFound):  # a widget that is not on the dashboard
        selectors.shown_on(user=owner, api_key=None, widget_id=board["owner"].id, dashboard_id=slow.id)
    with pytest.raises(NotFound):  # someone outside the tenant
        selectors.shown_on(user=make_user(), api_key=None, widget_id=stat.id, dashboard_id=slow.id)
