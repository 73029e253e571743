"""The merchant API's notice routes (docs/notices.md): the notices of a biller's bills with
their delivery states, and a customer's opt-out. Biller keys only."""

from __future__ import annotations

from typing import Any

from gateway.billing.notice_api import NoticeApi
from gateway.protocols.api.access import biller_only, page_limit
from gateway.protocols.api.http import Call, Response, Route


def notice_routes(notices: NoticeApi, max_page_size: int) -> list[Route]:
    default_limit = min(50, max_page_size)

    async def list_notices(call: Call) -> Response:
        principal = biller_only(call, "notices")
        page = await notices.list(
            principal,
            bill_no=call.query("bill_no"),
            status=call.query("status"),
            cursor=call.query("cursor"),
            limit=page_limit(call, default_limit, max_page_size),
        )
        return Response.json(page)

    async def get_optout(call: Call) -> Response:
        principal = biller_only(call, "customers")
        return Response.json(await notices.get_optout(principal, call.params["customer_no"]))

    async def put_optout(call: Call) -> Response:
        principal = biller_only(call, "customers")
        body = call.json_body()
        return Response.json(await notices.put_optout(principal, call.params["customer_no"], body))

    routes: list[tuple[bytes, str, Any]] = [
        (b"GET", "/v1/notices", list_notices),
        (b"GET", "/v1/customers/{customer_no}/opt-out", get_optout),
        (b"PUT", "/v1/customers/{customer_no}/opt-out", put_optout),
    ]
    return [Route(method, template, handler, True) for method, template, handler in routes]
