"""The OpenAPI schemas and paths of the support desk and of the operator's changes to a biller
(admin keys only; a biller's key gets 403), merged into the document of
:mod:`gateway.protocols.api.openapi` (``/v1/billers/{biller_id}`` gains its ``patch``)."""

from __future__ import annotations

from typing import Any

from gateway.billing.billers import KANA, NAME_MAX, REASON_MAX
from gateway.billing.payments import NOTE_MAX, RESOLUTIONS
from gateway.billing.support import Q_MAX
from gateway.model import Channel, RefundStatus
from gateway.protocols.api.openapi_parts import TIMESTAMP, _json, _op, _query
from gateway.protocols.api.params import PATH_PARAMS, path_param

ANY_OBJECT: dict[str, Any] = {"type": "object"}
NULLABLE_STRING = {"type": ["string", "null"]}

SUPPORT_SCHEMAS: dict[str, Any] = {
    "BillerUpdate": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
            "kana": {"type": "string", "pattern": f"^{KANA}$"},
            "channels": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "string", "enum": [c.value for c in Channel]},
                "description": "each enabled in the gateway's configuration",
            },
            "chain_rules": {"$ref": "#/components/schemas/ChainRulesChange"},
            "fallback": {"$ref": "#/components/schemas/FallbackChange"},
            "notices": {"$ref": "#/components/schemas/NoticeSettingsChange"},
        },
    },
    "Reason": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "maxLength": REASON_MAX}},
    },
    "OperatorRefundCase": {
        "type": "object",
        "required": ["biller_id", "case_id", "payment_id", "status", "amount"],
        "properties": {
            "biller_id": NULLABLE_STRING,
            "case_id": {"type": "string"},
            "bill_no": NULLABLE_STRING,
            "payment_id": {"type": "string"},
            "reason": {"type": "string"},
            "amount": {"type": "integer"},
            "status": {"type": "string", "enum": [s.value for s in RefundStatus]},
            "opened_at": TIMESTAMP,
            "resolution": NULLABLE_STRING,
            "note": NULLABLE_STRING,
        },
    },
    "AuditLine": {
        "type": "object",
        "required": ["id", "at", "actor", "action", "target", "biller_id", "before", "after"],
        "properties": {
            "id": {"type": "integer"},
            "at": TIMESTAMP,
            "actor": {"type": "string", "description": "key:<key_id> or cli:<unix user>"},
            "action": {"type": "string"},
            "target": {"type": "string"},
            "biller_id": NULLABLE_STRING,
            "before": {"type": ["object", "null"]},
            "after": {"type": ["object", "null"]},
        },
    },
}


def _page(item: dict[str, Any], description: str) -> dict[str, Any]:
    return _json(
        {
            "type": "object",
            "required": ["data", "next_cursor"],
            "properties": {
                "data": {"type": "array", "items": item},
                "next_cursor": NULLABLE_STRING,
            },
        },
        description,
    )


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: str, required: bool) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(schema)}}}


