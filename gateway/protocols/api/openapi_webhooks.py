"""The OpenAPI schemas and paths of events and webhooks (docs/webhooks.md), merged into the
document of :mod:`gateway.protocols.api.openapi`."""

from __future__ import annotations

from typing import Any

from gateway.billing.bills import CURSOR, MAX_EVENTS_AFTER, MAX_EVENTS_PAGE
from gateway.model import EventType
from gateway.protocols.api.openapi_parts import TIMESTAMP, _json, _op, _query
from gateway.protocols.api.params import PATH_PARAMS, path_param
from gateway.webhooks.api import URL, URL_MAX

WEBHOOK_EVENT_TYPES = [t.value for t in EventType]
ENDPOINT_ID = PATH_PARAMS["endpoint_id"].schema()
EVENT_ID = PATH_PARAMS["event_id"].schema()
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}

EVENT_SCHEMAS: dict[str, Any] = {
    "Event": {
        "type": "object",
        "required": ["id", "seq", "type", "created_at", "data"],
        "properties": {
            "id": {"type": "string"},
            "seq": {"type": "integer", "minimum": 1},
            "type": {"type": "string"},
            "created_at": TIMESTAMP,
            "data": {"type": "object"},
        },
    },
    "EventPage": {
        "type": "object",
        "required": ["data", "next_after"],
        "properties": {
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
            "next_after": {"type": "integer", "minimum": 0},
        },
    },
    "WebhookEndpointCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["url", "events"],
        "properties": {
            "url": {
                "type": "string",
                "minLength": 1,
                "maxLength": URL_MAX,
                "pattern": f"^{URL}$",
                "description": "https://; http:// only to 127.0.0.1 or localhost "
                "(unless webhooks.allow_http); a literal address must be public "
                "(unless in webhooks.allowed_networks)",
            },
            "events": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "string", "enum": [*WEBHOOK_EVENT_TYPES, "*"]},
                "description": 'event types, or ["*"] for every event',
            },
        },
    },
    "WebhookEndpoint": {
        "type": "object",
        "required": ["id", "url", "events", "status", "created_at", "disabled_at"],
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string"}},
            "status": {"type": "string", "enum": ["enabled", "disabled"]},
            "created_at": TIMESTAMP,
            "disabled_at": NULLABLE_TIMESTAMP,
        },
    },
    "WebhookEndpointCreated": {
        "allOf": [
            {"$ref": "#/components/schemas/WebhookEndpoint"},
            {
                "type": "object",
                "required": ["secret"],
                "properties": {
                    "secret": {
                        "type": "string",
                        "description": "the signing secret, shown only in this answer",
                    }
                },
            },
        ]
    },
    "WebhookEndpointList": {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/WebhookEndpoint"},
            },
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "WebhookAttempt": {
        "type": "object",
        "required": [
            "delivery_id",
            "event_id",
            "event_type",
            "redelivery",
            "attempt",
            "attempted_at",
            "result",
            "status_code",
            "error",
            "duration_ms",
            "next_attempt_at",
        ],
        "properties": {
            "delivery_id": {"type": "string"},
            "event_id": {"type": "string"},
            "event_type": {"type": "string"},
            "redelivery": {"type": "boolean"},
            "attempt": {"type": "integer", "minimum": 1},
            "attempted_at": TIMESTAMP,
            "result": {
                "type": "string",
                "enum": ["in_flight", "success", "retry", "failed", "cancelled", "abandoned"],
            },
            "status_code": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]},
            "duration_ms": {"type": ["integer", "null"], "minimum": 0},
            "next_attempt_at": NULLABLE_TIMESTAMP,
        },
    },
    "WebhookAttemptList": {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookAttempt"}},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "Redeliver": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"endpoint_id": ENDPOINT_ID},
    },
    "Redelivered": {
        "type": "object",
        "required": ["event_id", "type", "deliveries"],
        "properties": {
            "event_id": {"type": "string"},
            "type": {"type": "string"},
            "deliveries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["endpoint_id", "redelivery"],
                    "properties": {
                        "endpoint_id": {"type": "string"},
                        "redelivery": {"type": "integer", "minimum": 1},
                    },
                },
            },
        },
    },
}


def event_paths() -> dict[str, Any]:
    return {
        "/v1/events": {
            "get": _op(
                "Events in seq order after a seq",
                {"200": _json({"$ref": "#/components/schemas/EventPage"}, "A page")},
                400,
                params=[
                    _query("after", {"type": "integer", "minimum": 0, "maximum": MAX_EVENTS_AFTER}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS_PAGE}),
                ],
                op_id="listEvents",
            ),
        },
    }


def webhook_paths(max_page_size: int) -> dict[str, Any]:
    endpoint_id = path_param("endpoint_id")
    endpoint = _json({"$ref": "#/components/schemas/WebhookEndpoint"}, "The endpoint")
    limit = _query("limit", {"type": "integer", "minimum": 1, "maximum": max_page_size})
    cursor = _query("cursor", {"type": "string", "pattern": f"^{CURSOR}$"})

    def body(schema: str, required: bool) -> dict[str, Any]:
        ref = {"$ref": f"#/components/schemas/{schema}"}
        return {"required": required, "content": {"application/json": {"schema": ref}}}

    return {
        "/v1/webhook-endpoints": {
            "post": _op(
                "Register a webhook endpoint; the answer shows its secret, once",
                {
                    "201": _json(
                        {"$ref": "#/components/schemas/WebhookEndpointCreated"}, "Registered"
                    )
                },
                400,
                409,
                413,
                415,
                422,
                body=body("WebhookEndpointCreate", True),
                idempotent=True,
                op_id="createWebhookEndpoint",
            ),
            "get": _op(
                "The biller's webhook endpoints, oldest first (no secrets)",
                {"200": _json({"$ref": "#/components/schemas/WebhookEndpointList"}, "A page")},
                400,
                params=[cursor, limit],
                op_id="listWebhookEndpoints",
            ),
        },
        "/v1/webhook-endpoints/{endpoint_id}": {
            "get": _op(
                "Read a webhook endpoint (no secret)",
                {"200": endpoint},
                params=[endpoint_id],
                op_id="getWebhookEndpoint",
            ),
            "delete": _op(
                "Disable a webhook endpoint; its waiting deliveries are cancelled",
                {"200": endpoint},
                params=[endpoint_id],
                op_id="deleteWebhookEndpoint",
            ),
        },
        "/v1/webhook-endpoints/{endpoint_id}/deliveries": {
            "get": _op(
                "The endpoint's delivery log: every attempt, newest first",
                {"200": _json({"$ref": "#/components/schemas/WebhookAttemptList"}, "A page")},
                400,
                params=[endpoint_id, cursor, _query("event_id", EVENT_ID), limit],
                op_id="listWebhookDeliveries",
            ),
        },
        "/v1/events/{event_id}/redeliver": {
            "post": _op(
                "Send an event again to the biller's endpoints that want it (a new delivery)",
                {"202": _json({"$ref": "#/components/schemas/Redelivered"}, "Queued")},
                400,
                409,
                413,
                415,
                422,
                params=[path_param("event_id")],
                body=body("Redeliver", False),
                idempotent=True,
                op_id="redeliverEvent",
            ),
        },
    }
