"""Fallback after a failed debit: what a transfer result that is not 0 leads to, by the biller's
policy (gateway.notice_rules.FallbackPolicy, whose docstring states the rules).

:func:`decide` is the rule, pure: from the bill as it is now, the failure, the policy and what
the store knows (the debits already redone, the latest debit requested, whether the mandate is
still active, the channels that could be added) it returns a :class:`Decision`: debit again on a
date, reissue with channels, or nothing (with why). :func:`redebit_bill` and
:func:`reissue_with_channels` are the two changes of the bill, pure too: each is a new version
of the bill (``version`` + 1), open again. The notice job (gateway.billing.notices) applies them
in the transaction that reads the ``transfer.failed`` event, with their events
``bill.redebit_scheduled`` and ``bill.fallback_issued``, so each failure is acted on once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from gateway import calendar
from gateway.model import JST, Bill, BillStatus, Channel, PayEasyNumbers, Slip
from gateway.notice_rules import (
    NO_FALLBACK_CODES,
    REDEBIT_CODES_EXCLUDED,
    FallbackPolicy,
    FallbackWay,
)

MAX_REISSUE = 9  # a barcode has one reissue digit
_WAY_CHANNEL = {FallbackWay.CVS: Channel.CVS, FallbackWay.PAYEASY: Channel.PAYEASY}


class Action(StrEnum):
    REDEBIT = "redebit"
    REISSUE = "reissue"
    NONE = "none"


@dataclass(frozen=True)
class Failure:
    """A failed debit, as its ``transfer.failed`` event says: the bill, the code, the date."""

    bill_no: str
    result_code: str
    debit_date: date

    @classmethod
    def from_event(cls, data: Mapping[str, Any]) -> Failure | None:
        """The failure a ``transfer.failed`` event's data describes (None: it names no bill)."""
        bill, detail = data.get("bill"), data.get("detail") or {}
        if not isinstance(bill, Mapping) or "bill_no" not in bill:
            return None
        try:
            day = date.fromisoformat(str(detail.get("debit_date")))
        except ValueError:
            return None
        return cls(str(bill["bill_no"]), str(detail.get("result_code", "")), day)


@dataclass(frozen=True)
class Decision:
    action: Action
    redebit_date: date | None = None
    channels: frozenset[Channel] = frozenset()  # added by a reissue
    due_date: date | None = None  # of a reissue
    reason: str | None = None  # why nothing is done

    @classmethod
    def none(cls, reason: str) -> Decision:
        return cls(Action.NONE, reason=reason)


def earliest_debit_date(now: datetime, lead_days: int, request_at: time | None) -> date:
    """The first debit date a request can still be written for: ``lead_days`` bank days after
    the next scheduled run (today's, if ``request_at`` has not come yet on a bank business day;
    with no schedule, today, as ``gateway-admin zengin request`` may run any time)."""
    local = now.astimezone(JST)
    today = local.date()
    if request_at is None or (calendar.is_business_day(today) and local.time() < request_at):
        run_day = today
    else:
        run_day = calendar.next_business_day(today)
    return calendar.add_business_days(run_day, lead_days)


def redebit_date(
    failure: Failure, original_due: date, earliest: date, window_days: int
) -> date | None:
    """The 再振替 date: the first debit date after the failed one that a request can still
    reach, if it is at most ``window_days`` days after the bill's original due date."""
    day = max(earliest, calendar.next_business_day(failure.debit_date))
    day = calendar.on_or_after(day)
    return day if day <= original_due + timedelta(days=window_days) else None


def fallback_due_date(
    today: date, policy: FallbackPolicy, windows: list[int], max_days: int
) -> date:
    """A reissue's due date: ``due_days`` ahead, no further than the gateway's ``max_due_days``
    nor any chain window the biller's chain rules bind a slip to."""
    return today + timedelta(days=min([policy.due_days, max_days, *windows]))


def decide(
    bill: Bill,
    failure: Failure,
    policy: FallbackPolicy,
    *,
    today: date,
    earliest: date,
    redebits: int,
    last_debit: date | None,
    mandate_active: bool,
    addable: frozenset[Channel],
    due_date: date,
) -> Decision:
    """What the gateway does about ``failure`` (see the module and gateway.notice_rules).

    ``earliest``: :func:`earliest_debit_date`; ``redebits``: the bill's debits already redone;
    ``last_debit``: the latest debit date requested for it; ``addable``: the channels the
    biller has, the gateway enables and the networks would carry this bill on; ``due_date``: a
    reissue's (:func:`fallback_due_date`)."""
    if bill.status not in (BillStatus.OPEN, BillStatus.EXPIRED):
        return Decision.none(f"the bill is {bill.status.value}")
    if Channel.TRANSFER not in bill.channels:
        return Decision.none("the bill is no longer collected by transfer")
    if last_debit is not None and last_debit > failure.debit_date:
        return Decision.none(f"a later debit ({last_debit}) was requested")
    if failure.result_code in NO_FALLBACK_CODES:
        return Decision.none(f"result {failure.result_code} starts no fallback")
    if not policy.ways:
        return Decision.none("the biller has no fallback")
    if (
        policy.redebit
        and bill.channels == {Channel.TRANSFER}  # else a second debit and a live slip at once
        and redebits == 0
        and failure.result_code not in REDEBIT_CODES_EXCLUDED
        and mandate_active
        and bill.due_date is not None
    ):
        day = redebit_date(failure, bill.due_date, earliest, policy.redebit_days)
        if day is not None:
            return Decision(Action.REDEBIT, redebit_date=day)
    wanted = frozenset(_WAY_CHANNEL[w] for w in policy.channels)
    if not wanted:
        return Decision.none("no debit again, and no other channel in the biller's fallback")
    channels = wanted & addable
    if not channels:
        names = ", ".join(sorted(wanted))
        return Decision.none(f"{names}: not possible for this bill (biller, gateway or amount)")
    if bill.reissue >= MAX_REISSUE:
        return Decision.none("the bill was reissued 9 times: a barcode has one reissue digit")
    return Decision(Action.REISSUE, channels=channels, due_date=due_date)


def redebit_bill(bill: Bill, day: date, now: datetime) -> Bill:
    """The bill to be debited again on ``day``: its due date becomes ``day`` (so that date's
    request takes it, and the expiry job waits for it), open again if it had expired."""
    return bill.changed(now, due_date=day, status=BillStatus.OPEN, late=False)


def reissue_with_channels(
    bill: Bill,
    *,
    add: frozenset[Channel],
    slip: Slip | None,
    payeasy: PayEasyNumbers | None,
    due_date: date,
    now: datetime,
) -> Bill:
    """The bill reissued for the channels ``add`` instead of transfer: ``reissue`` + 1, the new
    due date, the new slip when it has cvs (built with that reissue number), the Pay-easy
    numbers it had or the new ones; open again."""
    channels = (bill.channels - {Channel.TRANSFER}) | add
    if Channel.CVS in channels and (slip is None or slip.reissue != bill.reissue + 1):
        raise ValueError("a reissue with cvs needs the slip of the next reissue number")
    if Channel.PAYEASY in channels and bill.payeasy is None and payeasy is None:
        raise ValueError("a reissue with payeasy needs Pay-easy numbers")
    return bill.changed(
        now,
        channels=channels,
        reissue=bill.reissue + 1,
        due_date=due_date,
        slip=slip if Channel.CVS in channels else None,
        payeasy=bill.payeasy or (payeasy if Channel.PAYEASY in channels else None),
        status=BillStatus.OPEN,
        late=False,
        double_paid=False,
    )
