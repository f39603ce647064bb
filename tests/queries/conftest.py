"""Query test helpers: the workflows fixtures (embedded worker, an owner's tenant, run_graph)."""

from tests.workflows.conftest import _embedded_session, embedded_worker, owner_tenant, run_graph

__all__ = ["_embedded_session", "embedded_worker", "owner_tenant", "run_graph"]
