"""The OpenAPI schemas and paths of the operator's billers (onboard, list, read; admin keys
only), merged into the document of :mod:`gateway.protocols.api.openapi`."""

from __future__ import annotations

from typing import Any

from gateway.billing.billers import (
    AGENCY_ID_MAX,
    CVS_CODE,
    KANA,
    NAME_MAX,
    PAYEASY_INSTITUTION_CODE,
)
from gateway.billing.bills import CURSOR
from gateway.chain_rules import CHAIN_CODE, MAX_CHAINS, MAX_DUE_DAYS
from gateway.model import Channel
from gateway.protocols.api.openapi_parts import TIMESTAMP, _json, _op, _query
from gateway.protocols.api.params import PATH_PARAMS, path_param

BILLER_ID = PATH_PARAMS["biller_id"].schema()
CHANNELS = {
    "type": "array",
    "minItems": 1,
    "uniqueItems": True,
    "items": {"type": "string", "enum": [c.value for c in Channel]},
}

CHAIN = {"type": "string", "pattern": f"^{CHAIN_CODE}$", "description": "a chain code, e.g. 010"}
CHAIN_LIST = {"type": "array", "maxItems": MAX_CHAINS, "uniqueItems": True, "items": CHAIN}
DUE_WINDOWS = {
    "type": "object",
    "maxProperties": MAX_CHAINS,
    "propertyNames": {"pattern": f"^{CHAIN_CODE}$"},
    "additionalProperties": {"type": "integer", "minimum": 1, "maximum": MAX_DUE_DAYS},
    "description": "per chain code, the longest time in days from a slip's issue to its due date",
}

BILLER_SCHEMAS: dict[str, Any] = {
    "ChainRules": {
        "type": "object",
        "description": "the biller's convenience-store chain rules (docs/networks/cvs.md)",
        "required": ["accepted", "max_due_days", "stamp_all"],
        "properties": {
            "accepted": {
                **CHAIN_LIST,
                "type": ["array", "null"],
                "description": "the chains it accepts (null: every chain); a payment at another"
                " is still recorded and flagged chain_accepted=false",
            },
            "max_due_days": DUE_WINDOWS,
            "stamp_all": {
                **CHAIN_LIST,
                "description": "chains that stamp every receipt of the stamp threshold (¥50,000)"
                " or more whatever the tax; the settlement's stamp charge follows them",
            },
        },
    },
    "ChainRulesChange": {
        "type": "object",
        "additionalProperties": False,
        "description": "each part given replaces the biller's; the others stay",
        "properties": {
            "accepted": {
                **CHAIN_LIST,
                "type": ["array", "null"],
                "minItems": 1,
                "description": "null: every chain",
            },
            "max_due_days": {**DUE_WINDOWS, "description": "{}: no window"},
            "stamp_all": {**CHAIN_LIST, "description": "[]: no such chain"},
        },
    },
    "BillerCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["biller_id", "name", "kana", "channels"],
        "properties": {
            "biller_id": BILLER_ID,
            "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
            "kana": {
                "type": "string",
                "pattern": f"^{KANA}$",
                "description": "half-width katakana (no small kana), capitals, digits, space"
                " or ( ) - . /",
            },
            "channels": {
                **CHANNELS,
                "description": "each enabled in the gateway's configuration",
            },
            "payeasy_institution_code": {
                "type": "string",
                "pattern": f"^{PAYEASY_INSTITUTION_CODE}$",
                "description": "its own 収納機関番号 (default: the gateway's)",
            },
            "cvs_agency": {
                "type": "string",
                "minLength": 1,
                "maxLength": AGENCY_ID_MAX,
                "description": "with cvs: an [[cvs.agencies]] id (default: [cvs] default_agency)",
            },
            "cvs_code": {
                "type": "string",
                "pattern": f"^{CVS_CODE}$",
                "description": "with cvs, under an agency that assigns each biller its own code:"
                " that code (required there, refused elsewhere), unique within the agency",
            },
        },
    },
    "Biller": {
        "type": "object",
        "required": [
            "biller_id",
            "code",
            "name",
            "kana",
            "channels",
            "payeasy_institution_code",
            "created_at",
        ],
        "properties": {
            "biller_id": BILLER_ID,
            "code": {
                "type": "string",
                "pattern": "^[0-9]{5}$",
                "description": "the gateway's code of the biller",
            },
            "name": {"type": "string"},
            "kana": {"type": "string"},
            "channels": CHANNELS,
            "payeasy_institution_code": {"type": ["string", "null"]},
            "created_at": TIMESTAMP,
            "suspended_at": {**TIMESTAMP, "type": ["string", "null"]},
            "chain_rules": {"$ref": "#/components/schemas/ChainRules"},
            "fallback": {"$ref": "#/components/schemas/Fallback"},
            "notices": {"$ref": "#/components/schemas/NoticeSettings"},
            "cvs": {
                "type": "object",
                "description": "with cvs: its agency, and what follows the company code in"
                " its barcodes (null: the agency is not configured, or has no code for it)",
                "required": ["agency", "company_code", "prefix"],
                "properties": {
                    "agency": {"type": ["string", "null"]},
                    "company_code": {"type": ["string", "null"]},
                    "prefix": {"type": ["string", "null"]},
                },
            },
        },
    },
}


def biller_paths(max_page_size: int) -> dict[str, Any]:
    biller = _json({"$ref": "#/components/schemas/Biller"}, "The biller")
    page = _json(
        {
            "type": "object",
            "required": ["data", "next_cursor"],
            "properties": {
                "data": {"type": "array", "items": {"$ref": "#/components/schemas/Biller"}},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
        "A page",
    )
    body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BillerCreate"}}},
    }
    return {
        "/v1/billers": {
            "post": _op(
                "Onboard a biller (operator); a biller_id or an agency's code already taken is 409",
                {"201": _json({"$ref": "#/components/schemas/Biller"}, "Created")},
                400,
                409,
                413,
                415,
                422,
                body=body,
                idempotent=True,
                op_id="createBiller",
            ),
            "get": _op(
                "The billers in the order of their codes (operator)",
                {"200": page},
                400,
                params=[
                    _query("cursor", {"type": "string", "pattern": f"^{CURSOR}$"}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": max_page_size}),
                ],
                op_id="listBillers",
            ),
        },
        "/v1/billers/{biller_id}": {
            "get": _op(
                "Read a biller (operator)",
                {"200": biller},
                params=[path_param("biller_id")],
                op_id="getBiller",
            ),
        },
    }
