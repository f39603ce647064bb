"""The fault tests' node type, loaded in every process through ``JETADMIN_NODE_MODULES``.

``faultLedger`` stands for a real integration: its side effect is keyed by the node's idempotency
key, so running it again (execution is at-least-once) updates the one row instead of adding another::

    INSERT INTO fault_ledger (key, ...) VALUES (...)
    ON CONFLICT (key) DO UPDATE SET executions = fault_ledger.executions + 1

``executions > 1`` counts the repeated executions while the table keeps one row per key. The node
sleeps ``before_ms`` before its side effect and ``after_ms`` after it, so a kill can land on either
side. Its output names the process and attempt that produced it.

Importing the module also logs, at WARNING, what every ``workflows.execute_node`` task returned
(``FAULT-TASK-END``): ``None`` means the attempt saved nothing (its claim or its lease-guarded save
affected no row). The paused-worker test reads that line from the resumed worker's log.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery.signals import task_postrun
from django.db import connection

from apps.workflows.nodes.base import NodeContext, NodeType, register

logger = logging.getLogger("tests.fault")

LEDGER = "fault_ledger"  # the table name, spelled out in the SQL below
NODE_TYPE = "faultLedger"
TASK_END = "FAULT-TASK-END"

CREATE_SQL = """
CREATE TABLE fault_ledger (
  key VARCHAR(300) NOT NULL UNIQUE,
  node VARCHAR(100) NOT NULL,
  executions INTEGER NOT NULL DEFAULT 1,
  first_pid INTEGER NOT NULL,
  last_pid INTEGER NOT NULL,
  last_attempt INTEGER NOT NULL
)
"""
DROP_SQL = "DROP TABLE IF EXISTS fault_ledger"
UPSERT_SQL = """
INSERT INTO fault_ledger (key, node, executions, first_pid, last_pid, last_attempt)
VALUES (%s, %s, 1, %s, %s, %s)
ON CONFLICT (key) DO UPDATE SET executions = fault_ledger.executions + 1,
  last_pid = EXCLUDED.last_pid, last_attempt = EXCLUDED.last_attempt
RETURNING executions
"""
ROWS_SQL = "SELECT key, node, executions, first_pid, last_pid, last_attempt FROM fault_ledger"


@register
class FaultLedger(NodeType):
    type = NODE_TYPE
    name = "Fault ledger (tests)"
    category = "test"
    inputs_schema = {
        "type": "object",
        "properties": {"before_ms": {"type": "number"}, "after_ms": {"type": "number"}},
    }

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        time.sleep(float(inputs.get("before_ms") or 0) / 1000)
        pid = os.getpid()
        with connection.cursor() as cursor:
            cursor.execute(UPSERT_SQL, [ctx.idempotency_key, ctx.node_id, pid, pid, ctx.attempt])
            executions = int(cursor.fetchone()[0])
        time.sleep(float(inputs.get("after_ms") or 0) / 1000)
        return {"key": ctx.idempotency_key, "pid": pid, "attempt": ctx.attempt, "executions": executions}


@task_postrun.connect
def _log_task_end(
    sender: Any = None, args: Any = None, retval: Any = None, state: Any = None, **kwargs: Any
) -> None:
    if getattr(sender, "name", "") == "workflows.execute_node":
        logger.warning(
            "%s pid=%d args=%s state=%s retval=%r", TASK_END, os.getpid(), list(args or ()), state, retval
        )
