"""Routes of contracts, settlements, statements and reports.

Billers (their own data): ``GET /v1/fee-plans``, ``GET /v1/settlements``,
``GET /v1/settlements/upcoming`` (the next settlement as it stands, nothing stored),
``GET /v1/settlements/{id}``, ``…/{id}/statement.csv``, ``…/{id}/statement.pdf``,
``…/{id}/payments.csv``, ``GET /v1/reports/daily-collections``.

The operator (an admin key): ``GET /v1/billers/{biller_id}/fee-plans``,
``PUT /v1/billers/{biller_id}/fee-plans/{effective_from}`` (written to the audit log as
``key:<admin key id>``), ``GET /v1/mpn/day-closes``.
"""

from __future__ import annotations

import re
from datetime import date

from gateway.billing.actors import key_actor
from gateway.errors import FieldError
from gateway.money.settlement import (
    SettlementApi,
    daily_json,
    day_close_json,
    encoding_of,
    settlement_json,
)
from gateway.money.statements import daily_report_csv
from gateway.protocols.api.access import admin_only, biller_only, page_limit
from gateway.protocols.api.http import Call, Problem, Response, Route
from gateway.protocols.api.params import PATH_PARAMS
from gateway.validation import BILLER_ID

SETTLEMENT_ID = PATH_PARAMS["settlement_id"].regex


def _date(name: str, raw: str | None) -> date:
    """A date parameter (query or path) in YYYY-MM-DD; 400 naming it otherwise."""
    if raw is None:
        raise Problem(
            400,
            "The request is malformed",
            f"{name} is required",
            [FieldError(name, "is required")],
        )
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise Problem(
        400,
        "The request is malformed",
        f"{name} must be a date YYYY-MM-DD",
        [FieldError(name, "must be a date YYYY-MM-DD")],
    )


def _settlement_id(call: Call) -> str:
    value = call.params["settlement_id"]
    if not SETTLEMENT_ID.fullmatch(value):
        raise Problem(404, "Not found", f"settlement {value[:40]} not found")
    return value


def _file(name: str, ctype: str, body: bytes) -> Response:
    disposition = "inline" if ctype == "application/pdf" else "attachment"
    return Response(200, body, ctype, {"Content-Disposition": f'{disposition}; filename="{name}"'})


def settlement_routes(api: SettlementApi, max_page_size: int) -> list[Route]:
    async def own_plans(call: Call) -> Response:
        return Response.json(await api.plans(biller_only(call, "settlements").biller_id or ""))

    async def biller_plans(call: Call) -> Response:
        admin_only(call)
        biller_id = call.params["biller_id"]
        if not re.fullmatch(BILLER_ID, biller_id):
            raise Problem(404, "Not found", f"biller {biller_id[:32]} not found")
        return Response.json(await api.plans(biller_id))

    async def put_plan(call: Call) -> Response:
        principal = admin_only(call)
        biller_id = call.params["biller_id"]
        if not re.fullmatch(BILLER_ID, biller_id):
            raise Problem(404, "Not found", f"biller {biller_id[:32]} not found")
        day = _date("effective_from", call.params["effective_from"])
        body = call.json_body()
        status, doc = await api.put_plan(key_actor(principal), biller_id, day, body)
        return Response.json(doc, status)

    async def list_settlements(call: Call) -> Response:
        principal = biller_only(call, "settlements")
        return Response.json(
            await api.page(
                principal,
                call.query("cursor"),
                page_limit(call, min(50, max_page_size), max_page_size),
            )
        )

    async def upcoming(call: Call) -> Response:
        return Response.json(await api.preview(biller_only(call, "settlements")))

    async def get_settlement(call: Call) -> Response:
        found = await api.get(biller_only(call, "settlements"), _settlement_id(call))
        return Response.json(settlement_json(found))

    async def statement_csv(call: Call) -> Response:
        return _file(
            *await api.statement(
                biller_only(call, "settlements"),
                _settlement_id(call),
                "csv",
                call.query("encoding"),
            )
        )

    async def statement_pdf(call: Call) -> Response:
        return _file(
            *await api.statement(
                biller_only(call, "settlements"), _settlement_id(call), "pdf", None
            )
        )

    async def payments_csv(call: Call) -> Response:
        return _file(
            *await api.statement(
                biller_only(call, "settlements"),
                _settlement_id(call),
                "payments",
                call.query("encoding"),
            )
        )

    async def daily_report(call: Call) -> Response:

        principal = biller_only(call, "settlements")
        first, last = _date("from", call.query("from")), _date("to", call.query("to"))
        fmt = call.query("format") or "json"
        if fmt not in ("json", "csv"):
            raise Problem(
                400,
                "The request is malformed",
                "format must be json or csv",
                [FieldError("format", "must be json or csv")],
            )
        encoding = encoding_of(call.query("encoding"))
        rows = await api.daily(principal, first, last)
        if fmt == "csv":
            name = f"collections-{first}-{last}.csv"
            ctype = "text/csv; charset=" + encoding
            return _file(name, ctype, daily_report_csv(rows, encoding))
        return Response.json(
            {
                "from": first.isoformat(),
                "to": last.isoformat(),
                "data": [daily_json(r) for r in rows],
            }
        )

    async def day_closes(call: Call) -> Response:
        admin_only(call)
        first, last = _date("from", call.query("from")), _date("to", call.query("to"))
        rows = await api.day_closes(first, last)
        return Response.json({"data": [day_close_json(r) for r in rows]})

    return [
        Route(b"GET", "/v1/fee-plans", own_plans, auth=True),
        Route(b"GET", "/v1/billers/{biller_id}/fee-plans", biller_plans, auth=True),
        Route(b"PUT", "/v1/billers/{biller_id}/fee-plans/{effective_from}", put_plan, auth=True),
        Route(b"GET", "/v1/settlements", list_settlements, auth=True),
        Route(b"GET", "/v1/settlements/upcoming", upcoming, auth=True),
        Route(b"GET", "/v1/settlements/{settlement_id}", get_settlement, auth=True),
        Route(b"GET", "/v1/settlements/{settlement_id}/statement.csv", statement_csv, auth=True),
        Route(b"GET", "/v1/settlements/{settlement_id}/statement.pdf", statement_pdf, auth=True),
        Route(b"GET", "/v1/settlements/{settlement_id}/payments.csv", payments_csv, auth=True),
        Route(b"GET", "/v1/reports/daily-collections", daily_report, auth=True),
        Route(b"GET", "/v1/mpn/day-closes", day_closes, auth=True),
    ]
