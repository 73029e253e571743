"""What the payment page and the e-receipt read: a bill by its page token or bill number, its
biller's name, its payments and which of them wait to be refunded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnElement

from gateway.chain_rules import ChainRules
from gateway.model import Bill, Payment
from gateway.store.bills import _bill
from gateway.store.expiry import debit_in_flight
from gateway.store.ledger import payments_of_bills
from gateway.store.schema import billers, bills, refund_cases


@dataclass(frozen=True)
class BillView:
    """A bill with what a customer-facing page or receipt needs beside it."""

    bill: Bill
    biller_name: str
    payments: tuple[Payment, ...]  # every payment of the bill, oldest first
    refunded: frozenset[str]  # ids of the payments that have a refund case
    debit_in_flight: bool  # an account-transfer debit was requested; its result is not back
    purged: bool = False  # the retention job removed the customer's data (bills.purge_id)
    # The biller's chain rules: the chains that take its slips.
    chain_rules: ChainRules = field(default_factory=ChainRules)


def _view(conn: Connection, condition: ColumnElement[bool]) -> BillView | None:
    row = conn.execute(
        select(
            bills,
            billers.c.name.label("biller_name"),
            billers.c.chain_rules.label("biller_chain_rules"),
            debit_in_flight().label("debit_in_flight"),
        )
        .join(billers, billers.c.biller_id == bills.c.biller_id)
        .where(condition)
    ).first()
    if row is None:
        return None
    bill = _bill(row)
    payments = payments_of_bills(conn, {row.id: bill.bill_no})[row.id]
    refunded = conn.execute(
        select(refund_cases.c.payment_id).where(refund_cases.c.bill_id == row.id)
    ).scalars()
    return BillView(
        bill,
        row.biller_name,
        tuple(payments),
        frozenset(refunded),
        bool(row.debit_in_flight),
        purged=row.purge_id is not None,
        chain_rules=ChainRules.from_json(row.biller_chain_rules),
    )


def view_by_token_hash(conn: Connection, digest: str) -> BillView | None:
    """The bill whose page token has this SHA-256 (or whose token from before migration 0009
    has it): the database keeps no token itself."""
    return _view(conn, or_(bills.c.page_token == digest, bills.c.legacy_page_token == digest))


def bills_without_token_hash(conn: Connection, limit: int) -> list[tuple[int, str, str]]:
    """(id, biller_id, bill_no) of bills made before migration 0009 whose ``page_token`` is
    still the ``legacy:<id>`` placeholder."""
    rows = conn.execute(
        select(bills.c.id, bills.c.biller_id, bills.c.bill_no)
        .where(bills.c.page_token.like("legacy:%"))
        .order_by(bills.c.id)
        .limit(limit)
    ).all()
    return [(r.id, r.biller_id, r.bill_no) for r in rows]


def set_token_hashes(conn: Connection, hashes: Sequence[tuple[int, str]]) -> None:
    for bill_id, digest in hashes:
        conn.execute(update(bills).where(bills.c.id == bill_id).values(page_token=digest))


def view_by_bill_no(conn: Connection, biller_id: str, bill_no: str) -> BillView | None:
    return _view(conn, (bills.c.biller_id == biller_id) & (bills.c.bill_no == bill_no))
