"""Reads in workflows, always scoped to a tenant; ``*_get`` raise 404 for ids of other tenants."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from apps.tenancy.models import Tenant
from apps.workflows.models import InstanceEvent, Workflow, WorkflowInstance, WorkflowTestCase, WorkflowVersion
from jetadmin.db.rows import Lookup


def _uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise NotFound() from exc


def workflow_list(*, tenant: Tenant) -> QuerySet[Workflow]:
    return Workflow.objects.filter(tenant=tenant).select_related("current_version")


_WORKFLOWS = Lookup(Workflow, "tenant", "id", related=("current_version",))


def workflow_get(*, tenant: Tenant, workflow_id: Any) -> Workflow:
    workflow = _WORKFLOWS.get(tenant.pk, _uuid(workflow_id))  # SQL built once, not compiled per call
    if workflow is None:
        raise NotFound()
    workflow.tenant = tenant  # it is this tenant's: spare the query for it
    return workflow


def version_list(*, workflow: Workflow) -> QuerySet[WorkflowVersion]:
    return WorkflowVersion.objects.filter(workflow=workflow).select_related("created_by").order_by("-version")


def version_get(*, workflow: Workflow, version: int) -> WorkflowVersion:
    found = (
        WorkflowVersion.objects.filter(workflow=workflow, version=version)
        .select_related("created_by")
        .first()
    )
    if found is None:
        raise NotFound()
    return found


def test_case_list(*, workflow: Workflow) -> QuerySet[WorkflowTestCase]:
    return WorkflowTestCase.objects.filter(workflow=workflow).order_by("name", "id")


def test_case_get(*, workflow: Workflow, case_id: Any) -> WorkflowTestCase:
    found = WorkflowTestCase.objects.filter(workflow=workflow, pk=_uuid(case_id)).first()
    if found is None:
        raise NotFound()
    found.workflow = workflow
    return found


def instance_list(
    *, tenant: Tenant, workflow_id: str | None = None, status: str | None = None
) -> QuerySet[WorkflowInstance]:
    qs = WorkflowInstance.objects.filter(tenant=tenant).select_related("version").defer("graph")
    if workflow_id:
        qs = qs.filter(workflow_id=_uuid(workflow_id))
    if status:
        qs = qs.filter(status=status)
    return qs


def instance_get(*, tenant: Tenant, instance_id: Any) -> WorkflowInstance:
    instance = (
        WorkflowInstance.objects.filter(tenant=tenant, pk=_uuid(instance_id))
        .select_related("version", "workflow")
        .first()
    )
    if instance is None:
        raise NotFound()
    return instance


def event_list(*, instance: WorkflowInstance, after: int = 0) -> QuerySet[InstanceEvent]:
    return InstanceEvent.objects.filter(instance=instance, seq__gt=after).order_by("seq")
