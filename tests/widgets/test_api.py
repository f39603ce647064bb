"""Widgets API: types, CRUD with field-level errors, tenant isolation and permissions, and a widget's
data through ``POST …/widgets/{id}/data/`` (runs on the embedded worker)."""

from __future__ import annotations

import pytest

from apps.tenancy.models import Role
from apps.widgets.models import Widget, WidgetRun
from tests.conftest import add_member, assert_error
from tests.widgets.conftest import BAR, ROWS

pytestmark = pytest.mark.django_db(transaction=True)


def url(shop, *rest: str) -> str:
    return "/".join([f"/api/v1/tenants/{shop['tenant'].id}/widgets", *rest, ""])


def test_widget_types(api, shop):
    body = api(shop["owner"]).get("/api/v1/widget-types/").json()
    kinds = {t["type"]: t for t in body}
    assert {"raw", "bar", "line", "pie", "radar", "scatter", "bubble", "table", "stat"} <= set(kinds)
    assert kinds["table"]["config_schema"]["required"] == ["rows"]


def test_crud_and_field_errors(api, shop):
    client = api(shop["owner"])
    created = client.post(
        url(shop), {"name": "Total", "type": "stat", "config": {"value": "{{ctx.end.total}}"}}, format="json"
    )
    assert created.status_code == 201, created.content
    wid = created.json()["id"]
    assert client.get(url(shop, wid)).json()["config"] == {"value": "{{ctx.end.total}}"}
    listed = client.get(url(shop)).json()
    assert {w["name"] for w in listed["results"]} == {"Total", "Sales by month"}
    patched = client.patch(url(shop, wid), {"config": {"value": 3, "label": "n"}}, format="json")
    assert patched.status_code == 200 and patched.json()["config"] == {"value": 3, "label": "n"}

    error = assert_error(client.post(url(shop), {"name": "x", "type": "donut"}, format="json"), 400)
    assert "Unknown widget type 'donut'" in error["details"]["type"][0]
    error = assert_error(
        client.post(url(shop), {"name": "x", "type": "table", "config": {}}, format="json"), 400
    )
    assert error["details"] == {"config.rows": ["This field is required."]}
    error = assert_error(
        client.post(
            url(shop), {"name": "x", "type": "raw", "config": {"data": "{{ctx.a.__class__}}"}}, format="json"
        ),
        400,
    )
    assert "not allowed" in error["details"]["config"][0]
    error = assert_error(
        client.patch(url(shop, wid), {"workflow": str(shop["tenant"].id)}, format="json"), 400
    )
    assert error["details"]["workflow"] == ["No such workflow in this tenant."]
    error = assert_error(client.post(url(shop), {"type": "raw"}, format="json"), 400)
    assert "name" in error["details"]
    assert Widget.objects.filter(tenant=shop["tenant"]).count() == 2  # nothing half-written

    assert client.delete(url(shop, wid)).status_code == 204
    assert_error(client.get(url(shop, wid)), 404)


def test_other_tenants_and_missing_permissions(api, shop, make_user, make_tenant):
    outsider = make_user()
    make_tenant("Other", owner=outsider)
    assert_error(api(outsider).get(url(shop, str(shop["widget"].id))), 404)
    assert_error(api(outsider).post(url(shop, str(shop["widget"].id), "data"), {}, format="json"), 404)
    viewer = make_user()
    add_member(shop["tenant"], viewer, "viewer")
    assert api(viewer).get(url(shop, str(shop["widget"].id))).status_code == 200
    assert_error(api(viewer).post(url(shop), {"name": "x", "type": "raw"}, format="json"), 403)
    assert_error(api(viewer).delete(url(shop, str(shop["widget"].id))), 403)
    blind = make_user()
    membership = add_member(shop["tenant"], blind, "viewer")
    membership.role = Role.objects.create(tenant=shop["tenant"], name="blind", permissions=["query.view"])
    membership.save()
    assert_error(api(blind).get(url(shop)), 403)


