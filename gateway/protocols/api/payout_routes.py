"""The operator's payout routes (admin keys only; a biller's key answers 403):

``GET /v1/billers/{biller_id}/payout-accounts`` (the versions, numbers masked),
``PUT /v1/billers/{biller_id}/payout-accounts/{effective_from}`` (201 added, 200 replaced),
``POST /v1/admin/payouts`` (the 総合振込 file of ``transfer_date``, recorded and written) and
``GET /v1/admin/payouts?date=`` (the payout files). Without ``[payouts]`` every one is 404.
"""

from __future__ import annotations

import re

from gateway.billing.actors import key_actor
from gateway.money.payout_service import PayoutService
from gateway.protocols.api.access import admin_only
from gateway.protocols.api.http import Call, Problem, Response, Route
from gateway.protocols.api.settlement_routes import _date
from gateway.validation import BILLER_ID, Fields


def payout_routes(payouts: PayoutService | None) -> list[Route]:
    def service(call: Call) -> PayoutService:
        admin_only(call)
        if payouts is None:
            raise Problem(404, "Not found", "payouts are off: [payouts] is not configured")
        return payouts

    def biller_id(call: Call) -> str:
        value = call.params["biller_id"]
        if not re.fullmatch(BILLER_ID, value):
            raise Problem(404, "Not found", f"biller {value[:32]} not found")
        return value

    async def accounts(call: Call) -> Response:
        return Response.json(await service(call).accounts(biller_id(call)))

    async def put_account(call: Call) -> Response:
        found = service(call)
        actor = key_actor(admin_only(call))
        day = _date("effective_from", call.params["effective_from"])
        status, doc = await found.put_account(actor, biller_id(call), day, call.json_body())
        return Response.json(doc, status)

    async def request(call: Call) -> Response:
        found = service(call)
        f = Fields(call.json_body())
        day = f.day("transfer_date", required=True)
        f.finish()
        f.raise_if_invalid()
        assert day is not None
        doc = await found.request(day, key_actor(admin_only(call)))
        return Response.json(doc, 201 if doc["file"] is not None else 200)

    async def files(call: Call) -> Response:
        found = service(call)
        raw = call.query("date")
        day = None if raw is None else _date("date", raw)
        return Response.json(await found.files(day))

    return [
        Route(b"GET", "/v1/billers/{biller_id}/payout-accounts", accounts, auth=True),
        Route(
            b"PUT",
            "/v1/billers/{biller_id}/payout-accounts/{effective_from}",
            put_account,
            auth=True,
        ),
        Route(b"POST", "/v1/admin/payouts", request, auth=True),
        Route(b"GET", "/v1/admin/payouts", files, auth=True),
    ]
