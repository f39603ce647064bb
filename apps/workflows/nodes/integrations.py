"""Nodes that reach outside the run: ``dataQuery`` runs a saved (or inline) query of the run's tenant
through apps.queries. (``httpRequest`` and ``notify`` join here with the outbound-safety work.)"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from rest_framework.exceptions import NotFound

from jetadmin.api.errors import ApplicationError

from .base import NodeContext, NodeError, NodeType, register


def _plain(value: Any) -> Any:
    """A database value as JSON keeps it: numbers stay numbers (Decimal too), times become ISO text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


# Connector errors a retry can fix (the datasource was down or slow); the rest fail the same way again.
RETRYABLE = {"unreachable", "timeout", "auth_failed", "connector_error"}


@register
class DataQuery(NodeType):
    type = "dataQuery"
    name = "Data query"
    category = "data"
    description = "Runs a saved query (`query`) or an inline one (`datasource` + `body`) with `params`."
    inputs_schema = {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "datasource": {"type": "string"},
            "body": {},
            "params": {"type": "object"},
        },
    }
    outputs_schema = {
        "type": "object",
        "properties": {
            "result": {"type": "array", "items": {"type": "object"}},
            "columns": {"type": "array"},
            "row_count": {"type": "integer"},
            "truncated": {"type": "boolean"},
        },
    }

    def validate_inputs(self, inputs: Any) -> list[tuple[str, str]]:
        if not inputs.get("query") and not (inputs.get("datasource") and "body" in inputs):
            return [("query", "Give `query` (a saved query id) or `datasource` + `body`.")]
        return []

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        from apps.queries import services

        try:
            result = services.run_for_node(
                tenant_id=ctx.tenant_id,
                query=inputs.get("query"),
                datasource=inputs.get("datasource"),
                body=inputs.get("body"),
                params=inputs.get("params") or {},
            )
        except NotFound:
            raise NodeError(
                "The query or datasource does not exist in this tenant.", code="not_found", retryable=False
            ) from None
        except ApplicationError as exc:
            raise NodeError(exc.message, code=exc.code, retryable=exc.code in RETRYABLE) from None
        columns = result["columns"]
        return {
            "result": [{c: _plain(v) for c, v in zip(columns, row, strict=False)} for row in result["rows"]],
            "columns": columns,
            "row_count": result["row_count"],
            "truncated": result["truncated"],
        }
