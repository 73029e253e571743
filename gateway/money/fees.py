"""The money rules of contracts and settlements (DESIGN.md §7): reading a fee plan, the tax on
fees, the payout date and a period's statement lines.

Pure: plain values and functions on dates and int yen, no clock, no I/O. The values — plans,
contracts and their cycles, a period's figures, lines and totals — are the kernel's
(:mod:`gateway.fee_model`, where a contract's plan versions and periods are described), so that
the store reads and writes them without this module. The store gathers the counts and sums of a
period (:class:`Tally`); :func:`settle` turns them into statement lines whose amounts add up to
the payout, to the yen.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from gateway.calendar import next_business_day, on_or_after
from gateway.errors import FieldError
from gateway.fee_model import (
    ChannelRates,
    Contract,
    Cycle,
    FeePlan,
    Line,
    LineKind,
    NoticeKind,
    Rounding,
    Tally,
    Totals,
    month_end,
)
from gateway.model import Channel
from gateway.validation import Fields

MAX_FEE = 1_000_000  # yen per item or per settlement: far above any real plan
MAX_PAYOUT_DAYS = 30
MAX_TAX_RATE = 100  # percent
# A plan's first day: a contract is settled period by period from it, so a typo such as 1026
# must not stand for ten centuries of settlements.
EARLIEST_PLAN, LATEST_PLAN = date(2000, 1, 1), date(2099, 12, 31)
# 印紙税 on a receipt from ¥50,000 up to ¥1,000,000 (印紙税法 別表第一 17号); a CVS slip is at
# most ¥300,000 (the contract ceiling), so ¥200 is the only rate a store payment can need.
STAMP_CHARGE = 200
#: The channels whose payments can carry a revenue stamp, with the stamp charge of a plan that
#: names none: a store affixes the stamp to its receipt (the slip's 印紙フラグ asks for it). No
#: other channel's rates have a stamp charge, so no other channel gets a stamp-duty line.
STAMP_CHARGES: Mapping[Channel, int] = {Channel.CVS: STAMP_CHARGE}


def tax_on(amount: int, rate: int, rounding: Rounding) -> int:
    """``rate`` percent of ``amount`` yen, rounded; integer arithmetic only."""
    if amount < 0:
        return -tax_on(-amount, rate, rounding)
    scaled = amount * rate
    if rounding is Rounding.FLOOR:
        return scaled // 100
    if rounding is Rounding.CEIL:
        return -(-scaled // 100)
    return (scaled + 50) // 100


def parse_plan(body: object, effective_from: date | None = None) -> FeePlan:
    """A fee plan from its JSON document, every bad field named (InvalidRequest).

    ``effective_from`` given by the caller (the URL) wins over, and must agree with, the body's.
    """
    f = Fields(body)
    day = f.day("effective_from", required=effective_from is None)
    cycle = f.string("cycle", required=True, max_len=24)
    payout_days = f.integer("payout_days", required=True, low=0, high=MAX_PAYOUT_DAYS)
    settlement_fee = f.integer("settlement_fee", low=0, high=MAX_FEE)
    tax_rate = f.integer("tax_rate", low=0, high=MAX_TAX_RATE)
    rounding = f.string("tax_rounding", max_len=8)
    channels = f.obj("channels", required=True)
    initial_fee = f.integer("initial_fee", low=0, high=MAX_FEE)
    monthly_fee = f.integer("monthly_fee", low=0, high=MAX_FEE)
    waive_idle_months = f.boolean("waive_idle_months")
    per_bill = f.integer("per_bill", low=0, high=MAX_FEE)
    notices = f.obj("notices")
    f.finish()
    if cycle is not None and cycle not in set(Cycle):
        f.bad("cycle", f"must be one of {', '.join(Cycle)}")
    if rounding is not None and rounding not in set(Rounding):
        f.bad("tax_rounding", f"must be one of {', '.join(Rounding)}")
    if effective_from is not None and day is not None and day != effective_from:
        f.bad("effective_from", f"must be {effective_from} (the date in the path) or absent")
    elif not EARLIEST_PLAN <= (effective_from or day or EARLIEST_PLAN) <= LATEST_PLAN:
        f.bad("effective_from", f"must be a day from {EARLIEST_PLAN} to {LATEST_PLAN}")
    rates: dict[Channel, ChannelRates] = {}
    if channels is not None:
        for key in list(channels.raw):
            sub = channels.obj(key)
            if key not in set(Channel):
                channels.malformed.append(
                    FieldError(channels.name(key), f"must be one of {', '.join(Channel)}")
                )
                continue
            if sub is None:
                continue
            per_payment = sub.integer("per_payment", low=0, high=MAX_FEE)
            per_uncollected = sub.integer("per_uncollected", low=0, high=MAX_FEE)
            stamp = sub.integer("stamp_charge", low=0, high=MAX_FEE)
            sub.finish()
            channel = Channel(key)
            if stamp and channel not in STAMP_CHARGES:
                sub.bad("stamp_charge", "applies to convenience-store payments only")
            rates[channel] = ChannelRates(
                per_payment or 0,
                per_uncollected or 0,
                STAMP_CHARGES.get(channel, 0) if stamp is None else stamp,
            )
    notice_rates: dict[NoticeKind, int] = {}
    if notices is not None:
        for key in list(notices.raw):
            if key not in set(NoticeKind):
                notices.malformed.append(
                    FieldError(notices.name(key), f"must be one of {', '.join(NoticeKind)}")
                )
                continue
            rate = notices.integer(key, low=0, high=MAX_FEE)
            if rate is not None:
                notice_rates[NoticeKind(key)] = rate
    if waive_idle_months and not monthly_fee:
        f.bad("waive_idle_months", "applies to a monthly_fee: give one above 0")
    f.raise_if_invalid()
    assert cycle is not None and payout_days is not None
    return FeePlan(
        effective_from=effective_from or day or date.min,
        cycle=Cycle(cycle),
        payout_days=payout_days,
        settlement_fee=settlement_fee or 0,
        tax_rate=10 if tax_rate is None else tax_rate,
        tax_rounding=Rounding(rounding or Rounding.FLOOR),
        rates=rates,
        initial_fee=initial_fee or 0,
        monthly_fee=monthly_fee or 0,
        waive_idle_months=bool(waive_idle_months),
        per_bill=per_bill or 0,
        notice_rates=notice_rates,
    )


def payout_date(plan: FeePlan, period_end: date) -> date:
    """T+n: the n-th bank business day after the period's last day T (weekends, public
    holidays and the Dec 31 – Jan 3 break skipped); T+0 is T itself, or the next business
    day when T is a holiday."""
    if plan.payout_days == 0:
        return on_or_after(period_end)
    day = period_end
    for _ in range(plan.payout_days):
        day = next_business_day(day)
    return day


# --- a period's figures and its statement ---------------------------------------------------


FEE_KINDS = frozenset(
    {
        LineKind.PAYMENT_FEE,
        LineKind.UNCOLLECTED_FEE,
        LineKind.SETTLEMENT_FEE,
        LineKind.INITIAL_FEE,
        LineKind.MONTHLY_FEE,
        LineKind.BILL_FEE,
        LineKind.NOTICE_FEE,
    }
)

CHANNEL_NAMES: Mapping[Channel, str] = {
    Channel.CVS: "コンビニ収納",
    Channel.PAYEASY: "Pay-easy",
    Channel.TRANSFER: "口座振替",
}

NOTICE_NAMES: Mapping[NoticeKind, str] = {
    NoticeKind.EMAIL: "メール通知手数料",
    NoticeKind.SMS: "SMS通知手数料（通数）",  # a long SMS counts one per segment
    NoticeKind.SHEET: "払込票印刷手数料",
}


def _tariff(plan: FeePlan, several: bool) -> str:
    """Which plan's price a fee line uses, when a settlement's items fall under several."""
    return f"（{plan.effective_from:%Y-%m-%d}〜の料金）" if several else ""


def settle(
    contract: Contract, period: tuple[date, date], tally: Tally
) -> tuple[list[Line], Totals]:
    """The statement lines of a period and their totals; ``sum(amount) == payout`` always.

    A shortfall (deductions above collections) is not paid: a 次回繰越 line brings the payout
    to zero and the next settlement deducts it as 前回繰越.
    """
    start, end = period
    if start > end:
        raise ValueError(f"a period ends on or after its start, not {start}..{end}")
    figures = [n for pair in tally.collected.values() for n in pair]
    figures += [*tally.uncollected.values(), *tally.stamped.values(), *tally.refunds]
    figures += [*tally.bills.values(), *tally.notices.values(), tally.month_collected or 0]
    figures += [*tally.returned]
    if min([*figures, tally.carried_in, 0]) < 0:
        raise ValueError("a tally's counts and sums are never negative")
    closing = contract.plan_on(end)
    plans_used = {i for _, i in [*tally.collected, *tally.uncollected, *tally.stamped]}
    plans_used |= {*tally.bills, *(i for _, i in tally.notices)}
    several = len(plans_used) > 1
    lines: list[Line] = []
    for channel in Channel:
        count = sum(c for (ch, _), (c, _) in tally.collected.items() if ch is channel)
        total = sum(s for (ch, _), (_, s) in tally.collected.items() if ch is channel)
        if count:
            name = CHANNEL_NAMES[channel]
            lines.append(Line(LineKind.COLLECTION, f"{name} 収納金", count, None, total, channel))
    fee_by_rate: dict[int, int] = {}

    def fee(
        kind: LineKind, text: str, qty: int, unit: int, plan: FeePlan, ch: Channel | None
    ) -> None:
        if qty and unit:
            lines.append(Line(kind, text, qty, unit, -qty * unit, ch))
            fee_by_rate[plan.tax_rate] = fee_by_rate.get(plan.tax_rate, 0) + qty * unit

    for (channel, index), (count, _) in sorted(tally.collected.items()):
        plan = contract.plans[index]
        text = f"{CHANNEL_NAMES[channel]} 収納手数料{_tariff(plan, several)}"
        fee(LineKind.PAYMENT_FEE, text, count, plan.rate(channel).per_payment, plan, channel)
    for (channel, index), count in sorted(tally.uncollected.items()):
        plan = contract.plans[index]
        text = f"{CHANNEL_NAMES[channel]} 未収納票 発行手数料{_tariff(plan, several)}"
        fee(
            LineKind.UNCOLLECTED_FEE, text, count, plan.rate(channel).per_uncollected, plan, channel
        )
    for index, count in sorted(tally.bills.items()):
        plan = contract.plans[index]
        text = f"請求発行手数料{_tariff(plan, several)}"
        fee(LineKind.BILL_FEE, text, count, plan.per_bill, plan, None)
    order = list(NoticeKind)
    for (kind, index), count in sorted(
        tally.notices.items(), key=lambda n: (order.index(n[0][0]), n[0][1])
    ):
        plan = contract.plans[index]
        text = f"{NOTICE_NAMES[kind]}{_tariff(plan, several)}"
        fee(LineKind.NOTICE_FEE, text, count, plan.notice_rate(kind), plan, None)
    if tally.first:
        fee(LineKind.INITIAL_FEE, "初期費用", 1, closing.initial_fee, closing, None)
    if tally.month_collected is not None and closing.monthly_fee:
        if end != month_end(end):
            raise ValueError(f"a monthly fee is charged on a month's last day, not {end}")
        month = f"{end.year}年{end.month}月分"
        if closing.waive_idle_months and tally.month_collected == 0:
            text = f"月額基本料（{month}・収納なしのため免除）"
            lines.append(Line(LineKind.MONTHLY_FEE, text, 0, closing.monthly_fee, 0))
        else:
            text = f"月額基本料（{month}）"
            fee(LineKind.MONTHLY_FEE, text, 1, closing.monthly_fee, closing, None)
    fee(LineKind.SETTLEMENT_FEE, "精算手数料", 1, closing.settlement_fee, closing, None)
    for rate, base in sorted(fee_by_rate.items()):
        tax = tax_on(base, rate, closing.tax_rounding)
        if tax:
            lines.append(Line(LineKind.TAX, f"消費税（{rate}%対象 {base:,}円）", 1, tax, -tax))
    stamp_count = 0
    for (channel, index), count in sorted(tally.stamped.items()):
        plan = contract.plans[index]
        unit = plan.rate(channel).stamp_charge
        stamp_count += count
        if count and unit:
            text = f"印紙税相当額（{CHANNEL_NAMES[channel]}）{_tariff(plan, several)}"
            lines.append(Line(LineKind.STAMP_DUTY, text, count, unit, -count * unit, channel))
    refund_count, refund_sum = tally.refunds
    if refund_count:
        lines.append(Line(LineKind.REFUND, "返金（二重払い等）", refund_count, None, -refund_sum))
    if tally.carried_in:
        lines.append(Line(LineKind.CARRIED_IN, "前回繰越（不足額）", 1, None, -tally.carried_in))
    returned_count, returned_sum = tally.returned
    if returned_count:  # payouts the bank returned (振込不能): owed to the biller again
        text = "前回振込不能分（再振込）"
        lines.append(Line(LineKind.RETURNED_PAYOUT, text, returned_count, None, returned_sum))
    balance = sum(line.amount for line in lines)
    carried_out = max(0, -balance)
    if carried_out:
        lines.append(Line(LineKind.CARRIED_OUT, "次回繰越（不足額）", 1, None, carried_out))

    def deducted(*kinds: LineKind) -> int:
        return -sum(line.amount for line in lines if line.kind in kinds)

    totals = Totals(
        payments_count=sum(line.quantity for line in lines if line.kind is LineKind.COLLECTION),
        collected=-deducted(LineKind.COLLECTION),
        fees=deducted(*FEE_KINDS),
        tax=deducted(LineKind.TAX),
        stamp_count=stamp_count,
        stamp_duty=deducted(LineKind.STAMP_DUTY),
        refunds=deducted(LineKind.REFUND),
        carried_in=tally.carried_in,
        carried_out=carried_out,
        payout=balance + carried_out,
        returned_in=returned_sum,
    )
    assert totals.payout == sum(line.amount for line in lines) >= 0
    return lines, totals
