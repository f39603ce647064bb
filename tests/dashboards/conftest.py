"""Dashboard tests use the widget fixtures (a tenant with a workflow and a chart on it)."""

from tests.widgets.conftest import _embedded_session, embedded_worker, shop

__all__ = ["_embedded_session", "embedded_worker", "shop"]
