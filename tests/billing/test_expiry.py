"""The expiry job (gateway/billing/expiry.py) on a driven clock, against the real store.

Bills go in through the merchant API of the in-process daemon (due dates in the future, as the
API requires); the job under test has a store of its own on the same database and a
``task.Clock`` set to the JST day we want, so "the day after the due date" is reached without
waiting. On PostgreSQL (GATEWAY_TEST_DATABASE_URL) the same tests run there, and the row-lock
test checks ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import select
from twisted.internet import task
from twisted.internet.defer import gatherResults

from gateway.billing.expiry import ExpiryJob, expire_batch, expiry_service
from gateway.model import JST, MessageKind
from gateway.store import Store, create_db_engine
from gateway.store.schema import bills
from simulators.zengin import SimulatedBank
from tests.billing.test_payments_api import pay
from tests.conftest import Biller, Running, jst_today, on_postgres
from tests.networks.test_zengin_transfer import (
    bill,
    consignor,
    debit_day,
    mandate,
    read_request,
    run_admin,
)
from tests.test_api import bill_body


def clock_at(day: date, at: time = time(0, 0, 1)) -> task.Clock:
    """A clock showing ``at`` JST on ``day``."""
    clock = task.Clock()
    clock.advance(datetime.combine(day, at, JST).timestamp())
    return clock


def render(bill: Any) -> dict[str, Any]:
    """What the daemon would put in the event (BillService.render); enough for these tests."""
    return {"bill_no": bill.bill_no, "status": bill.status.value, "version": bill.version}


@pytest.fixture
def stores() -> Iterator[list[Store]]:
    """Stores of "other daemons" on the gateway's database (see :func:`new_store`), stopped at
    the end of the test."""
    made: list[Store] = []
    yield made
    for store in made:
        store.stop()


def new_store(stores: list[Store], gateway: Running) -> Store:
    from twisted.internet import reactor  # noqa: TID251 - the store's threads need the reactor

    store = Store.from_url(gateway.config.database.url, reactor, 2)
    store.start()
    stores.append(store)
    return store


async def make_bill(running: Running, who: Biller, bill_no: str, due: date) -> dict[str, Any]:
    status, made, _ = await running.request(
        "POST", "/v1/bills", who, bill_body(bill_no, due_date=due.isoformat())
    )
    assert status == 201, made
    return dict(made)


async def status_of(running: Running, who: Biller, bill_no: str) -> dict[str, Any]:
    status, doc, _ = await running.request("GET", f"/v1/bills/{bill_no}", who)
    assert status == 200, doc
    return dict(doc)


async def expired_events(running: Running, who: Biller) -> list[dict[str, Any]]:
    _, feed, _ = await running.request("GET", "/v1/events?limit=500", who)
    return [e for e in feed["data"] if e["type"] == "bill.expired"]


@pytest_twisted.ensureDeferred
async def test_bills_expire_the_day_after_their_due_date_once_with_one_event(
    gateway: Running, stores: list[Store]
) -> None:
    acme = gateway.onboard("acme")
    due = jst_today() + timedelta(days=1)
    await make_bill(gateway, acme, "DUE-1", due)
    await make_bill(gateway, acme, "DUE-2", due + timedelta(days=1))
    paid = await make_bill(gateway, acme, "PAID", due)
    assert pay(gateway, paid["cvs"]["barcode"], MessageKind.PRELIMINARY) == "applied"
    await make_bill(gateway, acme, "CANCELLED", due)
    await gateway.request("POST", "/v1/bills/CANCELLED/cancel", acme)

    clock = clock_at(due, time(23, 59, 59))  # the due date itself: still payable
    job = ExpiryJob(new_store(stores, gateway), clock, render, batch_size=2)
    assert await job.run() == 0
    assert (await status_of(gateway, acme, "DUE-1"))["status"] == "open"

    clock.advance(2)  # 00:00:01 JST the next day
    assert await job.run() == 1
    doc = await status_of(gateway, acme, "DUE-1")
    assert (doc["status"], doc["version"], doc["late"]) == ("expired", 2, False)
    assert (await status_of(gateway, acme, "DUE-2"))["status"] == "open"
    assert (await status_of(gateway, acme, "PAID"))["status"] == "paid"
    assert (await status_of(gateway, acme, "CANCELLED"))["status"] == "cancelled"

    # Again, and again on the same day: nothing more.
    assert await job.run() == 0
    assert await job.run() == 0
    (event,) = await expired_events(gateway, acme)
    assert event["data"]["bill"]["bill_no"] == "DUE-1"
    assert event["data"]["bill"]["status"] == "expired"
    assert event["data"]["bill"]["version"] == 2


@pytest_twisted.ensureDeferred
async def test_the_daemons_event_carries_the_whole_bill_document(gateway: Running) -> None:
    """The daemon's own job (make_service) renders events with the API's bill document."""
    from gateway.billing.bills import BillService
    from gateway.networks.issuer import Issuer

    acme = gateway.onboard("acme")
    due = jst_today() + timedelta(days=1)
    await make_bill(gateway, acme, "DOC", due)
    from twisted.internet import reactor  # noqa: TID251 - the store's threads need the reactor

    store = Store.from_url(gateway.config.database.url, reactor, 2)
    store.start()
    try:
        render_bill = BillService(store, reactor, gateway.config, Issuer(gateway.config)).render
        job = ExpiryJob(store, clock_at(due + timedelta(days=1)), render_bill)
        assert await job.run() == 1
    finally:
        store.stop()
    (event,) = await expired_events(gateway, acme)
    assert event["data"]["bill"] == await status_of(gateway, acme, "DOC")


@pytest_twisted.ensureDeferred
async def test_the_timer_runs_the_job_every_interval_on_the_injected_clock(
    gateway: Running, stores: list[Store]
) -> None:
    acme = gateway.onboard("acme")
    first = jst_today() + timedelta(days=1)
    await make_bill(gateway, acme, "T-1", first)
    await make_bill(gateway, acme, "T-2", first + timedelta(days=1))
    clock = clock_at(first + timedelta(days=1), time(9, 0))
    job = ExpiryJob(new_store(stores, gateway), clock, render)
    service = expiry_service(job, 300, clock)
    service.startService()  # runs once at once
    try:
        first_run = job.running
        assert first_run is not None and await first_run == 1
        assert (await status_of(gateway, acme, "T-2"))["status"] == "open"
        clock.advance(299)
        assert job.running is first_run  # no new run before the interval
        clock.advance(86400)  # a day later: the next tick expires T-2
        second_run = job.running
        assert second_run is not first_run and await second_run == 1
        assert (await status_of(gateway, acme, "T-2"))["status"] == "expired"
        clock.advance(300)
        third_run = job.running
        assert third_run is not second_run and await third_run == 0
    finally:
        await service.stopService()
    assert len(await expired_events(gateway, acme)) == 2


@pytest_twisted.ensureDeferred
async def test_a_debit_in_flight_keeps_its_bill_open_until_the_result(
    gateway: Running, stores: list[Store], tmp_path: Path
) -> None:
    acme = gateway.onboard("acme")
    consignor(gateway, acme)
    day = debit_day()  # a bank business day; the bills are due that day
    await mandate(gateway, acme, "C1")
    await mandate(gateway, acme, "C2", account_number="1111111")
    await bill(gateway, acme, "ON-TIME", "C1", 5400, day)
    await bill(gateway, acme, "FAILS", "C2", 6000, day)
    await bill(gateway, acme, "NO-MANDATE", "C9", 7000, day)  # never requested
    made = await run_admin(gateway.config_path, "zengin", "request", "--date", day.isoformat())
    (written,) = made["files"]
    request = read_request(written["file"])
    assert sorted(d.amount for d in request.debits) == [5400, 6000]

    # The day after the due date, the results are not back yet.
    job = ExpiryJob(new_store(stores, gateway), clock_at(day + timedelta(days=1)), render)
    assert await job.run() == 1
    assert (await status_of(gateway, acme, "NO-MANDATE"))["status"] == "expired"
    assert (await status_of(gateway, acme, "ON-TIME"))["status"] == "open"
    assert (await status_of(gateway, acme, "FAILS"))["status"] == "open"
    assert await job.run() == 0

    # The bank debits ON-TIME (on its due date) and fails FAILS (資金不足).
    # Every code forced: the bank's own draw depends on the file name, hence on the date.
    failing = {d.customer_number: "1" if d.amount == 6000 else "0" for d in request.debits}
    outbox = Path(written["file"]).parent
    bank = SimulatedBank(outbox, tmp_path / "bank-out", tmp_path / "bank", overrides=failing)
    (result_path,) = bank.process_once()
    await run_admin(gateway.config_path, "import", "zengin-result", str(result_path))

    on_time = await status_of(gateway, acme, "ON-TIME")
    assert (on_time["status"], on_time["late"]) == ("confirmed", False)  # paid on time
    assert await job.run() == 1  # FAILS, now that its result is in
    assert (await status_of(gateway, acme, "FAILS"))["status"] == "expired"
    assert (await status_of(gateway, acme, "ON-TIME"))["status"] == "confirmed"
    expired = {e["data"]["bill"]["bill_no"] for e in await expired_events(gateway, acme)}
    assert expired == {"NO-MANDATE", "FAILS"}


@pytest_twisted.ensureDeferred
async def test_two_daemons_running_together_expire_each_bill_once(
    gateway: Running, stores: list[Store]
) -> None:
    acme, rival = gateway.onboard("acme"), gateway.onboard("rival")
    due = jst_today() + timedelta(days=1)
    for i in range(12):
        await make_bill(gateway, acme if i % 3 else rival, f"M-{i:02d}", due)
    clock = clock_at(due + timedelta(days=1))
    one = ExpiryJob(new_store(stores, gateway), clock, render, batch_size=3)
    two = ExpiryJob(new_store(stores, gateway), clock, render, batch_size=3)
    counts = await gatherResults(
        [one.tick(), two.tick(), one.tick(), two.tick()], consumeErrors=True
    )
    assert sum(counts) == 12
    for who, numbers in ((acme, [i for i in range(12) if i % 3]), (rival, [0, 3, 6, 9])):
        events = await expired_events(gateway, who)
        assert sorted(e["data"]["bill"]["bill_no"] for e in events) == [
            f"M-{i:02d}" for i in numbers
        ]
        _, feed, _ = await gateway.request("GET", "/v1/events?limit=500", who)
        seqs = [e["seq"] for e in feed["data"]]
        assert seqs == list(range(1, len(seqs) + 1))  # gap-free per biller
        for i in numbers:
            doc = await status_of(gateway, who, f"M-{i:02d}")
            assert (doc["status"], doc["version"]) == ("expired", 2)


@pytest.mark.skipif(not on_postgres(), reason="FOR UPDATE SKIP LOCKED is PostgreSQL's")
@pytest_twisted.ensureDeferred
async def test_a_locked_bill_is_skipped_not_waited_for(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    due = jst_today() + timedelta(days=1)
    for bill_no in ("L-1", "L-2", "L-3"):
        await make_bill(gateway, acme, bill_no, due)
    engine = create_db_engine(gateway.config.database.url, 3)
    today = due + timedelta(days=1)
    now = datetime.combine(today, time(1, 0), JST)
    try:
        with engine.connect() as holder:
            tx = holder.begin()  # another daemon (a payment, a cancel) holds L-2
            holder.execute(
                select(bills.c.id).where(bills.c.bill_no == "L-2").with_for_update()
            ).one()
            with engine.connect() as conn, conn.begin():
                conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")  # fail, never hang
                assert expire_batch(conn, today, now, 10, render) == 2
            tx.rollback()
        with engine.begin() as conn:
            statuses = dict(conn.execute(select(bills.c.bill_no, bills.c.status)).all())
            assert statuses == {"L-1": "expired", "L-2": "open", "L-3": "expired"}
            assert expire_batch(conn, today, now, 10, render) == 1  # L-2, once released
    finally:
        engine.dispose()
