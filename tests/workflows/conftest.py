"""Workflow test helpers: the in-process worker, and running a graph to its end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apps.tenancy import services as tenancy
from apps.tenancy.models import Tenant, User
from apps.workflows import services
from apps.workflows.engine import runtime
from apps.workflows.models import NodeRun, WorkflowInstance
from jetadmin import embedded


@pytest.fixture(scope="session")
def _embedded_session() -> Iterator[None]:
    yield
    embedded.stop()


@pytest.fixture
def embedded_worker(_embedded_session: None) -> Iterator[Any]:
    """Celery's worker in threads of this process, consuming the configured broker (memory:// or Redis).

    Started on first use and kept for the session; tests with worker processes stop it first. At the
    end of each test, open runs are canceled and in-flight tasks drained, so the database reset that
    follows a transactional test never races a worker thread.
    """
    yield embedded.start(concurrency=4)

    def cancel_open() -> None:
        open_runs = ["queued", "running", "waiting"]
        WorkflowInstance.objects.filter(status__in=open_runs).update(status="canceled")
        NodeRun.objects.filter(status__in=["pending", *open_runs]).update(status="canceled")

    # A worker thread may be settling rows at this moment: the bulk update can deadlock with it once.
    runtime._retry_db(cancel_open)
    embedded.quiesce()


@pytest.fixture
def owner_tenant(make_user: Callable[..., User], make_tenant: Callable[..., Tenant]) -> tuple[User, Tenant]:
    user = make_user()
    return user, make_tenant("Engine", owner=user)


@pytest.fixture
def run_graph(embedded_worker: Any, owner_tenant: tuple[User, Tenant]) -> Callable[..., WorkflowInstance]:
    """Start ``graph`` as a test run on the embedded worker and wait for it to end."""
    user, tenant = owner_tenant

    def run(graph: dict[str, Any], input: Any = None, timeout: float = 30) -> WorkflowInstance:
        instance = services.workflow_test(
            actor=tenancy.Actor(user=user), tenant=tenant, graph=graph, input=input
        )
        instance, timed_out = services.instance_wait(instance=instance, timeout_s=timeout)
        assert not timed_out, f"run did not end in {timeout}s: {nodes(instance)}"
        return instance

    return run


def nodes(instance: WorkflowInstance, iteration: str = "") -> dict[str, str]:
    """``{node_id: status}`` of a run's node runs in one scope."""
    return dict(
        NodeRun.objects.filter(instance=instance, iteration=iteration)
        .exclude(node_type="loop.iteration")
        .values_list("node_id", "status")
    )
