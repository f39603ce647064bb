"""The core node library: flow control and data shaping (CONTRACT "Workflows", node table)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from .base import NodeContext, NodeError, NodeType, StartLoop, Wait, register, thaw

OPERATORS = (
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "greater_than",
    "less_than",
    "greater_or_equal",
    "less_or_equal",
    "is_empty",
    "is_not_empty",
    "matches_regex",
)
MAX_REGEX = 500


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _order(left: Any, right: Any) -> tuple[Any, Any]:
    """Compare numbers as numbers (also numeric strings), everything else as strings."""
    ln, rn = _number(left), _number(right)
    if ln is not None and rn is not None:
        return ln, rn
    return str(left), str(right)


def compare(left: Any, operator: str, right: Any) -> bool:
    if operator == "equals":
        if isinstance(left, bool) or isinstance(right, bool):
            return left is right  # true is not 1, and not "1"
        return left == right or (_number(left) is not None and _number(left) == _number(right))
    if operator == "not_equals":
        return not compare(left, "equals", right)
    if operator in ("contains", "not_contains"):
        if isinstance(left, Mapping):
            found = str(right) in left
        elif isinstance(left, list | tuple):
            found = right in left
        else:
            found = str(right) in str(left if left is not None else "")
        return found if operator == "contains" else not found
    if operator == "starts_with":
        return str(left).startswith(str(right))
    if operator == "ends_with":
        return str(left).endswith(str(right))
    if operator in ("greater_than", "less_than", "greater_or_equal", "less_or_equal"):
        if left is None or right is None:
            return False
        a, b = _order(left, right)
        return {
            "greater_than": a > b,
            "less_than": a < b,
            "greater_or_equal": a >= b,
            "less_or_equal": a <= b,
        }[operator]
    if operator in ("is_empty", "is_not_empty"):
        empty = left is None or left == "" or (isinstance(left, list | tuple | Mapping) and len(left) == 0)
        return empty if operator == "is_empty" else not empty
    if operator == "matches_regex":
        pattern = str(right)
        if len(pattern) > MAX_REGEX:
            raise NodeError(
                f"The regular expression is longer than {MAX_REGEX} characters.", code="bad_input"
            )
        try:
            return re.search(pattern, str(left)) is not None
        except re.error as exc:
            raise NodeError(f"Invalid regular expression {pattern!r}: {exc}", code="bad_input") from exc
    raise NodeError(f"Unknown operator {operator!r}; known: {', '.join(OPERATORS)}.", code="bad_input")


OPERATOR_SCHEMA = {"enum": list(OPERATORS)}
CONDITION_SCHEMA = {
    "type": "object",
    "properties": {"field": {"type": "string"}, "operator": OPERATOR_SCHEMA, "value": {}},
    "required": ["field", "operator"],
}


def _check_ids(items: Any, field: str) -> list[tuple[str, str]]:
    """Branch/case lists must be literal (their ids are the node's handles, fixed when it is saved)."""
    if isinstance(items, str):
        return [
            (
                field,
                f"`{field}` must be a list written in the graph, not a template: its ids are the "
                "node's handles.",
            )
        ]
    if not isinstance(items, list):
        return []  # the JSON Schema reports the type
    ids = [item.get("id") for item in items if isinstance(item, Mapping)]
    if not all(isinstance(i, str) for i in ids):
        return []  # the JSON Schema reports the type
    if len(ids) != len(set(ids)) or "default" in ids:
        return [(field, f"The ids in `{field}` must be unique and not 'default'.")]
    return []


class _Data(NodeType):
    """Pure data nodes fail the same way on every attempt."""

    category = "data"
    retryable = False


def _kind(value: Any) -> str:
    """A JSON value's kind as a user would name it (frozen lists are tuples here)."""
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true/false"
    return "a number" if isinstance(value, int | float) else type(value).__name__


@register
class Start(NodeType):
    type = "start"
    cacheable = False
    name = "Start"
    category = "flow"
    description = (
        "Where a run begins; its output is the run input, with the defaults of `schema`'s properties "
        "filled in for fields the input leaves out (read them as {{start.<field>}})."
    )
    inputs_schema = {"type": "object", "properties": {"schema": {"type": "object"}}}

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        raw = ctx.data.get("input") or {}
        if not isinstance(raw, Mapping):  # a sub-workflow's input, say, is whatever its parent resolved
            raise NodeError(
                f"The run's input must be an object, not {_kind(raw)}.",
                code="bad_input",
                retryable=False,
            )
        given = dict(raw)
        schema = inputs.get("schema")
        props = schema.get("properties") if isinstance(schema, dict) else None
        defaults = {
            name: prop["default"]
            for name, prop in (props.items() if isinstance(props, dict) else ())
            if isinstance(prop, dict) and "default" in prop
        }
        return {**defaults, **given}


@register
class End(NodeType):
    type = "end"
    cacheable = False
    name = "End"
    category = "flow"
    description = (
        "Its resolved `output` becomes the run's output. With `terminate`, reaching it ends the run at "
        "once: nodes still open end canceled."
    )
    inputs_schema = {
        "type": "object",
        "properties": {
            "output": {},
            "terminate": {"type": "boolean", "description": "End the run here, canceling what still runs."},
        },
    }
    handles = ()

    def default_handle(self, inputs: Mapping[str, Any]) -> str | None:
        return None

    def route(self, output: Any, inputs: Mapping[str, Any]) -> str:
        return "output"

    def continue_route(self, inputs: Mapping[str, Any]) -> str:
        return "output"

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        return inputs.get("output")


@register
class Condition(NodeType):
    type = "condition"
    cacheable = False
    name = "Condition"
    category = "flow"
    description = (
        "Compare `left` with `right`: takes `true` or `false`; or, with `branches`, the first that holds."
    )
    inputs_schema = {
        "type": "object",
        "properties": {
            "left": {},
            "operator": OPERATOR_SCHEMA,
            "right": {},
            "branches": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "pattern": "^[A-Za-z0-9_\\-]+$"},
                        "left": {},
                        "operator": OPERATOR_SCHEMA,
                        "right": {},
                    },
                    "required": ["id", "operator"],
                },
            },
        },
    }
    outputs_schema = {
        "type": "object",
        "properties": {"result": {"type": "boolean"}, "branch": {"type": "string"}},
    }
    handles = ("true", "false")

    def validate_inputs(self, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        if "branches" not in inputs and "operator" not in inputs:
            return [("operator", "A condition needs an operator (or a list of branches).")]
        if "branches" in inputs:
            return _check_ids(inputs["branches"], "branches")
        return []

    def handles_for(self, inputs: Mapping[str, Any]) -> tuple[str, ...]:
        if "branches" in inputs:
            branches = inputs["branches"] if isinstance(inputs["branches"], list) else []
            return (*(str(b.get("id")) for b in branches if isinstance(b, Mapping)), "default")
        return self.handles

    def route(self, output: Any, inputs: Mapping[str, Any]) -> str:
        if "branches" in inputs:
            return str(output["branch"])
        return "true" if output["result"] else "false"

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        if "branches" in inputs:
            for branch in inputs["branches"]:
                if compare(branch.get("left"), branch["operator"], branch.get("right")):
                    return {"result": True, "branch": branch["id"]}
            return {"result": False, "branch": "default"}
        return {"result": compare(inputs.get("left"), inputs["operator"], inputs.get("right"))}


@register
class Switch(NodeType):
    type = "switch"
    cacheable = False
    name = "Switch"
    category = "flow"
    description = (
        "Takes the handle of the first case whose value matches `value` (default: equals), else `default`."
    )
    inputs_schema = {
        "type": "object",
        "required": ["cases"],
        "properties": {
            "value": {},
            "cases": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "pattern": "^[A-Za-z0-9_\\-]+$"},
                        "operator": OPERATOR_SCHEMA,
                        "value": {},
                    },
                    "required": ["id"],
                },
            },
        },
    }
    outputs_schema = {"type": "object", "properties": {"matched": {"type": "string"}}}
    handles = ("default",)

    def validate_inputs(self, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        return _check_ids(inputs.get("cases"), "cases")

    def handles_for(self, inputs: Mapping[str, Any]) -> tuple[str, ...]:
        cases = inputs.get("cases")
        ids = [str(c.get("id")) for c in cases if isinstance(c, Mapping)] if isinstance(cases, list) else []
        return (*ids, "default")

    def default_handle(self, inputs: Mapping[str, Any]) -> str | None:
        return None

    def route(self, output: Any, inputs: Mapping[str, Any]) -> str:
        return str(output["matched"])

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        for case in inputs["cases"]:
            if compare(inputs.get("value"), case.get("operator") or "equals", case.get("value")):
                return {"matched": case["id"]}
        return {"matched": "default"}


@register
class Fanout(NodeType):
    type = "fanout"
    cacheable = False
    name = "Fan out"
    category = "flow"
    description = "Starts every branch connected to it; passes `value` through."
    inputs_schema = {"type": "object", "properties": {"value": {}}}

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        return {"value": inputs.get("value")}


@register
class Join(NodeType):
    type = "join"
    cacheable = False
    name = "Join"
    category = "flow"
    description = (
        "Waits for all (or, in `any` mode, the first) incoming branches; output maps each to its output. "
        "In `any` mode, `cancel_others` cancels the branches still running."
    )
    inputs_schema = {
        "type": "object",
        "properties": {
            "mode": {"enum": ["all", "any"]},
            "cancel_others": {
                "type": "boolean",
                "description": "In `any` mode: cancel the other branches once the first arrives.",
            },
        },
    }
    context = "upstream"

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        return {node: thaw(ctx.data[node]) for node in ctx.upstream if node in ctx.data}


@register
class Loop(NodeType):
    type = "loop"
    cacheable = False
    name = "Loop"
    category = "flow"
    description = (
        "Runs the body (handle `loop`) once per item, `concurrency` at a time; or, with `while`, for as "
        "long as the condition holds before each iteration (`{{loop.index}}`, `{{loop.last}}` = the previous "
        "iteration's result). Then `completed`."
    )
    inputs_schema = {
        "type": "object",
        "properties": {
            "items": {"type": "array"},
            "while": {
                "type": "object",
                "required": ["operator"],
                "properties": {"left": {}, "operator": OPERATOR_SCHEMA, "right": {}},
                "additionalProperties": False,
                "description": "Iterate while {left, operator, right} holds (checked before each iteration).",
            },
            "concurrency": {"type": "integer", "minimum": 1, "maximum": 100},
            "max_iterations": {"type": "integer", "minimum": 0, "maximum": 100000},
        },
    }
    outputs_schema = {"type": "object", "properties": {"results": {"type": "array"}}}
    handles = ("loop", "completed")

    def default_handle(self, inputs: Mapping[str, Any]) -> str | None:
        return None

    def route(self, output: Any, inputs: Mapping[str, Any]) -> str:
        return "completed"

    def validate_inputs(self, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        if ("items" in inputs) == ("while" in inputs):
            return [("items", "Give either `items` (a list) or `while` (a condition), not both.")]
        return []

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        limit = int(inputs.get("max_iterations", 1000))
        if "while" in inputs:  # the condition is checked by the engine before each iteration
            return StartLoop(items=[], condition=dict(inputs["while"]), limit=limit)
        items = inputs["items"]
        if len(items) > limit:
            raise NodeError(
                f"The loop got {len(items)} items, more than max_iterations={limit}.", code="too_many_items"
            )
        return StartLoop(items=list(items), concurrency=int(inputs.get("concurrency", 1)))


@register
class Delay(NodeType):
    type = "delay"
    cacheable = False
    name = "Delay"
    category = "flow"
    description = "Waits `seconds` without holding a worker (the run is parked in the database)."
    inputs_schema = {
        "type": "object",
        "required": ["seconds"],
        "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 30 * 86400}},
    }
    outputs_schema = {"type": "object", "properties": {"waited_s": {"type": "number"}}}

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        now = ctx.now or dt.datetime.now(dt.UTC)
        if ctx.state and "until" in ctx.state:
            started = dt.datetime.fromisoformat(ctx.state["started"])
            return {"waited_s": round((now - started).total_seconds(), 3)}
        until = now + dt.timedelta(seconds=float(inputs["seconds"]))
        return Wait(until=until, state={"until": until.isoformat(), "started": now.isoformat()})


def _field(row: Any, name: str) -> Any:
    value = row
    for part in str(name).split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _rows(value: Any, field: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list | tuple):
        raise NodeError(f"`{field}` must be a list of objects, got {type(value).__name__}.", code="bad_input")
    bad = next((i for i, row in enumerate(value) if not isinstance(row, Mapping)), None)
    if bad is not None:
        raise NodeError(f"`{field}[{bad}]` is not an object.", code="bad_input")
    return list(value)


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, 0)
    number = _number(value)
    return (0, number) if number is not None else (1, str(value))


@register
class Transform(_Data):
    type = "transform"
    name = "Transform"
    description = "Filter, select, rename, sort and limit a list of objects."
    inputs_schema = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {"type": "array"},
            "filter": {"type": "array", "items": CONDITION_SCHEMA},
            "select": {"type": "array", "items": {"type": "string"}},
            "rename": {"type": "object", "additionalProperties": {"type": "string"}},
            "sort": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "desc": {"type": "boolean"}},
                    "required": ["field"],
                },
            },
            "limit": {"type": "integer", "minimum": 0},
        },
    }
    outputs_schema = {"type": "object", "properties": {"result": {"type": "array"}}}

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        rows = [thaw(r) for r in _rows(inputs["data"], "data")]
        for cond in inputs.get("filter") or []:
            rows = [r for r in rows if compare(_field(r, cond["field"]), cond["operator"], cond.get("value"))]
        for rule in reversed(inputs.get("sort") or []):
            # Stable multi-key sort, one key at a time; empty values stay last in both directions.
            present = [r for r in rows if _field(r, rule["field"]) is not None]
            missing = [r for r in rows if _field(r, rule["field"]) is None]
            name = rule["field"]
            present.sort(key=lambda r: _sort_key(_field(r, name)), reverse=bool(rule.get("desc")))
            rows = present + missing
        if inputs.get("limit") is not None:
            rows = rows[: int(inputs["limit"])]
        if inputs.get("select"):
            rows = [{f: _field(r, f) for f in inputs["select"]} for r in rows]
        rename = inputs.get("rename") or {}
        if rename:
            rows = [{rename.get(k, k): v for k, v in r.items()} for r in rows]
        return {"result": rows}


