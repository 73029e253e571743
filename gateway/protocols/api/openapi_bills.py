"""The OpenAPI schemas and paths of bills (register, list, read, cancel, reissue, their
payments), merged into the document of :mod:`gateway.protocols.api.openapi`."""

from __future__ import annotations

from typing import Any

from gateway.billing.bills import CURSOR, DESCRIPTION_MAX, EMAIL_MAX, MAX_AMOUNT, NAME_MAX, PHONE
from gateway.protocols.api.openapi_parts import DATE, TIMESTAMP, _json, _op, _query
from gateway.protocols.api.params import PATH_PARAMS, path_param

BILL_NO_PATTERN = PATH_PARAMS["bill_no"].schema()["pattern"]
CUSTOMER_NO_PATTERN = PATH_PARAMS["customer_no"].schema()["pattern"]

BILL_SCHEMAS: dict[str, Any] = {
    "Customer": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "customer_no": {"type": "string", "pattern": CUSTOMER_NO_PATTERN},
            "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
            "kana": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
            "email": {"type": "string", "maxLength": EMAIL_MAX, "format": "email"},
            "phone": {"type": "string", "pattern": f"^{PHONE}$"},
        },
    },
    "Tax": {
        "type": "object",
        "additionalProperties": False,
        "required": ["taxable"],
        "properties": {
            "taxable": {"type": "boolean"},
            "tax_amount": {"type": "integer", "minimum": 0},
        },
    },
    "BillCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["bill_no", "amount", "channels"],
        "properties": {
            "bill_no": {"type": "string", "pattern": BILL_NO_PATTERN},
            "amount": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": MAX_AMOUNT,
                "description": "yen; at most the CVS ceiling of the biller's agency"
                " (300,000 by default) with cvs. null: the payer chooses the amount, from"
                " min_amount to max_amount (payeasy only)",
            },
            "min_amount": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_AMOUNT,
                "description": "with amount null: the least the payer may pay",
            },
            "max_amount": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_AMOUNT,
                "description": "with amount null: the most the payer may pay",
            },
            "due_date": {
                **DATE,
                "type": ["string", "null"],
                "description": "required, except for a slip without a deadline (999999): left"
                " out or null when cvs is the only channel and the biller's agency takes one",
            },
            "channels": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "string", "enum": ["cvs", "payeasy", "transfer"]},
            },
            "customer": {"$ref": "#/components/schemas/Customer"},
            "tax": {"$ref": "#/components/schemas/Tax"},
            "description": {"type": "string", "minLength": 1, "maxLength": DESCRIPTION_MAX},
        },
    },
    "Reissue": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "amount": {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT},
            "due_date": DATE,
        },
    },
    "Cancel": {"type": "object", "additionalProperties": False, "properties": {}},
    "Bill": {
        "type": "object",
        "required": [
            "bill_no",
            "status",
            "version",
            "amount",
            "due_date",
            "reissue",
            "channels",
            "double_paid",
            "late",
            "customer",
            "tax",
            "page_url",
            "created_at",
            "updated_at",
        ],
        "properties": {
            "bill_no": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["open", "paid", "confirmed", "expired", "cancelled"],
            },
            "version": {"type": "integer", "minimum": 1},
            "amount": {
                "type": ["integer", "null"],
                "description": "null: the payer chooses it (min_amount to max_amount)",
            },
            "min_amount": {"type": "integer", "minimum": 1},
            "max_amount": {"type": "integer", "minimum": 1},
            "due_date": {"type": ["string", "null"], "format": "date"},
            "reissue": {"type": "integer", "minimum": 0, "maximum": 9},
            "channels": {"type": "array", "items": {"type": "string"}},
            "double_paid": {"type": "boolean"},
            "late": {"type": "boolean"},
            "customer": {"type": "object"},
            "tax": {"type": "object"},
            "description": {"type": ["string", "null"]},
            "cvs": {
                "type": "object",
                "required": ["barcode", "stamp", "human_readable"],
                "properties": {
                    "barcode": {"type": "string", "pattern": r"^91[0-9]{42}$"},
                    "stamp": {"type": "boolean"},
                    "human_readable": {"type": "string"},
                },
            },
            "payeasy": {
                "type": "object",
                "required": ["institution_code", "customer_number", "confirmation_number"],
                "properties": {
                    "institution_code": {"type": "string", "pattern": r"^[0-9]{5}$"},
                    "customer_number": {"type": "string", "pattern": r"^[0-9]{1,20}$"},
                    "confirmation_number": {"type": "string", "pattern": r"^[0-9]{4,6}$"},
                },
            },
            "page_url": {"type": "string", "format": "uri"},
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
        },
    },
    "BillPage": {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Bill"}},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
}


def bill_paths(max_page_size: int) -> dict[str, Any]:
    bill_no = path_param("bill_no")
    bill = {"$ref": "#/components/schemas/Bill"}
    bill_ok = _json(bill, "The bill")
    optional_body = {
        "required": False,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Reissue"}}},
    }
    return {
        "/v1/bills": {
            "post": _op(
                "Register a bill",
                {
                    "201": _json(bill, "Created"),
                    "200": _json(bill, "The same bill_no with identical fields: the bill"),
                },
                400,
                409,
                413,
                415,
                422,
                body={
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/BillCreate"}}
                    },
                },
                idempotent=True,
                op_id="createBill",
            ),
            "get": _op(
                "List bills, oldest first, paged",
                {"200": _json({"$ref": "#/components/schemas/BillPage"}, "A page")},
                400,
                params=[
                    _query(
                        "status",
                        {
                            "type": "string",
                            "enum": ["open", "paid", "confirmed", "expired", "cancelled"],
                        },
                    ),
                    _query("updated_since", TIMESTAMP),
                    _query("cursor", {"type": "string", "pattern": f"^{CURSOR}$"}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": max_page_size}),
                ],
                op_id="listBills",
            ),
        },
        "/v1/bills/{bill_no}": {
            "get": _op("Read a bill", {"200": bill_ok}, params=[bill_no], op_id="getBill"),
        },
        "/v1/bills/{bill_no}/cancel": {
            "post": _op(
                "Cancel an unpaid bill",
                {"200": bill_ok},
                400,
                409,
                413,
                415,
                422,
                params=[bill_no],
                idempotent=True,
                op_id="cancelBill",
                body={
                    "required": False,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Cancel"}}
                    },
                },
            ),
        },
        "/v1/bills/{bill_no}/reissue": {
            "post": _op(
                "Issue a new slip (reissue digit + 1) with a new amount or due date",
                {"200": bill_ok},
                400,
                409,
                413,
                415,
                422,
                params=[bill_no],
                idempotent=True,
                body=optional_body,
                op_id="reissueBill",
            ),
        },
        "/v1/bills/{bill_no}/payments": {
            "get": _op(
                "Payments of a bill",
                {
                    "200": _json(
                        {"$ref": "#/components/schemas/PaymentList"},
                        "Every payment of the bill",
                    )
                },
                params=[bill_no],
                op_id="billPayments",
            ),
        },
    }
