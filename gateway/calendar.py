"""Japanese bank business days (銀行営業日).

A day is a bank holiday when it is a Saturday or a Sunday, a national holiday under the Act on
National Holidays (国民の祝日に関する法律) including substitute holidays (振替休日) and citizens'
holidays (国民の休日), as :func:`jpholiday.is_holiday` knows them, or part of the banks' year-end
break from December 31 to January 3 (銀行法施行令 第5条). Every other day is a business day.

Pure functions on :class:`datetime.date`: no clock, no I/O. The caller decides what "today" is.
Stepping past :data:`datetime.date.max` or before :data:`datetime.date.min` raises
``OverflowError``, as date arithmetic does.
"""

from __future__ import annotations

from datetime import date, timedelta

import jpholiday

__all__ = [
    "add_business_days",
    "business_days_between",
    "is_bank_holiday",
    "is_business_day",
    "next_business_day",
    "on_or_after",
    "on_or_before",
    "previous_business_day",
]

_ONE_DAY = timedelta(days=1)
_SATURDAY = 5  # date.weekday(): Monday is 0


def _in_year_end_break(d: date) -> bool:
    """December 31 to January 3: banks are closed by law whatever the weekday."""
    return (d.month == 12 and d.day == 31) or (d.month == 1 and d.day <= 3)


def is_bank_holiday(d: date) -> bool:
    """True on a weekend, a national holiday (substitute and citizens' holidays included) or
    a day of the year-end break (December 31 – January 3)."""
    return d.weekday() >= _SATURDAY or _in_year_end_break(d) or bool(jpholiday.is_holiday(d))


def is_business_day(d: date) -> bool:
    """True when banks are open on ``d``: the negation of :func:`is_bank_holiday`."""
    return not is_bank_holiday(d)


def next_business_day(d: date) -> date:
    """The first business day strictly after ``d``."""
    day = d + _ONE_DAY
    while is_bank_holiday(day):
        day += _ONE_DAY
    return day


def previous_business_day(d: date) -> date:
    """The last business day strictly before ``d``."""
    day = d - _ONE_DAY
    while is_bank_holiday(day):
        day -= _ONE_DAY
    return day


def on_or_after(d: date) -> date:
    """``d`` itself if it is a business day, else the next business day after it."""
    return d if is_business_day(d) else next_business_day(d)


def on_or_before(d: date) -> date:
    """``d`` itself if it is a business day, else the last business day before it."""
    return d if is_business_day(d) else previous_business_day(d)


def add_business_days(d: date, n: int) -> date:
    """T+n: the day ``n`` business days after ``d``.

    Precisely: let ``T = on_or_after(d)`` (so a weekend or holiday ``d`` counts from the next
    business day); the result is ``T`` after ``n`` steps of :func:`next_business_day`. Hence
    ``add_business_days(d, 0) == on_or_after(d)``, and for a Saturday ``d``,
    ``add_business_days(d, 1)`` is the business day after the following Monday (if that Monday
    is a business day). Raises ``ValueError`` when ``n`` is negative.
    """
    if n < 0:
        raise ValueError(f"n must be 0 or more business days, got {n}")
    day = on_or_after(d)
    for _ in range(n):
        day = next_business_day(day)
    return day


def business_days_between(start: date, end: date) -> list[date]:
    """The business days in ``[start, end]``, both ends included, in order.

    Empty when ``start`` is after ``end`` or when the range holds no business day.
    """
    days: list[date] = []
    day = start
    while day <= end:
        if is_business_day(day):
            days.append(day)
        if day == end:
            break
        day += _ONE_DAY
    return days
