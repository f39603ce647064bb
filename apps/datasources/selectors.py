"""Reads in datasources, always scoped to a tenant; ``*_get`` raise 404 for ids of other tenants."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from apps.datasources.models import Datasource
from apps.tenancy.models import Tenant


def datasource_list(*, tenant: Tenant | uuid.UUID | str) -> QuerySet[Datasource]:
    return Datasource.objects.filter(tenant_id=tenant.pk if isinstance(tenant, Tenant) else tenant)


def datasource_get(*, tenant: Tenant | uuid.UUID | str, datasource_id: Any) -> Datasource:
    """``tenant`` may be the tenant or its id (workflow nodes know only the run's tenant id)."""
    try:
        pk = uuid.UUID(str(datasource_id))
    except ValueError:
        raise NotFound() from None
    found = datasource_list(tenant=tenant).filter(pk=pk).first()
    if found is None:
        raise NotFound()
    return found
