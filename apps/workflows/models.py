"""Workflow data: definitions, immutable versions, runs, per-node runs and the run journal.

* ``Workflow`` — a named definition in a tenant; ``current_version`` points at its latest graph.
* ``WorkflowVersion`` — an immutable graph snapshot; every graph change makes a new one.
* ``WorkflowInstance`` — one run. It pins its graph (a copy, so test runs of unsaved graphs and saved
  runs look the same to the engine) and holds input, output, error, status and trigger.
* ``NodeRun`` — one node of one run, per loop iteration (``iteration`` key, "" at top level). The
  database is the truth for scheduling: ``remaining``/``active`` count the in-edges still to settle
  and those that arrived active, so a join is released exactly once by a conditional update.
* ``InstanceEvent`` — the ordered journal of state changes, what the UI and websockets replay from;
  numbered per run by the database (``seq``, counted in ``JournalCounter``).

State changes go through :mod:`apps.workflows.engine.states`; nothing else writes ``status``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from apps.tenancy.models import Tenant


class InstanceStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class NodeStatus(models.TextChoices):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELED = "canceled"


class Trigger(models.TextChoices):
    MANUAL = "manual"
    API = "api"
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"
    WIDGET = "widget"
    TEST = "test"
    SUBWORKFLOW = "subworkflow"
    ERROR = "error"  # started by another run's failure (apps/workflows/alerts.py)


class Workflow(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="workflows")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    current_version = models.ForeignKey(
        "WorkflowVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # When one of its scheduled, webhook or API runs fails: {"workflow": id} runs that workflow,
    # {"notify": {...}} sends a message; empty = the tenant's setting (apps/workflows/alerts.py).
    on_failure = models.JSONField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class WorkflowVersion(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    graph = models.JSONField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workflow", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "version"], name="workflow_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id} v{self.version}"


class WorkflowInstance(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="workflow_instances")
    workflow = models.ForeignKey(
        Workflow, null=True, blank=True, on_delete=models.SET_NULL, related_name="instances"
    )
    version = models.ForeignKey(
        WorkflowVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_test = models.BooleanField(default=False)
    graph = models.JSONField()
    status = models.CharField(max_length=16, choices=InstanceStatus.choices, default=InstanceStatus.QUEUED)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    # Context written from outside the run (``ctx.__widgetInput``), compare-and-set on context_version.
    context = models.JSONField(default=dict, blank=True)
    context_version = models.PositiveIntegerField(default=0)
    # A sub-workflow run: the parent run and the (node, iteration) of the subWorkflow node waiting on it.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    parent_node = models.CharField(max_length=100, blank=True, default="")
    parent_iteration = models.CharField(max_length=500, blank=True, default="")
    depth = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    alerted_at = models.DateTimeField(null=True, blank=True)  # its failure alert was sent (once)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="instance_tenant_time"),
            models.Index(fields=["tenant", "status"], name="instance_tenant_status"),
            models.Index(fields=["tenant", "ended_at"], name="instance_tenant_ended"),  # retention
        ]

    def __str__(self) -> str:
        return f"run {self.id} ({self.status})"


class NodeRun(models.Model):
    instance = models.ForeignKey(WorkflowInstance, on_delete=models.CASCADE, related_name="node_runs")
    node_id = models.CharField(max_length=100)
    node_type = models.CharField(max_length=50)
    # "" at top level; "loop:3" inside iteration 3 of node "loop"; nested: "outer:1/inner:0".
    iteration = models.CharField(max_length=500, blank=True, default="")
    # The item index for a loop's per-iteration head row; 0 elsewhere.
    index = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=NodeStatus.choices, default=NodeStatus.PENDING)
    # In-edges whose source has not settled yet, and settled in-edges that arrived active.
    remaining = models.IntegerField(default=0)
    active = models.IntegerField(default=0)
    wait_any = models.BooleanField(default=False)
    attempt = models.PositiveIntegerField(default=0)
    available_at = models.DateTimeField(null=True, blank=True)
    # A queued run whose message is not sent yet (backoff): the waker sends it at ``available_at``.
    deferred = models.BooleanField(default=False)
    lease_owner = models.CharField(max_length=200, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    input = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    route = models.CharField(max_length=100, blank=True, default="")
    state = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["instance", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "node_id", "iteration"], name="noderun_unique_per_iteration"
            )
        ]
        indexes = [
            models.Index(fields=["status", "available_at"], name="noderun_due"),
            # Fair sharing counts a tenant's running nodes at every claim: keep that scan tiny.
            models.Index(fields=["instance"], condition=models.Q(status="running"), name="noderun_running"),
            # Held nodes (engine/dispatch.py) are found, oldest first, at every refill.
            models.Index(
                fields=["available_at", "id"], condition=models.Q(lease_owner="~held"), name="noderun_held"
            ),
        ]

    def __str__(self) -> str:
        suffix = f"[{self.iteration}]" if self.iteration else ""
        return f"{self.node_id}{suffix} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        key = f"{self.instance_id}:{self.node_id}"
        return f"{key}:{self.iteration}" if self.iteration else key


class JournalSeqField(models.PositiveBigIntegerField):
    """A journal row's number within its run, set by the database: a trigger (migration 0004) numbers
    each run's rows 1, 2, 3, … in commit order, whichever statement inserts them, and inserts read it
    back (``RETURNING``)."""

    db_returning = True


class JournalCounter(models.Model):
    """The last ``seq`` handed out in a run's journal: a row of its own, so numbering never touches the
    run's row, which the same statements update."""

    instance = models.OneToOneField(
        WorkflowInstance, on_delete=models.CASCADE, primary_key=True, related_name="journal_counter"
    )
    last_seq = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.instance_id}: {self.last_seq}"


