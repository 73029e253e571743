"""The OpenAPI 3.1 document served at ``/v1/openapi.json``.

It describes what the server really does; ``tests/test_openapi.py`` runs schemathesis against
the running daemon with it, so a route or a status code that drifts from it fails the tests.
"""

from __future__ import annotations

from typing import Any

from gateway.billing.bills import MAX_EVENTS_PAGE
from gateway.model import EventType
from gateway.protocols.api.openapi_bulk import bulk_paths
from gateway.protocols.api.openapi_parts import DATE, PROBLEM, TIMESTAMP, _json, _op, _query
from gateway.protocols.api.openapi_settlement import SETTLEMENT_SCHEMAS, settlement_paths
from gateway.protocols.api.params import PATH_PARAMS, path_param

BILL_NO_PATTERN = PATH_PARAMS["bill_no"].schema()["pattern"]
PAGE_TOKEN = path_param("token")
PDF_RESPONSE = {
    "description": "The e-receipt (one A5 page)",
    "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
}


def _html(description: str) -> dict[str, Any]:
    """A customer-facing answer: an HTML page (or problem+json for a path the router does not
    route, such as an empty token)."""
    problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
    return {
        "description": description,
        "content": {
            "text/html": {"schema": {"type": "string"}},
            "application/problem+json": problem,
        },
    }


SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    },
    "Customer": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "customer_no": {"type": "string", "pattern": BILL_NO_PATTERN},
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "kana": {"type": "string", "minLength": 1, "maxLength": 100},
            "email": {"type": "string", "maxLength": 254, "format": "email"},
            "phone": {"type": "string", "pattern": r"^0[0-9]{9,10}$"},
        },
    },
    "Tax": {
        "type": "object",
        "additionalProperties": False,
        "required": ["taxable"],
        "properties": {
            "taxable": {"type": "boolean"},
            "tax_amount": {"type": "integer", "minimum": 0},
        },
    },
    "BillCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["bill_no", "amount", "due_date", "channels"],
        "properties": {
            "bill_no": {"type": "string", "pattern": BILL_NO_PATTERN},
            "amount": {
                "type": "integer",
                "minimum": 1,
                "maximum": 9_999_999_999,
                "description": "yen; at most the CVS ceiling (300,000) with cvs",
            },
            "due_date": DATE,
            "channels": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "string", "enum": ["cvs", "payeasy", "transfer"]},
            },
            "customer": {"$ref": "#/components/schemas/Customer"},
            "tax": {"$ref": "#/components/schemas/Tax"},
            "description": {"type": "string", "minLength": 1, "maxLength": 200},
        },
    },
    "Reissue": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "amount": {"type": "integer", "minimum": 1, "maximum": 9_999_999_999},
            "due_date": DATE,
        },
    },
    "Cancel": {"type": "object", "additionalProperties": False, "properties": {}},
    "Bill": {
        "type": "object",
        "required": [
            "bill_no",
            "status",
            "version",
            "amount",
            "due_date",
            "reissue",
            "channels",
            "double_paid",
            "late",
            "customer",
            "tax",
            "page_url",
            "created_at",
            "updated_at",
        ],
        "properties": {
            "bill_no": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["open", "paid", "confirmed", "expired", "cancelled"],
            },
            "version": {"type": "integer", "minimum": 1},
            "amount": {"type": "integer"},
            "due_date": {"type": ["string", "null"], "format": "date"},
            "reissue": {"type": "integer", "minimum": 0, "maximum": 9},
            "channels": {"type": "array", "items": {"type": "string"}},
            "double_paid": {"type": "boolean"},
            "late": {"type": "boolean"},
            "customer": {"type": "object"},
            "tax": {"type": "object"},
            "description": {"type": ["string", "null"]},
            "cvs": {
                "type": "object",
                "required": ["barcode", "stamp", "human_readable"],
                "properties": {
                    "barcode": {"type": "string", "pattern": r"^91[0-9]{42}$"},
                    "stamp": {"type": "boolean"},
                    "human_readable": {"type": "string"},
                },
            },
            "payeasy": {
                "type": "object",
                "required": ["institution_code", "customer_number", "confirmation_number"],
                "properties": {
                    "institution_code": {"type": "string", "pattern": r"^[0-9]{5}$"},
                    "customer_number": {"type": "string", "pattern": r"^[0-9]{1,20}$"},
                    "confirmation_number": {"type": "string", "pattern": r"^[0-9]{4,6}$"},
                },
            },
            "page_url": {"type": "string", "format": "uri"},
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
        },
    },
    "BillPage": {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Bill"}},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "Payment": {
        "type": "object",
        "required": [
            "payment_id",
            "bill_no",
            "channel",
            "status",
            "amount",
            "paid_at",
            "confirmed_at",
            "voided_at",
            "transfer_date",
            "late",
        ],
        "properties": {
            "payment_id": {"type": "string"},
            "bill_no": {"type": ["string", "null"]},
            "channel": {"type": "string", "enum": ["cvs", "payeasy", "transfer"]},
            "status": {"type": "string", "enum": ["pending", "confirmed", "voided"]},
            "amount": {"type": "integer"},
            "paid_at": TIMESTAMP,
            "confirmed_at": {"type": ["string", "null"], "format": "date-time"},
            "voided_at": {"type": ["string", "null"], "format": "date-time"},
            "transfer_date": {"type": ["string", "null"], "format": "date"},
            "late": {"type": "boolean"},
            "store": {
                "type": "object",
                "required": ["chain", "store_code"],
                "properties": {"chain": {"type": "string"}, "store_code": {"type": "string"}},
            },
            "bank": {
                "type": "object",
                "required": ["bank_code"],
                "properties": {
                    "bank_code": {"type": "string"},
                    "channel": {"type": "string", "enum": ["atm", "internet", "mobile"]},
                },
            },
        },
    },
    "PaymentList": {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Payment"}},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "RefundCase": {
        "type": "object",
        "required": [
            "case_id",
            "bill_no",
            "payment_id",
            "reason",
            "amount",
            "status",
            "opened_at",
            "resolution",
            "note",
        ],
        "properties": {
            "case_id": {"type": "string"},
            "bill_no": {"type": ["string", "null"]},
            "payment_id": {"type": "string"},
            "reason": {
                "type": "string",
                "enum": ["double_payment", "paid_after_cancel", "amount_mismatch", "unknown_bill"],
            },
            "amount": {"type": "integer"},
            "status": {"type": "string", "enum": ["open", "resolved"]},
            "opened_at": TIMESTAMP,
            "resolution": {"type": ["string", "null"]},
            "note": {"type": ["string", "null"]},
        },
    },
    "RefundCaseList": {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/RefundCase"}},
        },
    },
    "Resolve": {
        "type": "object",
        "additionalProperties": False,
        "required": ["resolution"],
        "properties": {
            "resolution": {"type": "string", "enum": ["refunded", "applied_to_bill", "no_refund"]},
            "note": {"type": "string", "minLength": 1, "maxLength": 500},
        },
    },
    "MandatePut": {
        "type": "object",
        "additionalProperties": False,
        "required": ["bank_code", "branch_code", "account_type", "account_number", "holder_kana"],
        "properties": {
            "bank_code": {"type": "string", "pattern": r"^\d{4}$"},
            "branch_code": {"type": "string", "pattern": r"^\d{3}$"},
            "account_type": {"type": "string", "enum": ["1", "2", "9"]},
            "account_number": {"type": "string", "pattern": r"^\d{1,7}$"},
            "holder_kana": {
                "type": "string",
                "minLength": 1,
                "maxLength": 60,
                "description": "katakana (full- or half-width), converted to Zengin half-width",
            },
        },
    },
    "Mandate": {
        "type": "object",
        "required": [
            "customer_no",
            "bank_code",
            "branch_code",
            "account_type",
            "account_number",
            "holder_kana",
            "status",
            "version",
        ],
        "properties": {
            "customer_no": {"type": "string"},
            "bank_code": {"type": "string"},
            "bank_name": {"type": "string"},
            "branch_code": {"type": "string"},
            "branch_name": {"type": "string"},
            "account_type": {"type": "string"},
            "account_type_name": {"type": "string"},
            "account_number": {"type": "string", "description": "masked but the last 3 digits"},
            "holder_kana": {"type": "string"},
            "status": {"type": "string", "enum": ["active", "suspended", "invalid", "revoked"]},
            "status_reason": {"type": ["string", "null"]},
            "next_new_code": {"type": "string", "enum": ["0", "1", "2"]},
            "version": {"type": "integer", "minimum": 1},
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
        },
    },
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
}


