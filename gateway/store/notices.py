"""The store side of notices and fallbacks: opt-outs, the notice job's cursors, what was done
after each failed debit, the bills a reminder is due for, the notices a biller sees, and the
count of notices sent that per-notice fees are charged on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import String, and_, cast, func, or_, select, tuple_, update
from sqlalchemy.engine import Connection

from gateway.errors import Conflict
from gateway.model import Bill, BillStatus
from gateway.notice_rules import Medium, Notice
from gateway.store.bills import _bill, _state_values, insert_slip
from gateway.store.dialect import dialect_insert
from gateway.store.expiry import debit_in_flight
from gateway.store.schema import (
    bill_fallbacks,
    billers,
    bills,
    notice_charges,
    notice_cursors,
    notice_optouts,
    notifications,
    zengin_request_items,
)

# --- opt-outs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptOut:
    biller_id: str
    customer_no: str
    email: bool  # True: no e-mail notice
    sms: bool  # True: no SMS notice
    updated_at: datetime | None  # None: never set (both False)

    def refuses(self, medium: Medium) -> bool:
        return self.email if medium is Medium.EMAIL else self.sms


def get_optout(conn: Connection, biller_id: str, customer_no: str) -> OptOut:
    row = conn.execute(
        select(notice_optouts).where(
            notice_optouts.c.biller_id == biller_id, notice_optouts.c.customer_no == customer_no
        )
    ).first()
    if row is None:
        return OptOut(biller_id, customer_no, False, False, None)
    return OptOut(biller_id, customer_no, bool(row.email), bool(row.sms), row.updated_at)


def set_optout(conn: Connection, optout: OptOut, now: datetime) -> OptOut:
    values = {"email": optout.email, "sms": optout.sms, "updated_at": now}
    conn.execute(
        dialect_insert(conn, notice_optouts)
        .values(biller_id=optout.biller_id, customer_no=optout.customer_no, **values)
        .on_conflict_do_update(index_elements=["biller_id", "customer_no"], set_=values)
    )
    return OptOut(optout.biller_id, optout.customer_no, optout.email, optout.sms, now)


def optouts_of(conn: Connection, biller_id: str, customer_nos: Sequence[str]) -> dict[str, OptOut]:
    """The opt-outs among ``customer_nos`` of one biller (those not listed have none)."""
    wanted = sorted(set(customer_nos))
    found: dict[str, OptOut] = {}
    for start in range(0, len(wanted), 1000):
        rows = conn.execute(
            select(notice_optouts).where(
                notice_optouts.c.biller_id == biller_id,
                notice_optouts.c.customer_no.in_(wanted[start : start + 1000]),
            )
        )
        for r in rows:
            found[r.customer_no] = OptOut(
                biller_id, r.customer_no, bool(r.email), bool(r.sms), r.updated_at
            )
    return found


# --- the notice job's cursors ----------------------------------------------------------------


def billers_behind(conn: Connection) -> list[tuple[str, int]]:
    """(biller, its newest event seq) for each biller with events the notice job has not read
    (a biller without a cursor has read none)."""
    last = func.coalesce(notice_cursors.c.last_seq, 0)
    rows = conn.execute(
        select(billers.c.biller_id, billers.c.last_event_seq)
        .outerjoin(notice_cursors, notice_cursors.c.biller_id == billers.c.biller_id)
        .where(billers.c.last_event_seq > last)
        .order_by(billers.c.biller_id)
    )
    return [(r.biller_id, int(r.last_event_seq)) for r in rows]


def lock_cursor(conn: Connection, biller_id: str) -> int | None:
    """The biller's cursor (created at 0 if it has none), locked for the transaction; None
    when another daemon's job holds it (PostgreSQL: SKIP LOCKED)."""
    conn.execute(
        dialect_insert(conn, notice_cursors)
        .values(biller_id=biller_id, last_seq=0)
        .on_conflict_do_nothing(index_elements=["biller_id"])
    )
    row = conn.execute(
        select(notice_cursors.c.last_seq)
        .where(notice_cursors.c.biller_id == biller_id)
        .with_for_update(skip_locked=True)
    ).first()
    return None if row is None else int(row.last_seq)


def move_cursor(conn: Connection, biller_id: str, last_seq: int) -> None:
    conn.execute(
        update(notice_cursors)
        .where(notice_cursors.c.biller_id == biller_id)
        .values(last_seq=last_seq)
    )


