"""Persistence of the ledger: received messages, payments, refund cases, anomalies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
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
from gateway.store.schema import (
    anomalies,
    billers,
    bills,
    collection_messages,
    payments,
    refund_cases,
)


def _dialect_insert(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def record_message(conn: Connection, event: CollectionEvent, line: int | None) -> int | None:
    """Store a message as received; None when the same message is already stored."""
    return conn.execute(
        _dialect_insert(conn, collection_messages)
        .values(
            channel=event.channel.value,
            kind=event.kind.value,
            event_key=event.event_key,
            amount=event.amount,
            paid_at=event.paid_at,
            source=event.source[:200],
            line=line,
            raw=event.raw,
            received_at=event.received_at,
            outcome="received",
        )
        .on_conflict_do_nothing()
        .returning(collection_messages.c.id)
    ).scalar()


def set_outcome(conn: Connection, message_id: int, outcome: str) -> None:
    conn.execute(
        update(collection_messages)
        .where(collection_messages.c.id == message_id)
        .values(outcome=outcome)
    )


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
    )


def bill_payments(conn: Connection, bill_id: int, bill_no: str) -> list[Payment]:
    rows = conn.execute(
        select(payments).where(payments.c.bill_id == bill_id).order_by(payments.c.created_at)
    )
    return [_payment(r, bill_no) for r in rows]


def payments_by_key(conn: Connection, channel: Channel, event_key: str) -> list[Payment]:
    rows = conn.execute(
        select(payments).where(
            payments.c.channel == channel.value, payments.c.event_key == event_key
        )
    )
    return [_payment(r, None) for r in rows]


def save_payment(conn: Connection, payment: Payment, bill_id: int | None, *, new: bool) -> None:
    values = {
        "status": payment.status.value,
        "late": payment.late,
        "transfer_date": payment.transfer_date,
        "confirmed_at": payment.confirmed_at,
        "voided_at": payment.voided_at,
    }
    if new:
        conn.execute(
            payments.insert().values(
                payment_id=payment.payment_id,
                biller_id=payment.biller_id or None,
                bill_id=bill_id,
                channel=payment.channel.value,
                event_key=payment.event_key,
                amount=payment.amount,
                paid_at=payment.paid_at,
                store=payment.store,
                created_at=payment.created_at,
                **values,
            )
        )
    else:
        conn.execute(
            update(payments).where(payments.c.payment_id == payment.payment_id).values(**values)
        )


def open_refund_case(conn: Connection, case: RefundCase, bill_id: int | None) -> None:
    conn.execute(
        refund_cases.insert().values(
            case_id=case.case_id,
            biller_id=case.biller_id,
            bill_id=bill_id,
            payment_id=case.payment_id,
            reason=case.reason.value,
            amount=case.amount,
            status=case.status.value,
            opened_at=case.opened_at,
        )
    )


def record_anomaly(conn: Connection, message_id: int, anomaly: Anomaly, now: datetime) -> None:
    conn.execute(
        anomalies.insert().values(
            message_id=message_id,
            channel=anomaly.channel.value,
            event_key=anomaly.event_key,
            kind=anomaly.kind.value,
            detail=anomaly.detail[:500],
            recorded_at=now,
        )
    )


def biller_by_code(conn: Connection, code: str) -> str | None:
    return conn.execute(select(billers.c.biller_id).where(billers.c.code == code)).scalar()


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
