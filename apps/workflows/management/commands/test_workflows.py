"""``manage.py test_workflows [--tenant T] [--workflow W] [--junit FILE]``: run workflows' test cases.

Each case runs the workflow's current version as a test run with its pinned nodes not executed, and is
reported PASS or FAIL with a diff of what differed. ``--junit`` writes JUnit XML (one testsuite per
workflow) for a CI system. Exit code 0 when every case passed, 1 otherwise (2 when there was nothing to
run). On the embedded default the command starts the in-process worker itself.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.tenancy.services import Actor
from apps.workflows import testcases
from apps.workflows.models import WorkflowTestCase

from ._common import resolve_tenant


def _junit(results: list[tuple[WorkflowTestCase, dict[str, Any]]]) -> ET.Element:
    root = ET.Element("testsuites", name="jetadmin workflows")
    suites: dict[str, ET.Element] = {}
    for case, result in results:
        name = case.workflow.name
        suite = suites.get(name)
        if suite is None:
            suite = suites[name] = ET.SubElement(root, "testsuite", name=name, id=str(case.workflow_id))
        element = ET.SubElement(
            suite,
            "testcase",
            classname=name,
            name=case.name,
            time=f"{result['duration_ms'] / 1000:.3f}",
        )
        if not result["passed"]:
            first = result["failures"][0]
            failure = ET.SubElement(element, "failure", message=f"{first['where']} differs", type="mismatch")
            failure.text = "\n\n".join(f"{f['where']}:\n{f['diff']}" for f in result["failures"])
        ET.SubElement(element, "system-out").text = f"run {result['instance_id']}"
    for suite in suites.values():
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        suite.set("time", f"{sum(float(c.get('time', 0)) for c in cases):.3f}")
    return root


class Command(BaseCommand):
    help = "Run the test cases of workflows and report pass/fail (optionally as JUnit XML)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", help="tenant name or id (default: the only one, or Demo)")
        parser.add_argument("--workflow", help="only this workflow (name or id)")
        parser.add_argument("--junit", help="write JUnit XML to this file")
        parser.add_argument("--timeout", type=float, default=testcases.DEFAULT_TIMEOUT_S, help="per case, s")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = resolve_tenant(opts["tenant"])
        cases = WorkflowTestCase.objects.filter(workflow__tenant=tenant).select_related(
            "workflow", "workflow__current_version", "workflow__tenant"
        )
        if opts["workflow"]:
            wanted = opts["workflow"]
            by_name = cases.filter(workflow__name=wanted)
            if not by_name.exists():
                try:
                    by_name = cases.filter(workflow_id=wanted)
                    by_name.exists()
                except Exception:  # not a UUID
                    raise CommandError(f"No workflow {wanted!r} with test cases.") from None
            cases = by_name
        cases = cases.order_by("workflow__name", "name")
        if not cases.exists():
            self.stderr.write("No test cases to run.")
            sys.exit(2)
        if settings.EMBEDDED:
            from jetadmin import embedded

            if opts["verbosity"] < 2:  # the report is the output; the worker's start-up lines are noise
                for name in ("celery", "jetadmin.embedded"):
                    logging.getLogger(name).setLevel(logging.WARNING)
            embedded.start()
        results: list[tuple[WorkflowTestCase, dict[str, Any]]] = []
        for case in cases:
            result = testcases.test_case_run(actor=Actor(), case=case, timeout_s=opts["timeout"])
            results.append((case, result))
            verdict = "PASS" if result["passed"] else "FAIL"
            self.stdout.write(f"{verdict}  {case.workflow.name} / {case.name}  ({result['duration_ms']} ms)")
            for failure in result["failures"]:
                self.stdout.write(f"  {failure['where']}:")
                for line in failure["diff"].splitlines():
                    self.stdout.write(f"    {line}")
        failed = sum(1 for _, r in results if not r["passed"])
        self.stdout.write(f"{len(results) - failed} passed, {failed} failed")
        if opts["junit"]:
            tree = ET.ElementTree(_junit(results))
            ET.indent(tree)
            try:
                tree.write(Path(opts["junit"]), encoding="utf-8", xml_declaration=True)
            except OSError as exc:
                raise CommandError(f"Cannot write {opts['junit']}: {exc}") from exc
        if failed:
            sys.exit(1)
