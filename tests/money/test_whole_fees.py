"""The whole fee model against the real store (SQLite, or PostgreSQL with
GATEWAY_TEST_DATABASE_URL): the initial fee once, the monthly fee in the settlement that closes a
month (waived for an idle month), per-bill fees, and per-notice fees counted from what the
gateway recorded — e-mails the mailer sent and notices fed through
gateway.store.notice_charges.record_notice — each charged by exactly one settlement."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

from sqlalchemy import select

from gateway.fee_model import Cycle, LineKind, NoticeKind
from gateway.money.statements import statement_csv, statement_pdf
from gateway.notice_rules import Medium, Notice, sms_segments
from gateway.store.notice_charges import record_notice
from gateway.store.notify import Finished, NewNotice, finish, queue_bill_email, queue_notices
from gateway.store.schema import bills, notice_charges, notifications
from tests.money.test_settlement import World, at, standard_plan
from tests.money.test_settlement import world as world  # the fixture, reused
from tests.render.test_receipts import text_of, write

PLAN = standard_plan(
    cycle=Cycle.TWICE_MONTHLY,
    settlement_fee=0,
    initial_fee=30_000,
    monthly_fee=3_000,
    waive_idle_months=True,
    per_bill=20,
    notice_rates={NoticeKind.EMAIL: 5, NoticeKind.SMS: 15, NoticeKind.SHEET: 30},
)


def fee_lines(settlement: object) -> list[tuple[str, str, int, int]]:
    new = {LineKind.INITIAL_FEE, LineKind.MONTHLY_FEE, LineKind.BILL_FEE, LineKind.NOTICE_FEE}
    return [
        (line.kind.value, line.description, line.quantity, line.amount)
        for line in settlement.lines  # type: ignore[attr-defined]
        if line.kind in new
    ]


def test_each_fee_is_charged_by_the_settlement_it_belongs_to_and_only_once(
    world: World, tmp_path: Path
) -> None:
    world.plan(PLAN)
    first = world.bill("B-1", 5_400)  # registered 2026-11-02: a per-bill fee in 1-15 November
    world.paid(first, at(11, 5), at(11, 8))
    with world.engine.begin() as conn:
        # The page-URL e-mail of B-1, sent on 11-03: an e-mail notice of the first half.
        queue_bill_email(conn, "acme", "B-1", at(11, 2))
        conn.execute(notifications.update().values(status="sent", sent_at=at(11, 3)))
        # What the SMS and slip-printing work feeds: two SMS and a sheet of slips.
        for key, kind, when in [
            ("sms:1", NoticeKind.SMS, at(11, 4)),
            ("sms:2", NoticeKind.SMS, at(11, 20)),
            ("sheet:batch-1:1", NoticeKind.SHEET, at(11, 21)),
        ]:
            assert record_notice(conn, key=key, biller_id="acme", kind=kind, at=when)
        # The same notice again (a retried transaction): counted once.
        assert not record_notice(
            conn, key="sms:1", biller_id="acme", kind=NoticeKind.SMS, at=at(11, 4)
        )

    half = world.settle(date(2026, 11, 16))
    assert half is not None and half.period_end == date(2026, 11, 15)
    assert fee_lines(half) == [
        ("bill_fee", "請求発行手数料", 1, -20),
        ("notice_fee", "メール通知手数料", 1, -5),
        ("notice_fee", "SMS通知手数料（通数）", 1, -15),
        ("initial_fee", "初期費用", 1, -30_000),
    ]
    assert half.totals.fees == 60 + 20 + 5 + 15 + 30_000
    # The statement the biller reads: each fee on its own line, in the PDF and the CSV.
    text = text_of(write(tmp_path, statement_pdf(half, "Acme 株式会社")))
    for words in ("初期費用", "請求発行手数料", "メール通知手数料", "SMS通知手数料"):
        assert words in text
    csv_text = statement_csv(half, "Acme 株式会社", "utf-8").decode("utf-8-sig")
    assert "初期費用,,初期費用,1,30000,-30000" in csv_text

    # Recorded after the first half closed but dated in it: taken by the next settlement.
    with world.engine.begin() as conn:
        record_notice(conn, key="sms:late", biller_id="acme", kind=NoticeKind.SMS, at=at(11, 10))
    end = world.settle(date(2026, 12, 1))
    assert end is not None and end.period_end == date(2026, 11, 30)
    assert fee_lines(end) == [
        ("notice_fee", "SMS通知手数料（通数）", 2, -30),
        ("notice_fee", "払込票印刷手数料", 1, -30),
        ("monthly_fee", "月額基本料（2026年11月分）", 1, -3_000),  # the month collected B-1
    ]
    with world.engine.connect() as conn:
        charged = {
            key: settlement
            for key, settlement in conn.execute(
                select(notice_charges.c.notice_key, notice_charges.c.settlement_id)
            )
        }
    assert charged == {
        "email:1": half.settlement_id,
        "sms:1": half.settlement_id,
        "sms:2": end.settlement_id,
        "sms:late": end.settlement_id,
        "sheet:batch-1:1": end.settlement_id,
    }

    # December collects nothing: its monthly fee is waived, shown as such, nothing charged.
    december_first = world.settle(date(2026, 12, 16))
    december = world.settle(date(2027, 1, 1))
    assert december_first is not None and december is not None
    assert fee_lines(december_first) == []
    assert fee_lines(december) == [
        ("monthly_fee", "月額基本料（2026年12月分・収納なしのため免除）", 0, 0)
    ]
    assert (december.totals.fees, december.totals.tax) == (0, 0)
    # (the initial fee was more than November collected: the shortfall is carried on)
    assert december.totals.carried_in == december.totals.carried_out > 0


def test_a_plan_with_the_new_fees_is_stored_and_read_back(world: World) -> None:
    stored = world.plan(PLAN)
    assert dataclasses.replace(stored, plan_id=None) == PLAN
    again = world.plan(PLAN)
    assert again.plan_id == stored.plan_id  # the same plan again changes nothing


def test_a_long_sms_is_charged_once_per_segment_on_the_settlement_line(world: World) -> None:
    world.plan(PLAN)
    world.bill("B-1", 5_400)
    with world.engine.begin() as conn:
        bill_id = conn.execute(select(bills.c.id).where(bills.c.bill_no == "B-1")).scalar_one()
        # Three SMS of the bill: 70 characters (one message), 71 and 135 (two and three parts).
        texts = ["あ" * 70, "あ" * 71, "あ" * 135]
        queue_notices(
            conn,
            [NewNotice("acme", bill_id, Notice.REMINDER, Medium.SMS, f"r{i}") for i in range(3)],
            at(11, 3),
        )
        ids = sorted(conn.execute(select(notifications.c.id)).scalars())
        # What the SMS sender finishes them with: sent, each with its text's segments.
        done = [
            Finished(i, "sent", segments=sms_segments(t)) for i, t in zip(ids, texts, strict=True)
        ]
        finish(conn, done, at(11, 4))
        finish(conn, [Finished(ids[2], "sent", segments=3)], at(11, 5))  # again: counted once
        charged = conn.execute(
            select(notice_charges.c.notice_key, notice_charges.c.quantity).order_by(
                notice_charges.c.id
            )
        ).all()
    assert [tuple(r) for r in charged] == [
        (f"sms:{i}", n) for i, n in zip(ids, [1, 2, 3], strict=True)
    ]
    settled = world.settle(date(2026, 12, 1))
    assert settled is not None
    assert [line for line in fee_lines(settled) if line[0] == "notice_fee"] == [
        ("notice_fee", "SMS通知手数料（通数）", 6, -6 * 15)
    ]
