"""The OpenAPI schemas and paths of account-transfer mandates, merged into the document of
:mod:`gateway.protocols.api.openapi`."""

from __future__ import annotations

from typing import Any

from gateway.billing.mandates import ACCOUNT_NUMBER, BANK_CODE, BRANCH_CODE, HOLDER_KANA_MAX
from gateway.protocols.api.openapi_parts import TIMESTAMP, _json, _op
from gateway.protocols.api.params import path_param

MANDATE_SCHEMAS: dict[str, Any] = {
    "MandatePut": {
        "type": "object",
        "additionalProperties": False,
        "required": ["bank_code", "branch_code", "account_type", "account_number", "holder_kana"],
        "properties": {
            "bank_code": {"type": "string", "pattern": f"^{BANK_CODE}$"},
            "branch_code": {"type": "string", "pattern": f"^{BRANCH_CODE}$"},
            "account_type": {"type": "string", "enum": ["1", "2", "9"]},
            "account_number": {"type": "string", "pattern": f"^{ACCOUNT_NUMBER}$"},
            "holder_kana": {
                "type": "string",
                "minLength": 1,
                "maxLength": HOLDER_KANA_MAX,
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
}


def mandate_paths() -> dict[str, Any]:
    customer_no = path_param("customer_no")
    mandate = {"$ref": "#/components/schemas/Mandate"}
    return {
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
                        "application/json": {"schema": {"$ref": "#/components/schemas/MandatePut"}}
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
    }
