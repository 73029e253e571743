"""Store functions of reusable payer numbers (gateway.networks.mpn_payer,
gateway.billing.payer_numbers): the numbers, a customer's Pay-easy bills, the last 照会's bill.

Only a *live* number (``revoked_at`` NULL) is found by the customer or by its digits; a revoked
one is kept (its digits stay taken) and read only as the customer's latest revoked number."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql.elements import ColumnElement

from gateway.model import Bill, BillStatus, Channel, PayerNumber
from gateway.store.bills import _bill
from gateway.store.dialect import dialect_insert
from gateway.store.schema import billers, bills, payments
from gateway.store.schema_payer import payer_numbers


def _payer(row: Row) -> PayerNumber:
    return PayerNumber(
        payer_id=int(row.id),
        biller_id=row.biller_id,
        customer_no=row.customer_no,
        institution_code=row.institution_code,
        customer_number=row.customer_number,
        confirmation_number=row.confirmation_number,
        created_at=row.created_at,
        asked_bill_id=None if row.asked_bill_id is None else int(row.asked_bill_id),
        asked_on=row.asked_on,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
    )


LIVE = payer_numbers.c.revoked_at.is_(None)


def get_payer_number(conn: Connection, biller_id: str, customer_no: str) -> PayerNumber | None:
    """The customer's live number, or None."""
    row = conn.execute(
        select(payer_numbers).where(
            payer_numbers.c.biller_id == biller_id,
            payer_numbers.c.customer_no == customer_no,
            LIVE,
        )
    ).first()
    return None if row is None else _payer(row)


