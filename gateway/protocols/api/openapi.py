"""The OpenAPI 3.1 document served at ``/v1/openapi.json``.

It describes what the server really does; ``tests/test_openapi.py`` runs schemathesis against
the running daemon with it, so a route or a status code that drifts from it fails the tests.
"""

from __future__ import annotations

from typing import Any

from gateway.protocols.api.openapi_billers import BILLER_SCHEMAS, biller_paths
from gateway.protocols.api.openapi_bills import BILL_SCHEMAS, bill_paths
from gateway.protocols.api.openapi_bulk import bulk_paths
from gateway.protocols.api.openapi_mandates import MANDATE_SCHEMAS, mandate_paths
from gateway.protocols.api.openapi_notices import NOTICE_SCHEMAS, notice_paths
from gateway.protocols.api.openapi_pages import receipt_paths
from gateway.protocols.api.openapi_payer import PAYER_SCHEMAS, payer_paths
from gateway.protocols.api.openapi_payments import PAYMENT_SCHEMAS, payment_paths
from gateway.protocols.api.openapi_payouts import PAYOUT_SCHEMAS, payout_paths
from gateway.protocols.api.openapi_recon import recon_paths
from gateway.protocols.api.openapi_settlement import SETTLEMENT_SCHEMAS, settlement_paths
from gateway.protocols.api.openapi_slips import slip_paths
from gateway.protocols.api.openapi_support import SUPPORT_SCHEMAS, support_paths
from gateway.protocols.api.openapi_webhooks import EVENT_SCHEMAS, event_paths, webhook_paths

PROBLEM_SCHEMA: dict[str, Any] = {
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
}


def _merged(*parts: dict[str, Any]) -> dict[str, Any]:
    """The paths of every part; a path two parts describe gets the methods of both."""
    paths: dict[str, Any] = {}
    for part in parts:
        for path, ops in part.items():
            paths[path] = {**paths.get(path, {}), **ops}
    return paths


def openapi_document(public_url: str, max_page_size: int = 100) -> dict[str, Any]:
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
        "paths": _merged(
            bill_paths(max_page_size),
            payment_paths(max_page_size),
            mandate_paths(),
            notice_paths(max_page_size),
            payer_paths(),
            event_paths(),
            webhook_paths(max_page_size),
            bulk_paths(),
            slip_paths(),
            settlement_paths(max_page_size),
            payout_paths(),
            biller_paths(max_page_size),
            receipt_paths(),
            support_paths(max_page_size),
            recon_paths(),
        ),
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
            "schemas": {
                "Problem": PROBLEM_SCHEMA,
                **BILL_SCHEMAS,
                **PAYMENT_SCHEMAS,
                **MANDATE_SCHEMAS,
                **NOTICE_SCHEMAS,
                **PAYER_SCHEMAS,
                **EVENT_SCHEMAS,
                **SETTLEMENT_SCHEMAS,
                **PAYOUT_SCHEMAS,
                **BILLER_SCHEMAS,
                **SUPPORT_SCHEMAS,
            },
        },
    }
