"""Pay-easy answers from the ledger: 照会, 消込, 再送確認, 取消, the guard, 閉局."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from twisted.internet.task import Clock

from gateway.billing.bills import bill_json
from gateway.config import load_config
from gateway.ingest import Ingest, Received
from gateway.mappers.mpn.mapper import (
    Cancel,
    Header,
    Inquiry,
    Key,
    Message,
    PaymentChannel,
    PaymentNotice,
    ResendCheck,
)
from gateway.model import JST, Bill, BillTerms, Channel, CollectionEvent, Customer, MessageKind, Tax
from gateway.networks.issuer import Issuer
from gateway.networks.mpn import MpnNetwork
from gateway.networks.registry import REGISTRY
from gateway.store import create_db_engine
from gateway.store.billers import create_biller, get_biller
from gateway.store.bills import Identifiers, NewBill, get_bill, insert_bill
from gateway.store.schema import mpn_day_closes, payments, refund_cases
from tests.conftest import config_text

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=JST)
TODAY = NOW.date()


@dataclass
class Desk:
    engine: Engine
    network: MpnNetwork
    issuer: Issuer
    serial: int = 0

    def bill(self, bill_no: str, amount: int = 5400, due: int = 10) -> Bill:
        terms = BillTerms(
            bill_no,
            amount,
            TODAY + timedelta(days=due),
            frozenset({Channel.CVS, Channel.PAYEASY}),
            Customer(),
            Tax(),
            None,
        )
        with self.engine.begin() as conn:
            biller = get_biller(conn, "acme")

            def identify(serial: int) -> Identifiers:
                return self.issuer.identify(biller, serial, terms, TODAY)

            bill, _ = insert_bill(conn, NewBill("acme", terms, "t" + bill_no), NOW, identify)
        return bill

    def key(self, bill: Bill, confirmation: str | None = None) -> Key:
        assert bill.payeasy is not None
        return Key(
            bill.payeasy.institution_code,
            bill.payeasy.customer_number,
            confirmation or bill.payeasy.confirmation_number,
        )

    def request(
        self, type: str, body: Any, day: date = TODAY, serial: int | None = None
    ) -> Message:
        if serial is None:
            self.serial += 1
            serial = self.serial
        return Message(Header(type, "0002", day, f"{serial:08d}"), body)

    def ask(self, request: Message) -> Message:
        with self.engine.begin() as conn:
            body = request.body
            if isinstance(body, Inquiry):
                return self.network._inquiry(conn, request)
            if isinstance(body, Cancel):
                return self.network._cancel(conn, request, "test")
            return self.network._payment(conn, request, "test")

    def inquire(self, bill: Bill, confirmation: str | None = None, day: date = TODAY) -> str:
        return self.ask(
            self.request("1100", Inquiry(self.key(bill, confirmation)), day)
        ).header.response_code

    def pay(self, bill: Bill, amount: int | None = None) -> Message:
        return self.request(
            "1200",
            PaymentNotice(self.key(bill), amount or bill.amount, NOW, "0005", PaymentChannel.ATM),
        )

    def state(self, bill_no: str) -> Bill:
        with self.engine.connect() as conn:
            found = get_bill(conn, "acme", bill_no)
        assert found is not None
        return found[1]

    def rows(self, table: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(table)))


@pytest.fixture
def desk(tmp_path: Path, migrated_url: str) -> Iterator[Desk]:
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(migrated_url), encoding="utf-8")
    config = load_config(path)
    assert config.mpn is not None
    engine = create_db_engine(migrated_url, 1)
    with engine.begin() as conn:
        create_biller(
            conn,
            biller_id="acme",
            name="Acme",
            kana="ｱｸﾒ ｶﾞｽ",
            channels=frozenset({Channel.CVS, Channel.PAYEASY}),
            payeasy_institution_code=None,
            now=NOW,
        )
    issuer = Issuer(config)
    clock = Clock()
    clock.advance(NOW.timestamp())
    ingest = Ingest(
        None, None, lambda b: bill_json(b, config.api.public_url, issuer), REGISTRY.finders(config)
    )
    yield Desk(engine, MpnNetwork(config.mpn, None, ingest, clock), issuer)  # type: ignore[arg-type]
    engine.dispose()


def test_inquiry_answers_amount_due_date_and_biller(desk: Desk) -> None:
    bill = desk.bill("P-1")
    answer = desk.ask(desk.request("1100", Inquiry(desk.key(bill))))
    assert answer.header.type == "1110" and answer.header.response_code == "0000"
    assert (answer.body.amount, answer.body.due_date, answer.body.biller_name) == (  # type: ignore[union-attr]
        5400,
        TODAY + timedelta(days=10),
        "ｱｸﾒ ｶﾞｽ",
    )
    assert desk.inquire(bill, day=TODAY + timedelta(days=11)) == "1003"  # past due
    unknown = Key("58191", "0000199999999999", "123456")
    assert desk.ask(desk.request("1100", Inquiry(unknown))).header.response_code == "1001"


def test_a_store_payment_makes_the_inquiry_answer_already_paid(desk: Desk) -> None:
    bill = desk.bill("P-1")
    assert bill.slip is not None
    code = bill.slip.barcode
    key = f"{code}{NOW:%Y%m%d%H%M}0000100110002"
    with desk.engine.begin() as conn:  # a CVS 速報 for the bill
        desk.network.ingest.apply(
            conn,
            Received(
                CollectionEvent(
                    channel=Channel.CVS,
                    kind=MessageKind.PRELIMINARY,
                    event_key=key,
                    amount=5400,
                    paid_at=NOW,
                    received_at=NOW,
                    source="link:test",
                    raw=b"",
                    bill_key=code[2:29],
                    slip_reissue=0,
                    store="000010-0110002",
                )
            ),
            NOW,
            TODAY,
        )
    assert desk.inquire(bill) == "1002"


def test_the_brute_force_guard(desk: Desk) -> None:
    bill = desk.bill("P-1")
    assert [desk.inquire(bill, "000000") for _ in range(5)] == ["1001"] * 5
    assert desk.inquire(bill) == "1001"  # the right 確認番号, but the number is locked today
    assert desk.inquire(bill, day=TODAY + timedelta(days=1)) == "0000"  # a new day


def test_payment_is_stored_once_and_resends_change_nothing(desk: Desk) -> None:
    bill = desk.bill("P-1")
    request = desk.pay(bill)
    assert desk.ask(request).header.response_code == "0000"
    assert desk.ask(request).header.response_code == "0000"
    resend = desk.request("1400", ResendCheck(request.body), serial=int(request.header.serial))  # type: ignore[arg-type]
    assert desk.ask(resend).header.response_code == "0000"
    (payment,) = desk.rows(payments)
    assert (payment.channel, payment.status, payment.amount) == ("payeasy", "pending", 5400)
    assert desk.state("P-1").status.value == "paid" and desk.state("P-1").version == 2
    assert desk.inquire(bill) == "1002"


def test_a_resend_check_for_an_unseen_payment_stores_it(desk: Desk) -> None:
    bill = desk.bill("P-1")
    lost = desk.pay(bill)  # its answer never reached the bank
    resend = desk.request("1400", ResendCheck(lost.body), serial=int(lost.header.serial))  # type: ignore[arg-type]
    assert desk.ask(resend).header.response_code == "0000"
    assert desk.ask(lost).header.response_code == "0000"  # and the original, late: no change
    assert len(desk.rows(payments)) == 1


def test_refusals(desk: Desk) -> None:
    bill = desk.bill("P-1")
    assert desk.ask(desk.pay(bill, amount=5401)).header.response_code == "1004"
    wrong = desk.request(
        "1200", PaymentNotice(desk.key(bill, "999999"), 5400, NOW, "0005", PaymentChannel.ATM)
    )
    assert desk.ask(wrong).header.response_code == "1001"
    assert desk.rows(payments) == []


def test_payment_for_a_bill_paid_at_a_store_is_recorded_as_double(desk: Desk) -> None:
    bill = desk.bill("P-1")
    assert desk.ask(desk.pay(bill)).header.response_code == "0000"
    second = desk.request(
        "1200",
        PaymentNotice(
            desk.key(bill), 5400, NOW + timedelta(minutes=3), "0009", PaymentChannel.INTERNET
        ),
    )
    assert desk.ask(second).header.response_code == "0000"  # the bank has the money
    assert desk.state("P-1").double_paid
    assert [c.reason for c in desk.rows(refund_cases)] == ["double_payment"]


def test_cancel_voids_and_reopens(desk: Desk) -> None:
    bill = desk.bill("P-1")
    paid = desk.pay(bill)
    desk.ask(paid)
    h = paid.header
    cancel = desk.request(
        "1300", Cancel(h.center_code, h.business_date, h.serial, desk.key(bill), 5400)
    )
    assert desk.ask(cancel).header.response_code == "0000"
    (payment,) = desk.rows(payments)
    assert payment.status == "voided" and desk.state("P-1").status.value == "open"
    assert desk.inquire(bill) == "0000"
    nothing = desk.request("1300", Cancel("0002", TODAY, "99999999", desk.key(bill), 5400))
    assert desk.ask(nothing).header.response_code == "1006"


def test_day_close_compares_counters_and_confirms_the_day(desk: Desk) -> None:
    a, b = desk.bill("P-1"), desk.bill("P-2", amount=3000)
    desk.ask(desk.pay(a))
    pay_b = desk.pay(b)
    desk.ask(pay_b)
    h = pay_b.header
    desk.ask(
        desk.request("1300", Cancel(h.center_code, h.business_date, h.serial, desk.key(b), 3000))
    )
    with desk.engine.begin() as conn:
        state = desk.network._close(conn, TODAY, (2, 8400, 1, 3000))
    assert state["matched"] and state["ours"] == [2, 8400, 1, 3000] and state["confirmed"] == 1
    assert desk.state("P-1").status.value == "confirmed"
    assert {p.status for p in desk.rows(payments)} == {"confirmed", "voided"}
    with desk.engine.begin() as conn:
        again = desk.network._close(conn, TODAY, (2, 8400, 0, 0))
    assert not again["matched"] and again["confirmed"] == 0
    (row,) = desk.rows(mpn_day_closes)
    assert row.matched is False and row.center_cancels_count == 0


def test_a_store_failure_fails_the_answer_instead_of_raising(desk: Desk) -> None:
    """The link answers 9001 when the Deferred fails; nothing may raise into it."""
    from gateway.errors import StoreError
    from gateway.store import Store

    bill = desk.bill("P-1")
    stopped = Store(desk.engine, Clock(), threads=1)  # never started: run_interaction raises
    network = MpnNetwork(desk.network.config, stopped, desk.network.ingest, Clock())
    d = network.answer(desk.request("1100", Inquiry(desk.key(bill))), "test")
    failures: list[Any] = []
    d.addErrback(failures.append)
    assert failures and failures[0].check(StoreError)


def test_a_reused_triple_with_other_content_is_not_applied_but_counted(desk: Desk) -> None:
    from gateway.networks.mpn import CONFLICTING_RESENDS

    first, second = desk.bill("P-1"), desk.bill("P-2", amount=3000)
    paid = desk.pay(first)
    desk.ask(paid)
    before = CONFLICTING_RESENDS._value.get()
    reused = desk.request(
        "1200",
        PaymentNotice(desk.key(second), 3000, NOW, "0005", PaymentChannel.ATM),
        serial=int(paid.header.serial),
    )
    assert desk.ask(reused).header.response_code == "0000"  # as the spec says
    assert CONFLICTING_RESENDS._value.get() == before + 1
    assert len(desk.rows(payments)) == 1 and desk.state("P-2").status.value == "open"
