"""Inserting model instances with one prepared statement, for the hot paths (a run's start, the engine's
journal, the audit log).

Django's ``bulk_create`` and ``save`` compile every value through the query compiler's expressions; on a
40-node chain that was a quarter of a node's time on SQLite, and a noticeable share of an API-started
run's. :func:`insert_rows` prepares each value with its own field, exactly as the ORM does
(``pre_save`` fills ``auto_now_add``, ``get_db_prep_save`` adapts for the backend), and sends one
``INSERT … RETURNING`` per batch. No ``pre_save``/``post_save`` signals are sent (none are used here).
Works on PostgreSQL and SQLite (3.35+, for ``RETURNING``).

:class:`Lookup` is the read side: a one-row ``SELECT`` with joins, built once instead of compiled per call.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from django.db import connection
from django.db.models import Model

ROWS_PER_INSERT = 200  # x about 25 columns: well under SQLite's and PostgreSQL's parameter limits
MAX_PARAMS = 60_000  # PostgreSQL takes at most 65,535 in one statement
_local = threading.local()  # the batch of the current one_statement() block


def insert_rows(objs: list[Any]) -> None:
    """Insert new instances of one model and set what the database fills in: an auto-increment primary
    key (left out of the INSERT; a primary key with a Python default, like a UUID, is sent) and fields
    marked ``db_returning`` (a trigger's value, like the journal's ``seq``). Inside
    :func:`one_statement` on PostgreSQL the rows are only collected, and sent at the block's end."""
    if not objs:
        return
    batch = getattr(_local, "batch", None)
    for start in range(0, len(objs), ROWS_PER_INSERT):
        insert = _Insert(objs[start : start + ROWS_PER_INSERT])
        if batch is not None:
            batch.append(insert)
        else:
            insert.send()


@contextlib.contextmanager
def one_statement() -> Iterator[None]:
    """Send the :func:`insert_rows` of the block as one statement at its end, on PostgreSQL: each table's
    ``INSERT`` is a data-modifying CTE of one ``WITH`` (an API-started run writes its instance, node runs,
    journal and audit entry in one round trip instead of four). Nothing in the block may read the rows
    back before the end. On SQLite, where a statement is no round trip, the inserts go as they come."""
    if connection.vendor != "postgresql" or getattr(_local, "batch", None) is not None:
        yield
        return
    batch: list[_Insert] = []
    _local.batch = batch
    try:
        yield
    finally:
        _local.batch = None
    if sum(len(insert.params) for insert in batch) > MAX_PARAMS:
        for insert in batch:
            insert.send()
    elif batch:
        _send(batch)


def _send(batch: list[_Insert]) -> None:
    ctes, selects, params = [], [], []
    width = max(len(insert.returned) for insert in batch)
    for i, insert in enumerate(batch):
        ctes.append(f"i{i} AS ({insert.sql}{insert.returning})")
        params += insert.params
        if insert.returned:
            padding = ", NULL" * (width - len(insert.returned))
            selects.append(f"SELECT {i}, {', '.join(insert.returned)}{padding} FROM i{i}")  # noqa: S608
    nothing = "SELECT NULL WHERE FALSE"
    sql = f"WITH {', '.join(ctes)} {' UNION ALL '.join(selects) or nothing}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    returned: dict[int, list[Any]] = {i: [] for i in range(len(batch))}
    for row in rows:  # each CTE returns its rows in VALUES order, and UNION ALL keeps the branches' order
        returned[row[0]].append(row[1 : 1 + len(batch[row[0]].fill)])  # without the padding
    for i, insert in enumerate(batch):
        insert.done(returned[i])


