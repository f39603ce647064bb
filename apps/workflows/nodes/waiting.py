"""Nodes that wait for something outside the run: a person (``approval``, ``dataCollection``) or a
child run (``subWorkflow``). They park with :class:`Wait` — no worker is held while they wait — and
are run again with ``ctx.state`` holding what arrived (``input``, ``by``) or the child's ``result``.
Expiry is a timer on the same parked row: when it fires first, the node takes its ``expired`` handle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from .base import InputInvalid, InputNotAllowed, NodeContext, NodeError, NodeType, StartChild, Wait, register

MAX_EXPIRES_S = 365 * 86400
_EXPIRES = {"type": "number", "minimum": 0, "maximum": MAX_EXPIRES_S}


def _await_input(inputs: Mapping[str, Any], ctx: NodeContext) -> Wait | tuple[str, Any, str | None]:
    """Park until input arrives or ``expires_s`` passes, then ``("input"/"expired", data, by)``."""
    state = dict(ctx.state or {})
    now = ctx.now or dt.datetime.now(dt.UTC)
    if "input" in state:
        return "input", state["input"], state.get("by")
    expires_at = dt.datetime.fromisoformat(state["expires_at"]) if state.get("expires_at") else None
    if expires_at is not None and now >= expires_at:
        return "expired", None, None
    if "since" not in state:
        expires_s = float(inputs.get("expires_s") or 0)
        expires_at = now + dt.timedelta(seconds=expires_s) if expires_s else None
        state.update(since=now.isoformat(), expires_at=expires_at.isoformat() if expires_at else None)
    return Wait(until=expires_at, state=state, kind="input")


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InputInvalid({"data": [f"Expected an object, got {type(data).__name__}."]})
    return data


@register
class Approval(NodeType):
    type = "approval"
    cacheable = False
    name = "Approval"
    category = "people"
    description = (
        "Waits for a person to approve or reject (POST .../instances/{id}/input/); "
        "`approvers` (usernames or emails) limits who may answer."
    )
    inputs_schema = {
        "type": "object",
        "properties": {
            "approvers": {"type": "array", "items": {"type": "string"}},
            "message": {"type": "string"},
            "expires_s": _EXPIRES,
        },
    }
    outputs_schema = {
        "type": "object",
        "properties": {"decision": {"type": "string"}, "comment": {}, "by": {}},
    }
    handles = ("approved", "rejected", "expired")
    takes_input = True

    def route(self, output: Any, inputs: Mapping[str, Any]) -> str:
        return str(output["decision"])

    def continue_route(self, inputs: Mapping[str, Any]) -> str:
        return "rejected"

    def accept_input(self, inputs: Mapping[str, Any], data: Any, identities: frozenset[str]) -> Any:
        approvers = [str(a).lower() for a in inputs.get("approvers") or []]
        if approvers and not ({i.lower() for i in identities} & set(approvers)):
            raise InputNotAllowed("Only the approvers of this step may answer it: " + ", ".join(approvers))
        data = _object(data)
        errors: dict[str, list[str]] = {}
        if data.get("decision") not in ("approved", "rejected"):
            errors["data.decision"] = ['Must be "approved" or "rejected".']
        if data.get("comment") is not None and not isinstance(data["comment"], str):
            errors["data.comment"] = ["Must be a string."]
        unknown = sorted(set(data) - {"decision", "comment"})
        if unknown:
            errors["data"] = [f"Unknown field(s): {', '.join(unknown)}."]
        if errors:
            raise InputInvalid(errors)
        return {"decision": data["decision"], "comment": data.get("comment")}

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        got = _await_input(inputs, ctx)
        if isinstance(got, Wait):
            return got
        kind, data, by = got
        if kind == "expired":
            return {"decision": "expired", "comment": None, "by": None}
        return {"decision": data["decision"], "comment": data.get("comment"), "by": by}


@register
class DataCollection(NodeType):
    type = "dataCollection"
    cacheable = False
    name = "Data collection"
    category = "people"
    description = "Waits for a person to fill in a form; `schema` (JSON Schema) validates the values."
    inputs_schema = {
        "type": "object",
        "required": ["schema"],
        "properties": {"schema": {"type": "object"}, "message": {"type": "string"}, "expires_s": _EXPIRES},
    }
    outputs_schema = {"type": "object", "properties": {"data": {}, "by": {}}}
    handles = ("submitted", "expired")
    takes_input = True

    def route(self, output: Any, inputs: Mapping[str, Any]) -> str:
        return "expired" if output.get("expired") else "submitted"

    def continue_route(self, inputs: Mapping[str, Any]) -> str:
        return "expired"

    def validate_inputs(self, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        schema = inputs.get("schema")
        if isinstance(schema, dict):
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                return [("schema", f"Not a valid JSON Schema: {exc.message}")]
        return []

    def accept_input(self, inputs: Mapping[str, Any], data: Any, identities: frozenset[str]) -> Any:
        errors: dict[str, list[str]] = {}
        for error in Draft202012Validator(dict(inputs.get("schema") or {})).iter_errors(data):
            path = ".".join(str(p) for p in error.absolute_path)
            if error.validator == "required" and isinstance(error.instance, dict):
                for name in error.validator_value:  # one error per missing field, each naming all
                    key = ".".join(p for p in ("data", path, str(name)) if p)
                    if name not in error.instance and key not in errors:
                        errors[key] = ["This field is required."]
                continue
            errors.setdefault(f"data.{path}" if path else "data", []).append(error.message)
        if errors:
            raise InputInvalid(errors)
        return data

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        got = _await_input(inputs, ctx)
        if isinstance(got, Wait):
            return got
        kind, data, by = got
        if kind == "expired":
            return {"data": None, "by": None, "expired": True}
        return {"data": data, "by": by}


@register
class SubWorkflow(NodeType):
    type = "subWorkflow"
    cacheable = False
    name = "Sub-workflow"
    category = "flow"
    description = (
        "Runs another workflow of this tenant as a child run, waits for it (durably), and outputs its "
        "output; canceling this run cancels the child."
    )
    inputs_schema = {
        "type": "object",
        "required": ["workflow"],
        "properties": {"workflow": {"type": "string", "minLength": 1}, "input": {}},
    }
    outputs_schema = {"type": "object", "properties": {"output": {}, "instance_id": {"type": "string"}}}
    retryable = False  # a failed child is not retried by starting another one; retry the run instead

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        state = dict(ctx.state or {})
        child = state.get("child")
        if child is None:
            return StartChild(workflow=str(inputs["workflow"]), input=inputs.get("input"))
        result = state.get("result")
        if result is None:
            return Wait(until=None, state=state, kind="child")
        if result.get("status") == "succeeded":
            return {"output": result.get("output"), "instance_id": child}
        error = result.get("error") or {}
        raise NodeError(
            f"Sub-workflow run {child} {result.get('status')}: {error.get('message', 'no message')}",
            code=f"subworkflow_{result.get('status')}",
            retryable=False,
        )