@register
class Aggregate(_Data):
    type = "aggregate"
    name = "Aggregate"
    description = "Group a list of objects and compute sum/avg/count/min/max per group."
    inputs_schema = {
        "type": "object",
        "required": ["data", "metrics"],
        "properties": {
            "data": {"type": "array"},
            "group_by": {"type": "array", "items": {"type": "string"}},
            "metrics": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "field": {"type": "string"},
                        "op": {"enum": ["sum", "avg", "count", "min", "max"]},
                        "as": {"type": "string"},
                    },
                    "required": ["op"],
                },
            },
        },
    }
    outputs_schema = {"type": "object", "properties": {"result": {"type": "array"}}}

    def validate_inputs(self, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        metrics = inputs.get("metrics")
        for i, metric in enumerate(metrics if isinstance(metrics, list) else []):
            if isinstance(metric, Mapping) and metric.get("op") != "count" and not metric.get("field"):
                return [(f"metrics[{i}].field", f"The {metric.get('op')!r} metric needs a field.")]
        return []

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        rows = _rows(inputs["data"], "data")
        group_by = list(inputs.get("group_by") or [])
        groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
        for row in rows:
            key = tuple(_hashable(_field(row, f)) for f in group_by)
            groups.setdefault(key, []).append(row)
        if not group_by and not groups:
            groups[()] = []
        result = []
        for members in groups.values():
            out: dict[str, Any] = {f: thaw(_field(members[0], f)) for f in group_by} if members else {}
            for metric in inputs["metrics"]:
                op, field = metric["op"], metric.get("field")
                name = metric.get("as") or (f"{op}_{field}" if field else op)
                out[name] = _metric(op, field, members)
            result.append(out)
        return {"result": result}


def _hashable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    return value


def _metric(op: str, field: str | None, rows: list[Mapping[str, Any]]) -> Any:
    if op == "count":
        return len(rows) if not field else sum(1 for r in rows if _field(r, field) is not None)
    values = [_field(r, field or "") for r in rows]
    values = [v for v in values if v is not None]
    if op in ("sum", "avg"):
        numbers = []
        for v in values:
            n = _number(v)
            if n is None:
                raise NodeError(f"Cannot {op} {field!r}: {v!r} is not a number.", code="bad_input")
            numbers.append(n)
        if op == "sum":
            total = sum(numbers)
            return (
                int(total) if float(total).is_integer() and all(isinstance(v, int) for v in values) else total
            )
        return sum(numbers) / len(numbers) if numbers else None
    if not values:
        return None
    return (min if op == "min" else max)(values, key=_sort_key)
