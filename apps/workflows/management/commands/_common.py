"""Shared bits of the workflow management commands."""

from __future__ import annotations

from django.core.management.base import CommandError

from apps.tenancy.models import Tenant


def resolve_tenant(value: str | None) -> Tenant:
    """A tenant by id or name; without one, the only tenant there is (or "Demo")."""
    qs = Tenant.objects.all()
    if value:
        tenant = qs.filter(name=value).first()
        if tenant is None:
            try:
                tenant = qs.filter(pk=value).first()
            except Exception:  # not a UUID
                tenant = None
        if tenant is None:
            raise CommandError(f"No tenant {value!r}.")
        return tenant
    tenants = list(qs[:2])
    if len(tenants) == 1:
        return tenants[0]
    demo = qs.filter(name="Demo").first()
    if demo is not None:
        return demo
    if not tenants:
        raise CommandError("There is no tenant yet: run `manage.py bootstrap_demo` or pass --tenant.")
    raise CommandError("Several tenants exist: pass --tenant NAME_OR_ID.")
