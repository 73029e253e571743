"""The values of contracts and settlements (DESIGN.md §7): fee plans, cycles, the figures of a
period and the lines, totals and detail rows of a settlement.

Kernel values: the store reads and writes them (gateway.store.settlements) and the money rules
compute with them (gateway.money.fees: reading a plan, the tax, the payout date, a statement's
lines), so they stand below both. Pure: plain values on dates and int yen, no clock, no I/O.

A biller's contract is a list of :class:`FeePlan` versions, each in force from its
``effective_from`` (a JST date) until the next one's. A change applies from its date on:

* per-item fees (collected payment, uncollected slip, stamp charge) are those of the plan in
  force on the item's date — the JST date a payment was confirmed, a bill's due date;
* the per-settlement fee, the tax rounding and the payout delay are those of the plan in force
  on the period's last day;
* the cycle: a period ends on the first day, from its start on, that is a closing day of the
  plan in force on that day. Every cycle closes at month end, so no period spans two months.

Periods of a biller are contiguous: the first starts on the first plan's date, each next one the
day after the previous one ended.

The fees beyond the per-item ones (issue 21), each on its own statement line and taxed as fees:

* the initial fee (初期費用) of the plan in force on the first period's last day, once, in the
  biller's first settlement;
* the monthly base fee (月額基本料) of the plan in force on a month's last day, in the settlement
  whose period ends that day (every cycle closes at month end, so there is exactly one); waived
  for a month in which nothing was collected when that plan says ``waive_idle_months``;
* per-bill fees (請求発行手数料): each bill registered in the period, whatever its channels, at
  the plan in force on the day it was registered;
* per-notice fees (通知手数料): each e-mail, SMS or printed sheet the gateway recorded
  (``notice_charges``), at the plan in force on the day it was recorded.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from gateway.model import JST, BankAccount, Channel


class Cycle(StrEnum):
    """When a settlement period closes (締日). Every cycle closes at month end too."""

    MONTHLY = "monthly"  # month end
    TWICE_MONTHLY = "twice_monthly"  # 15th, month end
    THREE_TIMES_MONTHLY = "three_times_monthly"  # 10th, 20th, month end
    SIX_TIMES_MONTHLY = "six_times_monthly"  # 5th, 10th, 15th, 20th, 25th, month end


CLOSING_DAYS: Mapping[Cycle, tuple[int, ...]] = {
    Cycle.MONTHLY: (),
    Cycle.TWICE_MONTHLY: (15,),
    Cycle.THREE_TIMES_MONTHLY: (10, 20),
    Cycle.SIX_TIMES_MONTHLY: (5, 10, 15, 20, 25),
}


class Rounding(StrEnum):
    """How the tax on fees is rounded to the yen, once per statement and tax rate."""

    FLOOR = "floor"  # 切り捨て
    HALF_UP = "half_up"  # 四捨五入
    CEIL = "ceil"  # 切り上げ


def month_end(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def is_closing_day(cycle: Cycle, d: date) -> bool:
    return d.day in CLOSING_DAYS[cycle] or d == month_end(d)


class NoticeKind(StrEnum):
    """What a per-notice fee is charged for: a notice the gateway sent or printed."""

    EMAIL = "email"  # an e-mail to the customer (the page URL, a reminder, a receipt…)
    SMS = "sms"  # a text message to the customer's phone
    SHEET = "sheet"  # a printed sheet of slips (払込票)


def jst_midnight(d: date) -> datetime:
    """The instant a JST date begins: the boundary the store compares timestamps with."""
    return datetime.combine(d, time(0), JST)


@dataclass(frozen=True)
class ChannelRates:
    per_payment: int = 0  # each confirmed payment
    per_uncollected: int = 0  # each bill due in the period and never paid
    # Each stamped payment (the revenue stamp the payee affixed to the receipt): only a channel
    # whose payments can carry one has a charge (gateway.money.fees.STAMP_CHARGES).
    stamp_charge: int = 0


@dataclass(frozen=True)
class FeePlan:
    effective_from: date
    cycle: Cycle
    payout_days: int  # payout on T+n bank business days, T the period's last day
    settlement_fee: int
    tax_rate: int  # percent, on fees (stamp duty is not taxed)
    tax_rounding: Rounding
    rates: Mapping[Channel, ChannelRates] = field(default_factory=dict)
    plan_id: int | None = None
    initial_fee: int = 0  # once, in the biller's first settlement
    monthly_fee: int = 0  # in the settlement that closes each month
    waive_idle_months: bool = False  # no monthly fee for a month without a collection
    per_bill: int = 0  # each bill registered in the period, whatever its channels
    notice_rates: Mapping[NoticeKind, int] = field(default_factory=dict)

    def rate(self, channel: Channel) -> ChannelRates:
        return self.rates.get(channel, ChannelRates())

    def notice_rate(self, kind: NoticeKind) -> int:
        return self.notice_rates.get(kind, 0)

    def document(self) -> dict[str, Any]:
        """The plan as the API shows it and :func:`gateway.money.fees.parse_plan` reads it."""
        return {
            "effective_from": self.effective_from.isoformat(),
            "cycle": self.cycle.value,
            "payout_days": self.payout_days,
            "settlement_fee": self.settlement_fee,
            "tax_rate": self.tax_rate,
            "tax_rounding": self.tax_rounding.value,
            "channels": {
                channel.value: rates_document(self.rate(channel))
                for channel in Channel
                if channel in self.rates
            },
            "initial_fee": self.initial_fee,
            "monthly_fee": self.monthly_fee,
            "waive_idle_months": self.waive_idle_months,
            "per_bill": self.per_bill,
            "notices": notices_document(self.notice_rates),
        }


def notices_document(rates: Mapping[NoticeKind, int]) -> dict[str, int]:
    return {kind.value: rates[kind] for kind in NoticeKind if kind in rates}


def rates_document(rates: ChannelRates) -> dict[str, int]:
    return {
        "per_payment": rates.per_payment,
        "per_uncollected": rates.per_uncollected,
        "stamp_charge": rates.stamp_charge,
    }


@dataclass(frozen=True)
class Contract:
    """A biller's fee plans, oldest first (at least one)."""

    plans: tuple[FeePlan, ...]

    def __post_init__(self) -> None:
        if not self.plans:
            raise ValueError("a contract has at least one fee plan")
        days = [p.effective_from for p in self.plans]
        if days != sorted(days) or len(set(days)) != len(days):
            raise ValueError("fee plans must be in effective_from order, one per date")

    @property
    def start(self) -> date:
        return self.plans[0].effective_from

    def plan_index(self, d: date) -> int:
        """The plan in force on ``d`` (the first one for a day before the contract began)."""
        index = 0
        for i, plan in enumerate(self.plans):
            if plan.effective_from <= d:
                index = i
        return index

    def plan_on(self, d: date) -> FeePlan:
        return self.plans[self.plan_index(d)]

    def period_after(self, previous_end: date | None) -> tuple[date, date]:
        """The period that follows one ending on ``previous_end`` (None: the first period)."""
        start = self.start if previous_end is None else previous_end + timedelta(days=1)
        end = start
        while not is_closing_day(self.plan_on(end).cycle, end):
            end += timedelta(days=1)
        return start, end

    def boundaries(self) -> list[tuple[int, datetime]]:
        """(plan index, the instant it comes into force) for every plan but the first, newest
        first: what a store query turns into a ``CASE`` to find each item's plan."""
        return [(i, jst_midnight(p.effective_from)) for i, p in enumerate(self.plans)][1:][::-1]


