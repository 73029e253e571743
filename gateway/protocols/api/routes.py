"""The merchant API's routes (spec/merchant-api.md): bills, payments, refund cases, mandates
and the events feed."""

from __future__ import annotations

import re
from enum import Enum
from typing import Any, TypeVar

from gateway.billing.bills import BILL_NO, MAX_EVENTS_AFTER, MAX_EVENTS_PAGE, BillService
from gateway.billing.mandates import MandateService
from gateway.billing.payments import PaymentService
from gateway.errors import FieldError
from gateway.model import BillStatus, Channel, PaymentStatus, RefundStatus
from gateway.protocols.api.access import biller_only
from gateway.protocols.api.http import Call, Problem, Response, Route
from gateway.protocols.api.openapi import openapi_document
from gateway.protocols.api.statuses import STATUS
from gateway.validation import parse_timestamp

E = TypeVar("E", bound=Enum)


def _bill_no(call: Call) -> str:
    bill_no = call.params["bill_no"]
    if not re.fullmatch(BILL_NO, bill_no):
        # Same answer as an unknown bill: nothing to learn from the shape of a bill_no.
        raise Problem(404, "Not found", f"bill {bill_no[:64]} not found")
    return bill_no


def _int_query(call: Call, name: str, default: int, low: int, high: int) -> int:
    raw = call.query(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise Problem(
            400,
            "The request is malformed",
            f"{name} must be an integer {low}-{high}",
            [FieldError(name, f"must be an integer from {low} to {high}")],
        )
    return value


def _enum_query(call: Call, name: str, enum: type[E]) -> E | None:
    raw = call.query(name)
    if raw is None:
        return None
    try:
        return enum(raw)
    except ValueError:
        allowed = ", ".join(str(e.value) for e in enum)
        raise Problem(
            400,
            "The request is malformed",
            f"{name} must be one of {allowed}",
            [FieldError(name, f"must be one of {allowed}")],
        ) from None


def api_routes(
    bills: BillService, payments: PaymentService, mandates: MandateService, max_page_size: int
) -> list[Route]:
    openapi = Response.json(openapi_document(bills.public_url, max_page_size))

    async def create_bill(call: Call) -> Response:
        principal = biller_only(call, "bills")
        body = call.json_body()
        return Response.stored(await bills.create(principal, body, call.idempotency()))

    async def get_bill(call: Call) -> Response:
        return Response.json(await bills.get(biller_only(call, "bills"), _bill_no(call)))

    async def list_bills(call: Call) -> Response:
        principal = biller_only(call, "bills")
        status = _enum_query(call, "status", BillStatus)
        since = call.query("updated_since")
        updated_since = parse_timestamp(since, "updated_since") if since is not None else None
        limit = _int_query(call, "limit", min(50, max_page_size), 1, max_page_size)
        page = await bills.list(
            principal,
            status=status,
            updated_since=updated_since,
            cursor=call.query("cursor"),
            limit=limit,
        )
        return Response.json(page)

    async def cancel_bill(call: Call) -> Response:
        principal = biller_only(call, "bills")
        bill_no = _bill_no(call)
        body = call.json_body(required=False)
        return Response.stored(await bills.cancel(principal, bill_no, body, call.idempotency()))

    async def reissue_bill(call: Call) -> Response:
        principal = biller_only(call, "bills")
        bill_no = _bill_no(call)
        body = call.json_body(required=False)
        return Response.stored(await bills.reissue(principal, bill_no, body, call.idempotency()))

    async def list_events(call: Call) -> Response:
        principal = biller_only(call, "bills")
        after = _int_query(call, "after", 0, 0, MAX_EVENTS_AFTER)
        limit = _int_query(call, "limit", 100, 1, MAX_EVENTS_PAGE)
        return Response.json(await bills.events(principal, after=after, limit=limit))

    async def bill_payments(call: Call) -> Response:
        return Response.json(await payments.for_bill(biller_only(call, "bills"), _bill_no(call)))

    async def list_payments(call: Call) -> Response:
        principal = biller_only(call, "bills")
        since = call.query("since")
        page = await payments.list(
            principal,
            since=parse_timestamp(since, "since") if since is not None else None,
            channel=_enum_query(call, "channel", Channel),
            status=_enum_query(call, "status", PaymentStatus),
            cursor=call.query("cursor"),
            limit=_int_query(call, "limit", min(50, max_page_size), 1, max_page_size),
        )
        return Response.json(page)

    async def list_refund_cases(call: Call) -> Response:
        principal = biller_only(call, "bills")
        status = _enum_query(call, "status", RefundStatus)
        limit = _int_query(call, "limit", min(50, max_page_size), 1, max_page_size)
        return Response.json(await payments.refund_cases(principal, status, limit))

    async def resolve_refund_case(call: Call) -> Response:
        principal = biller_only(call, "bills")
        return Response.json(
            await payments.resolve(principal, call.params["case_id"], call.json_body())
        )

    async def put_mandate(call: Call) -> Response:
        principal = biller_only(call, "bills")
        outcome, doc = await mandates.put(principal, call.params["customer_no"], call.json_body())
        return Response.json(doc, STATUS[outcome])

    async def get_mandate(call: Call) -> Response:
        return Response.json(
            await mandates.get(biller_only(call, "bills"), call.params["customer_no"])
        )

    async def revoke_mandate(call: Call) -> Response:
        return Response.json(
            await mandates.revoke(biller_only(call, "bills"), call.params["customer_no"])
        )

    async def get_openapi(call: Call) -> Response:
        return openapi

    routes: list[tuple[bytes, str, Any, bool]] = [
        (b"GET", "/v1/openapi.json", get_openapi, False),
        (b"POST", "/v1/bills", create_bill, True),
        (b"GET", "/v1/bills", list_bills, True),
        (b"GET", "/v1/bills/{bill_no}", get_bill, True),
        (b"POST", "/v1/bills/{bill_no}/cancel", cancel_bill, True),
        (b"POST", "/v1/bills/{bill_no}/reissue", reissue_bill, True),
        (b"GET", "/v1/events", list_events, True),
        (b"PUT", "/v1/mandates/{customer_no}", put_mandate, True),
        (b"GET", "/v1/mandates/{customer_no}", get_mandate, True),
        (b"DELETE", "/v1/mandates/{customer_no}", revoke_mandate, True),
        (b"GET", "/v1/bills/{bill_no}/payments", bill_payments, True),
        (b"GET", "/v1/payments", list_payments, True),
        (b"GET", "/v1/refund-cases", list_refund_cases, True),
        (b"POST", "/v1/refund-cases/{case_id}/resolve", resolve_refund_case, True),
    ]
    return [Route(method, template, handler, auth) for method, template, handler, auth in routes]
