"""Ingest into the ledger: every message stored once, applied through the state machine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from gateway.config import Config, load_config
from gateway.ingest import Ingest, Received
from gateway.model import (
    JST,
    Bill,
    BillTerms,
    Channel,
    CollectionEvent,
    Customer,
    MessageKind,
    Tax,
)
from gateway.networks.issuer import Issuer
from gateway.networks.registry import REGISTRY
from gateway.store import Store, create_db_engine
from gateway.store.billers import create_biller
from gateway.store.bills import Identifiers, NewBill, get_bill, insert_bill
from gateway.store.events import list_events
from gateway.store.schema import anomalies, collection_messages, payments, refund_cases
from tests.conftest import config_text
from tests.helpers import cvs_event

NOW = datetime.now(JST).replace(microsecond=0)
TODAY = NOW.date()


@dataclass
class World:
    engine: Engine
    config: Config
    ingest: Ingest
    issuer: Issuer

    def bill(self, bill_no: str, amount: int = 5400, due: date | None = None) -> Bill:
        terms = BillTerms(
            bill_no,
            amount,
            due or TODAY + timedelta(days=10),
            frozenset({Channel.CVS}),
            Customer("C1"),
            Tax(),
            None,
        )
        with self.engine.begin() as conn:
            from gateway.store.billers import get_biller

            biller = get_biller(conn, "acme")

            def identify(serial: int) -> Identifiers:
                return self.issuer.identify(biller, serial, terms, TODAY)

            bill, _ = insert_bill(conn, NewBill("acme", terms, "tok-" + bill_no), NOW, identify)
        return bill

    def message(
        self,
        barcode: str,
        kind: MessageKind,
        *,
        at: datetime = NOW,
        store: str = "0110002",
        chain: str = "000020",
        transfer: date | None = None,
    ) -> CollectionEvent:
        return cvs_event(
            barcode, kind, at, received_at=NOW, transfer_date=transfer, chain=chain, store=store
        )

    def apply(self, *events: CollectionEvent) -> list[str]:
        with self.engine.begin() as conn:
            return [self.ingest.apply(conn, Received(e), NOW, TODAY) for e in events]

    def current(self, bill_no: str) -> Bill:
        with self.engine.connect() as conn:
            found = get_bill(conn, "acme", bill_no)
        assert found is not None
        return found[1]

    def rows(self, table: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(table)).all())

    def events(self) -> list[str]:
        with self.engine.connect() as conn:
            return [e.type for e in list_events(conn, "acme", 0, 1000)]


@pytest.fixture
def world(tmp_path: Path, migrated_url: str) -> Iterator[World]:
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(migrated_url), encoding="utf-8")
    config = load_config(path)
    engine = create_db_engine(migrated_url, 4)
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
    issuer = Issuer(config)
    yield World(
        engine,
        config,
        Ingest(
            None,
            None,
            lambda b: {
                "bill_no": b.bill_no,  # type: ignore[arg-type]
                "version": b.version,
            },
            REGISTRY.finders(config),
        ),
        issuer,
    )
    engine.dispose()


def test_preliminary_then_confirmation(world: World) -> None:
    bill = world.bill("B-1")
    assert bill.slip is not None
    code = bill.slip.barcode
    assert world.apply(world.message(code, MessageKind.PRELIMINARY)) == ["applied"]
    paid = world.current("B-1")
    assert (paid.status.value, paid.version) == ("paid", 2)
    assert world.apply(world.message(code, MessageKind.PRELIMINARY)) == ["duplicate"]
    assert world.current("B-1").version == 2
    transfer = TODAY + timedelta(days=14)
    assert world.apply(world.message(code, MessageKind.CONFIRMATION, transfer=transfer)) == [
        "applied"
    ]
    (payment,) = world.rows(payments)
    assert payment.status == "confirmed" and payment.transfer_date == transfer
    assert payment.amount == 5400 and payment.store == "000020-0110002"
    assert world.current("B-1").status.value == "confirmed"
    assert len(world.rows(collection_messages)) == 2  # the resend was not stored again
    assert world.events()[-2:] == ["payment.preliminary", "payment.confirmed"]


def test_confirmation_without_preliminary(world: World) -> None:
    code = world.bill("B-1").slip.barcode  # type: ignore[union-attr]
    world.apply(world.message(code, MessageKind.CONFIRMATION, transfer=TODAY))
    (payment,) = world.rows(payments)
    assert payment.status == "confirmed"
    assert world.current("B-1").status.value == "confirmed"


def test_void_reopens_the_bill(world: World) -> None:
    code = world.bill("B-1").slip.barcode  # type: ignore[union-attr]
    world.apply(world.message(code, MessageKind.PRELIMINARY), world.message(code, MessageKind.VOID))
    (payment,) = world.rows(payments)
    assert payment.status == "voided"
    bill = world.current("B-1")
    assert (bill.status.value, bill.version) == ("open", 3)
    assert world.events()[-2:] == ["payment.preliminary", "payment.voided"]


@pytest.mark.parametrize(
    ("first", "second", "kind"),
    [
        (MessageKind.CONFIRMATION, MessageKind.VOID, "void_after_confirmation"),
        (MessageKind.VOID, MessageKind.CONFIRMATION, "confirmation_after_void"),
    ],
)
def test_contradictions_are_recorded_not_applied(
    world: World, first: MessageKind, second: MessageKind, kind: str
) -> None:
    code = world.bill("B-1").slip.barcode  # type: ignore[union-attr]
    outcomes = world.apply(
        world.message(code, MessageKind.PRELIMINARY),
        world.message(code, first, transfer=TODAY),
        world.message(code, second, transfer=TODAY),
    )
    assert outcomes == ["applied", "applied", "anomaly"]
    (anomaly,) = world.rows(anomalies)
    assert anomaly.kind == kind
    (payment,) = world.rows(payments)
    assert payment.status == ("confirmed" if first is MessageKind.CONFIRMATION else "voided")


def test_void_without_payment_is_an_anomaly(world: World) -> None:
    code = world.bill("B-1").slip.barcode  # type: ignore[union-attr]
    assert world.apply(world.message(code, MessageKind.VOID)) == ["anomaly"]
    assert [a.kind for a in world.rows(anomalies)] == ["void_without_payment"]
    assert world.rows(payments) == []


def test_second_payment_with_another_store_is_a_double_payment(world: World) -> None:
    code = world.bill("B-1").slip.barcode  # type: ignore[union-attr]
    world.apply(
        world.message(code, MessageKind.PRELIMINARY),
        world.message(
            code, MessageKind.PRELIMINARY, store="0999999", at=NOW + timedelta(minutes=5)
        ),
    )
    bill = world.current("B-1")
    assert bill.double_paid and bill.status.value == "paid"
    assert len(world.rows(payments)) == 2
    (case,) = world.rows(refund_cases)
    assert (case.reason, case.amount, case.status) == ("double_payment", 5400, "open")
    assert world.events()[-4:] == [
        "payment.preliminary",
        "payment.preliminary",
        "bill.double_paid",
        "refund_case.opened",
    ]


def test_payment_for_a_cancelled_bill_opens_a_refund_case(world: World) -> None:
    from gateway import ledger
    from gateway.store.bills import save_bill

    bill = world.bill("B-1")
    with world.engine.begin() as conn:
        bill_id, current = get_bill(conn, "acme", "B-1")  # type: ignore[misc]
        cancelled = ledger.cancel_bill(current, now=NOW).bill
        assert cancelled is not None
        save_bill(conn, bill_id, current, cancelled)
    world.apply(world.message(bill.slip.barcode, MessageKind.PRELIMINARY))  # type: ignore[union-attr]
    assert world.current("B-1").status.value == "cancelled"
    assert [c.reason for c in world.rows(refund_cases)] == ["paid_after_cancel"]


def test_unknown_barcode_of_a_known_biller(world: World) -> None:
    real = world.bill("B-1").slip.barcode  # type: ignore[union-attr]
    from gateway.mappers.cvs import barcode

    ghost = barcode.build(
        company_code="987654",
        free_field=real[8:13] + "9" * 16,
        reissue=0,
        due=TODAY,
        stamp=False,
        amount=1234,
    ).digits
    assert world.apply(world.message(ghost, MessageKind.PRELIMINARY)) == ["unknown_bill"]
    (payment,) = world.rows(payments)
    assert payment.bill_id is None and payment.biller_id == "acme"
    assert [c.reason for c in world.rows(refund_cases)] == ["unknown_bill"]
    assert world.events()[-2:] == ["payment.preliminary", "refund_case.opened"]
    assert world.apply(world.message(ghost, MessageKind.PRELIMINARY)) == ["duplicate"]


def test_payment_after_the_due_date_is_late(world: World) -> None:
    code = world.bill("B-1", due=TODAY).slip.barcode  # type: ignore[union-attr]
    world.apply(world.message(code, MessageKind.PRELIMINARY, at=NOW + timedelta(days=2)))
    bill = world.current("B-1")
    assert bill.status.value == "paid" and bill.late
    (payment,) = world.rows(payments)
    assert payment.late
    assert world.events()[-2:] == ["bill.expired", "payment.preliminary"]


def test_paid_on_time_but_confirmed_after_due_is_not_late(world: World) -> None:
    code = world.bill("B-1", due=TODAY).slip.barcode  # type: ignore[union-attr]
    world.apply(world.message(code, MessageKind.CONFIRMATION, at=NOW, transfer=TODAY))
    assert not world.current("B-1").late


def test_two_writers_store_one_payment(world: World, migrated_url: str) -> None:
    """Two daemons (two connections, two threads) apply the same message at once."""
    code = world.bill("B-1").slip.barcode  # type: ignore[union-attr]
    message = world.message(code, MessageKind.PRELIMINARY)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def writer() -> None:
        engine = create_db_engine(migrated_url, 1)
        try:
            barrier.wait()
            with engine.begin() as conn:
                outcomes.append(world.ingest.apply(conn, Received(message), NOW, TODAY))
        except BaseException as e:
            errors.append(e)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(outcomes) == ["applied", "duplicate"]
    with world.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(payments)).scalar_one() == 1
    assert world.current("B-1").version == 2


@pytest_twisted.ensureDeferred
async def test_group_commit_applies_everything_and_isolates_a_failure(
    world: World, migrated_url: str
) -> None:
    from twisted.internet import reactor  # noqa: TID251
    from twisted.internet.defer import DeferredList

    store = Store.from_url(migrated_url, reactor, 4)
    store.start()

    def render(bill: Bill) -> dict[str, Any]:
        if bill.bill_no == "G-7":
            raise RuntimeError("this one item fails")
        return {"bill_no": bill.bill_no}

    ingest = Ingest(store, reactor, render, REGISTRY.finders(world.config))
    committer = ingest.committer("ingest.test")
    codes = [world.bill(f"G-{i}").slip.barcode for i in range(30)]  # type: ignore[union-attr]
    try:
        messages = [Received(world.message(c, MessageKind.PRELIMINARY)) for c in codes]
        ds = [committer.submit(m) for m in messages]
        results = await DeferredList(ds, consumeErrors=True)
    finally:
        store.stop()
    ok = [r for success, r in results if success]
    failed = [r for success, r in results if not success]
    assert ok == ["applied"] * 29 and len(failed) == 1
    assert results[7][0] is False  # G-7 failed alone: its savepoint rolled back
    assert len(world.rows(payments)) == 29
    assert world.current("G-7").status.value == "open"
    assert all(world.current(f"G-{i}").status.value == "paid" for i in range(30) if i != 7)


@pytest.mark.parametrize("voided", [0, 1])
def test_a_void_that_ends_a_double_payment_closes_its_refund_case(
    world: World, voided: int
) -> None:
    code = world.bill("B-1").slip.barcode  # type: ignore[union-attr]
    paid = [
        world.message(code, MessageKind.PRELIMINARY),
        world.message(
            code, MessageKind.PRELIMINARY, store="0999999", at=NOW + timedelta(minutes=5)
        ),
    ]
    world.apply(*paid)
    (case,) = world.rows(refund_cases)
    assert case.status == "open"
    void = world.message(
        code,
        MessageKind.VOID,
        store=paid[voided].store.split("-")[1],  # type: ignore[union-attr]
        at=NOW + timedelta(minutes=5 * voided),
    )
    assert world.apply(void) == ["applied"]
    (case,) = world.rows(refund_cases)
    assert (case.status, case.resolution) == ("resolved", "voided_by_network")
    assert "no longer paid twice" in case.note
    bill = world.current("B-1")
    assert not bill.double_paid and bill.status.value == "paid"
