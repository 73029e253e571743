"""Statements run for many rows at once on the hot paths (the ingest's group commits).

Each statement's SQL is written once per dialect and table (cached), its parameters are bound as
SQLAlchemy binds them — each column type's bind processor, as :mod:`gateway.store.copy` does, so
a row stored here is the row ``conn.execute(table.insert(), rows)`` stores — and it runs as one
``executemany`` of the driver through ``Connection.exec_driver_sql``. SQLAlchemy then neither
compiles the statement nor processes every parameter of every row through its execution context
on each call (most of a group commit's CPU before), while errors still go through it: a lost
connection invalidates the ``Connection`` as with ``conn.execute``.

Rows are tuples in the order of the names given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection, Dialect

Processor = Callable[[Any], Any]

#: Rows in one multi-row ``VALUES`` (:func:`insert_returning`): 12 columns × 500 stays far below
#: SQLite's 32,766 and PostgreSQL's 65,535 parameters.
VALUES_PAGE = 500


@dataclass(frozen=True)
class Many:
    """One statement for many rows: its SQL and how each parameter is bound."""

    sql: str
    processors: tuple[tuple[int, Processor], ...]  # (position, the column type's processor)
    width: int  # parameters per row

    def bind(self, row: Sequence[Any]) -> tuple[Any, ...]:
        if not self.processors:
            return tuple(row)
        values = list(row)
        for i, process in self.processors:
            value = values[i]
            if value is not None:
                values[i] = process(value)
        return tuple(values)


def _placeholder(dialect: Dialect) -> str:
    # sqlite3: qmark; psycopg: pyformat, which takes %s with positional parameters too.
    return "?" if dialect.paramstyle == "qmark" else "%s"


def _processors(dialect: Dialect, table: Table, names: Sequence[str]) -> tuple[Any, ...]:
    found = []
    for i, name in enumerate(names):
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            found.append((i, process))
    return tuple(found)


@lru_cache(maxsize=256)
def insert(dialect: Dialect, table: Table, names: tuple[str, ...]) -> Many:
    """``INSERT INTO table (names) VALUES (…)``."""
    quote = dialect.identifier_preparer.quote
    marks = ", ".join([_placeholder(dialect)] * len(names))
    sql = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) VALUES ({marks})"
    return Many(sql, _processors(dialect, table, names), len(names))


@lru_cache(maxsize=256)
def update(dialect: Dialect, table: Table, names: tuple[str, ...], where: tuple[str, ...]) -> Many:
    """``UPDATE table SET name = … WHERE key = … AND …``: a row is the new values of ``names``,
    then those of the ``where`` columns."""
    quote = dialect.identifier_preparer.quote
    mark = _placeholder(dialect)
    sets = ", ".join(f"{quote(n)} = {mark}" for n in names)
    keys = " AND ".join(f"{quote(n)} = {mark}" for n in where)
    sql = f"UPDATE {quote(table.name)} SET {sets} WHERE {keys}"
    every = names + where
    return Many(sql, _processors(dialect, table, every), len(every))


def run_many(conn: Connection, statement: Many, rows: Iterable[Sequence[Any]]) -> None:
    """Run ``statement`` once per row, in one ``executemany``."""
    bound = [statement.bind(row) for row in rows]
    if bound:
        conn.exec_driver_sql(statement.sql, bound)


@lru_cache(maxsize=256)
def _insert_head(dialect: Dialect, table: Table, names: tuple[str, ...]) -> tuple[str, str]:
    quote = dialect.identifier_preparer.quote
    head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) VALUES "
    row = "(" + ", ".join([_placeholder(dialect)] * len(names)) + ")"
    return head, row


def insert_returning(
    conn: Connection,
    table: Table,
    names: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    *,
    returning: tuple[str, ...],
    on_conflict_do_nothing: bool = False,
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` in their order with multi-row ``VALUES`` statements (:data:`VALUES_PAGE`
    rows each), ``ON CONFLICT DO NOTHING`` if asked; the ``returning`` columns of the rows
    inserted (raw driver values: use it for integers and strings)."""
    if not rows:
        return []
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    head, one = _insert_head(dialect, table, names)
    tail = " ON CONFLICT DO NOTHING" if on_conflict_do_nothing else ""
    tail += " RETURNING " + ", ".join(quote(n) for n in returning)
    shape = insert(dialect, table, names)
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), VALUES_PAGE):
        page = rows[start : start + VALUES_PAGE]
        params: list[Any] = []
        for row in page:
            params += shape.bind(row)
        sql = head + ", ".join([one] * len(page)) + tail
        found += [tuple(r) for r in conn.exec_driver_sql(sql, tuple(params))]
    return found
