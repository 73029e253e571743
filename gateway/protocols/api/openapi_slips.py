"""The OpenAPI paths of printed slips (``GET /v1/bills/batch/{batch_id}/slips.pdf`` and
``GET /v1/bills/slips.pdf``), merged into the document of :mod:`gateway.protocols.api.openapi`."""

from __future__ import annotations

from typing import Any

from gateway.billing.bills import CURSOR
from gateway.protocols.api.openapi_parts import DATE, _op, _query
from gateway.protocols.api.params import PATH_PARAMS, path_param
from gateway.protocols.api.slip_routes import STATUSES
from gateway.render.slips import MAX_SLIPS, SLIPS_PER_PAGE

_PDF = {
    "description": f"The slips, {SLIPS_PER_PAGE} to an A4 page; a Link header (rel=next) names"
    " the next file of the set when it has more",
    "headers": {
        "Link": {
            "description": '<…?cursor=…>; rel="next": the next file of the same set',
            "schema": {"type": "string"},
        }
    },
    "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
}
_PAGING = [
    _query("cursor", {"type": "string", "pattern": f"^{CURSOR}$"}),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_SLIPS}),
]
_PRINTED = (
    "Only bills whose slip can still be paid are printed: open, with a barcode or Pay-easy"
    " numbers, not past their due date, with no account-transfer debit in flight. 404 when"
    " there is none."
)


def slip_paths() -> dict[str, Any]:
    return {
        "/v1/bills/batch/{batch_id}/slips.pdf": {
            "get": _op(
                "Printed slips (払込票) of a bulk registration's bills, in its file's row"
                f" order, at most {MAX_SLIPS} to a file. {_PRINTED}",
                {"200": _PDF},
                400,
                params=[path_param("batch_id"), *_PAGING],
                op_id="getBatchSlips",
            ),
        },
        "/v1/bills/slips.pdf": {
            "get": _op(
                "Printed slips (払込票) of the bills a filter names, in the order they were"
                f" registered, at most {MAX_SLIPS} to a file. {_PRINTED} due_to before"
                " due_from is 422.",
                {"200": _PDF},
                400,
                422,
                params=[
                    _query("status", {"type": "string", "enum": list(STATUSES)}),
                    _query("due_from", DATE),
                    _query("due_to", DATE),
                    _query("customer_no", PATH_PARAMS["customer_no"].schema()),
                    *_PAGING,
                ],
                op_id="getBillSlips",
            ),
        },
    }
