"""The store side of the expiry job: overdue open bills, locked a batch at a time."""

from __future__ import annotations

from datetime import date

from sqlalchemy import and_, exists, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import Exists

from gateway.model import Bill, BillStatus
from gateway.store.bills import _bill
from gateway.store.schema import bills, zengin_request_items


def debit_in_flight() -> Exists:
    """True for a bill that a request file asked the bank to debit on or before its due date
    and whose result has not come back: the result, days later, may well be a payment made on
    time, which an expired bill would have to call late."""
    item = zengin_request_items.c
    return exists().where(
        and_(
            item.bill_id == bills.c.id,
            item.result_code.is_(None),
            item.debit_date <= bills.c.due_date,
        )
    )


def lock_overdue(conn: Connection, today: date, limit: int) -> list[tuple[int, Bill]]:
    """Up to ``limit`` open bills due before ``today`` (JST) with no debit in flight, in id
    order, locked for the rest of the transaction.

    On PostgreSQL the rows are taken ``FOR UPDATE SKIP LOCKED``: a bill that another daemon's
    expiry run, a payment or a biller's cancel holds is left for the next run instead of
    waited for. SQLite has one writer at a time (``BEGIN IMMEDIATE``), so there the runs
    simply take turns.
    """
    stmt = (
        select(bills)
        .where(
            bills.c.status == BillStatus.OPEN.value,
            bills.c.due_date.is_not(None),
            bills.c.due_date < today,
            ~debit_in_flight(),
        )
        .order_by(bills.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(row.id, _bill(row)) for row in conn.execute(stmt)]
