"""``manage.py import_workflow FILE [--tenant T] [--name NAME] [--update]``: create a workflow from
JSON — ours, or Jet Admin's workflow JSON, converted explicitly (apps/workflows/jetimport.py) with
what was converted printed. A workflow of the same name in the tenant is never duplicated: the
import is refused, or, with ``--update``, the graph becomes that workflow's new version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.tenancy.services import Actor
from apps.workflows import selectors, services
from jetadmin.api.errors import ApplicationError

from ._common import resolve_tenant


class Command(BaseCommand):
    help = "Import a workflow exported by export_workflow (or a bare {nodes, edges} graph)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file")
        parser.add_argument("--tenant", help="tenant name or id (default: the only one, or Demo)")
        parser.add_argument("--name", help="name of the new workflow (default: the exported one)")
        parser.add_argument(
            "--update",
            action="store_true",
            help="if a workflow of this name exists, save the graph as its new version instead of refusing",
        )

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
        existing = selectors.workflow_list(tenant=tenant).filter(name=name).first()
        if existing is not None and not opts["update"]:
            raise CommandError(
                f"A workflow named {name!r} already exists in {tenant.name} ({existing.id}). "
                "Pass --update to save this graph as its new version, or --name to import it under another "
                "name."
            )
        converted: list[str] = []
        try:
            if existing is not None:
                graph, conversion = services.graph_converted(tenant=tenant, graph=graph)
                converted = list(conversion.converted) if conversion else []
                workflow = services.workflow_update(actor=Actor(), workflow=existing, graph=graph)
            else:  # Jet Admin's workflow JSON is converted (and its chart becomes a widget)
                workflow, converted = services.workflow_import(
                    actor=Actor(),
                    tenant=tenant,
                    name=name,
                    description=data.get("description", ""),
                    graph=graph,
                )
        except ApplicationError as exc:
            lines = [
                f"  {e['node_id'] or 'graph'}.{e['field']}: {e['message']}"
                for e in exc.details.get("graph", [])
            ]
            raise CommandError("\n".join([exc.message, *lines])) from exc
        version = workflow.current_version.version if workflow.current_version else 1
        how = (
            f"updated {workflow.name!r} ({workflow.id}) to version {version}"
            if existing
            else (f"imported {workflow.name!r} as {workflow.id}")
        )
        self.stdout.write(self.style.SUCCESS(f"{how} in {tenant.name}"))
        if converted:
            self.stdout.write("Converted from Jet Admin's format:")
            for line in converted:
                self.stdout.write(f"  {line}")
