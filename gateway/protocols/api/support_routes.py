"""The support desk's routes (admin keys only; a biller's key answers 403):

- ``GET /v1/support/bills?q=…``: bills of every biller that an identifier names;
- ``GET /v1/support/bills/{biller_id}/{bill_no}``: a bill's whole story;
- ``GET /v1/support/refund-cases`` and ``POST /v1/support/refund-cases/{case_id}/resolve``;
- ``GET /v1/support/audit``: the audit log of operator actions, newest first;
- ``GET /v1/support/keys``: the API keys (never a key nor its hash);
- ``PATCH /v1/billers/{biller_id}``, ``POST /v1/billers/{biller_id}/suspend`` and ``/resume``.

Every action is written to the audit log as ``key:<admin key id>``."""

from __future__ import annotations

import re

from gateway.billing.actors import key_actor
from gateway.billing.billers import BillerService
from gateway.billing.bills import BILL_NO
from gateway.billing.support import Q_MAX, SupportService
from gateway.errors import FieldError
from gateway.model import RefundStatus
from gateway.protocols.api.access import admin_only, page_limit
from gateway.protocols.api.http import Call, Problem, Response, Route
from gateway.validation import BILLER_ID

AUDIT_ACTION = r"[a-z_]{1,20}\.[a-z_]{1,19}"  # "biller.suspend", "refund_case.resolve", …
AUDIT_TARGET = r"[a-z_]{1,20}:[A-Za-z0-9_.:\-]{1,99}"  # "biller:gas", "key:key_…", …
Q = "[!-~]{1," + str(Q_MAX) + "}"  # printable ASCII: every identifier the desk searches is


def _matching(call: Call, name: str, pattern: str, what: str) -> str | None:
    raw = call.query(name)
    if raw is None:
        return None
    if not re.fullmatch(pattern, raw):
        raise Problem(
            400,
            "The request is malformed",
            f"{name} must be {what}",
            [FieldError(name, f"must be {what}")],
        )
    return raw


def _status(call: Call) -> RefundStatus | None:
    raw = _matching(call, "status", "|".join(s.value for s in RefundStatus), "open or resolved")
    return None if raw is None else RefundStatus(raw)


def support_routes(
    support: SupportService, billers: BillerService, max_page_size: int
) -> list[Route]:
    default_limit = min(50, max_page_size)

    async def find(call: Call) -> Response:
        admin_only(call)
        q = _matching(call, "q", Q, f"1-{Q_MAX} printable ASCII characters")
        if q is None:
            raise Problem(
                400,
                "The request is malformed",
                "q (an identifier) is required",
                [FieldError("q", "is required")],
            )
        return Response.json(await support.find(q, page_limit(call, default_limit, 50)))

    async def story(call: Call) -> Response:
        admin_only(call)
        bill_no = call.params["bill_no"]
        if not re.fullmatch(BILL_NO, bill_no):
            raise Problem(404, "Not found", f"bill {bill_no[:64]} not found")
        return Response.json(await support.story(call.params["biller_id"], bill_no))

    async def refund_cases(call: Call) -> Response:
        admin_only(call)
        biller = _matching(call, "biller_id", BILLER_ID, "a biller id")
        limit = page_limit(call, default_limit, max_page_size)
        cursor = call.query("cursor")
        return Response.json(await support.refund_cases(biller, _status(call), cursor, limit))

    async def resolve(call: Call) -> Response:
        principal = admin_only(call)
        body = call.json_body()
        return Response.json(
            await support.resolve(key_actor(principal), call.params["case_id"], body)
        )

    async def audit(call: Call) -> Response:
        admin_only(call)
        biller = _matching(call, "biller_id", BILLER_ID, "a biller id")
        target = _matching(call, "target", AUDIT_TARGET, "a target such as biller:ID")
        action = _matching(call, "action", AUDIT_ACTION, "an action such as biller.suspend")
        limit = page_limit(call, default_limit, max_page_size)
        page = await support.audit(biller, target, action, call.query("cursor"), limit)
        return Response.json(page)

    async def list_keys(call: Call) -> Response:
        admin_only(call)
        biller = _matching(call, "biller_id", BILLER_ID, "a biller id")
        return Response.json({"keys": await support.keys(biller)})

    async def update_biller(call: Call) -> Response:
        principal = admin_only(call)
        body = call.json_body()
        biller_id = call.params["biller_id"]
        return Response.json(await billers.update(key_actor(principal), biller_id, body))

    async def suspend(call: Call) -> Response:
        principal = admin_only(call)
        body = call.json_body(required=False)
        biller_id = call.params["biller_id"]
        return Response.json(await billers.suspend(key_actor(principal), biller_id, body))

    async def resume(call: Call) -> Response:
        principal = admin_only(call)
        body = call.json_body(required=False)
        biller_id = call.params["biller_id"]
        return Response.json(await billers.resume(key_actor(principal), biller_id, body))

    return [
        Route(b"GET", "/v1/support/bills", find),
        Route(b"GET", "/v1/support/bills/{biller_id}/{bill_no}", story),
        Route(b"GET", "/v1/support/refund-cases", refund_cases),
        Route(b"POST", "/v1/support/refund-cases/{case_id}/resolve", resolve),
        Route(b"GET", "/v1/support/audit", audit),
        Route(b"GET", "/v1/support/keys", list_keys),
        Route(b"PATCH", "/v1/billers/{biller_id}", update_biller),
        Route(b"POST", "/v1/billers/{biller_id}/suspend", suspend),
        Route(b"POST", "/v1/billers/{biller_id}/resume", resume),
    ]
