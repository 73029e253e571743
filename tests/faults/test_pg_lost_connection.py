"""A connection cut inside a transaction, in this process: the store and the link's group
committer on PostgreSQL through tests/faults/pgproxy.py.

- A group whose connection is cut fails as a whole with the driver's error (the link answers
  ``90`` and the agency resends), and is not then tried item by item on the dead connection
  (which only failed again, every item with ``PendingRollbackError``, hiding the cause).
- The pool does not keep the dead connection: the next interaction, on the same store, works.

PostgreSQL only (skipped on SQLite, which has no connection to cut).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError
from twisted.internet.defer import DeferredList

from gateway.store import Store, create_db_engine
from gateway.store.group import GroupCommitter
from tests.conftest import on_postgres
from tests.faults.pgproxy import PgProxy

pytestmark = pytest.mark.skipif(
    not on_postgres(),
    reason="PostgreSQL only (GATEWAY_TEST_DATABASE_URL): a TCP proxy cuts the store's "
    "connection; SQLite has no connection to cut",
)


@pytest.fixture
def scratch(migrated_url: str) -> Iterator[str]:
    engine = create_db_engine(migrated_url, 1)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE scratch (item text PRIMARY KEY)")
    engine.dispose()
    yield migrated_url


@pytest_twisted.ensureDeferred
async def test_a_group_whose_connection_is_cut_fails_whole_and_the_next_one_commits(
    scratch: str,
) -> None:
    from twisted.internet import reactor  # noqa: TID251 - tests drive the real reactor

    server = make_url(scratch)
    proxy = PgProxy(reactor, server.host or "127.0.0.1", server.port or 5432)
    port = await proxy.start()
    url = server.set(host="127.0.0.1", port=port).update_query_dict({"sslmode": "disable"})
    store = Store(create_db_engine(url.render_as_string(hide_password=False), 2), reactor)
    store.start()
    applied: list[list[str]] = []

    def apply(conn: Connection, items: list[str]) -> list[str]:
        applied.append(list(items))
        for item in items:
            conn.execute(text("INSERT INTO scratch (item) VALUES (:item)"), {"item": item})
        return items

    committer: GroupCommitter[str, str] = GroupCommitter(store, "test.commit", apply)
    try:
        cut = proxy.cut_on(b"INSERT INTO scratch", nth=3)  # b: in the middle of a, b, c
        first = committer.submit("x")  # alone: a, b and c wait for it and go together
        results = await DeferredList(
            [committer.submit(item) for item in ("a", "b", "c")], consumeErrors=True
        )
        assert await first == "x"
        assert cut.called
        failures: list[Any] = [value for ok, value in results if not ok]
        assert len(failures) == 3
        for failure in failures:
            assert failure.check(OperationalError), failure.getTraceback()
        assert applied == [["x"], ["a", "b", "c"]]  # not again one by one on a dead connection

        assert await committer.submit("d") == "d"  # a fresh connection from the pool
        rows = await store.run_interaction(
            "test.read", lambda conn: conn.execute(text("SELECT item FROM scratch")).all()
        )
        assert sorted(r.item for r in rows) == ["d", "x"]
    finally:
        store.stop()
        await proxy.stop()
