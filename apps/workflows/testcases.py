"""Workflow test cases: saved inputs, pinned node outputs and expectations, run as test runs.

A case runs the workflow's *current* graph as a test run (``is_test``) in which the nodes named in
``pinned`` are not executed and succeed with the given output (the engine's ``pinned`` node key), so a
case can stand in for a database or an HTTP API. The run is then compared with ``expect``: the run's
status (``succeeded`` unless said otherwise), its output, and per node a status and/or an output. A
failure carries a readable unified diff of expected against actual JSON.
"""

from __future__ import annotations

import copy
import difflib
import json
import time
from typing import Any

import jsonschema
from django.db import transaction
from django.utils import timezone

from apps.tenancy.services import Actor, audit_log_write
from jetadmin.api.errors import ApplicationError

from . import services
from .models import NodeRun, Workflow, WorkflowTestCase

STATUSES = ["succeeded", "failed", "canceled", "waiting"]
NODE_STATUSES = ["succeeded", "failed", "skipped", "canceled", "waiting"]
EXPECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"enum": STATUSES},
        "output": {},
        "nodes": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"status": {"enum": NODE_STATUSES}, "output": {}},
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
DEFAULT_TIMEOUT_S = 60.0


def _node_ids(workflow: Workflow) -> set[str]:
    graph = workflow.current_version.graph if workflow.current_version else {}
    return {n["id"] for n in graph.get("nodes", []) if isinstance(n, dict) and "id" in n}


def _checked(workflow: Workflow, *, input: Any, pinned: Any, expect: Any) -> None:
    errors: dict[str, list[str]] = {}
    if not isinstance(input, dict):
        errors["input"] = ["The run's input must be an object."]
    known = _node_ids(workflow)
    if not isinstance(pinned, dict):
        errors["pinned"] = ["Pinned outputs are an object {node_id: output}."]
    else:
        unknown = sorted(set(pinned) - known)
        if unknown:
            errors["pinned"] = [f"No node {unknown[0]!r} in the workflow's current version."]
    problems = list(jsonschema.Draft202012Validator(EXPECT_SCHEMA).iter_errors(expect))
    if problems:
        first = problems[0]
        path = ".".join(["expect", *map(str, first.absolute_path)])
        errors[path] = [first.message]
    elif isinstance(expect, dict):
        unknown = sorted(set(expect.get("nodes", {})) - known)
        if unknown:
            errors["expect.nodes"] = [f"No node {unknown[0]!r} in the workflow's current version."]
    if errors:
        first_field, messages = next(iter(errors.items()))
        raise ApplicationError(f"{first_field}: {messages[0]}", details=errors)


@transaction.atomic
def test_case_create(
    *, actor: Actor, workflow: Workflow, name: str, input: Any, pinned: Any, expect: Any
) -> WorkflowTestCase:
    _checked(workflow, input=input, pinned=pinned, expect=expect)
    if WorkflowTestCase.objects.filter(workflow=workflow, name=name).exists():
        raise ApplicationError(
            f"A test case named {name!r} exists.", details={"name": ["A case with this name exists."]}
        )
    case = WorkflowTestCase.objects.create(
        workflow=workflow, name=name, input=input, pinned=pinned, expect=expect, created_by=actor.user
    )
    audit_log_write(
        actor=actor,
        tenant=workflow.tenant,
        action="workflow.test_case.create",
        obj=case,
        changes={"name": name},
    )
    return case


@transaction.atomic
def test_case_update(*, actor: Actor, case: WorkflowTestCase, **fields: Any) -> WorkflowTestCase:
    merged = {k: fields.get(k, getattr(case, k)) for k in ("input", "pinned", "expect")}
    _checked(case.workflow, **merged)
    name = fields.get("name")
    if name and name != case.name:
        if WorkflowTestCase.objects.filter(workflow=case.workflow, name=name).exclude(pk=case.pk).exists():
            raise ApplicationError(
                f"A test case named {name!r} exists.", details={"name": ["A case with this name exists."]}
            )
        case.name = name
    for key, value in merged.items():
        setattr(case, key, value)
    case.save()
    audit_log_write(
        actor=actor,
        tenant=case.workflow.tenant,
        action="workflow.test_case.update",
        obj=case,
        changes={"fields": sorted(fields)},
    )
    return case


@transaction.atomic
def test_case_delete(*, actor: Actor, case: WorkflowTestCase) -> None:
    audit_log_write(
        actor=actor,
        tenant=case.workflow.tenant,
        action="workflow.test_case.delete",
        obj=case,
        changes={"name": case.name},
    )
    case.delete()


def case_graph(case: WorkflowTestCase) -> dict[str, Any]:
    """The workflow's current graph with the case's pins (and only those: the editor's pins are dropped)."""
    version = case.workflow.current_version
    if version is None:
        raise ApplicationError("The workflow has no saved version to test.")
    graph = copy.deepcopy(version.graph)
    for node in graph.get("nodes", []):
        node.pop("pinned", None)
        if node.get("id") in case.pinned:
            node["pinned"] = {"output": case.pinned[node["id"]]}
    return graph


def _dump(value: Any) -> list[str]:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str).splitlines()


def _mismatch(where: str, expected: Any, actual: Any) -> dict[str, Any] | None:
    if expected == actual:
        return None
    diff = "\n".join(
        difflib.unified_diff(_dump(expected), _dump(actual), "expected", "actual", lineterm="", n=2)
    )
    return {"where": where, "expected": expected, "actual": actual, "diff": diff}


def compare(
    expect: dict[str, Any], status: str, output: Any, nodes: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every way the run differs from ``expect``; empty when the case passes."""
    found = [_mismatch("status", expect.get("status", "succeeded"), status)]
    if "output" in expect:
        found.append(_mismatch("output", expect["output"], output))
    for node_id, want in (expect.get("nodes") or {}).items():
        got = nodes.get(node_id, {"status": "not run", "output": None})
        for key in ("status", "output"):
            if key in want:
                found.append(_mismatch(f"nodes.{node_id}.{key}", want[key], got.get(key)))
    return [f for f in found if f is not None]


def test_case_run(
    *, actor: Actor, case: WorkflowTestCase, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[str, Any]:
    """Run one case as a test run, wait for it (at most ``timeout_s``), compare, keep and return the result:
    ``{passed, failures: [{where, expected, actual, diff}], instance_id, duration_ms, ran_at}``."""
    started = time.monotonic()
    instance = services.workflow_test(
        actor=actor,
        tenant=case.workflow.tenant,
        graph=case_graph(case),
        input=case.input,
        workflow=case.workflow,
    )
    instance, timed_out = services.instance_wait(instance=instance, timeout_s=timeout_s)
    if timed_out:
        failures = [
            {
                "where": "status",
                "expected": case.expect.get("status", "succeeded"),
                "actual": instance.status,
                "diff": f"The run did not end within {timeout_s:g} s.",
            }
        ]
    else:
        rows = NodeRun.objects.filter(instance=instance, iteration="").values_list(
            "node_id", "status", "output"
        )
        nodes = {node_id: {"status": st, "output": out} for node_id, st, out in rows}
        failures = compare(case.expect, instance.status, instance.output, nodes)
    result = {
        "passed": not failures,
        "failures": failures,
        "instance_id": str(instance.id),
        "duration_ms": round((time.monotonic() - started) * 1000),
        "ran_at": timezone.now().isoformat(),
    }
    WorkflowTestCase.objects.filter(pk=case.pk).update(last_result=result)
    case.last_result = result
    return result
