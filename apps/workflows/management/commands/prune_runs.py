"""``manage.py prune_runs [--tenant TENANT] [--budget-s S]``: apply the retention settings now (what
the beat task ``workflows.prune`` does every JETADMIN_RETENTION_TICK_S), printing what was deleted."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.tenancy.models import Tenant
from apps.workflows import retention


class Command(BaseCommand):
    help = "Delete ended runs past their tenant's retention settings (in batches), and expired cache rows."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", help="only this tenant (id)")
        parser.add_argument("--budget-s", type=float, default=None, help="stop after this many seconds")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = None
        if opts["tenant"]:
            tenant = Tenant.objects.filter(pk=opts["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant {opts['tenant']!r}.")
        budget = opts["budget_s"] if opts["budget_s"] is not None else 10**9
        pruned = retention.prune(tenant=tenant, budget_s=budget)
        self.stdout.write(json.dumps(pruned.as_dict()))
