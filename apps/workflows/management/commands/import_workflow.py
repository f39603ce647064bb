"""``manage.py import_workflow FILE [--tenant T] [--name NAME]``: create a workflow from JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.tenancy.services import Actor
from apps.workflows import services
from jetadmin.api.errors import ApplicationError

from ._common import resolve_tenant


class Command(BaseCommand):
    help = "Import a workflow exported by export_workflow (or a bare {nodes, edges} graph)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file")
        parser.add_argument("--tenant", help="tenant name or id (default: the only one, or Demo)")
        parser.add_argument("--name", help="name of the new workflow (default: the exported one)")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            data = json.loads(Path(opts["file"]).read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read {opts['file']}: {exc}") from exc
        if not isinstance(data, dict):
            raise CommandError("Expected a JSON object.")
        graph = data.get("graph", data)
        name = opts["name"] or data.get("name") or Path(opts["file"]).stem
        tenant = resolve_tenant(opts["tenant"])
        try:
            workflow = services.workflow_create(
                actor=Actor(), tenant=tenant, name=name, description=data.get("description", ""), graph=graph
            )
        except ApplicationError as exc:
            lines = [
                f"  {e['node_id'] or 'graph'}.{e['field']}: {e['message']}"
                for e in exc.details.get("graph", [])
            ]
            raise CommandError("\n".join([exc.message, *lines])) from exc
        self.stdout.write(self.style.SUCCESS(f"imported {workflow.name!r} as {workflow.id} in {tenant.name}"))
