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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar, cast

from django.conf import settings
from django.db import OperationalError, connection, models, transaction
from django.utils import timezone

from apps.workflows import blobs
from apps.workflows.engine import cache, dispatch, events, fairness, leases, templates
from apps.workflows.engine import graph as graphs
from apps.workflows.engine.lru import LRU
from apps.workflows.engine.states import (
    FAILED,
    INSTANCE_OPEN,
    PENDING,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    WAITING,
)
from apps.workflows.models import InstanceEvent, NodeRun, Trigger, WorkflowInstance
from apps.workflows.nodes import base as nodes
from jetadmin import logs, metrics
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
    created_at: dt.datetime | None = None  # for the run-duration metric (apps/workflows/observe.py)


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
    only=("tenant", "version", "input", "parent", "parent_node", "parent_iteration", "trigger", "created_at"),
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
    data = RunData(instance_id, str(row.tenant_id), graph, row.input, parent, row.trigger, row.created_at)
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
    failed: list[str] = field(
        default_factory=list
    )  # runs that failed: their alerts (apps/workflows/alerts.py)
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
        inline_claim, failed = self.inline_claim, list(self.failed)

        def send() -> None:
            if failed:
                send_alerts(failed)
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


def send_alerts(instance_ids: list[str]) -> None:
    """Failed runs: their failure alerts, checked and started by a task (never inline in the engine)."""
    from apps.workflows.tasks import alert_failure

    for instance_id in instance_ids:
        try:
            alert_failure.delay(instance_id)
        except Exception:  # the broker is down: the run's failure stands; the alert is lost (logged)
            logger.exception("could not send the failure alert of run %s", instance_id)


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
    cache_key: str = ""  # set when the node has cache_ttl_s: where its result is stored

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


def _claim_statement(
    run: RunData, node_id: str, iteration: str, now: dt.datetime, starts_run: bool
) -> tuple[str, list[Any], list[Any]]:
    """The claim's SQL, its fairness parameters and (on PostgreSQL, where the claim also journals) the
    journal's parameters, in the order they appear."""
    max_running, _ = fairness.limits(run.tenant_id)
    fair: list[Any] = []
    fair_sql = ""
    if max_running > 0:
        fair_sql = _FAIR_SQL.format(table=NodeRun._meta.db_table, instances=WorkflowInstance._meta.db_table)
        fair = [_db_uuid(run.tenant_id), max_running]
    sql = _CLAIM_SQL.format(table=NodeRun._meta.db_table, fair=fair_sql)
    if connection.vendor != "postgresql":
        return sql, fair, []
    instance = _db_id(run.instance_id)
    extra = [instance, node_id, iteration, now]
    if starts_run:  # parameters in the order they appear: the run's update, then the journal rows
        extra = [now, instance, *extra, instance, now]
    sql = _CLAIM_AND_JOURNAL_SQL.format(
        claim=sql.strip(),
        events=InstanceEvent._meta.db_table,
        starts=_CLAIM_STARTS_RUN_SQL.format(instances=WorkflowInstance._meta.db_table) if starts_run else "",
        started=_CLAIM_STARTS_RUN_JOURNAL_SQL if starts_run else "",
    )
    return sql, fair, extra


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
    now = timezone.now()
    sql, fair, extra = _claim_statement(run, node_id, iteration, now, starts_run)
    lease_until = now + timedelta(seconds=lease_s)
    params = [RUNNING, owner, lease_until, now, _db_id(run.instance_id), node_id, iteration, QUEUED, False]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, continuation, *fair, *extra])
        row = cursor.fetchone()
    if row is None:
        if fair:
            _throttle(run, node_id, iteration, now)
        return None
    state = _json(row[2])
    if connection.vendor != "postgresql":
        return int(row[0]), int(row[1]), state, None
    return int(row[0]), int(row[1]), state, _claim_events(run.instance_id, node_id, iteration, now, row)


def _claim_events(
    instance_id: str, node_id: str, iteration: str, now: dt.datetime, row: Any
) -> list[InstanceEvent]:
    """The journal rows the PostgreSQL claim wrote (ids and numbers from its RETURNING), to broadcast."""
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
    return written


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
            return blobs.resolve(data), upstream
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
    return blobs.resolve(data), upstream


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
    if node_id not in run.graph.nodes:
        logger.error("run %s has no node %r", instance_id, node_id)
        return None
    node = run.graph.nodes[node_id]
    node_type = nodes.get(run.graph.node_type(node_id))
    # A claim journals, and the journal's numbering locks the run's counter row until commit: two
    # writers of one run can deadlock on it (PostgreSQL aborts one). The claim is conditional, so
    # the aborted one is simply tried again.
    begun = claimed or _retry_db(lambda: _claim_and_journal(run, node_id, iteration, owner, continuation))
    if begun is None:
        return None  # already claimed, finished, canceled, or not due: the message was a hint
    run_id, attempt, state = begun
    a = Attempt(run, node_id, iteration, run_id, owner, attempt)
    pinned = node.get("pinned") if run.trigger == Trigger.TEST else None
    if isinstance(pinned, Mapping) and "output" in pinned:  # a test run takes the pinned output
        output = pinned["output"]
        return _retry_db(lambda: _succeed(a, output, _pinned_route(node_type, run.graph, node_id, pinned)))
    with logs.bind(tenant=run.tenant_id, run=instance_id, node=node_id, iteration=iteration, attempt=attempt):
        began = time.monotonic()
        ran = _run_handler(a, node, node_type, state)
        metrics.NODE_SECONDS.labels(node_type.type).observe(time.monotonic() - began)
        if not isinstance(ran, _Ran):
            return ran  # it failed, or its result came from the cache
        return _handle_result(a, node, node_type, ran.inputs, ran.result)


