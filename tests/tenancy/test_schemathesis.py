"""Property-based fuzzing of the whole API (``/api/v1/``) with schemathesis, in-process over WSGI.

The schema is the one the app serves (``/api/schema/``). Every operation under ``/api/v1/`` gets
generated requests (schemathesis' examples, fuzzing and coverage phases, valid and invalid input),
sent through ``jetadmin.wsgi.application`` with ``Authorization: Token <token>`` of a user who owns
a tenant. Path ids are mostly swapped for real ones (that tenant, its roles, members, API keys,
invites, datasources, saved queries, workflows, runs in each state an action needs — waiting at an
approval, failed, canceled, a running test run — schedules, webhooks and a webhook's token) so the
handlers behind the tenant check run; the rest stay random and must be 404s. Sync runs wait at most
``JETADMIN_MAX_SYNC_WAIT_S`` (0.2 s here): no worker consumes inside the test's transaction.
A second test sends hand-picked hostile input the generator rarely
produces (NUL bytes, broken or deeply nested JSON, odd content types, oversize bodies, malformed
``Authorization`` headers).

The contract checked on every response (CONTRACT "Conventions"):

* never a 5xx;
* every 4xx body is ``{"error": {"code", "message", "details"}}``.

The app runs in the test's thread on the test's database connection, so the fixtures' rows are
visible without committing. Each request runs in a savepoint that is rolled back afterwards, so a
``DELETE`` of the tenant or of the token does not starve the cases after it.

The figures (requests, server errors, contract violations, each distinct problem with a request
that triggers it) are printed when the module finishes: run pytest with ``-s``.
``JETADMIN_FUZZ_EXAMPLES`` (default 6 per operation and phase) and ``JETADMIN_FUZZ_SEED`` tune the run.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import traceback
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core import signals
from django.core.cache import cache
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from apps.tenancy import services
from apps.tenancy.models import Membership, Tenant, User
from tests.conftest import add_member, role

SCHEMA_URL = "/api/schema/?format=json"
API_PREFIX = "/api/v1/"
ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = int(os.environ.get("JETADMIN_FUZZ_EXAMPLES", "6"))
SEED = int(os.environ.get("JETADMIN_FUZZ_SEED", "20240611"))

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
    }
)


# --- figures for the report --------------------------------------------------------------------------
@dataclass
class Problem:
    """One root cause: a 5xx raised at one place, or one kind of malformed 4xx body."""

    message: str
    example: str  # a request that triggers it
    responses: int = 0
    operations: set[str] = field(default_factory=set)


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)  # by source: generated / hand-picked
    statuses: Counter[int] = field(default_factory=Counter)
    operations: set[str] = field(default_factory=set)
    by_operation: dict[str, Counter[int]] = field(default_factory=dict)  # label -> statuses (generated)
    handled: set[str] = field(default_factory=set)  # a 2xx or 409 with every path id a real object's
    server_errors: int = 0
    violations: int = 0
    problems: dict[tuple[str, int, str], Problem] = field(default_factory=dict)
    # the exception behind the current request's 5xx: (message, where it was raised)
    last_exception: tuple[str, str] | None = None

    def record(self, case: schemathesis.Case, response: schemathesis.Response, source: str, note: str) -> str:
        """Count one response; return a description of its contract problem, or ""."""
        status = response.status_code
        self.requests[source] += 1
        self.statuses[status] += 1
        self.operations.add(case.operation.label)
        if source == "generated":
            self.by_operation.setdefault(case.operation.label, Counter())[status] += 1
        if status >= 500:
            self.server_errors += 1
            kind = "server error"
            message, where = self.last_exception or (response.text[:200], "")
        elif status >= 400 and (message := error_shape_problem(response)):
            self.violations += 1
            kind, where = "error shape", message
        else:
            return ""
        request = describe_request(case, note)
        problem = self.problems.setdefault((kind, status, where), Problem(message=message, example=request))
        problem.responses += 1
        problem.operations.add(case.operation.label)
        return f"{kind} {status}: {message}\n    request: {request}"

    def summary(self) -> str:
        total = sum(self.requests.values())
        sources = " + ".join(f"{n} {source}" for source, n in sorted(self.requests.items()))
        lines = [
            f"schemathesis: {total} requests, {self.server_errors} server errors, "
            f"{self.violations} contract violations",
            f"  requests: {sources or 0}; {len(self.operations)} operations; "
            f"statuses {dict(sorted(self.statuses.items()))}",
        ]
        for (kind, status, where), problem in self.problems.items():
            at = f" [{where}]" if kind == "server error" and where else ""
            lines += [
                f"  - {kind} {status} x{problem.responses}: {problem.message}{at}",
                f"      in {len(problem.operations)} operations: {', '.join(sorted(problem.operations))}",
                f"      e.g. {problem.example}",
            ]
        return "\n".join(lines)


STATS = Stats()


@pytest.fixture(scope="module", autouse=True)
def _print_figures() -> Iterator[None]:
    yield
    print("\n" + STATS.summary())


def _is_set(value: Any) -> bool:
    return value is not None and type(value).__name__ != "NotSet"


def describe_request(case: schemathesis.Case, note: str = "") -> str:
    """The request on one line (method, path, query, body) for the report; the token left out."""
    query = f"?{urlencode(case.query, doseq=True)}" if case.query else ""
    body = f" body={case.body!r:.300}" if _is_set(case.body) else ""
    media = f" ({case.media_type})" if body and case.media_type else ""
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    extra = f" headers={headers!r:.200}" if headers else ""
    return f"{case.method.upper()} {case.formatted_path}{query}{body}{media}{extra}{note}"


# --- the app under test --------------------------------------------------------------------------------
def _frame(frame: traceback.FrameSummary) -> str:
    path = Path(frame.filename)
    return f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{frame.lineno}"


def _record_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
    """``got_request_exception``: remember what the 5xx was and where it was raised."""
    exc_type, exc, tb = sys.exc_info()
    frames = traceback.extract_tb(tb)
    ours = [f for f in frames if Path(f.filename).is_relative_to(ROOT) and "/.venv/" not in f.filename]
    where = [_frame(f) for f in frames[-1:]]
    if ours and ours[-1] is not frames[-1]:
        where.append(f"last project frame {_frame(ours[-1])}")
    name = exc_type.__name__ if exc_type else "exception"
    STATS.last_exception = (f"{name}: {exc}"[:240], ", ".join(where))


@pytest.fixture
def wsgi_app() -> Iterator[Any]:
    """``jetadmin.wsgi.application``, on the test's connection.

    Django closes "obsolete" connections when a request starts and finishes; inside the test's
    transaction that would throw the transaction away, so (like ``django.test.Client``) the handler
    is detached while the fuzzer drives the app. ``django.request``'s per-response log lines are
    muted; unhandled exceptions are recorded instead, and end up in the printed figures.
    """
    from jetadmin.wsgi import application

    request_logger = logging.getLogger("django.request")
    old_level = request_logger.level
    request_logger.setLevel(logging.CRITICAL)
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    signals.got_request_exception.connect(_record_exception)
    try:
        yield application
    finally:
        signals.got_request_exception.disconnect(_record_exception)
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
        request_logger.setLevel(old_level)


@pytest.fixture
def tenancy_schema(wsgi_app: Any) -> schemathesis.BaseSchema:
    """The served OpenAPI schema, loaded at test time (no database access during collection)."""
    with contextlib.redirect_stderr(io.StringIO()):  # drf-spectacular's generator warnings
        return schemathesis.openapi.from_wsgi(SCHEMA_URL, wsgi_app, config=CONFIG)


schema = schemathesis.pytest.from_fixture("tenancy_schema").include(path_regex=f"^{API_PREFIX}")


# --- data the requests point at ----------------------------------------------------------------------
@dataclass
class World:
    token: str
    tenant: Tenant
    ids: dict[str, list[str]]  # path parameter -> real ids to substitute

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    def point_at_real_objects(self, case: schemathesis.Case) -> None:
        """Swap generated path ids for real ones, keeping some random (they must be 404s).

        The choice hangs on the generated value, so a replayed example makes the same choice.
        """
        params = case.path_parameters
        for name, generated in list((params or {}).items()):
            choices = self.ids.get(name)
            if choices:
                bucket = zlib.crc32(repr(generated).encode("utf-8", "backslashreplace")) % (len(choices) + 1)
                if bucket < len(choices):
                    params[name] = choices[bucket]

    def names_real_objects(self, case: schemathesis.Case) -> bool:
        """Every id in the path (the tenant's included) is one of the seeded objects'."""
        params = case.path_parameters or {}
        return bool(params) and all(value in self.ids.get(name, ()) for name, value in params.items())

    def real_path_parameters(self, operation: schemathesis.APIOperation) -> dict[str, str]:
        # Ids of kinds the world has no object of stay random: they must be 404s.
        return {p.name: self.ids.get(p.name, [str(uuid.uuid4())])[0] for p in operation.path_parameters}


@pytest.fixture
def world(
    make_user: Callable[..., User], make_tenant: Callable[..., Tenant], settings: Any, tmp_path: Path
) -> World:
    # Every login attempt hashes a password; a slow hasher would dominate the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    owner = make_user("fuzz-owner")
    tenant = make_tenant("Fuzz Co", owner=owner)
    foreign_tenant = make_tenant("Someone Else")  # the owner is not a member: must be 404
    actor = services.Actor(user=owner)
    editor: Membership = add_member(tenant, make_user("fuzz-editor"), "editor")
    owner_membership = Membership.objects.get(tenant=tenant, user=owner)
    custom = services.role_create(actor=actor, tenant=tenant, name="auditor", permissions=["audit.view"])
    key, _ = services.api_key_create(actor=actor, tenant=tenant, name="ci", role=role(tenant, "viewer"))
    invite = services.invite_create(actor=actor, tenant=tenant, email="new@example.com", role=custom)
    _, raw = services.auth_token_create(user=owner)
    sources, queries = _datasources_and_queries(actor, tenant, settings, tmp_path)
    flows = _workflows_runs_and_triggers(actor, tenant, settings)
    ids = {
        # mostly the caller's tenant; sometimes the foreign one or the generated value (both 404)
        "tenant_id": [str(tenant.id)] * 6 + [str(foreign_tenant.id)],
        "member_id": [str(owner_membership.id), str(editor.id)],
        "role_id": [str(custom.id), str(role(tenant, "owner").id), str(role(tenant, "viewer").id)],
        "key_id": [str(key.id)] * 2,
        "invite_id": [str(invite.id)] * 2,
        "datasource_id": sources,
        "query_id": queries,
        **flows,
    }
    return World(token=raw, tenant=tenant, ids=ids)


def _datasources_and_queries(
    actor: services.Actor, tenant: Tenant, settings: Any, tmp_path: Path
) -> tuple[list[str], list[str]]:
    """A SQLite datasource with a saved query, and a REST one whose host the outbound guard refuses:
    fuzzed PATCHes, tests and runs reach real connectors without leaving the machine."""
    import sqlite3

    from apps.datasources import services as datasources
    from apps.queries import services as queries

    settings.JETADMIN_SQLITE_ROOT = str(tmp_path)
    settings.JETADMIN_OUTBOUND_ALLOW = []
    with sqlite3.connect(tmp_path / "fuzz.db") as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO t (name) VALUES (?)", [("a",), ("b",)])
    lite = datasources.datasource_create(
        actor=actor, tenant=tenant, name="fuzz sqlite", type="sqlite", config={"path": "fuzz.db"}
    )
    rest = datasources.datasource_create(
        actor=actor,
        tenant=tenant,
        name="fuzz rest",
        type="rest",
        config={"base_url": "http://127.0.0.1:1/api", "auth_type": "bearer", "token": "t"},
    )
    saved = queries.query_create(
        actor=actor,
        tenant=tenant,
        name="fuzz query",
        datasource=lite.id,
        body="SELECT id, name FROM t WHERE id > :min",
        params_schema={"type": "object", "properties": {"min": {"type": "integer"}}, "required": ["min"]},
    )
    rest_query = queries.query_create(
        actor=actor, tenant=tenant, name="fuzz rest query", datasource=rest.id, body={"path": "/x"}
    )
    return [str(lite.id), str(rest.id)], [str(saved.id), str(rest_query.id)]


def _workflows_runs_and_triggers(
    actor: services.Actor, tenant: Tenant, settings: Any
) -> dict[str, list[str]]:
    """Two workflows and runs in the states the run actions act on, driven in this thread (the test's
    transaction is never committed, so no worker sees them), plus a schedule, a webhook, widgets and
    dashboards."""
    from apps.triggers import services as triggers
    from apps.workflows import services as workflows
    from apps.workflows.engine import runtime

    settings.JETADMIN_MAX_SYNC_WAIT_S = 0.2
    settings.JETADMIN_INLINE_BUDGET_S = 0
    ask = workflows.workflow_create(
        actor=actor,
        tenant=tenant,
        name="fuzz approval",
        graph={
            "nodes": [
                {"id": "start", "type": "start"},
                {"id": "ask", "type": "approval", "inputs": {"message": "Ship {{input.item}}?"}},
                {"id": "end", "type": "end", "inputs": {"output": "{{ask}}"}},
            ],
            "edges": [
                {"from": "start", "to": "ask"},
                {"from": "ask", "to": "end", "sourceHandle": "approved"},
            ],
        },
    )
    broken = workflows.workflow_create(
        actor=actor,
        tenant=tenant,
        name="fuzz failing",
        graph={
            "nodes": [
                {"id": "start", "type": "start"},
                {"id": "end", "type": "end", "inputs": {"output": "{{input.missing}}"}},
            ],
            "edges": [{"from": "start", "to": "end"}],
        },
    )

    def run(workflow: Any, *node_ids: str) -> Any:
        instance = workflows.workflow_execute(actor=actor, workflow=workflow, input={"item": "crate"})
        for node_id in node_ids:
            runtime.execute(str(instance.id), node_id)
        instance.refresh_from_db()
        return instance

    waiting = run(ask, "start", "ask")
    failed = run(broken, "start", "end")
    canceled = workflows.instance_cancel(actor=actor, instance=run(ask, "start"))
    test_run = workflows.workflow_test(actor=actor, tenant=tenant, graph=ask.current_version.graph, input={})
    states = {"waiting": waiting.status, "failed": failed.status, "canceled": canceled.status}
    assert states == {"waiting": "waiting", "failed": "failed", "canceled": "canceled"}, states
    schedule = triggers.schedule_create(actor=actor, workflow=ask, cron_expr="0 9 * * *", timezone_name="UTC")
    webhook, token = triggers.webhook_create(actor=actor, workflow=ask, name="fuzz hook")
    from apps.widgets import services as widgets

    chart = widgets.widget_create(
        actor=actor,
        tenant=tenant,
        name="fuzz chart",
        type="bar",
        config={"data": "{{ctx.ask.rows}}", "x": "k", "y": "v"},
        workflow=ask.id,
        workflow_config={"input_params": {"item": "crate"}},
    )
    stat = widgets.widget_create(
        actor=actor, tenant=tenant, name="fuzz stat", type="stat", config={"value": 1}
    )
    from apps.dashboards import services as dashboards

    board = dashboards.dashboard_create(
        actor=actor,
        tenant=tenant,
        name="fuzz board",
        layout=[{"widget": str(chart.id), "x": 0, "y": 0, "w": 6, "h": 4}],
    )
    spare = dashboards.dashboard_create(actor=actor, tenant=tenant, name="fuzz spare")
    from apps.workflows import testcases

    case = testcases.test_case_create(
        actor=actor, workflow=ask, name="fuzz case", input={}, pinned={}, expect={"status": "waiting"}
    )
    return {
        "dashboard_id": [str(board.id), str(spare.id)],
        "widget_id": [str(chart.id), str(stat.id)],
        "workflow_id": [str(ask.id), str(broken.id)],
        "instance_id": [str(i.id) for i in (waiting, failed, canceled, test_run)],
        "schedule_id": [str(schedule.id)] * 2,
        "webhook_id": [str(webhook.id)] * 2,
        "token": [token] * 2,
        "version": ["1"] * 2,
        "case_id": [str(case.id)] * 2,
        "node_id": ["ask"] * 2,  # the waiting run's approval (cancelling it is a 200, then a 409)
    }


# --- checks ---------------------------------------------------------------------------------------------
def error_shape(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """Every 4xx answers ``{"error": {"code", "message", "details"}}``."""
    if not 400 <= response.status_code < 500:
        return
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"{response.status_code} body is not JSON: {response.content[:200]!r}") from exc
    assert isinstance(body, dict) and set(body) == {"error"}, f"not the error shape: {body!r:.300}"
    error = body["error"]
    assert isinstance(error, dict) and {"code", "message", "details"} <= set(error), f"error: {error!r:.300}"
    assert isinstance(error["code"], str) and error["code"], f"error.code: {error['code']!r}"
    assert isinstance(error["message"], str) and error["message"], f"error.message: {error['message']!r}"
    assert isinstance(error["details"], dict), f"error.details: {error['details']!r:.300}"


def error_shape_problem(response: schemathesis.Response) -> str:
    """What is wrong with a 4xx body's shape, or ""."""
    try:
        error_shape(None, response, None)  # the check reads only the response
    except AssertionError as exc:
        return str(exc).splitlines()[0][:200]
    return ""


def send(
    case: schemathesis.Case, world: World, *, source: str, note: str = "", **kwargs: Any
) -> tuple[schemathesis.Response, str]:
    """Send ``case`` as the tenant owner in a rolled-back savepoint; count it; return it and its problem."""
    headers = {**world.headers, **kwargs.pop("headers", {})}
    cache.clear()  # the login throttle counts in the cache; keep it from turning every case into a 429
    STATS.last_exception = None
    with transaction.atomic():
        try:
            response = case.call(headers=headers, **kwargs)
        finally:
            transaction.set_rollback(True)  # each request leaves the fixtures as they were
    return response, STATS.record(case, response, source, note)


# --- the generated run ----------------------------------------------------------------------------------
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    print_blob=False,
)
@pytest.mark.django_db
def test_tenancy_api(case: schemathesis.Case, world: World) -> None:
    world.point_at_real_objects(case)
    response, _ = send(case, world, source="generated")
    if world.names_real_objects(case) and (200 <= response.status_code < 300 or response.status_code == 409):
        STATS.handled.add(case.operation.label)
    case.validate_response(response, checks=[not_a_server_error, error_shape])


