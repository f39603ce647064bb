"""``manage.py export_tenant DIR --tenant TENANT``: a tenant's definitions as files
(jetadmin/definitions.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.tenancy.models import Tenant
from jetadmin import definitions


def tenant_named(value: str) -> Tenant:
    """A tenant by id or by (unique) name."""
    found = Tenant.objects.filter(name=value)
    if re.fullmatch(r"[0-9a-fA-F-]{32,36}", value):
        found = found | Tenant.objects.filter(pk=value)
    tenants = list(found.distinct()[:2])
    if len(tenants) != 1:
        raise CommandError(f"No single tenant {value!r} (give its id or its unique name).")
    return tenants[0]


class Command(BaseCommand):
    help = "Write a tenant's datasources, queries, workflows, widgets and dashboards as JSON files."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("directory")
        parser.add_argument("--tenant", required=True, help="tenant id or name")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = tenant_named(opts["tenant"])
        counts = definitions.export(tenant, Path(opts["directory"]))
        shown = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        self.stdout.write(f"Exported {tenant.name}: {shown} to {opts['directory']}")
