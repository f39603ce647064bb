"""The workflow graph, pure: normalise, validate, and the scheduling rules. No ORM, no I/O.

A graph is ``{"nodes": [{id, type, inputs, ...}], "edges": [{source, target, sourceHandle?}]}``
(``from``/``to`` accepted). :func:`build` normalises and validates it into a :class:`Graph` or raises
:class:`GraphInvalid` with a list of ``{node_id, field, message}``.

Keys kept for the editor and never scheduled: a node's ``position`` and ``label``, the graph's sticky
``notes``. A node's ``pinned: {output, route?}`` is honoured by test runs only: the node is not executed
and succeeds with that output (the route from ``route``, else from the output as the type computes it).

Loops: the *body* of a loop node ``L`` is every node reachable from the targets of ``L``'s ``loop``
handle (without passing through ``L``); an edge from a body node back to ``L`` is a *back edge*,
drawn by editors and ignored by scheduling. Each node has a *scope*: the innermost loop whose body
holds it, or ``None`` at top level. Edges never cross scopes except ``L``'s own ``loop`` edges.
Outside back edges the graph must be acyclic.

Scheduling rule: an edge is *active* when its source has settled (succeeded, or failed under
``on_error: continue|route``) and the edge's handle is the route the source took. A node is ready
when all its in-edges have settled and at least one is active (a ``join`` in ``any`` mode: as soon as
one is active); when all settled and none is active, it is skipped, and skipping propagates.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from apps.workflows.engine import templates
from apps.workflows.engine.cache import problems as cache_problems
from apps.workflows.nodes import base as nodes

RESERVED_IDS = {"input", "loop", "ctx"}
NODE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,99}$")
ON_ERROR = ("fail", "continue", "route")
MAX_NODES = 2000
MAX_EDGES = 10000

NODE_ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type"],
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string"},
        "label": {"type": ["string", "null"], "maxLength": 200},
        "position": {"type": ["object", "null"]},
        "inputs": {"type": "object"},
        "retry": {
            "type": "object",
            "properties": {
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
                "backoff_s": {"type": "number", "minimum": 0, "maximum": 86400},
            },
            "additionalProperties": False,
        },
        "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
        "on_error": {"enum": list(ON_ERROR)},
        "cache_ttl_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 30 * 86400},
        "cache_side_effects": {"type": "boolean"},
        # A pinned output: a test run does not execute the node and takes this output (and route)
        "pinned": {
            "type": "object",
            "required": ["output"],
            "properties": {"output": {}, "route": {"type": "string"}},
            "additionalProperties": False,
        },
    },
}
# Sticky notes: kept with the graph for the editor, never scheduled.
NOTES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": 500,
    "items": {
        "type": "object",
        "required": ["text"],
        "properties": {
            "id": {"type": "string", "maxLength": 100},
            "text": {"type": "string", "maxLength": 10000},
            "position": {"type": "object"},
            "width": {"type": "number"},
            "height": {"type": "number"},
            "color": {"type": "string", "maxLength": 30},
        },
        "additionalProperties": False,
    },
}


@dataclass(frozen=True)
class GraphError:
    node_id: str | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "field": self.field, "message": self.message}


class GraphInvalid(ValueError):
    def __init__(self, errors: list[GraphError]) -> None:
        super().__init__("; ".join(f"{e.node_id or 'graph'}.{e.field}: {e.message}" for e in errors[:5]))
        self.errors = errors


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    handle: str  # resolved: never None after build()


@dataclass
class Graph:
    nodes: dict[str, dict[str, Any]]
    edges: list[Edge]
    out: dict[str, list[Edge]] = field(default_factory=dict)  # forward edges (no back edges)
    into: dict[str, list[Edge]] = field(default_factory=dict)
    scope: dict[str, str | None] = field(default_factory=dict)
    body: dict[str, set[str]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    _ancestors: dict[str, frozenset[str]] = field(default_factory=dict)

    # --- structure ---------------------------------------------------------------------------
    def node_type(self, node_id: str) -> str:
        return str(self.nodes[node_id]["type"])

    def inputs(self, node_id: str) -> dict[str, Any]:
        return self.nodes[node_id].get("inputs") or {}

    def on_error(self, node_id: str) -> str:
        return str(self.nodes[node_id].get("on_error") or "fail")

    def is_loop_edge(self, edge: Edge) -> bool:
        return edge.handle == "loop" and self.node_type(edge.source) == "loop"

    def settles(self, node_id: str) -> list[Edge]:
        """The edges a finished node settles in its own scope (a loop's body edges are not among them)."""
        return [e for e in self.out.get(node_id, []) if not self.is_loop_edge(e)]

    def in_count(self, node_id: str) -> int:
        """In-edges counted by the scheduler (a body entry's edges from its loop are settled at start)."""
        return sum(1 for e in self.into.get(node_id, []) if not self.is_loop_edge(e))

    def roots(self, loop_id: str | None = None) -> list[str]:
        """Nodes of a scope that start with nothing to wait for."""
        return [n for n in self.order if self.scope[n] == loop_id and self.in_count(n) == 0]

    def members(self, loop_id: str | None) -> list[str]:
        return [n for n in self.order if self.scope[n] == loop_id]

    def sinks(self, loop_id: str) -> list[str]:
        """Body nodes of ``loop_id`` with nothing after them in the body, in topological order."""
        return [n for n in self.members(loop_id) if not self.settles(n)]

    def upstream(self, node_id: str) -> list[str]:
        return sorted({e.source for e in self.into.get(node_id, [])})

    def ancestors(self, node_id: str) -> frozenset[str]:
        if node_id not in self._ancestors:
            seen: set[str] = set()
            queue = deque(e.source for e in self.into.get(node_id, []))
            while queue:
                n = queue.popleft()
                if n not in seen:
                    seen.add(n)
                    queue.extend(e.source for e in self.into.get(n, []))
            self._ancestors[node_id] = frozenset(seen)
        return self._ancestors[node_id]

    def loop_chain(self, node_id: str) -> list[str]:
        """Enclosing loops, outermost first."""
        chain: list[str] = []
        loop = self.scope.get(node_id)
        while loop is not None:
            chain.append(loop)
            loop = self.scope.get(loop)
        return list(reversed(chain))

    def refs(self, node_id: str) -> set[str]:
        """Node ids this node's templates refer to."""
        return {r.root for r in templates.references(self.inputs(node_id)) if r.root not in ("input", "loop")}


# --- rules (pure) ------------------------------------------------------------------------------------
def edge_active(edge: Edge, source_status: str, source_route: str) -> bool:
    return source_status in ("succeeded", "failed") and bool(source_route) and edge.handle == source_route


def readiness(remaining: int, active: int, wait_any: bool) -> str:
    """``ready``, ``skip`` or ``wait`` for a pending node, from its counters."""
    if active > 0 and (remaining == 0 or wait_any):
        return "ready"
    if remaining == 0:
        return "skip"
    return "wait"


def counters(graph: Graph, node_id: str, settled: Mapping[str, tuple[str, str]]) -> tuple[int, int]:
    """(remaining, active) for ``node_id`` given ``settled[source] = (status, route)`` of its scope."""
    remaining = active = 0
    for edge in graph.into.get(node_id, []):
        if graph.is_loop_edge(edge):
            continue
        state = settled.get(edge.source)
        if state is None or state[0] not in ("succeeded", "failed", "skipped"):
            remaining += 1
        elif edge_active(edge, *state):
            active += 1
    return remaining, active


# --- normalise & validate ----------------------------------------------------------------------------
def normalize(raw: Any) -> tuple[dict[str, Any], list[GraphError]]:
    errors: list[GraphError] = []
    if not isinstance(raw, Mapping):
        return {"nodes": [], "edges": []}, [
            GraphError(None, "graph", "The graph must be an object {nodes, edges}.")
        ]
    raw_nodes = raw.get("nodes", [])
    raw_edges = raw.get("edges", [])
    if not isinstance(raw_nodes, list):
        errors.append(GraphError(None, "nodes", "nodes must be a list."))
        raw_nodes = []
    if not isinstance(raw_edges, list):
        errors.append(GraphError(None, "edges", "edges must be a list."))
        raw_edges = []
    if len(raw_nodes) > MAX_NODES or len(raw_edges) > MAX_EDGES:
        errors.append(GraphError(None, "graph", f"At most {MAX_NODES} nodes and {MAX_EDGES} edges."))
        return {"nodes": [], "edges": []}, errors
    nodes_out: list[dict[str, Any]] = []
    for i, node in enumerate(raw_nodes):
        if not isinstance(node, Mapping):
            errors.append(GraphError(None, f"nodes[{i}]", "A node must be an object {id, type, inputs}."))
            continue
        node = dict(node)
        if node.get("inputs") is None:
            node["inputs"] = {}
        nodes_out.append(node)
    edges_out: list[dict[str, Any]] = []
    for i, edge in enumerate(raw_edges):
        if not isinstance(edge, Mapping):
            errors.append(GraphError(None, f"edges[{i}]", "An edge must be an object {source, target}."))
            continue
        source = edge.get("source", edge.get("from"))
        target = edge.get("target", edge.get("to"))
        handle = edge.get("sourceHandle", edge.get("handle"))
        if not isinstance(source, str) or not isinstance(target, str):
            errors.append(GraphError(None, f"edges[{i}]", "source and target must be node ids (strings)."))
            continue
        if handle is not None and not isinstance(handle, str):
            errors.append(GraphError(source, f"edges[{i}].sourceHandle", "sourceHandle must be a string."))
            continue
        out = {"source": source, "target": target}
        if handle:
            out["sourceHandle"] = handle
        edges_out.append(out)
    result: dict[str, Any] = {"nodes": nodes_out, "edges": edges_out}
    if raw.get("notes") is not None:
        notes = raw["notes"]
        errors += [
            GraphError(None, "notes" + "".join(f"[{p}]" for p in e.absolute_path), e.message)
            for e in _validator(NOTES_SCHEMA).iter_errors(notes)
        ]
        if isinstance(notes, list):
            result["notes"] = notes
    return result, errors


_VALIDATORS: dict[int, jsonschema.Draft202012Validator] = {}


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """Compiled once per schema object (node type schemas are class attributes, so they live forever)."""
    key = id(schema)
    validator = _VALIDATORS.get(key)
    if validator is None or validator.schema is not schema:
        validator = _VALIDATORS[key] = jsonschema.Draft202012Validator(schema)
    return validator


def _schema_errors(node_id: str, schema: dict[str, Any], inputs: Any) -> list[GraphError]:
    validator = _validator(schema)
    found = []
    for err in validator.iter_errors(inputs):
        # A templated value is checked after resolution, at run time.
        if templates.is_dynamic(err.instance):
            continue
        path = "inputs" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        found.append(GraphError(node_id, path, err.message))
    return found


def validate_inputs(
    node_type: nodes.NodeType, inputs: Mapping[str, Any], *, node_id: str
) -> list[GraphError]:
    errors = _schema_errors(node_id, node_type.inputs_schema, dict(inputs))
    errors += [GraphError(node_id, f"inputs.{f}", m) for f, m in node_type.validate_inputs(inputs)]
    return errors


def build(raw: Any, *, trusted: bool = False) -> Graph:
    """Normalise and validate; raise :class:`GraphInvalid` listing every problem found.

    ``trusted`` (a run's pinned graph, validated when it was saved) skips the per-node input and
    template checks and keeps only what scheduling needs: ids, types, handles and structure.
    """
    data, errors = normalize(raw)
    graph = Graph(nodes={}, edges=[])
    types: dict[str, nodes.NodeType] = {}

    reported = _check_nodes(data["nodes"], graph, types, errors, trusted)
    if not trusted:
        _check_pins(graph, types, errors)
    dropped = _check_edges(data["edges"], graph, types, errors, reported)
    if not trusted and not data["nodes"] and not errors:
        errors.append(GraphError(None, "nodes", "A workflow needs at least a start node."))
    elif (
        not trusted
        and graph.nodes
        and not any(graph.node_type(n) == "start" for n in graph.nodes)
        and not any(e.field == "type" for e in errors)  # an unknown type may have been meant as start
    ):
        errors.append(GraphError(None, "nodes", "A workflow needs a start node (type 'start')."))
    # Everything well-formed so far is checked further, so one answer lists every problem; checks that
    # would only repeat an error already given (refs to reported nodes, ancestry over a dropped edge)
    # are left out.
    _structure(graph, errors, check_refs=not trusted, reported=reported, dropped=dropped)
    if errors:
        raise GraphInvalid(errors)
    return graph


def _check_nodes(
    raw_nodes: list[dict[str, Any]],
    graph: Graph,
    types: dict[str, nodes.NodeType],
    errors: list[GraphError],
    trusted: bool,
) -> set[str]:
    """Add each well-formed node to ``graph``; returns the ids of nodes reported with their own error."""
    reported: set[str] = set()
    for i, node in enumerate(raw_nodes):
        raw_id = node.get("id") if isinstance(node.get("id"), str) else None
        node_errors = [
            GraphError(raw_id, ".".join(map(str, e.absolute_path)) or f"nodes[{i}]", e.message)
            for e in ([] if trusted else _validator(NODE_ENVELOPE_SCHEMA).iter_errors(node))
        ]
        if node_errors and not trusted:
            errors += node_errors
            if raw_id:
                reported.add(raw_id)  # its edges are not "to a missing node": the node is reported already
            continue
        node_id = node["id"]
        if not NODE_ID.fullmatch(node_id) or node_id in RESERVED_IDS:
            errors.append(
                GraphError(
                    node_id,
                    "id",
                    "Node ids are 1-100 letters, digits, _ or -, start with a "
                    "letter or _, and are not 'input', 'loop' or 'ctx'.",
                )
            )
            reported.add(node_id)
            continue
        if node_id in graph.nodes:
            errors.append(GraphError(node_id, "id", f"Duplicate node id {node_id!r}."))
            continue
        try:
            node_type = nodes.get(node["type"])
        except nodes.UnknownNodeType as exc:
            errors.append(GraphError(node_id, "type", exc.message))
            reported.add(node_id)
            continue
        types[node_id] = node_type
        graph.nodes[node_id] = node
        if trusted:
            continue
        errors += validate_inputs(node_type, node["inputs"], node_id=node_id)
        errors += [GraphError(node_id, f, m) for f, m in cache_problems(node_type, node)]
        try:
            templates.references(node["inputs"])
        except templates.TemplateError as exc:
            errors.append(GraphError(node_id, "inputs", str(exc)))

    return reported


def _check_pins(graph: Graph, types: dict[str, nodes.NodeType], errors: list[GraphError]) -> None:
    for node_id, node in graph.nodes.items():
        route = (node.get("pinned") or {}).get("route")
        if route is not None:
            handles = list(types[node_id].handles_for(graph.inputs(node_id)))
            handles += ["error"] if graph.on_error(node_id) == "route" else []
            if route not in handles:
                message = f"{route!r} is not a handle of this node ({', '.join(handles)})."
                errors.append(GraphError(node_id, "pinned.route", message))


def _check_edges(
    raw_edges: list[dict[str, Any]],
    graph: Graph,
    types: dict[str, nodes.NodeType],
    errors: list[GraphError],
    reported: set[str],
) -> bool:
    """Add each valid edge to ``graph``; True when one was left out for its own error."""
    seen_edges: set[tuple[str, str, str]] = set()
    dropped = False  # an edge left out for its own error: ancestry checks would report its absence again
    for i, edge in enumerate(raw_edges):
        source, target = edge["source"], edge["target"]
        bad = [n for n in (source, target) if n not in graph.nodes]
        if bad and set(bad) <= reported:
            continue
        if bad:
            known = f"Edge {source!r} → {target!r}: no node {bad[0]!r}."
            errors.append(GraphError(source if source in graph.nodes else None, f"edges[{i}]", known))
            dropped = True
            continue
        if source == target:
            errors.append(GraphError(source, f"edges[{i}]", "A node cannot connect to itself."))
            continue
        src_type, inputs = types[source], graph.inputs(source)
        handle = edge.get("sourceHandle") or src_type.default_handle(inputs)
        allowed = list(src_type.handles_for(inputs)) + (
            ["error"] if graph.on_error(source) == "route" else []
        )
        if handle is None:
            errors.append(
                GraphError(
                    source,
                    f"edges[{i}].sourceHandle",
                    f"An edge from {source!r} must name its sourceHandle: one of {', '.join(allowed)}.",
                )
            )
            dropped = True
            continue
        if handle not in allowed:
            errors.append(
                GraphError(
                    source,
                    f"edges[{i}].sourceHandle",
                    f"{source!r} ({src_type.type}) has no handle {handle!r}; handles: {', '.join(allowed)}.",
                )
            )
            dropped = True
            continue
        if (source, target, handle) in seen_edges:
            continue
        seen_edges.add((source, target, handle))
        graph.edges.append(Edge(source, target, handle))

    return dropped


def _reach(graph: Graph, starts: Iterable[str], stop: str, out: Mapping[str, list[Edge]]) -> set[str]:
    seen: set[str] = set()
    queue = deque(starts)
    while queue:
        n = queue.popleft()
        if n == stop or n in seen:
            continue
        seen.add(n)
        queue.extend(e.target for e in out.get(n, []))
    return seen


def _cycles(nodes_left: Iterable[str], out: Mapping[str, list[Edge]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan): exactly the nodes of each cycle."""
    left = set(nodes_left)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:  # iterative: a long chain must not hit Python's recursion limit
        work = [(start, iter([e.target for e in out.get(start, []) if e.target in left]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter([e.target for e in out.get(child, []) if e.target in left])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for n in sorted(left):
        if n not in index:
            visit(n)
    return sorted(found)


def _structure(
    graph: Graph,
    errors: list[GraphError],
    *,
    check_refs: bool = True,
    reported: set[str] | frozenset[str] = frozenset(),
    dropped: bool = False,
) -> None:
    """Loop bodies, scopes, back edges, acyclicity, scope crossings and template references."""
    back = _loop_scopes(graph, errors)
    graph.out = {n: [] for n in graph.nodes}
    graph.into = {n: [] for n in graph.nodes}
    for e in graph.edges:
        if e in back:
            continue
        graph.out[e.source].append(e)
        graph.into[e.target].append(e)
    if _acyclic(graph, errors):  # scopes are only meaningful in an acyclic graph
        _scope_crossings(graph, back, errors)
    if check_refs:
        _check_refs(graph, errors, reported, dropped)


def _loop_scopes(graph: Graph, errors: list[GraphError]) -> set[Edge]:
    """Each loop's body and each node's scope; returns the back edges (body → its loop)."""
    all_out: dict[str, list[Edge]] = {n: [] for n in graph.nodes}
    for e in graph.edges:
        all_out[e.source].append(e)
    loops = [n for n in graph.nodes if graph.node_type(n) == "loop"]
    for loop in loops:
        entries = [e.target for e in all_out[loop] if e.handle == "loop"]
        graph.body[loop] = _reach(graph, entries, loop, all_out)
    back = {
        e
        for e in graph.edges
        if graph.node_type(e.target) == "loop" and e.source in graph.body.get(e.target, ())
    }

    for node_id in graph.nodes:
        containing = [loop for loop in loops if node_id in graph.body[loop]]
        containing.sort(key=lambda loop: len(graph.body[loop]))
        for outer, inner in zip(containing[1:], containing[:-1], strict=False):
            if not graph.body[inner] <= graph.body[outer] or inner not in graph.body[outer]:
                errors.append(
                    GraphError(
                        node_id,
                        "edges",
                        f"Node {node_id!r} is in the bodies of loops {inner!r} "
                        f"and {outer!r}, which are not nested.",
                    )
                )
        graph.scope[node_id] = containing[0] if containing else None
    return back


def _acyclic(graph: Graph, errors: list[GraphError]) -> bool:
    """Kahn's order outside back edges; one error per cycle (naming exactly its nodes) if there is one."""
    indegree = {n: len(graph.into[n]) for n in graph.nodes}
    ready = deque(sorted(n for n, d in indegree.items() if d == 0))
    order: list[str] = []
    while ready:
        n = ready.popleft()
        order.append(n)
        for e in graph.out[n]:
            indegree[e.target] -= 1
            if indegree[e.target] == 0:
                ready.append(e.target)
    cyclic = len(order) != len(graph.nodes)
    if cyclic:
        done = set(order)
        for cycle in _cycles((n for n in graph.nodes if n not in done), graph.out):
            errors.append(
                GraphError(
                    cycle[0],
                    "edges",
                    f"The graph has a cycle through {', '.join(cycle[:10])}"
                    f"{' …' if len(cycle) > 10 else ''} (only a loop's body may lead back to its loop node).",
                )
            )
    else:
        graph.order = order

    return not cyclic


def _scope_crossings(graph: Graph, back: set[Edge], errors: list[GraphError]) -> None:
    for e in graph.edges:
        if e in back:
            continue
        if graph.is_loop_edge(e):
            if graph.scope[e.target] != e.source:
                errors.append(
                    GraphError(
                        e.target,
                        "edges",
                        f"{e.target!r} is a body entry of loop {e.source!r} "
                        f"but belongs to loop {graph.scope[e.target]!r}.",
                    )
                )
        elif graph.scope[e.source] != graph.scope[e.target]:
            where = graph.scope[e.target] or "the top level"
            errors.append(
                GraphError(
                    e.target,
                    "edges",
                    f"Edge {e.source!r} → {e.target!r} crosses a loop boundary "
                    f"({e.target!r} is in {where}); a node after a loop must hang off its "
                    "'completed' handle and not be reachable from the body.",
                )
            )


def _check_refs(
    graph: Graph, errors: list[GraphError], reported: set[str] | frozenset[str], dropped: bool
) -> None:
    """Template references: to a node of the graph, that runs before (outside refused edges)."""
    for node_id in graph.nodes:
        try:
            refs = templates.references(graph.inputs(node_id))
        except templates.TemplateError:
            continue  # already reported
        ancestors = graph.ancestors(node_id)
        for ref in refs:
            if ref.root in ("input", templates.WIDGET_INPUT):
                continue
            if ref.root == "loop":
                if graph.node_type(node_id) == "loop" and "while" in graph.inputs(node_id):
                    continue  # a while loop's condition reads its own loop.index / loop.last
                if graph.scope[node_id] is None:
                    errors.append(
                        GraphError(
                            node_id,
                            "inputs",
                            f"{{{{{ref.expression}}}}}: 'loop' is only available inside a loop body.",
                        )
                    )
                continue
            if ref.root in reported:
                continue  # that node's own error is reported
            if ref.root not in graph.nodes:
                errors.append(
                    GraphError(
                        node_id,
                        "inputs",
                        f"{{{{{ref.expression}}}}} refers to {ref.root!r}, "
                        "which is not a node of this graph.",
                    )
                )
            elif ref.root not in ancestors and not dropped:
                errors.append(
                    GraphError(
                        node_id,
                        "inputs",
                        f"{{{{{ref.expression}}}}} refers to {ref.root!r}, "
                        f"which does not run before {node_id!r} (not an ancestor).",
                    )
                )
