"""The MySQL / MariaDB connector against the real server on 127.0.0.1:3306: typed connect errors,
named parameters bound by the server, row caps, server-side timeouts, server-enforced read-only, and
an injection corpus that never writes. Skipped when no server answers, except under ``CI=true``."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import mysql.connector
import pytest

from apps.datasources.connectors import base
from apps.datasources.connectors.mysql import MySQLConnector
from tests.conftest import missing_service
from tests.datasources.test_connectors import INJECTIONS

pytestmark = pytest.mark.usefixtures("local_servers")

MY = {"host": "127.0.0.1", "port": 3306, "user": "root"}
START_HINT = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"


def admin_connection(database: str | None = None) -> Any:
    return mysql.connector.connect(
        **MY, password="", database=database, connection_timeout=3, use_pure=True, autocommit=True
    )


def sql(database: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement as the admin, outside the connector; its rows (if any)."""
    conn = admin_connection(database)
    try:
        cursor = conn.cursor()
        cursor.execute(statement, params)
        return list(cursor.fetchall()) if cursor.with_rows else []
    finally:
        conn.close()


@pytest.fixture(scope="module")
def my_database() -> Iterator[str]:
    try:
        admin = admin_connection()
    except mysql.connector.Error as exc:
        missing_service(f"no MySQL/MariaDB at 127.0.0.1:3306 ({exc}); start it with `{START_HINT}`")
    name = f"jetadmin_mysql_{uuid.uuid4().hex[:8]}"
    cursor = admin.cursor()
    try:
        cursor.execute(f"CREATE DATABASE `{name}`")
        cursor.execute(f"USE `{name}`")
        cursor.execute(
            "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer VARCHAR(20),"
            " total DECIMAL(10, 2), created DATETIME)"
        )
        cursor.executemany(
            "INSERT INTO orders (customer, total, created) VALUES (%s, %s, %s)",
            [(f"c{i % 5}", Decimal(i), datetime.datetime(2024, 1, 1 + i % 28, 12)) for i in range(50)],
        )
        cursor.execute("CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT)")
        yield name
    finally:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def count(database: str) -> int:
    return int(sql(database, "SELECT COUNT(*) FROM orders")[0][0])


def tables(database: str) -> set[str]:
    return {str(row[0]) for row in sql(database, "SHOW TABLES")}


def connector(database: str, **extra: Any) -> MySQLConnector:
    return MySQLConnector({**MY, "database": database, **extra})


# --- connecting --------------------------------------------------------------------------------------
def test_mysql_connects_and_describes_itself(my_database: str) -> None:
    connector(my_database).health_check()
    assert MySQLConnector.type == "mysql" and MySQLConnector.name == "MySQL / MariaDB"
    assert MySQLConnector.secret_fields() == ["password"]
    assert MySQLConnector.check_config({**MY, "database": "shop", "password": "x", "read_only": True})
    with pytest.raises(base.ConfigInvalid) as info:
        MySQLConnector.check_config({"host": "db", "port": "x", "sslmode": "require"})
    assert {"database", "user", "port", "config"} <= set(info.value.errors)


def test_mysql_bad_password_is_auth_failed_and_never_echoed(my_database: str) -> None:
    secret = "hunter2-Sup3r-s3cret"
    with pytest.raises(base.AuthFailed, match=r"refused user 'root': check the user and password") as info:
        connector(my_database, password=secret).health_check()
    assert secret not in str(info.value) and secret not in info.value.message
    with pytest.raises(base.AuthFailed):
        connector(my_database, user="nobody_here_xyz", password=secret).execute("SELECT 1")


def test_mysql_unreachable_host_port_and_database(my_database: str) -> None:
    started = time.monotonic()
    with pytest.raises(base.Unreachable, match=r"Cannot reach MySQL at 127\.0\.0\.1:1: .*refused"):
        connector(my_database, port=1).health_check()
    with pytest.raises(base.Unreachable, match=r"Cannot resolve host .no-such-host\.invalid."):
        connector(my_database, host="no-such-host.invalid").health_check()
    assert time.monotonic() - started < 5
    with pytest.raises(
        base.Unreachable, match=r"MySQL at 127\.0\.0\.1:3306 has no database 'no_such_db_xyz'"
    ):
        connector("no_such_db_xyz").health_check()


