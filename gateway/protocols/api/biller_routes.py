"""The operator's biller routes (admin keys only; a biller's key answers 403):
``POST /v1/billers`` (onboard a biller, under a CVS agency when it has the cvs channel),
``GET /v1/billers`` (by code, paged) and ``GET /v1/billers/{biller_id}``."""

from __future__ import annotations

from gateway.billing.billers import BillerService
from gateway.errors import FieldError
from gateway.model import Principal
from gateway.protocols.api.http import Call, Problem, Response, Route


def _admin(call: Call) -> Principal:
    principal = call.principal
    assert principal is not None
    if not principal.is_admin:
        raise Problem(403, "Forbidden", "this is the operator's: use an admin API key")
    return principal


def _limit(call: Call, default: int, high: int) -> int:
    raw = call.query("limit")
    if raw is None:
        return default
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else 0
    if not 1 <= value <= high:
        raise Problem(
            400,
            "The request is malformed",
            f"limit must be an integer 1-{high}",
            [FieldError("limit", f"must be an integer from 1 to {high}")],
        )
    return value


def biller_routes(billers: BillerService, max_page_size: int) -> list[Route]:
    default_limit = min(50, max_page_size)

    async def create_biller(call: Call) -> Response:
        _admin(call)
        body = call.json_body()
        return Response.stored(await billers.create(body, call.idempotency()))

    async def list_billers(call: Call) -> Response:
        _admin(call)
        limit = _limit(call, default_limit, max_page_size)
        return Response.json(await billers.list(call.query("cursor"), limit))

    async def get_biller(call: Call) -> Response:
        _admin(call)
        return Response.json(await billers.get(call.params["biller_id"]))

    return [
        Route(b"POST", "/v1/billers", create_biller, auth=True),
        Route(b"GET", "/v1/billers", list_billers, auth=True),
        Route(b"GET", "/v1/billers/{biller_id}", get_biller, auth=True),
    ]
