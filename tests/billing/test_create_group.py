"""Bill creations commit in groups (gateway.store.group.GroupCommitter, issue 18): every
creation submitted while one group's transaction runs goes into the next, each in its own
savepoint. One refused creation, or one whose statement fails in the database, fails alone;
a replay and a second request for the same bill_no in the group of their first are answered as
they are when they come one transaction apart. On SQLite and on PostgreSQL
(GATEWAY_TEST_DATABASE_URL)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError
from twisted.internet.defer import Deferred, DeferredList

from gateway.billing.bills import BillService
from gateway.errors import Conflict, InvalidRequest
from gateway.model import IdempotencyClaim, Outcome, Principal, StoredResponse
from gateway.networks.issuer import Issuer
from gateway.store import Store
from gateway.store.billers import update_biller
from gateway.store.group import GroupCommitter
from gateway.store.schema import bill_slips, bills, events, idempotency_keys
from tests.conftest import Biller, Running, due


def body(bill_no: str, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "bill_no": bill_no,
        "amount": 5400,
        "due_date": due(30),
        "channels": ["cvs"],
        "customer": {"customer_no": "C0001", "name": "山田 太郎", "kana": "ﾔﾏﾀﾞ ﾀﾛｳ"},
    }
    doc.update(over)
    return doc


@pytest_twisted.async_yield_fixture
async def store(gateway: Running) -> AsyncIterator[Store]:
    from twisted.internet import reactor  # noqa: TID251 - the store's threads need the reactor

    s = Store.from_url(gateway.config.database.url, reactor, 2)
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def acme(gateway: Running) -> Biller:
    return gateway.onboard("acme", "cvs")


@pytest.fixture
def service(gateway: Running, store: Store) -> BillService:
    from twisted.internet import reactor  # noqa: TID251 - the service's clock

    bills = BillService(store, reactor, gateway.config, Issuer(gateway.config))
    bills.creates.committer.concurrency = 1  # one group at a time: the groups are known
    return bills


def principal(who: Biller) -> Principal:
    return Principal("key_test", who.biller_id, False)


async def outcomes(ds: list[Deferred[Any]]) -> list[Any]:
    """Each Deferred's result, or its exception."""
    results = await DeferredList(ds, consumeErrors=True)
    return [value if ok else value.value for ok, value in results]


def count(store: Store, table: Any, *where: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar())


def in_one_group(service: BillService, *requests: tuple[Any, ...]) -> list[Deferred[Any]]:
    """Start ``requests`` (``(principal, body, claim)``) behind a first creation, so that they
    all wait for its transaction and go together into the next group."""
    first = Deferred.fromCoroutine(
        service.create(requests[0][0], body("LEADER-" + str(id(requests))), None)
    )
    ds = [Deferred.fromCoroutine(service.create(*r)) for r in requests]
    assert service.creates.committer.pending == len(requests)  # all of them in the next group
    return [first, *ds]


@pytest_twisted.ensureDeferred
async def test_a_refused_creation_in_a_group_fails_alone(
    service: BillService, acme: Biller, store: Store
) -> None:
    who = principal(acme)
    claim = IdempotencyClaim(f"key:{acme.biller_id}", "k-refused", "h-refused")
    first, good1, refused, good2 = await outcomes(
        in_one_group(
            service,
            (who, body("G-1"), None),
            # a channel the biller does not take: refused inside the transaction, after the
            # Idempotency-Key was claimed
            (who, body("R-1", channels=["payeasy"]), claim),
            (who, body("G-2"), None),
        )
    )
    assert first.outcome is Outcome.CREATED
    assert isinstance(refused, InvalidRequest)
    assert {good1.outcome, good2.outcome} == {Outcome.CREATED}
    assert json.loads(good1.body)["bill_no"] == "G-1"
    assert json.loads(good2.body)["bill_no"] == "G-2"
    assert count(store, bills, bills.c.bill_no == "R-1") == 0
    assert count(store, bills, bills.c.bill_no.in_(["G-1", "G-2"])) == 2
    assert count(store, bill_slips) == 3
    assert count(store, events, events.c.biller_id == acme.biller_id) == 3  # one per bill
    # the refused request's key went with its savepoint: the same key is free for a new request
    made = await service.create(who, body("R-1"), claim)
    assert made.outcome is Outcome.CREATED


@pytest_twisted.ensureDeferred
async def test_a_replay_in_the_group_of_its_original_is_answered_the_original(
    service: BillService, acme: Biller, store: Store
) -> None:
    who = principal(acme)
    claim = IdempotencyClaim(f"key:{acme.biller_id}", "k-1", "h-1")
    _, original, replay = await outcomes(
        in_one_group(service, (who, body("I-1"), claim), (who, body("I-1"), claim))
    )
    assert isinstance(original, StoredResponse) and isinstance(replay, StoredResponse)
    assert original.outcome is Outcome.CREATED and not original.replayed
    assert replay.outcome is Outcome.CREATED and replay.replayed
    assert json.loads(replay.body) == json.loads(original.body)  # page_url included
    assert count(store, bills, bills.c.bill_no == "I-1") == 1
    assert count(store, events, events.c.biller_id == acme.biller_id) == 2  # leader + I-1


