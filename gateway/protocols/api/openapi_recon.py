"""The OpenAPI path of the reconciliation (gateway.protocols.api.recon_routes), merged into the
document of :mod:`gateway.protocols.api.openapi`."""

from __future__ import annotations

from typing import Any

from gateway.model import Channel
from gateway.protocols.api.openapi_parts import DATE, TIMESTAMP, _json, _op, _query
from gateway.protocols.api.params import PATH_PARAMS, path_param
from gateway.recon_model import NOTE_MAX, ItemKind, ItemStatus, RemittanceState

YEN = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
NETWORK = {"type": "string", "enum": [c.value for c in Channel]}
ITEM = {
    "type": "object",
    "required": ["item_id", "kind", "transfer_date", "expected", "received", "amount", "status"],
    "properties": {
        "item_id": {"type": "string"},
        "kind": {"type": "string", "enum": [k.value for k in ItemKind]},
        "network": {"type": ["string", "null"]},
        "agency": {"type": ["string", "null"]},
        "transfer_date": DATE,
        "expected": YEN,
        "received": YEN,
        "amount": {**YEN, "description": "received − expected"},
        "deposit_id": {"type": ["integer", "null"]},
        "status": {"type": "string", "enum": [s.value for s in ItemStatus]},
        "opened_at": TIMESTAMP,
        "resolved_at": {"type": ["string", "null"], "format": "date-time"},
        "resolution": {"type": ["string", "null"]},
    },
}
REMITTANCE = {
    "type": "object",
    "required": ["network", "agency", "transfer_date", "expected", "received", "state"],
    "properties": {
        "network": NETWORK,
        "agency": {"type": "string"},
        "transfer_date": DATE,
        "count": COUNT,
        "gross": YEN,
        "fees": YEN,
        "expected": YEN,
        "received": YEN,
        "difference": YEN,
        "state": {"type": "string", "enum": [s.value for s in RemittanceState]},
        "received_on": {
            "anyOf": [DATE, {"type": "null"}],
            "description": "a late remittance: the day its deposits came",
        },
    },
}
PARTY = {
    "type": ["object", "null"],
    "properties": {"network": NETWORK, "agency": {"type": "string"}},
}
MATCHED = {
    "type": ["object", "null"],
    "description": "the remittance the deposit paid (an earlier transfer_date: it came late)",
    "properties": {"network": NETWORK, "agency": {"type": "string"}, "transfer_date": DATE},
}
DEPOSIT = {
    "type": "object",
    "required": ["deposit_id", "value_date", "amount", "remitter_name"],
    "properties": {
        "deposit_id": {"type": ["integer", "null"]},
        "value_date": DATE,
        "amount": YEN,
        "remitter_name": {"type": "string"},
        "reference": {"type": "string"},
        "remitter": PARTY,
        "matched": MATCHED,
    },
}
DAY = {
    "type": "object",
    "required": ["date", "statements", "remittances", "deposits", "items", "matched"],
    "properties": {
        "date": DATE,
        "statements": {"type": "array", "items": {"type": "object"}},
        "remittances": {"type": "array", "items": REMITTANCE},
        "deposits": {"type": "array", "items": DEPOSIT},
        "items": {"type": "array", "items": ITEM},
        "matched": {"type": "boolean"},
    },
}
OPEN = {
    "type": "object",
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": ITEM}},
}


RESOLVE = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["note"],
                "properties": {
                    "note": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": NOTE_MAX,
                        "description": "What was done (a correction booked, a refund asked of "
                        "the agency…); kept as the item's resolution and in the audit log",
                    },
                },
            }
        }
    },
}


def recon_paths() -> dict[str, Any]:
    day = _query("date", PATH_PARAMS["effective_from"].schema(format="date"))
    return {
        "/v1/admin/reconciliation": {
            "get": _op(
                "The networks' remittances reconciled with the bank statement (operator): a "
                "transfer date with `date`, else every open item",
                {"200": _json({"anyOf": [DAY, OPEN]}, "The day, or the open items")},
                400,
                422,
                params=[day],
                op_id="reconciliation",
            ),
        },
        "/v1/admin/reconciliation/items/{item_id}/resolve": {
            "post": _op(
                "Resolve an open reconciliation item, saying what was done (operator; audited): "
                "404 for an unknown item, 409 for one already resolved (by finance, or matched "
                "by the money), each naming item_id",
                {"200": _json(ITEM, "The item, resolved")},
                400,
                409,
                413,
                415,
                422,
                body=RESOLVE,
                params=[path_param("item_id")],
                op_id="resolveReconciliationItem",
            ),
        },
    }