class _Insert:
    """One ``INSERT … VALUES`` of up to :data:`ROWS_PER_INSERT` instances of one model."""

    def __init__(self, objs: list[Any]) -> None:
        self.objs = objs
        self.meta = meta = type(objs[0])._meta
        fields = [f for f in meta.concrete_fields if f is not meta.auto_field]
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in fields)
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        self.params: list[Any] = []
        for obj in objs:
            self.params += [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
        values = ", ".join([row] * len(objs))
        self.sql = f"INSERT INTO {meta.db_table} ({columns}) VALUES {values}"  # noqa: S608
        # What the database fills in: the auto-increment key, then fields a trigger sets.
        self.fill = [meta.auto_field] if meta.auto_field is not None else []
        self.fill += [f for f in fields if getattr(f, "db_returning", False)]
        self.returned = [quote(f.column) for f in self.fill]
        self.returning = f" RETURNING {', '.join(self.returned)}" if self.fill else ""

    def send(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(self.sql + self.returning, self.params)
            rows = cursor.fetchall() if self.fill else []
            late = [f for f in self.fill if f is not self.meta.auto_field]
            if late and connection.vendor != "postgresql":  # an AFTER trigger's values: RETURNING missed them
                pk = self.meta.pk
                if self.meta.auto_field is not None:
                    keys = [row[0] for row in rows]
                else:
                    keys = [pk.get_db_prep_value(obj.pk, connection) for obj in self.objs]
                marks = ", ".join(["%s"] * len(keys))
                cursor.execute(
                    f"SELECT {connection.ops.quote_name(pk.column)}, {', '.join(self.returned)} "  # noqa: S608
                    f"FROM {self.meta.db_table} WHERE {connection.ops.quote_name(pk.column)} IN ({marks})",
                    keys,
                )
                by_key = {row[0]: row[1:] for row in cursor.fetchall()}
                rows = [by_key[key] for key in keys]
        self.done(rows)

    def done(self, rows: list[Any]) -> None:
        for obj, values in zip(self.objs, rows or [()] * len(self.objs), strict=True):
            for f, value in zip(self.fill, values, strict=True):
                setattr(obj, f.attname, value)
            obj._state.adding = False
            obj._state.db = connection.alias


class Lookup:
    """One row of a model by equality on some of its fields, with forward foreign keys joined as
    ``select_related`` joins them, whose SQL is built once per process instead of compiled by the ORM on
    every call (for the lookups every API request makes: its token, its membership, its workflow; the
    compile was a fifth of a request's time). Values come back through the same converters the ORM
    applies, and the related objects are cached on the row as ``select_related`` caches them.

        TOKENS = Lookup(AuthToken, "key_hash", related=("user",))
        token = TOKENS.get(key_hash)          # an AuthToken with .user loaded, or None
    """

    def __init__(
        self, model: type[Model], *where: str, related: tuple[str, ...] = (), only: tuple[str, ...] = ()
    ) -> None:
        self.model = model
        self.where = where
        self.related = related
        self.only = only  # load just these fields of the model (the rest deferred, as .only() does)
        self._plans: dict[str, _Plan] = {}

    def get(self, *values: Any) -> Any:
        plan = self._plans.get(connection.vendor) or self._plans.setdefault(connection.vendor, self._plan())
        params = [field.get_db_prep_value(v, connection) for field, v in zip(plan.where, values, strict=True)]
        with connection.cursor() as cursor:
            cursor.execute(plan.sql, params)
            row = cursor.fetchone()
        return None if row is None else plan.build(row)

    def _plan(self) -> _Plan:
        quote = connection.ops.quote_name
        meta = self.model._meta
        parts = [_Part(self.model, "t0", None, self.only)]
        joins = []
        for i, name in enumerate(self.related, start=1):
            fk: Any = meta.get_field(name)  # a forward ForeignKey
            part = _Part(fk.related_model, f"t{i}", fk, ())
            parts.append(part)
            target = fk.target_field.column
            kind = "LEFT OUTER JOIN" if fk.null else "INNER JOIN"
            joins.append(
                f"{kind} {quote(part.model._meta.db_table)} {part.alias} "
                f"ON {part.alias}.{quote(target)} = t0.{quote(fk.column)}"
            )
        where: list[Any] = [meta.get_field(name) for name in self.where]
        conditions = " AND ".join(f"t0.{quote(f.column)} = %s" for f in where)
        columns = ", ".join(part.columns(quote) for part in parts)
        sql = (
            f"SELECT {columns} FROM {quote(meta.db_table)} t0 {' '.join(joins)} "  # noqa: S608
            f"WHERE {conditions} LIMIT 1"
        )
        return _Plan(sql, where, parts)


class _Part:
    """One model's columns in a :class:`Lookup`'s row."""

    def __init__(self, model: type[Model], alias: str, fk: Any, only: tuple[str, ...]) -> None:
        self.model = model
        self.alias = alias
        self.fk = fk
        meta = model._meta
        wanted = {meta.pk.name, *only}
        # in the model's field order: Model.from_db() matches partial rows to fields in that order
        fields = [f for f in meta.concrete_fields if f.name in wanted] if only else meta.concrete_fields
        if only and len(fields) != len(wanted):
            raise ValueError(f"{model.__name__} has no concrete field(s) {wanted - {f.name for f in fields}}")
        self.fields: list[Any] = list(fields)
        self.attnames = [f.attname for f in self.fields]
        self.converters = []
        for f in self.fields:
            col = f.get_col(alias)
            convs = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            self.converters.append((convs, col))
        self.pk_index = self.fields.index(model._meta.pk)

    def columns(self, quote: Any) -> str:
        return ", ".join(f"{self.alias}.{quote(f.column)}" for f in self.fields)

    def build(self, values: tuple[Any, ...]) -> Any:
        if values[self.pk_index] is None:  # a LEFT JOIN that found nothing
            return None
        out = []
        for value, (convs, col) in zip(values, self.converters, strict=True):
            for conv in convs:
                value = conv(value, col, connection)
            out.append(value)
        return self.model.from_db(connection.alias, self.attnames, out)


class _Plan:
    def __init__(self, sql: str, where: list[Any], parts: list[_Part]) -> None:
        self.sql = sql
        self.where = where
        self.parts = parts

    def build(self, row: tuple[Any, ...]) -> Any:
        start = 0
        objs = []
        for part in self.parts:
            end = start + len(part.fields)
            objs.append(part.build(row[start:end]))
            start = end
        main = objs[0]
        for part, obj in zip(self.parts[1:], objs[1:], strict=True):
            part.fk.set_cached_value(main, obj)
        return main