# Operations on one object whose generated requests never make a valid body, so no 2xx is expected.
NO_SUCCESS_EXPECTED = {
    # a valid body names one of the tenant's roles; the generator never finds one
    "PATCH /api/v1/tenants/{tenant_id}/members/{member_id}/",
    # a valid body names the waiting node ("ask"): other node ids answer 404 from the handler
    "POST /api/v1/tenants/{tenant_id}/workflows/instances/{instance_id}/input/",
    # a valid body holds a five-field cron expression; generated strings never are one
    "POST /api/v1/tenants/{tenant_id}/workflows/{workflow_id}/schedules/",
}


def test_every_operation_on_an_object_reached_its_handler() -> None:
    """Every operation whose path names an object (an id besides the tenant's) answered the generated
    run above at least once with a success or a 409 (a state conflict) to a request whose path ids
    were all seeded objects': only its handler, working on that object, can say either. (A random
    id answers 404; a generated "id" such as ``instances`` can route to another view and answer 200,
    which is why the ids themselves are checked.)"""
    if not STATS.requests["generated"]:
        pytest.skip("the generated run was deselected")
    on_objects = {label for label in STATS.by_operation if label.replace("{tenant_id}", "").count("{")}
    missed = {
        label: dict(STATS.by_operation[label])
        for label in sorted(on_objects - NO_SUCCESS_EXPECTED - STATS.handled)
    }
    assert len(on_objects) >= 30, sorted(on_objects)
    assert not missed, f"{len(missed)} operations never reached their handler: {missed}"


