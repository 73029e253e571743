"""What a biller asks of notices through the merchant API (docs/notices.md, docs/api.md):

- ``GET /v1/notices`` (``bill_no``, ``status``, ``cursor``, ``limit``): every notice of its
  bills — kind, medium, status (``pending``, ``sending``, ``sent``, ``failed``, ``skipped``),
  attempts, the last error, when it is tried next, when it was sent, the segments a sent SMS was
  charged as — with the recipient masked;
- ``GET`` and ``PUT /v1/customers/{customer_no}/opt-out``: whether a customer gets no e-mail
  notice, no SMS notice (``{"email": true, "sms": false}``); a ``PUT`` replaces both, and
  notices already queued are skipped when their time comes.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from gateway.billing.bills import BILL_NO, decode_cursor, encode_cursor
from gateway.clock import now as clock_now
from gateway.errors import FieldError, InvalidRequest, NotFound, Refusal
from gateway.model import JST, Principal
from gateway.notice_rules import Notice
from gateway.store import Store
from gateway.store.notices import NoticeRow, OptOut, get_optout, list_notices, set_optout
from gateway.validation import Fields

STATUSES = ("pending", "sending", "sent", "failed", "skipped")


def mask(recipient: str | None) -> str | None:
    """An address or number as a biller's list shows it: ``t***@example.jp``, ``090****5678``."""
    if not recipient:
        return None
    local, at, domain = recipient.partition("@")
    if at:
        return f"{local[:1]}***@{domain}"
    return recipient[:3] + "*" * max(len(recipient) - 7, 0) + recipient[-4:]


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(JST).isoformat(timespec="seconds") if at is not None else None


def notice_json(n: NoticeRow) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": n.notice_id,
        "bill_no": n.bill_no,
        "kind": n.kind,
        "medium": n.medium,
        "status": n.status,
        "attempts": n.attempts,
        "last_error": n.last_error,
        "recipient": mask(n.recipient),
        "created_at": _iso(n.created_at),
        "next_attempt_at": _iso(n.next_attempt_at) if n.status == "pending" else None,
        "sent_at": _iso(n.sent_at),
        "segments": n.segments,
    }
    if n.kind in (Notice.PAGE.value, Notice.FALLBACK.value):
        doc["reissue"] = int(n.ref) if n.ref.isdigit() else None
    elif n.kind == Notice.REMINDER.value:
        doc["due_date"] = n.ref
    elif n.kind == Notice.RECEIVED.value:
        doc["payment_id"] = n.ref
    return doc


def optout_json(o: OptOut) -> dict[str, Any]:
    return {
        "customer_no": o.customer_no,
        "email": o.email,
        "sms": o.sms,
        "updated_at": _iso(o.updated_at),
    }


def _refuse(field: str, message: str) -> InvalidRequest:
    return InvalidRequest([FieldError(field, message)], Refusal.MALFORMED)


class NoticeApi:
    def __init__(self, store: Store, clock: IReactorTime) -> None:
        self.store = store
        self.clock = clock

    async def list(
        self,
        principal: Principal,
        *,
        bill_no: str | None,
        status: str | None,
        cursor: str | None,
        limit: int,
    ) -> dict[str, Any]:
        if bill_no is not None and not re.fullmatch(BILL_NO, bill_no):
            raise _refuse("bill_no", "is not a bill number")
        if status is not None and status not in STATUSES:
            raise _refuse("status", f"must be one of {', '.join(STATUSES)}")
        after = decode_cursor(cursor) if cursor is not None else 0
        rows = await self.store.run_interaction(
            "notices.list",
            list_notices,
            principal.biller_id or "",
            bill_no=bill_no,
            status=status,
            after_id=after,
            limit=limit + 1,
        )
        page = rows[:limit]
        return {
            "data": [notice_json(n) for n in page],
            "next_cursor": encode_cursor(page[-1].notice_id) if len(rows) > limit else None,
        }

    async def get_optout(self, principal: Principal, customer_no: str) -> dict[str, Any]:
        found = await self.store.run_interaction(
            "notices.optout", get_optout, _biller(principal), customer_no
        )
        return optout_json(found)

    async def put_optout(
        self, principal: Principal, customer_no: str, body: object
    ) -> dict[str, Any]:
        f = Fields(body)
        email = f.boolean("email", required=True)
        sms = f.boolean("sms", required=True)
        f.finish()
        f.raise_if_invalid()
        assert email is not None and sms is not None
        biller_id = _biller(principal)
        now = clock_now(self.clock)

        def txn(conn: Connection) -> OptOut:
            return set_optout(conn, OptOut(biller_id, customer_no, email, sms, None), now)

        return optout_json(await self.store.run_interaction("notices.set_optout", txn))


def _biller(principal: Principal) -> str:
    if principal.biller_id is None:
        raise NotFound("customer (use a biller's API key)")
    return principal.biller_id
