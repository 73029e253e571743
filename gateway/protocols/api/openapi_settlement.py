"""The OpenAPI paths and schemas of contracts, settlements, statements and reports, merged into
the document of :mod:`gateway.protocols.api.openapi` (which imports this module lazily)."""

from __future__ import annotations

from typing import Any

from gateway.fee_model import NoticeKind
from gateway.model import Channel
from gateway.money.fees import (
    MAX_FEE,
    MAX_PAYOUT_DAYS,
    MAX_TAX_RATE,
    Cycle,
    LineKind,
    Rounding,
)
from gateway.protocols.api.openapi_parts import DATE, TIMESTAMP, _json, _op, _query
from gateway.protocols.api.openapi_payouts import SETTLEMENT_PAYOUT_PROPERTIES
from gateway.protocols.api.params import PATH_PARAMS, path_param

SETTLEMENT_ID = PATH_PARAMS["settlement_id"].schema()
BILLER_ID = PATH_PARAMS["biller_id"].schema()
YEN = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
FEE = {"type": "integer", "minimum": 0, "maximum": MAX_FEE}
# The report and day-close dates: real calendar days of this century (the store compares them
# with timestamps, which a date at the edge of the calendar would overflow).
REPORT_DATE = PATH_PARAMS["effective_from"].schema(format="date")

RATES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "per_payment": {**FEE, "description": "each confirmed payment"},
        "per_uncollected": {**FEE, "description": "each bill due in the period, never paid"},
        "stamp_charge": {
            **FEE,
            "description": "cvs only: each payment whose slip asked for a revenue stamp "
            "(default 200)",
        },
    },
}

FEE_PLAN = {
    "type": "object",
    "additionalProperties": False,
    "required": ["cycle", "payout_days", "channels"],
    "properties": {
        "effective_from": {
            **REPORT_DATE,
            "description": "JST date it applies from (= the path's), 2000-2099",
        },
        "cycle": {"type": "string", "enum": [c.value for c in Cycle]},
        "payout_days": {"type": "integer", "minimum": 0, "maximum": MAX_PAYOUT_DAYS},
        "settlement_fee": FEE,
        "tax_rate": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_TAX_RATE,
            "description": "percent",
        },
        "tax_rounding": {"type": "string", "enum": [r.value for r in Rounding]},
        "channels": {
            "type": "object",
            "additionalProperties": False,
            "properties": {c.value: RATES for c in Channel},
        },
        "initial_fee": {**FEE, "description": "初期費用: once, in the first settlement"},
        "monthly_fee": {**FEE, "description": "月額基本料: in the settlement closing each month"},
        "waive_idle_months": {
            "type": "boolean",
            "description": "no monthly fee for a month without a collection (needs monthly_fee)",
        },
        "per_bill": {**FEE, "description": "each bill registered in the period"},
        "notices": {
            "type": "object",
            "additionalProperties": False,
            "description": "yen per notice sent: e-mail, SMS, printed sheet",
            "properties": {k.value: FEE for k in NoticeKind},
        },
    },
}

LINE = {
    "type": "object",
    "required": ["line_no", "kind", "description", "quantity", "amount"],
    "properties": {
        "line_no": {"type": "integer", "minimum": 1},
        "kind": {"type": "string", "enum": [k.value for k in LineKind]},
        "channel": {"type": ["string", "null"], "enum": [*(c.value for c in Channel), None]},
        "description": {"type": "string"},
        "quantity": COUNT,
        "unit_amount": {"type": ["integer", "null"]},
        "amount": {**YEN, "description": "+ owed to the biller, − deducted"},
    },
}

SETTLEMENT_PROPERTIES = {
    "settlement_id": SETTLEMENT_ID,
    "period": {
        "type": "object",
        "required": ["start", "end"],
        "properties": {"start": DATE, "end": DATE},
    },
    "cycle": {"type": "string", "enum": [c.value for c in Cycle]},
    "payout_date": DATE,
    "payments_count": COUNT,
    "collected": COUNT,
    "fees": COUNT,
    "tax": COUNT,
    "stamp_count": COUNT,
    "stamp_duty": COUNT,
    "refunds": COUNT,
    "carried_in": COUNT,
    "carried_out": COUNT,
    "payout": {**COUNT, "description": "the sum of the lines, to the yen"},
    "created_at": TIMESTAMP,
    **SETTLEMENT_PAYOUT_PROPERTIES,
}
SUMMARY = {
    "type": "object",
    "required": list(SETTLEMENT_PROPERTIES),
    "properties": SETTLEMENT_PROPERTIES,
}
SETTLEMENT = {
    "type": "object",
    "required": [*SETTLEMENT_PROPERTIES, "lines"],
    "properties": {**SETTLEMENT_PROPERTIES, "lines": {"type": "array", "items": LINE}},
}

DAILY_ROW = {
    "type": "object",
    "required": ["date", "channel", "chain", "count", "amount"],
    "properties": {
        "date": DATE,
        "channel": {"type": "string", "enum": [c.value for c in Channel]},
        "chain": {"type": "string"},
        "count": COUNT,
        "amount": COUNT,
        "confirmed_count": COUNT,
        "confirmed_amount": COUNT,
    },
}

COUNTERS = {
    "type": ["object", "null"],
    "properties": {
        "payments_count": COUNT,
        "payments_sum": COUNT,
        "cancels_count": COUNT,
        "cancels_sum": COUNT,
    },
}


