"""The whole fee model (issue 21): the initial fee, the monthly base fee and its waiver for an
idle month, per-bill and per-notice fees — each on its own line, taxed as fees are, and the
lines still adding up to the payout (gateway.money.fees; pure)."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from gateway.errors import InvalidRequest
from gateway.fee_model import (
    ChannelRates,
    Contract,
    Cycle,
    FeePlan,
    LineKind,
    NoticeKind,
    Rounding,
    Tally,
)
from gateway.model import Channel
from gateway.money.fees import parse_plan, settle

PLAN = FeePlan(
    effective_from=date(2026, 11, 1),
    cycle=Cycle.MONTHLY,
    payout_days=3,
    settlement_fee=0,
    tax_rate=10,
    tax_rounding=Rounding.FLOOR,
    rates={Channel.CVS: ChannelRates(60, 0, 200)},
    initial_fee=30_000,
    monthly_fee=3_000,
    waive_idle_months=True,
    per_bill=20,
    notice_rates={NoticeKind.EMAIL: 5, NoticeKind.SMS: 15, NoticeKind.SHEET: 30},
)
NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))


def lines_of(tally: Tally, plan: FeePlan = PLAN, period: tuple[date, date] = NOVEMBER) -> dict:
    lines, totals = settle(Contract((plan,)), period, tally)
    assert sum(line.amount for line in lines) == totals.payout
    return {"lines": lines, "totals": totals}


def test_every_new_fee_has_its_own_line_and_is_taxed_as_fees_are() -> None:
    tally = Tally(
        collected={(Channel.CVS, 0): (10, 100_000)},
        first=True,
        month_collected=10,
        bills={0: 12},
        notices={(NoticeKind.EMAIL, 0): 12, (NoticeKind.SMS, 0): 4, (NoticeKind.SHEET, 0): 2},
    )
    got = lines_of(tally)
    by_kind = {}
    for line in got["lines"]:
        by_kind.setdefault(line.kind, []).append(line)
    assert [(ln.description, ln.amount) for ln in by_kind[LineKind.INITIAL_FEE]] == [
        ("初期費用", -30_000)
    ]
    assert [(ln.description, ln.amount) for ln in by_kind[LineKind.MONTHLY_FEE]] == [
        ("月額基本料（2026年11月分）", -3_000)
    ]
    assert [(ln.quantity, ln.unit_amount, ln.amount) for ln in by_kind[LineKind.BILL_FEE]] == [
        (12, 20, -240)
    ]
    assert [(ln.description, ln.quantity, ln.amount) for ln in by_kind[LineKind.NOTICE_FEE]] == [
        ("メール通知手数料", 12, -60),
        ("SMS通知手数料（通数）", 4, -60),
        ("払込票印刷手数料", 2, -60),
    ]
    fees = 10 * 60 + 30_000 + 3_000 + 240 + 180
    totals = got["totals"]
    assert totals.fees == fees
    assert totals.tax == fees // 10  # 10 %, rounded down, on every fee together
    assert totals.payout == 100_000 - fees - fees // 10


def test_the_monthly_fee_is_waived_in_a_month_without_a_collection_when_the_plan_says() -> None:
    idle = Tally(collected={}, month_collected=0)
    waived = lines_of(idle)
    (line,) = [ln for ln in waived["lines"] if ln.kind is LineKind.MONTHLY_FEE]
    assert line.amount == 0 and "免除" in line.description
    assert waived["totals"].fees == 0 and waived["totals"].payout == 0

    charged = lines_of(idle, dataclasses.replace(PLAN, waive_idle_months=False))
    assert charged["totals"].fees == 3_000
    assert charged["totals"].carried_out == 3_300  # nothing collected: owed next time

    # A month whose earlier settlements collected: the month-end one charges the fee.
    busy = lines_of(Tally(collected={}, month_collected=3))
    assert busy["totals"].fees == 3_000


def test_the_monthly_and_initial_fees_belong_to_the_settlements_that_call_for_them() -> None:
    mid_month = (date(2026, 11, 1), date(2026, 11, 15))
    plain = lines_of(Tally(collected={(Channel.CVS, 0): (1, 5_000)}), period=mid_month)
    kinds = {line.kind for line in plain["lines"]}
    assert LineKind.MONTHLY_FEE not in kinds and LineKind.INITIAL_FEE not in kinds
    with pytest.raises(ValueError, match="last day"):
        settle(Contract((PLAN,)), mid_month, Tally(collected={}, month_collected=0))


def test_a_plan_document_with_the_new_fees_round_trips() -> None:
    doc = {
        "effective_from": "2026-11-01",
        "cycle": "monthly",
        "payout_days": 3,
        "channels": {"cvs": {"per_payment": 60}},
        "initial_fee": 30000,
        "monthly_fee": 3000,
        "waive_idle_months": True,
        "per_bill": 20,
        "notices": {"email": 5, "sms": 15, "sheet": 30},
    }
    parsed = parse_plan(doc)
    assert parsed.initial_fee == 30_000 and parsed.monthly_fee == 3_000
    assert parsed.waive_idle_months and parsed.per_bill == 20
    assert parsed.notice_rate(NoticeKind.SMS) == 15
    assert parse_plan(parsed.document()) == parsed
    old = parse_plan({"cycle": "monthly", "payout_days": 3, "channels": {}}, date(2026, 11, 1))
    assert (old.initial_fee, old.monthly_fee, old.per_bill, dict(old.notice_rates)) == (0, 0, 0, {})


def test_a_bad_new_fee_is_named() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_plan(
            {
                "effective_from": "2026-11-01",
                "cycle": "monthly",
                "payout_days": 3,
                "channels": {},
                "initial_fee": -1,
                "per_bill": "ten",
                "waive_idle_months": True,
                "notices": {"fax": 10, "sms": -2},
            }
        )
    fields = {e.field for e in caught.value.errors}
    assert fields == {
        "initial_fee",
        "per_bill",
        "waive_idle_months",
        "notices.fax",
        "notices.sms",
    }
