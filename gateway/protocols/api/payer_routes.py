"""The routes of reusable payer numbers (gateway.billing.payer_numbers), biller keys only:
``PUT /v1/customers/{customer_no}/payer-number`` (201 new, 200 the one the customer has),
``GET`` the same path, ``DELETE`` it (revoked: 200 with the revoked number), and
``GET …/payer-number/card.pdf`` (the printable card)."""

from __future__ import annotations

from gateway.billing.payer_numbers import PayerNumberService
from gateway.protocols.api.access import biller_only
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.api.pages import PDF, PDF_HEADERS
from gateway.protocols.api.statuses import STATUS


def payer_routes(payers: PayerNumberService) -> list[Route]:
    async def put(call: Call) -> Response:
        principal = biller_only(call, "payer numbers")
        body = call.json_body(required=False)
        outcome, doc = await payers.put(principal, call.params["customer_no"], body)
        return Response.json(doc, STATUS[outcome])

    async def get(call: Call) -> Response:
        principal = biller_only(call, "payer numbers")
        return Response.json(await payers.get(principal, call.params["customer_no"]))

    async def revoke(call: Call) -> Response:
        principal = biller_only(call, "payer numbers")
        return Response.json(await payers.revoke(principal, call.params["customer_no"]))

    async def card(call: Call) -> Response:
        principal = biller_only(call, "payer numbers")
        name, body = await payers.card(principal, call.params["customer_no"])
        headers = {**PDF_HEADERS, "Content-Disposition": f'inline; filename="{name}"'}
        return Response(200, body, PDF, headers)

    path = "/v1/customers/{customer_no}/payer-number"
    return [
        Route(b"PUT", path, put, auth=True),
        Route(b"GET", path, get, auth=True),
        Route(b"DELETE", path, revoke, auth=True),
        Route(b"GET", path + "/card.pdf", card, auth=True),
    ]
