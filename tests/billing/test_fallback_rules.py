"""The fallback after a failed debit, as pure rules (gateway.billing.fallback): what each
failure leads to, and the two changes of a bill."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time

import pytest

from gateway import calendar
from gateway.billing.fallback import (
    Action,
    Decision,
    Failure,
    decide,
    earliest_debit_date,
    fallback_due_date,
    redebit_bill,
    reissue_with_channels,
)
from gateway.model import JST, Bill, BillStatus, Channel, Customer, PayEasyNumbers, Slip, Tax
from gateway.notice_rules import FallbackPolicy, FallbackWay

NOW = datetime(2026, 12, 9, 1, 0, tzinfo=UTC)  # Wednesday 10:00 JST
TODAY = date(2026, 12, 9)
DEBITED = date(2026, 12, 7)  # the failed debit: Monday
DUE = DEBITED
EVERYTHING = FallbackPolicy(frozenset(FallbackWay), due_days=14, redebit_days=14)
BILL = Bill(
    biller_id="water",
    bill_no="W-1",
    amount=4400,
    due_date=DUE,
    channels=frozenset({Channel.TRANSFER}),
    customer=Customer("C1", "山田 太郎", phone="09012345678"),
    tax=Tax(),
    description=None,
    created_at=NOW,
    updated_at=NOW,
)


def decided(
    bill: Bill = BILL,
    code: str = "1",
    policy: FallbackPolicy = EVERYTHING,
    **over: object,
) -> Decision:
    args: dict[str, object] = {
        "today": TODAY,
        "earliest": calendar.add_business_days(TODAY, 3),
        "redebits": 0,
        "last_debit": DEBITED,
        "mandate_active": True,
        "addable": frozenset({Channel.CVS, Channel.PAYEASY}),
        "due_date": date(2026, 12, 23),
    }
    args.update(over)
    return decide(bill, Failure(bill.bill_no, code, DEBITED), policy, **args)  # type: ignore[arg-type]


def test_short_of_funds_is_debited_again_on_the_first_reachable_date_in_the_window() -> None:
    assert decided() == Decision(Action.REDEBIT, redebit_date=date(2026, 12, 14))
    # With only the policy's window left: none reachable → the store and Pay-easy.
    late = decided(earliest=date(2026, 12, 22))
    assert late == Decision(
        Action.REISSUE,
        channels=frozenset({Channel.CVS, Channel.PAYEASY}),
        due_date=date(2026, 12, 23),
    )
    assert decided(earliest=date(2026, 12, 21)).redebit_date == date(2026, 12, 21)


@pytest.mark.parametrize("code", ["2", "3", "4"])
def test_a_result_that_ends_the_mandate_is_not_debited_again(code: str) -> None:
    assert decided(code=code).action is Action.REISSUE


def test_a_bill_is_debited_again_once_and_only_under_an_active_mandate() -> None:
    assert decided(redebits=1).action is Action.REISSUE
    assert decided(mandate_active=False).action is Action.REISSUE


def test_a_bill_also_payable_at_a_store_is_not_debited_again() -> None:
    both = replace(BILL, channels=frozenset({Channel.TRANSFER, Channel.CVS}))
    assert decided(both) == Decision(
        Action.REISSUE,
        channels=frozenset({Channel.CVS, Channel.PAYEASY}),
        due_date=date(2026, 12, 23),
    )


@pytest.mark.parametrize(
    ("code", "reason"),
    [("8", "result 8 starts no fallback"), ("N", "result N starts no fallback")],
)
def test_a_stop_by_the_biller_or_a_missing_result_starts_nothing(code: str, reason: str) -> None:
    assert decided(code=code) == Decision.none(reason)


def test_nothing_for_a_bill_that_is_paid_moved_on_or_under_no_policy() -> None:
    paid = replace(BILL, status=BillStatus.PAID)
    assert decided(paid) == Decision.none("the bill is paid")
    by_store = replace(BILL, channels=frozenset({Channel.CVS}))
    assert decided(by_store) == Decision.none("the bill is no longer collected by transfer")
    assert decided(last_debit=date(2026, 12, 14)) == Decision.none(
        "a later debit (2026-12-14) was requested"
    )
    assert decided(policy=FallbackPolicy()) == Decision.none("the biller has no fallback")


def test_an_expired_bill_still_falls_back() -> None:
    expired = replace(BILL, status=BillStatus.EXPIRED)
    assert decided(expired).action is Action.REDEBIT


def test_only_the_channels_that_can_carry_the_bill_are_added() -> None:
    cvs_only = FallbackPolicy(frozenset({FallbackWay.CVS, FallbackWay.PAYEASY}))
    assert decided(policy=cvs_only, addable=frozenset({Channel.PAYEASY})).channels == {
        Channel.PAYEASY
    }
    assert decided(policy=cvs_only, addable=frozenset()) == Decision.none(
        "cvs, payeasy: not possible for this bill (biller, gateway or amount)"
    )
    redebit_only = FallbackPolicy(frozenset({FallbackWay.REDEBIT}))
    assert decided(policy=redebit_only, redebits=1) == Decision.none(
        "no debit again, and no other channel in the biller's fallback"
    )
    nine = replace(BILL, reissue=9)
    assert decided(nine, policy=cvs_only).action is Action.NONE


def test_the_earliest_debit_date_follows_the_schedule() -> None:
    # No schedule: a request may be written today, lead_days bank days ahead.
    assert earliest_debit_date(NOW, 3, None) == calendar.add_business_days(TODAY, 3)
    # Before today's run (11:00 JST): today's run can still take it.
    assert earliest_debit_date(NOW, 3, time(11, 0)) == calendar.add_business_days(TODAY, 3)
    # After it: tomorrow's.
    assert earliest_debit_date(NOW, 3, time(9, 0)) == calendar.add_business_days(
        calendar.next_business_day(TODAY), 3
    )


def test_a_fallback_due_date_keeps_within_the_gateway_and_chain_limits() -> None:
    assert fallback_due_date(TODAY, EVERYTHING, [], 365) == date(2026, 12, 23)
    assert fallback_due_date(TODAY, EVERYTHING, [10, 30], 365) == date(2026, 12, 19)
    assert fallback_due_date(TODAY, EVERYTHING, [], 7) == date(2026, 12, 16)


def test_the_two_changes_of_a_bill() -> None:
    again = redebit_bill(replace(BILL, status=BillStatus.EXPIRED), date(2026, 12, 14), NOW)
    assert (again.status, again.due_date, again.version) == (
        BillStatus.OPEN,
        date(2026, 12, 14),
        2,
    )
    assert again.channels == {Channel.TRANSFER}

    slip = Slip(1, "9" * 44, 4400, date(2026, 12, 23), False)
    numbers = PayEasyNumbers("58191", "1234567890123456", "1234")
    moved = reissue_with_channels(
        BILL,
        add=frozenset({Channel.CVS, Channel.PAYEASY}),
        slip=slip,
        payeasy=numbers,
        due_date=date(2026, 12, 23),
        now=NOW,
    )
    assert moved.channels == {Channel.CVS, Channel.PAYEASY}
    assert (moved.reissue, moved.slip, moved.payeasy, moved.due_date) == (
        1,
        slip,
        numbers,
        date(2026, 12, 23),
    )
    with pytest.raises(ValueError, match="slip of the next reissue"):
        reissue_with_channels(
            BILL,
            add=frozenset({Channel.CVS}),
            slip=replace(slip, reissue=0),
            payeasy=None,
            due_date=date(2026, 12, 23),
            now=NOW,
        )
    assert NOW.astimezone(JST).date() == TODAY
