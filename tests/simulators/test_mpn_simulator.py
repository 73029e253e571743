"""simulators.mpn: the scenario is reproducible, and the center's expectations are right against
a gateway answering in memory from a toy ledger (the spec's rules, not the gateway's module)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address

from gateway.mappers.mpn.mapper import (
    Cancel,
    Inquiry,
    InquiryAnswer,
    Message,
    PaymentNotice,
    ResendCheck,
    response_for,
)
from gateway.protocols.mpn import MpnLinkFactory
from simulators.mpn import MpnCenter, MpnScenario, api_rows
from simulators.mpn_link import MpnCenterFactory
from tests.helpers import connected_in_memory

TODAY = date(2026, 11, 23)
PEER = IPv4Address("TCP", "192.0.2.9", 50001)


def bills(n: int) -> list[dict[str, Any]]:
    return [
        {
            "bill_no": f"B-{i}",
            "amount": 1000 + i,
            "due_date": (TODAY + timedelta(days=30)).isoformat(),
            "payeasy": {
                "institution_code": "58191",
                "customer_number": f"{i:020d}",
                "confirmation_number": f"{4000 + i:04d}",
            },
        }
        for i in range(n)
    ]


class ToyGateway:
    """Answers as spec/mpn.md §5 says, from a dict; counts what it stored."""

    def __init__(self, made: list[dict[str, Any]]) -> None:
        self.bills = {b["payeasy"]["customer_number"]: dict(b, paid=0) for b in made}
        self.stored: dict[tuple[str, date, str], PaymentNotice] = {}
        self.voided: set[tuple[str, date, str]] = set()
        self.double: set[str] = set()

    def answer(self, request: Message, source: str) -> defer.Deferred[Message]:
        body = request.body
        key = body.payment.key if isinstance(body, ResendCheck) else body.key  # type: ignore[union-attr]
        bill = self.bills.get(key.customer_number)
        if bill is None or bill["payeasy"]["confirmation_number"] != key.confirmation_number:
            return defer.succeed(response_for(request, "1001"))
        if isinstance(body, Inquiry):
            if bill["paid"]:
                return defer.succeed(response_for(request, "1002"))
            due = date.fromisoformat(bill["due_date"])
            return defer.succeed(
                response_for(request, "0000", InquiryAnswer(key, bill["amount"], due, "ﾃｽﾄ"))
            )
        if isinstance(body, PaymentNotice | ResendCheck):
            triple = request.header.triple
            if triple not in self.stored:
                self.stored[triple] = body.payment if isinstance(body, ResendCheck) else body
                if bill["paid"]:
                    self.double.add(bill["bill_no"])
                bill["paid"] += 1
            return defer.succeed(response_for(request, "0000"))
        assert isinstance(body, Cancel)
        if body.original_triple not in self.stored:
            return defer.succeed(response_for(request, "1006"))
        self.voided.add(body.original_triple)
        bill["paid"] -= 1
        return defer.succeed(response_for(request, "0000"))


def drive(
    scenario: MpnScenario, made: list[dict[str, Any]], toy: ToyGateway | None = None
) -> tuple[MpnCenter, ToyGateway]:
    """The center drives ``made`` against the toy gateway (by default, with the same bills)."""
    clock = task.Clock()
    clock.advance(1_795_000_000)  # 2026-11-18, for the payments' times
    toy = toy or ToyGateway(made)
    center = MpnCenter(MpnCenterFactory(clock, business_date=TODAY), scenario)
    link = MpnLinkFactory(
        toy.answer, clock, institution_code="58191", center_code="0001", business_date=lambda: TODAY
    )
    _, _, pump = connected_in_memory(
        lambda: center.factory.buildProtocol(None),
        lambda: link.buildProtocol(PEER),
        clock,
        peer=PEER,
        gateway_end="client",
    )
    pump.flush()
    assert center.factory.opened.called
    done: list[object] = []
    center.run(made, rate=10).addBoth(done.append)
    for _ in range(1000):
        if done:
            break
        pump.flush()
        clock.advance(0.05)
    assert done == [None]
    return center, toy


SCENARIO = MpnScenario(
    seed=7,
    drop_probability=0.3,
    cancel_probability=0.3,
    wrong_probability=0.3,
    double_probability=0.4,
)


def test_the_scenario_follows_its_seed() -> None:
    a, b = drive(SCENARIO, bills(20))[0], drive(SCENARIO, bills(20))[0]
    assert a.expected() == b.expected() and a.answers == b.answers
    other = drive(MpnScenario(seed=8, cancel_probability=0.3), bills(20))[0]
    assert other.expected() != a.expected()
    with pytest.raises(ValueError):
        MpnScenario(drop_probability=1.5)


def test_the_center_expects_what_the_spec_says() -> None:
    center, toy = drive(SCENARIO, bills(20))
    expected = center.expected()

    assert center.mismatches == []
    for tag in ("1100:0000", "1100:1001", "1100:1002", "1200:0000", "1300:0000", "1400:0000"):
        assert center.answers.get(tag), tag  # the scenario exercised every path
    assert set(expected.payments) == set(toy.stored)
    assert {t for t, p in expected.payments.items() if p.status == "voided"} == toy.voided
    assert expected.double_paid_bills == toy.double and toy.double
    paid = [p for p in expected.payments.values()]
    assert center.figures(TODAY) == (
        len(paid),
        sum(p.amount for p in paid),
        len(toy.voided),
        sum(p.amount for p in paid if p.status == "voided"),
    )
    rows = [
        {
            "channel": "payeasy",
            "bill_no": p.bill_no,
            "paid_at": p.paid_at.isoformat(timespec="seconds"),
            "bank": {
                "bank_code": p.bank.split("-")[0],
                "channel": {"1": "atm", "2": "internet", "3": "mobile"}[p.bank.split("-")[1]],
            },
            "amount": p.amount,
            "status": p.status,
        }
        for p in expected.payments.values()
    ]
    assert api_rows(rows) == expected.api_rows()


def test_a_wrong_answer_is_a_mismatch() -> None:
    made = bills(3)
    made[1]["amount"] = 999  # the center's copy differs from the gateway's bill
    center, _ = drive(MpnScenario(seed=1, double_probability=0), made, ToyGateway(bills(3)))
    assert center.mismatches == ["B-1: 照会 gave 1001 due 2026-12-23"]
