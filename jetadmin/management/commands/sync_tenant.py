"""``manage.py sync_tenant DIR --tenant TENANT [--apply] [--force]``: make a tenant's definitions what the
files say. Without ``--apply`` it only shows the plan. Exit codes: 0 done (or nothing to do), 1 the plan
has conflicts (nothing applied), 2 the files or a step were refused (nothing applied)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from apps.tenancy.services import SYSTEM
from jetadmin import definitions
from jetadmin.management.commands.export_tenant import tenant_named


class Command(BaseCommand):
    help = "Show (and with --apply, apply in one transaction) the changes that make a tenant match DIR."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("directory")
        parser.add_argument("--tenant", required=True, help="tenant id or name")
        parser.add_argument("--apply", action="store_true", help="apply the plan (default: only show it)")
        parser.add_argument(
            "--force",
            action="store_true",
            help="the files win over changes made in jetadmin since the export",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = tenant_named(opts["tenant"])
        try:
            files = definitions.read(Path(opts["directory"]))
            plan = definitions.plan(tenant, files, force=opts["force"])
        except definitions.DefinitionsError as exc:
            self.stderr.write(str(exc))
            sys.exit(2)
        for line in plan.lines():
            self.stdout.write(line)
        if not plan.steps:
            self.stdout.write(f"{tenant.name} already matches {opts['directory']}.")
            return
        if plan.conflicts:
            self.stderr.write(
                f"{len(plan.conflicts)} conflict(s): changed in jetadmin since the export. Export again and "
                "merge, or sync with --force to let the files win. Nothing was applied."
            )
            sys.exit(1)
        if not opts["apply"]:
            self.stdout.write("Plan only: run again with --apply to carry it out.")
            return
        try:
            definitions.apply(tenant, files, plan, actor=SYSTEM)
        except definitions.DefinitionsError as exc:
            self.stderr.write(str(exc))
            sys.exit(2)
        self.stdout.write(f"Applied {len(plan.steps)} change(s) to {tenant.name}.")
