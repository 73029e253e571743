"""The support desk: what an operator (an admin key, or ``gateway-admin``) may ask of every
biller's ledger, and the refund cases it resolves.

- :func:`find_bills`: a bill found by any identifier a customer or an agency reads out;
- :func:`bill_story`: everything the ledger holds about one bill — its slips, payments with
  the messages they came in (raw, as received), events, webhook deliveries, refund cases and
  account-transfer requests. Never a secret: no page token, key, hash or webhook secret, and
  accounts masked;
- :func:`resolve_case`: a refund case of any biller resolved, written to the audit log in the
  same transaction.

Each is a function of a connection, run by :class:`SupportService` for the admin API and
directly by ``gateway-admin`` (gateway.app.admin.support).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from gateway.billing.payments import NOTE_MAX, RESOLUTIONS
from gateway.clock import now as clock_now
from gateway.errors import Conflict, FieldError, InvalidRequest, NotFound, Refusal
from gateway.model import Bill, RefundCase, RefundStatus
from gateway.store import Store
from gateway.store.audit import list_audit, record
from gateway.store.billers import list_api_keys
from gateway.store.bills import get_bill, is_purged, slips_of_bills
from gateway.store.ledger import payments_of_bills, resolve_refund_case
from gateway.store.support import (
    deliveries_of,
    events_of,
    find_anywhere,
    get_case,
    list_all_refund_cases,
    messages_of,
    refund_cases_of,
    transfer_requests_of,
)
from gateway.validation import Fields
from gateway.views import payment_json, refund_case_json

Render = Callable[[Bill], dict[str, Any]]  # a bill as events carry it (no page URL)

Q_MAX = 64  # the longest identifier searched (a bill_no or customer_no: 64)
MAX_FOUND = 50  # bills a search answers at most
STORY_EVENTS = 500  # events of one bill shown at most


def find_bills(conn: Connection, q: str, render: Render, limit: int = MAX_FOUND) -> dict[str, Any]:
    found = find_anywhere(conn, q, limit)
    return {
        "q": q,
        "data": [
            {"biller_id": bill.biller_id, "matched": matched, "bill": render(bill)}
            for _, bill, matched in found
        ],
    }


def bill_story(conn: Connection, biller_id: str, bill_no: str, render: Render) -> dict[str, Any]:
    found = get_bill(conn, biller_id, bill_no)
    if found is None:
        raise NotFound(f"bill {bill_no} of biller {biller_id}")
    bill_id, bill = found
    slips = slips_of_bills(conn, [bill_id])[bill_id]
    payments = payments_of_bills(conn, {bill_id: bill_no})[bill_id]
    messages = messages_of(conn, [(p.channel.value, p.event_key) for p in payments])
    by_payment: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for m in messages:
        by_payment.setdefault((m["channel"], m["event_key"]), []).append(m)
    stored = events_of(conn, biller_id, bill_no, STORY_EVENTS)
    return {
        "biller_id": biller_id,
        "bill": render(bill),
        "purged": is_purged(conn, bill_id),
        "slips": [
            {
                "reissue": s.reissue,
                "barcode": s.barcode,
                "amount": s.amount,
                "due_date": s.due_date.isoformat() if s.due_date else None,
                "stamp": s.stamp,
            }
            for s in slips
        ],
        "payments": [
            {
                **payment_json(p),
                "event_key": p.event_key,
                "store": p.store,
                "messages": by_payment.get((p.channel.value, p.event_key), []),
            }
            for p in payments
        ],
        "events": [
            {"event_id": e.event_id, "seq": e.seq, "type": e.type, "created_at": _iso(e.created_at)}
            for e in stored
        ],
        "webhook_deliveries": deliveries_of(conn, [e.id for e in stored]),
        "refund_cases": [case_json(c) for c in refund_cases_of(conn, bill_id)],
        "transfer_requests": transfer_requests_of(conn, bill_id),
    }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def case_json(case: RefundCase) -> dict[str, Any]:
    """A refund case as the operator sees it: the biller's view, and whose it is."""
    return {"biller_id": case.biller_id, **refund_case_json(case)}


def encode_case_cursor(case: RefundCase) -> str:
    return f"{int(case.opened_at.timestamp() * 1_000_000)}-{case.case_id}"


def decode_case_cursor(cursor: str) -> tuple[datetime, str]:
    micros, _, case_id = cursor.partition("-")
    if not micros.isdigit() or len(micros) > 20 or not case_id.startswith("rc_"):
        raise InvalidRequest(
            [FieldError("cursor", "is not a cursor this API returned")], Refusal.MALFORMED
        )
    return datetime.fromtimestamp(int(micros) / 1_000_000, UTC), case_id


