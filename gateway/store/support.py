"""The support desk's reads: a bill found across billers by any of its identifiers, and
everything the ledger holds about one bill (its story).

These are the operator's queries, not the hot path: a search by bill number, customer number
or a payment's store scans what no index covers (the desk asks a few times a minute).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy.engine import Connection

from gateway.model import Bill, RefundCase
from gateway.store.bills import _bill
from gateway.store.ledger import _case
from gateway.store.schema import (
    anomalies,
    bill_slips,
    billers,
    bills,
    collection_messages,
    events,
    notifications,
    payments,
    refund_cases,
    webhook_attempts,
    webhook_cursors,
    webhook_deliveries,
    webhook_endpoints,
    zengin_request_items,
    zengin_requests,
)
from gateway.store.webhook_queue import queue_depth

_DIGITS = re.compile(r"[0-9]+")
_STORE = re.compile(r"[0-9]{3,7}(-[0-9A-Za-z]{1,7})?")  # a chain or bank code, or a whole store


def find_anywhere(conn: Connection, q: str, limit: int) -> list[tuple[int, Bill, list[str]]]:
    """The bills ``q`` names, across billers, with what it matched each by: ``bill_no``,
    ``customer_no``, ``barcode`` (44 digits: any slip of the bill, its bill key),
    ``cvs_bill_key`` (27 digits), ``payeasy_customer_number`` (お客様番号), ``payment_id``,
    ``payment_store`` (a payment's store or bank: ``chain-store``, ``bank-branch``, or the
    code before the dash)."""
    matches: dict[int, list[str]] = {}

    def add(by: str, ids: Sequence[int]) -> None:
        for bill_id in ids:
            found = matches.setdefault(int(bill_id), [])
            if by not in found:
                found.append(by)

    def ids(query: Any) -> list[int]:
        return [r[0] for r in conn.execute(query.limit(limit)) if r[0] is not None]

    add("bill_no", ids(select(bills.c.id).where(bills.c.bill_no == q)))
    add("customer_no", ids(select(bills.c.id).where(bills.c.customer_no == q)))
    if _DIGITS.fullmatch(q):
        if len(q) == 44:
            add("barcode", ids(select(bill_slips.c.bill_id).where(bill_slips.c.barcode == q)))
            add("barcode", ids(select(bills.c.id).where(bills.c.cvs_bill_key == q[2:29])))
        if len(q) == 27:
            add("cvs_bill_key", ids(select(bills.c.id).where(bills.c.cvs_bill_key == q)))
        if len(q) <= 20:
            number = bills.c.payeasy_customer_number == q
            add("payeasy_customer_number", ids(select(bills.c.id).where(number)))
    if q.startswith("pay_"):
        add("payment_id", ids(select(payments.c.bill_id).where(payments.c.payment_id == q)))
    if _STORE.fullmatch(q):
        at_store = or_(payments.c.store == q, payments.c.store.startswith(q + "-"))
        add("payment_store", ids(select(payments.c.bill_id).distinct().where(at_store)))
    if not matches:
        return []
    rows = conn.execute(
        select(bills).where(bills.c.id.in_(list(matches))).order_by(bills.c.id.desc())
    )
    return [(r.id, _bill(r), matches[r.id]) for r in rows][:limit]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _raw(data: bytes) -> dict[str, str]:
    try:
        return {"raw": data.decode("cp932"), "raw_encoding": "cp932"}
    except UnicodeDecodeError:
        return {"raw": data.hex(), "raw_encoding": "hex"}


def messages_of(conn: Connection, keys: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every collection message of the (channel, event_key) pairs, as received, oldest first,
    with the anomalies recorded against them."""
    if not keys:
        return []
    m = collection_messages.c
    rows = conn.execute(
        select(collection_messages)
        .where(tuple_(m.channel, m.event_key).in_(list(keys)))
        .order_by(m.received_at, m.id)
    ).all()
    found: dict[int, list[dict[str, Any]]] = {}
    if rows:
        for a in conn.execute(
            select(anomalies).where(anomalies.c.message_id.in_([r.id for r in rows]))
        ):
            found.setdefault(a.message_id, []).append({"kind": a.kind, "detail": a.detail})
    return [
        {
            "channel": r.channel,
            "kind": r.kind,
            "event_key": r.event_key,
            "amount": r.amount,
            "paid_at": _iso(r.paid_at),
            "source": r.source,
            "line": r.line,
            "received_at": _iso(r.received_at),
            "outcome": r.outcome,
            **_raw(bytes(r.raw)),
            "anomalies": found.get(r.id, []),
        }
        for r in rows
    ]


def events_of(conn: Connection, biller_id: str, bill_no: str, limit: int) -> list[Any]:
    """The biller's outbox events that carry the bill (``{"bill": {"bill_no": …}}``)."""
    needle = f'"bill_no":"{bill_no}"'  # bill numbers need no JSON escape (BILL_NO)
    return list(
        conn.execute(
            select(events)
            .where(events.c.biller_id == biller_id, events.c.data.contains(needle, autoescape=True))
            .order_by(events.c.seq)
            .limit(limit)
        ).all()
    )


