"""Who may call a route, and the ``limit`` of a list: the checks every route module shares."""

from __future__ import annotations

from gateway.errors import FieldError
from gateway.model import Principal
from gateway.protocols.api.http import Call, Problem


def biller_only(call: Call, what: str) -> Principal:
    """The caller, a biller's key: ``what`` (e.g. "bills") belongs to billers, so an admin
    key gets 403."""
    principal = call.principal
    assert principal is not None
    if principal.biller_id is None:
        raise Problem(403, "Forbidden", f"{what} belong to billers: use a biller's API key")
    return principal


def admin_only(call: Call) -> Principal:
    """The caller, an admin key: a biller's key gets 403."""
    principal = call.principal
    assert principal is not None
    if not principal.is_admin:
        raise Problem(403, "Forbidden", "this is the operator's: use an admin API key")
    return principal


def page_limit(call: Call, default: int, high: int) -> int:
    """The ``limit`` query parameter: ASCII digits from 1 to ``high`` (400 naming it)."""
    raw = call.query("limit")
    if raw is None:
        return default
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else 0
    if not 1 <= value <= high:
        raise Problem(
            400,
            "The request is malformed",
            f"limit must be an integer 1-{high}",
            [FieldError("limit", f"must be an integer from 1 to {high}")],
        )
    return value
