"""The OpenAPI paths of bulk registration (``POST /v1/bills/batch`` and its result file), merged
into the document of :mod:`gateway.protocols.api.openapi`."""

from __future__ import annotations

from typing import Any

from gateway.mappers.bills_csv import COLUMNS, RESULT_COLUMNS
from gateway.protocols.api.params import PATH_PARAMS, path_param

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_EXAMPLE = (
    ",".join(COLUMNS[:10]) + "\r\n"
    "INV-2026-000123,5400,2026-12-15,cvs;payeasy,C0001,山田 太郎,ﾔﾏﾀﾞ ﾀﾛｳ,"
    "taro@example.jp,09012345678,12月分 利用料\r\n"
)

BATCH_SUMMARY = {
    "type": "object",
    "required": ["batch_id", "rows", "created", "existing", "result_url"],
    "properties": {
        "batch_id": PATH_PARAMS["batch_id"].schema(),
        "rows": {"type": "integer", "minimum": 1, "description": "bill rows in the file"},
        "created": {"type": "integer", "minimum": 0, "description": "bills this file created"},
        "existing": {
            "type": "integer",
            "minimum": 0,
            "description": "rows whose bill_no existed with identical fields (not changed)",
        },
        "result_url": {"type": "string", "format": "uri"},
    },
}


def _problems(*codes: int) -> dict[str, Any]:
    return {str(code): _PROBLEM for code in (401, 403, 404, 429, 500, *codes)}


def bulk_paths() -> dict[str, Any]:
    return {
        "/v1/bills/batch": {
            "post": {
                "summary": "Register a CSV file of bills, all or none",
                "description": "UTF-8 (with or without BOM) or Shift_JIS (CP932); a charset "
                "parameter is obeyed, otherwise valid UTF-8 wins. Header row, then one bill per "
                f"row; columns {', '.join(COLUMNS)} (the first four required). At most 100,000 "
                "rows. With any bad row nothing is stored and 422 names every row and field "
                "(`row 12: amount`; the header is row 1).",
                "operationId": "createBillBatch",
                "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
                "requestBody": {
                    "required": True,
                    "content": {"text/csv": {"schema": {"type": "string"}, "example": _EXAMPLE}},
                },
                "responses": {
                    "201": {
                        "description": "Stored: every bill of the file, in one transaction",
                        "content": {"application/json": {"schema": BATCH_SUMMARY}},
                    },
                    **_problems(400, 409, 413, 415, 422),
                },
            },
        },
        "/v1/bills/batch/{batch_id}/result.csv": {
            "get": {
                "summary": "The identifiers issued for a batch, one row per bill row of its file",
                "description": f"Columns: {', '.join(RESULT_COLUMNS)}. UTF-8 with a BOM, or "
                "Shift_JIS with charset=shift_jis.",
                "operationId": "getBillBatchResult",
                "parameters": [
                    path_param("batch_id"),
                    {
                        "name": "charset",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["utf-8", "shift_jis"]},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The result file",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    **_problems(400),
                },
            },
        },
    }