def test_mysql_ssl_modes(my_database: str) -> None:
    connector(my_database, ssl_mode="disabled").health_check()
    connector(my_database, ssl_mode="preferred").health_check()
    if sql(my_database, "SHOW VARIABLES LIKE 'have_ssl'")[0][1] == "YES":
        pytest.skip("this server offers TLS; the refusal of a plaintext server is not testable here")
    with pytest.raises(base.Unreachable, match="did not offer TLS"):
        connector(my_database, ssl_mode="required").health_check()
    with pytest.raises(base.Unreachable, match="TLS"):
        connector(my_database, ssl_mode="verify_identity").health_check()


# --- queries -----------------------------------------------------------------------------------------
def test_mysql_params_in_both_styles(my_database: str) -> None:
    c = connector(my_database)
    for body in (
        "SELECT customer, total, created FROM orders WHERE customer = :who ORDER BY id",
        "SELECT customer, total, created FROM orders WHERE customer = %(who)s ORDER BY id",
    ):
        r = c.execute(body, {"who": "c2"})
        assert r.columns == ["customer", "total", "created"] and (r.row_count, r.truncated) == (10, False)
        assert r.rows[0] == ["c2", Decimal("2.00"), datetime.datetime(2024, 1, 3, 12)]
    mixed = c.execute(
        "SELECT COUNT(*) FROM orders WHERE customer = :who AND total >= %(low)s AND customer <> ':who'"
        " AND total < :high  -- :ignored in a comment",
        {"who": "c1", "low": 10, "high": Decimal("30")},
    )
    assert mixed.rows == [[4]]  # totals 11, 16, 21, 26
    assert c.execute("SELECT :x AS a, :x AS b", {"x": "same"}).rows == [["same", "same"]]


def test_mysql_missing_or_unnamed_params_are_bad_queries(my_database: str) -> None:
    c = connector(my_database)
    with pytest.raises(base.BadQuery, match=r"Missing query parameter.*who"):
        c.execute("SELECT * FROM orders WHERE customer = :who", {})
    with pytest.raises(base.BadQuery, match="unnamed placeholder"):
        c.execute("SELECT * FROM orders WHERE customer = ?")
    with pytest.raises(base.BadQuery, match="MySQL error 1054"):
        c.execute("SELECT no_such_column FROM orders")
    with pytest.raises(base.BadQuery, match="MySQL error 1064"):
        c.execute("SELEC 1")
    with pytest.raises(base.BadQuery, match="non-empty"):
        c.execute("   ")


def test_mysql_row_cap(my_database: str) -> None:
    c = connector(my_database)
    capped = c.execute("SELECT id FROM orders ORDER BY id", row_limit=7)
    assert (capped.row_count, capped.truncated) == (7, True)
    assert capped.rows == [[i] for i in range(1, 8)]
    assert c.execute("SELECT id FROM orders", row_limit=50).truncated is False
    assert c.execute("SELECT id FROM orders", row_limit=49).truncated is True
    with c.session():  # a query with its own larger LIMIT is drained, and the connection still works
        own_limit = c.execute("SELECT id FROM orders LIMIT 40", row_limit=7)
        assert (own_limit.row_count, own_limit.truncated) == (7, True)
        assert c.execute("SELECT COUNT(*) FROM orders").rows == [[50]]


def test_mysql_value_types(my_database: str) -> None:
    sql(
        my_database,
        "CREATE TABLE kinds (y YEAR, flag BIT(1), name VARCHAR(10), blob_ BLOB, doc JSON, d DATE,"
        " amount DECIMAL(8, 3), n INT)",
    )
    sql(
        my_database,
        "INSERT INTO kinds VALUES (2024, b'1', 'héllo', X'00FF', '{\"a\": 1}', '2024-02-29', 1.5, NULL)",
    )
    r = connector(my_database).execute("SELECT * FROM kinds")
    # YEAR before other columns: the pure-Python driver misparses it in the binary protocol unaided
    assert r.rows == [
        [2024, 1, "héllo", b"\x00\xff", '{"a": 1}', datetime.date(2024, 2, 29), Decimal("1.500"), None]
    ]


def test_mysql_timeout_is_server_side(my_database: str) -> None:
    c = connector(my_database)
    started = time.monotonic()
    with pytest.raises(base.QueryTimeout, match="timeout of 1 s"):
        c.execute("SELECT SLEEP(5)", timeout_s=1)
    assert time.monotonic() - started < 3
    with c.session():
        with pytest.raises(base.QueryTimeout):
            c.execute("SELECT SLEEP(5)", timeout_s=0.3)
        assert c.execute("SELECT SLEEP(0.5) AS s", timeout_s=3).rows == [[0]]  # the next one has its own