# --- a period's figures and its statement ---------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """What the store counted for one settlement. Keys with a plan are plan indexes."""

    collected: Mapping[tuple[Channel, int], tuple[int, int]]  # → (count, sum)
    stamped: Mapping[tuple[Channel, int], int] = field(default_factory=dict)  # → stamped payments
    uncollected: Mapping[tuple[Channel, int], int] = field(default_factory=dict)  # → bills
    refunds: tuple[int, int] = (0, 0)  # (count, sum) of refunded cases
    carried_in: int = 0  # the previous settlement's shortfall
    returned: tuple[int, int] = (0, 0)  # (count, sum) of returned payouts (振込不能) carried in
    first: bool = False  # the biller's first settlement: the initial fee is charged
    # The period ends on a month's last day: (payments collected in that month's settlements,
    # this one's included) — the monthly fee is charged, or waived for an idle month. None: not.
    month_collected: int | None = None
    bills: Mapping[int, int] = field(default_factory=dict)  # plan → bills registered
    notices: Mapping[tuple[NoticeKind, int], int] = field(default_factory=dict)  # → notices


class LineKind(StrEnum):
    COLLECTION = "collection"
    PAYMENT_FEE = "payment_fee"
    UNCOLLECTED_FEE = "uncollected_fee"
    SETTLEMENT_FEE = "settlement_fee"
    INITIAL_FEE = "initial_fee"
    MONTHLY_FEE = "monthly_fee"
    BILL_FEE = "bill_fee"
    NOTICE_FEE = "notice_fee"
    TAX = "tax"
    STAMP_DUTY = "stamp_duty"
    REFUND = "refund"
    CARRIED_IN = "carried_in"
    CARRIED_OUT = "carried_out"
    RETURNED_PAYOUT = "returned_payout"  # 前回振込不能分: a payout the bank returned, paid again