def _claim_and_journal(
    run: RunData, node_id: str, iteration: str, owner: str, continuation: bool
) -> tuple[int, int, Any] | None:
    """Claim the node and journal it (and the run's start for a root): (row id, attempt, state)."""
    instance_id = run.instance_id
    root = run.graph.in_count(node_id) == 0 and run.graph.scope[node_id] is None
    # PostgreSQL claims and journals in one statement; elsewhere the claim and its journal rows share one
    # transaction (one commit, not one per statement).
    atomic = transaction.atomic() if connection.vendor != "postgresql" else contextlib.nullcontext()
    with atomic:
        claim = _claim(
            run, node_id, iteration, owner, leases.lease_seconds(), continuation=continuation, starts_run=root
        )
        if claim is None:
            return None
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


@dataclass
class _Ran:
    inputs: Any
    result: Any


def _run_handler(
    a: Attempt, node: dict[str, Any], node_type: nodes.NodeType, state: Any
) -> _Ran | str | None:
    """Resolve the inputs and run the type's handler under the node's timeout; what it returned, or the
    status the node ended in (failed, or succeeded from the cache)."""
    run, node_id, iteration, instance_id = a.run, a.node_id, a.iteration, a.run.instance_id
    timeout = _node_timeout(node)
    deadline = time.monotonic() + timeout
    try:
        data, upstream = _context(run, node_id, iteration, node_type)
        inputs = _resolved_inputs(run.graph, node_id, data)
        # what the row keeps: resolved inputs can be as large as an upstream output (a blob then)
        a.inputs = blobs.offload(
            tenant_id=run.tenant_id,
            instance_id=instance_id,
            node_id=node_id,
            iteration=iteration,
            value=inputs,
        )
        problems = graphs.validate_inputs(node_type, inputs, node_id=node_id)
        if problems:
            message = "; ".join(f"{p.field}: {p.message}" for p in problems[:3])
            raise nodes.NodeError(message, code="invalid_input", retryable=False)
        cached = _cached(a, node, node_type, inputs)
        if cached is not None:
            return cached
        key = f"{instance_id}:{node_id}:{iteration}" if iteration else f"{instance_id}:{node_id}"
        ctx = nodes.NodeContext(
            instance_id=instance_id,
            tenant_id=run.tenant_id,
            node_id=node_id,
            iteration=iteration,
            attempt=a.attempt,
            idempotency_key=key,
            deadline=deadline,
            data=nodes.freeze(data),
            state=state,
            upstream=tuple(upstream),
            now=timezone.now(),
        )
        with leases.renewer.hold(a.run_id, a.owner or ""), _alarm(timeout):
            result = node_type.run(inputs, ctx)
        if time.monotonic() > deadline:
            raise NodeTimeout
    except NodeTimeout:
        return _failed(a, "timeout", f"Node {node_id!r} ran past its timeout of {timeout:g} s.", True)
    except templates.TemplateError as exc:
        return _failed(a, "template_error", str(exc), False)
    except nodes.NodeError as exc:
        return _failed(a, exc.code, exc.message, exc.retryable and node_type.retryable)
    except Exception as exc:
        logger.exception("node %s of run %s raised", node_id, instance_id)
        return _failed(a, "node_crashed", f"{type(exc).__name__}: {exc}"[:2000], True)
    return _Ran(inputs, result)


def _handle_result(
    a: Attempt, node: dict[str, Any], node_type: nodes.NodeType, inputs: Any, result: Any
) -> str | None:
    """What the handler returned: wait, start a loop or a child run, or succeed with its output."""
    run, node_id, iteration = a.run, a.node_id, a.iteration
    if isinstance(result, nodes.Wait):
        return _retry_db(lambda: _park(a, result))
    if isinstance(result, nodes.StartLoop):
        return _retry_db(lambda: _start_loop(a, result))
    if isinstance(result, nodes.StartChild):
        return _start_child(a, result)
    result = nodes.thaw(result)
    try:
        text = json.dumps(result)
    except (TypeError, ValueError):
        return _failed(a, "bad_output", f"Node {node_id!r} returned a value that is not JSON.", False)
    route = node_type.route(result, inputs)
    saved = blobs.offload(  # a large output goes to the blob store; its row keeps a reference and a preview
        tenant_id=run.tenant_id,
        instance_id=run.instance_id,
        node_id=node_id,
        iteration=iteration,
        value=result,
        text=text,
    )
    status = _retry_db(lambda: _succeed(a, saved, route))
    if status == SUCCEEDED and node.get("cache_ttl_s") and saved is result:
        cache.store(run.tenant_id, a.cache_key, node_type.type, result, run.instance_id, node["cache_ttl_s"])
    if status == SUCCEEDED and node_type.type in ("end", "join"):
        from apps.workflows.engine import control

        control.after_success(run, node_id, iteration, inputs, result)
    return status