def support_paths(max_page_size: int) -> dict[str, Any]:
    limit = _query("limit", {"type": "integer", "minimum": 1, "maximum": max_page_size})
    biller_filter = _query("biller_id", PATH_PARAMS["biller_id"].schema())
    cursor = _query("cursor", {"type": "string", "minLength": 1, "maxLength": 64})
    biller = _json(_ref("Biller"), "The biller")
    found = _json(
        {
            "type": "object",
            "required": ["q", "data"],
            "properties": {
                "q": {"type": "string"},
                "data": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["biller_id", "matched", "bill"],
                        "properties": {
                            "biller_id": {"type": "string"},
                            "matched": {"type": "array", "items": {"type": "string"}},
                            "bill": ANY_OBJECT,
                        },
                    },
                },
            },
        },
        "The bills found, newest first",
    )
    story_keys = [
        "biller_id",
        "bill",
        "purged",
        "slips",
        "payments",
        "events",
        "webhook_deliveries",
        "refund_cases",
        "transfer_requests",
    ]
    story = _json(
        {
            "type": "object",
            "required": story_keys,
            "properties": {
                **{k: {"type": "array", "items": ANY_OBJECT} for k in story_keys},
                "biller_id": {"type": "string"},
                "bill": ANY_OBJECT,
                "purged": {"type": "boolean"},
                "refund_cases": {"type": "array", "items": _ref("OperatorRefundCase")},
            },
        },
        "The bill's story",
    )
    resolve_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["resolution"],
                    "properties": {
                        "resolution": {"type": "string", "enum": list(RESOLUTIONS)},
                        "note": {"type": "string", "maxLength": NOTE_MAX},
                    },
                }
            }
        },
    }
    return {
        "/v1/support/bills": {
            "get": _op(
                "Find bills of every biller by an identifier (operator)",
                {"200": found},
                400,
                params=[
                    {
                        "name": "q",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "pattern": f"^[!-~]{{1,{Q_MAX}}}$"},
                        "description": "bill number, customer number, barcode (44 digits),"
                        " bill key (27), お客様番号, payment id, a payment's store or bank",
                    },
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 50}),
                ],
                op_id="supportFindBills",
            ),
        },
        "/v1/support/bills/{biller_id}/{bill_no}": {
            "get": _op(
                "A bill's whole story (operator)",
                {"200": story},
                params=[path_param("biller_id"), path_param("bill_no")],
                op_id="supportBillStory",
            ),
        },
        "/v1/support/refund-cases": {
            "get": _op(
                "Refund cases of every biller, oldest first (operator)",
                {"200": _page(_ref("OperatorRefundCase"), "A page")},
                400,
                params=[
                    biller_filter,
                    _query("status", {"type": "string", "enum": [s.value for s in RefundStatus]}),
                    cursor,
                    limit,
                ],
                op_id="supportListRefundCases",
            ),
        },
        "/v1/support/refund-cases/{case_id}/resolve": {
            "post": _op(
                "Resolve a refund case of any biller (operator; audited)",
                {"200": _json(_ref("OperatorRefundCase"), "The case")},
                400,
                409,
                413,
                415,
                422,
                body=resolve_body,
                params=[path_param("case_id")],
                op_id="supportResolveRefundCase",
            ),
        },
        "/v1/support/audit": {
            "get": _op(
                "The audit log of operator actions, newest first (operator)",
                {"200": _page(_ref("AuditLine"), "A page")},
                400,
                params=[
                    biller_filter,
                    _query("target", {"type": "string", "maxLength": 120}),
                    _query("action", {"type": "string", "maxLength": 40}),
                    cursor,
                    limit,
                ],
                op_id="supportAudit",
            ),
        },
        "/v1/support/keys": {
            "get": _op(
                "The API keys (never a key nor its hash; operator)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["keys"],
                            "properties": {"keys": {"type": "array", "items": ANY_OBJECT}},
                        },
                        "The keys",
                    )
                },
                400,
                params=[biller_filter],
                op_id="supportKeys",
            ),
        },
        "/v1/billers/{biller_id}": {
            "patch": _op(
                "Change a biller's name, kana, channels, chain rules, fallback or notices"
                " (operator; audited)",
                {"200": biller},
                400,
                413,
                415,
                422,
                body=_body("BillerUpdate", True),
                params=[path_param("biller_id")],
                op_id="updateBiller",
            ),
        },
        "/v1/billers/{biller_id}/suspend": {
            "post": _op(
                "Suspend a biller: its keys get 403, no bill of it is created; payments of its"
                " bills still land (operator; audited)",
                {"200": biller},
                400,
                413,
                415,
                422,
                body=_body("Reason", False),
                params=[path_param("biller_id")],
                op_id="suspendBiller",
            ),
        },
        "/v1/billers/{biller_id}/resume": {
            "post": _op(
                "Resume a suspended biller (operator; audited)",
                {"200": biller},
                400,
                413,
                415,
                422,
                body=_body("Reason", False),
                params=[path_param("biller_id")],
                op_id="resumeBiller",
            ),
        },
    }