# --- webhooks (docs/webhooks.md) --------------------------------------------------------------

WEBHOOK_EVENT_TYPES = [t.value for t in EventType]
ENDPOINT_ID = PATH_PARAMS["endpoint_id"].schema()
EVENT_ID = PATH_PARAMS["event_id"].schema()
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS.update(
    {
        "WebhookEndpointCreate": {
            "type": "object",
            "additionalProperties": False,
            "required": ["url", "events"],
            "properties": {
                "url": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 2048,
                    "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://\S+$",
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
)


def _webhook_paths(max_page_size: int) -> dict[str, Any]:
    endpoint_id = path_param("endpoint_id")
    endpoint = _json({"$ref": "#/components/schemas/WebhookEndpoint"}, "The endpoint")
    limit = _query("limit", {"type": "integer", "minimum": 1, "maximum": max_page_size})
    cursor = _query("cursor", {"type": "string", "pattern": r"^[0-9]{1,18}$"})

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


def openapi_document(public_url: str, max_page_size: int = 100) -> dict[str, Any]:
    bill_no = path_param("bill_no")
    customer_no = path_param("customer_no")
    mandate = {"$ref": "#/components/schemas/Mandate"}
    bill = {"$ref": "#/components/schemas/Bill"}
    bill_ok = _json(bill, "The bill")
    optional_body = {
        "required": False,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Reissue"}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Collection gateway merchant API",
            "version": "1.0.0",
            "description": "Register bills once; collect them at convenience stores, through "
            "Pay-easy and by account transfer. Errors are application/problem+json.",
        },
        "servers": [{"url": public_url}],
        "security": [{"bearer": []}],
        "paths": {
            "/v1/bills": {
                "post": _op(
                    "Register a bill",
                    {
                        "201": _json(bill, "Created"),
                        "200": _json(bill, "The same bill_no with identical fields: the bill"),
                    },
                    400,
                    409,
                    413,
                    415,
                    422,
                    body={
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/BillCreate"}
                            }
                        },
                    },
                    idempotent=True,
                    op_id="createBill",
                ),
                "get": _op(
                    "List bills, oldest first, paged",
                    {"200": _json({"$ref": "#/components/schemas/BillPage"}, "A page")},
                    400,
                    params=[
                        _query(
                            "status",
                            {
                                "type": "string",
                                "enum": ["open", "paid", "confirmed", "expired", "cancelled"],
                            },
                        ),
                        _query("updated_since", TIMESTAMP),
                        _query("cursor", {"type": "string", "pattern": r"^[0-9]{1,18}$"}),
                        _query(
                            "limit", {"type": "integer", "minimum": 1, "maximum": max_page_size}
                        ),
                    ],
                    op_id="listBills",
                ),
            },
            "/v1/bills/{bill_no}": {
                "get": _op("Read a bill", {"200": bill_ok}, params=[bill_no], op_id="getBill"),
            },
            "/v1/bills/{bill_no}/cancel": {
                "post": _op(
                    "Cancel an unpaid bill",
                    {"200": bill_ok},
                    400,
                    409,
                    413,
                    415,
                    422,
                    params=[bill_no],
                    idempotent=True,
                    op_id="cancelBill",
                    body={
                        "required": False,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Cancel"}}
                        },
                    },
                ),
            },
            "/v1/bills/{bill_no}/reissue": {
                "post": _op(
                    "Issue a new slip (reissue digit + 1) with a new amount or due date",
                    {"200": bill_ok},
                    400,
                    409,
                    413,
                    415,
                    422,
                    params=[bill_no],
                    idempotent=True,
                    body=optional_body,
                    op_id="reissueBill",
                ),
            },
            "/v1/bills/{bill_no}/payments": {
                "get": _op(
                    "Payments of a bill",
                    {
                        "200": _json(
                            {"$ref": "#/components/schemas/PaymentList"},
                            "Every payment of the bill",
                        )
                    },
                    params=[bill_no],
                    op_id="billPayments",
                ),
            },
            "/v1/payments": {
                "get": _op(
                    "Payments, oldest first, paged",
                    {"200": _json({"$ref": "#/components/schemas/PaymentList"}, "A page")},
                    400,
                    params=[
                        _query("since", TIMESTAMP),
                        _query(
                            "channel", {"type": "string", "enum": ["cvs", "payeasy", "transfer"]}
                        ),
                        _query(
                            "status", {"type": "string", "enum": ["pending", "confirmed", "voided"]}
                        ),
                        _query(
                            "cursor",
                            {"type": "string", "pattern": r"^[0-9]{1,20}-pay_[0-9a-f]{1,40}$"},
                        ),
                        _query(
                            "limit", {"type": "integer", "minimum": 1, "maximum": max_page_size}
                        ),
                    ],
                    op_id="listPayments",
                ),
            },
            "/v1/refund-cases": {
                "get": _op(
                    "Refund cases, oldest first",
                    {"200": _json({"$ref": "#/components/schemas/RefundCaseList"}, "Cases")},
                    400,
                    params=[
                        _query("status", {"type": "string", "enum": ["open", "resolved"]}),
                        _query(
                            "limit", {"type": "integer", "minimum": 1, "maximum": max_page_size}
                        ),
                    ],
                    op_id="listRefundCases",
                ),
            },
            "/v1/refund-cases/{case_id}/resolve": {
                "post": _op(
                    "Resolve a refund case",
                    {"200": _json({"$ref": "#/components/schemas/RefundCase"}, "The case")},
                    400,
                    409,
                    413,
                    415,
                    422,
                    params=[path_param("case_id")],
                    idempotent=True,
                    op_id="resolveRefundCase",
                    body={
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Resolve"}}
                        },
                    },
                ),
            },
            "/v1/mandates/{customer_no}": {
                "put": _op(
                    "Register or change a customer's account-transfer mandate",
                    {
                        "201": _json(mandate, "Registered"),
                        "200": _json(mandate, "Changed, or unchanged when identical"),
                    },
                    400,
                    413,
                    415,
                    422,
                    params=[customer_no],
                    body={
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/MandatePut"}
                            }
                        },
                    },
                    op_id="putMandate",
                ),
                "get": _op(
                    "Read a mandate (account number masked)",
                    {"200": _json(mandate, "The mandate")},
                    params=[customer_no],
                    op_id="getMandate",
                ),
                "delete": _op(
                    "Revoke a mandate",
                    {"200": _json(mandate, "The revoked mandate")},
                    params=[customer_no],
                    op_id="revokeMandate",
                ),
            },
            "/v1/events": {
                "get": _op(
                    "Events in seq order after a seq",
                    {"200": _json({"$ref": "#/components/schemas/EventPage"}, "A page")},
                    400,
                    params=[
                        _query("after", {"type": "integer", "minimum": 0, "maximum": 2**62}),
                        _query(
                            "limit", {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS_PAGE}
                        ),
                    ],
                    op_id="listEvents",
                ),
            },
            **_webhook_paths(max_page_size),
            **bulk_paths(),
            **settlement_paths(max_page_size),
            # The customers' payment page and e-receipt (docs/api.md): no authentication.
            "/p/{token}": {
                "get": {
                    "summary": "The customer's payment page (HTML)",
                    "operationId": "paymentPage",
                    "security": [],
                    "parameters": [PAGE_TOKEN],
                    "responses": {
                        "200": _html("The page"),
                        "404": _html("Unknown token"),
                        "410": _html("Past the retention period"),
                        "500": PROBLEM,
                    },
                },
            },
            "/p/{token}/receipt.pdf": {
                "get": {
                    "summary": "The customer's e-receipt of a confirmed bill",
                    "operationId": "customerReceipt",
                    "security": [],
                    "parameters": [PAGE_TOKEN],
                    "responses": {
                        "200": PDF_RESPONSE,
                        "404": _html("Unknown token"),
                        "409": _html("The bill is not confirmed"),
                        "410": _html("Past the retention period"),
                        "500": PROBLEM,
                    },
                },
            },
            "/v1/bills/{bill_no}/receipt.pdf": {
                "get": _op(
                    "The e-receipt of a confirmed bill",
                    {"200": PDF_RESPONSE},
                    409,
                    params=[bill_no],
                    op_id="billReceipt",
                ),
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "parameters": {
                "IdempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "pattern": r"^[!-~]([ -~]{0,253}[!-~])?$"},
                },
            },
            "responses": {
                "Problem": {
                    "description": "An error (RFC 9457)",
                    "content": {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    },
                },
            },
            "schemas": {**SCHEMAS, **SETTLEMENT_SCHEMAS},
        },
    }
