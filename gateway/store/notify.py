"""Customer e-mails in the store: queued with the bill they announce, claimed with a lease."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection

from gateway.model import Bill
from gateway.store.bills import _bill
from gateway.store.schema import billers, bills, notifications


@dataclass(frozen=True)
class Claimed:
    notification_id: int
    attempts: int
    recipient: str | None
    biller_name: str
    bill: Bill


def queue_bill_emails(
    conn: Connection, bills_to_mail: Sequence[tuple[str, int]], now: datetime
) -> None:
    """Queue the page-URL e-mail of new bills, ``(biller_id, bill_id)``, in the transaction
    that creates them (call it only for bills that have an e-mail address)."""
    if bills_to_mail:
        conn.execute(
            notifications.insert(),
            [
                {
                    "biller_id": biller_id,
                    "bill_id": bill_id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for biller_id, bill_id in bills_to_mail
            ],
        )


def queue_bill_email(conn: Connection, biller_id: str, bill_no: str, now: datetime) -> None:
    """:func:`queue_bill_emails` for one bill named by its number."""
    bill_id = conn.execute(
        select(bills.c.id).where(bills.c.biller_id == biller_id, bills.c.bill_no == bill_no)
    ).scalar_one()
    queue_bill_emails(conn, [(biller_id, int(bill_id))], now)


def claim(conn: Connection, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
    """Take due notifications (and those whose lease ran out) for sending."""
    due = or_(
        and_(notifications.c.status == "pending", notifications.c.next_attempt_at <= now),
        and_(notifications.c.status == "sending", notifications.c.lease_until < now),
    )
    stmt = (
        select(notifications.c.id, notifications.c.attempts, notifications.c.bill_id)
        .where(due)
        .order_by(notifications.c.next_attempt_at, notifications.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    taken = conn.execute(stmt).all()
    if not taken:
        return []
    conn.execute(
        update(notifications)
        .where(notifications.c.id.in_([t.id for t in taken]))
        .values(
            status="sending",
            lease_until=now + lease,
            attempts=notifications.c.attempts + 1,
        )
    )
    rows = conn.execute(
        select(bills, billers.c.name.label("biller_name"))
        .join(billers, billers.c.biller_id == bills.c.biller_id)
        .where(bills.c.id.in_([t.bill_id for t in taken]))
    ).all()
    by_id = {r.id: r for r in rows}
    return [
        Claimed(
            t.id,
            t.attempts + 1,
            by_id[t.bill_id].customer_email,
            by_id[t.bill_id].biller_name,
            _bill(by_id[t.bill_id]),
        )
        for t in taken
    ]


def finish(
    conn: Connection,
    results: Sequence[tuple[int, str, str | None, datetime | None]],
    now: datetime,
) -> None:
    """(id, status, error, next attempt) for each claimed notification."""
    for notification_id, status, error, next_at in results:
        values: dict[str, object] = {"status": status, "last_error": error, "lease_until": None}
        if status == "sent":
            values["sent_at"] = now
        if next_at is not None:
            values["next_attempt_at"] = next_at
        conn.execute(
            update(notifications).where(notifications.c.id == notification_id).values(**values)
        )
