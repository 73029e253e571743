"""Payments and refund cases as the merchant API shows them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from gateway.clock import now as clock_now
from gateway.errors import Conflict, FieldError, InvalidRequest, NotFound, Refusal
from gateway.model import Channel, PaymentStatus, Principal, RefundStatus
from gateway.store import Store
from gateway.store.bills import get_bill
from gateway.store.ledger import list_payments, list_refund_cases, resolve_refund_case
from gateway.validation import Fields
from gateway.views import payment_json, refund_case_json

RESOLUTIONS = ("refunded", "applied_to_bill", "no_refund")
NOTE_MAX = 500  # a resolution's note; read by the validator and the OpenAPI document


def encode_payment_cursor(created_at: datetime, payment_id: str) -> str:
    micros = int(created_at.timestamp() * 1_000_000)
    return f"{micros}-{payment_id}"


def decode_payment_cursor(cursor: str) -> tuple[datetime, str]:
    micros, _, payment_id = cursor.partition("-")
    if not micros.isdigit() or not payment_id.startswith("pay_") or len(micros) > 20:
        raise InvalidRequest(
            [FieldError("cursor", "is not a cursor this API returned")], Refusal.MALFORMED
        )
    return datetime.fromtimestamp(int(micros) / 1_000_000, UTC), payment_id


class PaymentService:
    def __init__(self, store: Store, clock: IReactorTime) -> None:
        self.store = store
        self.clock = clock

    async def for_bill(self, principal: Principal, bill_no: str) -> dict[str, Any]:
        def txn(conn: Connection) -> list[dict[str, Any]]:
            found = get_bill(conn, principal.biller_id or "", bill_no)
            if found is None:
                raise NotFound(f"bill {bill_no}")
            return [
                payment_json(p)
                for p in list_payments(
                    conn, principal.biller_id or "", bill_id=found[0], limit=1000
                )
            ]

        return {"data": await self.store.run_interaction("payments.for_bill", txn)}

    async def list(
        self,
        principal: Principal,
        *,
        since: datetime | None,
        channel: Channel | None,
        status: PaymentStatus | None,
        cursor: str | None,
        limit: int,
    ) -> dict[str, Any]:
        after = decode_payment_cursor(cursor) if cursor is not None else None
        rows = await self.store.run_interaction(
            "payments.list",
            list_payments,
            principal.biller_id or "",
            since=since,
            channel=channel,
            status=status,
            after=after,
            limit=limit + 1,
        )
        page = rows[:limit]
        last = page[-1] if page else None
        return {
            "data": [payment_json(p) for p in page],
            "next_cursor": encode_payment_cursor(last.created_at, last.payment_id)
            if last is not None and len(rows) > limit
            else None,
        }

    async def refund_cases(
        self, principal: Principal, status: RefundStatus | None, limit: int
    ) -> dict[str, Any]:
        rows = await self.store.run_interaction(
            "refund_cases.list", list_refund_cases, principal.biller_id or "", status, limit
        )
        return {"data": [refund_case_json(c) for c in rows]}

    async def resolve(self, principal: Principal, case_id: str, body: object) -> dict[str, Any]:
        f = Fields(body)
        resolution = f.string("resolution", required=True, max_len=32)
        note = f.string("note", max_len=NOTE_MAX)
        f.finish()
        if resolution is not None and resolution not in RESOLUTIONS:
            f.bad("resolution", f"must be one of {', '.join(RESOLUTIONS)}")
        f.raise_if_invalid()
        assert resolution is not None
        case = await self.store.run_interaction(
            "refund_cases.resolve",
            resolve_refund_case,
            principal.biller_id or "",
            case_id,
            resolution,
            note,
            clock_now(self.clock),
        )
        if case is None:
            raise NotFound(f"refund case {case_id}")
        if case.resolution != resolution or case.note != note:
            raise Conflict(
                f"refund case {case_id} was already resolved as {case.resolution}",
                field="resolution",
            )
        return refund_case_json(case)
