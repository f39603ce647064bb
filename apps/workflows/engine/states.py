"""The one table of allowed state transitions for runs and node runs.

Every status write in the engine is a conditional update ``... WHERE status IN sources(target)``,
so a transition the table does not allow simply affects no row — and a racing worker, a canceled
run or a lost lease all show up as "0 rows", never as a corrupted state.
"""

from __future__ import annotations

PENDING, QUEUED, RUNNING, WAITING = "pending", "queued", "running", "waiting"
SUCCEEDED, FAILED, SKIPPED, CANCELED = "succeeded", "failed", "skipped", "canceled"

NODE_TERMINAL = frozenset({SUCCEEDED, FAILED, SKIPPED, CANCELED})
NODE_OPEN = frozenset({PENDING, QUEUED, RUNNING, WAITING})
INSTANCE_TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELED})
INSTANCE_OPEN = frozenset({QUEUED, RUNNING, WAITING})

NODE_TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({QUEUED, SKIPPED, CANCELED}),
    QUEUED: frozenset({RUNNING, CANCELED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, QUEUED, WAITING, CANCELED}),  # QUEUED: retry after backoff
    WAITING: frozenset({QUEUED, SUCCEEDED, FAILED, CANCELED}),  # SUCCEEDED/FAILED: a loop's body ended
    FAILED: frozenset({QUEUED, PENDING}),  # retry from the failed node
    CANCELED: frozenset({QUEUED, PENDING}),  # retry
    SKIPPED: frozenset({PENDING}),  # retry recomputes the branch
    SUCCEEDED: frozenset(),
}

INSTANCE_TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, SUCCEEDED, FAILED, CANCELED}),
    RUNNING: frozenset({WAITING, SUCCEEDED, FAILED, CANCELED}),
    WAITING: frozenset({RUNNING, SUCCEEDED, FAILED, CANCELED}),
    FAILED: frozenset({RUNNING}),  # retry
    SUCCEEDED: frozenset(),
    CANCELED: frozenset(),
}


class IllegalTransition(ValueError):
    pass


def _sources(table: dict[str, frozenset[str]], target: str) -> list[str]:
    found = sorted(state for state, targets in table.items() if target in targets)
    if not found:
        raise IllegalTransition(f"nothing may move to {target!r}")
    return found


def node_sources(target: str) -> list[str]:
    """Node statuses from which ``target`` may be reached."""
    return _sources(NODE_TRANSITIONS, target)


def instance_sources(target: str) -> list[str]:
    return _sources(INSTANCE_TRANSITIONS, target)


def check_node(current: str, target: str) -> None:
    if target not in NODE_TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(f"a node cannot go from {current!r} to {target!r}")
