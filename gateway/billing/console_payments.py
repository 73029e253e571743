"""The console's payments: the list with its filters and its CSV export (docs/console.md).

- **Scope**: a biller's user sees and exports its own biller's payments only, whatever the
  query says (:func:`gateway.billing.console_access.biller_scope`); a center user every
  biller's, or one biller's with ``biller``.
- :func:`parse_filters`: ``q`` (a bill number, customer number or payment id, whole),
  ``channel``, ``status`` (``pending`` 速報, ``confirmed`` 確定, ``voided`` 取消), ``paid_from``
  and ``paid_to`` (JST days of the payment), ``biller`` and ``before`` (the page after), every
  bad value named.
- **The export** holds every payment the filters match (at most :data:`MAX_EXPORT`; more is
  refused, to be narrowed), newest first, in UTF-8 with a BOM or Shift_JIS (CP932), each text
  cell a spreadsheet would run as a formula escaped (gateway.mappers.csv_cells). It is written
  to the audit log (``payments.export``: who, the filters — a search as ``****`` — and how
  many rows) in the transaction that reads them: the customers' numbers leave the system.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from itertools import islice
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from gateway.billing.actors import console_actor
from gateway.billing.console_access import ConsoleUser, Permission, biller_scope, may
from gateway.billing.payments import decode_payment_cursor, encode_payment_cursor
from gateway.clock import now as clock_now
from gateway.errors import FieldError, InvalidRequest, NotFound, Refusal
from gateway.mappers.bills_csv import SHIFT_JIS, UTF8, write_csv
from gateway.model import JST, Channel, PaymentStatus
from gateway.store import Store
from gateway.store.audit import record
from gateway.store.billers import list_billers
from gateway.store.console_payments import FoundPayment, PaymentFilter, all_payments
from gateway.store.console_payments import search_payments as search
from gateway.validation import BILLER_ID
from gateway.views import payment_json

PAGE = 50
Q_MAX = 64
MAX_EXPORT = 100_000
ENCODINGS = {"utf-8": UTF8, "shift_jis": SHIFT_JIS}

EXPORT_COLUMNS = (
    "payment_id",
    "biller_id",
    "bill_no",
    "customer_no",
    "channel",
    "status",
    "amount",
    "paid_at",
    "confirmed_at",
    "voided_at",
    "transfer_date",
    "store",
    "late",
)


def parse_filters(query: Mapping[str, str], user: ConsoleUser) -> PaymentFilter:
    errors: list[FieldError] = []

    def text(name: str) -> str | None:
        value = (query.get(name) or "").strip()
        return value or None

    q = text("q")
    if q is not None and (len(q) > Q_MAX or any(ord(c) < 0x20 for c in q)):
        errors.append(FieldError("q", f"{Q_MAX}文字以内で入力してください"))
    channel = text("channel")
    if channel is not None and channel not in {c.value for c in Channel}:
        errors.append(FieldError("channel", "支払方法を一覧から選んでください"))
    status = text("status")
    if status is not None and status not in {s.value for s in PaymentStatus}:
        errors.append(FieldError("status", "状態を一覧から選んでください"))

    def day(name: str) -> date | None:
        value = text(name)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            errors.append(FieldError(name, "日付は YYYY-MM-DD で入力してください"))
            return None

    paid_from, paid_to = day("paid_from"), day("paid_to")
    if paid_from and paid_to and paid_to < paid_from:
        errors.append(FieldError("paid_to", "開始日より後の日付にしてください"))
    before = None
    raw = text("before")
    if raw is not None:
        try:
            before = decode_payment_cursor(raw)
        except InvalidRequest:
            errors.append(FieldError("before", "is not a page this console gave"))
    scope = biller_scope(user)
    biller = text("biller") if scope is None else scope
    if biller is not None and not re.fullmatch(BILLER_ID, biller):
        errors.append(FieldError("biller", "収納企業IDが正しくありません"))
    if errors:
        raise InvalidRequest(errors, Refusal.MALFORMED)
    return PaymentFilter(biller, q, channel, status, paid_from, paid_to, before)


def _row(found: FoundPayment) -> dict[str, Any]:
    return {
        "biller_id": found.payment.biller_id,
        "customer_no": found.customer_no,
        "payment": payment_json(found.payment),
    }


def _at(value: Any) -> str:
    return "" if value is None else value.astimezone(JST).isoformat(timespec="seconds")


def _line(found: FoundPayment) -> list[object]:
    p = found.payment
    return [
        p.payment_id,
        p.biller_id,
        p.bill_no or "",
        found.customer_no or "",
        p.channel.value,
        p.status.value,
        p.amount,
        _at(p.paid_at),
        _at(p.confirmed_at),
        _at(p.voided_at),
        p.transfer_date.isoformat() if p.transfer_date else "",
        p.store or "",
        1 if p.late else 0,
    ]


def _filters_doc(f: PaymentFilter) -> dict[str, Any]:
    """The filters of an export as the audit log keeps them: a search (a customer's number,
    perhaps) as ``****``, as the access log keeps the console's query strings."""
    doc = {
        "biller": f.biller_id,
        "q": "****" if f.q else None,
        "channel": f.channel,
        "status": f.status,
        "paid_from": f.paid_from,
        "paid_to": f.paid_to,
    }
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in doc.items() if v}


