"""jetadmin/db/rows.Lookup: prepared one-row lookups give what the ORM gives, whatever the order of
``only`` (``Model.from_db`` matches a partial row to fields in the model's order)."""

from __future__ import annotations

import uuid

import pytest

from apps.tenancy.models import Membership
from apps.workflows import services as workflows
from apps.workflows.models import WorkflowInstance
from jetadmin.db.rows import Lookup

pytestmark = pytest.mark.django_db

GRAPH = {"nodes": [{"id": "start", "type": "start"}], "edges": []}


def test_only_in_any_order_reads_the_right_columns(make_user, make_tenant):
    from apps.tenancy.services import Actor

    owner = make_user()
    tenant = make_tenant("Rows", owner=owner)
    run = workflows.workflow_test(actor=Actor(user=owner), tenant=tenant, graph=GRAPH, input={"a": [1, 2]})
    lookup = Lookup(WorkflowInstance, "id", only=("trigger", "input", "tenant", "parent_node"))
    row = lookup.get(run.id)
    assert (row.trigger, row.input, row.tenant_id, row.parent_node) == ("test", {"a": [1, 2]}, tenant.id, "")
    assert lookup.get(uuid.uuid4()) is None
    with pytest.raises(ValueError, match="has no concrete field"):
        Lookup(WorkflowInstance, "id", only=("input", "nonsense")).get(run.id)


def test_related_rows_are_joined_and_cached(make_user, make_tenant):
    owner = make_user()
    tenant = make_tenant("Joined", owner=owner)
    membership = Lookup(Membership, "tenant", "user", related=("tenant", "role")).get(tenant.id, owner.pk)
    expected = Membership.objects.select_related("tenant", "role").get(tenant=tenant, user=owner)
    assert membership.pk == expected.pk and membership.role.name == expected.role.name == "owner"
    assert membership.tenant.name == "Joined"
    assert membership._state.fields_cache["tenant"].pk == tenant.pk  # cached like select_related
