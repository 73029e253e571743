"""The console's payments list: one biller's payments (or every biller's), filtered, newest
first, a page at a time, and every one of them for the CSV export.

Each payment comes with its bill's number and customer number (None for a payment whose bill is
unknown). ``q`` is matched whole against the bill number, the customer number and the payment
id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from gateway.fee_model import jst_midnight
from gateway.model import Payment
from gateway.store.ledger import _payment
from gateway.store.schema import bills, payments


@dataclass(frozen=True)
class PaymentFilter:
    biller_id: str | None = None  # None: every biller (a center user)
    q: str | None = None
    channel: str | None = None
    status: str | None = None
    paid_from: date | None = None  # JST days of paid_at
    paid_to: date | None = None
    before: tuple[datetime, str] | None = None  # (created_at, payment_id) of the last row shown


@dataclass(frozen=True)
class FoundPayment:
    payment: Payment
    customer_no: str | None


def _conditions(f: PaymentFilter) -> list[ColumnElement[bool]]:
    c = payments.c
    found: list[ColumnElement[bool]] = []
    if f.biller_id is not None:
        found.append(c.biller_id == f.biller_id)
    if f.q is not None:
        found.append(or_(bills.c.bill_no == f.q, bills.c.customer_no == f.q, c.payment_id == f.q))
    if f.channel is not None:
        found.append(c.channel == f.channel)
    if f.status is not None:
        found.append(c.status == f.status)
    if f.paid_from is not None:
        found.append(c.paid_at >= jst_midnight(f.paid_from))
    if f.paid_to is not None:
        found.append(c.paid_at < jst_midnight(f.paid_to + timedelta(days=1)))
    if f.before is not None:
        at, payment_id = f.before
        found.append(or_(c.created_at < at, and_(c.created_at == at, c.payment_id < payment_id)))
    return found


def search_payments(conn: Connection, f: PaymentFilter, limit: int) -> list[FoundPayment]:
    """At most ``limit`` payments matching ``f``, newest first."""
    c = payments.c
    query = (
        select(payments, bills.c.bill_no, bills.c.customer_no)
        .select_from(payments.outerjoin(bills, c.bill_id == bills.c.id))
        .order_by(c.created_at.desc(), c.payment_id.desc())
        .limit(limit)
    )
    conditions = _conditions(f)
    if conditions:
        query = query.where(and_(*conditions))
    return [FoundPayment(_payment(r, r.bill_no), r.customer_no) for r in conn.execute(query)]


def all_payments(conn: Connection, f: PaymentFilter, batch: int = 5000) -> Iterator[FoundPayment]:
    """Every payment matching ``f``, newest first, read ``batch`` at a time."""
    while True:
        found = search_payments(conn, f, batch)
        yield from found
        if len(found) < batch:
            return
        last = found[-1].payment
        f = replace(f, before=(last.created_at, last.payment_id))
