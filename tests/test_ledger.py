"""The bill/payment state machine (gateway/ledger.py, DESIGN.md §4)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from datetime import date, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gateway.errors import TransitionError
from gateway.ledger import LedgerChange, apply_message, cancel_bill, expire_bill, reissue_bill
from gateway.model import (
    JST,
    AnomalyKind,
    Bill,
    BillStatus,
    Channel,
    CollectionEvent,
    Customer,
    EventType,
    MessageKind,
    Payment,
    PaymentStatus,
    RefundReason,
    Slip,
    Tax,
)

CREATED = datetime(2026, 12, 1, 10, 0, tzinfo=JST)
NOW = datetime(2026, 12, 10, 9, 30, tzinfo=JST)
PAID_AT = datetime(2026, 12, 10, 9, 12, tzinfo=JST)
TODAY = date(2026, 12, 10)
DUE = date(2026, 12, 15)
AMOUNT = 5400
BARCODE0 = "91" + "0" * 42
BARCODE1 = "91" + "1" * 42


def slip(reissue: int = 0, amount: int = AMOUNT, due_date: date | None = DUE) -> Slip:
    return Slip(reissue=reissue, barcode=BARCODE0, amount=amount, due_date=due_date, stamp=False)


def make_bill(**changes: object) -> Bill:
    bill = Bill(
        biller_id="b_1",
        bill_no="INV-1",
        amount=AMOUNT,
        due_date=DUE,
        channels=frozenset({Channel.CVS, Channel.PAYEASY}),
        customer=Customer(customer_no="C1"),
        tax=Tax(),
        description=None,
        created_at=CREATED,
        updated_at=CREATED,
        slip=slip(),
    )
    return dataclasses.replace(bill, **changes)  # type: ignore[arg-type]


class Ids:
    """A deterministic ``new_id``: pay_1, rc_2, ..."""

    def __init__(self) -> None:
        self._n = itertools.count(1)

    def __call__(self, prefix: str) -> str:
        return f"{prefix}_{next(self._n)}"


def message(
    kind: MessageKind,
    key: str = "k1",
    *,
    amount: int = AMOUNT,
    channel: Channel = Channel.CVS,
    slip_reissue: int | None = 0,
    transfer_date: date | None = None,
    detail: dict[str, str] | None = None,
) -> CollectionEvent:
    return CollectionEvent(
        channel=channel,
        kind=kind,
        event_key=key,
        amount=amount,
        paid_at=PAID_AT,
        received_at=NOW,
        source="link:cvs",
        raw=b"",
        bill_key="BK1",
        slip_reissue=slip_reissue,
        transfer_date=transfer_date,
        store="000010:0012345",
        detail=detail or {},
    )


def payment(
    payment_id: str = "pay_0",
    key: str = "k1",
    *,
    status: PaymentStatus = PaymentStatus.PENDING,
    amount: int = AMOUNT,
    channel: Channel = Channel.CVS,
    bill_no: str | None = "INV-1",
) -> Payment:
    return Payment(
        payment_id=payment_id,
        biller_id="b_1",
        bill_no=bill_no,
        channel=channel,
        event_key=key,
        amount=amount,
        paid_at=PAID_AT,
        status=status,
        created_at=CREATED,
        confirmed_at=CREATED if status is PaymentStatus.CONFIRMED else None,
        voided_at=CREATED if status is PaymentStatus.VOIDED else None,
    )


def apply(
    bill: Bill | None,
    payments: Sequence[Payment],
    msg: CollectionEvent,
    *,
    slips: Sequence[Slip] = (),
    today: date = TODAY,
    biller_id: str | None = None,
) -> LedgerChange:
    return apply_message(
        bill,
        payments,
        msg,
        biller_id=biller_id,
        slips=slips,
        today=today,
        now=NOW,
        new_id=Ids(),
    )


def types(outcome: LedgerChange) -> list[EventType]:
    return [e.type for e in outcome.events]


def assert_nothing_applied(outcome: LedgerChange, bill: Bill | None) -> None:
    assert outcome.bill is bill
    assert not outcome.bill_changed
    assert outcome.payments == ()
    assert outcome.refund_cases == ()
    assert outcome.events == ()


def assert_duplicate(outcome: LedgerChange, bill: Bill | None) -> None:
    assert outcome.duplicate
    assert outcome.anomalies == ()
    assert_nothing_applied(outcome, bill)


def assert_anomaly(outcome: LedgerChange, bill: Bill | None, kind: AnomalyKind, key: str) -> None:
    assert not outcome.duplicate
    assert_nothing_applied(outcome, bill)
    assert [(a.kind, a.event_key) for a in outcome.anomalies] == [(kind, key)]


# --- cancel ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [BillStatus.OPEN, BillStatus.EXPIRED])
def test_cancel_open_or_expired_bill(status: BillStatus) -> None:
    bill = make_bill(status=status)
    out = cancel_bill(bill, now=NOW)
    assert out.bill is not None
    assert out.bill.status is BillStatus.CANCELLED
    assert out.bill.version == 2
    assert out.bill.updated_at == NOW
    assert out.bill_changed and not out.duplicate
    assert types(out) == [EventType.BILL_CANCELLED]
    assert out.payments == () and out.refund_cases == () and out.anomalies == ()


def test_cancel_cancelled_bill_is_a_duplicate() -> None:
    bill = make_bill(status=BillStatus.CANCELLED, version=2)
    assert_duplicate(cancel_bill(bill, now=NOW), bill)


@pytest.mark.parametrize("status", [BillStatus.PAID, BillStatus.CONFIRMED])
def test_cancel_paid_bill_is_refused(status: BillStatus) -> None:
    with pytest.raises(TransitionError) as err:
        cancel_bill(make_bill(status=status), now=NOW)
    assert (err.value.entity, err.value.state, err.value.action) == ("bill", status.value, "cancel")
    assert err.value.reason == "the bill is already paid"


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        cancel_bill(make_bill(), now=NOW.replace(tzinfo=None))


# --- reissue --------------------------------------------------------------------------------


def test_reissue_open_bill() -> None:
    bill = make_bill()
    new_slip = Slip(
        reissue=1, barcode=BARCODE1, amount=6000, due_date=date(2027, 1, 15), stamp=False
    )
    out = reissue_bill(
        bill, slip=new_slip, amount=6000, due_date=date(2027, 1, 15), today=TODAY, now=NOW
    )
    assert out.bill is not None and out.bill_changed and not out.duplicate
    assert out.bill.reissue == 1
    assert out.bill.amount == 6000
    assert out.bill.due_date == date(2027, 1, 15)
    assert out.bill.slip == new_slip
    assert out.bill.status is BillStatus.OPEN
    assert out.bill.version == 2
    assert (out.bill.biller_id, out.bill.bill_no) == (bill.biller_id, bill.bill_no)
    assert types(out) == [EventType.BILL_REISSUED]


def test_reissue_expired_bill_reopens_it() -> None:
    bill = make_bill(status=BillStatus.EXPIRED, due_date=date(2026, 12, 5), reissue=3, version=4)
    out = reissue_bill(bill, slip=slip(4), amount=AMOUNT, due_date=TODAY, today=TODAY, now=NOW)
    assert out.bill is not None
    assert (out.bill.status, out.bill.reissue, out.bill.version) == (BillStatus.OPEN, 4, 5)
    assert out.bill.due_date == TODAY
    assert types(out) == [EventType.BILL_REISSUED]


def test_reissue_bill_without_a_slip_or_due_date() -> None:
    bill = make_bill(channels=frozenset({Channel.PAYEASY}), slip=None)
    out = reissue_bill(bill, slip=None, amount=7000, due_date=None, today=TODAY, now=NOW)
    assert out.bill is not None
    assert (out.bill.amount, out.bill.due_date, out.bill.slip) == (7000, None, None)
    assert (out.bill.reissue, out.bill.version) == (1, 2)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (BillStatus.PAID, "the bill is already paid"),
        (BillStatus.CONFIRMED, "the bill is already paid"),
        (BillStatus.CANCELLED, "the bill is cancelled"),
    ],
)
def test_reissue_refused_for_paid_or_cancelled_bill(status: BillStatus, reason: str) -> None:
    with pytest.raises(TransitionError) as err:
        reissue_bill(
            make_bill(status=status),
            slip=slip(1),
            amount=AMOUNT,
            due_date=DUE,
            today=TODAY,
            now=NOW,
        )
    assert (err.value.state, err.value.action, err.value.reason) == (
        status.value,
        "reissue",
        reason,
    )


def test_reissue_after_nine_reissues_is_refused() -> None:
    bill = make_bill(reissue=8)
    out = reissue_bill(bill, slip=slip(9), amount=AMOUNT, due_date=DUE, today=TODAY, now=NOW)
    assert out.bill is not None and out.bill.reissue == 9
    with pytest.raises(TransitionError) as err:
        reissue_bill(out.bill, slip=slip(10), amount=AMOUNT, due_date=DUE, today=TODAY, now=NOW)
    assert err.value.reason == "a barcode has one reissue digit (0-9)"


def test_reissue_with_a_past_due_date_is_refused() -> None:
    with pytest.raises(TransitionError) as err:
        reissue_bill(
            make_bill(),
            slip=slip(1),
            amount=AMOUNT,
            due_date=TODAY - timedelta(days=1),
            today=TODAY,
            now=NOW,
        )
    assert err.value.reason == "the new due date is in the past"


@pytest.mark.parametrize(
    ("new_slip", "match"),
    [
        (slip(2), "reissue 2, expected 1"),
        (slip(0), "reissue 0, expected 1"),
        (slip(1, amount=AMOUNT + 1), "5401 yen"),
        (None, "needs the new one"),
    ],
)
def test_reissue_with_a_wrong_slip_is_a_programming_error(
    new_slip: Slip | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        reissue_bill(make_bill(), slip=new_slip, amount=AMOUNT, due_date=DUE, today=TODAY, now=NOW)


# --- expire ---------------------------------------------------------------------------------


def test_expire_open_bill_after_its_due_date() -> None:
    bill = make_bill()
    out = expire_bill(bill, today=DUE + timedelta(days=1), now=NOW)
    assert out.bill is not None and out.bill_changed and not out.duplicate
    assert (out.bill.status, out.bill.version) == (BillStatus.EXPIRED, 2)
    assert types(out) == [EventType.BILL_EXPIRED]


@pytest.mark.parametrize(
    "bill",
    [
        make_bill(),  # due date is today: still payable
        make_bill(due_date=None),
        make_bill(status=BillStatus.EXPIRED),
        make_bill(status=BillStatus.PAID),
        make_bill(status=BillStatus.CONFIRMED),
        make_bill(status=BillStatus.CANCELLED),
    ],
)
def test_expire_leaves_other_bills_alone(bill: Bill) -> None:
    out = expire_bill(bill, today=DUE, now=NOW)
    assert not out.duplicate and out.anomalies == ()
    assert_nothing_applied(out, bill)


# --- preliminary ----------------------------------------------------------------------------


def test_preliminary_pays_open_bill() -> None:
    bill = make_bill()
    out = apply(bill, [], message(MessageKind.PRELIMINARY))
    assert out.bill is not None and out.bill_changed and not out.duplicate
    assert (out.bill.status, out.bill.version, out.bill.late) == (BillStatus.PAID, 2, False)
    assert out.bill.double_paid is False
    (pay,) = out.payments
    assert pay.payment_id == "pay_1"
    assert (pay.biller_id, pay.bill_no, pay.channel, pay.event_key) == (
        "b_1",
        "INV-1",
        Channel.CVS,
        "k1",
    )
    assert (pay.status, pay.amount, pay.paid_at, pay.created_at) == (
        PaymentStatus.PENDING,
        AMOUNT,
        PAID_AT,
        NOW,
    )
    assert (pay.store, pay.confirmed_at, pay.late) == ("000010:0012345", None, False)
    assert out.refund_cases == () and out.anomalies == ()
    assert [(e.type, e.payment_id) for e in out.events] == [
        (EventType.PAYMENT_PRELIMINARY, "pay_1")
    ]


def test_preliminary_on_expired_bill_is_late() -> None:
    bill = make_bill(status=BillStatus.EXPIRED, version=2)
    out = apply(bill, [], message(MessageKind.PRELIMINARY), today=DUE + timedelta(days=3))
    assert out.bill is not None
    assert (out.bill.status, out.bill.late, out.bill.version) == (BillStatus.PAID, True, 3)
    assert out.payments[0].late is True
    assert out.refund_cases == ()
    assert types(out) == [EventType.PAYMENT_PRELIMINARY]


def test_preliminary_for_unknown_bill_opens_refund_case() -> None:
    out = apply(None, [], message(MessageKind.PRELIMINARY, amount=1234), biller_id="b_9")
    assert out.bill is None and not out.bill_changed
    (pay,) = out.payments
    assert (pay.biller_id, pay.bill_no, pay.status) == ("b_9", None, PaymentStatus.PENDING)
    (case,) = out.refund_cases
    assert (case.case_id, case.reason, case.amount) == ("rc_2", RefundReason.UNKNOWN_BILL, 1234)
    assert (case.biller_id, case.bill_no, case.payment_id, case.opened_at) == (
        "b_9",
        None,
        "pay_1",
        NOW,
    )
    assert types(out) == [EventType.PAYMENT_PRELIMINARY, EventType.REFUND_CASE_OPENED]
    assert out.events[1].case_id == "rc_2" and out.events[1].payment_id == "pay_1"


def test_preliminary_for_unknown_bill_of_unknown_biller() -> None:
    out = apply(None, [], message(MessageKind.PRELIMINARY))
    assert out.payments[0].biller_id == ""
    assert out.refund_cases[0].biller_id is None


def test_preliminary_on_cancelled_bill_opens_refund_case() -> None:
    bill = make_bill(status=BillStatus.CANCELLED, version=2)
    out = apply(bill, [], message(MessageKind.PRELIMINARY))
    assert out.bill is bill and not out.bill_changed
    assert out.payments[0].status is PaymentStatus.PENDING
    (case,) = out.refund_cases
    assert (case.reason, case.amount, case.bill_no) == (
        RefundReason.PAID_AFTER_CANCEL,
        AMOUNT,
        "INV-1",
    )
    assert types(out) == [EventType.PAYMENT_PRELIMINARY, EventType.REFUND_CASE_OPENED]


def test_preliminary_with_wrong_amount_for_the_slip_used() -> None:
    bill = make_bill()
    out = apply(bill, [], message(MessageKind.PRELIMINARY, amount=5000), slips=[slip()])
    assert out.bill is bill and not out.bill_changed
    (case,) = out.refund_cases
    assert (case.reason, case.amount) == (RefundReason.AMOUNT_MISMATCH, 5000)
    assert types(out) == [EventType.PAYMENT_PRELIMINARY, EventType.REFUND_CASE_OPENED]


def test_preliminary_with_an_old_slip_is_checked_against_that_slip() -> None:
    old, new = slip(0, amount=5000), slip(1, amount=AMOUNT)
    bill = make_bill(reissue=1, slip=new, version=2)
    paid_old = apply(
        bill, [], message(MessageKind.PRELIMINARY, amount=5000, slip_reissue=0), slips=[old, new]
    )
    assert paid_old.refund_cases == ()
    assert paid_old.bill is not None and paid_old.bill.status is BillStatus.PAID
    wrong = apply(
        bill, [], message(MessageKind.PRELIMINARY, amount=AMOUNT, slip_reissue=0), slips=[old, new]
    )
    assert [c.reason for c in wrong.refund_cases] == [RefundReason.AMOUNT_MISMATCH]
    assert wrong.bill is bill


def test_preliminary_without_slip_is_checked_against_the_bill_amount() -> None:
    bill = make_bill()
    mpn = message(MessageKind.PRELIMINARY, channel=Channel.PAYEASY, slip_reissue=None, amount=1)
    assert [c.reason for c in apply(bill, [], mpn).refund_cases] == [RefundReason.AMOUNT_MISMATCH]
    unknown_slip = message(MessageKind.PRELIMINARY, slip_reissue=7)
    assert apply(bill, [], unknown_slip).refund_cases == ()


def test_second_payment_makes_bill_double_paid() -> None:
    bill = make_bill(status=BillStatus.PAID, version=2)
    first = payment("pay_0", "k0")
    mpn = message(MessageKind.PRELIMINARY, "m1", channel=Channel.PAYEASY, slip_reissue=None)
    out = apply(bill, [first], mpn)
    assert out.bill is not None and out.bill_changed
    assert (out.bill.status, out.bill.double_paid, out.bill.version) == (BillStatus.PAID, True, 3)
    (pay,) = out.payments
    assert (pay.payment_id, pay.channel, pay.status) == (
        "pay_1",
        Channel.PAYEASY,
        PaymentStatus.PENDING,
    )
    (case,) = out.refund_cases
    assert (case.reason, case.payment_id, case.amount) == (
        RefundReason.DOUBLE_PAYMENT,
        "pay_1",
        AMOUNT,
    )
    assert types(out) == [
        EventType.PAYMENT_PRELIMINARY,
        EventType.BILL_DOUBLE_PAID,
        EventType.REFUND_CASE_OPENED,
    ]


def test_second_payment_on_confirmed_bill_keeps_it_confirmed() -> None:
    bill = make_bill(status=BillStatus.CONFIRMED, version=3)
    out = apply(
        bill,
        [payment("pay_0", "k0", status=PaymentStatus.CONFIRMED)],
        message(MessageKind.PRELIMINARY),
    )
    assert out.bill is not None
    assert (out.bill.status, out.bill.double_paid, out.bill.version) == (
        BillStatus.CONFIRMED,
        True,
        4,
    )
    assert [c.reason for c in out.refund_cases] == [RefundReason.DOUBLE_PAYMENT]


def test_third_payment_does_not_change_a_double_paid_bill() -> None:
    bill = make_bill(status=BillStatus.PAID, double_paid=True, version=3)
    out = apply(
        bill, [payment("pay_a", "ka"), payment("pay_b", "kb")], message(MessageKind.PRELIMINARY)
    )
    assert out.bill is bill and not out.bill_changed
    assert [c.reason for c in out.refund_cases] == [RefundReason.DOUBLE_PAYMENT]
    assert types(out) == [EventType.PAYMENT_PRELIMINARY, EventType.REFUND_CASE_OPENED]


def test_mismatched_payment_does_not_count_as_paying_the_bill() -> None:
    bill = make_bill()
    wrong = payment("pay_0", "k0", amount=1)
    out = apply(bill, [wrong], message(MessageKind.PRELIMINARY))
    assert out.bill is not None
    assert (out.bill.status, out.bill.double_paid) == (BillStatus.PAID, False)
    assert out.refund_cases == ()


def test_voided_payment_does_not_count_as_paying_the_bill() -> None:
    bill = make_bill()
    out = apply(
        bill,
        [payment("pay_0", "k0", status=PaymentStatus.VOIDED)],
        message(MessageKind.PRELIMINARY),
    )
    assert out.bill is not None
    assert (out.bill.status, out.bill.double_paid) == (BillStatus.PAID, False)
    assert out.refund_cases == ()


@pytest.mark.parametrize("status", list(PaymentStatus))
def test_preliminary_again_is_a_duplicate(status: PaymentStatus) -> None:
    bill = make_bill(status=BillStatus.OPEN if status is PaymentStatus.VOIDED else BillStatus.PAID)
    assert_duplicate(apply(bill, [payment(status=status)], message(MessageKind.PRELIMINARY)), bill)


def test_preliminary_same_key_on_other_channel_is_another_payment() -> None:
    bill = make_bill(status=BillStatus.PAID, version=2)
    mpn = message(MessageKind.PRELIMINARY, channel=Channel.PAYEASY, slip_reissue=None)
    out = apply(bill, [payment()], mpn)
    assert not out.duplicate and len(out.payments) == 1
    assert [c.reason for c in out.refund_cases] == [RefundReason.DOUBLE_PAYMENT]


def test_preliminary_same_key_other_amount_is_a_conflicting_duplicate() -> None:
    bill = make_bill(status=BillStatus.PAID, version=2)
    out = apply(bill, [payment()], message(MessageKind.PRELIMINARY, amount=AMOUNT + 100))
    assert_anomaly(out, bill, AnomalyKind.CONFLICTING_DUPLICATE, "k1")


# --- confirmation ---------------------------------------------------------------------------


def test_confirmation_confirms_pending_payment_and_bill() -> None:
    bill = make_bill(status=BillStatus.PAID, version=2)
    out = apply(
        bill, [payment()], message(MessageKind.CONFIRMATION, transfer_date=date(2026, 12, 18))
    )
    assert out.bill is not None and out.bill_changed and not out.duplicate
    assert (out.bill.status, out.bill.version) == (BillStatus.CONFIRMED, 3)
    (pay,) = out.payments
    assert (pay.payment_id, pay.status, pay.confirmed_at, pay.transfer_date) == (
        "pay_0",
        PaymentStatus.CONFIRMED,
        NOW,
        date(2026, 12, 18),
    )
    assert (pay.amount, pay.created_at) == (AMOUNT, CREATED)
    assert out.refund_cases == () and out.anomalies == ()
    assert [(e.type, e.payment_id) for e in out.events] == [(EventType.PAYMENT_CONFIRMED, "pay_0")]


def test_confirmation_keeps_late_flag() -> None:
    bill = make_bill(status=BillStatus.PAID, late=True, version=3)
    out = apply(bill, [payment()], message(MessageKind.CONFIRMATION), today=DUE + timedelta(5))
    assert out.bill is not None
    assert (out.bill.status, out.bill.late, out.bill.version) == (BillStatus.CONFIRMED, True, 4)


def test_confirmation_of_either_double_payment_confirms_the_bill() -> None:
    bill = make_bill(status=BillStatus.PAID, double_paid=True, version=3)
    payments = [payment("pay_a", "ka"), payment("pay_b", "kb")]
    out = apply(bill, payments, message(MessageKind.CONFIRMATION, "kb"))
    assert out.bill is not None
    assert (out.bill.status, out.bill.double_paid, out.bill.version) == (
        BillStatus.CONFIRMED,
        True,
        4,
    )
    assert types(out) == [EventType.PAYMENT_CONFIRMED]


def test_confirmation_on_confirmed_bill_leaves_bill_unchanged() -> None:
    bill = make_bill(status=BillStatus.CONFIRMED, double_paid=True, version=4)
    payments = [payment("pay_a", "ka", status=PaymentStatus.CONFIRMED), payment("pay_b", "kb")]
    out = apply(bill, payments, message(MessageKind.CONFIRMATION, "kb"))
    assert out.bill is bill and not out.bill_changed
    assert out.payments[0].status is PaymentStatus.CONFIRMED
    assert types(out) == [EventType.PAYMENT_CONFIRMED]


def test_confirmation_of_mismatched_payment_leaves_bill_open() -> None:
    bill = make_bill()
    out = apply(bill, [payment(amount=1)], message(MessageKind.CONFIRMATION, amount=1))
    assert out.bill is bill and not out.bill_changed
    assert out.payments[0].status is PaymentStatus.CONFIRMED


def test_confirmation_on_cancelled_bill_leaves_it_cancelled() -> None:
    bill = make_bill(status=BillStatus.CANCELLED, version=2)
    out = apply(bill, [payment()], message(MessageKind.CONFIRMATION))
    assert out.bill is bill and not out.bill_changed
    assert out.payments[0].status is PaymentStatus.CONFIRMED
    assert out.refund_cases == ()


def test_confirmation_for_unknown_bill_payment() -> None:
    out = apply(None, [payment(bill_no=None)], message(MessageKind.CONFIRMATION))
    assert out.bill is None and not out.bill_changed
    assert out.payments[0].status is PaymentStatus.CONFIRMED
    assert out.refund_cases == ()
    assert types(out) == [EventType.PAYMENT_CONFIRMED]


def test_confirmation_again_is_a_duplicate() -> None:
    bill = make_bill(status=BillStatus.CONFIRMED, version=3)
    out = apply(bill, [payment(status=PaymentStatus.CONFIRMED)], message(MessageKind.CONFIRMATION))
    assert_duplicate(out, bill)


def test_confirmation_after_void_is_an_anomaly() -> None:
    bill = make_bill(version=3)
    out = apply(bill, [payment(status=PaymentStatus.VOIDED)], message(MessageKind.CONFIRMATION))
    assert_anomaly(out, bill, AnomalyKind.CONFIRMATION_AFTER_VOID, "k1")
    assert out.anomalies[0].channel is Channel.CVS


def test_confirmation_without_preliminary_confirms_open_bill() -> None:
    bill = make_bill()
    out = apply(bill, [], message(MessageKind.CONFIRMATION, transfer_date=date(2026, 12, 18)))
    assert out.bill is not None
    assert (out.bill.status, out.bill.version, out.bill.late) == (BillStatus.CONFIRMED, 2, False)
    (pay,) = out.payments
    assert (pay.payment_id, pay.status, pay.confirmed_at, pay.transfer_date, pay.amount) == (
        "pay_1",
        PaymentStatus.CONFIRMED,
        NOW,
        date(2026, 12, 18),
        AMOUNT,
    )
    assert types(out) == [EventType.PAYMENT_CONFIRMED]


def test_transfer_result_zero_confirms_the_bill() -> None:
    bill = make_bill(channels=frozenset({Channel.TRANSFER}), slip=None)
    debit = message(
        MessageKind.CONFIRMATION,
        "Z1",
        channel=Channel.TRANSFER,
        slip_reissue=None,
        transfer_date=DUE,
    )
    out = apply(bill, [], debit)
    assert out.bill is not None and out.bill.status is BillStatus.CONFIRMED
    assert out.payments[0].channel is Channel.TRANSFER
    assert types(out) == [EventType.PAYMENT_CONFIRMED]


def test_confirmation_without_preliminary_on_expired_bill_is_late() -> None:
    bill = make_bill(status=BillStatus.EXPIRED, version=2)
    out = apply(bill, [], message(MessageKind.CONFIRMATION), today=DUE + timedelta(days=2))
    assert out.bill is not None
    assert (out.bill.status, out.bill.late, out.bill.version) == (BillStatus.CONFIRMED, True, 3)
    assert out.payments[0].late is True


def test_confirmation_without_preliminary_on_paid_bill_is_a_double_payment() -> None:
    bill = make_bill(status=BillStatus.PAID, version=2)
    out = apply(bill, [payment("pay_0", "k0")], message(MessageKind.CONFIRMATION))
    assert out.bill is not None
    # the bill is confirmed as soon as one of its paying payments is
    assert (out.bill.status, out.bill.double_paid, out.bill.version) == (
        BillStatus.CONFIRMED,
        True,
        3,
    )
    assert [(c.reason, c.payment_id) for c in out.refund_cases] == [
        (RefundReason.DOUBLE_PAYMENT, "pay_1")
    ]
    assert types(out) == [
        EventType.PAYMENT_CONFIRMED,
        EventType.BILL_DOUBLE_PAID,
        EventType.REFUND_CASE_OPENED,
    ]


@pytest.mark.parametrize(
    ("bill", "reason"),
    [
        (None, RefundReason.UNKNOWN_BILL),
        (make_bill(status=BillStatus.CANCELLED, version=2), RefundReason.PAID_AFTER_CANCEL),
    ],
)
def test_confirmation_without_preliminary_opens_refund_case(
    bill: Bill | None, reason: RefundReason
) -> None:
    out = apply(bill, [], message(MessageKind.CONFIRMATION), biller_id="b_1")
    assert out.bill is bill and not out.bill_changed
    assert out.payments[0].status is PaymentStatus.CONFIRMED
    assert [(c.reason, c.amount) for c in out.refund_cases] == [(reason, AMOUNT)]
    assert types(out) == [EventType.PAYMENT_CONFIRMED, EventType.REFUND_CASE_OPENED]


def test_confirmation_without_preliminary_with_wrong_amount() -> None:
    bill = make_bill()
    out = apply(bill, [], message(MessageKind.CONFIRMATION, amount=99))
    assert out.bill is bill and not out.bill_changed
    assert [(c.reason, c.amount) for c in out.refund_cases] == [(RefundReason.AMOUNT_MISMATCH, 99)]


# --- void -----------------------------------------------------------------------------------


def test_void_reopens_the_bill() -> None:
    bill = make_bill(status=BillStatus.PAID, version=2)
    out = apply(bill, [payment()], message(MessageKind.VOID))
    assert out.bill is not None and out.bill_changed and not out.duplicate
    assert (out.bill.status, out.bill.version) == (BillStatus.OPEN, 3)
    (pay,) = out.payments
    assert (pay.payment_id, pay.status, pay.voided_at) == ("pay_0", PaymentStatus.VOIDED, NOW)
    assert [(e.type, e.payment_id) for e in out.events] == [(EventType.PAYMENT_VOIDED, "pay_0")]
    assert out.refund_cases == () and out.anomalies == ()


def test_void_reopens_a_bill_without_due_date_as_open() -> None:
    bill = make_bill(status=BillStatus.PAID, due_date=None, version=2)
    out = apply(bill, [payment()], message(MessageKind.VOID), today=date(2030, 1, 1))
    assert out.bill is not None and out.bill.status is BillStatus.OPEN


def test_void_of_late_payment_reopens_the_bill_expired() -> None:
    bill = make_bill(status=BillStatus.PAID, late=True, version=3)
    out = apply(bill, [payment()], message(MessageKind.VOID), today=DUE + timedelta(days=1))
    assert out.bill is not None
    assert (out.bill.status, out.bill.late, out.bill.version) == (BillStatus.EXPIRED, False, 4)


def test_void_on_the_due_date_reopens_the_bill_open() -> None:
    bill = make_bill(status=BillStatus.PAID, version=2)
    out = apply(bill, [payment()], message(MessageKind.VOID), today=DUE)
    assert out.bill is not None and out.bill.status is BillStatus.OPEN


def test_void_of_one_of_two_payments_clears_double_paid() -> None:
    bill = make_bill(status=BillStatus.PAID, double_paid=True, version=3)
    payments = [payment("pay_a", "ka"), payment("pay_b", "kb")]
    out = apply(bill, payments, message(MessageKind.VOID, "ka"))
    assert out.bill is not None
    assert (out.bill.status, out.bill.double_paid, out.bill.version) == (
        BillStatus.PAID,
        False,
        4,
    )
    assert types(out) == [EventType.PAYMENT_VOIDED]


def test_void_of_pending_payment_beside_confirmed_one() -> None:
    bill = make_bill(status=BillStatus.CONFIRMED, double_paid=True, version=4)
    payments = [payment("pay_a", "ka", status=PaymentStatus.CONFIRMED), payment("pay_b", "kb")]
    out = apply(bill, payments, message(MessageKind.VOID, "kb"))
    assert out.bill is not None
    assert (out.bill.status, out.bill.double_paid, out.bill.version) == (
        BillStatus.CONFIRMED,
        False,
        5,
    )


def test_void_of_one_of_three_payments_keeps_double_paid() -> None:
    bill = make_bill(status=BillStatus.PAID, double_paid=True, version=3)
    payments = [payment("pay_a", "ka"), payment("pay_b", "kb"), payment("pay_c", "kc")]
    out = apply(bill, payments, message(MessageKind.VOID, "kb"))
    assert out.bill is bill and not out.bill_changed
    assert out.payments[0].status is PaymentStatus.VOIDED
    assert types(out) == [EventType.PAYMENT_VOIDED]


def test_void_on_cancelled_bill_keeps_it_cancelled() -> None:
    bill = make_bill(status=BillStatus.CANCELLED, version=2)
    out = apply(bill, [payment()], message(MessageKind.VOID))
    assert out.bill is bill and not out.bill_changed
    assert out.payments[0].status is PaymentStatus.VOIDED


def test_void_of_mismatched_payment_leaves_open_bill_alone() -> None:
    bill = make_bill()
    out = apply(bill, [payment(amount=1)], message(MessageKind.VOID, amount=1))
    assert out.bill is bill and not out.bill_changed
    assert out.payments[0].status is PaymentStatus.VOIDED


def test_void_for_unknown_bill_payment() -> None:
    out = apply(None, [payment(bill_no=None)], message(MessageKind.VOID))
    assert out.bill is None
    assert out.payments[0].status is PaymentStatus.VOIDED
    assert types(out) == [EventType.PAYMENT_VOIDED]


def test_void_again_is_a_duplicate() -> None:
    bill = make_bill(version=3)
    assert_duplicate(
        apply(bill, [payment(status=PaymentStatus.VOIDED)], message(MessageKind.VOID)), bill
    )


def test_void_after_confirmation_is_an_anomaly() -> None:
    bill = make_bill(status=BillStatus.CONFIRMED, version=3)
    out = apply(bill, [payment(status=PaymentStatus.CONFIRMED)], message(MessageKind.VOID))
    assert_anomaly(out, bill, AnomalyKind.VOID_AFTER_CONFIRMATION, "k1")


def test_void_without_payment_is_an_anomaly() -> None:
    bill = make_bill()
    out = apply(bill, [payment("pay_0", "k0")], message(MessageKind.VOID, "k1"))
    assert_anomaly(out, bill, AnomalyKind.VOID_WITHOUT_PAYMENT, "k1")


def test_void_without_payment_for_unknown_bill_is_an_anomaly() -> None:
    assert_anomaly(
        apply(None, [], message(MessageKind.VOID)), None, AnomalyKind.VOID_WITHOUT_PAYMENT, "k1"
    )


# --- failure --------------------------------------------------------------------------------


def test_transfer_failure_only_emits_an_event() -> None:
    bill = make_bill(channels=frozenset({Channel.TRANSFER}), slip=None)
    detail = {"result_code": "1"}
    fail = message(
        MessageKind.FAILURE, "Z1", channel=Channel.TRANSFER, slip_reissue=None, detail=detail
    )
    out = apply(bill, [], fail)
    assert out.bill is bill and not out.bill_changed and not out.duplicate
    assert out.payments == () and out.refund_cases == () and out.anomalies == ()
    assert types(out) == [EventType.TRANSFER_FAILED]
    assert out.events[0].detail == {"result_code": "1"}
    assert out.events[0].payment_id is None
    detail["result_code"] = "changed"
    assert out.events[0].detail == {"result_code": "1"}


# --- property: any sequence of messages keeps the ledger consistent -------------------------

# (channel, event key, amount): three real payments of the bill's amount, one of a wrong amount
KEYS = [
    (Channel.CVS, "c0", AMOUNT),
    (Channel.CVS, "c1", AMOUNT),
    (Channel.PAYEASY, "m0", AMOUNT),
    (Channel.CVS, "bad", AMOUNT + 1),
]
KINDS = [MessageKind.PRELIMINARY, MessageKind.CONFIRMATION, MessageKind.VOID]
PAYS_THE_BILL = {None, RefundReason.DOUBLE_PAYMENT}
ALLOWED = {
    PaymentStatus.PENDING: {PaymentStatus.CONFIRMED, PaymentStatus.VOIDED},
    PaymentStatus.CONFIRMED: set(),
    PaymentStatus.VOIDED: set(),
}


class LedgerMachine(RuleBasedStateMachine):
    """A store in memory applying outcomes; checked against the rules after every step."""

    @initialize()
    def start(self) -> None:
        self.bill = make_bill(due_date=TODAY + timedelta(days=1))
        self.today = TODAY
        self.payments: dict[str, Payment] = {}
        self.reasons: dict[str, RefundReason] = {}  # payment_id -> refund reason
        self.changes = 0
        self.applied: list[CollectionEvent] = []
        self.new_id = Ids()

    def store(self, out: LedgerChange) -> None:
        before = self.bill
        if out.bill_changed:
            assert out.bill is not None and out.bill is not before
            assert out.bill.version == before.version + 1
            self.bill = out.bill
            self.changes += 1
        else:
            assert out.bill is before
        paid = {BillStatus.PAID, BillStatus.CONFIRMED}
        if before.status is BillStatus.EXPIRED and self.bill.status in paid:
            assert self.bill.late  # an expired bill paid late
        elif before.status in paid and self.bill.status in paid:
            assert self.bill.late == before.late
        else:
            assert not self.bill.late
        if out.duplicate:
            assert out.payments == () and out.events == () and out.anomalies == ()
        for pay in out.payments:
            old = self.payments.get(pay.payment_id)
            if old is not None:
                assert pay.status in ALLOWED[old.status]
            self.payments[pay.payment_id] = pay
        for case in out.refund_cases:
            assert case.payment_id not in self.reasons
            assert case.amount == self.payments[case.payment_id].amount
            self.reasons[case.payment_id] = case.reason
        kinds = types(out)
        if out.payments:
            assert kinds[0] in {
                EventType.PAYMENT_PRELIMINARY,
                EventType.PAYMENT_CONFIRMED,
                EventType.PAYMENT_VOIDED,
            }
        assert kinds.count(EventType.REFUND_CASE_OPENED) == len(out.refund_cases)
        assert (EventType.BILL_DOUBLE_PAID in kinds) == (
            self.bill.double_paid and not before.double_paid
        )

    def apply(self, msg: CollectionEvent) -> LedgerChange:
        return apply_message(
            self.bill,
            list(self.payments.values()),
            msg,
            biller_id=self.bill.biller_id,
            slips=[slip()],
            today=self.today,
            now=NOW,
            new_id=self.new_id,
        )

    @rule(kind=st.sampled_from(KINDS), which=st.sampled_from(KEYS))
    def receive(self, kind: MessageKind, which: tuple[Channel, str, int]) -> None:
        channel, key, amount = which
        slip_reissue = 0 if channel is Channel.CVS else None
        msg = message(kind, key, amount=amount, channel=channel, slip_reissue=slip_reissue)
        out = self.apply(msg)
        self.store(out)
        if out.duplicate or out.payments:
            self.applied.append(msg)

    @precondition(lambda self: bool(self.applied))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        msg = data.draw(st.sampled_from(self.applied))
        before = self.bill
        out = self.apply(msg)
        assert out.duplicate
        assert_duplicate(out, before)

    @rule()
    def cancel(self) -> None:
        if self.bill.status in {BillStatus.PAID, BillStatus.CONFIRMED}:
            with pytest.raises(TransitionError):
                cancel_bill(self.bill, now=NOW)
        else:
            self.store(cancel_bill(self.bill, now=NOW))

    @rule()
    def next_day(self) -> None:
        self.today += timedelta(days=1)
        self.store(expire_bill(self.bill, today=self.today, now=NOW))

    @invariant()
    def one_payment_per_event_key(self) -> None:
        keys = [(p.channel, p.event_key) for p in self.payments.values()]
        assert len(keys) == len(set(keys))

    @invariant()
    def bill_follows_its_paying_payments(self) -> None:
        bill = self.bill
        paying = [
            p
            for p in self.payments.values()
            if p.live and self.reasons.get(p.payment_id) in PAYS_THE_BILL
        ]
        assert bill.double_paid == (len(paying) >= 2)
        # only the payment that paid the bill first goes without a refund case
        assert sum(1 for p in paying if p.payment_id not in self.reasons) <= 1
        if bill.status is BillStatus.CANCELLED:
            assert paying == [] and not bill.late
            return
        confirmed = any(p.status is PaymentStatus.CONFIRMED for p in paying)
        expected = {
            (True, True): {BillStatus.CONFIRMED},
            (True, False): {BillStatus.PAID},
            (False, False): {BillStatus.OPEN, BillStatus.EXPIRED},
        }[(bool(paying), confirmed)]
        assert bill.status in expected
        if bill.late:
            assert paying and bill.due_date is not None and bill.due_date < self.today
        if bill.status is BillStatus.EXPIRED:
            assert bill.due_date is not None and bill.due_date < self.today

    @invariant()
    def every_change_is_one_version(self) -> None:
        assert self.bill.version == 1 + self.changes

    @invariant()
    def refund_cases_only_for_payments_that_do_not_pay(self) -> None:
        for payment_id, reason in self.reasons.items():
            assert reason is not RefundReason.UNKNOWN_BILL
            if reason is RefundReason.AMOUNT_MISMATCH:
                assert self.payments[payment_id].amount != AMOUNT


LedgerMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)
TestLedgerMachine = LedgerMachine.TestCase
