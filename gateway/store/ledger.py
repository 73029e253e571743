"""Persistence of the ledger: received messages, payments, refund cases, anomalies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.engine import Connection, Row

from gateway.model import (
    Anomaly,
    Channel,
    CollectionEvent,
    Payment,
    PaymentStatus,
    RefundCase,
    RefundReason,
    RefundStatus,
)
from gateway.store import many
from gateway.store.schema import (
    anomalies,
    billers,
    bills,
    collection_messages,
    payments,
    refund_cases,
)

MessageKey = tuple[str, str, str]  # channel, kind, event_key


_MESSAGE_COLUMNS = (
    "channel",
    "kind",
    "event_key",
    "amount",
    "paid_at",
    "source",
    "line",
    "raw",
    "received_at",
    "outcome",
)


def record_messages(
    conn: Connection, received: Sequence[tuple[CollectionEvent, int | None]]
) -> dict[MessageKey, int]:
    """Store messages as received, in one statement (a page of :data:`many.VALUES_PAGE`);
    returns the ids of those that were new (a message already stored, or repeated inside
    ``received``, gets no id)."""
    if not received:
        return {}
    rows = [
        (
            event.channel.value,
            event.kind.value,
            event.event_key,
            event.amount,
            event.paid_at,
            event.source[:200],
            line,
            event.raw,
            event.received_at,
            "received",
        )
        for event, line in received
    ]
    # A fixed order: two daemons inserting overlapping groups take the unique-index locks in
    # the same order, so they wait for each other instead of deadlocking.
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    inserted = many.insert_returning(
        conn,
        collection_messages,
        _MESSAGE_COLUMNS,
        rows,
        returning=("id", "channel", "kind", "event_key"),
        on_conflict_do_nothing=True,
    )
    return {(channel, kind, key): int(i) for i, channel, kind, key in inserted}


def set_outcomes(conn: Connection, outcomes: Sequence[tuple[int, str]]) -> None:
    statement = many.update(conn.dialect, collection_messages, ("outcome",), ("id",))
    many.run_many(conn, statement, [(o, i) for i, o in outcomes])


def _payment(row: Row[Any], bill_no: str | None) -> Payment:
    return Payment(
        payment_id=row.payment_id,
        biller_id=row.biller_id or "",
        bill_no=bill_no,
        channel=Channel(row.channel),
        event_key=row.event_key,
        amount=row.amount,
        paid_at=row.paid_at,
        status=PaymentStatus(row.status),
        created_at=row.created_at,
        confirmed_at=row.confirmed_at,
        voided_at=row.voided_at,
        transfer_date=row.transfer_date,
        late=bool(row.late),
        store=row.store,
        agency=row.agency,
        chain_accepted=row.chain_accepted,
        stamped=row.stamped,
    )


def payments_of_bills(conn: Connection, bill_nos: dict[int, str]) -> dict[int, list[Payment]]:
    """Every payment of the given bills (id → bill_no), oldest first."""
    found: dict[int, list[Payment]] = {bill_id: [] for bill_id in bill_nos}
    if bill_nos:
        rows = conn.execute(
            select(payments)
            .where(payments.c.bill_id.in_(list(bill_nos)))
            .order_by(payments.c.created_at, payments.c.payment_id)
        )
        for r in rows:
            found[r.bill_id].append(_payment(r, bill_nos[r.bill_id]))
    return found


def payments_by_keys(
    conn: Connection, channel: Channel, keys: Sequence[str]
) -> dict[str, list[Payment]]:
    found: dict[str, list[Payment]] = {key: [] for key in keys}
    if keys:
        rows = conn.execute(
            select(payments).where(
                payments.c.channel == channel.value, payments.c.event_key.in_(list(keys))
            )
        )
        for r in rows:
            found[r.event_key].append(_payment(r, None))
    return found


_PAYMENT_STATE = ("status", "late", "transfer_date", "confirmed_at", "voided_at")
_PAYMENT_COLUMNS = (
    "payment_id",
    "biller_id",
    "bill_id",
    "channel",
    "event_key",
    "amount",
    "paid_at",
    "store",
    "agency",
    "chain_accepted",
    "stamped",
    "created_at",
    *_PAYMENT_STATE,
)


def _payment_state(p: Payment) -> tuple[Any, ...]:
    """The values of :data:`_PAYMENT_STATE`: what a message may change of a payment."""
    return (p.status.value, p.late, p.transfer_date, p.confirmed_at, p.voided_at)


def insert_payments(conn: Connection, new: Sequence[tuple[Payment, int | None]]) -> None:
    statement = many.insert(conn.dialect, payments, _PAYMENT_COLUMNS)
    many.run_many(
        conn,
        statement,
        [
            (
                p.payment_id,
                p.biller_id or None,
                bill_id,
                p.channel.value,
                p.event_key,
                p.amount,
                p.paid_at,
                p.store,
                p.agency,
                p.chain_accepted,
                p.stamped,
                p.created_at,
                *_payment_state(p),
            )
            for p, bill_id in new
        ],
    )


def update_payments(conn: Connection, changed: Sequence[Payment]) -> None:
    statement = many.update(conn.dialect, payments, _PAYMENT_STATE, ("payment_id",))
    many.run_many(conn, statement, [(*_payment_state(p), p.payment_id) for p in changed])


def open_refund_cases(conn: Connection, cases: Sequence[tuple[RefundCase, int | None]]) -> None:
    if cases:
        conn.execute(
            refund_cases.insert(),
            [
                {
                    "case_id": case.case_id,
                    "biller_id": case.biller_id,
                    "bill_id": bill_id,
                    "payment_id": case.payment_id,
                    "reason": case.reason.value,
                    "amount": case.amount,
                    "status": case.status.value,
                    "opened_at": case.opened_at,
                }
                for case, bill_id in cases
            ],
        )


def record_anomalies(conn: Connection, found: Sequence[tuple[int, Anomaly]], now: datetime) -> None:
    if found:
        conn.execute(
            anomalies.insert(),
            [
                {
                    "message_id": message_id,
                    "channel": a.channel.value,
                    "event_key": a.event_key,
                    "kind": a.kind.value,
                    "detail": a.detail[:500],
                    "recorded_at": now,
                }
                for message_id, a in found
            ],
        )


def refund_cases_of_payments(
    conn: Connection, payment_ids: Sequence[str]
) -> dict[str, list[tuple[str, RefundReason, bool]]]:
    """The refund cases of the given payments: payment id → (case id, reason, still open)."""
    found: dict[str, list[tuple[str, RefundReason, bool]]] = {}
    if payment_ids:
        c = refund_cases.c
        rows = conn.execute(
            select(c.payment_id, c.case_id, c.reason, c.status)
            .where(c.payment_id.in_(list(payment_ids)))
            .order_by(c.opened_at, c.case_id)
        )
        for r in rows:
            case = (r.case_id, RefundReason(r.reason), r.status == RefundStatus.OPEN.value)
            found.setdefault(r.payment_id, []).append(case)
    return found


def close_refund_cases(
    conn: Connection, closed: Sequence[tuple[str, str, str]], now: datetime
) -> None:
    """Resolve cases the ledger closed itself: (case_id, resolution, note)."""
    if closed:
        conn.execute(
            update(refund_cases)
            .where(
                refund_cases.c.case_id == bindparam("c_id"),
                refund_cases.c.status == RefundStatus.OPEN.value,
            )
            .values(
                status=RefundStatus.RESOLVED.value,
                resolution=bindparam("c_resolution"),
                note=bindparam("c_note"),
                resolved_at=now,
            ),
            [{"c_id": c, "c_resolution": r, "c_note": n} for c, r, n in closed],
        )


def billers_by_codes(conn: Connection, codes: Sequence[str]) -> dict[str, str]:
    if not codes:
        return {}
    rows = conn.execute(
        select(billers.c.code, billers.c.biller_id).where(billers.c.code.in_(list(codes)))
    )
    return {r.code: r.biller_id for r in rows}


def list_payments(
    conn: Connection,
    biller_id: str,
    *,
    bill_id: int | None = None,
    since: datetime | None = None,
    channel: Channel | None = None,
    status: PaymentStatus | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 100,
) -> list[Payment]:
    """A biller's payments, oldest first; ``after`` is the (created_at, payment_id) of the
    last row of the previous page."""
    conditions = [payments.c.biller_id == biller_id]
    if bill_id is not None:
        conditions.append(payments.c.bill_id == bill_id)
    if since is not None:
        conditions.append(payments.c.created_at >= since)
    if channel is not None:
        conditions.append(payments.c.channel == channel.value)
    if status is not None:
        conditions.append(payments.c.status == status.value)
    if after is not None:
        conditions.append(
            or_(
                payments.c.created_at > after[0],
                and_(payments.c.created_at == after[0], payments.c.payment_id > after[1]),
            )
        )
    rows = conn.execute(
        select(payments, bills.c.bill_no)
        .select_from(payments.outerjoin(bills, payments.c.bill_id == bills.c.id))
        .where(and_(*conditions))
        .order_by(payments.c.created_at, payments.c.payment_id)
        .limit(limit)
    )
    return [_payment(r, r.bill_no) for r in rows]


def _case(row: Row[Any]) -> RefundCase:
    return RefundCase(
        case_id=row.case_id,
        biller_id=row.biller_id,
        bill_no=row.bill_no,
        payment_id=row.payment_id,
        reason=RefundReason(row.reason),
        amount=row.amount,
        opened_at=row.opened_at,
        status=RefundStatus(row.status),
        resolution=row.resolution,
        note=row.note,
    )


def list_refund_cases(
    conn: Connection, biller_id: str, status: RefundStatus | None, limit: int = 100
) -> list[RefundCase]:
    conditions = [refund_cases.c.biller_id == biller_id]
    if status is not None:
        conditions.append(refund_cases.c.status == status.value)
    rows = conn.execute(
        select(refund_cases, bills.c.bill_no)
        .select_from(refund_cases.outerjoin(bills, refund_cases.c.bill_id == bills.c.id))
        .where(and_(*conditions))
        .order_by(refund_cases.c.opened_at, refund_cases.c.case_id)
        .limit(limit)
    )
    return [_case(r) for r in rows]


def resolve_refund_case(
    conn: Connection, biller_id: str, case_id: str, resolution: str, note: str | None, now: datetime
) -> RefundCase | None:
    """Resolve an open case; None when the biller has no such case. A case resolved already
    keeps its first resolution (the caller compares)."""
    conn.execute(
        update(refund_cases)
        .where(
            refund_cases.c.case_id == case_id,
            refund_cases.c.biller_id == biller_id,
            refund_cases.c.status == RefundStatus.OPEN.value,
        )
        .values(
            status=RefundStatus.RESOLVED.value, resolution=resolution, note=note, resolved_at=now
        )
    )
    row = conn.execute(
        select(refund_cases, bills.c.bill_no)
        .select_from(refund_cases.outerjoin(bills, refund_cases.c.bill_id == bills.c.id))
        .where(refund_cases.c.case_id == case_id, refund_cases.c.biller_id == biller_id)
    ).first()
    return None if row is None else _case(row)


def count_by_status(conn: Connection) -> dict[str, int]:
    from sqlalchemy import func

    rows = conn.execute(select(payments.c.status, func.count()).group_by(payments.c.status))
    return {status: int(n) for status, n in rows}
