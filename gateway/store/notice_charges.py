"""Notices a biller pays for, and the other counts of the whole fee model (gateway.fee_model).

**The interface for whatever sends notices** (e-mail, SMS, printed sheets): call
:func:`record_notice` in the transaction that marks the notice sent (or the sheet printed), with
a key of its own (``"sms:<id>"``, ``"sheet:<file>:<page>"``). The same key again changes nothing,
so a retried transaction or a resend counts once. The row's ``recorded_at`` is its date for the
fee: the plan in force on that JST day prices it, and the settlement of the period it falls in
charges it.

E-mails and SMS are notices of ``notifications`` (status ``sent``, ``sent_at``, ``medium``); the
mailer and the SMS sender record each as they mark it sent (gateway.store.notify.finish, key
``"<medium>:<notification id>"``). :func:`record_sent_emails` brings in, once, e-mails sent
before that (same key) when a settlement needs them.

A settlement claims its notices as it claims its payments (``settlement_id``, set once): every
notice of the biller recorded before the period's end and not yet charged, so a notice recorded
late is charged by the next settlement, never twice.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from gateway.fee_model import Contract, NoticeKind, Tally, jst_midnight, month_end
from gateway.store.dialect import dialect_insert
from gateway.store.schema import bills, notice_charges, notifications, settlements
from gateway.store.settlements import _plan_case


def record_notice(
    conn: Connection,
    *,
    key: str,
    biller_id: str,
    kind: NoticeKind,
    at: datetime,
    quantity: int = 1,
    bill_id: int | None = None,
) -> bool:
    """Record ``quantity`` notices of ``kind`` sent (or sheets printed) for ``biller_id`` at
    ``at``; False when ``key`` was recorded before (nothing changes)."""
    if quantity < 1:
        raise ValueError(f"a notice is counted 1 or more times, not {quantity}")
    if not 1 <= len(key) <= 80:
        raise ValueError("a notice key is 1 to 80 characters")
    made = conn.execute(
        dialect_insert(conn, notice_charges)
        .values(
            notice_key=key,
            biller_id=biller_id,
            kind=kind.value,
            quantity=quantity,
            bill_id=bill_id,
            recorded_at=at,
        )
        .on_conflict_do_nothing(index_elements=["notice_key"])
        .returning(notice_charges.c.id)
    ).scalar()
    return made is not None


def record_sent_emails(conn: Connection, biller_id: str, until: datetime) -> int:
    """Every e-mail of the biller the mailer sent before ``until`` and not yet recorded, as
    notices (key ``email:<notification id>``, at its ``sent_at``); how many were added."""
    n = notifications.c
    known = select(notice_charges.c.notice_key).where(
        notice_charges.c.biller_id == biller_id, notice_charges.c.kind == NoticeKind.EMAIL.value
    )
    recorded = {str(k) for k in conn.execute(known).scalars()}
    added = 0
    for notification_id, bill_id, sent_at in conn.execute(
        select(n.id, n.bill_id, n.sent_at)
        .where(n.biller_id == biller_id, n.medium == "email", n.status == "sent", n.sent_at < until)
        .order_by(n.id)
    ):
        key = f"email:{notification_id}"
        if key in recorded:
            continue
        added += record_notice(
            conn,
            key=key,
            biller_id=biller_id,
            kind=NoticeKind.EMAIL,
            at=sent_at,
            bill_id=bill_id,
        )
    return added


def claim_notices(conn: Connection, biller_id: str, settlement_id: str, until: datetime) -> None:
    """The biller's notices recorded before ``until`` that no settlement has charged, claimed."""
    conn.execute(
        update(notice_charges)
        .where(
            notice_charges.c.biller_id == biller_id,
            notice_charges.c.settlement_id.is_(None),
            notice_charges.c.recorded_at < until,
        )
        .values(settlement_id=settlement_id)
    )


def notice_counts(
    conn: Connection, contract: Contract, settlement_id: str
) -> dict[tuple[NoticeKind, int], int]:
    """The notices a settlement claimed, by kind and plan in force when each was recorded."""
    c = notice_charges.c
    plan = _plan_case(contract, c.recorded_at).label("plan")
    rows = conn.execute(
        select(c.kind, plan, func.sum(c.quantity))
        .where(c.settlement_id == settlement_id)
        .group_by(c.kind, plan)
    )
    return {(NoticeKind(kind), int(index)): int(total) for kind, index, total in rows}


def bills_registered(
    conn: Connection, contract: Contract, biller_id: str, start: date, end: date
) -> dict[int, int]:
    """Bills of the biller registered on the JST days [start, end], by plan in force then."""
    c = bills.c
    plan = _plan_case(contract, c.created_at).label("plan")
    rows = conn.execute(
        select(plan, func.count())
        .where(
            c.biller_id == biller_id,
            c.created_at >= jst_midnight(start),
            c.created_at < jst_midnight(end + timedelta(days=1)),
        )
        .group_by(plan)
    )
    return {int(index): int(count) for index, count in rows}


def collected_earlier_in_month(conn: Connection, biller_id: str, end: date) -> int:
    """Payments paid out by the biller's settlements that closed earlier in ``end``'s month."""
    found = conn.execute(
        select(func.coalesce(func.sum(settlements.c.payments_count), 0)).where(
            settlements.c.biller_id == biller_id,
            settlements.c.period_end >= end.replace(day=1),
            settlements.c.period_end < end,
        )
    ).scalar_one()
    return int(found)


def whole_fee_tally(
    conn: Connection,
    contract: Contract,
    biller_id: str,
    settlement_id: str,
    period: tuple[date, date],
    counted: Tally,
    *,
    first: bool,
) -> Tally:
    """``counted`` (the payments, refunds and uncollected bills of a settlement) with what the
    rest of the fee model needs: whether it is the biller's first settlement, the month's
    collections when the period closes a month, the bills registered in the period (when a plan
    of the contract charges per bill) and the notices it claims (e-mails brought in first when a
    plan charges for them)."""
    start, end = period
    until = jst_midnight(end + timedelta(days=1))
    if any(p.notice_rate(NoticeKind.EMAIL) for p in contract.plans):
        record_sent_emails(conn, biller_id, until)
    claim_notices(conn, biller_id, settlement_id, until)
    month: int | None = None
    if end == month_end(end):
        here = sum(count for count, _ in counted.collected.values())
        month = here + collected_earlier_in_month(conn, biller_id, end)
    registered: dict[int, int] = {}
    if any(p.per_bill for p in contract.plans):
        registered = bills_registered(conn, contract, biller_id, start, end)
    return dataclasses.replace(
        counted,
        first=first,
        month_collected=month,
        bills=registered,
        notices=notice_counts(conn, contract, settlement_id),
    )
