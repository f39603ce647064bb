"""Graphs shared by the engine tests and the distributed tests."""

from __future__ import annotations

from typing import Any

SALES_ROWS = [
    {"month": "2026-01", "region": "north", "amount": 120},
    {"month": "2026-01", "region": "south", "amount": 80},
    {"month": "2026-01", "region": "north", "amount": 5},
    {"month": "2026-02", "region": "north", "amount": 200},
    {"month": "2026-02", "region": "south", "amount": 40},
    {"month": "2026-03", "region": "south", "amount": 310},
    {"month": "2026-03", "region": "north", "amount": 9},
]

# Shaped like the seeds' "Monthly Sales Report": start → transform → aggregate → end, with a
# condition and a loop over the monthly totals.
SALES_REPORT: dict[str, Any] = {
    "nodes": [
        {"id": "start", "type": "start"},
        {
            "id": "clean",
            "type": "transform",
            "inputs": {
                "data": "{{input.rows}}",
                "filter": [
                    {"field": "amount", "operator": "greater_or_equal", "value": "{{input.min_amount}}"}
                ],
                "sort": [{"field": "month"}],
            },
        },
        {
            "id": "monthly",
            "type": "aggregate",
            "inputs": {
                "data": "{{clean.result}}",
                "group_by": ["month"],
                "metrics": [{"field": "amount", "op": "sum", "as": "total"}, {"op": "count", "as": "orders"}],
            },
        },
        {
            "id": "any_sales",
            "type": "condition",
            "inputs": {"left": "{{monthly.result}}", "operator": "is_not_empty"},
        },
        {"id": "each_month", "type": "loop", "inputs": {"items": "{{monthly.result}}", "concurrency": 2}},
        {
            "id": "grade",
            "type": "condition",
            "inputs": {"left": "{{loop.item.total}}", "operator": "greater_than", "right": 150},
        },
        {
            "id": "label",
            "type": "transform",
            "inputs": {"data": [{"month": "{{loop.item.month}}", "big": "{{grade.result}}"}]},
        },
        {
            "id": "end",
            "type": "end",
            "inputs": {"output": {"totals": "{{monthly.result}}", "labels": "{{each_month.results}}"}},
        },
        {"id": "empty", "type": "end", "inputs": {"output": {"totals": [], "labels": []}}},
    ],
    "edges": [
        {"from": "start", "to": "clean"},
        {"from": "clean", "to": "monthly"},
        {"from": "monthly", "to": "any_sales"},
        {"source": "any_sales", "target": "each_month", "sourceHandle": "true"},
        {"source": "any_sales", "target": "empty", "sourceHandle": "false"},
        {"source": "each_month", "target": "grade", "sourceHandle": "loop"},
        {"source": "grade", "target": "label", "sourceHandle": "true"},
        {"source": "grade", "target": "label", "sourceHandle": "false"},
        {"source": "each_month", "target": "end", "sourceHandle": "completed"},
    ],
}

SALES_INPUT = {"rows": SALES_ROWS, "min_amount": 10}
SALES_OUTPUT = {
    "totals": [
        {"month": "2026-01", "total": 200, "orders": 2},
        {"month": "2026-02", "total": 240, "orders": 2},
        {"month": "2026-03", "total": 310, "orders": 1},
    ],
    "labels": [
        {"result": [{"month": "2026-01", "big": True}]},
        {"result": [{"month": "2026-02", "big": True}]},
        {"result": [{"month": "2026-03", "big": True}]},
    ],
}


def diamond(branches: int = 8, node_type: str = "ledger") -> dict[str, Any]:
    """start → fanout → N parallel branches → join(all) → ledger → end."""
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "start"}, {"id": "fan", "type": "fanout"}]
    edges: list[dict[str, Any]] = [{"from": "start", "to": "fan"}]
    for i in range(branches):
        nodes.append({"id": f"b{i}", "type": node_type, "inputs": {"value": i}})
        edges += [{"from": "fan", "to": f"b{i}"}, {"from": f"b{i}", "to": "join"}]
    nodes += [
        {"id": "join", "type": "join", "inputs": {"mode": "all"}},
        {"id": "after", "type": "ledger", "inputs": {"value": "{{join}}"}},
        {"id": "end", "type": "end", "inputs": {"output": {"n": "{{after.value}}"}}},
    ]
    edges += [{"from": "join", "to": "after"}, {"from": "after", "to": "end"}]
    return {"nodes": nodes, "edges": edges}


def chain(length: int, node_type: str = "fanout") -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "start"}]
    edges: list[dict[str, Any]] = []
    prev = "start"
    for i in range(length - 2):
        nodes.append({"id": f"n{i}", "type": node_type})
        edges.append({"from": prev, "to": f"n{i}"})
        prev = f"n{i}"
    nodes.append({"id": "end", "type": "end", "inputs": {"output": "done"}})
    edges.append({"from": prev, "to": "end"})
    return {"nodes": nodes, "edges": edges}
