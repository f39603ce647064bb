"""``manage.py export_workflow WORKFLOW_ID [--output FILE]``: a workflow as portable JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.workflows.models import Workflow


class Command(BaseCommand):
    help = "Export a workflow (name, description, current graph) as JSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("workflow", help="workflow id")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            workflow = Workflow.objects.select_related("current_version").get(pk=opts["workflow"])
        except (Workflow.DoesNotExist, ValueError, Exception) as exc:
            raise CommandError(f"No workflow {opts['workflow']!r}.") from exc
        data = {
            "jetadmin_export": 1,
            "name": workflow.name,
            "description": workflow.description,
            "version": workflow.current_version.version if workflow.current_version else None,
            "graph": workflow.current_version.graph
            if workflow.current_version
            else {"nodes": [], "edges": []},
        }
        text = json.dumps(data, indent=2, ensure_ascii=False)
        if opts["output"]:
            Path(opts["output"]).write_text(text + "\n")
            self.stderr.write(f"wrote {opts['output']}")
        else:
            self.stdout.write(text)
