"""``manage.py run_workflow FILE.json [--input JSON]``: run a graph as a test run, with progress.

Shows one progress line per node while the run goes (redrawn in place on a terminal, printed on
change otherwise), then the run's output as JSON. Exit code 0 when it succeeded, 1 otherwise. On the
embedded default the command starts the in-process worker itself.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.tenancy.services import Actor
from apps.workflows import services
from apps.workflows.models import NodeRun

from ._common import resolve_tenant

BAR = 20
DONE = {"succeeded": "ok", "failed": "FAILED", "skipped": "skipped", "canceled": "canceled"}
PROGRESS = {"pending": 0, "queued": 0.15, "running": 0.5, "waiting": 0.6}


def _bar(status: str, loop_progress: float | None) -> str:
    filled = (
        1.0 if status in DONE else (loop_progress if loop_progress is not None else PROGRESS.get(status, 0))
    )
    n = round(filled * BAR)
    return "[" + "#" * n + "-" * (BAR - n) + "]"


class Command(BaseCommand):
    help = "Run a workflow graph (JSON file) as a test run and show per-node progress."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="graph JSON: {nodes, edges} or an export_workflow file")
        parser.add_argument("--input", default="{}", help="run input as JSON")
        parser.add_argument("--tenant", help="tenant name or id (default: the only one, or Demo)")
        parser.add_argument("--timeout", type=float, default=600)

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            raw = json.loads(Path(opts["file"]).read_text())
            run_input = json.loads(opts["input"])
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read the graph or input: {exc}") from exc
        graph = raw.get("graph", raw) if isinstance(raw, dict) else raw
        tenant = resolve_tenant(opts["tenant"])
        if settings.EMBEDDED:
            from jetadmin import embedded

            if (
                opts["verbosity"] < 2
            ):  # the progress display is the output; the worker's start-up lines are noise
                for name in ("celery", "jetadmin.embedded"):
                    logging.getLogger(name).setLevel(logging.WARNING)
            embedded.start()
        try:
            instance = services.workflow_test(actor=Actor(), tenant=tenant, graph=graph, input=run_input)
        except Exception as exc:
            details = getattr(exc, "details", {}).get("graph") if hasattr(exc, "details") else None
            lines = [f"  {e['node_id'] or 'graph'}.{e['field']}: {e['message']}" for e in details or []]
            raise CommandError("\n".join([str(exc), *lines])) from exc
        order = [n["id"] for n in graph.get("nodes", [])]
        tty = sys.stdout.isatty()
        drawn = 0
        last: dict[str, str] = {}
        deadline = time.monotonic() + opts["timeout"]
        while True:
            instance.refresh_from_db(fields=["status", "output", "error"])
            rows = NodeRun.objects.filter(instance=instance, iteration="").values_list(
                "node_id", "status", "state"
            )
            state = {node_id: (status, st) for node_id, status, st in rows}
            lines = []
            for node_id in order:
                status, st = state.get(node_id, ("pending", None))
                loop_progress = None
                if node_id not in state:  # a loop body node: one run per iteration
                    runs = list(
                        NodeRun.objects.filter(instance=instance, node_id=node_id).values_list(
                            "status", flat=True
                        )
                    )
                    finished = sum(1 for r in runs if r in DONE)
                    loop_progress = finished / len(runs) if runs else 0.0
                    lines.append(
                        f"{_bar('running', loop_progress)} {node_id:<24} in loop: {finished}/{len(runs)} done"
                    )
                    continue
                if status == "waiting" and st and st.get("count"):
                    done = NodeRun.objects.filter(
                        instance=instance, node_id=node_id, node_type="loop.iteration", status="succeeded"
                    ).count()
                    loop_progress = done / st["count"]
                    status_text = f"waiting ({done}/{st['count']} iterations)"
                else:
                    status_text = DONE.get(status, status)
                lines.append(f"{_bar(status, loop_progress)} {node_id:<24} {status_text}")
            if tty:
                if drawn:
                    self.stdout.write(f"\x1b[{drawn}F", ending="")
                for line in lines:
                    self.stdout.write("\x1b[2K" + line)
                drawn = len(lines)
            else:
                for node_id, line in zip(order, lines, strict=True):
                    if last.get(node_id) != line:
                        self.stdout.write(line)
                        last[node_id] = line
            if instance.status in ("succeeded", "failed", "canceled"):
                break
            if time.monotonic() > deadline:
                raise CommandError(
                    f"The run did not end within {opts['timeout']} s (instance {instance.id})."
                )
            time.sleep(0.1)
        self.stdout.write(f"run {instance.id}: {instance.status}")
        if instance.status == "succeeded":
            self.stdout.write(json.dumps(instance.output, indent=2, default=str, ensure_ascii=False))
        else:
            self.stderr.write(json.dumps(instance.error, indent=2, default=str, ensure_ascii=False))
            sys.exit(1)
