"""The revenue-stamp rule (DESIGN.md §7)."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.mappers.cvs.stamp import DEFAULT_STAMP_THRESHOLDS, StampThreshold, stamp_required

DAY_BEFORE = date(2014, 3, 31)
CHANGE = date(2014, 4, 1)


def _required(amount: int, on: date, *, taxable: bool = False, tax_amount: int = 0) -> bool:
    return stamp_required(
        amount=amount,
        taxable=taxable,
        tax_amount=tax_amount,
        thresholds=DEFAULT_STAMP_THRESHOLDS,
        on=on,
    )


@pytest.mark.parametrize(
    ("amount", "on", "expected"),
    [
        (29_999, DAY_BEFORE, False),
        (30_000, DAY_BEFORE, True),
        (49_999, DAY_BEFORE, True),
        (30_000, CHANGE, False),
        (49_999, CHANGE, False),
        (50_000, CHANGE, True),
        (49_999, date(2026, 6, 1), False),
        (50_000, date(2026, 6, 1), True),
        (300_000, date(2026, 6, 1), True),
        (30_000, date(1989, 4, 1), True),
    ],
)
def test_threshold_by_date(amount: int, on: date, expected: bool) -> None:
    assert _required(amount, on) is expected


def test_no_threshold_in_force_means_no_stamp() -> None:
    assert _required(1_000_000, date(1989, 3, 31)) is False
    assert (
        stamp_required(amount=1_000_000, taxable=False, tax_amount=0, thresholds=(), on=CHANGE)
        is False
    )


def test_taxable_bill_compares_the_tax_exclusive_amount() -> None:
    # ¥54,999 including ¥5,000 tax is ¥49,999 before tax: no stamp.
    assert _required(54_999, CHANGE, taxable=True, tax_amount=5_000) is False
    assert _required(55_000, CHANGE, taxable=True, tax_amount=5_000) is True
    # The same amount on a non-taxable bill: the tax amount is not subtracted.
    assert _required(54_999, CHANGE, taxable=False, tax_amount=5_000) is True


def test_thresholds_need_not_be_sorted() -> None:
    thresholds = (*reversed(DEFAULT_STAMP_THRESHOLDS), StampThreshold(date(2030, 1, 1), 100_000))

    def required(amount: int, on: date) -> bool:
        return stamp_required(
            amount=amount, taxable=False, tax_amount=0, thresholds=thresholds, on=on
        )

    assert required(50_000, date(2029, 12, 31)) is True
    assert required(50_000, date(2030, 1, 1)) is False
    assert required(100_000, date(2030, 1, 1)) is True
    assert required(30_000, DAY_BEFORE) is True
    assert required(29_999, DAY_BEFORE) is False
