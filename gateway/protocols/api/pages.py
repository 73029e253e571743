"""The customers' routes on the API listener (no authentication: the page token is the secret):
``GET /p/{token}`` and ``GET /p/{token}/receipt.pdf``; and the biller's
``GET /v1/bills/{bill_no}/receipt.pdf``.

The customers' routes answer HTML error pages (404 unknown token, 409 receipt not issued yet,
410 past the retention period), never problem+json: a person reads them. Every answer carries the
page's security headers (:data:`gateway.render.payment_page.PAGE_HEADERS`).
"""

from __future__ import annotations

import re

from gateway.billing.bills import BILL_NO
from gateway.billing.pages import PageGone, PageService
from gateway.errors import Conflict, NotFound
from gateway.protocols.api.access import biller_only
from gateway.protocols.api.http import Call, Problem, Response, Route
from gateway.render.payment_page import HTML, PAGE_HEADERS, error_page

PDF = "application/pdf"
# Only the router's own headers on a PDF: a Content-Security-Policy on it would stop the
# browser's PDF viewer from showing it.
PDF_HEADERS = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}


def _html(status: int, body: str) -> Response:
    return Response(status, body.encode(), HTML, dict(PAGE_HEADERS))


def _error(status: int) -> Response:
    return _html(status, error_page(status))


def _pdf(name: str, body: bytes) -> Response:
    headers = {**PDF_HEADERS, "Content-Disposition": f'inline; filename="{name}"'}
    return Response(200, body, PDF, headers)


def page_routes(pages: PageService) -> list[Route]:
    async def page(call: Call) -> Response:
        try:
            return _html(200, await pages.page(call.params["token"]))
        except NotFound:
            return _error(404)
        except PageGone:
            return _error(410)

    async def customer_receipt(call: Call) -> Response:
        try:
            return _pdf(*await pages.receipt_by_token(call.params["token"]))
        except NotFound:
            return _error(404)
        except PageGone:
            return _error(410)
        except Conflict:
            return _error(409)

    async def biller_receipt(call: Call) -> Response:
        principal = biller_only(call, "bills")
        bill_no = call.params["bill_no"]
        if not re.fullmatch(BILL_NO, bill_no):
            raise Problem(404, "Not found", f"bill {bill_no[:64]} not found")
        return _pdf(*await pages.receipt_for_bill(principal, bill_no))

    not_found = _error(404)  # a token of the wrong shape: the page of an unknown one
    return [
        Route(b"GET", "/p/{token}", page, auth=False, not_found=not_found),
        Route(b"GET", "/p/{token}/receipt.pdf", customer_receipt, auth=False, not_found=not_found),
        Route(b"GET", "/v1/bills/{bill_no}/receipt.pdf", biller_receipt, auth=True),
    ]