@pytest_twisted.ensureDeferred
async def test_the_same_bill_no_twice_in_a_group_creates_one_bill(
    service: BillService, acme: Biller, store: Store
) -> None:
    who = principal(acme)
    _, made, same, different = await outcomes(
        in_one_group(
            service,
            (who, body("D-1"), None),
            (who, body("D-1"), None),  # the same request again: the bill as it is (200)
            (who, body("D-1", amount=6000), None),  # other fields: 409, as one apart
        )
    )
    assert made.outcome is Outcome.CREATED
    assert same.outcome is Outcome.DONE
    assert json.loads(same.body) == json.loads(made.body)
    assert isinstance(different, Conflict)
    assert count(store, bills, bills.c.bill_no == "D-1") == 1
    assert count(store, events, events.c.biller_id == acme.biller_id) == 2


@pytest_twisted.ensureDeferred
async def test_a_database_error_in_one_item_fails_only_that_item(store: Store) -> None:
    """A statement the database refuses (a unique violation) inside one item's savepoint: on
    PostgreSQL too, where an error aborts the transaction up to the savepoint only."""
    now = datetime.now(UTC)  # not a fixed date: the running gateway purges expired keys

    def claim(conn: Connection, key: str) -> str:
        conn.execute(
            insert(idempotency_keys).values(
                scope="test:group",
                idempotency_key=key,
                request_hash="h",
                status_code=0,
                response_body="",
                created_at=now,
            )
        )
        return key

    committer: GroupCommitter[str, str] = GroupCommitter(store, "test.group", apply_one=claim)
    ds = [committer.submit(k) for k in ("lead", "a", "b", "a", "c")]
    assert committer.pending == 4  # "lead" runs alone, the other four in one group
    results = await outcomes(ds)
    assert results[:3] == ["lead", "a", "b"] and results[4] == "c"
    assert isinstance(results[3], IntegrityError)
    keys = idempotency_keys.c
    with store.engine.connect() as conn:
        stored = conn.execute(select(keys.idempotency_key).where(keys.scope == "test:group"))
        assert sorted(stored.scalars()) == ["a", "b", "c", "lead"]


@pytest_twisted.ensureDeferred
async def test_an_error_the_database_asks_to_retry_runs_the_whole_group_again(
    store: Store,
) -> None:
    """A deadlock or a busy database in one item is not that item's fault: the group's
    transaction is rolled back and run again whole (Store._run), every item once."""
    attempts: list[str] = []

    def claim(conn: Connection, key: str) -> str:
        attempts.append(key)
        if key == "busy" and attempts.count("busy") == 1:
            raise OperationalError("UPDATE ...", {}, Exception("database is locked"))
        conn.execute(
            insert(idempotency_keys).values(
                scope="test:retry",
                idempotency_key=key,
                request_hash="h",
                status_code=0,
                response_body="",
                # now, not a fixed date: the running gateway's Idempotency-Key purge deletes
                # expired keys, and it took a key of this test between two groups (CI, once)
                created_at=datetime.now(UTC),
            )
        )
        return key

    committer: GroupCommitter[str, str] = GroupCommitter(store, "test.retry", apply_one=claim)
    ds = [committer.submit(k) for k in ("lead", "a", "busy", "b")]
    assert await outcomes(ds) == ["lead", "a", "busy", "b"]
    assert attempts == ["lead", "a", "busy", "a", "busy", "b"]  # the group ran twice
    keys = idempotency_keys.c
    with store.engine.connect() as conn:
        stored = conn.execute(select(keys.idempotency_key).where(keys.scope == "test:retry"))
        assert sorted(stored.scalars()) == ["a", "b", "busy", "lead"]


@pytest_twisted.ensureDeferred
async def test_a_biller_suspended_between_two_groups_is_refused_in_the_second(
    service: BillService, acme: Biller, store: Store
) -> None:
    """The biller is read once per group: the next group reads it again."""
    who = principal(acme)
    assert (await service.create(who, body("S-1"), None)).outcome is Outcome.CREATED
    with store.engine.begin() as conn:
        update_biller(conn, acme.biller_id, {"suspended_at": datetime.now(UTC)})
    with pytest.raises(InvalidRequest) as refused:
        await service.create(who, body("S-2"), None)
    assert "suspended" in str(refused.value.errors)
    assert count(store, bills, bills.c.bill_no == "S-2") == 0


@pytest_twisted.ensureDeferred
async def test_groups_running_at_once_give_each_bill_one_event_and_gapless_seqs(
    service: BillService, acme: Biller, store: Store
) -> None:
    """Several groups at once (as on PostgreSQL): each locks the biller row only for its
    events, at its end; every bill gets its one event, the seqs run 1..n with no gap."""
    service.creates.committer.concurrency = 4
    who = principal(acme)
    ds = [Deferred.fromCoroutine(service.create(who, body(f"C-{i}"), None)) for i in range(40)]
    results = await outcomes(ds)
    assert [r.outcome for r in results] == [Outcome.CREATED] * 40
    with store.engine.connect() as conn:
        seqs = conn.execute(
            select(events.c.seq).where(events.c.biller_id == acme.biller_id).order_by("seq")
        ).scalars()
        assert list(seqs) == list(range(1, 41))