@dataclass(frozen=True)
class Line:
    kind: LineKind
    description: str
    quantity: int
    unit_amount: int | None
    amount: int  # signed: + owed to the biller, − deducted
    channel: Channel | None = None


@dataclass(frozen=True)
class Totals:
    payments_count: int
    collected: int
    fees: int
    tax: int
    stamp_count: int
    stamp_duty: int
    refunds: int
    carried_in: int
    carried_out: int
    payout: int
    returned_in: int = 0  # payouts of earlier settlements the bank returned (振込不能), paid here


# --- what is stored and shown -----------------------------------------------------------------


class PayoutState(StrEnum):
    """Where a settlement's payout stands (docs/settlement.md, "Payouts")."""

    SETTLED = "settled"  # in no payout file yet (or nothing to pay: a payout of ¥0)
    PAYOUT_REQUESTED = "payout_requested"  # in a 総合振込 file for its transfer date
    PAID_OUT = "paid_out"  # the file is written and its transfer date has come
    PAYOUT_RETURNED = "payout_returned"  # the bank returned it (振込不能): carried forward


@dataclass(frozen=True)
class PayoutStatus:
    """A settlement's payout: its state and, once requested, the transfer that carries it."""

    state: PayoutState = PayoutState.SETTLED
    transfer_date: date | None = None  # the payout file's 取組日
    file_name: str | None = None
    account: BankAccount | None = None  # where it went; the number masked: "****567"
    return_code: str | None = None  # 振込不能事由 of a returned transfer
    carried_into: str | None = None  # the settlement that took the returned amount


@dataclass(frozen=True)
class Settlement:
    """One biller's settlement of one period, as stored."""

    settlement_id: str
    biller_id: str
    period_start: date
    period_end: date
    cycle: Cycle
    payout_date: date
    totals: Totals
    lines: tuple[Line, ...]
    created_at: datetime
    payout_status: PayoutStatus = PayoutStatus()


@dataclass(frozen=True)
class SettledPayment:
    """A payment a settlement paid out: a detail row of the statement."""

    payment_id: str
    bill_no: str | None
    channel: Channel
    amount: int
    paid_at: datetime
    confirmed_at: datetime
    stamped: bool  # a CVS payment whose slip asked the store for a revenue stamp
    place: str | None  # chain-store code (CVS), bank code and how (Pay-easy), bank-branch


@dataclass(frozen=True)
class DailyCollection:
    """One row of the per-day collection report: payments made on a JST business day through
    one channel and chain (CVS chain code; bank code for Pay-easy and transfers)."""

    day: date
    channel: Channel
    chain: str  # "" when the network named none
    count: int
    amount: int
    confirmed_count: int
    confirmed_amount: int
