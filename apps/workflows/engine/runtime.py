"""The scheduler and the per-node execution path (docs/engine.md).

The database holds the truth; a Celery message only says "run node X of run R (iteration I)".

Per node (:func:`execute`): claim the NodeRun with a conditional update (``queued -> running``, lease
owner and expiry) → journal "running" → load the outputs the node needs → resolve its templates →
run the handler under its timeout → in one transaction: save the output guarded by the lease, settle
the out-edges (decrement the targets' ``remaining`` counters; the update that brings a target to 0
releases it ``pending -> queued`` or skips it — exactly once, however many branches finish at the
same moment), write the journal → after commit: enqueue the released nodes, broadcast, and, when
nothing is left open in the node's scope, complete the scope (the run, or one loop iteration).

Failures retry with backoff kept in the database (``queued`` + ``deferred`` + ``available_at``; the
waker sends the message when due — never a Celery ETA), then follow ``on_error``: ``fail`` fails the
run and cancels what is open; ``continue`` settles the out-edges as if the node took its continue
route; ``route`` takes the ``error`` handle. See docs/engine.md for the full error model.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar, cast

from django.conf import settings
from django.db import OperationalError, connection, models, transaction
from django.utils import timezone

from apps.workflows.engine import dispatch, events, fairness, leases, templates
from apps.workflows.engine import graph as graphs
from apps.workflows.engine.lru import LRU
from apps.workflows.engine.states import (
    CANCELED,
    FAILED,
    INSTANCE_OPEN,
    NODE_OPEN,
    PENDING,
    QUEUED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    WAITING,
    instance_sources,
    node_sources,
)
from apps.workflows.models import InstanceEvent, NodeRun, WorkflowInstance
from apps.workflows.nodes import base as nodes
from jetadmin.db.rows import Lookup, insert_rows

logger = logging.getLogger(__name__)

LOOP_HEAD = "loop.iteration"
# A worker runs a chain's next node itself (no broker hop) for up to
# settings.JETADMIN_INLINE_BUDGET_S per message (0 turns it off)...
# ...and a released-for-inline node not claimed within this time is sent by the waker.
INLINE_GRACE_S = 10.0
_local = threading.local()
DEFAULT_TIMEOUT_S = 300.0
MAX_EVENT_OUTPUT = 8 * 1024
OUTPUT_PREVIEW = 1024  # characters of a larger output's JSON kept in its journal row
_T = TypeVar("_T")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def iteration_key(outer: str, loop_id: str, index: int) -> str:
    return f"{outer}/{loop_id}:{index}" if outer else f"{loop_id}:{index}"


def scope_chain(iteration: str) -> list[str]:
    """``"a:1/b:2"`` → ``["", "a:1", "a:1/b:2"]``: the keys whose outputs a node can see."""
    chain = [""]
    if iteration:
        parts = iteration.split("/")
        chain += ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return chain


def requeue_at(now: dt.datetime | None = None) -> dt.datetime:
    """When the reconciler should presume a queued node's message lost and send another."""
    return (now or timezone.now()) + timedelta(seconds=settings.JETADMIN_REQUEUE_AFTER_S)


def outer_of(iteration: str) -> str:
    return iteration.rsplit("/", 1)[0] if "/" in iteration else ""


# --- instance data cache ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RunData:
    """What every node of a run needs and what never changes after the run starts."""

    instance_id: str
    tenant_id: str
    graph: graphs.Graph
    input: Any
    # A child run: (parent run id, subWorkflow node id, its iteration) to wake when this run ends.
    parent: tuple[str, str, str] | None = None
    trigger: str = ""


CACHE_SIZE = 512
_runs: LRU[str, RunData] = LRU(CACHE_SIZE)
_graphs: LRU[Any, graphs.Graph] = LRU(CACHE_SIZE)  # saved version id -> its graph, built once
# Outputs of top-level nodes this process saved as succeeded: a saved output never changes, so the next
# node of a chain run in this worker reads its context from here instead of the database. Kept as the
# JSON text that was saved, so a reader gets exactly what the database would give it.
OUTPUTS_KEPT = 256
_outputs: LRU[tuple[str, str], str] = LRU(OUTPUTS_KEPT)


_RUN_ROWS = Lookup(  # a run's start in a worker: SQL built once (the ORM compiled it for every run)
    WorkflowInstance,
    "id",
    only=("tenant", "version", "input", "parent", "parent_node", "parent_iteration", "trigger"),
)


def run_data(instance_id: str) -> RunData:
    data = _runs.get(instance_id)
    if data is not None:
        return data
    row = _RUN_ROWS.get(uuid.UUID(instance_id))
    if row is None:
        raise WorkflowInstance.DoesNotExist(instance_id)
    parent = (str(row.parent_id), row.parent_node, row.parent_iteration) if row.parent_id else None
    graph = _graphs.get(row.version_id) if row.version_id is not None else None
    if graph is None:  # a test run's graph, or a version this process has not built yet
        raw = WorkflowInstance.objects.values_list("graph", flat=True).get(pk=instance_id)
        graph = _graph_of(row.version_id, raw)
    data = RunData(instance_id, str(row.tenant_id), graph, row.input, parent, row.trigger)
    _runs.put(instance_id, data)
    return data


def run_trigger(instance_id: str) -> str | None:
    """How a run this process is executing was started (None if this process has not loaded it)."""
    data = _runs.get(instance_id)
    return data.trigger if data is not None else None


def _remember_output(instance_id: str, node_id: str, iteration: str, saved_json: str) -> None:
    if not iteration:
        _outputs.put((instance_id, node_id), saved_json)


def _recent_outputs(instance_id: str, wanted: set[str]) -> dict[str, Any] | None:
    """The wanted outputs if this process saved every one of them, else None (read the database)."""
    texts = {node_id: _outputs.get((instance_id, node_id)) for node_id in wanted}
    if any(text is None for text in texts.values()):
        return None
    return {node_id: json.loads(text) for node_id, text in texts.items() if text is not None}


def _json(value: Any) -> Any:
    """A jsonb column read by a raw statement: Django's psycopg setup leaves it as text."""
    return json.loads(value) if isinstance(value, str) else value


def _saved_json(output: Any) -> tuple[str, Any]:
    """The output's JSON text, and a psycopg parameter that sends that very text."""
    from psycopg.types.json import Jsonb

    text = json.dumps(output)
    return text, Jsonb(output, dumps=lambda _value: text)


def _graph_of(version_id: Any, raw: Any) -> graphs.Graph:
    """A run's pinned graph, built once per saved version and process (versions never change; a test
    run's unsaved graph is built each time)."""
    if version_id is None:
        return graphs.build(raw, trusted=True)
    return _graphs.get_or_build(version_id, lambda: graphs.build(raw, trusted=True))


# --- journal ------------------------------------------------------------------------------------------
def _jsonable_small(value: Any) -> tuple[bool, Any, str]:
    """(whether the value is small enough for the journal, the value, the start of its JSON)."""
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        return False, None, ""
    return len(text) <= MAX_EVENT_OUTPUT, value, text[:OUTPUT_PREVIEW]


def _field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    """A concrete column of ``model`` (for raw statements that prepare values as the ORM does)."""
    return cast("models.Field[Any, Any]", model._meta.get_field(name))


@dataclass
class Effects:
    """What a transaction decided, to be carried out after it commits."""

    events: list[InstanceEvent] = field(default_factory=list)
    enqueue: list[tuple[str, str, str]] = field(default_factory=list)
    checks: set[str] = field(default_factory=set)  # iteration keys whose scope may be complete
    inline: tuple[str, str, str] | None = None  # the successor this worker runs next, without a message
    inline_claim: tuple[int, int, Any] | None = None  # (row id, attempt, state) if already claimed for it
    timers: list[tuple[str, str, str, dt.datetime]] = field(default_factory=list)  # wake at a due time
    _written: int = 0

    def event(
        self, instance_id: str, type_: str, node_id: str = "", iteration: str = "", **data: Any
    ) -> None:
        self.events.append(
            InstanceEvent(
                instance_id=_uuid(instance_id), type=type_, node_id=node_id, iteration=iteration, data=data
            )
        )

    def node_event(self, instance_id: str, node_id: str, iteration: str, status: str, **data: Any) -> None:
        if "output" in data:  # a large output is journaled as a preview (the node's row has all of it)
            small, value, start = _jsonable_small(data.pop("output"))
            if small:
                data["output"] = value
            else:
                data["output_truncated"], data["output_preview"] = True, start
        self.event(instance_id, f"node.{status}", node_id, iteration, status=status, **data)

    def write(self) -> None:
        """Insert the journal rows not written yet (a transaction may write in two steps)."""
        pending = self.events[self._written :]
        self._written = len(self.events)
        if pending:
            insert_rows(pending)

    def after_commit(self) -> None:
        enqueue, published, inline, timers = list(self.enqueue), list(self.events), self.inline, self.timers
        inline_claim = self.inline_claim

        def send() -> None:
            if inline is not None:
                _local.next = inline
                _local.claim = inline_claim
            if timers:
                set_timers(timers)
            if enqueue:
                if dispatch.should_hold():  # the workers are saturated: wait for a fair share
                    dispatch.hold(enqueue)
                else:
                    publish(enqueue)
            events.publish(published)

        transaction.on_commit(send)


