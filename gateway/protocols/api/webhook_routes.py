"""The merchant API's webhook routes (spec/merchant-api.md, "Events feed and webhooks"):
endpoints, their delivery log, and redelivering an event. Biller keys only."""

from __future__ import annotations

from typing import Any

from gateway.errors import FieldError
from gateway.protocols.api.access import biller_only, page_limit
from gateway.protocols.api.http import Call, Problem, Response, Route
from gateway.webhooks.api import EVENT_ID, WebhookApi


def webhook_routes(webhooks: WebhookApi, max_page_size: int) -> list[Route]:
    default_limit = min(50, max_page_size)

    async def create_endpoint(call: Call) -> Response:
        principal = biller_only(call, "webhook endpoints")
        body = call.json_body()
        return Response.stored(await webhooks.create(principal, body, call.idempotency()))

    async def list_endpoints(call: Call) -> Response:
        principal = biller_only(call, "webhook endpoints")
        limit = page_limit(call, default_limit, max_page_size)
        return Response.json(await webhooks.list(principal, call.query("cursor"), limit))

    async def get_endpoint(call: Call) -> Response:
        principal = biller_only(call, "webhook endpoints")
        return Response.json(await webhooks.get(principal, call.params["endpoint_id"]))

    async def delete_endpoint(call: Call) -> Response:
        principal = biller_only(call, "webhook endpoints")
        return Response.json(await webhooks.delete(principal, call.params["endpoint_id"]))

    async def list_deliveries(call: Call) -> Response:
        principal = biller_only(call, "webhook endpoints")
        event_id = call.query("event_id")
        if event_id is not None and not EVENT_ID.fullmatch(event_id):
            raise Problem(
                400,
                "The request is malformed",
                "event_id is not an event id",
                [FieldError("event_id", "must be evt_ and 24 hex digits")],
            )
        page = await webhooks.deliveries(
            principal,
            call.params["endpoint_id"],
            cursor=call.query("cursor"),
            event_id=event_id,
            limit=page_limit(call, default_limit, max_page_size),
        )
        return Response.json(page)

    async def redeliver_event(call: Call) -> Response:
        principal = biller_only(call, "webhook endpoints")
        body = call.json_body(required=False)
        stored = await webhooks.redeliver(
            principal, call.params["event_id"], body, call.idempotency()
        )
        return Response.stored(stored)

    routes: list[tuple[bytes, str, Any]] = [
        (b"POST", "/v1/webhook-endpoints", create_endpoint),
        (b"GET", "/v1/webhook-endpoints", list_endpoints),
        (b"GET", "/v1/webhook-endpoints/{endpoint_id}", get_endpoint),
        (b"DELETE", "/v1/webhook-endpoints/{endpoint_id}", delete_endpoint),
        (b"GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries", list_deliveries),
        (b"POST", "/v1/events/{event_id}/redeliver", redeliver_event),
    ]
    return [Route(method, template, handler, True) for method, template, handler in routes]