@dataclass(frozen=True)
class Contact:
    """How a bill's customer is reached, as the bill has it now."""

    bill_id: int
    customer_no: str | None
    email: str | None
    phone: str | None


def contacts_by_no(conn: Connection, biller_id: str, bill_nos: Sequence[str]) -> dict[str, Contact]:
    """``bill_no → Contact`` of those of ``bill_nos`` the biller has."""
    wanted = sorted(set(bill_nos))
    found: dict[str, Contact] = {}
    b = bills.c
    for start in range(0, len(wanted), 1000):
        rows = conn.execute(
            select(b.id, b.bill_no, b.customer_no, b.customer_email, b.customer_phone).where(
                b.biller_id == biller_id, b.bill_no.in_(wanted[start : start + 1000])
            )
        )
        for r in rows:
            found[r.bill_no] = Contact(int(r.id), r.customer_no, r.customer_email, r.customer_phone)
    return found


# --- fallbacks -------------------------------------------------------------------------------


def lock_bills_by_no(
    conn: Connection, named: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, Bill]]:
    """The bills ``(biller_id, bill_no)`` names, locked in id order in one statement (as the
    ingest locks its bills, so the two never wait on each other in a cycle)."""
    wanted = sorted(set(named))
    if not wanted:
        return {}
    rows = conn.execute(
        select(bills)
        .where(tuple_(bills.c.biller_id, bills.c.bill_no).in_(wanted))
        .order_by(bills.c.id)
        .with_for_update()
    )
    return {(r.biller_id, r.bill_no): (int(r.id), _bill(r)) for r in rows}


@dataclass(frozen=True)
class FallbackRecord:
    """What was done after one failed debit of a bill."""

    bill_id: int
    biller_id: str
    debit_date: date
    result_code: str
    action: str  # redebit, reissue, none
    redebit_date: date | None = None
    channels: str | None = None  # added by a reissue: "cvs,payeasy"
    reason: str | None = None


def record_fallback(conn: Connection, record: FallbackRecord, now: datetime) -> bool:
    """Store it; False when that debit of that bill was acted on before (nothing changes)."""
    made = conn.execute(
        dialect_insert(conn, bill_fallbacks)
        .values(
            bill_id=record.bill_id,
            biller_id=record.biller_id,
            debit_date=record.debit_date,
            result_code=record.result_code,
            action=record.action,
            redebit_date=record.redebit_date,
            channels=record.channels,
            reason=record.reason[:200] if record.reason else None,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["bill_id", "debit_date"])
        .returning(bill_fallbacks.c.id)
    ).scalar()
    return made is not None


def fallbacks_of(conn: Connection, bill_id: int) -> list[FallbackRecord]:
    rows = conn.execute(
        select(bill_fallbacks)
        .where(bill_fallbacks.c.bill_id == bill_id)
        .order_by(bill_fallbacks.c.debit_date)
    )
    return [
        FallbackRecord(
            r.bill_id,
            r.biller_id,
            r.debit_date,
            r.result_code,
            r.action,
            r.redebit_date,
            r.channels,
            r.reason,
        )
        for r in rows
    ]


def save_reissued(
    conn: Connection, bill_id: int, before: Bill, after: Bill, cvs_bill_key: str | None
) -> None:
    """Write a bill reissued with other channels (gateway.billing.fallback): its state, its
    channels and identifiers, and its new slip; a lost update is a :class:`Conflict`."""
    values = _state_values(after)
    values["channels"] = ",".join(sorted(after.channels))
    if cvs_bill_key is not None:
        values["cvs_bill_key"] = cvs_bill_key
    if after.payeasy is not None:
        values.update(
            payeasy_institution_code=after.payeasy.institution_code,
            payeasy_customer_number=after.payeasy.customer_number,
            payeasy_confirmation_number=after.payeasy.confirmation_number,
        )
    done = conn.execute(
        update(bills)
        .where(bills.c.id == bill_id, bills.c.version == before.version)
        .values(**values)
    )
    if done.rowcount != 1:
        raise Conflict(f"bill {before.bill_no} was changed concurrently; try again")
    if after.slip is not None and after.slip != before.slip:
        insert_slip(conn, bill_id, after.slip, after.updated_at)


def last_debit_date(conn: Connection, bill_id: int) -> date | None:
    """The latest debit date any request file asked for the bill (None: never requested)."""
    found = conn.execute(
        select(func.max(zengin_request_items.c.debit_date)).where(
            zengin_request_items.c.bill_id == bill_id
        )
    ).scalar()
    return found if isinstance(found, date) else None