def set_timers(timers: list[tuple[str, str, str, dt.datetime]]) -> None:
    """Ask the broker to wake these nodes at their due time (a delay's end, a retry's backoff), so they
    run within milliseconds of it instead of at the reconciler's next tick. The database keeps the due
    time: a lost timer message only means the reconciler wakes the node, as it did before. Due times
    further away than ``JETADMIN_TIMER_MAX_S`` are left to the reconciler alone (a broker holds an ETA
    message unacknowledged, and Redis redelivers those after its visibility timeout)."""
    from apps.workflows.tasks import wake_node

    now = timezone.now()
    horizon = now + timedelta(seconds=settings.JETADMIN_TIMER_MAX_S)
    try:
        with wake_node.app.producer_or_acquire() as producer:
            for instance_id, node_id, iteration, when in timers:
                if when <= horizon:
                    wake_node.apply_async((instance_id, node_id, iteration), eta=when, producer=producer)
    except Exception as exc:  # the reconciler wakes them at its next pass
        logger.warning("could not set %d timer(s) (%s); the reconciler will wake them", len(timers), exc)


def wake(instance_id: str, node_id: str, iteration: str = "") -> str | None:
    """A timer message: if this node's due time has come, make it runnable and run it in this worker.

    Conditional like everything else, so a timer that arrives after the reconciler (or twice) does
    nothing; one that arrives a little early is set again for the rest of the time.
    """
    now = timezone.now()
    row = (
        NodeRun.objects.filter(instance_id=_uuid(instance_id), node_id=node_id, iteration=iteration)
        .values_list("id", "status", "deferred", "available_at")
        .first()
    )
    if row is None or row[1] not in (WAITING, QUEUED) or (row[1] == QUEUED and not row[2]):
        return None  # already woken, running or ended
    run_id, status, _, due = row
    if due is None:
        return None
    if due > now:
        set_timers([(instance_id, node_id, iteration, due)])
        return None
    if status == WAITING:
        if not _wake_waiting(run_id, instance_id, node_id, iteration, now, publish_it=False):
            return None
    elif not NodeRun.objects.filter(pk=run_id, status=QUEUED, deferred=True, available_at__lte=now).update(
        deferred=False, available_at=requeue_at(now)
    ):
        return None
    return run_task(instance_id, node_id, iteration)


def publish(targets: list[tuple[str, str, str]]) -> None:
    """Send "run node X of run R" messages, one broker connection for all of them. If the broker is down
    the database still has the nodes: the reconciler's next pass sends them."""
    from apps.workflows.tasks import execute_node

    try:
        with execute_node.app.producer_or_acquire() as producer:
            # A fan-out's messages go out in one pipelined round trip where the broker can (Redis).
            batch = producer.batch() if len(targets) > 1 else contextlib.nullcontext()
            with batch:
                for instance_id, node_id, iteration in targets:
                    execute_node.apply_async((instance_id, node_id, iteration), producer=producer)
    except Exception as exc:
        logger.warning("could not send %d node message(s) (%s); the reconciler will", len(targets), exc)
        _send_soon(targets)
        return
    dispatch.published(len(targets))


def _send_soon(targets: list[tuple[str, str, str]]) -> None:
    """Messages that could not be published: due for the reconciler's next pass, not in a minute."""
    now = timezone.now()
    for instance_id, node_id, iteration in targets:
        with contextlib.suppress(Exception):
            NodeRun.objects.filter(
                instance_id=_uuid(instance_id), node_id=node_id, iteration=iteration, status=QUEUED
            ).update(available_at=now)


def _retry_db(fn: Callable[[], _T], attempts: int = 5) -> _T:
    """Run a short transaction again on deadlock / lock timeout (nothing else repeats)."""
    for attempt in range(attempts):
        try:
            return fn()
        except OperationalError as exc:
            text = str(exc).lower()
            if attempt == attempts - 1 or not ("deadlock" in text or "locked" in text or "serializ" in text):
                raise
            time.sleep(0.01 * (2**attempt))
    raise AssertionError("unreachable")


def _uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)


def _db_id(instance_id: str) -> Any:
    """The run id as the database stores it (SQLite keeps UUIDs as 32 hex chars) for raw SQL."""
    return _db_uuid(instance_id)


def _db_uuid(value: str) -> Any:
    return WorkflowInstance._meta.pk.get_db_prep_value(uuid.UUID(value), connection)


# --- starting a run -----------------------------------------------------------------------------------
def start(instance: WorkflowInstance, graph: graphs.Graph) -> WorkflowInstance:
    """Create the run's top-level NodeRuns and release its roots. Call inside the creating transaction."""
    fx = Effects()
    rows = []
    roots = set(graph.roots(None))
    hold = fairness.start_delay(str(instance.tenant_id))  # over the tenant's start rate: admitted, later
    first_at = timezone.now() + timedelta(seconds=hold) if hold else requeue_at()
    held = not hold and dispatch.should_hold()  # saturated workers: the roots wait for a fair share
    for node_id in graph.members(None):
        inputs = graph.inputs(node_id)
        rows.append(
            NodeRun(
                instance=instance,
                node_id=node_id,
                node_type=graph.node_type(node_id),
                remaining=graph.in_count(node_id),
                wait_any=graph.node_type(node_id) == "join" and inputs.get("mode") == "any",
                status=QUEUED if node_id in roots else PENDING,
                available_at=first_at if node_id in roots else None,
                deferred=bool(hold or held) and node_id in roots,
                lease_owner=dispatch.HELD if held and node_id in roots else "",
            )
        )
    insert_rows(rows)
    iid = str(instance.id)
    if hold:
        fx.event(iid, "instance.queued", status=instance.status, throttled_until=first_at.isoformat())
    else:
        fx.event(iid, "instance.queued", status=instance.status)
    for node_id in sorted(roots):
        fx.node_event(iid, node_id, "", QUEUED, attempt=0)
        if not hold and not held:
            fx.enqueue.append((iid, node_id, ""))
    fx.write()
    fx.after_commit()
    if not roots:  # an empty graph finishes at once
        transaction.on_commit(lambda: complete_scope(iid, ""))
    return instance


@dataclass
class Attempt:
    """One claimed execution of a node: whose lease it is and what it ran with.

    ``owner`` None means the end of the node is not lease-guarded (a loop finishing from ``waiting``).
    """

    run: RunData
    node_id: str
    iteration: str
    run_id: int
    owner: str | None
    attempt: int
    inputs: Any = None

    def fields(self) -> tuple[RunData, str, str, int, str | None, int, Any]:
        return self.run, self.node_id, self.iteration, self.run_id, self.owner, self.attempt, self.inputs


# --- executing one node -------------------------------------------------------------------------------
_CLAIM_SQL = """
UPDATE {table} SET status = %s, lease_owner = %s, lease_expires_at = %s, attempt = attempt + 1,
       started_at = COALESCE(started_at, %s), deferred = FALSE
 WHERE instance_id = %s AND node_id = %s AND iteration = %s AND status = %s AND (deferred = %s OR %s){fair}
RETURNING id, attempt, state
"""

# Fair sharing: the claim only succeeds while the tenant runs fewer nodes than its limit.
_FAIR_SQL = """
   AND (SELECT COUNT(*) FROM {table} r2 JOIN {instances} i2 ON i2.id = r2.instance_id
         WHERE r2.status = 'running' AND r2.lease_expires_at IS NOT NULL AND i2.tenant_id = %s) < %s"""


# On PostgreSQL the claim writes its "running" journal row in the same statement (one round trip).
_CLAIM_AND_JOURNAL_SQL = """
WITH claimed AS ({claim}),{starts}
journal AS (
  INSERT INTO {events} (instance_id, type, node_id, iteration, data, at)
  SELECT %s, 'node.running', %s, %s, jsonb_build_object('status', 'running', 'attempt', claimed.attempt), %s
    FROM claimed{started}
  RETURNING id, seq, type
)
SELECT claimed.id, claimed.attempt, claimed.state,
       (SELECT id FROM journal WHERE type = 'node.running'),
       (SELECT id FROM journal WHERE type = 'instance.running'),
       (SELECT seq FROM journal WHERE type = 'node.running'),
       (SELECT seq FROM journal WHERE type = 'instance.running')
  FROM claimed
"""
# A root node's claim also marks its run running (the first claim only), journaled after the node's
# own "running" row: the same statement, and the same order as the general path.
_CLAIM_STARTS_RUN_SQL = """
run AS (
  UPDATE {instances} SET status = 'running', started_at = %s
   WHERE id = %s AND status = 'queued' AND EXISTS (SELECT 1 FROM claimed)
  RETURNING id
),"""
_CLAIM_STARTS_RUN_JOURNAL_SQL = """
  UNION ALL
  SELECT %s, 'instance.running', '', '', '{"status": "running"}'::jsonb, %s FROM run"""


