"""Fixtures of the fault tests: the process stack (always torn down) and the end-of-run figures."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.fault import harness


def requirements(*, postgres_server: bool = False) -> list[Any]:
    """Marks for a fault test module: the PostgreSQL pass only; its own servers need their binaries
    (``redis-server`` always, ``initdb``/``pg_ctl`` with ``postgres_server``).

    Under ``CI=true`` a missing binary is a failure, not a skip (the PostgreSQL pass is required).
    """
    missing = []
    if not harness.redis_server_binary():
        missing.append("redis-server")
    if postgres_server and not harness.pg_bin_dir():
        missing.append("PostgreSQL server binaries")
    ci = os.environ.get("CI") == "true"
    return [
        pytest.mark.django_db(transaction=True),
        pytest.mark.skipif(
            connection.vendor != "postgresql",
            reason="fault tests run in the PostgreSQL pass (DATABASE_URL=postgres://...)",
        ),
        pytest.mark.skipif(bool(missing) and not ci, reason=f"not installed: {', '.join(missing)}"),
    ]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[harness.Stack]:
    """Every process of the test; all killed at teardown, and nothing may be left behind."""
    s = harness.Stack(tmp_path)
    try:
        yield s
    finally:
        left = s.close()
    assert not left, f"processes left behind (killed now): {left}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not harness.SUMMARIES:
        return
    terminalreporter.section("fault tests: measured figures")
    for name, figures in harness.SUMMARIES:
        terminalreporter.write_line(f"{name}: {json.dumps(figures, default=str)}")


@pytest.fixture
def ledger_in_test_db() -> Iterator[harness.CursorFactory]:
    """The ledger table in pytest-django's test database (which the worker processes share).

    Request it before ``stack``: it is created first and dropped after every process has ended.
    """
    factory: harness.CursorFactory = connection.cursor
    harness.ledger_reset(factory)
    yield factory
    harness.ledger_drop(factory)
