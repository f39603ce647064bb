"""A read-only picture of a graph for the pages: nodes placed left to right in layers (a node's layer
is one more than its deepest predecessor's), edges as straight segments between node boxes. Pure: it
reads the graph JSON and returns coordinates; the templates draw them (HTML boxes over an SVG)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 168, 56, 64, 24, 16


@dataclass
class Box:
    id: str
    type: str
    label: str
    x: int
    y: int
    status: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Line:
    x1: int
    y1: int
    x2: int
    y2: int
    label: str = ""
    error: bool = False

    @property
    def mid_x(self) -> int:
        return (self.x1 + self.x2) // 2

    @property
    def mid_y(self) -> int:
        return (self.y1 + self.y2) // 2 - 4


@dataclass
class Picture:
    boxes: list[Box]
    lines: list[Line]
    width: int
    height: int
    node_w: int = NODE_W
    node_h: int = NODE_H


def layout(graph: Any) -> Picture:
    graph = graph if isinstance(graph, dict) else {}
    nodes = [n for n in graph.get("nodes") or [] if isinstance(n, dict) and isinstance(n.get("id"), str)]
    ids = {n["id"] for n in nodes}
    edges: list[dict[str, Any]] = []
    for e in graph.get("edges") or []:
        if isinstance(e, dict):
            source, target = e.get("source", e.get("from")), e.get("target", e.get("to"))
            if source in ids and target in ids:
                edges.append({"from": source, "to": target, "handle": e.get("sourceHandle", e.get("handle"))})
    preds: dict[str, list[str]] = {n["id"]: [] for n in nodes}
    for edge in edges:
        preds[edge["to"]].append(edge["from"])
    layer: dict[str, int] = {}

    def depth(node_id: str, seen: frozenset[str] = frozenset()) -> int:
        if node_id in layer:
            return layer[node_id]
        if node_id in seen:  # a loop's back edge: do not follow it
            return 0
        value = max((depth(p, seen | {node_id}) + 1 for p in preds[node_id]), default=0)
        layer[node_id] = value
        return value

    columns: dict[int, list[dict[str, Any]]] = {}
    for node in nodes:
        columns.setdefault(depth(node["id"]), []).append(node)
    boxes: dict[str, Box] = {}
    for column, members in sorted(columns.items()):
        for row, node in enumerate(members):
            boxes[node["id"]] = Box(
                id=node["id"],
                type=str(node.get("type", "")),
                label=str(node.get("label") or node.get("name") or node["id"]),
                x=PAD + column * (NODE_W + GAP_X),
                y=PAD + row * (NODE_H + GAP_Y),
            )
    lines = []
    for edge in edges:
        a, b = boxes[edge["from"]], boxes[edge["to"]]
        handle = str(edge.get("handle") or "")
        lines.append(
            Line(
                a.x + NODE_W, a.y + NODE_H // 2, b.x, b.y + NODE_H // 2, label=handle, error=handle == "error"
            )
        )
    width = PAD * 2 + (max(columns, default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max((len(m) for m in columns.values()), default=1) * (NODE_H + GAP_Y) - GAP_Y
    return Picture(boxes=list(boxes.values()), lines=lines, width=width, height=height)