def _claim(
    run: RunData,
    node_id: str,
    iteration: str,
    owner: str,
    lease_s: float,
    *,
    continuation: bool = False,
    starts_run: bool = False,
) -> tuple[int, int, Any, list[InstanceEvent] | None] | None:
    """Claim a queued node; returns (row id, attempt, state, the journal rows it wrote — None when the
    caller must journal the claim and, for ``starts_run``, the run's start itself)."""
    instance_id = run.instance_id
    now = timezone.now()
    journal = connection.vendor == "postgresql"
    max_running, _ = fairness.limits(run.tenant_id)
    fair: list[Any] = []
    fair_sql = ""
    if max_running > 0:
        fair_sql = _FAIR_SQL.format(table=NodeRun._meta.db_table, instances=WorkflowInstance._meta.db_table)
        fair = [_db_uuid(run.tenant_id), max_running]
    sql = _CLAIM_SQL.format(table=NodeRun._meta.db_table, fair=fair_sql)
    extra: list[Any] = []
    if journal:
        extra = [_db_id(instance_id), node_id, iteration, now]
        if starts_run:  # parameters in the order they appear: the run's update, then the journal rows
            extra = [now, _db_id(instance_id), *extra, _db_id(instance_id), now]
        sql = _CLAIM_AND_JOURNAL_SQL.format(
            claim=sql.strip(),
            events=InstanceEvent._meta.db_table,
            starts=_CLAIM_STARTS_RUN_SQL.format(instances=WorkflowInstance._meta.db_table)
            if starts_run
            else "",
            started=_CLAIM_STARTS_RUN_JOURNAL_SQL if starts_run else "",
        )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                RUNNING,
                owner,
                now + timedelta(seconds=lease_s),
                now,
                _db_id(instance_id),
                node_id,
                iteration,
                QUEUED,
                False,
                continuation,
                *fair,
                *extra,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        if max_running > 0:
            _throttle(run, node_id, iteration, now)
        return None
    state = _json(row[2])
    written: list[InstanceEvent] | None = None
    if journal:
        written = [
            InstanceEvent(
                id=row[3],
                seq=row[5],
                instance_id=_uuid(instance_id),
                type="node.running",
                node_id=node_id,
                iteration=iteration,
                data={"status": RUNNING, "attempt": int(row[1])},
                at=now,
            )
        ]
        if row[4] is not None:  # this claim started the run
            written.append(
                InstanceEvent(
                    id=row[4],
                    seq=row[6],
                    instance_id=_uuid(instance_id),
                    type="instance.running",
                    data={"status": RUNNING},
                    at=now,
                )
            )
    return int(row[0]), int(row[1]), state, written


def _throttle(run: RunData, node_id: str, iteration: str, now: dt.datetime) -> None:
    """A claim refused for the tenant's running limit: the node stays queued, marked throttled; the
    reconciler sends it when the tenant has a free slot (never sooner, so nothing churns).

    (When the claim failed for another reason — claimed elsewhere, finished — this matches no row.)
    """
    NodeRun.objects.filter(
        instance_id=_uuid(run.instance_id), node_id=node_id, iteration=iteration, status=QUEUED
    ).update(deferred=True, available_at=now, lease_owner=fairness.THROTTLED)


class NodeTimeout(Exception):
    pass


@contextlib.contextmanager
def _alarm(seconds: float | None) -> Iterator[None]:
    """Interrupt a handler at its timeout where signals can (the main thread of a worker process)."""
    usable = (
        seconds and threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    )
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise NodeTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds or 0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _context(
    run: RunData, node_id: str, iteration: str, node_type: nodes.NodeType
) -> tuple[dict[str, Any], list[str]]:
    """The read-only context: ``{input, <node_id>: output | {error}, loop?}`` for what the node needs."""
    g = run.graph
    wanted = set(g.refs(node_id))
    upstream = g.upstream(node_id)
    if node_type.context == "upstream":
        wanted |= set(upstream)
    elif node_type.context == "ancestors":
        wanted |= set(g.ancestors(node_id))
    chain = g.loop_chain(node_id)
    innermost = chain[-1] if chain else None
    data: dict[str, Any] = {"input": run.input}
    if templates.WIDGET_INPUT in wanted or (
        node_type.context == "ancestors" and templates.WIDGET_INPUT in repr(g.inputs(node_id))
    ):  # what a widget sent: read when the node asks for it (it may change while the run goes on)
        wanted.discard(templates.WIDGET_INPUT)
        extra = WorkflowInstance.objects.values_list("context", flat=True).get(pk=_uuid(run.instance_id))
        if isinstance(extra, dict) and templates.WIDGET_INPUT in extra:
            data[templates.WIDGET_INPUT] = extra[templates.WIDGET_INPUT]
    if not wanted and innermost is None:
        return data, upstream
    if not iteration and innermost is None:
        known = _recent_outputs(run.instance_id, wanted)
        if known is not None:  # a chain continued in this worker: its outputs are already here
            data.update(known)
            return data, upstream
    keys = scope_chain(iteration)
    rows = NodeRun.objects.filter(
        instance_id=_uuid(run.instance_id),
        node_id__in=wanted | ({innermost} if innermost else set()),
        iteration__in=keys,
    ).values_list("node_id", "iteration", "node_type", "status", "output", "error", "state", "index")
    best: dict[str, tuple[int, Any]] = {}
    for nid, it, ntype, status, output, error, state, index in rows:
        if ntype == LOOP_HEAD:
            if nid == innermost and it == iteration:
                data["loop"] = {"item": (state or {}).get("item"), "index": index}
            continue
        if nid not in wanted or status not in (SUCCEEDED, FAILED):
            continue
        depth = len(it)
        if nid not in best or depth > best[nid][0]:
            best[nid] = (depth, output if status == SUCCEEDED else {"error": error})
    for nid, (_, value) in best.items():
        data[nid] = value
    return data, upstream


def _node_timeout(node: dict[str, Any]) -> float:
    return float(node.get("timeout_s") or DEFAULT_TIMEOUT_S)


def run_task(instance_id: str, node_id: str, iteration: str = "") -> str | None:
    """The Celery task's body: run the node, then keep running a chain's single released successor
    in this worker (no broker round trip) until the time budget is spent."""
    budget = settings.JETADMIN_INLINE_BUDGET_S
    deadline = time.monotonic() + budget
    target: tuple[str, str, str] | None = (str(instance_id), node_id, iteration)
    status = None
    first = True
    claim: tuple[int, int, Any] | None = None
    while target is not None:
        _local.inline = budget > 0 and time.monotonic() < deadline
        _local.next = _local.claim = None
        try:
            status = execute(*target, continuation=not first, claimed=claim)
        except Exception:
            # A node whose claim failed is still queued, and its message is gone with this task: make
            # it due at the reconciler's next pass rather than after the presumed-lost delay.
            _send_soon([target])
            raise
        finally:
            _local.inline = False
        target, claim, first = _local.next, _local.claim, False
    return status


def execute(
    instance_id: str,
    node_id: str,
    iteration: str = "",
    *,
    owner: str | None = None,
    continuation: bool = False,
    claimed: tuple[int, int, Any] | None = None,
) -> str | None:
    """Run one node of one run; returns the status it ended in (None when there was nothing to do).

    ``continuation``: this worker released the node for itself (it is queued but "deferred").
    ``claimed``: (row id, attempt, state) when the statement that released it already claimed it for
    this worker (its "running" journal row written too).
    """
    instance_id = str(instance_id)
    owner = owner or worker_id()
    run = run_data(instance_id)
    g = run.graph
    if node_id not in g.nodes:
        logger.error("run %s has no node %r", instance_id, node_id)
        return None
    node = g.nodes[node_id]
    node_type = nodes.get(g.node_type(node_id))
    timeout = _node_timeout(node)
    if claimed is not None:
        run_id, attempt, state = claimed
    else:
        root = g.in_count(node_id) == 0 and g.scope[node_id] is None

        def claim_it() -> tuple[int, int, Any] | None:
            # PostgreSQL claims and journals in one statement; elsewhere the claim and its journal rows
            # share one transaction (one commit, not one per statement).
            atomic = transaction.atomic() if connection.vendor != "postgresql" else contextlib.nullcontext()
            with atomic:
                claim = _claim(
                    run,
                    node_id,
                    iteration,
                    owner,
                    leases.lease_seconds(),
                    continuation=continuation,
                    starts_run=root,
                )
                if claim is None:
                    return None  # already claimed, finished, canceled, or not due: the message was a hint
                run_id, attempt, state, written = claim
                fx = Effects()
                if written is None:
                    fx.node_event(instance_id, node_id, iteration, RUNNING, attempt=attempt)
                    if root:
                        _instance_to(instance_id, RUNNING, fx, started=True)
                    fx.write()
                else:
                    fx.events, fx._written = written, len(written)  # written by the claim; still broadcast
                fx.after_commit()
            return run_id, attempt, state

        # A claim journals, and the journal's numbering locks the run's counter row until commit: two
        # writers of one run can deadlock on it (PostgreSQL aborts one). The claim is conditional, so
        # the aborted one is simply tried again.
        begun = _retry_db(claim_it)
        if begun is None:
            return None
        run_id, attempt, state = begun
    a = Attempt(run, node_id, iteration, run_id, owner, attempt)

    started = time.monotonic()
    deadline = started + timeout
    inputs: Any = None
    try:
        data, upstream = _context(run, node_id, iteration, node_type)
        inputs = a.inputs = templates.resolve(g.inputs(node_id), data, node_id=node_id)
        problems = graphs.validate_inputs(node_type, inputs, node_id=node_id)
        if problems:
            raise nodes.NodeError(
                "; ".join(f"{p.field}: {p.message}" for p in problems[:3]),
                code="invalid_input",
                retryable=False,
            )
        ctx = nodes.NodeContext(
            instance_id=instance_id,
            tenant_id=run.tenant_id,
            node_id=node_id,
            iteration=iteration,
            attempt=attempt,
            idempotency_key=f"{instance_id}:{node_id}:{iteration}"
            if iteration
            else f"{instance_id}:{node_id}",
            deadline=deadline,
            data=nodes.freeze(data),
            state=state,
            upstream=tuple(upstream),
            now=timezone.now(),
        )
        with leases.renewer.hold(run_id, owner), _alarm(timeout):
            result = node_type.run(inputs, ctx)
        if time.monotonic() > deadline:
            raise NodeTimeout
    except NodeTimeout:
        return _failed(a, "timeout", f"Node {node_id!r} ran past its timeout of {timeout:g} s.", True)
    except templates.TemplateError as exc:
        return _failed(a, "template_error", str(exc), False)
    except nodes.NodeError as exc:
        retryable = exc.retryable and node_type.retryable
        return _failed(a, exc.code, exc.message, retryable)
    except Exception as exc:
        logger.exception("node %s of run %s raised", node_id, instance_id)
        message = f"{type(exc).__name__}: {exc}"[:2000]
        return _failed(a, "node_crashed", message, True)

    if isinstance(result, nodes.Wait):
        return _retry_db(lambda: _park(a, result))
    if isinstance(result, nodes.StartLoop):
        return _retry_db(lambda: _start_loop(a, result))
    if isinstance(result, nodes.StartChild):
        return _start_child(a, result)
    result = nodes.thaw(result)
    try:
        json.dumps(result)
    except (TypeError, ValueError):
        return _failed(a, "bad_output", f"Node {node_id!r} returned a value that is not JSON.", False)
    route = node_type.route(result, inputs)
    return _retry_db(lambda: _succeed(a, result, route))


