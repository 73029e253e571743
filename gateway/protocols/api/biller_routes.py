"""The operator's biller routes (admin keys only; a biller's key answers 403):
``POST /v1/billers`` (onboard a biller, under a CVS agency when it has the cvs channel),
``GET /v1/billers`` (by code, paged) and ``GET /v1/billers/{biller_id}``."""

from __future__ import annotations

from gateway.billing.actors import key_actor
from gateway.billing.billers import BillerService
from gateway.protocols.api.access import admin_only, page_limit
from gateway.protocols.api.http import Call, Response, Route


def biller_routes(billers: BillerService, max_page_size: int) -> list[Route]:
    default_limit = min(50, max_page_size)

    async def create_biller(call: Call) -> Response:
        principal = admin_only(call)
        body = call.json_body()
        actor = key_actor(principal)
        return Response.stored(await billers.create(body, call.idempotency(), actor))

    async def list_billers(call: Call) -> Response:
        admin_only(call)
        limit = page_limit(call, default_limit, max_page_size)
        return Response.json(await billers.list(call.query("cursor"), limit))

    async def get_biller(call: Call) -> Response:
        admin_only(call)
        return Response.json(await billers.get(call.params["biller_id"]))

    return [
        Route(b"POST", "/v1/billers", create_biller, auth=True),
        Route(b"GET", "/v1/billers", list_billers, auth=True),
        Route(b"GET", "/v1/billers/{biller_id}", get_biller, auth=True),
    ]
