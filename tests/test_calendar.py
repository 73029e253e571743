"""Japanese bank business days (gateway/calendar.py) on dates checked against a real calendar.

Every weekday named in a comment is asserted in :func:`test_weekdays_the_cases_rely_on`, so the
expectations below do not rest on a calendar read by eye.
"""

from __future__ import annotations

from datetime import date, timedelta

import jpholiday
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.calendar import (
    add_business_days,
    business_days_between,
    is_bank_holiday,
    is_business_day,
    next_business_day,
    on_or_after,
    on_or_before,
    previous_business_day,
)

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)

D = date


@pytest.mark.parametrize(
    ("day", "weekday"),
    [
        (D(2025, 1, 2), THU),
        (D(2025, 1, 6), MON),
        (D(2025, 5, 2), FRI),
        (D(2025, 5, 6), TUE),
        (D(2025, 9, 22), MON),
        (D(2025, 12, 30), TUE),
        (D(2025, 12, 31), WED),
        (D(2026, 1, 1), THU),
        (D(2026, 1, 2), FRI),
        (D(2026, 1, 5), MON),
        (D(2026, 4, 28), TUE),
        (D(2026, 4, 29), WED),
        (D(2026, 5, 1), FRI),
        (D(2026, 5, 6), WED),
        (D(2026, 5, 7), THU),
        (D(2026, 9, 18), FRI),
        (D(2026, 9, 21), MON),
        (D(2026, 9, 22), TUE),
        (D(2026, 9, 23), WED),
        (D(2026, 9, 24), THU),
        (D(2026, 12, 29), TUE),
        (D(2026, 12, 30), WED),
        (D(2027, 1, 1), FRI),
        (D(2027, 1, 4), MON),
        (D(2027, 1, 8), FRI),
        (D(2027, 1, 11), MON),
        (D(2028, 2, 28), MON),
        (D(2028, 2, 29), TUE),
        (D(2029, 1, 3), WED),
    ],
)
def test_weekdays_the_cases_rely_on(day: date, weekday: int) -> None:
    assert day.weekday() == weekday


@pytest.mark.parametrize(
    ("day", "why"),
    [
        (D(2025, 12, 31), "year-end break, a Wednesday"),
        (D(2026, 1, 1), "元日"),
        (D(2026, 1, 2), "year-end break, a Friday"),
        (D(2026, 1, 3), "Saturday and year-end break"),
        (D(2026, 1, 4), "Sunday"),
        (D(2025, 1, 2), "year-end break, a Thursday"),
        (D(2025, 1, 3), "year-end break, a Friday"),
        (D(2029, 1, 3), "year-end break, a Wednesday"),
        (D(2026, 4, 29), "昭和の日"),
        (D(2026, 5, 2), "Saturday"),
        (D(2026, 5, 3), "憲法記念日 on a Sunday"),
        (D(2026, 5, 4), "みどりの日"),
        (D(2026, 5, 5), "こどもの日"),
        (D(2026, 5, 6), "振替休日 for 5/3"),
        (D(2025, 5, 6), "振替休日 for みどりの日 on Sunday 5/4"),
        (D(2026, 9, 21), "敬老の日"),
        (D(2026, 9, 22), "国民の休日 between 敬老の日 and 秋分の日"),
        (D(2026, 9, 23), "秋分の日"),
        (D(2027, 1, 11), "成人の日"),
    ],
)
def test_bank_holidays(day: date, why: str) -> None:
    assert is_bank_holiday(day), why
    assert not is_business_day(day), why


@pytest.mark.parametrize(
    ("day", "why"),
    [
        (D(2025, 12, 30), "last business day of 2025"),
        (D(2026, 1, 5), "first business day of 2026"),
        (D(2025, 1, 6), "first business day of 2025 (Jan 2-3 fell on Thu-Fri)"),
        (D(2029, 1, 4), "first business day of 2029, a Thursday"),
        (D(2026, 4, 28), "the Tuesday before 昭和の日"),
        (D(2026, 4, 30), "between 昭和の日 and the long weekend"),
        (D(2026, 5, 1), "between 昭和の日 and the long weekend"),
        (D(2026, 5, 7), "first business day after Golden Week 2026"),
        (D(2025, 5, 7), "first business day after Golden Week 2025"),
        (D(2025, 9, 22), "2025: 敬老の日 9/15 and 秋分の日 9/23 are not one day apart"),
        (D(2026, 12, 30), "last business day of 2026"),
        (D(2027, 1, 4), "first business day of 2027"),
        (D(2028, 2, 29), "leap day, a Tuesday"),
    ],
)
def test_business_days(day: date, why: str) -> None:
    assert is_business_day(day), why
    assert not is_bank_holiday(day), why


