"""Property-based fuzzing of the tenancy API (``/api/v1/``) with schemathesis, in-process over WSGI.

The schema is the one the app serves (``/api/schema/``); every operation under ``/api/v1/`` gets
generated requests (schemathesis' examples, coverage and fuzzing phases, valid and invalid input),
sent through ``jetadmin.wsgi.application`` with ``Authorization: Token <token>`` of a user who owns
a tenant. Path ids are mostly replaced with real ones (that tenant, its roles, members, API keys and
invites) so the handlers behind the tenant check run; the rest stay random and must answer 404.

Contract checked on every response (CONTRACT "Conventions"):

* never a 5xx;
* every 4xx body is ``{"error": {"code", "message", "details"}}``.

The app runs in the test's thread on the test's database connection, so rows made by the fixtures
are visible without committing; each generated request runs in a savepoint that is rolled back, so
a ``DELETE`` of the tenant or of the token does not starve the cases after it. The figures (requests,
server errors, contract violations) are printed at the end of the module: run with ``-s``.

``JETADMIN_FUZZ_EXAMPLES`` (default 6) and ``JETADMIN_FUZZ_SEED`` (default fixed) tune the run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.cache import cache
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from apps.tenancy import services
from apps.tenancy.models import Membership, Tenant, User
from tests.conftest import add_member, role

SCHEMA_URL = "/api/schema/?format=json"
API_PREFIX = "/api/v1/"
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
class Stats:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    per_operation: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0
    violations: int = 0
    # distinct problems: (kind, operation, status, detail) -> an example request
    problems: dict[tuple[str, str, int, str], str] = field(default_factory=dict)
    last_exception: str = ""

    def problem(self, kind: str, case: schemathesis.Case, status: int, detail: str) -> None:
        key = (kind, case.operation.label, status, detail)
        self.problems.setdefault(key, describe_request(case))

    def summary(self) -> str:
        lines = [
            f"schemathesis: {self.requests} requests, {self.server_errors} server errors, "
            f"{self.violations} contract violations "
            f"({len(self.per_operation)} operations; statuses {dict(sorted(self.statuses.items()))})"
        ]
        for (kind, label, status, detail), request in self.problems.items():
            lines.append(f"  {kind}: {label} -> {status}: {detail}\n    request: {request}")
        return "\n".join(lines)


STATS = Stats()


@pytest.fixture(scope="module", autouse=True)
def _print_figures() -> Iterator[None]:
    yield
    print("\n" + STATS.summary())


def describe_request(case: schemathesis.Case) -> str:
    """The request as one line (method, path, query, body) for the report; secrets left out."""
    path = case.formatted_path
    query = f"?{case.query}" if case.query else ""
    body = "" if case.body is None or type(case.body).__name__ == "NotSet" else f" body={case.body!r}"
    extra = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    headers = f" headers={extra}" if extra else ""
    media = f" content-type={case.media_type}" if case.media_type and body else ""
    return f"{case.method.upper()} {path}{query}{body}{media}{headers}"[:600]


# --- the app under test --------------------------------------------------------------------------------
def _record_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
    STATS.last_exception = traceback.format_exc(limit=-3).strip().splitlines()[-1]


@pytest.fixture
def wsgi_app() -> Iterator[Any]:
    """``jetadmin.wsgi.application``, on the test's connection.

    Django closes "obsolete" connections when a request starts and finishes; inside the test's
    transaction that would throw the transaction away, so (like ``django.test.Client``) the handler
    is detached while the fuzzer drives the app. Unhandled exceptions are recorded for the report.
    """
    from jetadmin.wsgi import application

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    signals.got_request_exception.connect(_record_exception)
    try:
        yield application
    finally:
        signals.got_request_exception.disconnect(_record_exception)
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def tenancy_schema(wsgi_app: Any) -> schemathesis.BaseSchema:
    """The served OpenAPI schema, loaded at test time (no database access during collection)."""
    with contextlib.redirect_stderr(io.StringIO()):  # drf-spectacular's warnings about auth extensions
        schema = schemathesis.openapi.from_wsgi(SCHEMA_URL, wsgi_app, config=CONFIG)
    return schema


schema = schemathesis.pytest.from_fixture("tenancy_schema").include(path_regex=f"^{API_PREFIX}")


# --- data the requests point at ----------------------------------------------------------------------
@dataclass
class World:
    token: str
    tenant: Tenant
    foreign_tenant: Tenant
    ids: dict[str, list[str]]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    def point_at_real_objects(self, case: schemathesis.Case) -> None:
        """Swap generated path ids for real ones, keeping some random (they must be 404s).

        The choice hangs on the generated value, so a replayed example makes the same choice.
        """
        params = case.path_parameters or {}
        for name, generated in list(params.items()):
            choices = self.ids.get(name)
            if not choices:
                continue
            bucket = zlib.crc32(str(generated).encode("utf-8", "surrogatepass")) % (len(choices) + 1)
            if bucket < len(choices):
                params[name] = choices[bucket]


@pytest.fixture
def world(make_user: Callable[..., User], make_tenant: Callable[..., Tenant], settings: Any) -> World:
    # Every login attempt hashes a password; the default hasher would dominate the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    owner = make_user("fuzz-owner")
    tenant = make_tenant("Fuzz Co", owner=owner)
    foreign_tenant = make_tenant("Someone Else")
    actor = services.Actor(user=owner)
    editor: Membership = add_member(tenant, make_user("fuzz-editor"), "editor")
    owner_membership = Membership.objects.get(tenant=tenant, user=owner)
    custom = services.role_create(actor=actor, tenant=tenant, name="auditor", permissions=["audit.view"])
    key, _ = services.api_key_create(actor=actor, tenant=tenant, name="ci", role=role(tenant, "viewer"))
    invite = services.invite_create(actor=actor, tenant=tenant, email="new@example.com", role=custom)
    _, raw = services.auth_token_create(user=owner)
    real = str(tenant.id)
    ids = {
        # mostly the caller's tenant; sometimes another tenant (404) or the random value (404)
        "tenant_id": [real] * 6 + [str(foreign_tenant.id)],
        "member_id": [str(owner_membership.id), str(editor.id)],
        "role_id": [str(custom.id), str(role(tenant, "owner").id), str(role(tenant, "viewer").id)],
        "key_id": [str(key.id)] * 2,
        "invite_id": [str(invite.id)] * 2,
    }
    return World(token=raw, tenant=tenant, foreign_tenant=foreign_tenant, ids=ids)


# --- checks ---------------------------------------------------------------------------------------------
def error_shape(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every 4xx answers ``{"error": {"code", "message", "details"}}``."""
    if not 400 <= response.status_code < 500:
        return
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"{response.status_code} body is not JSON: {response.content[:200]!r}") from exc
    assert isinstance(body, dict) and set(body) == {"error"}, f"not the error shape: {body!r:.300}"
    error = body["error"]
    assert isinstance(error, dict) and {"code", "message", "details"} <= set(error), f"error object: {error!r:.300}"
    assert isinstance(error["code"], str) and error["code"], f"error.code: {error['code']!r}"
    assert isinstance(error["message"], str) and error["message"], f"error.message: {error['message']!r}"
    assert isinstance(error["details"], dict), f"error.details: {error['details']!r:.300}"


def _violation(response: schemathesis.Response) -> str:
    """The first error-shape problem of a 4xx response, or "" (for the report)."""
    try:
        error_shape(None, response, None)  # type: ignore[arg-type]
    except AssertionError as exc:
        return str(exc).splitlines()[0][:200]
    return ""


# --- the run --------------------------------------------------------------------------------------------
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
    cache.clear()  # the login throttle counts in the cache; keep it from turning every case into 429
    STATS.last_exception = ""
    with transaction.atomic():
        try:
            response = case.call(headers=world.headers)
        finally:
            transaction.set_rollback(True)  # each request leaves the fixtures as they were

    status = response.status_code
    STATS.requests += 1
    STATS.statuses[status] += 1
    STATS.per_operation[case.operation.label] += 1
    if status >= 500:
        STATS.server_errors += 1
        STATS.problem("server error", case, status, STATS.last_exception or response.text[:200])
    elif status >= 400 and (detail := _violation(response)):
        STATS.violations += 1
        STATS.problem("error shape", case, status, detail)

    case.validate_response(response, checks=[not_a_server_error, error_shape])
