"""Trigger test helpers: the workflows fixtures (embedded worker, an owner's tenant) and a workflow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apps.tenancy.models import Tenant, User
from apps.tenancy.services import Actor
from apps.workflows import services as workflows
from apps.workflows.models import Workflow
from tests.workflows.conftest import _embedded_session, embedded_worker, owner_tenant

__all__ = ["_embedded_session", "echo_workflow", "embedded_worker", "owner_tenant"]

# start → end, whose output echoes the run input: a run's output shows what the trigger passed in.
ECHO = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "end", "type": "end", "inputs": {"output": {"got": "{{input}}"}}},
    ],
    "edges": [{"source": "start", "target": "end"}],
}


@pytest.fixture
def echo_workflow(owner_tenant: tuple[User, Tenant]) -> Callable[..., Workflow]:
    user, tenant = owner_tenant

    def make(name: str = "Echo", on: Tenant | None = None, by: User | None = None) -> Workflow:
        return workflows.workflow_create(
            actor=Actor(user=by or user), tenant=on or tenant, name=name, graph=ECHO
        )

    return make


def url_of(tenant: Any, workflow: Any, kind: str) -> str:
    return f"/api/v1/tenants/{tenant.id}/workflows/{workflow.id}/{kind}/"
