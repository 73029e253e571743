"""The one dialect-aware INSERT: PostgreSQL's or SQLite's, for ``ON CONFLICT`` clauses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def dialect_insert(conn: Connection, table: Table) -> Any:
    """``INSERT INTO table`` in the dialect of ``conn`` (PostgreSQL, else SQLite), so that
    ``on_conflict_do_nothing`` / ``on_conflict_do_update`` are available."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)
