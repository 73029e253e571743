"""The bills a biller may print slips for (gateway.billing.slips): those of a bulk
registration, in its file's row order, or those a filter names, in id order; a page at a time.

A bill is printable while a slip can still be paid: it is ``open``, has a CVS slip or Pay-easy
numbers, is not past its due date, has no account-transfer debit in flight (never collect and
debit a bill at once) and still has its customer's data (not purged).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from gateway.model import Bill, BillStatus
from gateway.store.bills import _bill
from gateway.store.expiry import debit_in_flight
from gateway.store.schema import bill_batch_items, bill_batches, bills


def printable(today: date) -> ColumnElement[bool]:
    """The condition on ``bills`` of a bill whose slip can still be paid on ``today`` (JST)."""
    return and_(
        bills.c.status == BillStatus.OPEN.value,
        or_(bills.c.barcode.is_not(None), bills.c.payeasy_customer_number.is_not(None)),
        or_(bills.c.due_date.is_(None), bills.c.due_date >= today),
        bills.c.purge_id.is_(None),
        ~debit_in_flight(),
    )


def batch_slip_bills(
    conn: Connection, biller_id: str, batch_id: str, today: date, after_row: int, limit: int
) -> list[tuple[int, Bill]] | None:
    """Up to ``limit`` printable bills of the biller's batch ``batch_id`` after the file's row
    ``after_row``, in row order, with their row; None when the biller has no such batch."""
    found = conn.execute(
        select(bill_batches.c.batch_id).where(
            bill_batches.c.batch_id == batch_id, bill_batches.c.biller_id == biller_id
        )
    ).first()
    if found is None:
        return None
    rows = conn.execute(
        select(bill_batch_items.c.row_no, bills)
        .join(bills, bills.c.id == bill_batch_items.c.bill_id)
        .where(
            bill_batch_items.c.batch_id == batch_id,
            bill_batch_items.c.row_no > after_row,
            printable(today),
        )
        .order_by(bill_batch_items.c.row_no)
        .limit(limit)
    )
    return [(r.row_no, _bill(r)) for r in rows]


def filtered_slip_bills(
    conn: Connection,
    biller_id: str,
    today: date,
    *,
    due_from: date | None,
    due_to: date | None,
    customer_no: str | None,
    after_id: int,
    limit: int,
) -> list[tuple[int, Bill]]:
    """Up to ``limit`` printable bills of the biller after the bill ``after_id``, in id order:
    due from ``due_from`` to ``due_to`` (a bill without a due date only when neither is
    given), of the customer ``customer_no`` when it is given."""
    conditions = [bills.c.biller_id == biller_id, bills.c.id > after_id, printable(today)]
    if due_from is not None:
        conditions.append(bills.c.due_date >= due_from)
    if due_to is not None:
        conditions.append(bills.c.due_date <= due_to)
    if customer_no is not None:
        conditions.append(bills.c.customer_no == customer_no)
    rows = conn.execute(select(bills).where(and_(*conditions)).order_by(bills.c.id).limit(limit))
    return [(r.id, _bill(r)) for r in rows]
