"""Customer notices in the store (``notifications``): one outbox for e-mail and SMS.

A notice is queued in the transaction that decides it (a new bill's page e-mail with the bill;
the others by the notice job, gateway.billing.notices), unique per (bill, kind, medium, ref) so
that deciding twice queues once. Senders claim due notices of their medium with a lease (so
several daemons share them and a crashed daemon's are taken up again) and finish them: sent,
pending again (a retry, later), failed or skipped. A sent notice is recorded for the per-notice
fee (gateway.store.notice_charges) in the transaction that marks it sent.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection

from gateway.fee_model import NoticeKind
from gateway.model import Bill, Payment
from gateway.notice_rules import Medium, Notice, NoticeRules
from gateway.store.bills import _bill
from gateway.store.dialect import dialect_insert
from gateway.store.ledger import payments_of_bills
from gateway.store.notice_charges import record_notice
from gateway.store.schema import billers, bills, notice_optouts, notifications


@dataclass(frozen=True)
class NewNotice:
    """A notice to queue: of ``kind`` by ``medium`` for one bill; ``ref`` tells it from the
    other notices of that kind (the reissue number, a reminder's due date, a payment id)."""

    biller_id: str
    bill_id: int
    kind: Notice
    medium: Medium
    ref: str


@dataclass(frozen=True)
class Claimed:
    notification_id: int
    attempts: int
    recipient: str | None  # the bill's e-mail address or phone number, as the medium needs
    biller_name: str
    bill: Bill
    kind: Notice = Notice.PAGE
    medium: Medium = Medium.EMAIL
    ref: str = "0"
    rules: NoticeRules = field(default_factory=NoticeRules)
    opted_out: bool = False  # the customer asked for no notice by this medium
    payment: Payment | None = None  # of a receipt notice (``ref`` is its id)


@dataclass(frozen=True)
class Finished:
    """What became of one claimed notice: ``sent``, ``pending`` (tried again at ``next_at``),
    ``failed`` or ``skipped``, with why (never an address or a number)."""

    notification_id: int
    status: str
    error: str | None = None
    next_at: datetime | None = None
    provider_id: str | None = None  # the SMS provider's id of a sent message
    segments: int = 1  # the messages a sent SMS was billed as (a long SMS: one per part)


def queue_notices(conn: Connection, new: Sequence[NewNotice], now: datetime) -> int:
    """Queue notices (one already queued for the same bill, kind, medium and ref is kept as it
    is); how many were new."""
    if not new:
        return 0
    rows = [
        {
            "biller_id": n.biller_id,
            "bill_id": n.bill_id,
            "kind": n.kind.value,
            "medium": n.medium.value,
            "ref": n.ref,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for n in new
    ]
    made = 0
    for row in rows:  # one statement each: RETURNING tells what was new
        found = conn.execute(
            dialect_insert(conn, notifications)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["bill_id", "kind", "medium", "ref"])
            .returning(notifications.c.id)
        ).scalar()
        made += found is not None
    return made


def queue_bill_emails(
    conn: Connection, bills_to_mail: Sequence[tuple[str, int]], now: datetime
) -> None:
    """Queue the page-URL e-mail of new bills, ``(biller_id, bill_id)``, in the transaction
    that creates them (call it only for bills that have an e-mail address)."""
    if bills_to_mail:
        conn.execute(
            dialect_insert(conn, notifications).on_conflict_do_nothing(
                index_elements=["bill_id", "kind", "medium", "ref"]
            ),
            [
                {
                    "biller_id": biller_id,
                    "bill_id": bill_id,
                    "kind": Notice.PAGE.value,
                    "medium": Medium.EMAIL.value,
                    "ref": "0",
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


def claim(
    conn: Connection,
    now: datetime,
    lease: timedelta,
    limit: int,
    media: Collection[Medium] = (Medium.EMAIL,),
) -> list[Claimed]:
    """Take due notices of ``media`` (and those whose lease ran out) for sending."""
    n = notifications.c
    due = or_(
        and_(n.status == "pending", n.next_attempt_at <= now),
        and_(n.status == "sending", n.lease_until < now),
    )
    stmt = (
        select(n.id, n.attempts, n.bill_id, n.kind, n.medium, n.ref)
        .where(due, n.medium.in_(sorted(m.value for m in media)))
        .order_by(n.next_attempt_at, n.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    taken = conn.execute(stmt).all()
    if not taken:
        return []
    conn.execute(
        update(notifications)
        .where(n.id.in_([t.id for t in taken]))
        .values(status="sending", lease_until=now + lease, attempts=n.attempts + 1)
    )
    rows = conn.execute(
        select(
            bills,
            billers.c.name.label("biller_name"),
            billers.c.notice_rules.label("biller_notice_rules"),
            notice_optouts.c.email.label("no_email"),
            notice_optouts.c.sms.label("no_sms"),
        )
        .join(billers, billers.c.biller_id == bills.c.biller_id)
        .outerjoin(
            notice_optouts,
            and_(
                notice_optouts.c.biller_id == bills.c.biller_id,
                notice_optouts.c.customer_no == bills.c.customer_no,
            ),
        )
        .where(bills.c.id.in_({t.bill_id for t in taken}))
    ).all()
    by_id = {r.id: r for r in rows}
    receipts = {t.bill_id for t in taken if t.kind == Notice.RECEIVED.value}
    paid = payments_of_bills(conn, {i: by_id[i].bill_no for i in receipts})
    claimed = []
    for t in taken:
        r = by_id[t.bill_id]
        medium = Medium(t.medium)
        payment = None
        if t.kind == Notice.RECEIVED.value:
            payment = next((p for p in paid[t.bill_id] if p.payment_id == t.ref), None)
        claimed.append(
            Claimed(
                t.id,
                t.attempts + 1,
                r.customer_email if medium is Medium.EMAIL else r.customer_phone,
                r.biller_name,
                _bill(r),
                kind=Notice(t.kind),
                medium=medium,
                ref=t.ref,
                rules=NoticeRules.from_json(r.biller_notice_rules),
                opted_out=bool(r.no_email if medium is Medium.EMAIL else r.no_sms),
                payment=payment,
            )
        )
    return claimed


_FEE_KIND = {Medium.EMAIL: NoticeKind.EMAIL, Medium.SMS: NoticeKind.SMS}


def finish(conn: Connection, results: Sequence[Finished], now: datetime) -> None:
    """Store what became of claimed notices; a sent one is recorded for its per-notice fee
    (key ``<medium>:<notification id>``, at the time it was sent; an SMS counted once per
    segment)."""
    n = notifications.c
    for r in results:
        values: dict[str, object] = {"status": r.status, "last_error": r.error, "lease_until": None}
        if r.status == "sent":
            values["sent_at"] = now
            values["provider_id"] = r.provider_id
        if r.next_at is not None:
            values["next_attempt_at"] = r.next_at
        done = conn.execute(
            update(notifications)
            .where(n.id == r.notification_id)
            .values(**values)
            .returning(n.biller_id, n.bill_id, n.medium)
        ).first()
        if done is not None and r.status == "sent":
            medium = Medium(done.medium)
            record_notice(
                conn,
                key=f"{medium.value}:{r.notification_id}",
                biller_id=done.biller_id,
                kind=_FEE_KIND[medium],
                at=now,
                quantity=r.segments if medium is Medium.SMS else 1,
                bill_id=done.bill_id,
            )
