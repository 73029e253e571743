"""Alembic environment: runs on the connection handed over by gateway.store.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from gateway.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")


def run(conn) -> None:
    context.configure(
        connection=conn,
        target_metadata=metadata,
        render_as_batch=conn.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:  # e.g. `alembic revision --autogenerate` during development
    url = config.get_main_option("sqlalchemy.url")
    assert url, "set sqlalchemy.url or pass a connection"
    with create_engine(url).begin() as conn:
        run(conn)
