"""照会 answered in groups (one transaction, one SELECT of the bills, one upsert of the guard's
counts): every 照会 of a group is answered as it would be alone, in the order it arrived — the
right, wrong, unknown, paid, past-due and locked-out ones, and bursts on one number — and the
guard counts every attempt."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest_twisted
from prometheus_client import REGISTRY
from sqlalchemy import select
from twisted.internet.defer import DeferredList

from gateway.mappers.mpn.mapper import Inquiry, Key, Message
from gateway.networks.mpn import MpnNetwork
from gateway.store import Store, create_db_engine
from gateway.store.schema import mpn_guard
from tests.networks.test_mpn_answers import TODAY, Desk, desk  # noqa: F401 (the fixture)

WRONG = "000000"
UNKNOWN = Key("58191", "0000199999999999", "123456")


def refusals() -> float:
    return REGISTRY.get_sample_value("gateway_mpn_guard_refusals_total") or 0.0


def scenario(d: Desk, tag: str) -> list[Message]:
    """Bills in every state the answer depends on, and a group of 照会 of them."""
    right = d.bill(f"{tag}-right", amount=1200)
    wrong = d.bill(f"{tag}-wrong")
    paid = d.bill(f"{tag}-paid")
    assert d.ask(d.pay(paid)).header.response_code == "0000"
    locked = d.bill(f"{tag}-locked")
    for _ in range(5):  # guard_limit is 5: the number is locked for the day
        assert d.inquire(locked, WRONG) == "1001"
    edge = d.bill(f"{tag}-edge")  # 3 wrong: the 4th and 5th come in the group
    for _ in range(3):
        assert d.inquire(edge, WRONG) == "1001"
    due = d.bill(f"{tag}-due", due=0)

    def ask(bill: Any, confirmation: str | None = None, day: Any = TODAY) -> Message:
        return d.request("1100", Inquiry(d.key(bill, confirmation)), day)

    return [
        ask(right),
        ask(wrong, WRONG),
        d.request("1100", Inquiry(UNKNOWN)),
        ask(paid),
        ask(paid, WRONG),
        ask(locked),
        ask(edge),  # right, 3 wrong: answered
        ask(edge, WRONG),  # the 4th wrong
        ask(edge),  # right, 4 wrong: still answered
        ask(edge, "111111"),  # the 5th wrong: refused, and the number is locked
        ask(edge),  # right, but too late
        ask(due, day=TODAY + timedelta(days=1)),  # past due
        ask(due),  # due today: answered
        ask(right),  # the same number twice in a group
        ask(right, day=TODAY + timedelta(days=1)),  # another day's count
        ask(wrong),  # right after one wrong in the same group
    ]


def summary(answers: list[Message]) -> list[tuple[str, Any]]:
    return [
        (a.header.response_code, a.body.amount if a.header.response_code == "0000" else None)  # type: ignore[union-attr]
        for a in answers
    ]


EXPECTED = [
    ("0000", 1200),
    ("1001", None),
    ("1001", None),
    ("1002", None),
    ("1001", None),
    ("1001", None),
    ("0000", 5400),
    ("1001", None),
    ("0000", 5400),
    ("1001", None),
    ("1001", None),
    ("1003", None),
    ("0000", 5400),
    ("0000", 1200),
    ("0000", 1200),
    ("0000", 5400),
]


def guard_counts(d: Desk, tag: str, requests: list[Message]) -> list[int]:
    """The guard's count of each request's number and day, in request order (0: no row)."""
    with d.engine.connect() as conn:
        rows = {
            (r.customer_number, r.business_date): r.failures
            for r in conn.execute(select(mpn_guard))
        }
    return [
        rows.get((r.body.key.customer_number, r.header.business_date), 0)  # type: ignore[union-attr]
        for r in requests
    ]


def test_a_group_answers_each_inquiry_as_alone(desk: Desk) -> None:  # noqa: F811
    alone = scenario(desk, "A")
    before = refusals()
    one_by_one = [desk.ask(r) for r in alone]
    refused_alone = refusals() - before

    grouped = scenario(desk, "G")
    before = refusals()
    with desk.engine.begin() as conn:
        together = desk.network._inquiries(conn, grouped)
    refused_together = refusals() - before

    assert summary(one_by_one) == EXPECTED
    assert summary(together) == EXPECTED
    # Every attempt counted, in order: the same counts per number and day either way.
    assert guard_counts(desk, "A", alone) == guard_counts(desk, "G", grouped)
    assert guard_counts(desk, "G", grouped) == [0, 1, 0, 1, 1, 5, 5, 5, 5, 5, 5, 0, 0, 0, 0, 1]
    # Refused by the guard (a right 確認番号 at the limit): the locked number, and the edge's
    # right one after its 5th wrong (the 5th itself is refused as wrong).
    assert refused_alone == refused_together == 2
    for a, b, r in zip(one_by_one, together, grouped, strict=True):
        assert a.header.type == b.header.type == "1110"
        assert b.header.triple == r.header.triple


def _answered(results: list[tuple[bool, Any]]) -> list[Message]:
    assert all(ok for ok, _ in results), [v for ok, v in results if not ok]
    return [v for _, v in results]


@pytest_twisted.ensureDeferred
async def test_inquiries_arriving_together_go_in_one_transaction(
    desk: Desk,  # noqa: F811
) -> None:
    """Through the network's answer and a running store: the 照会 that arrive while a group
    runs are answered by the next group, each as alone."""
    from twisted.internet import reactor  # noqa: TID251 - tests drive the real reactor

    requests = scenario(desk, "S")
    url = desk.engine.url.render_as_string(hide_password=False)
    store = Store(create_db_engine(url, 2), reactor)
    store.start()
    network = MpnNetwork(desk.network.config, store, desk.network.ingest, reactor)
    groups: list[int] = []
    apply: Callable[..., list[Message]] = network.inquiries.apply  # type: ignore[assignment]

    def counted(conn: Any, items: list[Message]) -> list[Message]:
        groups.append(len(items))
        return apply(conn, items)

    network.inquiries.apply = counted
    try:
        results = await DeferredList(
            [network.answer(r, "test") for r in requests], consumeErrors=True
        )
    finally:
        store.stop()
    assert summary(_answered(results)) == EXPECTED
    assert groups == [1, len(requests) - 1]  # the first alone, the rest waited and went together