def test_data_sync_returns_processed_data_and_provenance(api, shop, embedded_worker, settings):
    client = api(shop["owner"])
    wid = str(shop["widget"].id)
    reply = client.post(url(shop, wid, "data"), {"execution_mode": "SYNC", "timeout_s": 20}, format="json")
    assert reply.status_code == 200, reply.content
    body = reply.json()
    assert body["status"] == "succeeded" and body["timed_out"] is False, body
    assert body["processed_data"] == {
        "labels": ["Jan", "Feb", "Mar"],
        "datasets": [{"label": "sales", "data": [3, 5, 4]}],
    }
    version = shop["workflow"].current_version.version
    assert body["provenance"]["instance_id"] == body["instance_id"]
    assert (
        body["provenance"]["workflow"] == str(shop["workflow"].id)
        and body["provenance"]["version"] == version
    )
    assert body["provenance"]["finished_at"]
    widget = Widget.objects.get(pk=wid)
    assert widget.last_data == body["processed_data"]  # kept for replay when a later run cannot be drawn

    # the same parameters within the reuse window share the run; other parameters get their own
    again = client.post(url(shop, wid, "data"), {"execution_mode": "ASYNC"}, format="json")
    assert again.status_code == 202 and again.json() == {"instance_id": body["instance_id"], "reused": True}
    other = client.post(
        url(shop, wid, "data"), {"input_params": {"limit": 1}, "execution_mode": "SYNC"}, format="json"
    )
    assert other.json()["instance_id"] != body["instance_id"]
    assert other.json()["processed_data"]["labels"] == ["Jan"]
    settings.JETADMIN_WIDGET_REFRESH_MIN_S = 0
    forced = client.post(url(shop, wid, "data"), {"execution_mode": "ASYNC", "refresh": True}, format="json")
    assert forced.json()["reused"] is False and forced.json()["instance_id"] != body["instance_id"]
    # viewers refreshing together share the new run (one per JETADMIN_WIDGET_REFRESH_MIN_S)
    settings.JETADMIN_WIDGET_REFRESH_MIN_S = 30
    together = client.post(
        url(shop, wid, "data"), {"execution_mode": "ASYNC", "refresh": True}, format="json"
    )
    assert together.json() == forced.json() | {"reused": True}
    assert WidgetRun.objects.filter(widget_id=wid).values("params_hash").distinct().count() == 2


def test_widget_view_runs_only_declared_parameters(api, shop, embedded_worker, make_user):
    viewer = make_user()
    add_member(shop["tenant"], viewer, "viewer")  # widget.view, no workflow.run
    client = api(viewer)
    wid = str(shop["widget"].id)
    ok = client.post(
        url(shop, wid, "data"), {"input_params": {"limit": 2}, "execution_mode": "SYNC"}, format="json"
    )
    assert ok.status_code == 200 and ok.json()["processed_data"]["labels"] == ["Jan", "Feb"]
    error = assert_error(
        client.post(url(shop, wid, "data"), {"input_params": {"limit": 1, "admin": True}}, format="json"), 403
    )
    assert "admin" in error["message"] and "workflow.run" in error["message"]
    # an editor (workflow.run) may pass what the widget does not declare
    editor = make_user()
    add_member(shop["tenant"], editor, "editor")
    assert (
        api(editor).post(url(shop, wid, "data"), {"input_params": {"admin": True}}, format="json").status_code
        == 202
    )


def test_data_errors_are_clear(api, shop, embedded_worker):
    client = api(shop["owner"])
    wid = str(shop["widget"].id)
    error = assert_error(client.post(url(shop, wid, "data"), {"execution_mode": "NOW"}, format="json"), 400)
    assert "execution_mode" in error["details"]
    error = assert_error(client.post(url(shop, wid, "data"), {"input_params": [1]}, format="json"), 400)
    assert "input_params" in error["details"]
    lonely = client.post(url(shop), {"name": "No flow", "type": "raw"}, format="json").json()
    error = assert_error(client.post(url(shop, lonely["id"], "data"), {}, format="json"), 400)
    assert error["message"] == "This widget has no workflow to run."
    # data that does not fit the widget: the last good data is kept and the error says why
    ok = client.post(url(shop, wid, "data"), {"execution_mode": "SYNC"}, format="json").json()
    client.patch(url(shop, wid), {"config": {**BAR, "y": "profit"}}, format="json")
    bad = client.post(
        url(shop, wid, "data"), {"execution_mode": "SYNC", "refresh": True}, format="json"
    ).json()
    assert bad["status"] == "succeeded"
    assert bad["error"]["code"] == "widget_data" and bad["error"]["recoverable"] is True
    assert "row 0 has no field 'profit'" in bad["error"]["message"]
    assert bad["processed_data"] == ok["processed_data"] and bad["provenance"] == ok["provenance"]
    assert ROWS  # the fixture's rows are what the chart showed


