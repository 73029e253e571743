"""The store side of the retention job (gateway/billing/retention.py): what is old enough to purge,
locked a batch at a time, the columns it clears and the audit rows in ``data_purges``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.engine import Connection

from gateway.model import BillStatus, Channel, MandateStatus, RefundStatus
from gateway.store.schema import (
    bills,
    collection_messages,
    data_purges,
    events,
    mandates,
    payments,
    refund_cases,
    zengin_request_items,
)

#: What a purged account number becomes (the columns are NOT NULL, 7 digits).
PURGED_ACCOUNT = "0000000"
PURGED_HOLDER = ""

#: Bills whose customer data may go: nothing more will be asked of the customer.
PURGEABLE_BILLS = (
    BillStatus.PAID.value,
    BillStatus.CONFIRMED.value,
    BillStatus.EXPIRED.value,
    BillStatus.CANCELLED.value,
)
#: Mandates that are no longer debited. Active and suspended ones are still used.
PURGEABLE_MANDATES = (MandateStatus.REVOKED.value, MandateStatus.INVALID.value)

BILL_FIELDS = ("customer_name", "customer_kana", "customer_email", "customer_phone")
ACCOUNT_FIELDS = ("account_number", "holder_kana")

_IN_CHUNK = 1000  # values per IN (...) list


def lock_purgeable_bills(
    conn: Connection, cutoff: datetime, after: int, limit: int
) -> list[tuple[int, str]]:
    """(id, biller_id) of up to ``limit`` bills with ``id > after`` that are paid, confirmed,
    expired or cancelled, unchanged since before ``cutoff`` and not purged yet, in id order,
    locked for the rest of the transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: a bill
    that a payment or the biller holds is left for the next run)."""
    c = bills.c
    stmt = (
        select(c.id, c.biller_id)
        .where(
            c.purge_id.is_(None),
            c.status.in_(PURGEABLE_BILLS),
            c.updated_at < cutoff,
            c.id > after,
        )
        .order_by(c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(row.id, row.biller_id) for row in conn.execute(stmt)]


def clear_customers(conn: Connection, bill_ids: Sequence[int], purge_id: int) -> None:
    """The customer's name, kana, e-mail and phone to NULL; ``version`` and ``updated_at`` stay
    (nothing the biller changed)."""
    conn.execute(
        update(bills)
        .where(bills.c.id.in_(bill_ids))
        .values({**{name: None for name in BILL_FIELDS}, "purge_id": purge_id})
    )


def request_item_keys(conn: Connection, bill_ids: Sequence[int]) -> list[tuple[str, date, str]]:
    """(委託者コード, 引落日, 顧客番号) of every request item of the bills."""
    i = zengin_request_items.c
    rows = conn.execute(
        select(i.consignor_code, i.debit_date, i.customer_number)
        .where(i.bill_id.in_(bill_ids))
        .order_by(i.request_id, i.record_no)
    )
    return [(r.consignor_code, r.debit_date, r.customer_number) for r in rows]


def redact_request_items(conn: Connection, bill_ids: Sequence[int]) -> int:
    """The account number and holder name of the bills' request items; how many rows."""
    result = conn.execute(
        update(zengin_request_items)
        .where(zengin_request_items.c.bill_id.in_(bill_ids))
        .values(account_number=PURGED_ACCOUNT, holder_kana=PURGED_HOLDER)
    )
    return int(result.rowcount)


def transfer_messages(conn: Connection, keys: Sequence[str]) -> list[tuple[int, bytes]]:
    """(id, raw) of the transfer messages whose event key is one of ``keys``, in id order."""
    m = collection_messages.c
    found: list[tuple[int, bytes]] = []
    for start in range(0, len(keys), _IN_CHUNK):
        rows = conn.execute(
            select(m.id, m.raw).where(
                m.channel == "transfer", m.event_key.in_(keys[start : start + _IN_CHUNK])
            )
        )
        found.extend((r.id, bytes(r.raw)) for r in rows)
    return sorted(found)


def set_message_raws(conn: Connection, raws: Sequence[tuple[int, bytes]]) -> None:
    if raws:
        conn.execute(
            update(collection_messages)
            .where(collection_messages.c.id == bindparam("m_id"))
            .values(raw=bindparam("m_raw")),
            [{"m_id": i, "m_raw": raw} for i, raw in raws],
        )