def test_mysql_read_only_is_enforced_by_the_server(my_database: str) -> None:
    ro = connector(my_database, read_only=True)
    for body in (
        "UPDATE orders SET total = 0",
        "INSERT INTO orders (customer, total) VALUES ('x', 1)",
        "DELETE FROM orders",
        "DROP TABLE orders",
        "TRUNCATE TABLE orders",
        "CREATE TABLE sneaky (i INT)",
        "ALTER TABLE orders ADD COLUMN sneaky INT",
        "SELECT * FROM orders FOR UPDATE",
    ):
        with pytest.raises(base.ReadOnlyViolation, match="read-only"):
            ro.execute(body)
    with ro.session():  # a statement cannot leave the session writable for the next one
        ro.execute("SET SESSION TRANSACTION READ WRITE")
        with pytest.raises(base.ReadOnlyViolation):
            ro.execute("DROP TABLE orders")
        ro.execute("COMMIT")
        with pytest.raises(base.ReadOnlyViolation):
            ro.execute("DELETE FROM orders WHERE id = :id", {"id": 1})
        assert ro.execute("SELECT COUNT(*) FROM orders").rows == [[50]]
    assert count(my_database) == 50
    assert {"orders", "notes"} <= tables(my_database) and "sneaky" not in tables(my_database)


def test_mysql_writes_commit_when_not_read_only(my_database: str) -> None:
    c = connector(my_database)
    inserted = c.execute("INSERT INTO notes (body) VALUES (:b), (:b)", {"b": "hello"})
    assert (inserted.columns, inserted.rows, inserted.extra) == ([], [], {"affected_rows": 2})
    assert inserted.as_dict()["affected_rows"] == 2
    updated = c.execute("UPDATE notes SET body = %(b)s WHERE body = 'hello'", {"b": "bye"})
    assert updated.extra == {"affected_rows": 2}
    assert sql(my_database, "SELECT body FROM notes") == [("bye",), ("bye",)]  # committed
    assert c.execute("DELETE FROM notes").extra == {"affected_rows": 2}


def test_mysql_injection_corpus_never_writes(my_database: str) -> None:
    c = connector(my_database)  # writable on purpose: only binding keeps these out
    for value in INJECTIONS:
        for body in (
            "SELECT COUNT(*) FROM orders WHERE customer = :v",
            "SELECT COUNT(*) FROM orders WHERE customer = %(v)s",
            "SELECT COUNT(*) FROM orders WHERE customer LIKE CONCAT('%', :v, '%')",
        ):
            assert c.execute(body, {"v": value}).rows == [[0]]
        assert c.execute("SELECT :v", {"v": value}).rows == [[value]]  # round-trips byte for byte
    for body in (
        "SELECT 1; DROP TABLE orders",
        "SELECT 1; DELETE FROM orders",
        "COMMIT; DELETE FROM orders; --",
        "SELECT 1; DROP TABLE orders;",
    ):
        with pytest.raises(base.BadQuery):
            c.execute(body)
    assert count(my_database) == 50
    assert "orders" in tables(my_database)


def test_mysql_connections_are_reused_reset_and_a_dead_one_replaced(my_database: str) -> None:
    c = connector(my_database)
    first = c.execute("SELECT CONNECTION_ID()").rows[0][0]
    c.execute("CREATE TEMPORARY TABLE scratch (x INT)")
    c.execute("SET @left_behind = 42")
    assert c.execute("SELECT CONNECTION_ID()").rows[0][0] == first  # borrowed again, not reconnected
    # ... but reset: the previous query's session state is gone.
    assert c.execute("SELECT @left_behind").rows == [[None]]
    with pytest.raises(base.BadQuery):
        c.execute("SELECT * FROM scratch")
    sql(my_database, f"KILL {int(first)}")
    replaced = c.execute("SELECT CONNECTION_ID()").rows[0][0]
    assert replaced != first
    # A read-only datasource never borrows the writable connection (the config is the pool key).
    assert connector(my_database, read_only=True).execute("SELECT CONNECTION_ID()").rows[0][0] != replaced
