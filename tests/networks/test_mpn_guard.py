"""The 確認番号 guard under concurrency: guesses at one お客様番号 that arrive together take turns
on the guard's count, so a burst of guesses gets no more than ``guard_limit`` of them judged.

Each test holds one guess's transaction open on one connection while a second guess runs on
another connection (as two store threads of the daemon would), then commits the first.
"""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import select

from gateway.mappers.mpn.mapper import Inquiry
from gateway.mappers.mpn.numbers import valid_customer_number
from gateway.model import Bill
from gateway.store import create_db_engine
from gateway.store.schema import mpn_guard
from tests.networks.test_mpn_answers import TODAY, Desk, desk  # noqa: F401 (the fixture)

WRONG = "000000"


def refusals() -> float:
    return REGISTRY.get_sample_value("gateway_mpn_guard_refusals_total") or 0.0


def race(d: Desk, bill: Bill, first: str, second: str) -> tuple[str, str]:
    """Two 照会 of ``bill`` at once: ``first`` answered inside a transaction kept open until
    ``second`` (on another connection) has run or is blocked; returns both response codes."""
    other = create_db_engine(str(d.engine.url.render_as_string(hide_password=False)), 1)
    answers: dict[str, Any] = {}

    def ask_second() -> None:
        try:
            with other.begin() as conn:
                request = d.request("1100", Inquiry(d.key(bill, second)))
                answers["second"] = d.network._inquiry(conn, request).header.response_code
        except BaseException as e:  # reported by the assertion below
            answers["second"] = e

    try:
        with d.engine.begin() as conn:
            request = d.request("1100", Inquiry(d.key(bill, first)))
            answers["first"] = d.network._inquiry(conn, request).header.response_code
            thread = threading.Thread(target=ask_second)
            thread.start()
            # Give the second guess the time to run (before the fix it read the count of
            # before this transaction and went on) or to block on the guard's row (after).
            thread.join(timeout=2)
        thread.join(timeout=60)
        assert not thread.is_alive()
    finally:
        other.dispose()
    return answers["first"], answers["second"]


def failures(d: Desk) -> int:
    with d.engine.connect() as conn:
        return int(conn.execute(select(mpn_guard.c.failures)).scalar_one())


def test_a_right_guess_racing_the_last_wrong_one_is_refused(desk: Desk) -> None:  # noqa: F811
    """The attack: with guard_limit - 1 wrong guesses counted, send the limit-th wrong guess and
    another at once: the other must not be judged on the count from before the burst."""
    bill = desk.bill("P-1")
    assert bill.payeasy is not None
    for _ in range(4):  # guard_limit is 5
        assert desk.inquire(bill, WRONG) == "1001"
    before = refusals()
    first, second = race(desk, bill, WRONG, bill.payeasy.confirmation_number)
    assert (first, second) == ("1001", "1001")  # the right number came one guess too late
    assert refusals() == before + 1
    assert failures(desk) == 5


def test_two_wrong_guesses_at_once_cannot_both_pass_the_limit(desk: Desk) -> None:  # noqa: F811
    bill = desk.bill("P-1")
    for _ in range(4):
        assert desk.inquire(bill, WRONG) == "1001"
    before = refusals()
    assert race(desk, bill, WRONG, "111111") == ("1001", "1001")
    # One of the two was the 5th wrong guess, the other came after the limit: the guard refused
    # it (both were judged as the 5th before).
    assert refusals() == before + 1
    assert failures(desk) == 6
    assert bill.payeasy is not None
    assert desk.inquire(bill) == "1001"  # locked for the day, right number or not


def test_a_right_guess_within_the_limit_still_answers(desk: Desk) -> None:  # noqa: F811
    bill = desk.bill("P-1")
    assert bill.payeasy is not None
    for _ in range(3):
        assert desk.inquire(bill, WRONG) == "1001"
    first, second = race(desk, bill, WRONG, bill.payeasy.confirmation_number)
    assert (first, second) == ("1001", "0000")
    assert failures(desk) == 4
    assert desk.inquire(bill) == "0000"


def test_consecutive_bills_get_unrelated_customer_numbers(desk: Desk) -> None:  # noqa: F811
    """The attack that made the guard the only defence: from one's own お客様番号, the numbers of
    the bills issued just before and after were one serial away. Bills are issued here by the
    real issuer and store, as POST /v1/bills does."""
    made = [desk.bill(f"N-{n}") for n in range(20)]
    numbers = [b.payeasy.customer_number for b in made if b.payeasy is not None]
    assert len(set(numbers)) == len(made) == 20
    assert all(valid_customer_number(n) for n in numbers)
    assert {n[:5] for n in numbers} == {made[0].payeasy.customer_number[:5]}  # type: ignore[union-attr]
    middles = [int(n[5:15]) for n in numbers]
    assert not any(abs(b - a) <= 1000 for a, b in itertools.pairwise(middles))
    # Numbers are found as stored: each answers its own 照会.
    assert {desk.inquire(b) for b in made[:3]} == {"0000"}


def test_the_day_close_drops_the_guard_counts_of_the_days_before(desk: Desk) -> None:  # noqa: F811
    """Every 照会 writes a guard row for its number and business day, so the table would grow
    by the day's numbers every day: the 閉局 of a day deletes the rows of the days before it and
    keeps that day's (a count decides only on its own day)."""
    bill = desk.bill("P-1")
    for day in (TODAY - timedelta(days=2), TODAY - timedelta(days=1), TODAY):
        with desk.engine.begin() as conn:
            desk.network._inquiry(conn, desk.request("1100", Inquiry(desk.key(bill)), day=day))
    with desk.engine.begin() as conn:
        desk.network._close(conn, TODAY - timedelta(days=1), None)
    with desk.engine.connect() as conn:
        days = sorted(conn.execute(select(mpn_guard.c.business_date)).scalars())
    assert days == [TODAY - timedelta(days=1), TODAY]
