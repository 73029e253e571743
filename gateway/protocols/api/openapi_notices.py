"""The OpenAPI schemas and paths of notices (the notice list, a customer's opt-out) and of a
biller's fallback and notice settings, merged into the document of
:mod:`gateway.protocols.api.openapi`."""

from __future__ import annotations

from typing import Any

from gateway.billing.bills import BILL_NO, CURSOR
from gateway.billing.notice_api import STATUSES
from gateway.notice_rules import (
    DEFAULT_TEMPLATES,
    MAX_DAYS,
    MAX_REMINDER_DAYS,
    SMS_MAX,
    SMS_PART,
    SMS_SINGLE,
    TEMPLATE_MAX,
    FallbackWay,
    Medium,
    Notice,
)
from gateway.protocols.api.openapi_parts import DATE, TIMESTAMP, _json, _op, _query
from gateway.protocols.api.params import path_param

SMS_MAX_SEGMENTS = -(-SMS_MAX // SMS_PART)
MEDIA = {
    "type": "array",
    "uniqueItems": True,
    "items": {"type": "string", "enum": [m.value for m in Medium]},
}
WAYS = {
    "type": "array",
    "uniqueItems": True,
    "items": {"type": "string", "enum": [w.value for w in FallbackWay]},
    "description": "cvs and payeasy: reissue the bill with them instead of transfer; redebit:"
    " debit it again (再振替) first, once, when a date in the window can be reached",
}
DUE_DAYS = {"type": "integer", "minimum": 1, "maximum": MAX_DAYS}
REMINDER_DAYS = {"type": "integer", "minimum": 1, "maximum": MAX_REMINDER_DAYS}
TEMPLATE = {"type": "string", "minLength": 1, "maxLength": TEMPLATE_MAX}
TEMPLATES: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"enum": list(DEFAULT_TEMPLATES)},
    "additionalProperties": TEMPLATE,
    "description": "the biller's own words (Japanese), by key; placeholders {biller}, {name},"
    " {bill_no}, {amount}, {due_date}, {url}, {ways}, {paid_at}",
}


def _settings(change: bool) -> dict[str, Any]:
    props: dict[str, Any] = {kind.value: MEDIA for kind in Notice}
    props["reminder_days"] = REMINDER_DAYS
    props["templates"] = (
        {
            **TEMPLATES,
            "additionalProperties": {**TEMPLATE, "type": ["string", "null"]},
            "description": "each template named is set (null: back to the default)",
        }
        if change
        else TEMPLATES
    )
    doc: dict[str, Any] = {"type": "object", "properties": props}
    if change:
        doc.update(additionalProperties=False, description="each part given replaces the biller's")
    else:
        doc["required"] = [*(kind.value for kind in Notice), "reminder_days", "templates"]
    return doc


NOTICE_SCHEMAS: dict[str, Any] = {
    "Fallback": {
        "type": "object",
        "description": "what a failed debit leads to (docs/notices.md)",
        "required": ["ways", "due_days", "redebit_days"],
        "properties": {
            "ways": WAYS,
            "due_days": {**DUE_DAYS, "description": "a reissued bill is due this many days later"},
            "redebit_days": {
                **DUE_DAYS,
                "description": "a 再振替 falls at most this many days after the original due date",
            },
        },
    },
    "FallbackChange": {
        "type": "object",
        "additionalProperties": False,
        "description": "each part given replaces the biller's; ways [] is no fallback",
        "properties": {"ways": WAYS, "due_days": DUE_DAYS, "redebit_days": DUE_DAYS},
    },
    "NoticeSettings": {
        **_settings(False),
        "description": "the media of each notice (page, fallback, reminder, received), the"
        " reminder's days before the due date, the biller's templates",
    },
    "NoticeSettingsChange": _settings(True),
    "Notice": {
        "type": "object",
        "required": ["id", "bill_no", "kind", "medium", "status", "attempts", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "bill_no": {"type": "string"},
            "kind": {"type": "string", "enum": [k.value for k in Notice]},
            "medium": {"type": "string", "enum": [m.value for m in Medium]},
            "status": {"type": "string", "enum": list(STATUSES)},
            "attempts": {"type": "integer", "minimum": 0},
            "last_error": {"type": ["string", "null"]},
            "recipient": {
                "type": ["string", "null"],
                "description": "the address or number, masked",
            },
            "created_at": TIMESTAMP,
            "next_attempt_at": {**TIMESTAMP, "type": ["string", "null"]},
            "sent_at": {**TIMESTAMP, "type": ["string", "null"]},
            "segments": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": SMS_MAX_SEGMENTS,
                "description": "a sent SMS: the messages (segments) it was sent and charged as —"
                f" 1 up to {SMS_SINGLE} characters, one per {SMS_PART} beyond (a long SMS);"
                " null for an e-mail or an SMS not sent",
            },
            "reissue": {"type": ["integer", "null"], "description": "page and fallback"},
            "due_date": {**DATE, "description": "reminder"},
            "payment_id": {"type": "string", "description": "received"},
        },
    },
    "OptOutPut": {
        "type": "object",
        "additionalProperties": False,
        "required": ["email", "sms"],
        "properties": {
            "email": {"type": "boolean", "description": "true: no e-mail notice"},
            "sms": {"type": "boolean", "description": "true: no SMS notice"},
        },
    },
    "OptOut": {
        "type": "object",
        "required": ["customer_no", "email", "sms", "updated_at"],
        "properties": {
            "customer_no": {"type": "string"},
            "email": {"type": "boolean"},
            "sms": {"type": "boolean"},
            "updated_at": {**TIMESTAMP, "type": ["string", "null"]},
        },
    },
}


def notice_paths(max_page_size: int) -> dict[str, Any]:
    customer_no = path_param("customer_no")
    optout = _json({"$ref": "#/components/schemas/OptOut"}, "The customer's opt-out")
    page = _json(
        {
            "type": "object",
            "required": ["data", "next_cursor"],
            "properties": {
                "data": {"type": "array", "items": {"$ref": "#/components/schemas/Notice"}},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
        "A page of notices, oldest first",
    )
    return {
        "/v1/notices": {
            "get": _op(
                "The notices of the biller's bills, with their delivery states",
                {"200": page},
                400,
                params=[
                    _query("bill_no", {"type": "string", "pattern": f"^{BILL_NO}$"}),
                    _query("status", {"type": "string", "enum": list(STATUSES)}),
                    _query("cursor", {"type": "string", "pattern": f"^{CURSOR}$"}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": max_page_size}),
                ],
                op_id="listNotices",
            ),
        },
        "/v1/customers/{customer_no}/opt-out": {
            "get": _op(
                "Whether a customer gets no e-mail, no SMS notice",
                {"200": optout},
                params=[customer_no],
                op_id="getOptOut",
            ),
            "put": _op(
                "Set a customer's opt-out (both media)",
                {"200": optout},
                400,
                413,
                415,
                params=[customer_no],
                body={
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/OptOutPut"}}
                    },
                },
                op_id="putOptOut",
            ),
        },
    }
