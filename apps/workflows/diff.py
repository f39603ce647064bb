"""What changed between two versions of a workflow's graph: nodes, edges and notes added, removed and
changed (with the fields that changed; a node only moved on the canvas is listed apart)."""

from __future__ import annotations

from typing import Any

NODE_FIELDS = ("type", "label", "inputs", "retry", "timeout_s", "on_error", "pinned")


def _edge_key(edge: dict[str, Any]) -> tuple[str, str, str]:
    return (edge.get("source", ""), edge.get("target", ""), edge.get("sourceHandle") or "")


def graph_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``{nodes: {added, removed, changed: [{id, fields}], moved}, edges: {added, removed},
    notes_changed}``."""
    old_nodes = {n["id"]: n for n in old.get("nodes", []) if isinstance(n, dict) and "id" in n}
    new_nodes = {n["id"]: n for n in new.get("nodes", []) if isinstance(n, dict) and "id" in n}
    changed, moved = [], []
    for node_id in sorted(old_nodes.keys() & new_nodes.keys()):
        a, b = old_nodes[node_id], new_nodes[node_id]
        fields = [f for f in NODE_FIELDS if a.get(f) != b.get(f)]
        if fields:
            changed.append({"id": node_id, "fields": fields})
        elif a.get("position") != b.get("position"):
            moved.append(node_id)
    old_edges = {_edge_key(e) for e in old.get("edges", [])}
    new_edges = {_edge_key(e) for e in new.get("edges", [])}

    def edges(keys: set[tuple[str, str, str]]) -> list[dict[str, str]]:
        return [{"source": s, "target": t, **({"sourceHandle": h} if h else {})} for s, t, h in sorted(keys)]

    return {
        "nodes": {
            "added": sorted(new_nodes.keys() - old_nodes.keys()),
            "removed": sorted(old_nodes.keys() - new_nodes.keys()),
            "changed": changed,
            "moved": moved,
        },
        "edges": {"added": edges(new_edges - old_edges), "removed": edges(old_edges - new_edges)},
        "notes_changed": (old.get("notes") or []) != (new.get("notes") or []),
    }
