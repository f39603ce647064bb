"""The ``javascript`` node: user code in the V8 sandbox (see apps/workflows/sandbox/javascript.py)."""

from __future__ import annotations

import time
from typing import Any

from apps.workflows.sandbox.javascript import Limits, SandboxError, run_js

from .base import NodeContext, NodeError, NodeType, register, thaw

DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 300.0


@register
class JavaScript(NodeType):
    type = "javascript"
    name = "JavaScript"
    category = "code"
    description = "A function body; `ctx` is the read-only context; its `return` value is the output."
    inputs_schema = {
        "type": "object",
        "required": ["code"],
        "properties": {
            "code": {"type": "string", "maxLength": 100_000},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_S},
        },
    }
    handles = ("success", "error")
    context = "ancestors"

    def default_handle(self, inputs: Any) -> str | None:
        return "success"

    def route(self, output: Any, inputs: Any) -> str:
        return "success"

    def continue_route(self, inputs: Any) -> str:
        return "success"

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        timeout = float(inputs.get("timeout_s") or DEFAULT_TIMEOUT_S)
        if ctx.deadline is not None:
            timeout = max(0.05, min(timeout, ctx.deadline - time.monotonic()))
        try:
            return run_js(inputs["code"], thaw(ctx.data), Limits(timeout_s=timeout))
        except SandboxError as exc:
            raise NodeError(f"JavaScript {exc.code.replace('_', ' ')}: {exc.message}", code=exc.code) from exc
