"""Reusable payer numbers on the MPN link (gateway.networks.mpn_payer): 照会 answers the
customer's oldest open bill, 消込 pays the bill the day's 照会 answered, the refusal codes when
nothing is open, the guard, 取消 and 閉局; amounts the payer chooses."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from gateway.ingest import Received
from gateway.ledger import cancel_bill
from gateway.mappers.mpn import numbers
from gateway.mappers.mpn.mapper import (
    Cancel,
    Inquiry,
    InquiryAnswer,
    Key,
    Message,
    PaymentChannel,
    PaymentNotice,
    ResendCheck,
)
from gateway.model import (
    Bill,
    BillStatus,
    BillTerms,
    Channel,
    CollectionEvent,
    Customer,
    MessageKind,
    PayerNumber,
    Tax,
)
from gateway.networks.mpn_payer import nothing_open
from gateway.store.billers import get_biller
from gateway.store.bills import Identifiers, NewBill, get_bill, insert_bill, save_bill
from gateway.store.payer_numbers import insert_payer_number, revoke_payer_number
from gateway.store.schema import payments, refund_cases
from tests.networks.test_mpn_answers import NOW, TODAY, Desk
from tests.networks.test_mpn_answers import desk as desk  # the fixture, reused

KEY = bytes.fromhex("5e1f0c2a9b7d4e6f8a3c1b2d0e9f7a6c")


def bill(
    d: Desk,
    bill_no: str,
    *,
    customer_no: str = "C1",
    amount: int = 5400,
    due: int = 10,
    channels: frozenset[Channel] = frozenset({Channel.CVS, Channel.PAYEASY}),
    payer_range: tuple[int, int] | None = None,
) -> Bill:
    terms = BillTerms(
        bill_no,
        0 if payer_range else amount,
        TODAY + timedelta(days=due),
        channels,
        Customer(customer_no=customer_no),
        Tax(),
        None,
        min_amount=payer_range[0] if payer_range else None,
        max_amount=payer_range[1] if payer_range else None,
    )
    with d.engine.begin() as conn:
        biller = get_biller(conn, "acme")

        def identify(serial: int) -> Identifiers:
            return d.issuer.identify(biller, serial, terms, TODAY)

        made, _ = insert_bill(conn, NewBill("acme", terms, "t" + bill_no), NOW, identify)
    return made


def payer(d: Desk, customer_no: str = "C1") -> PayerNumber:
    with d.engine.begin() as conn:
        biller = get_biller(conn, "acme")
        made, created = insert_payer_number(
            conn,
            "acme",
            customer_no,
            "58191",
            "424242",
            NOW,
            lambda serial: numbers.payer_number(biller.code, serial, KEY),
        )
    assert created
    return made


def key(p: PayerNumber, confirmation: str | None = None) -> Key:
    return Key(p.institution_code, p.customer_number, confirmation or p.confirmation_number)


def inquire(d: Desk, p: PayerNumber, day: date = TODAY, confirmation: str | None = None) -> Message:
    return d.ask(d.request("1100", Inquiry(key(p, confirmation)), day))


def pay(d: Desk, p: PayerNumber, amount: int, day: date = TODAY) -> Message:
    notice = PaymentNotice(key(p), amount, NOW, "0005", PaymentChannel.ATM)
    return d.request("1200", notice, day)


def code(message: Message) -> str:
    return message.header.response_code


def test_a_payer_number_is_18_digits_apart_from_every_bill_number() -> None:
    made = {numbers.payer_number("12345", serial, KEY) for serial in range(1000)}
    assert len(made) == 1000 and all(len(n) == 18 and n[:5] == "12345" for n in made)
    assert all(numbers.is_payer_number(n) for n in made)
    assert not numbers.is_payer_number(numbers.customer_number("12345", 7, KEY))


def test_a_payer_number_pays_the_customers_bills_oldest_first(desk: Desk) -> None:
    march = bill(desk, "2027-03", due=70, amount=5600)
    january = bill(desk, "2027-01", due=10, amount=5400)
    february = bill(desk, "2027-02", due=40, amount=5500)
    bill(desk, "OTHER", customer_no="C2", due=5)  # another customer's: never answered
    bill(desk, "NO-PAYEASY", due=1, channels=frozenset({Channel.CVS}))  # no Pay-easy numbers
    number = payer(desk)
    for month in (january, february, march):
        answer = inquire(desk, number)
        assert code(answer) == "0000" and isinstance(answer.body, InquiryAnswer)
        assert (answer.body.amount, answer.body.due_date, answer.body.biller_name) == (
            month.amount,
            month.due_date,
            "ｱｸﾒ ｶﾞｽ",
        )
        assert code(desk.ask(pay(desk, number, month.amount))) == "0000"
        assert desk.state(month.bill_no).status is BillStatus.PAID
    assert code(inquire(desk, number)) == "1002"  # all three paid
    assert code(desk.ask(pay(desk, number, 5400))) == "1002"
    rows = desk.rows(payments)
    assert sorted(r.amount for r in rows) == [5400, 5500, 5600]
    assert desk.rows(refund_cases) == []
    assert desk.state("OTHER").status is BillStatus.OPEN


def test_the_payment_pays_the_bill_its_inquiry_showed_even_if_paid_meanwhile(desk: Desk) -> None:
    """The ATM showed January's bill; January is paid at a store before the payer confirms:
    the 消込 is still January's (the bank has the money), a double payment the ledger flags."""
    january = bill(desk, "2027-01", due=10)
    bill(desk, "2027-02", due=40)
    number = payer(desk)
    assert code(inquire(desk, number)) == "0000"
    assert january.slip is not None
    with desk.engine.begin() as conn:  # the store payment, between 照会 and 消込
        desk.network.ingest.apply(
            conn,
            Received(
                CollectionEvent(
                    channel=Channel.CVS,
                    kind=MessageKind.PRELIMINARY,
                    event_key=f"{january.slip.barcode}{NOW:%Y%m%d%H%M}0000100110002",
                    amount=5400,
                    paid_at=NOW,
                    received_at=NOW,
                    source="link:test",
                    raw=b"",
                    bill_key=january.slip.barcode[2:29],
                    slip_reissue=0,
                    store="000010-0110002",
                )
            ),
            NOW,
            TODAY,
        )
    assert code(desk.ask(pay(desk, number, 5400))) == "0000"
    assert desk.state("2027-01").double_paid
    assert desk.state("2027-02").status is BillStatus.OPEN
    assert [c.reason for c in desk.rows(refund_cases)] == ["double_payment"]