def list_cases(
    conn: Connection,
    *,
    biller_id: str | None,
    status: RefundStatus | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    after = decode_case_cursor(cursor) if cursor is not None else None
    rows = list_all_refund_cases(
        conn,
        biller_id=biller_id,
        status=status.value if status else None,
        after=after,
        limit=limit + 1,
    )
    page = [case for case, _ in rows[:limit]]
    return {
        "data": [case_json(c) for c in page],
        "next_cursor": encode_case_cursor(page[-1]) if len(rows) > limit else None,
    }


def parse_resolution(body: object) -> tuple[str, str | None]:
    """``{"resolution": …, "note": …}``: one of :data:`RESOLUTIONS` (``no_refund`` is "not
    refunded"), and a note of at most :data:`NOTE_MAX` characters."""
    f = Fields(body)
    resolution = f.string("resolution", required=True, max_len=32)
    note = f.string("note", max_len=NOTE_MAX)
    f.finish()
    if resolution is not None and resolution not in RESOLUTIONS:
        f.bad("resolution", f"must be one of {', '.join(RESOLUTIONS)}")
    f.raise_if_invalid()
    assert resolution is not None
    return resolution, note


def resolve_case(
    conn: Connection,
    actor: str,
    case_id: str,
    resolution: str,
    note: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Resolve a refund case of any biller. The same resolution again changes nothing (and
    writes no audit line); another one for a resolved case is :class:`Conflict`."""
    before = get_case(conn, case_id)
    if before is None:
        raise NotFound(f"refund case {case_id}")
    after = resolve_refund_case(conn, before.biller_id or "", case_id, resolution, note, now)
    if after is None:  # a case of no biller (a payment of an unknown bill): not the API's
        raise NotFound(f"refund case {case_id}")
    if after.resolution != resolution or after.note != note:
        raise Conflict(
            f"refund case {case_id} was already resolved as {after.resolution}",
            field="resolution",
        )
    if before.status != after.status:
        record(
            conn,
            actor,
            "refund_case.resolve",
            f"refund_case:{case_id}",
            now,
            biller_id=after.biller_id,
            before=case_json(before),
            after=case_json(after),
        )
    return case_json(after)


def audit_page(
    conn: Connection,
    *,
    biller_id: str | None,
    target: str | None,
    action: str | None,
    cursor: str | None,
    limit: int,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """A page of the audit log, newest first, by any of its filters (each None: any)."""
    before_id = None
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit() and len(cursor) < 19):
            raise InvalidRequest(
                [FieldError("cursor", "is not a cursor this API returned")], Refusal.MALFORMED
            )
        before_id = int(cursor)
    rows = list_audit(
        conn,
        biller_id=biller_id,
        target=target,
        action=action,
        before_id=before_id,
        limit=limit + 1,
        actor=actor,
        since=since,
        until=until,
    )
    page = rows[:limit]
    return {
        "data": page,
        "next_cursor": str(page[-1]["id"]) if len(rows) > limit else None,
    }


class SupportService:
    """The support desk through the admin API: each call one store interaction. The caller
    (:mod:`gateway.protocols.api.support_routes`) has checked that the key is an admin key."""

    def __init__(self, store: Store, clock: IReactorTime, render: Render) -> None:
        self.store = store
        self.clock = clock
        self.render = render

    async def find(self, q: str, limit: int) -> dict[str, Any]:
        return await self.store.run_interaction("support.find", find_bills, q, self.render, limit)

    async def story(self, biller_id: str, bill_no: str) -> dict[str, Any]:
        return await self.store.run_interaction(
            "support.story", bill_story, biller_id, bill_no, self.render
        )

    async def refund_cases(
        self, biller_id: str | None, status: RefundStatus | None, cursor: str | None, limit: int
    ) -> dict[str, Any]:
        return await self.store.run_interaction(
            "support.refund_cases",
            lambda conn: list_cases(
                conn, biller_id=biller_id, status=status, cursor=cursor, limit=limit
            ),
        )

    async def resolve(self, actor: str, case_id: str, body: object) -> dict[str, Any]:
        resolution, note = parse_resolution(body)
        return await self.store.run_interaction(
            "support.resolve",
            resolve_case,
            actor,
            case_id,
            resolution,
            note,
            clock_now(self.clock),
        )

    async def audit(
        self,
        biller_id: str | None,
        target: str | None,
        action: str | None,
        cursor: str | None,
        limit: int,
    ) -> dict[str, Any]:
        return await self.store.run_interaction(
            "support.audit",
            lambda conn: audit_page(
                conn,
                biller_id=biller_id,
                target=target,
                action=action,
                cursor=cursor,
                limit=limit,
            ),
        )

    async def keys(self, biller_id: str | None) -> list[dict[str, Any]]:
        """Every API key (of one biller): never a key nor its hash."""
        return await self.store.run_interaction(
            "support.keys", list_api_keys, clock_now(self.clock), biller_id
        )
