"""Node types: a small base class and a registry keyed by ``node.type``.

A node type declares its identity (``type``, ``name``, ``category``), the JSON Schema of its inputs,
its output schema and its handles, and implements ``run(inputs, ctx) -> output``. ``run`` receives
inputs with every template already resolved and a read-only :class:`NodeContext`; it never writes
context, calls the engine or resolves templates itself. Control nodes return a directive instead of
an output: :class:`Wait` parks the node until a time (``delay``), :class:`StartLoop` runs the loop
body once per item (``loop``). Failures are raised as :class:`NodeError` (with a code).

Registration is explicit: ``@register`` in modules that ``apps/workflows/nodes/__init__.py`` imports.
Tests register throwaway types with :func:`registered`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar


class NodeError(Exception):
    """A node failed. ``code`` is machine-readable (``timeout``, ``template_error``, ``js_error``...)."""

    def __init__(self, message: str, *, code: str = "node_error", retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable


@dataclass(frozen=True)
class Wait:
    """Park the node (status ``waiting``) until ``until``; it is run again then with ``ctx.state``.

    ``until`` None waits only for an event: input from a person (``kind="input"``, the run shows as
    ``waiting``) or the end of a child run (``kind="child"``). ``kind="timer"`` is a plain delay.
    """

    until: dt.datetime | None
    state: dict[str, Any] = field(default_factory=dict)
    kind: str = "timer"


@dataclass(frozen=True)
class StartChild:
    """Start a run of another workflow of the same tenant and wait for it (``subWorkflow``)."""

    workflow: str
    input: Any = None


class InputInvalid(Exception):
    """Input for a waiting node was refused: ``{field: [messages]}``."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class InputNotAllowed(Exception):
    """This person may not answer this waiting node (e.g. not among its approvers)."""


@dataclass(frozen=True)
class StartLoop:
    """Run the loop's body once per item; or, with ``condition`` (a ``while`` loop), for as long as
    the condition holds before each iteration, at most ``limit`` times."""

    items: list[Any]
    concurrency: int = 1
    condition: dict[str, Any] | None = None
    limit: int = 1000


@dataclass(frozen=True)
class NodeContext:
    """What a handler may read. ``data`` is the read-only context ``{input, <node_id>: output, loop?}``."""

    instance_id: str
    tenant_id: str
    node_id: str
    iteration: str
    attempt: int
    idempotency_key: str
    deadline: float | None  # time.monotonic() value after which the node has timed out
    data: Mapping[str, Any]
    state: Mapping[str, Any] | None = None
    upstream: tuple[str, ...] = ()
    now: dt.datetime | None = None


def freeze(value: Any) -> Any:
    """A read-only view of context data for handlers."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain dicts and lists again (handler outputs may contain read-only context views)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


class NodeType:
    type: ClassVar[str]
    name: ClassVar[str]
    category: ClassVar[str] = "core"
    description: ClassVar[str] = ""
    version: ClassVar[int] = 1
    inputs_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    outputs_schema: ClassVar[dict[str, Any]] = {}
    handles: ClassVar[tuple[str, ...]] = ("output",)
    # Which outputs the handler needs in ctx.data beyond its templates' references:
    # "refs" (only those), "upstream" (direct predecessors, e.g. join), "ancestors" (javascript).
    context: ClassVar[str] = "refs"
    # Retries are for transient failures; pure data nodes fail the same way every time.
    retryable: ClassVar[bool] = True
    # Result caching (``cache_ttl_s``): False for flow and waiting types, whose result is not a value.
    cacheable: ClassVar[bool] = True

    def handles_for(self, inputs: Mapping[str, Any]) -> tuple[str, ...]:
        """The handles this node (with these inputs) exposes; branch types compute them."""
        return self.handles

    def default_handle(self, inputs: Mapping[str, Any]) -> str | None:
        """The handle an edge without ``sourceHandle`` means; None if the edge must name one."""
        handles = self.handles_for(inputs)
        return handles[0] if len(handles) == 1 else None

    def route(self, output: Any, inputs: Mapping[str, Any]) -> str:
        """The handle taken after a successful run (branch types override)."""
        return self.handles[0]

    def continue_route(self, inputs: Mapping[str, Any]) -> str:
        """The handle taken after a failure with ``on_error: continue``."""
        handles = self.handles_for(inputs)
        for candidate in ("default", "false", "completed", "success", "output"):
            if candidate in handles:
                return candidate
        return handles[0]

    def accept_input(self, inputs: Mapping[str, Any], data: Any, identities: frozenset[str]) -> Any:
        """Check what a person submitted to this waiting node (types that wait for input override).

        ``identities``: the submitter's username, email and id. Raises :class:`InputInvalid` or
        :class:`InputNotAllowed`; returns the value the node will see as ``ctx.state["input"]``.
        """
        raise InputNotAllowed(f"{self.type} nodes do not take input.")

    takes_input: ClassVar[bool] = False

    def validate_inputs(self, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Extra checks beyond the JSON Schema: ``[(field, message)]``."""
        return []

    def side_effects(self, inputs: Mapping[str, Any]) -> str | None:
        """What this node changes outside the run (a reason), or None: such nodes are cached only with
        ``cache_side_effects: true``."""
        return None

    def cache_dependencies(self, inputs: Mapping[str, Any], tenant_id: str) -> Any:
        """What the inputs point at, for the cache key (e.g. a saved query's last change)."""
        return None

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        raise NotImplementedError

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "type": cls.type,
            "name": cls.name,
            "category": cls.category,
            "description": cls.description,
            "inputs_schema": cls.inputs_schema,
            "outputs_schema": cls.outputs_schema,
            "handles": list(cls.handles),
        }


REGISTRY: dict[str, NodeType] = {}


class UnknownNodeType(KeyError):
    def __init__(self, type_name: str) -> None:
        super().__init__(type_name)
        self.message = f"Unknown node type {type_name!r}; known types: {', '.join(sorted(REGISTRY))}."

    def __str__(self) -> str:
        return self.message


def register(cls: type[NodeType]) -> type[NodeType]:
    if cls.type in REGISTRY:
        raise ValueError(f"node type {cls.type!r} is registered twice")
    REGISTRY[cls.type] = cls()
    return cls


def get(type_name: str) -> NodeType:
    try:
        return REGISTRY[type_name]
    except KeyError:
        raise UnknownNodeType(type_name) from None


@contextlib.contextmanager
def registered(*classes: type[NodeType]) -> Iterator[None]:
    """Register node types for the duration of a block (tests)."""
    added: list[str] = []
    try:
        for cls in classes:
            register(cls)
            added.append(cls.type)
        yield
    finally:
        for type_name in added:
            REGISTRY.pop(type_name, None)
