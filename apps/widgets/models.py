"""Widgets: a typed view of a workflow run's data.

* ``Widget`` — a type from the registry (:mod:`apps.widgets.types`), a ``config`` that may hold
  ``{{ctx.*}}`` templates resolved against a run's context, and optionally the workflow that feeds it
  with the input parameters it declares (``workflow_config.input_params``: name -> default).
* ``WidgetRun`` — a run feeding a widget with one set of input parameters (``params_hash``): written
  when a widget starts a run or attaches to one. Workers read it to know which widgets' channel-layer
  groups (``widget.<id>.<params_hash>``) a run's progress goes to, and ``execute`` reuses a recent run
  of the same widget and parameters through it.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from apps.tenancy.models import Tenant
from apps.workflows.models import Workflow, WorkflowInstance


class Widget(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="widgets")
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=40)
    config = models.JSONField(default=dict, blank=True)
    workflow = models.ForeignKey(
        Workflow, null=True, blank=True, on_delete=models.SET_NULL, related_name="widgets"
    )
    workflow_config = models.JSONField(default=dict, blank=True)
    # The last data a run produced for this widget (kept when a later run's data cannot be processed).
    last_data = models.JSONField(null=True, blank=True)
    last_provenance = models.JSONField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def input_params(self) -> dict[str, object]:
        params = (self.workflow_config or {}).get("input_params")
        return params if isinstance(params, dict) else {}


class WidgetRun(models.Model):
    id = models.BigAutoField(primary_key=True)
    widget = models.ForeignKey(Widget, on_delete=models.CASCADE, related_name="runs")
    instance = models.ForeignKey(WorkflowInstance, on_delete=models.CASCADE, related_name="widget_runs")
    params_hash = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["widget", "instance", "params_hash"], name="widget_run_unique")
        ]
        indexes = [models.Index(fields=["widget", "params_hash", "-created_at"], name="widget_run_recent")]

    def __str__(self) -> str:
        return f"{self.widget_id} <- {self.instance_id}"
