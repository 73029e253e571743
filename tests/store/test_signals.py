"""After-commit signals (gateway.store.signals): a Store transaction that appended events tells
the ``outbox`` listeners once it has committed — once per transaction, never after a rollback —
and on PostgreSQL a commit in another process (another Store, gateway-admin) wakes them through
LISTEN/NOTIFY, also after the listening connection was cut."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from twisted.internet.task import deferLater

from gateway.model import Channel
from gateway.store import Store, create_db_engine
from gateway.store.billers import create_biller
from gateway.store.events import append_event
from gateway.store.signals import OUTBOX
from tests.conftest import on_postgres

postgres_only = pytest.mark.skipif(
    not on_postgres(), reason="LISTEN/NOTIFY is PostgreSQL's (GATEWAY_TEST_DATABASE_URL); .ci/run"
)


def reactor() -> Any:
    from twisted.internet import reactor as global_reactor  # noqa: TID251 - the tests' reactor

    return global_reactor


async def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = reactor().seconds() + timeout
    while not check():
        if reactor().seconds() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await deferLater(reactor(), 0.02)


def add_biller(url: str) -> None:
    engine = create_db_engine(url, 1)
    with engine.begin() as conn:
        create_biller(
            conn,
            biller_id="acme",
            name="acme",
            kana="ｱ",
            channels=frozenset({Channel.CVS}),
            payeasy_institution_code=None,
            now=datetime.now(UTC),
        )
    engine.dispose()


def write_events(conn: Connection, n: int, prefix: str) -> None:
    for i in range(n):
        append_event(
            conn,
            biller_id="acme",
            event_id=f"evt_{prefix}{i:020x}",
            type="bill.created",
            data={"i": i},
            now=datetime.now(UTC),
        )


class Boom(Exception):
    pass


def write_then_fail(conn: Connection) -> None:
    write_events(conn, 1, "fail")
    raise Boom


def read_only(conn: Connection) -> int:
    return int(conn.execute(text("SELECT 1")).scalar_one())


class Listening:
    """A started Store with one ``outbox`` listener that counts its calls."""

    def __init__(self, url: str) -> None:
        self.store = Store.from_url(url, reactor(), 2)
        self.calls = 0

    def told(self) -> None:
        self.calls += 1

    async def start(self) -> None:
        self.store.start()
        self.store.add_listener(OUTBOX, self.told)
        if on_postgres():
            # The listening connection wakes its listeners once when it is up (what was
            # committed while nobody listened): wait for that, then count from 0.
            await wait_for("the LISTEN connection", lambda: self.calls >= 1)
            self.calls = 0


@pytest_twisted.async_yield_fixture
async def listening(migrated_url: str) -> AsyncIterator[Listening]:
    add_biller(migrated_url)
    it = Listening(migrated_url)
    await it.start()
    try:
        yield it
    finally:
        it.store.stop()


@pytest_twisted.ensureDeferred
async def test_a_commit_that_wrote_events_tells_the_listeners_once_before_its_own_callbacks(
    listening: Listening,
) -> None:
    store = listening.store
    seen: list[int] = []
    d = store.run_interaction("test.write", write_events, 3, "a")
    d.addCallback(lambda _: seen.append(listening.calls))
    await d
    assert seen == [1]  # three events, one transaction: one call, already made

    with pytest.raises(Boom):
        await store.run_interaction("test.fail", write_then_fail)
    await store.run_interaction("test.read", read_only)
    assert listening.calls == 1  # rolled back, or no event written: nothing to tell

    await store.run_interaction("test.write", write_events, 1, "b")
    assert listening.calls == 2


@pytest_twisted.ensureDeferred
async def test_a_removed_listener_is_not_called(listening: Listening) -> None:
    listening.store.remove_listener(OUTBOX, listening.told)
    await listening.store.run_interaction("test.write", write_events, 1, "a")
    assert listening.calls == 0


@postgres_only
@pytest_twisted.ensureDeferred
async def test_another_process_commit_wakes_the_listeners_and_its_own_do_not_twice(
    migrated_url: str, listening: Listening
) -> None:
    other = Store.from_url(migrated_url, reactor(), 1)  # another daemon's store
    other.start()
    try:
        await other.run_interaction("test.write", write_events, 2, "other")
        await wait_for("the other store's commit", lambda: listening.calls >= 1)
    finally:
        other.stop()
    # Its own commit: told in this process; its own NOTIFY (same token) is skipped. A commit
    # outside any Store (as gateway-admin makes) is notified after it, on the same channel,
    # so once that one has been told, the own NOTIFY has been read and skipped.
    calls = listening.calls
    await listening.store.run_interaction("test.write", write_events, 1, "own")
    assert listening.calls == calls + 1
    engine = create_db_engine(migrated_url, 1)
    with engine.begin() as conn:
        write_events(conn, 1, "admin")
    engine.dispose()
    await wait_for("the commit outside a Store", lambda: listening.calls >= calls + 2)
    await deferLater(reactor(), 0.2)
    assert listening.calls == calls + 2


@postgres_only
@pytest_twisted.ensureDeferred
async def test_the_listening_connection_is_opened_again_after_it_is_cut(
    migrated_url: str, listening: Listening
) -> None:
    server = create_engine(migrated_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        cut = conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = :name"
            ),
            {"name": "gateway listen outbox"},
        ).all()
    server.dispose()
    assert [r[0] for r in cut] == [True]
    # Connected again: the listeners are woken once for what may have been missed...
    await wait_for("the LISTEN connection, again", lambda: listening.calls >= 1)
    # ...and another process's commits wake them again.
    other = Store.from_url(migrated_url, reactor(), 1)
    other.start()
    try:
        calls = listening.calls
        await other.run_interaction("test.write", write_events, 1, "other")
        await wait_for("the other store's commit", lambda: listening.calls > calls)
    finally:
        other.stop()


@postgres_only
@pytest_twisted.ensureDeferred
async def test_stopping_the_store_ends_its_listening_thread(migrated_url: str) -> None:
    add_biller(migrated_url)
    it = Listening(migrated_url)
    await it.start()
    threads = list(it.store._channels.values())
    assert len(threads) == 1
    it.store.stop()
    assert not threads[0]._thread.is_alive()
