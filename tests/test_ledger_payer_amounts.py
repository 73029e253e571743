"""The state machine with bills whose amount the payer chooses (gateway/ledger.py, rule 3): any
amount of the range pays the bill, one outside it waits to be refunded, and a second payment in
the range is a double payment, as for any bill."""

from __future__ import annotations

import pytest

from gateway.model import (
    Bill,
    BillStatus,
    Channel,
    CollectionEvent,
    EventType,
    MessageKind,
    PaymentStatus,
    RefundReason,
)
from tests.test_ledger import apply, make_bill, message, payment, types


def donation(**changes: object) -> Bill:
    """A bill of 1,000 to 50,000 yen as the payer chooses (amount 0 in the model)."""
    fields: dict[str, object] = {
        "amount": 0,
        "min_amount": 1000,
        "max_amount": 50000,
        "channels": frozenset({Channel.PAYEASY}),
        "slip": None,
    }
    return make_bill(**{**fields, **changes})


def paid(amount: int, key: str = "m1") -> CollectionEvent:
    return message(
        MessageKind.PRELIMINARY, key, amount=amount, channel=Channel.PAYEASY, slip_reissue=None
    )


@pytest.mark.parametrize("amount", [1000, 3000, 50000])
def test_an_amount_of_the_range_pays_the_bill(amount: int) -> None:
    out = apply(donation(), [], paid(amount))
    assert out.bill is not None and out.bill.status is BillStatus.PAID
    assert [p.amount for p in out.payments] == [amount]
    assert out.refund_cases == ()
    assert types(out) == [EventType.PAYMENT_PRELIMINARY]


@pytest.mark.parametrize("amount", [0, 999, 50001])
def test_an_amount_outside_the_range_waits_to_be_refunded(amount: int) -> None:
    bill = donation()
    out = apply(bill, [], paid(amount))
    assert out.bill is bill and not out.bill_changed
    assert [(c.reason, c.amount) for c in out.refund_cases] == [
        (RefundReason.AMOUNT_MISMATCH, amount)
    ]


def test_a_second_payment_of_the_range_is_a_double_payment() -> None:
    bill = donation(status=BillStatus.PAID, version=2)
    first = payment("pay_0", "m0", amount=2000, channel=Channel.PAYEASY)
    out = apply(bill, [first], paid(7000))
    assert out.bill is not None and out.bill.double_paid
    assert [c.reason for c in out.refund_cases] == [RefundReason.DOUBLE_PAYMENT]


def test_a_payment_of_the_range_keeps_paying_when_another_is_voided() -> None:
    """The paying payments are recomputed by the range, not by the bill's amount (0)."""
    bill = donation(status=BillStatus.PAID, version=3, double_paid=True)
    first = payment("pay_0", "m0", amount=2000, channel=Channel.PAYEASY)
    second = payment("pay_1", "m1", amount=7000, channel=Channel.PAYEASY)
    void = message(MessageKind.VOID, "m1", amount=7000, channel=Channel.PAYEASY, slip_reissue=None)
    out = apply(bill, [first, second], void)
    assert out.bill is not None
    assert (out.bill.status, out.bill.double_paid) == (BillStatus.PAID, False)
    assert [p.status for p in out.payments] == [PaymentStatus.VOIDED]
