"""The OpenAPI paths and schemas of payouts (the operator's: payout accounts, payout files),
merged into the document of :mod:`gateway.protocols.api.openapi`; and the payout fields every
settlement carries (:data:`SETTLEMENT_PAYOUT_PROPERTIES`)."""

from __future__ import annotations

from typing import Any

from gateway.fee_model import PayoutState
from gateway.money.payouts import HOLDER_IN_MAX
from gateway.protocols.api.openapi_parts import DATE, _json, _op, _query
from gateway.protocols.api.params import path_param

ACCOUNT_NUMBER_MASKED = {"type": "string", "description": "masked: ****567"}

SETTLEMENT_PAYOUT_PROPERTIES: dict[str, Any] = {
    "returned_in": {
        "type": "integer",
        "minimum": 0,
        "description": "earlier payouts the bank returned (振込不能), paid again here",
    },
    "payout_state": {"type": "string", "enum": [s.value for s in PayoutState]},
    "payout_transfer": {
        "type": ["object", "null"],
        "description": "the transfer that carries the payout, once it is in a payout file",
        "required": ["transfer_date", "file", "account", "return_code", "return_reason"],
        "properties": {
            "transfer_date": DATE,
            "file": {"type": "string"},
            "account": {
                "type": ["object", "null"],
                "properties": {
                    "bank_code": {"type": "string"},
                    "bank_name": {"type": "string"},
                    "branch_code": {"type": "string"},
                    "branch_name": {"type": "string"},
                    "account_type": {"type": "string"},
                    "account_number": ACCOUNT_NUMBER_MASKED,
                },
            },
            "return_code": {"type": ["string", "null"], "description": "振込不能事由"},
            "return_reason": {"type": ["string", "null"]},
            "carried_into": {
                "type": ["string", "null"],
                "description": "the settlement that took a returned payout again",
            },
        },
    },
}

ACCOUNT = {
    "type": "object",
    "required": ["effective_from", "bank_code", "branch_code", "account_type", "account_number"],
    "properties": {
        "biller_id": {"type": "string"},
        "effective_from": DATE,
        "bank_code": {"type": "string"},
        "bank_name": {"type": "string"},
        "branch_code": {"type": "string"},
        "branch_name": {"type": "string"},
        "account_type": {"type": "string", "enum": ["1", "2", "9"]},
        "account_type_name": {"type": "string"},
        "account_number": ACCOUNT_NUMBER_MASKED,
        "holder_kana": {"type": ["string", "null"], "description": "null once purged"},
        "purged": {"type": "boolean"},
    },
}

ACCOUNT_PUT = {
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
            "maxLength": HOLDER_IN_MAX,
            "description": "受取人名: converted to Zengin half-width kana (at most 30)",
        },
    },
}

PAYOUT_FILE = {
    "type": "object",
    "required": ["file", "transfer_date", "sequence", "records", "total", "status"],
    "properties": {
        "file": {"type": "string"},
        "transfer_date": DATE,
        "sequence": {"type": "integer", "minimum": 1},
        "records": {"type": "integer", "minimum": 1},
        "total": {"type": "integer", "minimum": 1},
        "status": {"type": "string", "enum": ["pending", "written"]},
    },
}

PAYOUT_SCHEMAS: dict[str, Any] = {
    "PayoutAccount": ACCOUNT,
    "PayoutAccountPut": ACCOUNT_PUT,
    "PayoutFile": PAYOUT_FILE,
}


def payout_paths() -> dict[str, Any]:
    biller = path_param("biller_id")
    effective = path_param("effective_from", format="date")
    account = {"$ref": "#/components/schemas/PayoutAccount"}
    payout_file = {"$ref": "#/components/schemas/PayoutFile"}
    request = {
        "type": "object",
        "required": ["transfer_date", "file", "skipped", "written"],
        "properties": {
            "transfer_date": DATE,
            "file": {**payout_file, "type": ["object", "null"]},
            "skipped": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "billers whose settlements waited, and why",
            },
            "written": {"type": "array", "items": payout_file},
        },
    }
    return {
        "/v1/billers/{biller_id}/payout-accounts": {
            "get": _op(
                "A biller's payout account versions, oldest first (operator)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["biller_id", "accounts"],
                            "properties": {
                                "biller_id": {"type": "string"},
                                "accounts": {"type": "array", "items": account},
                            },
                        },
                        "The versions",
                    )
                },
                params=[biller],
                op_id="payoutAccounts",
            ),
        },
        "/v1/billers/{biller_id}/payout-accounts/{effective_from}": {
            "put": _op(
                "Set the payout account in force from a JST date, today or later (operator); a "
                "version a payout file used is 409",
                {"200": _json(account, "Replaced"), "201": _json(account, "Added")},
                400,
                409,
                413,
                415,
                422,
                params=[biller, effective],
                body={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/PayoutAccountPut"}
                        }
                    },
                },
                op_id="putPayoutAccount",
            ),
        },
        "/v1/admin/payouts": {
            "post": _op(
                "Record and write the payout file (総合振込) of a transfer date: what no file "
                "carried yet (operator)",
                {
                    "201": _json(request, "A file was recorded"),
                    "200": _json(request, "Nothing to carry"),
                },
                400,
                413,
                415,
                422,
                body={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["transfer_date"],
                                "properties": {"transfer_date": DATE},
                            }
                        }
                    },
                },
                op_id="requestPayout",
            ),
            "get": _op(
                "The payout files (of one transfer date) (operator)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["data"],
                            "properties": {"data": {"type": "array", "items": payout_file}},
                        },
                        "The files",
                    )
                },
                400,
                params=[_query("date", DATE)],
                op_id="payoutFiles",
            ),
        },
    }