def deliveries_of(conn: Connection, event_pks: Sequence[int]) -> list[dict[str, Any]]:
    """The webhook deliveries of those events, with their attempts (never a secret)."""
    if not event_pks:
        return []
    d, e, ep = webhook_deliveries.c, events.c, webhook_endpoints.c
    rows = conn.execute(
        select(
            d.id,
            d.round,
            d.state,
            d.attempts,
            d.due_at,
            d.created_at,
            d.completed_at,
            e.event_id,
            e.type,
            ep.endpoint_id,
            ep.url,
        )
        .select_from(
            webhook_deliveries.join(events, d.event_pk == e.id).join(
                webhook_endpoints, d.endpoint_pk == ep.id
            )
        )
        .where(d.event_pk.in_(list(event_pks)))
        .order_by(d.id)
    ).all()
    tries: dict[int, list[dict[str, Any]]] = {}
    if rows:
        a = webhook_attempts.c
        for t in conn.execute(
            select(webhook_attempts)
            .where(a.delivery_pk.in_([r.id for r in rows]))
            .order_by(a.delivery_pk, a.attempt)
        ):
            tries.setdefault(t.delivery_pk, []).append(
                {
                    "delivery_id": t.delivery_id,
                    "attempt": t.attempt,
                    "attempted_at": _iso(t.attempted_at),
                    "result": t.result,
                    "status_code": t.status_code,
                    "error": t.error,
                    "duration_ms": t.duration_ms,
                }
            )
    return [
        {
            "event_id": r.event_id,
            "event_type": r.type,
            "endpoint_id": r.endpoint_id,
            "url": r.url,
            "round": r.round,
            "state": r.state,
            "attempts": tries.get(r.id, []),
            "next_attempt_at": _iso(r.due_at),
            "created_at": _iso(r.created_at),
            "completed_at": _iso(r.completed_at),
        }
        for r in rows
    ]


def transfer_requests_of(conn: Connection, bill_id: int) -> list[dict[str, Any]]:
    """The account-transfer debits asked for the bill (the account masked)."""
    i, r = zengin_request_items.c, zengin_requests.c
    rows = conn.execute(
        select(zengin_request_items, r.file_name, r.status, r.created_at, r.written_at)
        .select_from(zengin_request_items.join(zengin_requests, i.request_id == r.id))
        .where(i.bill_id == bill_id)
        .order_by(i.debit_date, i.request_id)
    ).all()
    return [
        {
            "debit_date": row.debit_date.isoformat(),
            "file_name": row.file_name,
            "request_status": row.status,
            "record_no": row.record_no,
            "consignor_code": row.consignor_code,
            "customer_number": row.customer_number,
            "bank_code": row.bank_code,
            "branch_code": row.branch_code,
            "account_number": "*" * (len(row.account_number) - 3) + row.account_number[-3:],
            "amount": row.amount,
            "result_code": row.result_code,
            "result_at": _iso(row.result_at),
            "created_at": _iso(row.created_at),
            "written_at": _iso(row.written_at),
        }
        for row in rows
    ]


def refund_cases_of(conn: Connection, bill_id: int) -> list[RefundCase]:
    rows = conn.execute(
        select(refund_cases, bills.c.bill_no)
        .select_from(refund_cases.outerjoin(bills, refund_cases.c.bill_id == bills.c.id))
        .where(refund_cases.c.bill_id == bill_id)
        .order_by(refund_cases.c.opened_at, refund_cases.c.case_id)
    )
    return [_case(r) for r in rows]


def list_all_refund_cases(
    conn: Connection,
    *,
    biller_id: str | None,
    status: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[tuple[RefundCase, datetime | None]]:
    """Refund cases of every biller (or one), oldest first, with when each was resolved;
    ``after``: the (opened_at, case_id) of the previous page's last."""
    rc = refund_cases.c
    conditions = []
    if biller_id is not None:
        conditions.append(rc.biller_id == biller_id)
    if status is not None:
        conditions.append(rc.status == status)
    if after is not None:
        conditions.append(
            or_(rc.opened_at > after[0], and_(rc.opened_at == after[0], rc.case_id > after[1]))
        )
    query = (
        select(refund_cases, bills.c.bill_no)
        .select_from(refund_cases.outerjoin(bills, rc.bill_id == bills.c.id))
        .order_by(rc.opened_at, rc.case_id)
        .limit(limit)
    )
    if conditions:
        query = query.where(and_(*conditions))
    return [(_case(r), r.resolved_at) for r in conn.execute(query)]


def get_case(conn: Connection, case_id: str) -> RefundCase | None:
    row = conn.execute(
        select(refund_cases, bills.c.bill_no)
        .select_from(refund_cases.outerjoin(bills, refund_cases.c.bill_id == bills.c.id))
        .where(refund_cases.c.case_id == case_id)
    ).first()
    return None if row is None else _case(row)


def backlogs(conn: Connection, now: datetime) -> dict[str, Any]:
    """What is waiting: webhook deliveries (gateway.store.webhook_queue.queue_depth), outbox
    events not yet dispatched to the endpoints of billers that have some, e-mails to send,
    open refund cases, account-transfer request files not yet written."""
    behind = conn.execute(
        select(
            func.coalesce(func.sum(billers.c.last_event_seq - webhook_cursors.c.last_seq), 0)
        ).select_from(
            billers.join(webhook_cursors, billers.c.biller_id == webhook_cursors.c.biller_id)
        )
    ).scalar_one()
    mails = conn.execute(
        select(func.count()).where(notifications.c.status.in_(("pending", "sending")))
    ).scalar_one()
    cases = conn.execute(select(func.count()).where(refund_cases.c.status == "open")).scalar_one()
    requests = conn.execute(
        select(func.count()).where(zengin_requests.c.status == "pending")
    ).scalar_one()
    return {
        "webhook_deliveries": queue_depth(conn, now),
        "outbox_events_undispatched": int(behind),
        "mail_pending": int(mails),
        "refund_cases_open": int(cases),
        "transfer_requests_pending": int(requests),
    }