# --- hand-picked hostile input ----------------------------------------------------------------------------
HOSTILE_QUERY_VALUES = ["\x00", "a\x00b", "x" * 3000, "' OR '1'='1", "%", "\u202e\U0001f642", "-1", "1e999"]
JSON = "application/json"
HOSTILE_BODIES: list[tuple[str, bytes]] = [
    (JSON, b""),
    (JSON, b"{"),
    (JSON, b"null"),
    (JSON, b"[]"),
    (JSON, b'"x"'),
    (JSON, b"1e999"),
    (JSON, b"\xff\xfe\x00"),
    (JSON, b'{"name": "a\\u0000b", "role": "\\ud800", "user": {}, "email": [], "permissions": "x"}'),
    (JSON, b"[" * 50_000),
    (JSON, b'{"a":' * 50_000),
    ("application/json; charset=latin-1", b'{"name": "\xe9"}'),
    ("text/plain", b'{"name": "x"}'),
    ("application/x-www-form-urlencoded", b"name=x&role=viewer"),
    (
        "multipart/form-data; boundary=zz",
        b'--zz\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--zz--',
    ),
]
HOSTILE_AUTH = ["Token", "Token a b", "Token \xff\xfe", "Token " + "x" * 5000, "Api-Key nope", "Bearer x", ""]


