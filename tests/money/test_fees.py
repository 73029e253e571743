"""Fee plans, cycles, periods, payout dates and statement arithmetic (gateway.fee_model's values,
gateway.money.fees's rules; pure)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import InvalidRequest
from gateway.fee_model import (
    ChannelRates,
    Contract,
    Cycle,
    FeePlan,
    LineKind,
    Rounding,
    Tally,
    is_closing_day,
)
from gateway.model import Channel
from gateway.money.fees import parse_plan, payout_date, settle, tax_on


def plan(
    effective_from: date = date(2026, 1, 1),
    cycle: Cycle = Cycle.MONTHLY,
    payout_days: int = 3,
    settlement_fee: int = 500,
    rounding: Rounding = Rounding.FLOOR,
    cvs: ChannelRates = ChannelRates(60, 10, 200),
    payeasy: ChannelRates = ChannelRates(80, 0, 0),
    transfer: ChannelRates = ChannelRates(100, 5, 0),
) -> FeePlan:
    return FeePlan(
        effective_from,
        cycle,
        payout_days,
        settlement_fee,
        10,
        rounding,
        {Channel.CVS: cvs, Channel.PAYEASY: payeasy, Channel.TRANSFER: transfer},
    )


def periods(contract: Contract, count: int) -> list[tuple[date, date]]:
    out: list[tuple[date, date]] = []
    end = None
    for _ in range(count):
        start, end = contract.period_after(end)
        out.append((start, end))
    return out


# --- cycles and periods ---------------------------------------------------------------------


def test_monthly_periods_close_at_each_month_end_leap_years_included() -> None:
    contract = Contract((plan(date(2027, 12, 1)),))
    ends = [end for _, end in periods(contract, 4)]
    assert ends == [date(2027, 12, 31), date(2028, 1, 31), date(2028, 2, 29), date(2028, 3, 31)]
    contract = Contract((plan(date(2027, 2, 1)),))
    assert periods(contract, 1) == [(date(2027, 2, 1), date(2027, 2, 28))]


def test_twice_monthly_closes_on_the_15th_and_month_end() -> None:
    contract = Contract((plan(date(2028, 2, 1), Cycle.TWICE_MONTHLY),))
    assert periods(contract, 3) == [
        (date(2028, 2, 1), date(2028, 2, 15)),
        (date(2028, 2, 16), date(2028, 2, 29)),
        (date(2028, 3, 1), date(2028, 3, 15)),
    ]


def test_three_times_a_month_closes_on_the_10th_20th_and_month_end() -> None:
    contract = Contract((plan(date(2026, 2, 1), Cycle.THREE_TIMES_MONTHLY),))
    assert periods(contract, 4) == [
        (date(2026, 2, 1), date(2026, 2, 10)),
        (date(2026, 2, 11), date(2026, 2, 20)),
        (date(2026, 2, 21), date(2026, 2, 28)),
        (date(2026, 3, 1), date(2026, 3, 10)),
    ]


def test_six_times_a_month_closes_every_five_days_and_at_month_end() -> None:
    contract = Contract((plan(date(2028, 2, 1), Cycle.SIX_TIMES_MONTHLY),))
    ends = [end.day for _, end in periods(contract, 7)]
    assert ends == [5, 10, 15, 20, 25, 29, 5]  # February 2028 has 29 days
    contract = Contract((plan(date(2026, 1, 1), Cycle.SIX_TIMES_MONTHLY),))
    assert [(s.day, e.day) for s, e in periods(contract, 6)][-1] == (26, 31)


def test_a_contract_starting_mid_cycle_has_a_short_first_period() -> None:
    contract = Contract((plan(date(2026, 12, 12), Cycle.THREE_TIMES_MONTHLY),))
    assert periods(contract, 2) == [
        (date(2026, 12, 12), date(2026, 12, 20)),
        (date(2026, 12, 21), date(2026, 12, 31)),
    ]


def test_a_cycle_change_applies_from_its_date_and_periods_stay_contiguous() -> None:
    contract = Contract((plan(date(2026, 1, 1)), plan(date(2026, 3, 1), Cycle.TWICE_MONTHLY)))
    assert periods(contract, 4) == [
        (date(2026, 1, 1), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 2, 28)),
        (date(2026, 3, 1), date(2026, 3, 15)),
        (date(2026, 3, 16), date(2026, 3, 31)),
    ]
    # A change in the middle of a monthly period: the new cycle's first closing day ends it.
    contract = Contract((plan(date(2026, 1, 1)), plan(date(2026, 1, 8), Cycle.THREE_TIMES_MONTHLY)))
    assert periods(contract, 2) == [
        (date(2026, 1, 1), date(2026, 1, 10)),
        (date(2026, 1, 11), date(2026, 1, 20)),
    ]


@given(
    st.dates(date(2000, 1, 1), date(2099, 1, 1)),
    st.lists(st.sampled_from(list(Cycle)), min_size=1, max_size=4),
    st.lists(st.integers(1, 200), min_size=3, max_size=3),
)
def test_periods_tile_the_calendar_without_gap_or_overlap(
    start: date, cycles: list[Cycle], gaps: list[int]
) -> None:
    days = [start]
    for gap in gaps[: len(cycles) - 1]:
        days.append(days[-1] + timedelta(days=gap))
    contract = Contract(tuple(plan(d, c) for d, c in zip(days, cycles, strict=False)))
    previous_end = None
    for s, e in periods(contract, 30):
        assert s == (contract.start if previous_end is None else previous_end + timedelta(days=1))
        assert s <= e and e.month == s.month  # every cycle closes at month end
        assert is_closing_day(contract.plan_on(e).cycle, e)
        previous_end = e


# --- payout dates ---------------------------------------------------------------------------


def test_payout_skips_weekends_public_holidays_and_the_year_end_break() -> None:
    # 2026-11-30 is a Monday: T+3 is Thursday 2026-12-03.
    assert payout_date(plan(payout_days=3), date(2026, 11, 30)) == date(2026, 12, 3)
    # Year end: Dec 31 - Jan 3 are bank holidays; 2027-01-04 is a Monday.
    assert payout_date(plan(payout_days=1), date(2026, 12, 31)) == date(2027, 1, 4)
    assert payout_date(plan(payout_days=2), date(2026, 12, 25)) == date(2026, 12, 29)
    assert payout_date(plan(payout_days=3), date(2026, 12, 25)) == date(2026, 12, 30)
    assert payout_date(plan(payout_days=4), date(2026, 12, 25)) == date(2027, 1, 4)
    # Golden Week 2027: 4/29 (Thu) 昭和の日, 5/3-5/5 (Mon-Wed) holidays.
    assert payout_date(plan(payout_days=1), date(2027, 4, 28)) == date(2027, 4, 30)
    assert payout_date(plan(payout_days=2), date(2027, 4, 30)) == date(2027, 5, 7)
    # T+0 on a Saturday is the Monday after.
    assert payout_date(plan(payout_days=0), date(2026, 10, 31)) == date(2026, 11, 2)
    # 2028-02-29 (leap day, a Tuesday): T+1 is March 1.
    assert payout_date(plan(payout_days=1), date(2028, 2, 29)) == date(2028, 3, 1)


# --- tax ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "rounding", "tax"),
    [
        (1235, Rounding.FLOOR, 123),
        (1235, Rounding.HALF_UP, 124),
        (1234, Rounding.HALF_UP, 123),
        (1231, Rounding.CEIL, 124),
        (1230, Rounding.CEIL, 123),
        (0, Rounding.CEIL, 0),
    ],
)
def test_tax_on_fees_is_rounded_to_the_yen_per_the_plan(
    amount: int, rounding: Rounding, tax: int
) -> None:
    assert tax_on(amount, 10, rounding) == tax


# --- statements -----------------------------------------------------------------------------


def test_a_statement_reconciles_line_by_line_to_the_payout() -> None:
    contract = Contract((plan(rounding=Rounding.HALF_UP),))
    tally = Tally(
        collected={(Channel.CVS, 0): (3, 65_400), (Channel.PAYEASY, 0): (2, 10_000)},
        stamped={(Channel.CVS, 0): 1},
        uncollected={(Channel.CVS, 0): 4},
        refunds=(1, 5_400),
    )
    lines, totals = settle(contract, (date(2026, 11, 1), date(2026, 11, 30)), tally)
    assert [(line.kind, line.amount) for line in lines] == [
        (LineKind.COLLECTION, 65_400),
        (LineKind.COLLECTION, 10_000),
        (LineKind.PAYMENT_FEE, -180),  # 3 × ¥60
        (LineKind.PAYMENT_FEE, -160),  # 2 × ¥80
        (LineKind.UNCOLLECTED_FEE, -40),  # 4 × ¥10
        (LineKind.SETTLEMENT_FEE, -500),
        (LineKind.TAX, -88),  # 10 % of ¥880
        (LineKind.STAMP_DUTY, -200),
        (LineKind.REFUND, -5_400),
    ]
    assert totals.payout == sum(line.amount for line in lines) == 75_400 - 880 - 88 - 200 - 5_400
    assert (totals.fees, totals.tax, totals.stamp_duty, totals.refunds) == (880, 88, 200, 5_400)
    assert totals.payments_count == 5 and totals.collected == 75_400


def test_stamp_duty_is_charged_where_the_channels_rates_carry_a_stamp_charge() -> None:
    no_stamp = plan(date(2026, 11, 16), cvs=ChannelRates(60, 10, 0))
    contract = Contract((plan(), no_stamp))
    tally = Tally(
        collected={(Channel.CVS, 0): (4, 240_000), (Channel.CVS, 1): (2, 120_000)},
        stamped={(Channel.CVS, 0): 4, (Channel.CVS, 1): 2},
    )
    lines, totals = settle(contract, (date(2026, 11, 1), date(2026, 11, 30)), tally)
    stamps = [line for line in lines if line.kind is LineKind.STAMP_DUTY]
    assert [(s.channel, s.quantity, s.unit_amount, s.amount) for s in stamps] == [
        (Channel.CVS, 4, 200, -800)  # none under the plan without a stamp charge
    ]
    assert stamps[0].description == "印紙税相当額（コンビニ収納）（2026-01-01〜の料金）"
    assert (totals.stamp_count, totals.stamp_duty) == (6, 800)
    # A plan names a stamp charge for a channel whose payments carry stamps, and for no other.
    cvs_only = {"cycle": "monthly", "payout_days": 1, "effective_from": "2027-01-01"}
    parsed = parse_plan({**cvs_only, "channels": {"cvs": {}, "transfer": {"stamp_charge": 0}}})
    assert [parsed.rate(ch).stamp_charge for ch in Channel] == [200, 0, 0]
    with pytest.raises(InvalidRequest) as caught:
        parse_plan({**cvs_only, "channels": {"transfer": {"stamp_charge": 200}}})
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("channels.transfer.stamp_charge", "applies to convenience-store payments only")
    ]


def test_fees_follow_the_plan_in_force_on_each_items_date() -> None:
    cheaper = plan(date(2026, 11, 16), cvs=ChannelRates(40, 10, 200), settlement_fee=300)
    contract = Contract((plan(), cheaper))
    tally = Tally(collected={(Channel.CVS, 0): (10, 50_000), (Channel.CVS, 1): (5, 25_000)})
    lines, totals = settle(contract, (date(2026, 11, 1), date(2026, 11, 30)), tally)
    fees = [
        (line.quantity, line.unit_amount) for line in lines if line.kind is LineKind.PAYMENT_FEE
    ]
    assert fees == [(10, 60), (5, 40)]
    settlement_fee = [line for line in lines if line.kind is LineKind.SETTLEMENT_FEE]
    assert settlement_fee[0].amount == -300  # the plan in force on the period's last day
    assert totals.fees == 600 + 200 + 300
    assert any("2026-11-16〜" in line.description for line in lines)


def test_a_shortfall_is_carried_to_the_next_settlement_never_paid_negative() -> None:
    contract = Contract((plan(),))
    lines, totals = settle(
        contract, (date(2026, 11, 1), date(2026, 11, 30)), Tally(collected={}, refunds=(1, 3000))
    )
    assert totals.payout == 0 == sum(line.amount for line in lines)
    assert totals.carried_out == 3000 + 500 + 50
    assert lines[-1].kind is LineKind.CARRIED_OUT
    lines, totals = settle(
        contract,
        (date(2026, 12, 1), date(2026, 12, 31)),
        Tally(collected={(Channel.CVS, 0): (1, 10_000)}, carried_in=3550),
    )
    assert totals.payout == 10_000 - 60 - 500 - 56 - 3550 == sum(line.amount for line in lines)


@given(
    st.dictionaries(
        st.tuples(st.sampled_from(list(Channel)), st.integers(0, 1)),
        st.tuples(st.integers(1, 10_000), st.integers(1, 300_000)).map(
            lambda t: (t[0], t[0] * t[1])
        ),
    ),
    st.dictionaries(
        st.tuples(st.sampled_from(list(Channel)), st.integers(0, 1)), st.integers(0, 50)
    ),
    st.dictionaries(
        st.tuples(st.sampled_from(list(Channel)), st.integers(0, 1)), st.integers(0, 99)
    ),
    st.tuples(st.integers(0, 5), st.integers(0, 2_000_000)),
    st.integers(0, 100_000),
    st.sampled_from(list(Rounding)),
)
def test_every_statement_adds_up_to_its_payout(
    collected: dict[tuple[Channel, int], tuple[int, int]],
    stamped: dict[tuple[Channel, int], int],
    uncollected: dict[tuple[Channel, int], int],
    refunds: tuple[int, int],
    carried_in: int,
    rounding: Rounding,
) -> None:
    contract = Contract(
        (plan(rounding=rounding), plan(date(2026, 11, 10), cvs=ChannelRates(33, 7, 250)))
    )
    tally = Tally(collected, stamped, uncollected, refunds if refunds[0] else (0, 0), carried_in)
    lines, totals = settle(contract, (date(2026, 11, 1), date(2026, 11, 30)), tally)
    assert sum(line.amount for line in lines) == totals.payout >= 0
    assert (
        totals.collected
        - totals.fees
        - totals.tax
        - totals.stamp_duty
        - totals.refunds
        - totals.carried_in
        + totals.carried_out
        == totals.payout
    )


# --- plan documents -------------------------------------------------------------------------


def test_a_plan_document_round_trips_and_defaults_stamp_duty_to_200() -> None:
    doc = {
        "effective_from": "2027-01-01",
        "cycle": "three_times_monthly",
        "payout_days": 2,
        "settlement_fee": 500,
        "tax_rounding": "half_up",
        "channels": {"cvs": {"per_payment": 60, "per_uncollected": 10}, "payeasy": {}},
    }
    parsed = parse_plan(doc)
    assert parsed.rate(Channel.CVS) == ChannelRates(60, 10, 200)
    assert parsed.rate(Channel.PAYEASY) == ChannelRates(0, 0, 0)
    assert parsed.tax_rate == 10
    assert parse_plan(parsed.document()) == parsed


def test_a_plan_starts_in_this_century() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_plan({"cycle": "monthly", "payout_days": 1, "channels": {}}, date(1026, 12, 1))
    assert [e.field for e in caught.value.errors] == ["effective_from"]


def test_a_bad_plan_names_every_bad_field() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_plan(
            {
                "effective_from": "2027-02-30",
                "cycle": "weekly",
                "payout_days": -1,
                "tax_rounding": "banker",
                "channels": {
                    "cash": {},
                    "cvs": {"per_payment": -5},
                    "payeasy": {"stamp_charge": 1},
                },
                "colour": "red",
            }
        )
    fields = {e.field for e in caught.value.errors}
    assert fields >= {
        "effective_from",
        "cycle",
        "payout_days",
        "tax_rounding",
        "channels.cash",
        "channels.cvs.per_payment",
        "channels.payeasy.stamp_charge",
        "colour",
    }
