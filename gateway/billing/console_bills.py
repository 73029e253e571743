"""The console's bills: the list with its search and filters, and a bill's page with its
timeline (docs/console.md). The rules of who sees what are
:mod:`gateway.billing.console_access`'s; the bill's story is the support desk's
(:func:`gateway.billing.support.bill_story`), the bill as the bills API renders it.

- A biller's user sees its biller's bills only: the list is filtered by it, and another
  biller's bill is :class:`NotFound`, as an unknown one.
- :func:`parse_filters`: the list's query (``q``, ``status``, ``due_from``, ``due_to``,
  ``channel``, ``biller``, ``before``), every bad value named.
- :func:`timeline`: what happened to a bill, oldest first — issued (with its first slip's
  amount and due date), each reissue (its slip's), 速報 / 消込,
  確報 / 閉局, 取消, account-transfer requests and results, every outbox event and every webhook
  delivery — each entry a ``kind`` the screen names, its time and what it says.
- :func:`offers`: whether the bill can be reissued or cancelled now, as the ledger's own
  transitions answer (the page offers only those; the service decides again when it is sent).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from gateway import ledger
from gateway.billing.console_access import ConsoleUser, biller_scope, sees_biller
from gateway.billing.support import bill_story
from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.errors import FieldError, InvalidRequest, NotFound, Refusal, TransitionError
from gateway.model import Bill, BillStatus, Channel
from gateway.store import Store
from gateway.store.billers import list_billers
from gateway.store.bills import get_bill
from gateway.store.console_bills import BillFilter, search_bills
from gateway.validation import BILLER_ID

PAGE = 50  # bills a page
Q_MAX = 64
Render = Callable[[Bill], dict[str, Any]]


def parse_filters(query: Mapping[str, str], user: ConsoleUser) -> BillFilter:
    """The list's filters from its query string; :class:`InvalidRequest` naming each bad one.
    A biller's user is always limited to its biller (a ``biller`` it sends is ignored)."""
    errors: list[FieldError] = []

    def text(name: str) -> str | None:
        value = (query.get(name) or "").strip()
        return value or None

    q = text("q")
    if q is not None and (len(q) > Q_MAX or any(ord(c) < 0x20 for c in q)):
        errors.append(FieldError("q", f"{Q_MAX}文字以内で入力してください"))
    status = text("status")
    if status is not None and status not in {s.value for s in BillStatus}:
        errors.append(FieldError("status", "状態を一覧から選んでください"))
    channel = text("channel")
    if channel is not None and channel not in {c.value for c in Channel}:
        errors.append(FieldError("channel", "支払方法を一覧から選んでください"))

    def day(name: str) -> date | None:
        value = text(name)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            errors.append(FieldError(name, "日付は YYYY-MM-DD で入力してください"))
            return None

    due_from, due_to = day("due_from"), day("due_to")
    before = text("before")
    if before is not None and not re.fullmatch(r"[0-9]{1,18}", before):
        errors.append(FieldError("before", "is not a page this console gave"))
    scope = biller_scope(user)
    biller = text("biller") if scope is None else scope
    if biller is not None and not re.fullmatch(BILLER_ID, biller):
        errors.append(FieldError("biller", "収納企業IDが正しくありません"))
    if errors:
        raise InvalidRequest(errors, Refusal.MALFORMED)
    return BillFilter(
        biller_id=biller,
        q=q,
        status=status,
        due_from=due_from,
        due_to=due_to,
        channel=channel,
        before_id=int(before) if before is not None else None,
    )


@dataclass(frozen=True)
class BillPage:
    """One page of the list: the bills (as the bills API renders them, with their biller and
    what the search matched), and the ``before`` of the next page."""

    rows: list[dict[str, Any]]
    next_before: int | None
    billers: dict[str, str]  # biller_id → name, for a center user's biller column and filter


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


_EVENT_PAYMENT_KINDS = {"preliminary", "confirmation", "void", "failure", "correction"}


