"""A biller's chain rules (gateway.chain_rules), and how the CVS network judges a payment by them
(gateway.networks.cvs.CvsBills.judge): pure, no store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.billing.chains import due_window_refusals
from gateway.chain_rules import (
    ChainRules,
    chain_code,
    chain_of_store,
    make_rules,
    parse_rules_change,
    receipt_stamped,
)
from gateway.config import CvsAgency, CvsConfig
from gateway.mappers.cvs import barcode
from gateway.mappers.cvs.records import make_event_key
from gateway.mappers.cvs.stamp import StampThreshold
from gateway.model import JST, Biller, Channel, Payment, PaymentStatus
from gateway.networks.cvs import CvsBills
from gateway.validation import Fields

TODAY = date(2026, 12, 1)
RULES = make_rules(["010", "20", "000030"], {"10": 60, "020": 90, "050": 30}, ["020"])


def test_chain_codes_are_compared_as_numbers_and_kept_with_three_digits() -> None:
    assert [chain_code(c) for c in ("20", "020", "000020", "1234")] == ["020", "020", "020", "1234"]
    assert chain_of_store("000010-0110002") == "010"
    assert chain_of_store("000820-0000000") == "820"
    assert chain_of_store(None) is None and chain_of_store("T07-atm") is None
    for bad in ("", "1234567", "0x10", "２０"):
        with pytest.raises(ValueError):
            chain_code(bad)


def test_the_defaults_accept_every_chain_and_bind_nothing() -> None:
    rules = ChainRules()
    assert rules.is_default and rules.to_json() is None
    assert rules.accepts("000760") and not rules.stamps_all("020")
    assert rules.due_refusal(None, TODAY) is None
    assert rules.due_refusal(TODAY + timedelta(days=3000), TODAY) is None
    assert ChainRules.from_json(None) == rules


def test_accepted_chains_and_stamp_chains() -> None:
    assert RULES.accepted == {"010", "020", "030"}
    assert RULES.accepts("000010") and RULES.accepts("30") and not RULES.accepts("000050")
    assert RULES.stamps_all("000020") and not RULES.stamps_all("010")
    assert ChainRules.from_json(RULES.to_json()) == RULES
    assert RULES.document() == {
        "accepted": ["010", "020", "030"],
        "max_due_days": {"010": 60, "020": 90, "050": 30},
        "stamp_all": ["020"],
    }


def test_a_slip_must_fit_the_shortest_window_of_the_chains_the_biller_accepts() -> None:
    # 050 has the shortest window but is not accepted: 010's 60 days bind.
    assert RULES.windows() == [("010", 60), ("020", 90)]
    assert RULES.due_refusal(TODAY + timedelta(days=60), TODAY) is None
    assert RULES.due_refusal(TODAY + timedelta(days=61), TODAY) == ("010", 60)
    assert RULES.due_refusal(None, TODAY) == ("010", 60)  # 999999: no chain with a window
    every = make_rules(None, {"050": 30, "010": 60}, [])
    assert every.due_refusal(TODAY + timedelta(days=31), TODAY) == ("050", 30)


def biller(rules: ChainRules) -> Biller:
    return Biller(
        "gas", "00001", "ガス", "ｶﾞｽ", frozenset(Channel), None, datetime(2026, 1, 1, tzinfo=UTC),
        chain_rules=rules,
    )  # fmt: skip


def test_the_refusal_names_due_date_the_chain_and_the_latest_date() -> None:
    errors = due_window_refusals(biller(RULES), {Channel.CVS}, TODAY + timedelta(days=75), TODAY)
    assert [e.field for e in errors] == ["due_date"]
    assert "2027-02-14 is 75 days from today" in errors[0].message
    assert "chain 010 (セブン-イレブン) takes slips due at most 60 days" in errors[0].message
    assert "2027-01-30 at the latest" in errors[0].message
    none = due_window_refusals(biller(RULES), {Channel.CVS}, None, TODAY)
    assert none[0].message.startswith("is required: chain 010")
    # Other channels are not concerned; a slip within the window passes.
    late = TODAY + timedelta(days=75)
    assert due_window_refusals(biller(RULES), {Channel.PAYEASY}, late, TODAY) == []
    assert due_window_refusals(biller(RULES), {Channel.CVS}, TODAY + timedelta(10), TODAY) == []


def change(body: object, current: ChainRules = RULES) -> tuple[ChainRules, list[str]]:
    f = Fields(body, "chain_rules")
    rules = parse_rules_change(f, current)
    return rules, [e.field for e in f.malformed + f.errors]


def test_a_change_replaces_the_parts_it_names() -> None:
    rules, errors = change({"stamp_all": ["30", "010"]})
    assert errors == [] and rules.stamp_all == {"010", "030"}
    assert rules.accepted == RULES.accepted and rules.due_windows == RULES.due_windows
    rules, errors = change({"accepted": None, "max_due_days": {}})
    assert errors == [] and rules.accepted is None and rules.due_windows == ()
    assert rules.stamp_all == RULES.stamp_all
    rules, errors = change({"accepted": None, "max_due_days": {}, "stamp_all": []})
    assert errors == [] and rules.is_default


def test_a_bad_change_names_every_bad_field() -> None:
    _, errors = change(
        {
            "accepted": ["010", "10", "abc"],
            "max_due_days": {"020": 0, "x": 5, "030": "soon"},
            "stamp_all": "020",
            "chains": [],
        }
    )
    assert sorted(errors) == sorted(
        [
            "chain_rules.accepted[1]",  # 010 twice
            "chain_rules.accepted[2]",
            "chain_rules.max_due_days.020",
            "chain_rules.max_due_days.x",
            "chain_rules.max_due_days.030",
            "chain_rules.stamp_all",
            "chain_rules.chains",
        ]
    )
    assert change({"accepted": []})[1] == ["chain_rules.accepted"]


def test_a_receipt_is_stamped_by_the_slip_or_by_a_chain_that_stamps_whatever_the_tax() -> None:
    assert receipt_stamped(slip_flag=True, stamps_all=False, amount=1, threshold=50_000)
    assert not receipt_stamped(slip_flag=False, stamps_all=False, amount=52_000, threshold=50_000)
    assert receipt_stamped(slip_flag=False, stamps_all=True, amount=50_000, threshold=50_000)
    assert not receipt_stamped(slip_flag=False, stamps_all=True, amount=49_999, threshold=50_000)
    assert not receipt_stamped(slip_flag=False, stamps_all=True, amount=90_000, threshold=None)


def payment(digits: str, chain: str, paid_at: datetime, agency: str | None = None) -> Payment:
    local = paid_at.astimezone(JST)
    key = make_event_key(digits, local.date(), f"{local:%H%M}", chain, "0110002")
    amount = barcode.parse(digits, ceiling=barcode.MAX_AMOUNT).amount
    return Payment(
        "pay_1", "gas", "B-1", Channel.CVS, key, amount, paid_at, PaymentStatus.PENDING, paid_at,
        store=f"{chain}-0110002", agency=agency,
    )  # fmt: skip


def slip_digits(amount: int, stamp: bool) -> str:
    return barcode.build(
        company_code="987654",
        free_field=barcode.free_field_for("00001", 7),
        reissue=0,
        due=TODAY + timedelta(days=20),
        stamp=stamp,
        amount=amount,
    ).digits


def test_the_cvs_network_judges_a_new_payment_by_the_chain_that_took_it() -> None:
    agencies = (
        CvsAgency("default", "987654"),
        CvsAgency("low", "987655", stamp_thresholds=(StampThreshold(date(2020, 1, 1), 10_000),)),
    )
    finder = CvsBills(CvsConfig(agencies, "default"))
    at = datetime(2026, 12, 3, 1, 30, tzinfo=UTC)
    taxed = slip_digits(52_000, stamp=False)  # a taxable bill: ¥47,273 before tax, flag 0
    lawson = finder.judge(payment(taxed, "000020", at), RULES)
    assert lawson.chain_accepted is True and lawson.stamped is True  # 020 stamps ≥ ¥50,000
    seven = finder.judge(payment(taxed, "000010", at), RULES)
    assert seven.chain_accepted is True and seven.stamped is False  # 010 follows the slip
    daily = finder.judge(payment(taxed, "000050", at), RULES)
    assert daily.chain_accepted is False and daily.stamped is False  # not accepted: flagged
    flagged = finder.judge(payment(slip_digits(60_000, stamp=True), "000050", at), RULES)
    assert flagged.stamped is True  # the slip asked for a stamp: every chain stamps it
    # The threshold is the one in force on the day, of the payment's agency.
    small = slip_digits(20_000, stamp=False)
    assert finder.judge(payment(small, "000020", at, agency="low"), RULES).stamped is True
    assert finder.judge(payment(small, "000020", at, agency="default"), RULES).stamped is False
    # Without rules every chain is accepted and the slip decides.
    plain = finder.judge(payment(taxed, "000050", at), ChainRules())
    assert plain.chain_accepted is True and plain.stamped is False
