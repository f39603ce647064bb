"""The schedules API: CRUD, validation errors naming the field, tenant isolation and permissions."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.utils import timezone

from apps.tenancy.models import AuditLog
from apps.triggers.models import Schedule
from tests.conftest import add_member, assert_error, token_client
from tests.triggers.conftest import url_of


@pytest.fixture
def ctx(owner_tenant, echo_workflow):
    user, tenant = owner_tenant
    workflow = echo_workflow()
    return token_client(user), url_of(tenant, workflow, "schedules"), tenant, workflow


@pytest.mark.django_db
def test_schedule_crud(ctx):
    client, url, tenant, workflow = ctx
    r = client.post(
        url,
        {"cron": "0  9 * * 1-5", "timezone": "Europe/Berlin", "input": {"report": "daily"}},
        format="json",
    )
    assert r.status_code == 201, r.content
    created = r.json()
    assert created["cron"] == "0 9 * * 1-5"  # normalized
    assert created["timezone"] == "Europe/Berlin" and created["overlap"] == "skip" and created["enabled"]
    assert created["workflow"] == str(workflow.id) and created["input"] == {"report": "daily"}
    next_run = datetime.fromisoformat(created["next_run_at"])
    assert next_run > timezone.now()
    assert next_run.astimezone(timezone.get_fixed_timezone(0)).minute == 0

    listed = client.get(url).json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == created["id"]
    detail_url = f"{url}{created['id']}/"
    assert client.get(detail_url).json() == created

    r = client.patch(detail_url, {"cron": "30 6 * * *", "overlap": "allow"}, format="json")
    assert r.status_code == 200, r.content
    changed = r.json()
    assert changed["cron"] == "30 6 * * *" and changed["overlap"] == "allow"
    assert datetime.fromisoformat(changed["next_run_at"]).minute in (30, 0)  # 06:30 in a whole-hour zone
    assert changed["next_run_at"] != created["next_run_at"]

    off = client.patch(detail_url, {"enabled": False}, format="json").json()
    assert off["enabled"] is False and off["next_run_at"] is None
    on = client.patch(detail_url, {"enabled": True}, format="json").json()
    assert on["enabled"] is True and datetime.fromisoformat(on["next_run_at"]) > timezone.now()

    assert client.delete(detail_url).status_code == 204
    assert_error(client.get(detail_url), 404, "not_found")
    assert not Schedule.objects.exists()
    actions = list(
        AuditLog.objects.filter(tenant=tenant, object_type="schedule").values_list("action", flat=True)
    )
    assert sorted(set(actions)) == ["schedule.create", "schedule.delete", "schedule.update"]
    assert actions.count("schedule.update") == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "0 9 * *"}, "cron"),  # four fields
        ({"cron": "0 9 * * * *"}, "cron"),  # six fields (seconds) are not accepted
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "every day"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),  # February 30th never comes
        ({"cron": "@daily"}, "cron"),
        ({}, "cron"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"cron": "0 9 * * *", "timezone": "../../etc/passwd"}, "timezone"),
        ({"cron": "0 9 * * *", "timezone": ""}, "timezone"),
        ({"cron": "0 9 * * *", "input": [1, 2]}, "input"),
        ({"cron": "0 9 * * *", "overlap": "queue"}, "overlap"),
    ],
)
def test_invalid_schedule_is_400_naming_the_field(ctx, body, field):
    client, url, _, _ = ctx
    error = assert_error(client.post(url, body, format="json"), 400, "validation_error")
    assert field in error["details"], error
    assert isinstance(error["details"][field], list) and error["details"][field]
    assert not Schedule.objects.exists()


@pytest.mark.django_db
def test_unstorable_json_is_refused_by_the_parser(ctx):
    client, url, _, _ = ctx
    error = assert_error(
        client.post(url, {"cron": "0 9 * * *", "input": {"a": ["\x00"]}}, format="json"), 400
    )
    assert "NUL" in error["message"] and "body" in error["details"]
    deep: dict = {}
    cursor = deep
    for _ in range(150):
        cursor["a"] = {}
        cursor = cursor["a"]
    error = assert_error(client.post(url, {"cron": "0 9 * * *", "input": deep}, format="json"), 400)
    assert "nested more than" in error["message"]
    assert not Schedule.objects.exists()


@pytest.mark.django_db
def test_invalid_update_changes_nothing(ctx):
    client, url, _, _ = ctx
    created = client.post(url, {"cron": "0 9 * * *"}, format="json").json()
    detail_url = f"{url}{created['id']}/"
    error = assert_error(client.patch(detail_url, {"cron": "0 25 * * *"}, format="json"), 400)
    assert "cron" in error["details"]
    error = assert_error(client.patch(detail_url, {"timezone": "Nowhere/City"}, format="json"), 400)
    assert "timezone" in error["details"]
    assert client.get(detail_url).json() == created


@pytest.mark.django_db
def test_unknown_workflow_and_other_tenants_are_404(ctx, make_user, make_tenant, echo_workflow):
    client, url, _, workflow = ctx
    created = client.post(url, {"cron": "0 9 * * *"}, format="json").json()
    ghost = url.replace(str(workflow.id), "00000000-0000-4000-8000-000000000000")
    assert_error(client.get(ghost), 404, "not_found")
    assert_error(client.post(ghost, {"cron": "0 9 * * *"}, format="json"), 404)

    stranger = make_user()
    other = make_tenant("Other", owner=stranger)
    other_client = token_client(stranger)
    # A non-member gets 404 for the tenant and everything in it.
    assert_error(other_client.get(url), 404)
    assert_error(other_client.get(f"{url}{created['id']}/"), 404)
    assert_error(other_client.delete(f"{url}{created['id']}/"), 404)
    # Its own tenant in the path with this tenant's workflow or schedule: 404 as well.
    theirs = url_of(other, workflow, "schedules")
    assert_error(other_client.get(theirs), 404)
    their_workflow = echo_workflow("Theirs", on=other, by=stranger)
    assert_error(other_client.get(f"{url_of(other, their_workflow, 'schedules')}{created['id']}/"), 404)
    assert Schedule.objects.count() == 1


@pytest.mark.django_db
def test_viewer_reads_but_cannot_write(ctx, make_user):
    client, url, tenant, _ = ctx
    created = client.post(url, {"cron": "0 9 * * *"}, format="json").json()
    viewer = make_user()
    add_member(tenant, viewer, "viewer")
    vc = token_client(viewer)
    assert vc.get(url).json()["count"] == 1
    assert vc.get(f"{url}{created['id']}/").status_code == 200
    assert_error(vc.post(url, {"cron": "0 9 * * *"}, format="json"), 403, "permission_denied")
    assert_error(vc.patch(f"{url}{created['id']}/", {"enabled": False}, format="json"), 403)
    assert_error(vc.delete(f"{url}{created['id']}/"), 403)
    assert Schedule.objects.get().enabled is True

    editor = make_user()
    add_member(tenant, editor, "editor")
    assert token_client(editor).post(url, {"cron": "*/5 * * * *"}, format="json").status_code == 201
