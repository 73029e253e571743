"""Many new rows at once (bulk registration): PostgreSQL's ``COPY ... FROM STDIN``, one
``executemany`` elsewhere.

The values are bound as SQLAlchemy would bind them (each column type's bind processor: aware
timestamps to UTC, booleans), so a row stored here is the row an ``INSERT`` stores. ``COPY`` has no
``ON CONFLICT``: a caller that may meet a unique key runs it in a savepoint and falls back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from gateway.store import many

_CHUNK = 10_000


def copy_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (all with the keys of the first) into ``table``."""
    if not rows:
        return
    names = tuple(rows[0])
    if conn.dialect.name != "postgresql":
        # One executemany of the driver per chunk (gateway.store.many: the statement written
        # once, each value through its column type's bind processor, as COPY below does).
        statement = many.insert(conn.dialect, table, names)
        for start in range(0, len(rows), _CHUNK):  # (bounds what the driver call holds at once)
            chunk = rows[start : start + _CHUNK]
            many.run_many(conn, statement, [tuple(row[n] for n in names) for row in chunk])
        return
    dialect = conn.dialect
    processors = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    ]
    quote = dialect.identifier_preparer.quote
    sql = f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(
                [
                    value if proc is None or value is None else proc(value)
                    for proc, value in zip(processors, (row[n] for n in names), strict=True)
                ]
            )
