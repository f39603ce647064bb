"""Control flow beyond edges: ending a run from an ``end`` node, cancelling the losing branches of a
``join`` in ``any`` mode, cancelling one node, and input that arrives before its node waits.

- ``end`` with ``terminate: true``: once it has succeeded, the run ends ``succeeded`` with its output at
  once; every node still open ends ``canceled`` (child runs too). A worker still running one of them
  finds its node no longer ``running`` and its result is dropped, so nothing succeeds after that.
- ``join`` with ``mode: any`` and ``cancel_others: true``: once it has succeeded, the branches that only
  lead to it and are still open end ``canceled`` (a branch that also feeds another node is left alone,
  or that node would wait for ever).
- cancelling one node: it ends ``canceled``; with ``on_error: route`` it takes its ``error`` handle,
  otherwise the run fails with code ``canceled``.
- early input: input for an approval/dataCollection node that is not waiting yet is kept on its row
  (``state.early_input``) and taken when the node starts waiting (``runtime._park``).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.workflows.engine import runtime
from apps.workflows.engine.states import CANCELED, FAILED, INSTANCE_OPEN, NODE_OPEN, SUCCEEDED, WAITING
from apps.workflows.models import NodeRun, WorkflowInstance

EARLY_INPUT = "early_input"


def after_success(run: runtime.RunData, node_id: str, iteration: str, inputs: Any, output: Any) -> None:
    """What a node's success sets off beyond its edges (terminate, cancel_others)."""
    node_type = run.graph.node_type(node_id)
    if node_type == "end" and isinstance(inputs, dict) and inputs.get("terminate") is True:
        runtime._retry_db(lambda: terminate(run.instance_id, node_id, output))
    elif (
        node_type == "join"
        and isinstance(inputs, dict)
        and inputs.get("mode") == "any"
        and inputs.get("cancel_others")
    ):
        runtime._retry_db(lambda: cancel_branches(run, node_id, iteration))


def terminate(instance_id: str, node_id: str, output: Any) -> None:
    fx = runtime.Effects()
    with transaction.atomic():
        runtime._end_instance(instance_id, SUCCEEDED, fx, output=output, cancel_open=True)
        fx.write()
        fx.after_commit()


def losing_branches(graph: Any, join_id: str) -> set[str]:
    """The join's ancestors in its scope whose every way forward leads only into the join."""
    scope = graph.scope.get(join_id)
    candidates = {n for n in graph.ancestors(join_id) if graph.scope.get(n) == scope}
    changed = True
    while changed:
        changed = False
        for n in sorted(candidates):
            if any(e.target not in candidates and e.target != join_id for e in graph.out.get(n, [])):
                candidates.discard(n)
                changed = True
    return candidates


def cancel_branches(run: runtime.RunData, join_id: str, iteration: str) -> None:
    fx = runtime.Effects()
    with transaction.atomic():
        _cancel_rows(
            run.instance_id, sorted(losing_branches(run.graph, join_id)), iteration, fx, f"{join_id!r} won"
        )
        fx.checks.add(iteration)
        fx.write()
        fx.after_commit()
    runtime._check_scopes(run.instance_id, fx)


def _cancel_rows(
    instance_id: str, node_ids: list[str], iteration: str, fx: runtime.Effects, why: str
) -> list[str]:
    """End these nodes' open rows ``canceled`` (their child runs too); returns the ids that were open."""
    if not node_ids:
        return []
    rows = (
        NodeRun.objects.select_for_update(of=("self",))
        .filter(
            instance_id=runtime._uuid(instance_id),
            node_id__in=node_ids,
            iteration=iteration,
            status__in=NODE_OPEN,
        )
        .order_by("pk")
    )
    opened = [node_id for node_id, _ in runtime.cancel_rows(instance_id, rows, fx, reason=why)]
    for node_id in opened:  # a canceled loop's open iterations (and loops nested in them) end with it
        prefix = runtime.iteration_key(iteration, node_id, 0)[:-1]
        body = NodeRun.objects.filter(
            instance_id=runtime._uuid(instance_id), iteration__startswith=prefix, status__in=NODE_OPEN
        )
        runtime.cancel_rows(instance_id, body, fx, reason=why)
    children = WorkflowInstance.objects.filter(
        parent_id=runtime._uuid(instance_id), parent_node__in=opened, status__in=INSTANCE_OPEN
    )
    for child in children.values_list("id", flat=True):
        error = {"code": "canceled", "message": f"Its step in the parent run was canceled ({why})."}
        runtime._end_instance(str(child), CANCELED, fx, error=error)
    return opened


def cancel_node(instance_id: str, node_id: str, iteration: str, *, reason: str) -> bool:
    """Cancel one open node; False when it was not open. Its error route, else the run fails."""
    run = runtime.run_data(instance_id)
    # Workers settle and end this run concurrently; a deadlock with one of them is retried.
    fx = runtime._retry_db(lambda: _cancel_node_once(run, node_id, iteration, reason))
    if fx is None:
        return False
    fx.after_commit()
    runtime._check_scopes(instance_id, fx)
    return True


def _cancel_node_once(
    run: runtime.RunData, node_id: str, iteration: str, reason: str
) -> runtime.Effects | None:
    instance_id = run.instance_id
    fx = runtime.Effects()
    with transaction.atomic():
        if not _cancel_rows(instance_id, [node_id], iteration, fx, reason):
            return None
        if run.graph.on_error(node_id) == "route":
            NodeRun.objects.filter(
                instance_id=runtime._uuid(instance_id), node_id=node_id, iteration=iteration
            ).update(route="error", error={"code": "canceled", "message": reason})
            runtime._settle(run, node_id, iteration, FAILED, "error", fx)
        else:
            error = {"code": "canceled", "message": reason, "node_id": node_id, "iteration": iteration}
            runtime._end_instance(instance_id, FAILED, fx, error=error)
        fx.write()
    return fx


def keep_early_input(
    instance_id: str, node_id: str, iteration: str, data: Any, by: str, identities: list[str]
) -> str:
    """Keep input for a node that does not wait yet: "kept"; "waiting" when it waits now (answer it
    the usual way); "answered" when it already has its input; "ended" when it has ended."""
    with transaction.atomic():
        row = (
            NodeRun.objects.select_for_update()
            .filter(instance_id=runtime._uuid(instance_id), node_id=node_id, iteration=iteration)
            .first()
        )
        if row is None or row.status not in NODE_OPEN:
            return "ended"
        if row.status == WAITING:
            return "waiting"
        state = dict(row.state or {})
        if "input" in state or EARLY_INPUT in state:  # answered, and resuming with that answer
            return "answered"
        state[EARLY_INPUT] = {"data": data, "by": by, "identities": identities}
        NodeRun.objects.filter(pk=row.pk).update(state=state)
    return "kept"


def take_early_input(run_id: int) -> dict[str, Any] | None:
    """The input kept for this node run, if any (called while it parks, inside that transaction)."""
    state = NodeRun.objects.select_for_update().filter(pk=run_id).values_list("state", flat=True).first()
    early = (state or {}).get(EARLY_INPUT) if isinstance(state, dict) else None
    return early if isinstance(early, dict) else None