def revoke_payer_number(
    conn: Connection, biller_id: str, customer_no: str, now: datetime, actor: str
) -> tuple[PayerNumber, bool] | None:
    """Revoke the customer's live number: ``(number, True)``; without one, the latest number
    revoked before, unchanged: ``(number, False)``; None: the customer never had one. The row
    is kept (its お客様番号 is never given again); a 照会 that holds it (FOR UPDATE) finishes
    first, and one after finds no number."""
    p = payer_numbers.c
    row = conn.execute(
        update(payer_numbers)
        .where(p.biller_id == biller_id, p.customer_no == customer_no, LIVE)
        .values(revoked_at=now, revoked_by=actor[:64])
        .returning(payer_numbers)
    ).first()
    if row is not None:
        return _payer(row), True
    row = conn.execute(
        select(payer_numbers)
        .where(p.biller_id == biller_id, p.customer_no == customer_no)
        .order_by(p.revoked_at.desc(), p.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (_payer(row), False)


def insert_payer_number(
    conn: Connection,
    biller_id: str,
    customer_no: str,
    institution_code: str,
    confirmation_number: str,
    now: datetime,
    number_of: Callable[[int], str],
) -> tuple[PayerNumber, bool]:
    """The customer's live payer number, made now (``True``) or found (``False``): a second PUT,
    or two at once, give the one number; after a revocation, a new row and number.
    ``number_of(serial)`` derives the お客様番号 from the row's id, known only after the insert
    (as a bill's is)."""
    serial = conn.execute(
        dialect_insert(conn, payer_numbers)
        .values(
            biller_id=biller_id,
            customer_no=customer_no,
            institution_code=institution_code,
            confirmation_number=confirmation_number,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["biller_id", "customer_no"], index_where=LIVE)
        .returning(payer_numbers.c.id)
    ).scalar()
    if serial is None:
        found = get_payer_number(conn, biller_id, customer_no)
        assert found is not None, "the insert met the row it conflicts with"
        return found, False
    row = conn.execute(
        update(payer_numbers)
        .where(payer_numbers.c.id == serial)
        .values(customer_number=number_of(int(serial)))
        .returning(payer_numbers)
    ).one()
    return _payer(row), True


def payer_by_number(
    conn: Connection, institution: str, number: str
) -> tuple[PayerNumber, str] | None:
    """The live payer number an 照会 or a 消込 names and its biller's kana, locked (PostgreSQL:
    the row; SQLite: the database is) until the transaction ends, so that the 照会 and 消込 of one
    number (and its revocation) take turns; None: no such number, or a revoked one."""
    row = conn.execute(
        select(payer_numbers, billers.c.kana.label("biller_kana"))
        .select_from(payer_numbers.join(billers, billers.c.biller_id == payer_numbers.c.biller_id))
        .where(
            payer_numbers.c.institution_code == institution,
            payer_numbers.c.customer_number == number,
            LIVE,
        )
        .with_for_update(of=payer_numbers)
    ).first()
    return None if row is None else (_payer(row), row.biller_kana)


def _customer_bills(payer: PayerNumber) -> list[ColumnElement[bool]]:
    """The customer's bills that carry Pay-easy numbers (the payeasy channel)."""
    return [
        bills.c.biller_id == payer.biller_id,
        bills.c.customer_no == payer.customer_no,
        bills.c.payeasy_customer_number.is_not(None),
    ]


def oldest_open_bill(conn: Connection, payer: PayerNumber, day: date) -> tuple[int, Bill] | None:
    """The customer's open Pay-easy bill due first (on or after ``day``; then the first
    registered), or None."""
    row = conn.execute(
        select(bills)
        .where(
            *_customer_bills(payer),
            bills.c.status == BillStatus.OPEN.value,
            bills.c.due_date >= day,
        )
        .order_by(bills.c.due_date, bills.c.id)
        .limit(1)
    ).first()
    return None if row is None else (int(row.id), _bill(row))


def customer_bill_states(conn: Connection, payer: PayerNumber, day: date) -> set[BillStatus]:
    """The states of the customer's Pay-easy bills, an open one past its due date (``day``)
    counted as expired, as the 照会 of its own number answers it."""
    rows = conn.execute(
        select(bills.c.status, bills.c.due_date).distinct().where(*_customer_bills(payer))
    )
    found = set()
    for status, due in rows:
        state = BillStatus(status)
        if state is BillStatus.OPEN and due is not None and due < day:
            state = BillStatus.EXPIRED
        found.add(state)
    return found


def bill_by_id(conn: Connection, bill_id: int) -> Bill | None:
    row = conn.execute(select(bills).where(bills.c.id == bill_id)).first()
    return None if row is None else _bill(row)


def set_asked(conn: Connection, payer_id: int, bill_id: int | None, day: date) -> None:
    """Keep the bill the 照会 of ``day`` answered (None: it found nothing to pay)."""
    conn.execute(
        update(payer_numbers)
        .where(payer_numbers.c.id == payer_id)
        .values(asked_bill_id=bill_id, asked_on=day)
    )


def customer_name(conn: Connection, payer: PayerNumber) -> str | None:
    """The customer's name on their latest bill that still has it (None: no bill gave one, or
    the retention job removed it), for the card."""
    return conn.execute(
        select(bills.c.customer_name)
        .where(
            bills.c.biller_id == payer.biller_id,
            bills.c.customer_no == payer.customer_no,
            bills.c.customer_name.is_not(None),
            bills.c.purge_id.is_(None),
        )
        .order_by(bills.c.id.desc())
        .limit(1)
    ).scalar()


def numbers_of_payment(conn: Connection, event_key: str) -> tuple[str, str] | None:
    """The 収納機関番号 and お客様番号 of the bill a Pay-easy payment was recorded on (None:
    a payment of no bill, or of a bill without numbers)."""
    row = conn.execute(
        select(bills.c.payeasy_institution_code, bills.c.payeasy_customer_number)
        .select_from(payments.join(bills, payments.c.bill_id == bills.c.id))
        .where(
            payments.c.channel == Channel.PAYEASY.value,
            payments.c.event_key == event_key,
            bills.c.payeasy_customer_number.is_not(None),
        )
    ).first()
    return None if row is None else (row.payeasy_institution_code, row.payeasy_customer_number)
