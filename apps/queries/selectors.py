"""Reads in queries, always scoped to a tenant; ``query_get`` raises 404 for other tenants' ids."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from apps.queries.models import DataQuery
from apps.tenancy.models import Tenant


def query_list(*, tenant: Tenant | uuid.UUID | str) -> QuerySet[DataQuery]:
    """``tenant`` may be the tenant or its id (workflow nodes know only the run's tenant id)."""
    tenant_id = tenant.pk if isinstance(tenant, Tenant) else tenant
    return DataQuery.objects.filter(tenant_id=tenant_id).select_related("datasource")


def query_get(*, tenant: Tenant | uuid.UUID | str, query_id: Any) -> DataQuery:
    try:
        pk = uuid.UUID(str(query_id))
    except ValueError:
        raise NotFound() from None
    found = query_list(tenant=tenant).filter(pk=pk).first()
    if found is None:
        raise NotFound()
    return found