@pytest.mark.django_db
def test_tenancy_api_hand_picked_input(tenancy_schema: schemathesis.BaseSchema, world: World) -> None:
    problems: list[str] = []

    def probe(case: schemathesis.Case, note: str = "", **kwargs: Any) -> None:
        _, problem = send(case, world, source="hand-picked", note=note, **kwargs)
        if problem:
            problems.append(problem)

    operations = []
    for result in tenancy_schema.get_all_operations():
        assert isinstance(result, Ok), f"invalid operation in the served schema: {result.err()}"
        if result.ok().path.startswith(API_PREFIX):
            operations.append(result.ok())
    assert operations, "no /api/v1/ operations in the served schema"
    oversize = b'{"name": "' + b"x" * (django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1) + b'"}'
    for operation in operations:
        path_parameters = world.real_path_parameters(operation)
        for parameter in operation.query:
            for value in HOSTILE_QUERY_VALUES:
                probe(operation.Case(path_parameters=path_parameters, query={parameter.name: value}))
        if not operation.body:
            continue
        for media_type, raw in [*HOSTILE_BODIES, (JSON, oversize)]:
            case = operation.Case(path_parameters=path_parameters)
            note = f" raw body {raw[:60]!r}{'...' if len(raw) > 60 else ''} ({media_type})"
            probe(case, note, data=raw, headers={"Content-Type": media_type})
    for label in ("GET /api/v1/me/", "GET /api/v1/tenants/{tenant_id}/", "DELETE /api/v1/auth/token/"):
        operation = next(op for op in operations if op.label == label)
        for value in HOSTILE_AUTH:
            case = operation.Case(path_parameters=world.real_path_parameters(operation))
            probe(case, f" Authorization={value[:40]!r}", headers={"Authorization": value})

    assert not problems, f"{len(problems)} contract problems:\n" + "\n".join(problems)