def test_citizens_holiday_comes_from_jpholiday() -> None:
    # Not a named holiday of its own: a day between two holidays is a holiday (祝日法 第3条3項).
    assert jpholiday.is_holiday_name(D(2026, 9, 22)) == "国民の休日"
    assert jpholiday.is_holiday_name(D(2026, 5, 6)) == "憲法記念日 振替休日"
    assert jpholiday.is_holiday_name(D(2025, 5, 6)) == "みどりの日 振替休日"


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (D(2025, 12, 30), D(2026, 1, 5)),
        (D(2026, 1, 1), D(2026, 1, 5)),
        (D(2026, 1, 5), D(2026, 1, 6)),
        (D(2026, 5, 1), D(2026, 5, 7)),
        (D(2025, 5, 2), D(2025, 5, 7)),
        (D(2026, 9, 18), D(2026, 9, 24)),
        (D(2026, 12, 30), D(2027, 1, 4)),
        (D(2027, 1, 8), D(2027, 1, 12)),
        (D(2028, 2, 28), D(2028, 2, 29)),
        (D(2028, 2, 29), D(2028, 3, 1)),
    ],
)
def test_next_business_day(day: date, expected: date) -> None:
    assert next_business_day(day) == expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (D(2026, 1, 5), D(2025, 12, 30)),
        (D(2026, 1, 3), D(2025, 12, 30)),
        (D(2026, 5, 7), D(2026, 5, 1)),
        (D(2026, 9, 24), D(2026, 9, 18)),
        (D(2027, 1, 4), D(2026, 12, 30)),
        (D(2028, 3, 1), D(2028, 2, 29)),
        (D(2026, 5, 1), D(2026, 4, 30)),
    ],
)
def test_previous_business_day(day: date, expected: date) -> None:
    assert previous_business_day(day) == expected


def test_on_or_after_and_on_or_before() -> None:
    assert on_or_after(D(2026, 1, 5)) == D(2026, 1, 5)
    assert on_or_before(D(2026, 1, 5)) == D(2026, 1, 5)
    assert on_or_after(D(2026, 12, 31)) == D(2027, 1, 4)
    assert on_or_before(D(2027, 1, 3)) == D(2026, 12, 30)
    assert on_or_after(D(2026, 5, 3)) == D(2026, 5, 7)
    assert on_or_before(D(2026, 5, 3)) == D(2026, 5, 1)
    assert on_or_after(D(2026, 9, 22)) == D(2026, 9, 24)
    assert on_or_before(D(2026, 9, 22)) == D(2026, 9, 18)


@pytest.mark.parametrize(
    ("day", "n", "expected"),
    [
        # Year-end: Tue 12/29 -> Wed 12/30 -> (12/31-1/3 closed) Mon 1/4 -> Tue 1/5.
        (D(2026, 12, 29), 0, D(2026, 12, 29)),
        (D(2026, 12, 29), 1, D(2026, 12, 30)),
        (D(2026, 12, 29), 2, D(2027, 1, 4)),
        (D(2026, 12, 29), 3, D(2027, 1, 5)),
        (D(2026, 12, 30), 1, D(2027, 1, 4)),
        # A closed d counts from on_or_after(d): T = Mon 1/4.
        (D(2026, 12, 31), 0, D(2027, 1, 4)),
        (D(2026, 12, 31), 1, D(2027, 1, 5)),
        # Golden Week 2026: Tue 4/28, (4/29 closed), Thu 4/30, Fri 5/1, (5/2-5/6 closed), Thu 5/7.
        (D(2026, 4, 28), 1, D(2026, 4, 30)),
        (D(2026, 4, 28), 2, D(2026, 5, 1)),
        (D(2026, 4, 28), 3, D(2026, 5, 7)),
        (D(2026, 4, 28), 4, D(2026, 5, 8)),
        (D(2026, 5, 2), 0, D(2026, 5, 7)),
        (D(2026, 5, 2), 1, D(2026, 5, 8)),
        # Silver Week 2026: Fri 9/18, (9/19-9/23 closed), Thu 9/24.
        (D(2026, 9, 18), 1, D(2026, 9, 24)),
        # Leap year.
        (D(2028, 2, 28), 1, D(2028, 2, 29)),
        (D(2028, 2, 28), 2, D(2028, 3, 1)),
        # 成人の日 2027: Fri 1/8 -> (weekend, Mon 1/11 closed) Tue 1/12.
        (D(2027, 1, 8), 1, D(2027, 1, 12)),
    ],
)
def test_add_business_days(day: date, n: int, expected: date) -> None:
    assert add_business_days(day, n) == expected


