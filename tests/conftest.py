"""Shared fixtures: users, tenants, authenticated API clients, and real server subprocesses.

Tests that start processes (``manage.py serve``, ``celery worker``) use
``@pytest.mark.django_db(transaction=True)`` and hand the process :func:`subprocess_env`, whose
``DATABASE_URL`` names pytest-django's test database, so both sides see the same rows.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from apps.tenancy import services
from apps.tenancy.models import Membership, Role, Tenant, User

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-staple-9"
ARTIFACTS = Path(os.environ.get("JETADMIN_TEST_ARTIFACTS", ROOT / "tests" / "artifacts"))


FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- the whole run's logs, as LOG_FORMAT=json writes them -------------------------------------------------
# Every record logged in this process during the run goes to RUN_LOG as a JSON line; at the end each line
# must parse, and none may contain a secret a test planted (the canary test registers its canary here).
RUN_LOG = ARTIFACTS / "test-run-logs.jsonl"
PLANTED_SECRETS: list[str] = []
_run_log_handler: Any = None


def pytest_sessionstart(session: pytest.Session) -> None:
    import logging

    from jetadmin import logs

    global _run_log_handler
    RUN_LOG.parent.mkdir(parents=True, exist_ok=True)
    _run_log_handler = logging.FileHandler(RUN_LOG, mode="w", encoding="utf-8")
    _run_log_handler.setFormatter(logs.JsonFormatter())
    _run_log_handler.addFilter(logs.ContextFilter())
    logging.getLogger().addHandler(_run_log_handler)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import json
    import logging

    if _run_log_handler is None:
        return
    logging.getLogger().removeHandler(_run_log_handler)
    _run_log_handler.close()
    problems, count = [], 0
    with RUN_LOG.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            count += 1
            try:
                entry = json.loads(line)
            except ValueError:
                problems.append(f"line {number} is not JSON: {line[:200]!r}")
                continue
            if not isinstance(entry, dict) or not {"ts", "level", "logger", "message"} <= set(entry):
                problems.append(f"line {number} lacks ts/level/logger/message: {line[:200]!r}")
            problems += [f"line {number} contains a planted secret" for s in PLANTED_SECRETS if s in line]
    if problems:
        print(f"\n{RUN_LOG}: {len(problems)} problem(s) in {count} log lines:\n" + "\n".join(problems[:20]))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _fast_and_clean(settings: Any) -> Iterator[None]:
    settings.PASSWORD_HASHERS = FAST_HASHERS  # PBKDF2's 1M rounds would dominate the suite's time
    cache.clear()  # throttle counters live in the cache
    yield


@pytest.fixture
def make_user(db: Any) -> Callable[..., User]:
    counter = {"n": 0}

    def make(username: str | None = None, **extra: Any) -> User:
        counter["n"] += 1
        name = username or f"user{counter['n']}_{os.urandom(3).hex()}"
        user = User.objects.create_user(
            username=name, email=f"{name}@example.com", password=PASSWORD, **extra
        )
        return user

    return make


@pytest.fixture
def make_tenant(make_user: Callable[..., User]) -> Callable[..., Tenant]:
    def make(name: str = "Acme", owner: User | None = None) -> Tenant:
        return services.tenant_create(actor=services.Actor(user=owner or make_user()), name=name)

    return make


def role(tenant: Tenant, name: str) -> Role:
    return Role.objects.get(tenant=tenant, name=name)


def add_member(tenant: Tenant, user: User, role_name: str) -> Membership:
    """Test setup shortcut (no audit row): ``user`` joins ``tenant`` with the named role."""
    return Membership.objects.create(tenant=tenant, user=user, role=role(tenant, role_name))


def token_client(user: User) -> APIClient:
    _, raw = services.auth_token_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    return client


def key_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


@pytest.fixture
def api() -> Callable[[User], APIClient]:
    return token_client


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is ``status`` in the contract's error shape; returns the error object."""
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message", "details"} <= set(error), error
    assert isinstance(error["message"], str) and error["message"]
    if code:
        assert error["code"] == code, error
    return error


# --- real processes -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that must see this test's database (transaction=True tests)."""
    settings_dict = connection.settings_dict
    env = dict(os.environ)
    if connection.vendor == "postgresql":
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        user = settings_dict.get("USER") or "postgres"
        env["DATABASE_URL"] = f"postgres://{user}@{host}:{port}/{settings_dict['NAME']}"
    else:
        name = str(settings_dict["NAME"])
        assert "memory" not in name, "subprocess tests need a file-backed SQLite test database"
        env["DATABASE_URL"] = f"sqlite:///{name}"
    env["JETADMIN_PASSWORD_HASHERS"] = ",".join(FAST_HASHERS)
    env.update(extra)
    return env


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start ``manage.py serve`` on a free port against the test database; killed at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(timeout: float = 30, *, embedded_dir: Path | None = None, **env: str) -> ServerProcess:
        """``embedded_dir``: a fresh embedded-default server (SQLite and data there, no Redis),
        as ``make run`` starts it, instead of one on the test database."""
        import urllib.request

        if embedded_dir is not None:
            base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
            full_env = base | {"JETADMIN_DATA_DIR": str(embedded_dir)} | env
        else:
            full_env = subprocess_env(**env)
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env=full_env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited early:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as r:  # noqa: S310 - local test server
                    if r.status == 200:
                        return ServerProcess(proc, url, log)
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"serve did not answer /healthz in {timeout}s:\n{log.read_text()}")

    yield start
    for proc in started:
        _stop(proc)
    for log in sorted(tmp_path.glob("serve-*.log")):  # shown by pytest only when the test fails
        print(f"--- {log.name} (last 4,000 characters) ---\n{log.read_text(errors='replace')[-4000:]}")


# --- the test PostgreSQL server -------------------------------------------------------------------------
TEST_PG_URL = "postgres://postgres@127.0.0.1:5432/jetadmin"  # scripts/test.sh's default


def pg_test_server() -> dict[str, Any]:
    """``{host, port, user[, password]}`` of the test PostgreSQL server named by ``JETADMIN_TEST_PG_URL``
    (as in scripts/test.sh; default ``postgres://postgres@127.0.0.1:5432/jetadmin``)."""
    url = urlsplit(os.environ.get("JETADMIN_TEST_PG_URL") or TEST_PG_URL)
    server: dict[str, Any] = {
        "host": url.hostname or "127.0.0.1",
        "port": url.port or 5432,
        "user": unquote(url.username or "postgres"),
    }
    if url.password:
        server["password"] = unquote(url.password)
    return server


def redis_test_server() -> tuple[str, int]:
    """(host, port) of the test Redis named by ``JETADMIN_TEST_REDIS_URL`` (as in scripts/test.sh;
    default ``redis://127.0.0.1:6379/9``). Tests choose their own database number on it."""
    url = urlsplit(os.environ.get("JETADMIN_TEST_REDIS_URL") or "redis://127.0.0.1:6379/9")
    return url.hostname or "127.0.0.1", url.port or 6379


def missing_service(message: str) -> NoReturn:
    """A server a test needs does not answer: a failure under ``CI=true``, a skip saying so otherwise."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def pg_test_server_or_skip() -> dict[str, Any]:
    """:func:`pg_test_server`, after checking that it answers (else :func:`missing_service`)."""
    server = pg_test_server()
    try:
        psycopg.connect(**server, dbname="postgres", connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        where = f"{server['host']}:{server['port']}"
        missing_service(f"no PostgreSQL at {where} ({exc}); set JETADMIN_TEST_PG_URL or start it")
    return server
