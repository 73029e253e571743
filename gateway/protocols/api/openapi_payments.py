"""The OpenAPI schemas and paths of payments and refund cases, merged into the document of
:mod:`gateway.protocols.api.openapi`."""

from __future__ import annotations

from typing import Any

from gateway.billing.payments import NOTE_MAX, RESOLUTIONS
from gateway.protocols.api.openapi_parts import TIMESTAMP, _json, _op, _query
from gateway.protocols.api.params import path_param

PAYMENT_SCHEMAS: dict[str, Any] = {
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
            "agency": {
                "type": "string",
                "description": "cvs: the agency ([[cvs.agencies]] id) whose link, inbox or CSV"
                " pull brought the payment, and whose 確報 and remittance it belongs to",
            },
            "chain_accepted": {
                "type": "boolean",
                "description": "cvs: false when the chain that took the payment is not one its"
                " biller accepts (its chain rules); the payment still counts and pays its bill",
            },
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
            "resolution": {"type": "string", "enum": list(RESOLUTIONS)},
            "note": {"type": "string", "minLength": 1, "maxLength": NOTE_MAX},
        },
    },
}


def payment_paths(max_page_size: int) -> dict[str, Any]:
    return {
        "/v1/payments": {
            "get": _op(
                "Payments, oldest first, paged",
                {"200": _json({"$ref": "#/components/schemas/PaymentList"}, "A page")},
                400,
                params=[
                    _query("since", TIMESTAMP),
                    _query("channel", {"type": "string", "enum": ["cvs", "payeasy", "transfer"]}),
                    _query(
                        "status", {"type": "string", "enum": ["pending", "confirmed", "voided"]}
                    ),
                    _query(
                        "cursor",
                        {"type": "string", "pattern": r"^[0-9]{1,20}-pay_[0-9a-f]{1,40}$"},
                    ),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": max_page_size}),
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
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": max_page_size}),
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
    }