def test_widgets_of_one_workflow_share_a_run_and_filters_never_see_the_default_data(
    api, shop, embedded_worker
):
    """Two widgets of the same workflow and parameters share one run (a dashboard starts one run, not
    one per widget); a run with other parameters that cannot be drawn answers nothing, never the
    widget's last data (which stays that of its declared parameters)."""
    client = api(shop["owner"])
    table = client.post(
        url(shop),
        {
            "name": "Sales table",
            "type": "table",
            "config": {"rows": "{{ctx.sales.result}}"},
            "workflow": str(shop["workflow"].id),
            "workflow_config": {"input_params": {"rows": ROWS, "limit": 3}},
        },
        format="json",
    ).json()
    sync = {"execution_mode": "SYNC", "timeout_s": 20}
    first = client.post(url(shop, str(shop["widget"].id), "data"), sync, format="json").json()
    second = client.post(url(shop, table["id"], "data"), sync, format="json").json()
    assert first["status"] == "succeeded" and second["instance_id"] == first["instance_id"]
    assert second["processed_data"]["total"] == 3
    assert WidgetRun.objects.filter(instance_id=first["instance_id"]).count() == 2

    # a filter whose rows cannot be drawn by the bar chart (no "sales" field)
    odd = {"rows": [{"month": "Jan", "other": 1}], "limit": 1}
    answer = client.post(
        url(shop, str(shop["widget"].id), "data"), {**sync, "input_params": odd}, format="json"
    )
    body = answer.json()
    assert body["error"]["code"] == "widget_data", body
    assert body["processed_data"] is None and body["provenance"]["instance_id"] == body["instance_id"]
    widget = Widget.objects.get(pk=shop["widget"].pk)
    assert widget.last_provenance["instance_id"] == first["instance_id"]  # the default data stays
    # a filter that draws fine does not replace the widget's last data either
    fine = {"rows": ROWS[:1], "limit": 1}
    drawn = client.post(
        url(shop, str(shop["widget"].id), "data"), {**sync, "input_params": fine}, format="json"
    )
    assert drawn.json()["processed_data"]["labels"] == ["Jan"]
    widget.refresh_from_db()
    assert widget.last_provenance["instance_id"] == first["instance_id"]
    assert widget.last_data["labels"] == ["Jan", "Feb", "Mar"]


def test_reuse_window_is_the_callers_interval(shop, embedded_worker):
    """A dashboard passes its refresh interval: a run that ended within it is reused, an older one not."""
    import time

    from apps.tenancy.selectors import tenant_access
    from apps.widgets import services as widgets

    access = tenant_access(user=shop["owner"], api_key=None, tenant_id=shop["tenant"].id)
    first = widgets.widget_run(access=access, actor=shop["actor"], widget=shop["widget"]).instance
    for _ in range(200):
        first.refresh_from_db()
        if first.ended_at is not None:
            break
        time.sleep(0.05)
    again = widgets.widget_run(access=access, actor=shop["actor"], widget=shop["widget"], reuse_s=3600)
    assert again.reused and again.instance.id == first.id
    time.sleep(0.2)
    fresh = widgets.widget_run(access=access, actor=shop["actor"], widget=shop["widget"], reuse_s=0.1)
    assert not fresh.reused and fresh.instance.id != first.id


def test_a_template_array_reaches_chart_js_and_vega_lite_as_an_array(api, shop, embedded_worker):
    """Type preservation end to end: ``{{ctx.sales.result}}`` (a list of rows from a run) arrives in a
    Vega-Lite spec's data.values and in a chart's datasets as lists, not as their text."""
    client = api(shop["owner"])
    spec = {
        "mark": "bar",
        "data": {"values": "{{ctx.sales.result}}"},
        "encoding": {
            "x": {"field": "month", "type": "nominal"},
            "y": {"field": "sales", "type": "quantitative"},
        },
    }
    vega = client.post(
        url(shop),
        {
            "name": "Vega sales",
            "type": "vega-lite",
            "config": {"spec": spec},
            "workflow": str(shop["workflow"].id),
            "workflow_config": {"input_params": {"rows": ROWS, "limit": 3}},
        },
        format="json",
    ).json()
    body = client.post(
        url(shop, vega["id"], "data"), {"execution_mode": "SYNC", "timeout_s": 20}, format="json"
    ).json()
    assert body["status"] == "succeeded", body
    assert body["processed_data"]["spec"]["data"]["values"] == ROWS  # a list of objects, as the run made it
    chart = client.post(
        url(shop, str(shop["widget"].id), "data"), {"execution_mode": "SYNC", "timeout_s": 20}, format="json"
    ).json()
    assert chart["processed_data"]["datasets"][0]["data"] == [3, 5, 4]  # numbers, not "3"
