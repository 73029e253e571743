"""Printed slips (払込票) for a set of a biller's bills, as one PDF of at most 100 slips
(gateway.render.slips): the bills of a bulk registration, in its file's row order, or the bills a
filter names (due from / to, a customer), in the order they were registered.

Only bills whose slip can still be paid are printed (gateway.store.slips.printable): open, with
a barcode or Pay-easy numbers, not past their due date, with no account-transfer debit in flight
and with their customer's data; the others of the set are skipped. A set of more than 100 such
bills is printed 100 at a time: each file comes with the cursor of the next (``None`` on the
last), as the API's lists do. A set with nothing to print is :class:`NotFound`.

The API (``GET /v1/bills/batch/{batch_id}/slips.pdf``, ``GET /v1/bills/slips.pdf``) and
``gateway-admin slips`` run the same functions; the PDF is drawn on the reactor's thread pool,
never on the reactor thread.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool

from gateway.billing.bills import decode_cursor, encode_cursor
from gateway.billing.chains import chain_label
from gateway.clock import today as clock_today
from gateway.errors import FieldError, InvalidRequest, NotFound
from gateway.mappers.cvs.mapper import chain_name
from gateway.model import Bill, Biller, Principal
from gateway.render.slips import MAX_SLIPS, PrintedSlip, render_slips
from gateway.store import Store
from gateway.store.billers import get_biller
from gateway.store.slips import batch_slip_bills, filtered_slip_bills

NOTHING = (
    "a bill to print a slip for (open, with a barcode or Pay-easy numbers, not past its due"
    " date, no account-transfer debit in flight)"
)


@dataclass(frozen=True)
class SlipFilter:
    """Which of the biller's payable bills to print: due from / to (a day each, inclusive),
    of one customer (its ``customer_no``). With neither date, bills without a due date too."""

    due_from: date | None = None
    due_to: date | None = None
    customer_no: str | None = None

    def check(self) -> None:
        if self.due_from and self.due_to and self.due_from > self.due_to:
            raise InvalidRequest([FieldError("due_to", "must not be before due_from")])


@dataclass(frozen=True)
class SlipFile:
    """One PDF of slips: its file name, bytes, how many slips, and the cursor of the next file
    of the same set (None: this is the last)."""

    name: str
    pdf: bytes
    count: int
    next_cursor: str | None


def accepted_chain_names(biller: Biller) -> tuple[str, ...]:
    """The chains the biller accepts, as its slips name them (empty: every chain)."""
    accepted = biller.chain_rules.accepted
    if accepted is None:
        return ()
    return tuple(chain_name(code) or chain_label(code) for code in sorted(accepted))


def printed_slip(biller: Biller, bill: Bill, barcode_text: Callable[[str], str]) -> PrintedSlip:
    """What the slip of ``bill`` prints (its current barcode, its Pay-easy numbers)."""
    digits = bill.slip.barcode if bill.slip is not None else None
    return PrintedSlip(
        biller_name=biller.name,
        bill_no=bill.bill_no,
        customer_name=bill.customer.name,
        customer_no=bill.customer.customer_no,
        amount=bill.amount,
        tax_amount=bill.tax.tax_amount if bill.tax.taxable else 0,
        due_date=bill.due_date,
        description=bill.description,
        barcode=digits,
        human_readable=barcode_text(digits) if digits is not None else None,
        payeasy=bill.payeasy,
        chains=accepted_chain_names(biller) if digits is not None else (),
        amount_range=(
            (bill.min_amount, bill.max_amount)
            if bill.min_amount is not None and bill.max_amount is not None
            else None
        ),
    )


@dataclass(frozen=True)
class SlipSet:
    """A page of a set's bills, as the store gave them: the biller, (cursor key, bill) of up
    to ``limit`` + 1 bills (one more: there is a next file)."""

    biller: Biller
    found: list[tuple[int, Bill]]
    limit: int


def batch_set(
    conn: Connection,
    biller_id: str,
    batch_id: str,
    today: date,
    cursor: str | None,
    limit: int = MAX_SLIPS,
) -> SlipSet:
    """The printable bills of a bulk registration after ``cursor``: :class:`NotFound` for a
    batch that is not the biller's."""
    after = decode_cursor(cursor) if cursor is not None else 0
    found = batch_slip_bills(conn, biller_id, batch_id, today, after, limit + 1)
    if found is None:
        raise NotFound(f"batch {batch_id}")
    return SlipSet(get_biller(conn, biller_id), found, limit)


def filtered_set(
    conn: Connection,
    biller_id: str,
    which: SlipFilter,
    today: date,
    cursor: str | None,
    limit: int = MAX_SLIPS,
) -> SlipSet:
    """The biller's printable bills that ``which`` names, after ``cursor``."""
    which.check()
    after = decode_cursor(cursor) if cursor is not None else 0
    found = filtered_slip_bills(
        conn,
        biller_id,
        today,
        due_from=which.due_from,
        due_to=which.due_to,
        customer_no=which.customer_no,
        after_id=after,
        limit=limit + 1,
    )
    return SlipSet(get_biller(conn, biller_id), found, limit)


def slip_file(found: SlipSet, name: str, barcode_text: Callable[[str], str]) -> SlipFile:
    """The PDF of a set's page: :class:`NotFound` when it has no bill."""
    if not found.found:
        raise NotFound(NOTHING)
    page = found.found[: found.limit]
    more = len(found.found) > found.limit
    slips = [printed_slip(found.biller, bill, barcode_text) for _, bill in page]
    pdf = render_slips(slips, title=f"払込票 {found.biller.name}")
    return SlipFile(name, pdf, len(slips), encode_cursor(page[-1][0]) if more else None)


def file_name(stem: str, cursor: str | None) -> str:
    """``slips-bat_….pdf``, ``slips-bat_…-after-100.pdf`` for a later file of the set."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:60]
    return f"slips-{safe}.pdf" if cursor is None else f"slips-{safe}-after-{cursor}.pdf"


class SlipService:
    """The merchant API's slips: one store interaction for the bills, the PDF on the reactor's
    thread pool (a test clock without threads draws it inline)."""

    def __init__(
        self, store: Store, clock: IReactorTime, barcode_text: Callable[[str], str]
    ) -> None:
        self.store = store
        self.clock = clock
        self.barcode_text = barcode_text

    async def for_batch(
        self, principal: Principal, batch_id: str, cursor: str | None, limit: int = MAX_SLIPS
    ) -> SlipFile:
        found = await self.store.run_interaction(
            "slips.batch",
            batch_set,
            principal.biller_id or "",
            batch_id,
            clock_today(self.clock),
            cursor,
            limit,
        )
        return await self._render(found, file_name(batch_id, cursor))

    async def for_filter(
        self, principal: Principal, which: SlipFilter, cursor: str | None, limit: int = MAX_SLIPS
    ) -> SlipFile:
        which.check()
        found = await self.store.run_interaction(
            "slips.filter",
            filtered_set,
            principal.biller_id or "",
            which,
            clock_today(self.clock),
            cursor,
            limit,
        )
        return await self._render(found, file_name("bills", cursor))

    async def _render(self, found: SlipSet, name: str) -> SlipFile:
        if not found.found:
            raise NotFound(NOTHING)
        reactor: Any = self.clock
        if IReactorThreads.providedBy(reactor):
            made: Deferred[SlipFile] = deferToThreadPool(
                reactor, reactor.getThreadPool(), slip_file, found, name, self.barcode_text
            )
            return await made
        return slip_file(found, name, self.barcode_text)