# --- reminders -------------------------------------------------------------------------------


def due_for_reminder(
    conn: Connection,
    biller_id: str,
    first_due: date,
    last_due: date,
    created_before: datetime | None,
    limit: int,
) -> list[tuple[int, Bill]]:
    """The biller's open bills due in [first_due, last_due] that the customer pays themselves
    (cvs or payeasy), that have a way to reach the customer, no debit in flight, and no
    reminder queued for their due date; made before ``created_before`` when given."""
    n = notifications.c
    reminded = (
        select(n.id)
        .where(
            n.bill_id == bills.c.id,
            n.kind == Notice.REMINDER.value,
            n.ref == cast(bills.c.due_date, String(64)),
        )
        .exists()
    )
    conditions = [
        bills.c.biller_id == biller_id,
        bills.c.status == BillStatus.OPEN.value,
        bills.c.due_date >= first_due,
        bills.c.due_date <= last_due,
        or_(bills.c.channels.like("%cvs%"), bills.c.channels.like("%payeasy%")),
        or_(bills.c.customer_email.is_not(None), bills.c.customer_phone.is_not(None)),
        bills.c.purge_id.is_(None),
        ~debit_in_flight(),
        ~reminded,
    ]
    if created_before is not None:
        conditions.append(bills.c.created_at < created_before)
    rows = conn.execute(select(bills).where(and_(*conditions)).order_by(bills.c.id).limit(limit))
    return [(int(r.id), _bill(r)) for r in rows]


# --- what a biller sees, and what the fees count ---------------------------------------------


@dataclass(frozen=True)
class NoticeRow:
    notice_id: int
    bill_no: str
    kind: str
    medium: str
    ref: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    recipient: str | None  # the bill's address or number (the caller masks it)
    segments: int | None = None  # a sent SMS: the messages (segments) it was charged as


def list_notices(
    conn: Connection,
    biller_id: str,
    *,
    bill_no: str | None = None,
    status: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[NoticeRow]:
    n = notifications.c
    conditions = [n.biller_id == biller_id, n.id > after_id]
    if bill_no is not None:
        conditions.append(bills.c.bill_no == bill_no)
    if status is not None:
        conditions.append(n.status == status)
    rows = conn.execute(
        select(
            n.id,
            n.kind,
            n.medium,
            n.ref,
            n.status,
            n.attempts,
            n.last_error,
            n.created_at,
            n.next_attempt_at,
            n.sent_at,
            bills.c.bill_no,
            bills.c.customer_email,
            bills.c.customer_phone,
        )
        .join(bills, bills.c.id == n.bill_id)
        .where(and_(*conditions))
        .order_by(n.id)
        .limit(limit)
    ).all()
    # A sent SMS shows the segments it was charged as: its per-notice fee's own row.
    keys = [f"sms:{r.id}" for r in rows if r.medium == Medium.SMS.value and r.status == "sent"]
    charged: dict[str, int] = {}
    if keys:
        charged = {
            str(key): int(quantity)
            for key, quantity in conn.execute(
                select(notice_charges.c.notice_key, notice_charges.c.quantity).where(
                    notice_charges.c.notice_key.in_(keys)
                )
            )
        }
    return [
        NoticeRow(
            int(r.id),
            r.bill_no,
            r.kind,
            r.medium,
            r.ref,
            r.status,
            int(r.attempts),
            r.last_error,
            r.created_at,
            r.next_attempt_at,
            r.sent_at,
            r.customer_email if r.medium == Medium.EMAIL.value else r.customer_phone,
            charged.get(f"sms:{r.id}"),
        )
        for r in rows
    ]


def sent_counts(
    conn: Connection, biller_id: str, start: datetime, end: datetime
) -> dict[tuple[str, str], int]:
    """Notices of the biller sent in [start, end): ``(medium, kind) → count``. The query the
    per-notice fees rest on (each sent notice is also recorded in ``notice_charges`` as it is
    sent, key ``<medium>:<notification id>``)."""
    n = notifications.c
    rows = conn.execute(
        select(n.medium, n.kind, func.count())
        .where(
            n.biller_id == biller_id,
            n.status == "sent",
            n.sent_at >= start,
            n.sent_at < end,
        )
        .group_by(n.medium, n.kind)
    )
    return {(medium, kind): int(count) for medium, kind, count in rows}