def _cached(a: Attempt, node: dict[str, Any], node_type: nodes.NodeType, inputs: Any) -> str | None:
    """A node with ``cache_ttl_s`` whose result is cached: succeed with it (journaled as a cache hit)
    without running; else None (and the key to store under is kept on the attempt)."""
    if not node.get("cache_ttl_s") or not node_type.cacheable:
        return None
    a.cache_key = cache.key(a.run.tenant_id, node_type, inputs)
    hit = cache.lookup(a.run.tenant_id, a.cache_key)
    if hit is None:
        return None
    fx = Effects()
    fx.event(
        a.run.instance_id,
        "node.cache_hit",
        a.node_id,
        a.iteration,
        cached_at=hit.created_at.isoformat(),
        from_instance=str(hit.instance_id) if hit.instance_id else None,
    )
    fx.write()
    output = hit.output
    return _retry_db(lambda: _succeed(a, output, node_type.route(output, inputs)))


def _resolved_inputs(g: graphs.Graph, node_id: str, data: dict[str, Any]) -> Any:
    """The node's inputs with templates resolved; a while loop's condition stays as written (it is
    evaluated before each iteration, with that iteration's ``loop.index`` and ``loop.last``)."""
    raw = g.inputs(node_id)
    if g.node_type(node_id) == "loop" and "while" in raw:
        rest = templates.resolve({k: v for k, v in raw.items() if k != "while"}, data, node_id=node_id)
        return {**rest, "while": raw["while"]}
    return templates.resolve(raw, data, node_id=node_id)


def _pinned_route(node_type: nodes.NodeType, g: graphs.Graph, node_id: str, pinned: Mapping[str, Any]) -> str:
    """The route of a pinned node: the pin's own, else what the type makes of the pinned output."""
    inputs = g.inputs(node_id)
    handles = node_type.handles_for(inputs)
    if pinned.get("route") in handles:
        return str(pinned["route"])
    try:
        route = node_type.route(pinned["output"], inputs)
    except (KeyError, TypeError, ValueError, IndexError):
        route = None
    if route in handles:
        return str(route)
    return node_type.default_handle(inputs) or handles[0]


def terminal(instance_id: str) -> bool:
    status = WorkflowInstance.objects.filter(pk=instance_id).values_list("status", flat=True).first()
    return status is not None and status not in INSTANCE_OPEN


def now_utc() -> dt.datetime:
    return timezone.now()


# The engine's other parts (they import this module, so they come last), re-exported: the code above and
# the rest of jetadmin call them through this module.
from apps.workflows.engine import loops, outcomes, reconciler, settling  # noqa: E402

_fail = outcomes._fail
_failed = outcomes._failed
_finish_params = outcomes._finish_params
_finished = outcomes._finished
_park = outcomes._park
_save_result = outcomes._save_result
_start_child = outcomes._start_child
_succeed = outcomes._succeed
_succeed_in_one_statement = outcomes._succeed_in_one_statement
_succeed_sink_in_one_statement = outcomes._succeed_sink_in_one_statement
_take_early_input = outcomes._take_early_input
_write_before_joins = outcomes._write_before_joins
_busy = settling._busy
_check_scopes = settling._check_scopes
_end_instance = settling._end_instance
cancel_rows = settling.cancel_rows
_finish_instance = settling._finish_instance
_instance_to = settling._instance_to
_mark_waiting = settling._mark_waiting
_settle = settling._settle
_wake_parent = settling._wake_parent
cancel = settling.cancel
complete_scope = settling.complete_scope
instance_resumed = settling.instance_resumed
_complete_iteration = loops._complete_iteration
_finish_loop = loops._finish_loop
_iteration_result = loops._iteration_result
_open_iteration = loops._open_iteration
_open_next_iteration = loops._open_next_iteration
_start_loop = loops._start_loop
_while_holds = loops._while_holds
_while_next = loops._while_next
Reconciled = reconciler.Reconciled
_complete_stuck_scopes = reconciler._complete_stuck_scopes
_requeue_expired = reconciler._requeue_expired
_requeue_one = reconciler._requeue_one
_send_due = reconciler._send_due
_wake_waiting = reconciler._wake_waiting
reconcile = reconciler.reconcile
wake_due = reconciler.wake_due
