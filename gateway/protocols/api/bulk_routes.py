"""The merchant API's bulk registration routes (spec/merchant-api.md, "Bulk registration"):
``POST /v1/bills/batch`` (a CSV file of bills) and its result file. Biller keys only."""

from __future__ import annotations

import re

from gateway.billing.bulk import BATCH_ID, BulkService
from gateway.errors import FieldError
from gateway.mappers.bills_csv import SHIFT_JIS, UTF8
from gateway.protocols.api.access import biller_only
from gateway.protocols.api.http import Call, Problem, Response, Route

_RESULT_CHARSETS = {"utf-8": UTF8, "shift_jis": SHIFT_JIS}  # ?charset= of the result file


def csv_charset(call: Call) -> str | None:
    """The ``charset`` of a ``text/csv`` body (None: not named); 415 for another media type."""
    media, _, params = (call.request.getHeader("content-type") or "").partition(";")
    if media.strip().lower() != "text/csv":
        raise Problem(
            415,
            "Unsupported media type",
            "send the file as Content-Type: text/csv (UTF-8 or Shift_JIS)",
            [FieldError("Content-Type", "must be text/csv")],
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"')
    return None


def bulk_routes(bulk: BulkService) -> list[Route]:
    async def create_batch(call: Call) -> Response:
        principal = biller_only(call, "bills")
        charset = csv_charset(call)
        assert principal.biller_id is not None
        stored = await bulk.register(
            principal.biller_id, call.body, charset, call.idempotency(), "api"
        )
        return Response.stored(stored)

    async def batch_result(call: Call) -> Response:
        principal = biller_only(call, "bills")
        assert principal.biller_id is not None
        batch_id = call.params["batch_id"]
        if not re.fullmatch(BATCH_ID, batch_id):
            raise Problem(404, "Not found", f"batch {batch_id[:40]} not found")
        asked = call.query("charset")
        encoding = _RESULT_CHARSETS.get("utf-8" if asked is None else asked)
        if encoding is None:
            raise Problem(
                400,
                "The request is malformed",
                "charset must be utf-8 or shift_jis",
                [FieldError("charset", "must be utf-8 or shift_jis")],
            )
        data, used = await bulk.result_csv(principal.biller_id, batch_id, encoding)
        charset = "utf-8" if used == UTF8 else "Shift_JIS"
        return Response(
            200,
            data,
            f"text/csv; charset={charset}",
            {"Content-Disposition": f'attachment; filename="{batch_id}.result.csv"'},
        )

    return [
        Route(b"POST", "/v1/bills/batch", create_batch, takes_file=True),
        Route(b"GET", "/v1/bills/batch/{batch_id}/result.csv", batch_result),
    ]
