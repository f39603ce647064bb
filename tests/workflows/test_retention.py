"""Retention: old ended runs go with their node rows, journal, counters and blobs (database and S3),
by age (failed runs kept longer) and by count per workflow; open and recent runs stay; expired cache
rows go; DELETE …/instances/{iid}/ deletes one ended run (409 while open); tenant settings are checked."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.tenancy.models import Tenant, User
from apps.tenancy.services import Actor
from apps.workflows import retention, services, tasks
from apps.workflows.models import Blob, InstanceEvent, JournalCounter, NodeCache, NodeRun, WorkflowInstance
from tests.conftest import add_member, assert_error
from tests.workflows.test_blobs import s3_bucket  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db(transaction=True)

ROWS_JS = "return Array.from({length: 100}, (_, i) => ({i}))"
BIG = {  # its output (about 2 KB) goes to a blob with the test's small threshold
    "nodes": [
        {"id": "start", "type": "start"},
        {
            "id": "rows",
            "type": "javascript",
            "inputs": {"code": "return Array.from({length: 100}, (_, i) => ({i}))"},
        },
        {"id": "end", "type": "end", "inputs": {"output": "{{rows}}"}},
    ],
    "edges": [{"source": "start", "target": "rows"}, {"source": "rows", "target": "end"}],
}
FAILING = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "boom", "type": "javascript", "inputs": {"code": "throw new Error('no')"}},
    ],
    "edges": [{"source": "start", "target": "boom"}],
}
WAITING = {
    "nodes": [{"id": "start", "type": "start"}, {"id": "ok", "type": "approval", "inputs": {}}],
    "edges": [{"source": "start", "target": "ok"}],
}


def age(run: WorkflowInstance, days: int) -> WorkflowInstance:
    """Move a run ``days`` into the past (created, started and, if it ended, ended)."""
    then = timezone.now() - timedelta(days=days)
    fields: dict[str, Any] = {"created_at": then, "started_at": then}
    if run.ended_at is not None:
        fields["ended_at"] = then
    WorkflowInstance.objects.filter(pk=run.pk).update(**fields)
    return run


def rows_of(run: WorkflowInstance) -> dict[str, int]:
    return {
        "runs": WorkflowInstance.objects.filter(pk=run.pk).count(),
        "node_runs": NodeRun.objects.filter(instance_id=run.pk).count(),
        "events": InstanceEvent.objects.filter(instance_id=run.pk).count(),
        "counters": JournalCounter.objects.filter(instance_id=run.pk).count(),
        "blobs": Blob.objects.filter(instance_id=run.pk).count(),
    }


@pytest.fixture
def small_blobs(settings: Any) -> None:
    settings.JETADMIN_BLOB_THRESHOLD_BYTES = 500
    settings.JETADMIN_RETENTION_PAUSE_S = 0


def check_age_policy(run_graph: Any, owner_tenant: tuple[User, Tenant]) -> list[str]:
    user, tenant = owner_tenant
    # Keep everything while the runs are made and aged: the embedded beat's own prune (sent when the
    # worker starts) must not take them before they are counted.
    tenant.retention_days = tenant.retention_failed_days = 0
    tenant.save()
    old_ok = age(run_graph(BIG), 40)
    recent_ok = run_graph(BIG)
    old_failed = age(run_graph(FAILING), 40)  # failed runs are kept 90 days by default
    ancient_failed = age(run_graph(FAILING), 100)
    waiting = services.workflow_test(actor=Actor(user=user), tenant=tenant, graph=WAITING)
    age(waiting, 400)  # open runs are never pruned, however old
    assert old_ok.status == recent_ok.status == "succeeded"
    assert rows_of(old_ok)["blobs"] >= 1 and rows_of(old_ok)["events"] > 3
    kept = {r.pk: rows_of(r) for r in (recent_ok, old_failed)}

    tenant.retention_days = tenant.retention_failed_days = None  # the defaults: 30 and 90 days
    tenant.save()
    retention.prune()  # (the embedded beat may prune too: the outcome is what is checked)
    for gone in (old_ok, ancient_failed):
        assert rows_of(gone) == {"runs": 0, "node_runs": 0, "events": 0, "counters": 0, "blobs": 0}
    for run in (recent_ok, old_failed):
        assert rows_of(run) == kept[run.pk]
    assert WorkflowInstance.objects.filter(pk=waiting.pk).exists()
    assert retention.prune().runs == 0  # nothing more is due
    return [b.key for b in Blob.objects.filter(instance=recent_ok)]


def test_old_runs_go_with_their_rows_and_blobs_recent_failed_and_open_ones_stay(
    run_graph: Any, owner_tenant: tuple[User, Tenant], small_blobs: None
) -> None:
    check_age_policy(run_graph, owner_tenant)


def test_pruned_blobs_leave_s3_too(
    run_graph: Any,
    owner_tenant: tuple[User, Tenant],
    small_blobs: None,
    s3_bucket: Any,  # noqa: F811
) -> None:
    kept_keys = check_age_policy(run_graph, owner_tenant)
    listed = s3_bucket.list_objects_v2(Bucket="jetadmin-blobs").get("Contents", [])
    assert sorted(o["Key"] for o in listed) == sorted(kept_keys) and kept_keys


def test_count_per_workflow_keeps_the_newest_and_recent_failures(
    embedded_worker: Any, owner_tenant: tuple[User, Tenant], small_blobs: None
) -> None:
    user, tenant = owner_tenant
    actor = Actor(user=user)
    tenant.retention_max_runs = 2
    tenant.save()
    busy = services.workflow_create(actor=actor, tenant=tenant, name="Busy", graph=BIG)
    flaky = services.workflow_create(actor=actor, tenant=tenant, name="Flaky", graph=FAILING)
    runs = []
    for _ in range(5):
        run, _timed_out = services.instance_wait(
            instance=services.workflow_execute(actor=actor, workflow=busy), timeout_s=30
        )
        runs.append(run)
    failures = []
    for _ in range(4):
        run, _timed_out = services.instance_wait(
            instance=services.workflow_execute(actor=actor, workflow=flaky), timeout_s=30
        )
        failures.append(run)
    age(failures[0], 100)  # a failure past its own age goes; the recent ones are kept beyond the count
    retention.prune()
    assert set(WorkflowInstance.objects.filter(workflow=busy).values_list("pk", flat=True)) == {
        runs[3].pk,
        runs[4].pk,
    }
    assert set(WorkflowInstance.objects.filter(workflow=flaky).values_list("pk", flat=True)) == {
        r.pk for r in failures[1:]
    }


def test_expired_cache_rows_go_and_the_beat_task_prunes(owner_tenant: tuple[User, Tenant]) -> None:
    _, tenant = owner_tenant
    now = timezone.now()
    for key, expires in (("old", now - timedelta(seconds=1)), ("fresh", now + timedelta(hours=1))):
        NodeCache.objects.create(
            tenant=tenant, key=key, node_type="x", output=1, created_at=now, expires_at=expires
        )
    assert tasks.prune()["cache_rows"] == 1
    assert list(NodeCache.objects.values_list("key", flat=True)) == ["fresh"]
    from django.conf import settings

    assert settings.CELERY_BEAT_SCHEDULE["workflows-prune"]["task"] == "workflows.prune"


def test_delete_one_run(
    run_graph: Any, owner_tenant: tuple[User, Tenant], make_user: Any, make_tenant: Any, small_blobs: None
) -> None:
    user, tenant = owner_tenant
    done = run_graph(BIG)
    waiting = services.workflow_test(actor=Actor(user=user), tenant=tenant, graph=WAITING)
    client = APIClient()
    client.force_authenticate(user)
    base = f"/api/v1/tenants/{tenant.id}/workflows/instances"

    viewer = make_user()
    add_member(tenant, viewer, "viewer")
    as_viewer = APIClient()
    as_viewer.force_authenticate(viewer)
    assert_error(as_viewer.delete(f"{base}/{done.id}/"), 403)
    stranger = make_user()
    make_tenant("Theirs", owner=stranger)
    as_stranger = APIClient()
    as_stranger.force_authenticate(stranger)
    assert_error(as_stranger.delete(f"{base}/{done.id}/"), 404)

    error = assert_error(client.delete(f"{base}/{waiting.id}/"), 409)
    assert "cancel it" in error["message"]
    assert client.delete(f"{base}/{done.id}/").status_code == 204
    assert rows_of(done) == {"runs": 0, "node_runs": 0, "events": 0, "counters": 0, "blobs": 0}
    assert_error(client.get(f"{base}/{done.id}/"), 404)
    from apps.tenancy.models import AuditLog

    assert AuditLog.objects.filter(tenant=tenant, action="instance.delete", object_id=str(done.id)).exists()


def test_retention_settings_through_the_api(owner_tenant: tuple[User, Tenant]) -> None:
    user, tenant = owner_tenant
    client = APIClient()
    client.force_authenticate(user)
    url = f"/api/v1/tenants/{tenant.id}/"
    response = client.patch(url, {"retention_days": 7, "retention_failed_days": 0}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["retention_days"], body["retention_failed_days"], body["retention_max_runs"]) == (7, 0, None)
    tenant.refresh_from_db()
    assert retention.Policy.of(tenant) == retention.Policy(days=7, failed_days=0, max_runs=0)
    error = assert_error(
        client.patch(url, {"retention_days": -1, "retention_max_runs": "many"}, format="json"), 400
    )
    assert {"retention_days", "retention_max_runs"} <= set(error["details"])
    assert client.patch(url, {"name": "Renamed"}, format="json").json()["retention_days"] == 7