def _finish_params(a: Attempt, output: Any, route: str) -> tuple[Effects, dt.datetime, str, dict[str, Any]]:
    """What both one-statement finishes send: the node's result and its "succeeded" journal row;
    returns (effects holding that row, now, the output's saved JSON text, the statement's parameters)."""
    from psycopg.types.json import Jsonb

    run, node_id, iteration, run_id, owner, attempt, inputs = a.fields()
    fx = Effects()
    fx.node_event(run.instance_id, node_id, iteration, SUCCEEDED, attempt=attempt, output=output)
    now = timezone.now()
    saved_json, output_param = _saved_json(output)
    params: dict[str, Any] = {
        "output": output_param,
        "route": route,
        "input": Jsonb(inputs),
        "now": now,
        "run_id": run_id,
        "owner": owner,
        "iid": _uuid(run.instance_id),
        "node_id": node_id,
        "data": Jsonb(fx.events[0].data),
    }
    return fx, now, saved_json, params


def _finished(run: RunData, fx: Effects) -> tuple[bool, str | None]:
    """After a one-statement finish committed: its journal rows are written; broadcast, send, check."""
    fx._written = len(fx.events)
    fx.after_commit()
    _check_scopes(run.instance_id, fx)
    return True, SUCCEEDED


# PostgreSQL, when every out-edge of the node is active (so settling can release but never skip):
# save the output, settle the successors and journal both in ONE statement, atomic on its own.
_FINISH_SQL = """
WITH me AS (
  UPDATE {runs} SET status = 'succeeded', output = %(output)s, route = %(route)s, input = %(input)s,
         error = NULL, ended_at = %(now)s, lease_owner = '', lease_expires_at = NULL
   WHERE id = %(run_id)s AND status = 'running' AND lease_owner = %(owner)s
  RETURNING id
), t AS (
  UPDATE {runs} AS r SET
    status = CASE WHEN {released}
                  THEN CASE WHEN {claims} THEN 'running' ELSE 'queued' END ELSE r.status END,
    deferred = CASE WHEN {released}
                    THEN CASE WHEN {claims} THEN FALSE ELSE %(defer)s END ELSE r.deferred END,
    available_at = CASE WHEN {released} THEN %(until)s ELSE r.available_at END,
    lease_owner = CASE WHEN {released} AND {claims} THEN %(owner)s ELSE r.lease_owner END,
    lease_expires_at = CASE WHEN {released} AND {claims} THEN %(lease_until)s ELSE r.lease_expires_at END,
    attempt = CASE WHEN {released} AND {claims} THEN r.attempt + 1 ELSE r.attempt END,
    started_at = CASE WHEN {released} AND {claims} THEN COALESCE(r.started_at, %(now)s)
                      ELSE r.started_at END,
    remaining = r.remaining - v.dec,
    active = r.active + v.inc
  FROM (VALUES {values}) AS v(node_id, dec, inc)
  WHERE r.instance_id = %(iid)s AND r.iteration = %(iteration)s AND r.node_id = v.node_id
    AND EXISTS (SELECT 1 FROM me)
  RETURNING r.id, r.node_id, r.status, r.remaining, r.active, r.wait_any, v.inc, r.attempt, r.state
), released AS (
  SELECT node_id, status, attempt FROM t
   WHERE t.status IN ('queued', 'running')
     AND ((t.wait_any AND t.inc > 0 AND t.active - t.inc = 0) OR (NOT t.wait_any AND t.remaining = 0))
), ev AS (
  INSERT INTO {events} (instance_id, type, node_id, iteration, data, at)
  SELECT %(iid)s, 'node.succeeded', %(node_id)s, %(iteration)s, %(data)s, %(now)s FROM me
  UNION ALL
  SELECT %(iid)s, 'node.queued', released.node_id, %(iteration)s, %(queued)s, %(now)s FROM released
  UNION ALL
  SELECT %(iid)s, 'node.running', released.node_id, %(iteration)s,
         jsonb_build_object('status', 'running', 'attempt', released.attempt), %(now)s
    FROM released WHERE released.status = 'running'
  RETURNING id, seq, type, node_id, data
)
SELECT 'ev', id, type, node_id, data, NULL::int, NULL::int, NULL::bool, seq, NULL::int, NULL::jsonb
  FROM ev
UNION ALL
SELECT 't', NULL, status, node_id, NULL::jsonb, remaining, active, wait_any, id, attempt, state FROM t
"""
# A target becomes ready; and, when this worker will run it next (a chain continued inline, no running
# limit), it is claimed for this worker in the same statement — one statement fewer per chain step.
_RELEASED = "(r.status = 'pending' AND r.active + v.inc > 0 AND (r.remaining - v.dec = 0 OR r.wait_any))"
_CLAIMS = "(%(claim)s AND NOT r.wait_any)"