def test_add_business_days_refuses_negative_n() -> None:
    with pytest.raises(ValueError, match="got -1"):
        add_business_days(D(2026, 1, 5), -1)


def test_business_days_between() -> None:
    assert business_days_between(D(2026, 4, 28), D(2026, 5, 8)) == [
        D(2026, 4, 28),
        D(2026, 4, 30),
        D(2026, 5, 1),
        D(2026, 5, 7),
        D(2026, 5, 8),
    ]
    assert business_days_between(D(2025, 12, 30), D(2026, 1, 5)) == [
        D(2025, 12, 30),
        D(2026, 1, 5),
    ]
    assert business_days_between(D(2026, 5, 2), D(2026, 5, 6)) == []
    assert business_days_between(D(2026, 5, 8), D(2026, 5, 7)) == []
    assert business_days_between(D(2026, 5, 7), D(2026, 5, 7)) == [D(2026, 5, 7)]


# The 2026 national holidays that fall on a weekday (the 18th, 憲法記念日 5/3, is a Sunday).
WEEKDAY_HOLIDAYS_2026 = [
    D(2026, 1, 1), D(2026, 1, 12), D(2026, 2, 11), D(2026, 2, 23), D(2026, 3, 20),
    D(2026, 4, 29), D(2026, 5, 4), D(2026, 5, 5), D(2026, 5, 6), D(2026, 7, 20),
    D(2026, 8, 11), D(2026, 9, 21), D(2026, 9, 22), D(2026, 9, 23), D(2026, 10, 12),
    D(2026, 11, 3), D(2026, 11, 23),
]  # fmt: skip


def test_business_days_in_2026() -> None:
    assert all(d.weekday() < SAT for d in WEEKDAY_HOLIDAYS_2026)
    assert sorted(d for d, _ in jpholiday.year_holidays(2026) if d.weekday() < SAT) == (
        WEEKDAY_HOLIDAYS_2026
    )
    # 2026 starts on a Thursday and has 365 days: 52 Saturdays and 52 Sundays. The year-end
    # break adds two weekdays not counted above: Fri 1/2 and Thu 12/31 (1/3 is a Saturday).
    assert D(2026, 1, 1).weekday() == THU and D(2026, 12, 31).weekday() == THU
    expected = 365 - 2 * 52 - len(WEEKDAY_HOLIDAYS_2026) - 2
    assert expected == 242
    open_days = business_days_between(D(2026, 1, 1), D(2026, 12, 31))
    assert len(open_days) == expected
    assert open_days[0] == D(2026, 1, 5) and open_days[-1] == D(2026, 12, 30)


DATES = st.dates(min_value=D(2000, 1, 1), max_value=D(2098, 12, 31))
STEPS = st.integers(min_value=0, max_value=60)


@given(DATES, STEPS)
def test_add_business_days_properties(day: date, n: int) -> None:
    result = add_business_days(day, n)
    assert is_business_day(result)
    assert result >= day
    if n >= 1:
        assert result > day
    assert add_business_days(day, n + 1) == next_business_day(result)
    # Exactly n business days in (T, result], T = on_or_after(day).
    start = on_or_after(day)
    assert len(business_days_between(start + timedelta(days=1), result)) == n


@given(DATES)
def test_neighbours_properties(day: date) -> None:
    after, before = next_business_day(day), previous_business_day(day)
    assert before < day < after
    assert is_business_day(after) and is_business_day(before)
    # Nothing open strictly between them except possibly day itself.
    between = business_days_between(before + timedelta(days=1), after - timedelta(days=1))
    assert between == ([day] if is_business_day(day) else [])
    assert on_or_after(day) == (day if is_business_day(day) else after)
    assert on_or_before(day) == (day if is_business_day(day) else before)
    assert previous_business_day(after) == on_or_before(day)
    assert next_business_day(before) == on_or_after(day)


@given(DATES)
def test_year_end_break_and_weekends_are_always_closed(day: date) -> None:
    closed = day.weekday() >= SAT or (day.month, day.day) in {(12, 31), (1, 1), (1, 2), (1, 3)}
    if closed:
        assert is_bank_holiday(day)
    if jpholiday.is_holiday(day):
        assert is_bank_holiday(day)
    if not closed and not jpholiday.is_holiday(day):
        assert is_business_day(day)
