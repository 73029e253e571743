"""The center's desk in the console (docs/console.md): the search across billers and the audit
log.

- **The search** is the support desk's own (:func:`gateway.billing.support.find_bills`, as
  ``GET /v1/support/bills?q=`` and ``gateway-admin bill find``): a bill number, customer
  number, barcode (44 digits, or the 27-digit bill key), お客様番号, payment id, or a
  payment's store or bank, matched whole, across every biller. The console also takes what a
  person reads out or copies: full-width digits, and a barcode's human-readable line or an
  お客様番号 in groups (the identifier is searched as typed and without its separators).
  ``operator`` and ``support`` (:data:`Permission.SUPPORT_SEARCH`).
- **The audit log** is the support desk's page of it (:func:`gateway.billing.support.
  audit_page`, as ``GET /v1/support/audit``), newest first, 50 a page, filtered by the user
  who acted (a console login, or an actor as written: ``cli:…``, ``key:…``, ``system:…``),
  the biller, the action and the JST days it was written. Every center role
  (:data:`Permission.AUDIT`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from gateway.billing.actors import console_actor
from gateway.billing.console_access import LOGIN, ConsoleUser, Permission, may
from gateway.billing.support import MAX_FOUND, Q_MAX, Render, audit_page, find_bills
from gateway.errors import FieldError, InvalidRequest, NotFound, Refusal
from gateway.model import JST
from gateway.store import Store
from gateway.store.billers import list_billers
from gateway.store.console_bills import digits_of
from gateway.validation import BILLER_ID

AUDIT_PAGE = 50
ACTION = r"[a-z_]{1,20}\.[a-z_]{1,19}"  # "biller.suspend", "refund_case.resolve", …
ACTOR = r"(?:user|cli|key|system):[!-~]{1,59}"  # an actor as the log writes it
_Q = re.compile("[!-~]{1," + str(Q_MAX) + "}")


def _names(conn: Connection) -> dict[str, str]:
    return {b.biller_id: b.name for b in list_billers(conn)}


def search_terms(raw: str) -> list[str]:
    """What a typed identifier is searched as: itself (full-width characters made
    half-width) and, if it has separators, its digits alone. :class:`InvalidRequest` for one
    that names nothing."""
    q = unicodedata.normalize("NFKC", raw).strip()
    if not _Q.fullmatch(q):
        raise InvalidRequest(
            [FieldError("q", f"半角の英数字と記号 {Q_MAX} 文字以内で入力してください")],
            Refusal.MALFORMED,
        )
    digits = digits_of(q)
    return [q] if digits is None or digits == q else [q, digits]


def parse_audit_query(query: Mapping[str, str]) -> dict[str, Any]:
    """``user``, ``biller``, ``action``, ``from``, ``to`` (JST days, both included) and
    ``cursor``, every bad one named."""
    errors: list[FieldError] = []

    def text(name: str) -> str | None:
        return (query.get(name) or "").strip() or None

    who = text("user")
    actor = None
    if who is not None:
        if re.fullmatch(LOGIN, who):
            actor = console_actor(who)
        elif re.fullmatch(ACTOR, who):
            actor = who
        else:
            errors.append(
                FieldError("user", "ログインID（または cli:… などの操作者）を入力してください")
            )
    biller = text("biller")
    if biller is not None and not re.fullmatch(BILLER_ID, biller):
        errors.append(FieldError("biller", "収納企業IDが正しくありません"))
    action = text("action")
    if action is not None and not re.fullmatch(ACTION, action):
        errors.append(FieldError("action", "操作は biller.suspend のように入力してください"))

    def day(name: str) -> date | None:
        value = text(name)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            errors.append(FieldError(name, "日付は YYYY-MM-DD で入力してください"))
            return None

    first, last = day("from"), day("to")
    if first is not None and last is not None and last < first:
        errors.append(FieldError("to", "開始日より後の日付にしてください"))
    cursor = text("cursor")
    if cursor is not None and not re.fullmatch(r"[0-9]{1,18}", cursor):
        errors.append(FieldError("cursor", "is not a page this console gave"))
    if errors:
        raise InvalidRequest(errors, Refusal.MALFORMED)
    return {
        "actor": actor,
        "biller": biller,
        "action": action,
        "since": None if first is None else datetime.combine(first, time(), JST),
        "until": None if last is None else datetime.combine(last + timedelta(1), time(), JST),
        "cursor": cursor,
    }


class ConsoleCenter:
    def __init__(self, store: Store, render: Render) -> None:
        self.store = store
        self.render = render

    async def search(self, user: ConsoleUser, raw: str) -> dict[str, Any]:
        """``{"q", "data": [{"biller_id", "matched", "bill"}], "billers"}``, newest bill
        first, at most :data:`MAX_FOUND`."""
        if not may(user.role, Permission.SUPPORT_SEARCH):
            raise NotFound("search")
        terms = search_terms(raw)

        def txn(conn: Connection) -> dict[str, Any]:
            found: dict[tuple[str, str], dict[str, Any]] = {}
            for term in terms:
                for row in find_bills(conn, term, self.render, MAX_FOUND)["data"]:
                    key = (row["biller_id"], row["bill"]["bill_no"])
                    if key in found:
                        found[key]["matched"] += [
                            m for m in row["matched"] if m not in found[key]["matched"]
                        ]
                    else:
                        found[key] = row
            return {
                "q": terms[0],
                "data": list(found.values())[:MAX_FOUND],
                "billers": _names(conn),
            }

        return await self.store.run_interaction("console.search", txn)

    async def audit(self, user: ConsoleUser, asked: Mapping[str, Any]) -> dict[str, Any]:
        """A page of the audit log (:func:`parse_audit_query`'s filters)."""
        if not may(user.role, Permission.AUDIT):
            raise NotFound("audit log")

        def txn(conn: Connection) -> dict[str, Any]:
            page = audit_page(
                conn,
                biller_id=asked["biller"],
                target=None,
                action=asked["action"],
                cursor=asked["cursor"],
                limit=AUDIT_PAGE,
                actor=asked["actor"],
                since=asked["since"],
                until=asked["until"],
            )
            return {**page, "billers": _names(conn)}

        return await self.store.run_interaction("console.audit", txn)