def test_without_an_inquiry_the_payment_pays_the_oldest_open_bill(desk: Desk) -> None:
    bill(desk, "2027-02", due=40)
    bill(desk, "2027-01", due=10)
    number = payer(desk)
    assert code(desk.ask(pay(desk, number, 5400))) == "0000"
    assert desk.state("2027-01").status is BillStatus.PAID
    assert desk.state("2027-02").status is BillStatus.OPEN
    # An inquiry of yesterday binds nothing today.
    yesterday = TODAY - timedelta(days=1)
    assert code(inquire(desk, number, day=yesterday)) == "0000"
    assert code(desk.ask(pay(desk, number, 5400))) == "0000"
    assert desk.state("2027-02").status is BillStatus.PAID


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (set(), "1001"),
        ({BillStatus.CANCELLED}, "1005"),
        ({BillStatus.CANCELLED, BillStatus.CONFIRMED}, "1002"),
        ({BillStatus.PAID, BillStatus.EXPIRED, BillStatus.CANCELLED}, "1003"),
    ],
)
def test_the_refusal_when_nothing_is_open(states: set[BillStatus], expected: str) -> None:
    assert nothing_open(states) == expected


def test_nothing_open_answers_the_right_refusal(desk: Desk) -> None:
    number = payer(desk)
    assert code(inquire(desk, number)) == "1001"  # no bill at all
    assert code(desk.ask(pay(desk, number, 5400))) == "1001"
    bill(desk, "2027-01", due=10)
    with desk.engine.begin() as conn:
        found = get_bill(conn, "acme", "2027-01", for_update=True)
        assert found is not None
        outcome = cancel_bill(found[1], now=NOW)
        assert outcome.bill is not None
        save_bill(conn, found[0], found[1], outcome.bill)
    assert code(inquire(desk, number)) == "1005"  # cancelled
    bill(desk, "2027-02", due=3)
    assert code(inquire(desk, number, day=TODAY + timedelta(days=4))) == "1003"  # past due
    assert desk.rows(payments) == []


def test_a_wrong_confirmation_number_and_the_guard(desk: Desk) -> None:
    bill(desk, "2027-01")
    number = payer(desk)
    assert [code(inquire(desk, number, confirmation="000000")) for _ in range(5)] == ["1001"] * 5
    assert code(inquire(desk, number)) == "1001"  # locked for the day, right number or not
    assert code(desk.ask(pay(desk, number, 5400))) == "1001"
    assert code(inquire(desk, number, day=TODAY + timedelta(days=1))) == "0000"
    unknown = Key("58191", numbers.payer_number("99999", 1, KEY), "424242")
    assert code(desk.ask(desk.request("1100", Inquiry(unknown)))) == "1001"