class InstanceEvent(models.Model):
    """One journal entry. ``seq`` numbers a run's entries 1, 2, 3, … with no holes: what clients page
    with (``?after=<seq>``) and what websockets stream; ``id`` is only the row's key."""

    id = models.BigAutoField(primary_key=True)
    instance = models.ForeignKey(WorkflowInstance, on_delete=models.CASCADE, related_name="events")
    seq = JournalSeqField(null=True, editable=False)
    type = models.CharField(max_length=40)
    node_id = models.CharField(max_length=100, blank=True, default="")
    iteration = models.CharField(max_length=500, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["instance", "seq"]
        constraints = [models.UniqueConstraint(fields=["instance", "seq"], name="event_instance_seq_unique")]

    def __str__(self) -> str:
        return f"{self.type} {self.node_id}"


class WorkflowTestCase(models.Model):
    """A test of a workflow, kept beside its versions (not part of one): run the current graph with
    ``input``, the nodes named in ``pinned`` not executed (``{node_id: output}``), and compare the run
    with ``expect`` (``{status?, output?, nodes?: {node_id: {status?, output?}}}``). The last outcome is
    kept for the editor. Run by ``manage.py test_workflows`` and the editor's Tests panel."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="test_cases")
    name = models.CharField(max_length=200)
    input = models.JSONField(default=dict, blank=True)
    pinned = models.JSONField(default=dict, blank=True)
    expect = models.JSONField(default=dict, blank=True)
    last_result = models.JSONField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workflow", "name"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "name"], name="workflow_test_case_name_unique")
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id}: {self.name}"


class NodeCache(models.Model):
    """A node's output kept for ``cache_ttl_s``: a later run of the same node type with the same resolved
    inputs (and the same state of what they point at) in the same tenant reuses it instead of running."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=64)
    node_type = models.CharField(max_length=50)
    output = models.JSONField(null=True)
    instance_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="node_cache_key_unique")]

    def __str__(self) -> str:
        return f"{self.node_type} {self.key[:12]} until {self.expires_at:%Y-%m-%d %H:%M}"


class Blob(models.Model):
    """A node output too large for its row (``JETADMIN_BLOB_THRESHOLD_BYTES``): the JSON text, here or in
    S3 (``key``); the row's output is ``{"$blob": id, size, type, count?, preview}``. Deleted with its run."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey(WorkflowInstance, on_delete=models.CASCADE, related_name="blobs")
    node_id = models.CharField(max_length=100)
    iteration = models.CharField(max_length=500, blank=True, default="")
    size = models.PositiveBigIntegerField()
    content = models.TextField(blank=True, default="")  # the database store
    key = models.CharField(max_length=500, blank=True, default="")  # the S3 store
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.node_id} of {self.instance_id} ({self.size} bytes)"
