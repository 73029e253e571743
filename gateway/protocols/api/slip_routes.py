"""Printed slips (gateway.billing.slips), biller keys only (an admin key gets 403; the operator
prints with ``gateway-admin slips``):

- ``GET /v1/bills/batch/{batch_id}/slips.pdf?cursor=&limit=``: the payable bills of a bulk
  registration, in its file's row order;
- ``GET /v1/bills/slips.pdf?status=open&due_from=&due_to=&customer_no=&cursor=&limit=``: the
  payable bills the filter names, in the order they were registered.

Each answer is one PDF of at most ``limit`` (1-100, default 100) slips; when the set has more,
its ``Link`` header names the next file (``rel="next"``, the same query with ``cursor``). A set
with nothing to print answers 404.
"""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import quote, urlencode

from gateway.billing.bills import CUSTOMER_NO
from gateway.billing.slips import SlipFile, SlipFilter, SlipService
from gateway.errors import FieldError
from gateway.protocols.api.access import biller_only, page_limit
from gateway.protocols.api.http import Call, Problem, Response, Route
from gateway.render.slips import MAX_SLIPS

STATUSES = ("open",)  # a slip can be paid only while its bill is open


def _bad(name: str, message: str) -> Problem:
    return Problem(
        400, "The request is malformed", f"{name} {message}", [FieldError(name, message)]
    )


def _day(call: Call, name: str) -> date | None:
    raw = call.query(name)
    if raw is None:
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise _bad(name, "must be a date YYYY-MM-DD")


def slip_filter(call: Call) -> SlipFilter:
    """The filter of ``GET /v1/bills/slips.pdf`` (400 naming a bad parameter)."""
    status = call.query("status")
    if status is not None and status not in STATUSES:
        raise _bad("status", "must be open: only an open bill's slip can be paid")
    customer_no = call.query("customer_no")
    if customer_no is not None and not re.fullmatch(CUSTOMER_NO, customer_no):
        raise _bad("customer_no", "must be a customer number (1-64 letters, digits, . _ -)")
    return SlipFilter(_day(call, "due_from"), _day(call, "due_to"), customer_no)


def _pdf(call: Call, made: SlipFile) -> Response:
    headers = {"Content-Disposition": f'inline; filename="{made.name}"'}
    if made.next_cursor is not None:
        args = [
            (k.decode(), v.decode("utf-8", "replace"))
            for k, values in call.request.args.items()
            if k != b"cursor"
            for v in values
        ]
        query = urlencode([*args, ("cursor", made.next_cursor)])
        path = quote(call.request.path.decode("ascii", "replace"))
        headers["Link"] = f'<{path}?{query}>; rel="next"'
    return Response(200, made.pdf, "application/pdf", headers)


def slip_routes(slips: SlipService) -> list[Route]:
    async def batch_slips(call: Call) -> Response:
        principal = biller_only(call, "bills")
        limit = page_limit(call, MAX_SLIPS, MAX_SLIPS)
        made = await slips.for_batch(
            principal, call.params["batch_id"], call.query("cursor"), limit
        )
        return _pdf(call, made)

    async def filtered_slips(call: Call) -> Response:
        principal = biller_only(call, "bills")
        which = slip_filter(call)
        limit = page_limit(call, MAX_SLIPS, MAX_SLIPS)
        return _pdf(call, await slips.for_filter(principal, which, call.query("cursor"), limit))

    return [
        Route(b"GET", "/v1/bills/batch/{batch_id}/slips.pdf", batch_slips),
        Route(b"GET", "/v1/bills/slips.pdf", filtered_slips),
    ]
