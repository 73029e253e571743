"""The OpenAPI schemas and paths of reusable payer numbers (docs/api.md), merged into the
document of :mod:`gateway.protocols.api.openapi`."""

from __future__ import annotations

from typing import Any

from gateway.protocols.api.openapi_parts import TIMESTAMP, _json, _op
from gateway.protocols.api.params import path_param

PAYER_SCHEMAS: dict[str, Any] = {
    "PayerNumberPut": {
        "type": "object",
        "additionalProperties": False,
        "properties": {},
        "description": "nothing to send (the body may be left out)",
    },
    "PayerNumber": {
        "type": "object",
        "required": [
            "customer_no",
            "institution_code",
            "customer_number",
            "confirmation_number",
            "next_bill_no",
            "card_url",
            "created_at",
            "revoked_at",
            "revoked_by",
        ],
        "properties": {
            "customer_no": {"type": "string"},
            "institution_code": {"type": "string", "pattern": r"^[0-9]{5}$"},
            "customer_number": {
                "type": "string",
                "pattern": r"^[0-9]{18}$",
                "description": "the lasting お客様番号 (a bill's has 16 digits)",
            },
            "confirmation_number": {"type": "string", "pattern": r"^[0-9]{4,6}$"},
            "next_bill_no": {
                "type": ["string", "null"],
                "description": "the bill a 照会 with the number answers today: the customer's"
                " oldest open Pay-easy bill (null: none)",
            },
            "card_url": {
                "type": ["string", "null"],
                "format": "uri",
                "description": "the printable card (null: the number is revoked)",
            },
            "created_at": TIMESTAMP,
            "revoked_at": {
                **TIMESTAMP,
                "type": ["string", "null"],
                "description": "when the biller revoked the number (null: live); a revoked number"
                " answers nothing and is never given again",
            },
            "revoked_by": {
                "type": ["string", "null"],
                "description": "who revoked it: key:<the API key's id>",
            },
        },
    },
}

CARD_RESPONSE = {
    "description": "The printable card (one A6 landscape page)",
    "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
}


def payer_paths() -> dict[str, Any]:
    customer_no = path_param("customer_no")
    payer = {"$ref": "#/components/schemas/PayerNumber"}
    return {
        "/v1/customers/{customer_no}/payer-number": {
            "put": _op(
                "Give a customer a lasting Pay-easy お客様番号 (or read the one they have)",
                {
                    "201": _json(payer, "Given"),
                    "200": _json(payer, "The number the customer already has"),
                },
                400,
                413,
                415,
                422,
                params=[customer_no],
                body={
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/PayerNumberPut"}
                        }
                    },
                },
                op_id="putPayerNumber",
            ),
            "get": _op(
                "Read a customer's payer number",
                {"200": _json(payer, "The number")},
                params=[customer_no],
                op_id="getPayerNumber",
            ),
            "delete": _op(
                "Revoke a customer's payer number: it answers nothing from now on, and the next"
                " PUT gives a new one (again: the same revoked number, unchanged)",
                {"200": _json(payer, "The revoked number")},
                params=[customer_no],
                op_id="revokePayerNumber",
            ),
        },
        "/v1/customers/{customer_no}/payer-number/card.pdf": {
            "get": _op(
                "The printable card of a customer's payer number",
                {"200": CARD_RESPONSE},
                params=[customer_no],
                op_id="payerNumberCard",
            ),
        },
    }
