"""Node result caching (``cache_ttl_s``): a second run with the same inputs inside the TTL does not
execute the node (counted by the ledger table), a changed input or an expired TTL does, another tenant
never gets the cached value, an edited saved query is never served stale, and node types with side
effects refuse ``cache_ttl_s`` unless ``cache_side_effects: true``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from apps.tenancy.models import Tenant, User
from apps.tenancy.services import Actor
from apps.workflows import services
from apps.workflows.models import InstanceEvent, WorkflowInstance
from apps.workflows.services import graph_problems
from tests.workflows import testnodes

pytestmark = pytest.mark.django_db(transaction=True)


def cached_graph(value: Any, ttl: float = 60, **extra: Any) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "work", "type": "ledger", "inputs": {"value": value}, "cache_ttl_s": ttl, **extra},
            {"id": "end", "type": "end", "inputs": {"output": "{{work.value}}"}},
        ],
        "edges": [{"source": "start", "target": "work"}, {"source": "work", "target": "end"}],
    }


def hits(instance: WorkflowInstance) -> int:
    return InstanceEvent.objects.filter(instance=instance, type="node.cache_hit").count()


@pytest.fixture
def ledger() -> Callable[[], int]:
    testnodes.ledger_create()
    return lambda: len(testnodes.ledger_rows())


def test_a_second_run_inside_the_ttl_reuses_the_output(run_graph: Any, ledger: Callable[[], int]) -> None:
    first = run_graph(cached_graph("a"))
    second = run_graph(cached_graph("a"))
    assert first.status == second.status == "succeeded"
    assert first.output == second.output == "a"
    assert ledger() == 1  # the second run did not execute the node
    assert (hits(first), hits(second)) == (0, 1)
    changed = run_graph(cached_graph("b"))  # another input: another key
    assert changed.output == "b" and ledger() == 2 and hits(changed) == 0


def test_an_expired_entry_runs_the_node_again(run_graph: Any, ledger: Callable[[], int]) -> None:
    run_graph(cached_graph("x", ttl=0.3))
    time.sleep(0.5)
    again = run_graph(cached_graph("x", ttl=0.3))
    assert ledger() == 2 and hits(again) == 0


def test_another_tenant_never_gets_the_cached_value(
    run_graph: Any,
    ledger: Callable[[], int],
    make_user: Callable[..., User],
    make_tenant: Callable[..., Tenant],
) -> None:
    run_graph(cached_graph("shared?"))
    other_user = make_user()
    other = make_tenant("Other", owner=other_user)
    instance = services.workflow_test(
        actor=Actor(user=other_user), tenant=other, graph=cached_graph("shared?")
    )
    instance, timed_out = services.instance_wait(instance=instance, timeout_s=30)
    assert not timed_out and instance.status == "succeeded"
    assert ledger() == 2 and hits(instance) == 0


@pytest.mark.parametrize(
    ("node", "refused"),
    [
        ({"type": "httpRequest", "inputs": {"url": "https://example.com", "method": "POST"}}, True),
        (
            {
                "type": "httpRequest",
                "inputs": {"url": "https://example.com", "method": "POST"},
                "cache_side_effects": True,
            },
            False,
        ),
        ({"type": "httpRequest", "inputs": {"url": "https://example.com"}}, False),  # GET: no side effect
        ({"type": "notify", "inputs": {"channel": "webhook", "url": "https://example.com"}}, True),
        ({"type": "loop", "inputs": {"items": [1]}}, True),  # a flow node's result is not a value
        ({"type": "approval", "inputs": {}}, True),
    ],
)
def test_side_effects_and_flow_nodes_refuse_cache_ttl(node: dict[str, Any], refused: bool) -> None:
    graph = {
        "nodes": [{"id": "start", "type": "start"}, {"id": "n", "cache_ttl_s": 60, **node}],
        "edges": [{"source": "start", "target": "n"}],
    }
    found = [p for p in graph_problems(graph) if p["field"] == "cache_ttl_s"]
    assert bool(found) == refused, found


def test_an_edited_saved_query_is_never_served_stale(
    run_graph: Any, owner_tenant: tuple[User, Tenant], tmp_path: Any, settings: Any
) -> None:
    import sqlite3

    from apps.datasources import services as datasources
    from apps.queries import services as queries

    user, tenant = owner_tenant
    settings.JETADMIN_SQLITE_ROOT = str(tmp_path)
    conn = sqlite3.connect(tmp_path / "shop.db")
    conn.execute("CREATE TABLE t (n INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
    conn.commit()
    conn.close()
    actor = Actor(user=user)
    ds = datasources.datasource_create(
        actor=actor, tenant=tenant, name="shop", type="sqlite", config={"path": "shop.db", "read_only": True}
    )
    query = queries.query_create(
        actor=actor, tenant=tenant, name="count", datasource=ds.id, body="SELECT COUNT(*) AS c FROM t"
    )
    graph = {
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "q", "type": "dataQuery", "inputs": {"query": str(query.id)}, "cache_ttl_s": 600},
            {"id": "end", "type": "end", "inputs": {"output": "{{q.result}}"}},
        ],
        "edges": [{"source": "start", "target": "q"}, {"source": "q", "target": "end"}],
    }
    first = run_graph(graph)
    second = run_graph(graph)
    assert first.output == second.output == [{"c": 3}] and hits(second) == 1
    queries.query_update(actor=actor, query=query, body="SELECT SUM(n) AS c FROM t")
    edited = run_graph(graph)
    assert hits(edited) == 0 and edited.output == [{"c": 6}]
