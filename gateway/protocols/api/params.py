"""Every path parameter of the API and its pattern: one table, read by the router (which checks
each parameter before a handler, and so before the database, sees it) and by the OpenAPI
document (which publishes the same patterns).

A parameter that names a resource (an id, a number, a token) and does not match its pattern
names nothing: 404, as an unknown one would. A parameter that is a value (a date) answers 400
naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway.billing.bills import BILL_NO, CUSTOMER_NO
from gateway.billing.bulk import BATCH_ID
from gateway.billing.pages import TOKEN
from gateway.validation import BILLER_ID
from gateway.webhooks.api import ENDPOINT_ID, EVENT_ID


@dataclass(frozen=True)
class PathParam:
    pattern: str  # unanchored: matched whole with re.fullmatch
    what: str  # "bill", "date"...: the 404's "<what> <value> not found"
    status: int = 404  # 404: names a resource; 400: a value

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    def schema(self, **more: Any) -> dict[str, Any]:
        """The OpenAPI schema of the parameter (anchored pattern, as JSON Schema wants)."""
        return {"type": "string", "pattern": f"^{self.pattern}$", **more}


PATH_PARAMS: dict[str, PathParam] = {
    "bill_no": PathParam(BILL_NO, "bill"),
    "customer_no": PathParam(CUSTOMER_NO, "mandate"),
    "batch_id": PathParam(BATCH_ID, "batch"),
    "endpoint_id": PathParam(ENDPOINT_ID.pattern, "webhook endpoint"),
    "event_id": PathParam(EVENT_ID.pattern, "event"),
    "case_id": PathParam(r"rc_[0-9a-f]{24}", "refund case"),  # gateway.ledger: new_id("rc")
    "token": PathParam(TOKEN.pattern, "page"),
    "settlement_id": PathParam(r"stl_[0-9a-f]{24}", "settlement"),
    "item_id": PathParam(r"rci_[0-9a-f]{24}", "reconciliation item"),  # sync_items: new_id("rci")
    "biller_id": PathParam(BILLER_ID, "biller"),
    # Real calendar days of this century (the store compares them with timestamps).
    "effective_from": PathParam(r"20\d{2}-\d{2}-\d{2}", "date", status=400),
}


def path_param(name: str, **more: Any) -> dict[str, Any]:
    """The OpenAPI parameter object of the path parameter ``name``."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": PATH_PARAMS[name].schema(**more),
    }
