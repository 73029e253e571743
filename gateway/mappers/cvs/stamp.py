"""The revenue-stamp rule (収入印紙, DESIGN.md §7): does a CVS receipt need a stamp?

A receipt of the threshold or more (the tax-exclusive amount for a taxable bill) needs a stamp; the
barcode's 印紙フラグ tells the store. Thresholds are dated configuration, so that the rule of the
day a slip is issued applies. Pure: the date is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class StampThreshold:
    """From ``effective_from`` on, a receipt of ``threshold`` yen or more needs a stamp."""

    effective_from: date
    threshold: int


DEFAULT_STAMP_THRESHOLDS: tuple[StampThreshold, ...] = (
    StampThreshold(date(1989, 4, 1), 30_000),
    StampThreshold(date(2014, 4, 1), 50_000),
)


def threshold_on(thresholds: Sequence[StampThreshold], on: date) -> StampThreshold | None:
    """The threshold in force on ``on``: the latest ``effective_from`` not after it, if any."""
    found: StampThreshold | None = None
    for t in thresholds:  # (a loop, not max() of a list: called for every slip issued)
        if t.effective_from <= on and (found is None or t.effective_from > found.effective_from):
            found = t
    return found


def stamp_required(
    *,
    amount: int,
    taxable: bool,
    tax_amount: int,
    thresholds: Sequence[StampThreshold],
    on: date,
) -> bool:
    """Whether a receipt for ``amount`` yen issued on ``on`` needs a revenue stamp.

    For a taxable bill the tax-exclusive amount (``amount - tax_amount``) is compared; otherwise
    ``amount`` itself. No threshold in force on ``on`` means no stamp.
    """
    current = threshold_on(thresholds, on)
    if current is None:
        return False
    base = amount - tax_amount if taxable else amount
    return base >= current.threshold
