"""Reads in datasources, always scoped to a tenant; ``*_get`` raise 404 for ids of other tenants."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from apps.datasources.models import Datasource
from apps.tenancy.models import Tenant


def datasource_list(*, tenant: Tenant) -> QuerySet[Datasource]:
    return Datasource.objects.filter(tenant=tenant)


def datasource_get(*, tenant: Tenant, datasource_id: Any) -> Datasource:
    try:
        pk = uuid.UUID(str(datasource_id))
    except ValueError:
        raise NotFound() from None
    found = datasource_list(tenant=tenant).filter(pk=pk).first()
    if found is None:
        raise NotFound()
    return found
