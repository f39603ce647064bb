"""Node types used only by tests, loaded in every process through ``JETADMIN_NODE_MODULES``.

* ``flaky``   — fails (retryably) until its attempt reaches ``succeed_on``; ``fail: true`` always fails.
* ``ledger``  — appends its idempotency key to the ``test_ledger`` table (a side effect to count).
* ``sleep``   — sleeps ``seconds`` in the worker (to exercise timeouts of plain Python handlers).
"""

from __future__ import annotations

import time
from typing import Any

from django.db import connection

from apps.workflows.nodes.base import NodeContext, NodeError, NodeType, register

LEDGER = "test_ledger"


def ledger_create() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {LEDGER} (key VARCHAR(300) NOT NULL, node VARCHAR(100))")
        cursor.execute(f"DELETE FROM {LEDGER}")  # noqa: S608


def ledger_rows() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, node FROM {LEDGER}")  # noqa: S608
        return [(str(k), str(n)) for k, n in cursor.fetchall()]


@register
class Flaky(NodeType):
    type = "flaky"
    name = "Flaky (tests)"
    category = "test"
    inputs_schema = {
        "type": "object",
        "properties": {"succeed_on": {"type": "integer"}, "fail": {"type": "boolean"}, "value": {}},
    }

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        if inputs.get("fail") or ctx.attempt < int(inputs.get("succeed_on", 1)):
            raise NodeError(f"flaky failure on attempt {ctx.attempt}", code="flaky")
        return {"attempt": ctx.attempt, "value": inputs.get("value")}


@register
class Ledger(NodeType):
    type = "ledger"
    name = "Ledger (tests)"
    category = "test"
    inputs_schema = {"type": "object", "properties": {"value": {}}}

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {LEDGER} (key, node) VALUES (%s, %s)",  # noqa: S608 - constant table name
                [ctx.idempotency_key, ctx.node_id],
            )
        return {"key": ctx.idempotency_key, "value": inputs.get("value")}


@register
class Sleep(NodeType):
    type = "sleep"
    name = "Sleep (tests)"
    category = "test"
    inputs_schema = {"type": "object", "properties": {"seconds": {"type": "number"}}}

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        time.sleep(float(inputs.get("seconds", 0)))
        return {"slept": inputs.get("seconds", 0)}