def timeline(story: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entries of a bill's story, oldest first; each ``{"at", "kind", "detail"}`` where
    ``kind`` is ``issued``, ``reissued``, ``<channel>.<message kind>`` (``cvs.preliminary``
    is a 速報), ``transfer.requested``, ``event`` or ``webhook``."""
    bill = story["bill"]
    slips = {s["reissue"]: s for s in story["slips"]}
    first = slips.get(0, bill)  # a bill without a slip: as it is now
    entries: list[dict[str, Any]] = [
        {
            "at": _when(bill["created_at"]),
            "kind": "issued",
            "detail": {"amount": first["amount"], "due_date": first["due_date"]},
        }
    ]
    reissues = [e for e in story["events"] if e["type"] == "bill.reissued"]
    for number, event in enumerate(reissues, 1):
        slip = slips.get(number, {})
        entries.append(
            {
                "at": _when(event["created_at"]),
                "kind": "reissued",
                "detail": {
                    "reissue": number,
                    "amount": slip.get("amount"),
                    "due_date": slip.get("due_date"),
                },
            }
        )
    for payment in story["payments"]:
        for m in payment["messages"]:
            if m["kind"] not in _EVENT_PAYMENT_KINDS:
                continue
            entries.append(
                {
                    "at": _when(m["received_at"]),
                    "kind": f"{m['channel']}.{m['kind']}",
                    "detail": {
                        "payment_id": payment["payment_id"],
                        "amount": m["amount"],
                        "paid_at": _when(m["paid_at"]),
                        "source": m["source"],
                        "outcome": m["outcome"],
                        "store": payment.get("store"),
                        "anomalies": [a["kind"] for a in m["anomalies"]],
                    },
                }
            )
    for request in story["transfer_requests"]:
        entries.append(
            {
                "at": _when(request["created_at"]),
                "kind": "transfer.requested",
                "detail": {
                    "debit_date": request["debit_date"],
                    "file_name": request["file_name"],
                    "amount": request["amount"],
                },
            }
        )
    for event in story["events"]:
        entries.append(
            {"at": _when(event["created_at"]), "kind": "event", "detail": {"type": event["type"]}}
        )
    for delivery in story["webhook_deliveries"]:
        attempts = delivery["attempts"]
        last = attempts[-1] if attempts else None
        entries.append(
            {
                "at": _when(delivery["completed_at"] or delivery["created_at"]),
                "kind": "webhook",
                "detail": {
                    "event_type": delivery["event_type"],
                    "url": delivery["url"],
                    "state": delivery["state"],
                    "attempts": len(attempts),
                    "status_code": last["status_code"] if last else None,
                },
            }
        )
    return sorted(
        (e for e in entries if e["at"] is not None), key=lambda e: (e["at"], _ORDER[e["kind"]])
    )


def offers(bill: Bill, today: date, now: datetime) -> dict[str, bool]:
    """``{"reissue": …, "cancel": …}``: whether the ledger would take each now."""
    try:
        cancel = ledger.cancel_bill(bill, now=now).bill_changed
    except TransitionError:
        cancel = False
    try:
        slip = None if bill.slip is None else replace(bill.slip, reissue=bill.reissue + 1)
        ledger.reissue_bill(
            bill, slip=slip, amount=bill.amount, due_date=None, today=today, now=now
        )
        reissue = True
    except (TransitionError, ValueError):
        reissue = False
    return {"reissue": reissue, "cancel": cancel}


class _Order(dict[str, int]):
    def __missing__(self, key: str) -> int:
        return 1  # payments and transfers between the issue and the events they caused


_ORDER = _Order(issued=0, reissued=1, event=2, webhook=3)


class ConsoleBills:
    """The bills screens' reads, each one store interaction."""

    def __init__(self, store: Store, clock: IReactorTime, render: Render) -> None:
        self.store = store
        self.clock = clock
        self.render = render  # the bills API's rendering (with the payment page's URL)

    async def page(self, user: ConsoleUser, f: BillFilter) -> BillPage:
        if biller_scope(user) is not None and f.biller_id != biller_scope(user):
            raise NotFound("bills")  # parse_filters never gives this: a guard
        return await self.store.run_interaction("console.bills", self._page, f)

    def _page(self, conn: Connection, f: BillFilter) -> BillPage:
        found = search_bills(conn, f, PAGE + 1)
        rows = [
            {"biller_id": bill.biller_id, "matched": matched, "bill": self.render(bill)}
            for _, bill, matched in found[:PAGE]
        ]
        next_before = found[PAGE - 1][0] if len(found) > PAGE else None
        billers = {b.biller_id: b.name for b in list_billers(conn)}
        return BillPage(rows, next_before, billers)

    async def bill(self, user: ConsoleUser, biller_id: str, bill_no: str) -> dict[str, Any]:
        """The bill's story with its timeline and its biller's name; :class:`NotFound` for a
        bill the user may not see."""
        if not sees_biller(user, biller_id):
            raise NotFound(f"bill {bill_no}")
        return await self.store.run_interaction(
            "console.bill",
            self._bill,
            biller_id,
            bill_no,
            clock_today(self.clock),
            clock_now(self.clock),
        )

    def _bill(
        self, conn: Connection, biller_id: str, bill_no: str, today: date, now: datetime
    ) -> dict[str, Any]:
        story = bill_story(conn, biller_id, bill_no, self.render)
        names = {b.biller_id: b.name for b in list_billers(conn)}
        found = get_bill(conn, biller_id, bill_no)
        assert found is not None  # bill_story found it in this transaction
        return {
            **story,
            "biller_name": names.get(biller_id, biller_id),
            "timeline": timeline(story),
            "offers": offers(found[1], today, now),
        }