class ConsolePayments:
    def __init__(self, store: Store, clock: IReactorTime) -> None:
        self.store = store
        self.clock = clock

    def _scoped(self, user: ConsoleUser, f: PaymentFilter) -> None:
        if not may(user.role, Permission.PAYMENTS):
            raise NotFound("payments")
        scope = biller_scope(user)
        if scope is not None and f.biller_id != scope:
            raise NotFound("payments")  # parse_filters never gives this: a guard

    async def page(self, user: ConsoleUser, f: PaymentFilter) -> dict[str, Any]:
        """One page: the rows, the ``before`` of the next page, the billers' names."""
        self._scoped(user, f)

        def txn(conn: Connection) -> dict[str, Any]:
            found = search(conn, f, PAGE + 1)
            last = found[PAGE - 1].payment if len(found) > PAGE else None
            return {
                "rows": [_row(p) for p in found[:PAGE]],
                "next_before": None
                if last is None
                else encode_payment_cursor(last.created_at, last.payment_id),
                "billers": {b.biller_id: b.name for b in list_billers(conn)},
            }

        return await self.store.run_interaction("console.payments", txn)

    async def export(self, user: ConsoleUser, f: PaymentFilter, encoding: str | None) -> bytes:
        """The CSV of every payment ``f`` matches (``before`` ignored), audited."""
        self._scoped(user, f)
        chosen = ENCODINGS.get(encoding or "utf-8")
        if chosen is None:
            raise InvalidRequest([FieldError("encoding", "utf-8 か shift_jis を選んでください")])
        whole = PaymentFilter(f.biller_id, f.q, f.channel, f.status, f.paid_from, f.paid_to)
        now = clock_now(self.clock)

        def txn(conn: Connection) -> bytes:
            found = list(islice(all_payments(conn, whole), MAX_EXPORT + 1))
            if len(found) > MAX_EXPORT:
                raise InvalidRequest(
                    [
                        FieldError(
                            "export",
                            f"{MAX_EXPORT:,}件を超えるため出力できません。条件を絞ってください",
                        )
                    ]
                )
            record(
                conn,
                console_actor(user.login),
                "payments.export",
                f"payments:{whole.biller_id or '*'}",
                now,
                biller_id=whole.biller_id,
                after={"filters": _filters_doc(whole), "rows": len(found), "encoding": chosen},
            )
            return write_csv(EXPORT_COLUMNS, (_line(p) for p in found), chosen)

        return await self.store.run_interaction("console.payments.export", txn)
