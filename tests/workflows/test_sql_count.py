"""The per-node path's SQL statements are pinned: this is where performance regressions hide.

A middle node of a chain (one template reference, one successor) costs on PostgreSQL three
statements: claim + "running" journal row (1), context read (1), and save output + settle successors
+ journal (1, atomic on its own, used when every out-edge is active); the context read is skipped
when this process saved the predecessor (a chain continued in one worker), and the last node of a
chain ends the run in its saving statement. On SQLite: a transaction with claim and journal, the context,
then a transaction with save, settle and journal (BEGIN and COMMIT are counted too).
"""

from __future__ import annotations

import pytest
from django.db import connection

from apps.tenancy import services as tenancy
from apps.workflows import services
from apps.workflows.engine import runtime
from apps.workflows.models import NodeRun
from jetadmin import embedded

pytestmark = pytest.mark.django_db(transaction=True)

CHAIN = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "a", "type": "fanout", "inputs": {"value": "{{start.x}}"}},
        {"id": "b", "type": "fanout", "inputs": {"value": "{{a.value}}"}},
        {"id": "end", "type": "end", "inputs": {"output": "{{b.value}}"}},
    ],
    "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}, {"from": "b", "to": "end"}],
}
PG = connection.vendor == "postgresql"
# SQLite: the predecessor's output read from the database (+2), and each of the node's two journal writes
# reads its rows' seq back (+2: SQLite's trigger numbers them after the insert, RETURNING misses it).
PER_NODE = 3 if PG else 8 + 2 + 2
# A chain continued by the worker that saved the predecessor reads its output from memory.
PER_NODE_WARM = PER_NODE - 1
# The last node also ends the run. On PostgreSQL that is part of its one saving statement; on SQLite a
# check for open nodes, a read of the end output and a transaction that ends the run follow.
LAST_NODE_WARM = 2 if PG else 14 + 3


def test_per_node_statements(owner_tenant, django_assert_num_queries):
    user, tenant = owner_tenant
    embedded.stop()  # no worker: this test drives the nodes itself, so nothing else may claim them
    instance = services.workflow_test(
        actor=tenancy.Actor(user=user), tenant=tenant, graph=CHAIN, input={"x": 1}
    )
    iid = str(instance.id)
    runtime.run_data(iid)  # the graph cache is per process and filled by the first node of a run
    runtime.execute(iid, "start")
    runtime._outputs.clear()  # as if another worker had run "start"
    with django_assert_num_queries(PER_NODE):
        assert runtime.execute(iid, "a") == "succeeded"
    with django_assert_num_queries(PER_NODE_WARM):
        assert runtime.execute(iid, "b") == "succeeded"
    with django_assert_num_queries(LAST_NODE_WARM):
        assert runtime.execute(iid, "end") == "succeeded"
    instance.refresh_from_db()
    assert instance.status == "succeeded" and instance.output == 1
    assert NodeRun.objects.get(instance=instance, node_id="b").output == {"value": 1}