def _succeed_in_one_statement(a: Attempt, output: Any, route: str) -> tuple[bool, str | None]:
    """The single-statement finish; (False, None) when it does not apply and the general path must run."""
    run, node_id, iteration = a.run, a.node_id, a.iteration
    edges = run.graph.settles(node_id)
    if connection.vendor != "postgresql" or not edges or connection.in_atomic_block:
        return False, None
    if not all(graphs.edge_active(e, SUCCEEDED, route) for e in edges):
        return False, None  # a target could be skipped: that propagates, so it takes a transaction
    from psycopg.types.json import Jsonb

    counts: dict[str, int] = {}
    for edge in edges:
        counts[edge.target] = counts.get(edge.target, 0) + 1
    inline = getattr(_local, "inline", False) and len(counts) == 1
    fx, now, saved_json, params = _finish_params(a, output, route)
    params.update(
        defer=inline,
        until=now + timedelta(seconds=INLINE_GRACE_S) if inline else requeue_at(now),
        iteration=iteration,
        queued=Jsonb({"status": QUEUED, "attempt": 0}),
    )
    values = []
    for i, (target, n) in enumerate(sorted(counts.items())):
        params[f"t{i}"], params[f"n{i}"] = target, n
        values.append(f"(%(t{i})s::text, %(n{i})s::int, %(n{i})s::int)")
    params["claim"] = inline and fairness.limits(run.tenant_id)[0] <= 0
    params["lease_until"] = now + timedelta(seconds=leases.lease_seconds())
    sql = _FINISH_SQL.format(
        runs=NodeRun._meta.db_table,
        events=InstanceEvent._meta.db_table,
        values=", ".join(values),
        released=_RELEASED,
        claims=_CLAIMS,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return True, None  # lost the lease, or the run was canceled meanwhile
    _remember_output(run.instance_id, node_id, iteration, saved_json)
    fx.events = []
    touched: dict[str, str] = {}
    claimed: dict[str, tuple[int, int, Any]] = {}
    for kind, event_id, text, target, data, _remaining, _active, _wait_any, t_id, t_attempt, t_state in rows:
        if kind == "ev":  # a journal row: its seq rides in the target-id column
            fx.events.append(
                InstanceEvent(
                    id=event_id,
                    seq=t_id,
                    instance_id=_uuid(run.instance_id),
                    type=text,
                    node_id=target,
                    iteration=iteration,
                    data=_json(data),
                    at=now,
                )
            )
            if text == "node.queued":
                if inline:
                    fx.inline = (run.instance_id, target, iteration)
                else:
                    fx.enqueue.append((run.instance_id, target, iteration))
        else:
            touched[target] = text
            if text == RUNNING:
                state = _json(t_state)
                claimed[target] = (int(t_id), int(t_attempt), state)
    fx.events.sort(key=lambda event: event.seq or 0)
    if fx.inline is not None and fx.inline[1] in claimed:
        fx.inline_claim = claimed[fx.inline[1]]
    if not any(status in NODE_OPEN for status in touched.values()):
        fx.checks.add(iteration)
    return _finished(run, fx)


# PostgreSQL, a top-level node with no successors (the end of a chain) in a run with no parent: save the
# output, journal it and — when nothing else of the run is open — end the run with its output and
# journal that, in ONE statement. The open-nodes check sees the snapshot before the statement, so two
# sinks ending at the same moment may each see the other open: then neither ends the run here, and the
# general check after commit (complete_scope) does.
_SINK_SQL = """
WITH me AS (
  UPDATE {runs} SET status = 'succeeded', output = %(output)s, route = %(route)s, input = %(input)s,
         error = NULL, ended_at = %(now)s, lease_owner = '', lease_expires_at = NULL
   WHERE id = %(run_id)s AND status = 'running' AND lease_owner = %(owner)s
  RETURNING id
), ev AS (
  INSERT INTO {events} (instance_id, type, node_id, iteration, data, at)
  SELECT %(iid)s, 'node.succeeded', %(node_id)s, '', %(data)s, %(now)s FROM me
  RETURNING id, seq, type, data
), run AS (
  UPDATE {instances} SET status = 'succeeded', ended_at = %(now)s,
         output = CASE WHEN %(is_end)s THEN %(output)s ELSE (
           SELECT r.output FROM {runs} r WHERE r.instance_id = %(iid)s AND r.node_type = 'end'
              AND r.status = 'succeeded' AND r.iteration = '' ORDER BY r.ended_at DESC, r.id DESC LIMIT 1
         ) END
   WHERE id = %(iid)s AND status = ANY(%(sources)s) AND EXISTS (SELECT 1 FROM me)
     AND NOT EXISTS (SELECT 1 FROM {runs} o WHERE o.instance_id = %(iid)s AND o.id <> %(run_id)s
                     AND o.status = ANY(%(open)s))
  RETURNING output
), run_ev AS (
  INSERT INTO {events} (instance_id, type, node_id, iteration, data, at)
  SELECT %(iid)s, 'instance.succeeded', '', '',
         jsonb_build_object('status', 'succeeded', 'output', run.output), %(now)s FROM run
   WHERE (SELECT COUNT(*) FROM ev) > 0  -- reading ev first journals (and numbers) the node before the run
  RETURNING id, seq, type, data
)
SELECT id, seq, type, data FROM ev UNION ALL SELECT id, seq, type, data FROM run_ev
"""


def _succeed_sink_in_one_statement(a: Attempt, output: Any, route: str) -> tuple[bool, str | None]:
    """The single-statement end of a top-level sink; (False, None) when it does not apply."""
    run, node_id, iteration = a.run, a.node_id, a.iteration
    if (
        connection.vendor != "postgresql"
        or connection.in_atomic_block
        or iteration
        or run.parent is not None
        or run.graph.settles(node_id)
        or run.graph.scope.get(node_id) is not None
    ):
        return False, None
    fx, now, saved_json, params = _finish_params(a, output, route)
    params.update(
        is_end=run.graph.node_type(node_id) == "end",
        sources=instance_sources(SUCCEEDED),
        open=sorted(NODE_OPEN),
    )
    sql = _SINK_SQL.format(
        runs=NodeRun._meta.db_table,
        events=InstanceEvent._meta.db_table,
        instances=WorkflowInstance._meta.db_table,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return True, None  # lost the lease, or the run was canceled meanwhile
    _remember_output(run.instance_id, node_id, iteration, saved_json)
    fx.events = [
        InstanceEvent(
            id=event_id,
            seq=seq,
            instance_id=_uuid(run.instance_id),
            type=kind,
            node_id=node_id if kind == "node.succeeded" else "",
            iteration="",
            data=_json(data),
            at=now,
        )
        for event_id, seq, kind, data in sorted(rows, key=lambda row: row[1])
    ]
    if len(rows) == 1:  # the run did not end here: something else may still be open
        fx.checks.add("")
    return _finished(run, fx)


def _succeed(a: Attempt, output: Any, route: str, *, from_status: str = RUNNING) -> str | None:
    run, node_id, iteration, run_id, owner, attempt, inputs = a.fields()
    if from_status == RUNNING and owner is not None:
        done, status = _succeed_in_one_statement(a, output, route)
        if not done:
            done, status = _succeed_sink_in_one_statement(a, output, route)
        if done:
            return status
    fx = Effects()
    with transaction.atomic():
        saved = _save_result(run_id, from_status, owner, SUCCEEDED, output=output, route=route, input=inputs)
        if not saved:
            return None  # lost the lease, or the run was canceled meanwhile
        fx.node_event(run.instance_id, node_id, iteration, SUCCEEDED, attempt=attempt, output=output)
        _write_before_joins(run, node_id, fx)
        _settle(run, node_id, iteration, SUCCEEDED, route, fx)
        fx.write()
        fx.after_commit()
    if not iteration:
        _remember_output(run.instance_id, node_id, iteration, json.dumps(output))
    _check_scopes(run.instance_id, fx)
    return SUCCEEDED


def _save_result(run_id: int, from_status: str, owner: str | None, status: str, **fields: Any) -> bool:
    """End a node run, guarded by its status and (when it is running) by its lease owner."""
    fields.setdefault("error", None)
    fields.update(status=status, ended_at=timezone.now(), lease_owner="", lease_expires_at=None)
    meta = NodeRun._meta
    assignments, params = [], []
    for name, value in fields.items():  # each value prepared by its field, as the ORM's UPDATE would
        f = _field(NodeRun, name)
        assignments.append(f"{connection.ops.quote_name(f.get_attname_column()[1] or name)} = %s")
        params.append(f.get_db_prep_save(value, connection))
    sql = f"UPDATE {meta.db_table} SET {', '.join(assignments)} WHERE id = %s AND status = %s"  # noqa: S608
    params += [run_id, from_status]
    if owner is not None:
        sql += " AND lease_owner = %s"
        params.append(owner)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return bool(cursor.rowcount)


def _write_before_joins(run: RunData, node_id: str, fx: Effects) -> None:
    """Settling a join locks its row until commit; journal first so the lock is held briefly."""
    if any(run.graph.in_count(e.target) > 1 for e in run.graph.settles(node_id)):
        fx.write()


def _failed(a: Attempt, code: str, message: str, retryable: bool) -> str | None:
    run, node_id, iteration, run_id, owner, attempt, inputs = a.fields()
    node = run.graph.nodes[node_id]
    policy = node.get("retry") or {}
    max_attempts = int(policy.get("max_attempts", 1))
    error = {"code": code, "message": message, "attempt": attempt}
    # After a manual retry, the retry policy counts the attempts made since then.
    base = int(
        (NodeRun.objects.filter(pk=run_id).values_list("state", flat=True).first() or {}).get(
            "attempt_base", 0
        )
    )
    if retryable and attempt - base < max_attempts:
        backoff = float(policy.get("backoff_s", 1.0)) * (2 ** (attempt - base - 1))

        def requeue() -> str | None:
            fx = Effects()
            due = timezone.now() + timedelta(seconds=backoff)
            with transaction.atomic():
                saved = NodeRun.objects.filter(pk=run_id, status=RUNNING, lease_owner=owner).update(
                    status=QUEUED,
                    deferred=True,
                    available_at=due,
                    error=error,
                    input=inputs,
                    lease_owner="",
                    lease_expires_at=None,
                )
                if not saved:
                    return None
                fx.node_event(
                    run.instance_id,
                    node_id,
                    iteration,
                    "retrying",
                    attempt=attempt,
                    error=error,
                    retry_in_s=backoff,
                )
                fx.timers.append((run.instance_id, node_id, iteration, due))
                fx.write()
                fx.after_commit()
            return QUEUED

        return _retry_db(requeue)
    return _retry_db(lambda: _fail(a, error))


def _fail(a: Attempt, error: dict[str, Any], *, from_status: str = RUNNING) -> str | None:
    run, node_id, iteration, run_id, owner, attempt, inputs = a.fields()
    g = run.graph
    mode = g.on_error(node_id)
    node_type = nodes.get(g.node_type(node_id))
    route = {"route": "error", "continue": node_type.continue_route(g.inputs(node_id))}.get(mode, "")
    fx = Effects()
    with transaction.atomic():
        if not _save_result(run_id, from_status, owner, FAILED, error=error, route=route, input=inputs):
            return None
        fx.node_event(run.instance_id, node_id, iteration, FAILED, attempt=attempt, error=error)
        if mode == "fail":
            _end_instance(
                run.instance_id, FAILED, fx, error={**error, "node_id": node_id, "iteration": iteration}
            )
        else:
            _write_before_joins(run, node_id, fx)
            _settle(run, node_id, iteration, FAILED, route, fx)
        fx.write()
        fx.after_commit()
    _check_scopes(run.instance_id, fx)
    return FAILED


def _park(a: Attempt, wait: nodes.Wait) -> str | None:
    run, node_id, iteration, run_id, owner, attempt, inputs = a.fields()
    fx = Effects()
    with transaction.atomic():
        saved = NodeRun.objects.filter(pk=run_id, status=RUNNING, lease_owner=owner).update(
            status=WAITING,
            available_at=wait.until,
            state=wait.state,
            input=inputs,
            lease_owner="",
            lease_expires_at=None,
            attempt=max(attempt - 1, 0),
        )
        if not saved:
            return None
        until = wait.until.isoformat() if wait.until else None
        fx.node_event(
            run.instance_id, node_id, iteration, WAITING, attempt=attempt, until=until, kind=wait.kind
        )
        if wait.until is not None:
            fx.timers.append((run.instance_id, node_id, iteration, wait.until))
        if wait.kind != "timer":
            _mark_waiting(run.instance_id, fx)
        fx.write()
        fx.after_commit()
    return WAITING


def _start_child(a: Attempt, spec: nodes.StartChild) -> str | None:
    """Start a run of another workflow of the tenant and park the subWorkflow node until it ends."""
    from apps.workflows.models import Workflow

    run, node_id, iteration, run_id, owner, attempt, inputs = a.fields()
    me = WorkflowInstance.objects.values("depth", "workflow_id", "parent_id").get(pk=run.instance_id)
    if me["depth"] + 1 > settings.JETADMIN_MAX_SUBWORKFLOW_DEPTH:
        limit = settings.JETADMIN_MAX_SUBWORKFLOW_DEPTH
        return _failed(a, "subworkflow_depth", f"Sub-workflows nest at most {limit} deep.", False)
    try:
        target = uuid.UUID(spec.workflow)
    except ValueError:
        target = None
    workflow = (
        Workflow.objects.select_related("current_version").filter(pk=target, tenant_id=run.tenant_id).first()
        if target
        else None
    )
    if workflow is None or workflow.current_version is None:
        message = f"Workflow {spec.workflow!r} does not exist in this tenant (or has no graph)."
        return _failed(a, "subworkflow_not_found", message, False)
    ancestry, cursor = {me["workflow_id"]}, me["parent_id"]
    while cursor is not None:
        row = WorkflowInstance.objects.values("workflow_id", "parent_id").get(pk=cursor)
        ancestry.add(row["workflow_id"])
        cursor = row["parent_id"]
    if workflow.id in ancestry:
        message = f"Workflow {workflow.name!r} is already running in this chain of runs (no recursion)."
        return _failed(a, "subworkflow_recursion", message, False)
    version = workflow.current_version
    child_id = uuid.uuid4()

    def begin() -> str | None:
        fx = Effects()
        with transaction.atomic():
            parked = NodeRun.objects.filter(pk=run_id, status=RUNNING, lease_owner=owner).update(
                status=WAITING,
                available_at=None,
                state={"child": str(child_id)},
                input=inputs,
                lease_owner="",
                lease_expires_at=None,
                attempt=max(attempt - 1, 0),  # waiting is not an attempt; the run after the child is
            )
            if not parked:
                return None
            child = WorkflowInstance.objects.create(
                id=child_id,
                tenant_id=run.tenant_id,
                workflow=workflow,
                version=version,
                graph=version.graph,
                input=spec.input if spec.input is not None else {},
                trigger="subworkflow",
                parent_id=_uuid(run.instance_id),
                parent_node=node_id,
                parent_iteration=iteration,
                depth=me["depth"] + 1,
            )
            start(child, graphs.build(version.graph, trusted=True))
            fx.node_event(run.instance_id, node_id, iteration, WAITING, attempt=attempt, child=str(child_id))
            _mark_waiting(run.instance_id, fx)
            fx.write()
            fx.after_commit()
        return WAITING

    return _retry_db(begin)


# --- settling edges -----------------------------------------------------------------------------------
_SETTLE_SQL = """
UPDATE {table} SET
  status = CASE
    WHEN status = %s AND active + %s > 0 AND (remaining - %s = 0 OR wait_any) THEN %s
    WHEN status = %s AND remaining - %s = 0 AND active + %s = 0 THEN %s
    ELSE status END,
  deferred = CASE
    WHEN status = %s AND active + %s > 0 AND (remaining - %s = 0 OR wait_any) THEN %s
    ELSE deferred END,
  available_at = CASE
    WHEN status = %s AND active + %s > 0 AND (remaining - %s = 0 OR wait_any) THEN %s
    ELSE available_at END,
  remaining = remaining - %s,
  active = active + %s
 WHERE instance_id = %s AND iteration = %s AND node_id IN ({targets})
RETURNING node_id, status, remaining, active, wait_any
"""


def _settle(run: RunData, source: str, iteration: str, status: str, route: str, fx: Effects) -> None:
    """Settle ``source``'s out-edges in its scope; release or skip targets (skips propagate)."""
    g = run.graph
    queue: list[tuple[str, str, str]] = [(source, status, route)]
    touched: dict[str, str] = {}  # target -> its status after the last update that touched it
    # A single successor may be run by this same worker right after commit (see run_task): it is
    # released "deferred" with a short available_at, so if this worker dies first, the waker sends it.
    inline = getattr(_local, "inline", False) and len({e.target for e in g.settles(source)}) == 1
    now = timezone.now()
    inline_until = now + timedelta(seconds=INLINE_GRACE_S) if inline else None
    while queue:
        src, src_status, src_route = queue.pop(0)
        groups: dict[tuple[int, int], list[str]] = {}
        counts: dict[str, list[int]] = {}
        for edge in g.settles(src):
            dec_inc = counts.setdefault(edge.target, [0, 0])
            dec_inc[0] += 1
            dec_inc[1] += int(graphs.edge_active(edge, src_status, src_route))
        for target, (dec, inc) in sorted(counts.items()):
            groups.setdefault((dec, inc), []).append(target)
        for (dec, inc), targets in sorted(groups.items()):
            sql = _SETTLE_SQL.format(table=NodeRun._meta.db_table, targets=", ".join(["%s"] * len(targets)))
            defer = inline and src == source
            params = [
                PENDING,
                inc,
                dec,
                QUEUED,
                PENDING,
                dec,
                inc,
                SKIPPED,
                PENDING,
                inc,
                dec,
                defer,
                PENDING,
                inc,
                dec,
                inline_until if defer else requeue_at(now),
                dec,
                inc,
                _db_id(run.instance_id),
                iteration,
                *targets,
            ]
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            for node_id, new_status, remaining, active, wait_any in rows:
                touched[node_id] = new_status
                # Counters move atomically, so exactly one update sees the release: for a join in
                # "any" mode the first active arrival, otherwise the one that brings remaining to 0.
                if wait_any:
                    released = new_status == QUEUED and inc > 0 and active - inc == 0
                else:
                    released = new_status == QUEUED and remaining == 0
                if released:
                    fx.node_event(run.instance_id, node_id, iteration, QUEUED, attempt=0)
                    if inline and src == source:
                        fx.inline = (run.instance_id, node_id, iteration)
                    else:
                        fx.enqueue.append((run.instance_id, node_id, iteration))
                elif new_status == SKIPPED and remaining == 0 and active == 0:
                    fx.node_event(run.instance_id, node_id, iteration, SKIPPED)
                    queue.append((node_id, SKIPPED, ""))
    if not any(status in NODE_OPEN for status in touched.values()):
        fx.checks.add(iteration)  # nothing this settled is still open: the scope may be complete


# --- scope completion ---------------------------------------------------------------------------------
def _check_scopes(instance_id: str, fx: Effects) -> None:
    for key in sorted(fx.checks, key=len, reverse=True):
        complete_scope(instance_id, key)


def complete_scope(instance_id: str, iteration: str) -> None:
    """If nothing is open in this scope, finish it: the run (top level) or the loop iteration."""
    open_rows = NodeRun.objects.filter(instance_id=_uuid(instance_id), status__in=NODE_OPEN)
    if iteration:
        if open_rows.filter(iteration=iteration).exclude(node_type=LOOP_HEAD).exists():
            return
        _complete_iteration(run_data(instance_id), iteration)
    else:
        if open_rows.exists():
            return
        _finish_instance(instance_id)


def _finish_instance(instance_id: str) -> None:
    end = (
        NodeRun.objects.filter(
            instance_id=_uuid(instance_id), node_type="end", status=SUCCEEDED, iteration=""
        )
        .order_by("-ended_at", "-id")
        .values_list("output", flat=True)
        .first()
    )

    def finish() -> None:
        fx = Effects()
        with transaction.atomic():
            _end_instance(instance_id, SUCCEEDED, fx, output=end)
            fx.write()
            fx.after_commit()

    _retry_db(finish)


def _instance_to(
    instance_id: str,
    status: str,
    fx: Effects,
    *,
    started: bool = False,
    only: str | None = None,
    **fields: Any,
) -> bool:
    now = timezone.now()
    if status in (SUCCEEDED, FAILED, CANCELED):
        fields["ended_at"] = now
    qs = WorkflowInstance.objects.filter(
        pk=instance_id, status__in=[only] if only else instance_sources(status)
    )
    if started:
        qs = qs.filter(status="queued")
        fields["started_at"] = now
    changed = bool(qs.update(status=status, **fields))
    if changed:
        data = {k: v for k, v in fields.items() if k in ("output", "error")}
        fx.event(instance_id, f"instance.{status}", status=status, **data)
    return changed


def _end_instance(instance_id: str, status: str, fx: Effects, **fields: Any) -> None:
    """Move the run to a terminal status; on fail/cancel, cancel every node still open."""
    if not _instance_to(instance_id, status, fx, **fields):
        return
    _wake_parent(instance_id, status, fields, fx)
    if status in (FAILED, CANCELED):
        open_runs = list(
            NodeRun.objects.filter(instance_id=_uuid(instance_id), status__in=node_sources(CANCELED))
            .exclude(node_type=LOOP_HEAD)
            .values_list("node_id", "iteration")
        )
        NodeRun.objects.filter(instance_id=_uuid(instance_id), status__in=node_sources(CANCELED)).update(
            status=CANCELED, ended_at=timezone.now(), lease_owner="", lease_expires_at=None, deferred=False
        )
        for node_id, iteration in open_runs:
            fx.node_event(instance_id, node_id, iteration, CANCELED)
        children = WorkflowInstance.objects.filter(parent_id=_uuid(instance_id), status__in=INSTANCE_OPEN)
        for child in children.values_list("id", flat=True):
            _end_instance(
                str(child), CANCELED, fx, error={"code": "canceled", "message": "The parent run ended."}
            )


# Node types whose "waiting" means the run waits on something outside it (a person, a child run).
WAITS_OUTSIDE = ("approval", "dataCollection", "subWorkflow")


def _busy(instance_id: Any) -> Any:
    return NodeRun.objects.filter(instance_id=instance_id, status__in=(QUEUED, RUNNING)).exclude(
        node_type=LOOP_HEAD
    )


def _mark_waiting(instance_id: str, fx: Effects) -> None:
    """The run shows ``waiting`` when all it has left to do is wait for a person or a child run."""
    if not _busy(_uuid(instance_id)).exists():
        _instance_to(instance_id, WAITING, fx, only=RUNNING)


def instance_resumed(instance_id: str, fx: Effects) -> None:
    """A waiting run got what it waited for (input, a child's end): it is running again."""
    _instance_to(instance_id, RUNNING, fx, only=WAITING)


def _wake_parent(instance_id: str, status: str, fields: dict[str, Any], fx: Effects) -> None:
    """A child run ended: queue the parent's waiting subWorkflow node again with the child's result."""
    parent = run_data(instance_id).parent
    if parent is None:
        return
    parent_id, node_id, iteration = parent
    result = {"status": status, "output": fields.get("output"), "error": fields.get("error")}
    woken = NodeRun.objects.filter(
        instance_id=_uuid(parent_id), node_id=node_id, iteration=iteration, status=WAITING
    ).update(
        status=QUEUED,
        deferred=False,
        available_at=requeue_at(),
        state={"child": instance_id, "result": result},
    )
    if woken:
        fx.node_event(
            parent_id, node_id, iteration, QUEUED, attempt=0, reason="child_ended", child=instance_id
        )
        fx.enqueue.append((parent_id, node_id, iteration))
        _instance_to(parent_id, RUNNING, fx, only=WAITING)


def cancel(instance_id: str, *, reason: str = "canceled") -> bool:
    fx = Effects()
    with transaction.atomic():
        before = len(fx.events)
        _end_instance(str(instance_id), CANCELED, fx, error={"code": "canceled", "message": reason})
        changed = len(fx.events) > before
        fx.write()
        fx.after_commit()
    return changed


# --- loops --------------------------------------------------------------------------------------------
def _start_loop(a: Attempt, loop: nodes.StartLoop) -> str | None:
    run, node_id, iteration, run_id, owner, attempt, inputs = a.fields()
    count = len(loop.items)
    if count == 0:
        return _succeed(a, {"results": []}, "completed")
    fx = Effects()
    with transaction.atomic():
        saved = NodeRun.objects.filter(pk=run_id, status=RUNNING, lease_owner=owner).update(
            status=WAITING,
            remaining=count,
            input=inputs,
            state={"count": count},
            lease_owner="",
            lease_expires_at=None,
        )
        if not saved:
            return None
        fx.node_event(run.instance_id, node_id, iteration, WAITING, attempt=attempt, iterations=count)
        heads = [
            NodeRun(
                instance_id=_uuid(run.instance_id),
                node_id=node_id,
                node_type=LOOP_HEAD,
                iteration=iteration_key(iteration, node_id, index),
                index=index,
                status=RUNNING if index < loop.concurrency else PENDING,
                state={"item": item},
            )
            for index, item in enumerate(loop.items)
        ]
        insert_rows(heads)
        for head in heads[: loop.concurrency]:
            _open_iteration(run, node_id, head.iteration, fx)
        fx.write()
        fx.after_commit()
    _check_scopes(run.instance_id, fx)
    return WAITING


def _open_iteration(run: RunData, loop_id: str, key: str, fx: Effects) -> None:
    g = run.graph
    rows = []
    for node_id in g.members(loop_id):
        active = sum(1 for e in g.into.get(node_id, []) if g.is_loop_edge(e) and e.source == loop_id)
        remaining = g.in_count(node_id)
        wait_any = g.node_type(node_id) == "join" and g.inputs(node_id).get("mode") == "any"
        ready = graphs.readiness(remaining, active, wait_any) == "ready"
        rows.append(
            NodeRun(
                instance_id=_uuid(run.instance_id),
                node_id=node_id,
                node_type=g.node_type(node_id),
                iteration=key,
                remaining=remaining,
                active=active,
                wait_any=wait_any,
                status=QUEUED if ready else PENDING,
                available_at=requeue_at() if ready else None,
            )
        )
        if ready:
            fx.node_event(run.instance_id, node_id, key, QUEUED, attempt=0)
            fx.enqueue.append((run.instance_id, node_id, key))
    insert_rows(rows)
    if not rows:
        fx.checks.add(key)


def _iteration_result(run: RunData, loop_id: str, key: str) -> Any:
    sinks = run.graph.sinks(loop_id)
    rows = dict(
        NodeRun.objects.filter(
            instance_id=_uuid(run.instance_id), iteration=key, node_id__in=sinks, status=SUCCEEDED
        ).values_list("node_id", "output")
    )
    for node_id in reversed(sinks):
        if node_id in rows:
            return rows[node_id]
    return None


def _complete_iteration(run: RunData, key: str) -> None:
    loop_id = key.rsplit("/", 1)[-1].rsplit(":", 1)[0]
    outer = outer_of(key)
    result = _iteration_result(run, loop_id, key)
    fx = Effects()
    finished_loop = False

    def close() -> None:
        nonlocal finished_loop
        fx.events.clear()
        fx.enqueue.clear()
        fx.checks.clear()
        with transaction.atomic():
            done = NodeRun.objects.filter(
                instance_id=_uuid(run.instance_id),
                node_id=loop_id,
                iteration=key,
                node_type=LOOP_HEAD,
                status=RUNNING,
            ).update(status=SUCCEEDED, output=result, ended_at=timezone.now())
            if not done:
                return
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {NodeRun._meta.db_table} SET remaining = remaining - 1 "  # noqa: S608 - table name
                    "WHERE instance_id = %s AND node_id = %s AND iteration = %s AND status = %s "
                    "RETURNING id, remaining",
                    [_db_id(run.instance_id), loop_id, outer, WAITING],
                )
                row = cursor.fetchone()
            if row is None:
                return  # the loop was canceled or failed meanwhile
            if row[1] == 0:
                finished_loop = True
                return
            _open_next_iteration(run, loop_id, outer, fx)
            fx.write()
            fx.after_commit()

    _retry_db(close)
    if finished_loop:
        _finish_loop(run, loop_id, outer)
    else:
        _check_scopes(run.instance_id, fx)


def _open_next_iteration(run: RunData, loop_id: str, outer: str, fx: Effects) -> None:
    prefix = iteration_key(outer, loop_id, 0)[:-1]
    heads = NodeRun.objects.filter(
        instance_id=_uuid(run.instance_id),
        node_id=loop_id,
        node_type=LOOP_HEAD,
        status=PENDING,
        iteration__startswith=prefix,
    )
    for head_id, head_key in heads.order_by("index").values_list("id", "iteration")[:5]:
        if "/" in head_key[len(prefix) :]:
            continue  # a nested loop of the same id cannot exist (ids are unique), defensive only
        if NodeRun.objects.filter(pk=head_id, status=PENDING).update(status=RUNNING):
            _open_iteration(run, loop_id, head_key, fx)
            return


def _finish_loop(run: RunData, loop_id: str, outer: str) -> None:
    prefix = iteration_key(outer, loop_id, 0)[:-1]
    results = list(
        NodeRun.objects.filter(
            instance_id=_uuid(run.instance_id),
            node_id=loop_id,
            node_type=LOOP_HEAD,
            iteration__startswith=prefix,
        )
        .order_by("index")
        .values_list("output", flat=True)
    )
    row = (
        NodeRun.objects.filter(instance_id=_uuid(run.instance_id), node_id=loop_id, iteration=outer)
        .values_list("id", "attempt", "input")
        .first()
    )
    if row is None:
        return
    loop = Attempt(run, loop_id, outer, row[0], None, row[1], row[2])  # not lease-guarded: it was waiting
    _retry_db(lambda: _succeed(loop, {"results": results}, "completed", from_status=WAITING))


# --- the reconciler ---------------------------------------------------------------------------------
@dataclass
class Reconciled:
    """What one reconciler pass did (the management command prints it)."""

    expired: int = 0  # running nodes whose lease ran out: queued again (or failed: worker_lost)
    sent: int = 0  # queued nodes whose backoff ended or whose message is presumed lost: message sent
    woken: int = 0  # waiting nodes whose time came (delay, expiry): queued
    completed: int = 0  # scopes (runs, loop iterations, loops) left open by a worker that died
    dispatched: int = 0  # held nodes sent into the broker's free room, in fair shares

    def total(self) -> int:
        return self.expired + self.sent + self.woken + self.completed + self.dispatched


def reconcile(limit: int = 500) -> Reconciled:
    """Make the database's truth happen again. Run by beat (and the embedded ticker) every second.

    Celery messages are only hints: a message can be lost (Redis restarted empty), late (backlog) or
    duplicated (redelivery). Every step here is a conditional update, so reconcilers racing each other
    or a worker do nothing twice, and a duplicate message finds nothing to claim.
    """
    done = Reconciled()
    now = timezone.now()
    done.expired = _requeue_expired(now, limit)
    done.sent = _send_due(now, limit)
    due = list(  # waiting nodes whose time came (delay, expiry): one transaction each, journaled
        NodeRun.objects.filter(available_at__lte=now, status=WAITING)
        .exclude(node_type__in=("loop", LOOP_HEAD))
        .order_by("available_at")
        .values_list("id", "instance_id", "node_id", "iteration")[:limit]
    )
    for run_id, instance_id, node_id, iteration in due:
        done.woken += _wake_waiting(run_id, str(instance_id), node_id, iteration, now)
    done.completed = _complete_stuck_scopes(limit)
    done.dispatched = dispatch.refill()
    return done


def _wake_waiting(
    run_id: int, instance_id: str, node_id: str, iteration: str, now: dt.datetime, *, publish_it: bool = True
) -> bool:
    """A waiting node whose time came (delay, expiry) becomes queued, journaled; published unless the
    caller runs it itself. False when someone else woke it first."""
    fx = Effects()
    with transaction.atomic():
        changed = NodeRun.objects.filter(pk=run_id, status=WAITING, available_at__lte=now).update(
            status=QUEUED, deferred=False, available_at=requeue_at(now)
        )
        if changed:
            fx.node_event(instance_id, node_id, iteration, QUEUED, attempt=0, reason="due")
            _instance_to(instance_id, RUNNING, fx, only=WAITING)
            if publish_it:
                fx.enqueue.append((instance_id, node_id, iteration))
        fx.write()
        fx.after_commit()
    return bool(changed)


def _send_due(now: dt.datetime, limit: int) -> int:
    """Send the messages of queued nodes that are due — backoff over, or presumed lost — and of
    throttled nodes whose tenant has a free slot (at most that many), oldest first, as one batch."""
    free = fairness.free_slots(now)  # tenant id -> slots; absent = no throttled nodes to consider
    saturated = [tenant for tenant, slots in free.items() if slots <= 0]
    fx = Effects()
    with transaction.atomic():
        due = (
            NodeRun.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(available_at__lte=now, status=QUEUED)
            .exclude(lease_owner=fairness.THROTTLED, instance__tenant_id__in=saturated)
            .exclude(lease_owner=dispatch.HELD)  # dispatched in fair shares, never as "presumed lost"
            .order_by("available_at")
            .values_list("id", "instance_id", "node_id", "iteration", "lease_owner", "instance__tenant_id")
        )
        rows = []
        for row in due[:limit]:
            if row[4] == fairness.THROTTLED:
                if free.get(row[5], 1) <= 0:
                    continue
                free[row[5]] = free.get(row[5], 1) - 1
            rows.append(row)
        if not rows:
            return 0
        NodeRun.objects.filter(pk__in=[r[0] for r in rows], status=QUEUED).update(
            deferred=False, available_at=requeue_at(now), lease_owner=""
        )
        fx.enqueue = [(str(r[1]), r[2], r[3]) for r in rows]
        fx.after_commit()
    return len(rows)


def wake_due(limit: int = 500) -> int:
    """One reconciler pass; the number of nodes it sent or woke."""
    return reconcile(limit).total()


def _requeue_expired(now: dt.datetime, limit: int) -> int:
    expired = list(
        NodeRun.objects.filter(status=RUNNING, lease_expires_at__lt=now).values_list(
            "id", "instance_id", "node_id", "iteration", "lease_owner", "attempt", "state"
        )[:limit]
    )
    return sum(_requeue_one(now, *row) for row in expired)


def _requeue_one(
    now: dt.datetime,
    run_id: int,
    instance_id: Any,
    node_id: str,
    iteration: str,
    owner: str,
    attempt: int,
    state: Any,
) -> bool:
    """Queue a node whose lease ran out again, or fail it (``worker_lost``) after too many losses."""
    iid = str(instance_id)
    run = run_data(iid)
    policy = (run.graph.nodes.get(node_id) or {}).get("retry") or {}
    base = int(state.get("attempt_base", 0)) if isinstance(state, dict) else 0
    if attempt - base >= int(policy.get("max_attempts", 1)) + settings.JETADMIN_MAX_LEASE_LOSSES:
        error = {
            "code": "worker_lost",
            "message": f"The worker running {node_id!r} was lost {attempt - base} times; giving up.",
            "attempt": attempt,
        }
        return (
            _retry_db(lambda: _fail(Attempt(run, node_id, iteration, run_id, owner, attempt), error))
            is not None
        )

    def requeue() -> bool:
        fx = Effects()
        with transaction.atomic():
            changed = NodeRun.objects.filter(
                pk=run_id, status=RUNNING, lease_owner=owner, lease_expires_at__lt=now
            ).update(
                status=QUEUED,
                deferred=False,
                available_at=requeue_at(now),
                lease_owner="",
                lease_expires_at=None,
            )
            if changed:
                fx.node_event(iid, node_id, iteration, QUEUED, attempt=attempt, reason="lease_expired")
                fx.enqueue.append((iid, node_id, iteration))
            fx.write()
            fx.after_commit()
        return bool(changed)

    requeued = _retry_db(requeue)
    if requeued:
        logger.warning(
            "lease of %s[%s] in run %s (owner %s) expired: queued again", node_id, iteration, iid, owner
        )
    return requeued


def _complete_stuck_scopes(limit: int) -> int:
    """Finish what a worker that died right after a commit left undone: a run, iteration or loop whose
    nodes are all terminal but which was never closed. Each completion is itself conditional."""
    from django.db.models import Exists, OuterRef

    count = 0
    open_nodes = NodeRun.objects.filter(instance_id=OuterRef("pk"), status__in=NODE_OPEN)
    for iid in (
        WorkflowInstance.objects.filter(status__in=INSTANCE_OPEN)
        .exclude(Exists(open_nodes))
        .values_list("id", flat=True)[:limit]
    ):
        complete_scope(str(iid), "")
        count += 1
    body_open = NodeRun.objects.filter(
        instance_id=OuterRef("instance_id"), iteration=OuterRef("iteration"), status__in=NODE_OPEN
    ).exclude(node_type=LOOP_HEAD)
    heads = (
        NodeRun.objects.filter(node_type=LOOP_HEAD, status=RUNNING)
        .exclude(Exists(body_open))
        .values_list("instance_id", "iteration")[:limit]
    )
    for iid, key in heads:
        complete_scope(str(iid), key)
        count += 1
    waits = NodeRun.objects.filter(instance_id=OuterRef("pk"), status=WAITING, node_type__in=WAITS_OUTSIDE)
    busy = NodeRun.objects.filter(instance_id=OuterRef("pk"), status__in=(QUEUED, RUNNING)).exclude(
        node_type=LOOP_HEAD
    )
    idle = WorkflowInstance.objects.filter(status=RUNNING).filter(Exists(waits)).exclude(Exists(busy))
    for iid in idle.values_list("id", flat=True)[:limit]:  # its other branches ended: now it only waits
        fx = Effects()
        with transaction.atomic():
            _mark_waiting(str(iid), fx)
            fx.write()
            fx.after_commit()
    for iid, loop_id, outer in NodeRun.objects.filter(
        node_type="loop", status=WAITING, remaining=0
    ).values_list("instance_id", "node_id", "iteration")[:limit]:
        _finish_loop(run_data(str(iid)), loop_id, outer)
        count += 1
    return count


def terminal(instance_id: str) -> bool:
    status = WorkflowInstance.objects.filter(pk=instance_id).values_list("status", flat=True).first()
    return status is not None and status not in INSTANCE_OPEN


def now_utc() -> dt.datetime:
    return timezone.now()