def lock_unmatched_transfer_messages(
    conn: Connection,
    cutoff: datetime,
    after: int,
    limit: int,
    *,
    record_length: int,
    account: slice,
    redacted: bytes,
) -> list[tuple[int, bytes]]:
    """(id, raw) of up to ``limit`` transfer results with ``id > after`` that matched no request
    (outcome ``unknown_bill``: no bill to purge them with), received before ``cutoff``, whose raw
    record still holds an account (not yet redacted), in id order, locked (``SKIP LOCKED``).

    The record's layout is the mapper's (gateway.mappers.zengin.records): a raw of
    ``record_length`` bytes is redacted when its ``account`` bytes are ``redacted``.

    A debit among them is kept while its payment has a refund case that is open or was resolved
    at or after the cutoff: the money is returned to that account, so it stays until the case
    has been closed for the retention period. A failed debit has no payment and no case."""
    m, p, r = collection_messages.c, payments.c, refund_cases.c
    case_pending = (
        select(r.case_id)
        .select_from(refund_cases.join(payments, r.payment_id == p.payment_id))
        .where(
            p.channel == m.channel,
            p.event_key == m.event_key,
            or_(r.status == RefundStatus.OPEN.value, r.resolved_at >= cutoff),
        )
        .exists()
    )
    still_held = (
        func.length(m.raw) > 0,
        or_(
            func.length(m.raw) != record_length,
            func.substr(m.raw, account.start + 1, len(redacted)) != redacted,
        ),
    )
    stmt = (
        select(m.id, m.raw)
        .where(
            m.channel == Channel.TRANSFER.value,
            m.outcome == "unknown_bill",
            m.received_at < cutoff,
            m.id > after,
            *still_held,
            ~case_pending,
        )
        .order_by(m.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=collection_messages)
    )
    return [(row.id, bytes(row.raw)) for row in conn.execute(stmt)]


def lock_purgeable_mandates(
    conn: Connection, cutoff: datetime, after: int, limit: int
) -> list[tuple[int, str]]:
    """(id, biller_id) of up to ``limit`` revoked or invalid mandates with ``id > after``,
    unchanged since before ``cutoff``, that still hold an account, in id order, locked
    (``SKIP LOCKED``).

    "Still hold an account": not purged yet, or purged and then registered again (the biller's
    ``PUT`` gives a purged mandate a new account and leaves its ``purge_id``), so that a mandate
    revoked a second time is purged a second time."""
    c = mandates.c
    stmt = (
        select(c.id, c.biller_id)
        .where(
            or_(
                c.purge_id.is_(None),
                c.account_number != PURGED_ACCOUNT,
                c.holder_kana != PURGED_HOLDER,
            ),
            c.status.in_(PURGEABLE_MANDATES),
            c.updated_at < cutoff,
            c.id > after,
        )
        .order_by(c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(row.id, row.biller_id) for row in conn.execute(stmt)]


def purge_mandates(conn: Connection, mandate_ids: Sequence[int], purge_id: int) -> None:
    """The account number and holder name; ``version`` and ``updated_at`` stay."""
    conn.execute(
        update(mandates)
        .where(mandates.c.id.in_(mandate_ids))
        .values(account_number=PURGED_ACCOUNT, holder_kana=PURGED_HOLDER, purge_id=purge_id)
    )


def event_watermark(conn: Connection) -> int:
    """The highest ``last_event_id`` of the audit rows: every event up to it is scrubbed."""
    value = conn.execute(select(func.max(data_purges.c.last_event_id))).scalar()
    return int(value or 0)


def lock_events_after(conn: Connection, after: int, limit: int) -> list[tuple[int, datetime, str]]:
    """(id, created_at, data) of up to ``limit`` events with ``id > after``, in id order, locked
    (``FOR UPDATE``, waiting: two runs scrub an event one after the other, and the second finds
    nothing left to remove)."""
    e = events.c
    rows = conn.execute(
        select(e.id, e.created_at, e.data)
        .where(e.id > after)
        .order_by(e.id)
        .limit(limit)
        .with_for_update()
    )
    return [(r.id, r.created_at, r.data) for r in rows]


def set_event_data(conn: Connection, changed: Sequence[tuple[int, str]]) -> None:
    if changed:
        conn.execute(
            update(events).where(events.c.id == bindparam("e_id")).values(data=bindparam("e_data")),
            [{"e_id": i, "e_data": data} for i, data in changed],
        )


def save_purge(conn: Connection, purge_id: int | None, values: Mapping[str, Any]) -> int:
    """Write the run's audit row (a new one when ``purge_id`` is None); its id."""
    if purge_id is None:
        inserted = conn.execute(
            data_purges.insert().values(**values).returning(data_purges.c.id)
        ).scalar_one()
        return int(inserted)
    conn.execute(update(data_purges).where(data_purges.c.id == purge_id).values(**values))
    return purge_id
