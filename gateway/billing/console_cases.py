"""The console's refund cases (docs/console.md): the queue, and a case resolved by the center's
desk through the support desk's own rules (:func:`gateway.billing.support.resolve_case`).

- **The queue**: open cases first by default, oldest first, 50 a page (``status=open``,
  ``resolved`` or all); a biller's user sees its own biller's cases, a center user every
  biller's, or one biller's.
- **Resolving** is the center's (``support``, ``operator``: :data:`Permission.RESOLVE_CASES`):
  ``refunded`` (返金済) or ``no_refund`` (返金しない), each with a note saying what was done
  (:data:`RESOLUTIONS`; the API also takes ``applied_to_bill``, the console does not offer
  it). The same resolution sent again changes nothing; another one for a resolved case is a
  :class:`Conflict`. The support desk writes ``refund_case.resolve`` to the audit log with the
  console user (``user:<login>``) in the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from gateway.billing.actors import console_actor
from gateway.billing.console_access import ConsoleUser, Permission, biller_scope, may
from gateway.billing.payments import NOTE_MAX
from gateway.billing.support import list_cases, resolve_case
from gateway.clock import now as clock_now
from gateway.errors import FieldError, InvalidRequest, NotFound, Refusal
from gateway.model import RefundStatus
from gateway.store import Store
from gateway.store.billers import list_billers
from gateway.validation import BILLER_ID

PAGE = 50
RESOLUTIONS = ("refunded", "no_refund")
STATUSES = ("open", "resolved", "all")


def parse_query(query: Mapping[str, str], user: ConsoleUser) -> dict[str, Any]:
    """``status`` (default ``open``), ``biller`` (a center user's), ``cursor``."""
    status = (query.get("status") or "open").strip()
    errors = []
    if status not in STATUSES:
        errors.append(FieldError("status", "状態を一覧から選んでください"))
    scope = biller_scope(user)
    biller = ((query.get("biller") or "").strip() or None) if scope is None else scope
    if biller is not None and not re.fullmatch(BILLER_ID, biller):
        errors.append(FieldError("biller", "収納企業IDが正しくありません"))
    cursor = (query.get("cursor") or "").strip() or None
    if errors:
        raise InvalidRequest(errors, Refusal.MALFORMED)
    return {"status": status, "biller": biller, "cursor": cursor}


def parse_resolution(fields: Mapping[str, str]) -> tuple[str, str]:
    errors = []
    resolution = (fields.get("resolution") or "").strip()
    if resolution not in RESOLUTIONS:
        errors.append(FieldError("resolution", "返金済か返金しないかを選んでください"))
    note = (fields.get("note") or "").strip()
    if not note:
        errors.append(FieldError("note", "対応の内容を入力してください"))
    elif len(note) > NOTE_MAX:
        errors.append(FieldError("note", f"{NOTE_MAX}文字以内で入力してください"))
    if errors:
        raise InvalidRequest(errors)
    return resolution, note


class ConsoleCases:
    def __init__(self, store: Store, clock: IReactorTime) -> None:
        self.store = store
        self.clock = clock

    async def page(self, user: ConsoleUser, asked: Mapping[str, Any]) -> dict[str, Any]:
        if not may(user.role, Permission.REFUND_CASES):
            raise NotFound("refund cases")
        scope = biller_scope(user)
        biller = asked["biller"] if scope is None else scope
        status = None if asked["status"] == "all" else RefundStatus(asked["status"])

        def txn(conn: Connection) -> dict[str, Any]:
            found = list_cases(
                conn, biller_id=biller, status=status, cursor=asked["cursor"], limit=PAGE
            )
            return {**found, "billers": {b.biller_id: b.name for b in list_billers(conn)}}

        return await self.store.run_interaction("console.refund_cases", txn)

    async def resolve(
        self, user: ConsoleUser, case_id: str, fields: Mapping[str, str]
    ) -> dict[str, Any]:
        """The case resolved (the support desk's view of it)."""
        if not may(user.role, Permission.RESOLVE_CASES):
            raise NotFound(f"refund case {case_id}")
        resolution, note = parse_resolution(fields)
        return await self.store.run_interaction(
            "console.refund_case.resolve",
            resolve_case,
            console_actor(user.login),
            case_id,
            resolution,
            note,
            clock_now(self.clock),
        )