def _file(media: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {media: {"schema": {"type": "string", "format": "binary"}}},
    }


def settlement_paths(max_page_size: int) -> dict[str, Any]:
    sid = path_param("settlement_id")
    biller = path_param("biller_id")
    effective = path_param("effective_from", format="date")
    encoding = _query("encoding", {"type": "string", "enum": ["utf-8", "shift_jis"]})
    first = {**_query("from", REPORT_DATE), "required": True}
    last = {**_query("to", REPORT_DATE), "required": True}
    plans = _json(
        {
            "type": "object",
            "required": ["biller_id", "plans"],
            "properties": {
                "biller_id": {"type": "string"},
                "plans": {"type": "array", "items": {"$ref": "#/components/schemas/FeePlan"}},
            },
        },
        "The fee plans, oldest first",
    )
    plan = {"$ref": "#/components/schemas/FeePlan"}
    csv = _file("text/csv", "CSV: UTF-8 with a BOM (default), or Shift_JIS (CP932)")
    return {
        "/v1/fee-plans": {
            "get": _op("The biller's own fee plans", {"200": plans}, op_id="ownFeePlans"),
        },
        "/v1/billers/{biller_id}/fee-plans": {
            "get": _op(
                "A biller's fee plans (operator)",
                {"200": plans},
                params=[biller],
                op_id="billerFeePlans",
            ),
        },
        "/v1/billers/{biller_id}/fee-plans/{effective_from}": {
            "put": _op(
                "Add or change the plan version in force from a JST date (operator; audited); a "
                "date a settlement already covers is 409",
                {"200": _json(plan, "Unchanged or changed"), "201": _json(plan, "Added")},
                400,
                409,
                413,
                415,
                422,
                params=[biller, effective],
                body={"required": True, "content": {"application/json": {"schema": plan}}},
                op_id="putFeePlan",
            ),
        },
        "/v1/settlements": {
            "get": _op(
                "The biller's settlements by period, oldest first",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["data", "next_cursor"],
                            "properties": {
                                "data": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/SettlementSummary"},
                                },
                                "next_cursor": {"type": ["string", "null"]},
                            },
                        },
                        "A page",
                    )
                },
                400,
                params=[
                    _query("cursor", DATE),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": max_page_size}),
                ],
                op_id="listSettlements",
            ),
        },
        "/v1/settlements/upcoming": {
            "get": _op(
                "The next settlement as it would be if its period closed now (nothing is "
                "stored; settlement_id is null); 404 without a fee plan",
                {"200": _json({"$ref": "#/components/schemas/SettlementPreview"}, "The preview")},
                op_id="previewSettlement",
            ),
        },
        "/v1/settlements/{settlement_id}": {
            "get": _op(
                "A settlement with its lines (they add up to the payout)",
                {"200": _json({"$ref": "#/components/schemas/Settlement"}, "The settlement")},
                params=[sid],
                op_id="getSettlement",
            ),
        },
        "/v1/settlements/{settlement_id}/statement.csv": {
            "get": _op(
                "The statement as CSV",
                {"200": csv},
                400,
                params=[sid, encoding],
                op_id="statementCsv",
            ),
        },
        "/v1/settlements/{settlement_id}/statement.pdf": {
            "get": _op(
                "The statement as a Japanese PDF (精算明細書)",
                {"200": _file("application/pdf", "The statement")},
                params=[sid],
                op_id="statementPdf",
            ),
        },
        "/v1/settlements/{settlement_id}/payments.csv": {
            "get": _op(
                "Every payment the settlement paid out, as CSV",
                {"200": csv},
                400,
                params=[sid, encoding],
                op_id="settlementPayments",
            ),
        },
        "/v1/reports/daily-collections": {
            "get": _op(
                "Payments per JST day, channel and chain (at most 366 days)",
                {
                    "200": {
                        "description": "The report (format=json, the default, or csv)",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["from", "to", "data"],
                                    "properties": {
                                        "from": DATE,
                                        "to": DATE,
                                        "data": {"type": "array", "items": DAILY_ROW},
                                    },
                                }
                            },
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    }
                },
                400,
                422,
                params=[
                    first,
                    last,
                    _query("format", {"type": "string", "enum": ["json", "csv"]}),
                    encoding,
                ],
                op_id="dailyCollections",
            ),
        },
        "/v1/mpn/day-closes": {
            "get": _op(
                "Each 閉局: the center's counters, ours at the close and the ledger's now "
                "(operator)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["data"],
                            "properties": {
                                "data": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "business_date": DATE,
                                            "closed_at": TIMESTAMP,
                                            "center": COUNTERS,
                                            "at_close": COUNTERS,
                                            "ledger": COUNTERS,
                                            "mismatch": {"type": "boolean"},
                                        },
                                    },
                                }
                            },
                        },
                        "The days",
                    )
                },
                400,
                422,
                params=[first, last],
                op_id="mpnDayCloses",
            ),
        },
    }


PREVIEW = {
    "type": "object",
    "required": [*SETTLEMENT_PROPERTIES, "lines", "preview"],
    "properties": {
        **SETTLEMENT_PROPERTIES,
        "settlement_id": {"type": "null"},
        "lines": {"type": "array", "items": LINE},
        "preview": {"const": True},
    },
}

SETTLEMENT_SCHEMAS = {
    "SettlementPreview": PREVIEW,
    "FeePlan": FEE_PLAN,
    "Settlement": SETTLEMENT,
    "SettlementSummary": SUMMARY,
}
