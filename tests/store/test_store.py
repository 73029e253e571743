"""The store: transactions, aware timestamps, uniqueness in the schema, the outbox's seq."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import pytest_twisted
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, StatementError
from twisted.internet.defer import DeferredList

from gateway.model import Channel
from gateway.store import Store, create_db_engine
from gateway.store.billers import create_biller
from gateway.store.events import append_event, list_events
from gateway.store.migrate import head_revision, migrate, schema_is_current
from gateway.store.schema import bills, events

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=timezone(timedelta(hours=9)))


def bill_row(bill_no: str, **over: object) -> dict[str, object]:
    row: dict[str, object] = dict(
        biller_id="acme",
        bill_no=bill_no,
        amount=5400,
        channels="cvs",
        taxable=False,
        tax_amount=0,
        status="open",
        version=1,
        reissue=0,
        double_paid=False,
        late=False,
        stamp=False,
        page_token="tok-" + bill_no,
        fingerprint="f",
        created_at=NOW,
        updated_at=NOW,
    )
    row.update(over)
    return row


@pytest.fixture
def engine(migrated_url: str):  # type: ignore[no-untyped-def]
    engine = create_db_engine(migrated_url, 8)
    with engine.begin() as conn:
        create_biller(
            conn,
            biller_id="acme",
            name="Acme",
            kana="ｱｸﾒ",
            channels=frozenset({Channel.CVS}),
            payeasy_institution_code=None,
            now=NOW,
        )
    yield engine
    engine.dispose()


def test_migrate_is_idempotent_and_current(engine) -> None:  # type: ignore[no-untyped-def]
    assert migrate(engine) == (head_revision(), head_revision())
    with engine.connect() as conn:
        assert schema_is_current(conn)


def test_timestamps_come_back_aware_and_naive_ones_are_refused(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(insert(bills).values(**bill_row("T-1")))
        stored = conn.execute(select(bills.c.created_at)).scalar_one()
    assert stored == NOW and stored.tzinfo is not None
    assert stored.utcoffset() == timedelta(0)
    with pytest.raises(StatementError), engine.begin() as conn:
        conn.execute(insert(bills).values(**bill_row("T-2", created_at=datetime(2026, 1, 1))))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({}, {"page_token": "other"}),  # same (biller_id, bill_no)
        (
            {"cvs_bill_key": "9" * 27},
            {"bill_no": "B", "page_token": "t2", "cvs_bill_key": "9" * 27},
        ),
        (
            {"payeasy_institution_code": "58191", "payeasy_customer_number": "1"},
            {
                "bill_no": "B",
                "page_token": "t2",
                "payeasy_institution_code": "58191",
                "payeasy_customer_number": "1",
            },
        ),
        ({}, {"bill_no": "B", "page_token": "tok-A"}),  # same page token
    ],
)
def test_uniqueness_is_enforced_by_the_database(engine, first, second) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(insert(bills).values(**bill_row("A", **first)))
    second = dict(second)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(bills).values(**bill_row(str(second.pop("bill_no", "A")), **second)))


def test_event_seq_is_unique_per_biller_in_the_schema(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        append_event(conn, biller_id="acme", event_id="evt_1", type="t", data={}, now=NOW)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            insert(events).values(
                event_id="evt_2", biller_id="acme", seq=1, type="t", created_at=NOW, data="{}"
            )
        )


@pytest_twisted.ensureDeferred
async def test_a_failing_interaction_leaves_nothing(migrated_url: str) -> None:
    from twisted.internet import reactor  # noqa: TID251

    store = Store.from_url(migrated_url, reactor, 4)
    store.start()
    try:

        def txn(conn: Connection) -> None:
            create_biller(
                conn,
                biller_id="ghost",
                name="G",
                kana="ｺﾞ",
                channels=frozenset(),
                payeasy_institution_code=None,
                now=NOW,
            )
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await store.run_interaction("test.fail", txn)

        def count(conn: Connection) -> int:
            return int(conn.execute(select(func.count()).select_from(bills)).scalar_one())

        assert await store.run_interaction("test.count", count) == 0
        assert await store.ping() is True
    finally:
        store.stop()


@pytest_twisted.ensureDeferred
async def test_concurrent_writers_get_gap_free_seq_in_commit_order(engine, migrated_url) -> None:  # type: ignore[no-untyped-def]
    """Many transactions append events for one biller at once (8 threads on PostgreSQL):
    every seq from 1 to N is used exactly once and no reader ever sees a later seq before an
    earlier one is committed."""
    from twisted.internet import reactor  # noqa: TID251

    store = Store.from_url(migrated_url, reactor, 8)
    store.start()
    observed: list[list[int]] = []

    def write(conn: Connection, i: int) -> int:
        return append_event(
            conn,
            biller_id="acme",
            event_id=f"evt_{i}",
            type="t",
            data={"i": i},
            now=datetime.now(UTC),
        )

    def read(conn: Connection) -> None:
        observed.append([e.seq for e in list_events(conn, "acme", 0, 1000)])

    try:
        calls = []
        for i in range(120):
            calls.append(store.run_interaction("test.append", write, i))
            if i % 10 == 0:
                calls.append(store.run_interaction("test.read", read))
        await DeferredList(calls, fireOnOneErrback=True, consumeErrors=True)
        final = await store.run_interaction("test.all", list_events, "acme", 0, 1000)
    finally:
        store.stop()
    assert [e.seq for e in final] == list(range(1, 121))
    assert sorted(e.data["i"] for e in final) == list(range(120))
    for snapshot in observed:  # each reader saw a prefix: no gap, ever
        assert snapshot == list(range(1, len(snapshot) + 1))


def test_list_events_decodes_only_the_types_asked(engine) -> None:  # type: ignore[no-untyped-def]
    """A reader that walks every event but looks into a few (the notice job) gets every event
    in seq order, the data of the types it asked for, and empty data for the rest."""
    with engine.begin() as conn:  # the fixture's biller acme
        for i, type_ in enumerate(["payment.preliminary", "bill.created", "payment.confirmed"]):
            append_event(
                conn, biller_id="acme", event_id=f"evt_{i}", type=type_, data={"i": i}, now=NOW
            )
    with engine.begin() as conn:
        every = list_events(conn, "acme", 0, 10)
        some = list_events(conn, "acme", 0, 10, decode=frozenset({"bill.created"}))
        none = list_events(conn, "acme", 0, 10, decode=frozenset())
    assert [e.data for e in every] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert [(e.seq, e.type, e.data) for e in some] == [
        (1, "payment.preliminary", {}),
        (2, "bill.created", {"i": 1}),
        (3, "payment.confirmed", {}),
    ]
    assert [e.seq for e in none] == [1, 2, 3] and all(e.data == {} for e in none)
