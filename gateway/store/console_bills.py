"""The console's bill list: one biller's bills (or every biller's), searched by an identifier
and filtered, newest first, a page at a time.

The identifiers (:func:`search_bills`'s ``q``) are the ones a customer or a biller's clerk reads
out: the bill number, the customer number, a slip's barcode (44 digits: any slip of the bill, by
its bill key), the CVS bill key (27 digits) and the Pay-easy お客様番号. Each is matched whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from gateway.model import Bill
from gateway.store.bills import _bill
from gateway.store.schema import bill_slips, bills

_SEPARATORS = str.maketrans("", "", " -()\u3000")


@dataclass(frozen=True)
class BillFilter:
    biller_id: str | None = None  # None: every biller (a center user)
    q: str | None = None  # an identifier, matched whole (digits: spaces and hyphens removed)
    status: str | None = None
    due_from: date | None = None
    due_to: date | None = None
    channel: str | None = None  # bills that offer this channel
    before_id: int | None = None  # the page after the one that ended with this bill


def digits_of(q: str) -> str | None:
    """``q`` without spaces, hyphens and parentheses, when that leaves only ASCII digits (a
    barcode's human-readable line ``(91)987654-…``, an お客様番号 written in groups)."""
    packed = q.translate(_SEPARATORS)
    return packed if packed.isascii() and packed.isdigit() else None


def _q_condition(q: str) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [bills.c.bill_no == q, bills.c.customer_no == q]
    digits = digits_of(q)
    if digits is not None:
        if len(digits) == 44:
            slips = select(bill_slips.c.bill_id).where(bill_slips.c.barcode == digits)
            conditions += [bills.c.cvs_bill_key == digits[2:29], bills.c.id.in_(slips)]
        if len(digits) == 27:
            conditions.append(bills.c.cvs_bill_key == digits)
        if len(digits) <= 20:
            conditions.append(bills.c.payeasy_customer_number == digits)
    return or_(*conditions)


def matched_by(bill: Bill, cvs_bill_key: str | None, q: str) -> list[str]:
    """Which identifiers of ``bill`` ``q`` is: ``bill_no``, ``customer_no``, ``barcode``,
    ``cvs_bill_key``, ``payeasy_customer_number``."""
    found = []
    if bill.bill_no == q:
        found.append("bill_no")
    if bill.customer.customer_no == q:
        found.append("customer_no")
    digits = digits_of(q)
    if digits is not None:
        if len(digits) == 44 and cvs_bill_key == digits[2:29]:
            found.append("barcode")
        if len(digits) == 27 and cvs_bill_key == digits:
            found.append("cvs_bill_key")
        if bill.payeasy is not None and bill.payeasy.customer_number == digits:
            found.append("payeasy_customer_number")
    return found


def search_bills(conn: Connection, f: BillFilter, limit: int) -> list[tuple[int, Bill, list[str]]]:
    """Up to ``limit`` bills, newest first, each with what ``f.q`` matched it by."""
    conditions: list[ColumnElement[bool]] = []
    if f.biller_id is not None:
        conditions.append(bills.c.biller_id == f.biller_id)
    if f.q:
        conditions.append(_q_condition(f.q))
    if f.status is not None:
        conditions.append(bills.c.status == f.status)
    if f.due_from is not None:
        conditions.append(bills.c.due_date >= f.due_from)
    if f.due_to is not None:
        conditions.append(bills.c.due_date <= f.due_to)
    if f.channel is not None:
        conditions.append(bills.c.channels.contains(f.channel, autoescape=True))
    if f.before_id is not None:
        conditions.append(bills.c.id < f.before_id)
    query = select(bills).order_by(bills.c.id.desc()).limit(limit)
    if conditions:
        query = query.where(and_(*conditions))
    rows = conn.execute(query).all()
    return [
        (int(r.id), bill, matched_by(bill, r.cvs_bill_key, f.q) if f.q else [])
        for r in rows
        for bill in [_bill(r)]
    ]