def test_another_amount_is_refused_and_resends_change_nothing(desk: Desk) -> None:
    bill(desk, "2027-01", amount=5400)
    number = payer(desk)
    assert code(inquire(desk, number)) == "0000"
    assert code(desk.ask(pay(desk, number, 5401))) == "1004"
    request = pay(desk, number, 5400)
    assert code(desk.ask(request)) == "0000"
    assert code(desk.ask(request)) == "0000"
    resend = desk.request("1400", ResendCheck(request.body), serial=int(request.header.serial))  # type: ignore[arg-type]
    assert code(desk.ask(resend)) == "0000"
    assert len(desk.rows(payments)) == 1 and desk.rows(refund_cases) == []


def test_a_cancel_reopens_the_bill_the_payer_number_paid(desk: Desk) -> None:
    january = bill(desk, "2027-01", due=10)
    bill(desk, "2027-02", due=40, amount=5500)
    number = payer(desk)
    inquire(desk, number)
    paid = pay(desk, number, 5400)
    desk.ask(paid)
    h = paid.header
    cancel = desk.request(
        "1300", Cancel(h.center_code, h.business_date, h.serial, key(number), 5400)
    )
    assert code(desk.ask(cancel)) == "0000"
    assert [p.status for p in desk.rows(payments)] == ["voided"]
    assert desk.state("2027-01").status is BillStatus.OPEN
    answer = inquire(desk, number)  # January is the one to pay again
    assert isinstance(answer.body, InquiryAnswer) and answer.body.due_date == january.due_date


def test_a_revoked_number_is_an_unknown_one_and_its_earlier_payment_can_be_cancelled(
    desk: Desk,
) -> None:
    bill(desk, "2027-01", due=10)
    bill(desk, "2027-02", due=40, amount=5500)
    number = payer(desk)
    inquire(desk, number)
    paid = pay(desk, number, 5400)
    assert code(desk.ask(paid)) == "0000"
    with desk.engine.begin() as conn:
        assert revoke_payer_number(conn, "acme", "C1", NOW, "key:k1") is not None
    assert code(inquire(desk, number)) == "1001"  # as a number the center never had
    assert code(desk.ask(pay(desk, number, 5500))) == "1001"
    assert desk.state("2027-02").status is BillStatus.OPEN
    # The 消込 made with it before still has its 取消: it is the bill's payment.
    h = paid.header
    cancel = desk.request(
        "1300", Cancel(h.center_code, h.business_date, h.serial, key(number), 5400)
    )
    assert code(desk.ask(cancel)) == "0000"
    assert desk.state("2027-01").status is BillStatus.OPEN
    # The customer's new number answers their bills again.
    fresh = payer(desk)
    assert fresh.customer_number != number.customer_number
    answer = inquire(desk, fresh)
    assert code(answer) == "0000" and isinstance(answer.body, InquiryAnswer)
    assert answer.body.amount == 5400


def test_the_day_close_counts_and_confirms_payer_number_payments(desk: Desk) -> None:
    bill(desk, "2027-01")
    number = payer(desk)
    inquire(desk, number)
    desk.ask(pay(desk, number, 5400))
    with desk.engine.begin() as conn:
        state = desk.network._close(conn, TODAY, (1, 5400, 0, 0))
    assert state["matched"] and state["confirmed"] == 1
    assert desk.state("2027-01").status is BillStatus.CONFIRMED


def test_an_amount_the_payer_chooses(desk: Desk) -> None:
    donation = bill(
        desk,
        "GIFT",
        customer_no="C9",
        channels=frozenset({Channel.PAYEASY}),
        payer_range=(1000, 50000),
    )
    number = payer(desk, "C9")
    answer = inquire(desk, number)
    assert code(answer) == "0000" and isinstance(answer.body, InquiryAnswer)
    assert answer.body.amount == 0  # the payer enters it
    assert code(desk.ask(pay(desk, number, 999))) == "1004"
    assert code(desk.ask(pay(desk, number, 50001))) == "1004"
    assert desk.rows(payments) == []
    assert code(desk.ask(pay(desk, number, 3000))) == "0000"
    assert [p.amount for p in desk.rows(payments)] == [3000]
    assert desk.state("GIFT").status is BillStatus.PAID
    # Its own number answers 0 too, and is refused 1002 once paid.
    assert donation.payeasy is not None
    own = desk.ask(desk.request("1100", Inquiry(desk.key(donation))))
    assert code(own) == "1002"


def test_an_amount_the_payer_chooses_through_the_bills_own_number(desk: Desk) -> None:
    donation = bill(desk, "GIFT", channels=frozenset({Channel.PAYEASY}), payer_range=(1000, 50000))
    answer = desk.ask(desk.request("1100", Inquiry(desk.key(donation))))
    assert isinstance(answer.body, InquiryAnswer) and answer.body.amount == 0
    assert code(desk.ask(desk.pay(donation, amount=60000))) == "1004"
    assert code(desk.ask(desk.pay(donation, amount=12345))) == "0000"
    assert [p.amount for p in desk.rows(payments)] == [12345]
