"""The OpenAPI paths of the customers' payment page and e-receipt (docs/api.md), merged into
the document of :mod:`gateway.protocols.api.openapi`."""

from __future__ import annotations

from typing import Any

from gateway.protocols.api.openapi_parts import PROBLEM, _op
from gateway.protocols.api.params import path_param

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


def receipt_paths() -> dict[str, Any]:
    bill_no = path_param("bill_no")
    return {
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
    }
