"""Bulk registration (spec/merchant-api.md, "Bulk registration"): a CSV file of bills, all or none.

The same file comes through ``POST /v1/bills/batch`` or the biller's watched folder. It is read
and every row checked with the rules of ``POST /v1/bills`` (the same function,
:func:`gateway.billing.bills.parse_bill_request`) on a worker thread, so that a large file does
not hold up the reactor. Then one store interaction checks what needs the database (the biller's
channels, the bill_nos it has already) and, when no row is wrong, stores every new bill
set-based (:func:`gateway.store.bills.insert_bills`), the batch and its rows, and each bill's
``bill.created`` event: one commit for the whole file. With any bad row nothing is stored and
every bad row and field is named (``row 12: amount``; the header is row 1).

A row whose ``bill_no`` the biller already has with identical fields is counted as ``existing``
(as ``POST /v1/bills`` answers 200 for it); with different fields it is an error of that row.

A caller that shows the work as it goes (the console's upload: gateway.billing.console_bulk)
passes ``progress``, told ``("check", rows checked, rows)`` while the rows are checked and
``("store", bills stored, new bills)`` while they are stored, and may choose the ``batch_id``
and pass an ``audit`` hook, called in the file's transaction with its summary.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any, TypeVar

from prometheus_client import Counter
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool

from gateway.billing.bills import BillService, biller_channel_error, parse_bill_request
from gateway.billing.chains import due_window_refusals
from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.errors import FieldError, FileErrors, InvalidRequest, NotFound, Refusal
from gateway.mappers.bills_csv import (
    COLUMNS,
    ERROR_COLUMNS,
    RESULT_COLUMNS,
    SHIFT_JIS,
    UTF8,
    bill_document,
    read_bill_file,
    write_csv,
)
from gateway.model import Bill, BillTerms, Channel, EventType, Outcome
from gateway.store.batches import Batch, BatchItem, batch_bills, insert_batch
from gateway.store.billers import active_biller, get_biller
from gateway.store.bills import Identifiers, NewBill, find_bills, insert_bills
from gateway.store.events import append_events, event_json
from gateway.store.idempotency import IdempotencyClaim, StoredResponse, run_idempotent
from gateway.store.notify import queue_bill_emails

T = TypeVar("T")

MAX_ROWS = 100_000  # bill rows in one file (spec)
MAX_BYTES = 64 * 1024 * 1024  # as the API's limit for a text/csv body (spec)
INSERT_CHUNK = 5000  # new bills built and inserted at a time (all in the one transaction)
BILL_CREATED = EventType.BILL_CREATED.value
BATCH_ID = r"bat_[0-9a-f]{24}"

FILES = Counter(
    "gateway_bulk_files_total",
    "Bulk bill files, by where they came from (api, inbox) and result (stored, refused).",
    ["source", "result"],
)
BILLS = Counter(
    "gateway_bulk_bills_total",
    "Rows of stored bulk files, by result (created, existing).",
    ["result"],
)

# The API's field paths, as the file's columns.
_COLUMN_OF = {
    "customer.customer_no": "customer_no",
    "customer.name": "name",
    "customer.kana": "kana",
    "customer.email": "email",
    "customer.phone": "phone",
    "tax.taxable": "taxable",
    "tax.tax_amount": "tax_amount",
}
_ORDER = {name: i for i, name in enumerate(COLUMNS)}
_FIELD = re.compile(r"row ([0-9]+): (.*)", re.DOTALL)
PROGRESS_EVERY = 250  # rows checked between two reports to a ``progress`` callable

#: Told how far a file has gone: ``(stage, done, of)``, stage ``check`` or ``store``.
Progress = Callable[[str, int, int], None]
#: Called inside the file's transaction with its summary (gateway.billing.console_bulk).
BatchAudit = Callable[[Connection, Mapping[str, Any]], None]


def _column(path: str) -> str:
    base = path.split("[", 1)[0]  # channels[1] -> channels: the cell, whichever channel it is
    return _COLUMN_OF.get(base, base)


@dataclass(frozen=True)
class RowTerms:
    row: int
    terms: BillTerms
    fingerprint: str


@dataclass(frozen=True)
class CheckedFile:
    """A file read and checked row by row (what needs no database)."""

    encoding: str
    rows: tuple[RowTerms, ...]  # the rows that passed
    errors: tuple[tuple[int, str, str], ...]  # (row, column, message) of the others
    total: int  # bill rows in the file


def _refused(errors: Sequence[tuple[int, str, str]]) -> InvalidRequest:
    ordered = sorted(errors, key=lambda e: (e[0], _ORDER.get(e[1], len(_ORDER)), e[1]))
    rows = len({e[0] for e in ordered})
    return InvalidRequest(
        [FieldError(f"row {row}: {column}", message) for row, column, message in ordered],
        title="The file has invalid rows",
        detail=f"{len(ordered)} error(s) in {rows} row(s); nothing of the file was stored",
    )


def check_file(
    data: bytes,
    charset: str | None,
    *,
    limits: Mapping[Channel, int],
    today: date,
    max_due_days: int,
    source: str = "file",
    progress: Progress | None = None,
) -> CheckedFile:
    """Read a bulk file and check each row as ``POST /v1/bills`` checks a body, plus a bill_no
    twice in the file. Raises :class:`InvalidRequest` when the file cannot be read as bills at
    all: a charset the gateway does not read (:attr:`Refusal.UNSUPPORTED_ENCODING`), more than
    :data:`MAX_BYTES` or :data:`MAX_ROWS` rows (:attr:`Refusal.TOO_LARGE`), or its encoding,
    its header or no bill rows (:attr:`Refusal.INVALID`)."""
    if len(data) > MAX_BYTES:
        raise InvalidRequest(
            [FieldError("body", f"the file has {len(data):,} bytes; at most {MAX_BYTES:,}")],
            Refusal.TOO_LARGE,
            "Payload too large",
        )
    try:
        bill_file = read_bill_file(data, charset, source)
    except ValueError as e:
        raise InvalidRequest(
            [FieldError("Content-Type", f"{e}; send charset=utf-8 or charset=shift_jis")],
            Refusal.UNSUPPORTED_ENCODING,
            "Unsupported media type",
        ) from None
    except FileErrors as e:
        raise _refused([(r.record, r.field, r.reason) for r in e.errors]) from None
    if len(bill_file.rows) > MAX_ROWS:
        raise InvalidRequest(
            [
                FieldError(
                    "body",
                    f"the file has {len(bill_file.rows):,} bill rows; at most {MAX_ROWS:,}"
                    " in one file: split it",
                )
            ],
            Refusal.TOO_LARGE,
            "Payload too large",
            detail=f"at most {MAX_ROWS:,} bill rows in one file",
        )
    if not bill_file.rows:
        raise _refused([(2, "row", "no bills: the file has a header row and nothing after it")])
    passed: list[RowTerms] = []
    errors: list[tuple[int, str, str]] = []
    first_row: dict[str, int] = {}
    for done, row in enumerate(bill_file.rows):
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress("check", done, len(bill_file.rows))
        bill_no = row.cells.get("bill_no")
        if bill_no is not None:
            first = first_row.setdefault(bill_no, row.row)
            if first != row.row:
                errors.append((row.row, "bill_no", f"{bill_no} is also on row {first}"))
                continue
        if row.problem is not None:
            errors.append((row.row, "row", row.problem))
            continue
        try:
            terms = parse_bill_request(
                bill_document(row.cells), limits=limits, today=today, max_due_days=max_due_days
            )
        except InvalidRequest as e:
            errors += [(row.row, _column(f.field), f.message) for f in e.errors]
            continue
        passed.append(RowTerms(row.row, terms, terms.fingerprint()))
    if progress is not None:
        progress("check", len(bill_file.rows), len(bill_file.rows))
    return CheckedFile(bill_file.encoding, tuple(passed), tuple(errors), len(bill_file.rows))


def _dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class FileOutcome:
    """What the watched folder writes for one file."""

    accepted: bool
    report: str  # a few lines for NAME.report.txt
    output: bytes  # the result CSV (accepted) or the errors CSV (refused)


class BulkService:
    def __init__(
        self,
        bills: BillService,
        reactor: IReactorThreads,
        new_batch_id: Callable[[], str] | None = None,
    ) -> None:
        self.bills = bills
        self.store = bills.store
        self.config = bills.config
        self.reactor = reactor
        self.new_batch_id = new_batch_id or (lambda: "bat_" + secrets.token_hex(12))

    def _in_thread(self, fn: Callable[[], T]) -> Deferred[T]:
        """CPU work off the reactor thread (the store's threads are for transactions)."""
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), fn)

    def result_url(self, batch_id: str) -> str:
        return f"{self.bills.public_url}/v1/bills/batch/{batch_id}/result.csv"

    async def register(
        self,
        biller_id: str,
        data: bytes,
        charset: str | None,
        claim: IdempotencyClaim | None,
        source: str = "api",
        *,
        batch_id: str | None = None,
        progress: Progress | None = None,
        audit: BatchAudit | None = None,
    ) -> StoredResponse:
        """Register a whole file: the summary (created), or :class:`InvalidRequest`."""
        clock = self.bills.clock
        today = clock_today(clock)
        origin = "inbox" if source.startswith("inbox") else "api"
        try:
            checked = await self._in_thread(
                partial(
                    check_file,
                    data,
                    charset,
                    limits=self.bills.issuer.channel_limits(),
                    today=today,
                    max_due_days=self.config.bills.max_due_days,
                    source=source,
                    progress=progress,
                )
            )
            now = clock_now(clock)
            batch_id = batch_id or self.new_batch_id()
            stored = await self.store.run_interaction(
                "bills.batch",
                run_idempotent,
                claim,
                now,
                self.config.api.idempotency_ttl,
                partial(
                    self._store, biller_id, checked, batch_id, source, today, now, progress, audit
                ),
            )
        except InvalidRequest:
            FILES.labels(origin, "refused").inc()
            raise
        FILES.labels(origin, "stored").inc()
        if not stored.replayed:
            summary = json.loads(stored.body)
            BILLS.labels("created").inc(summary["created"])
            BILLS.labels("existing").inc(summary["existing"])
        return stored

    def _store(
        self,
        biller_id: str,
        checked: CheckedFile,
        batch_id: str,
        source: str,
        today: date,
        now: datetime,
        progress: Progress | None,
        audit: BatchAudit | None,
        conn: Connection,
    ) -> StoredResponse:
        biller = active_biller(conn, biller_id)  # none for a suspended biller
        errors = list(checked.errors)
        for r in checked.rows:
            refused = biller_channel_error(biller, r.terms.channels)
            if refused is not None:
                errors.append((r.row, "channels", refused))
            else:
                refusals = self.bills.issuer.refusals(biller, r.terms) + due_window_refusals(
                    biller, r.terms.channels, r.terms.due_date, today
                )
                errors += [(r.row, _column(e.field), e.message) for e in refusals]
        items: list[BatchItem] = []
        new_rows: list[RowTerms] = []

        def sort_out(rows: Sequence[RowTerms]) -> None:
            """An existing bill_no: the same bill (a replay) or an error of the row."""
            found = find_bills(conn, biller_id, [r.terms.bill_no for r in rows])
            for r in rows:
                hit = found.get(r.terms.bill_no)
                if hit is None:
                    new_rows.append(r)
                elif hit[1] == r.fingerprint:
                    items.append(BatchItem(r.row, hit[0], False))
                else:
                    errors.append(
                        (r.row, "bill_no", f"{r.terms.bill_no} exists already with other fields")
                    )

        sort_out(checked.rows)
        if errors:
            raise _refused(errors)
        issuer = self.bills.issuer
        event_doc = self.bills.event_doc
        want_mail = self.config.mail is not None

        def identify(serial: int, terms: BillTerms) -> Identifiers:
            return issuer.identify(biller, serial, terms, today)

        # In chunks, keeping of each new bill only its event's JSON: a 100,000-row file would
        # otherwise hold every Bill, row and document at once.
        new_events: list[tuple[str, str, str]] = []
        mail: list[tuple[str, int]] = []
        raced: list[RowTerms] = []
        to_insert, new_rows = new_rows, []
        for start in range(0, len(to_insert), INSERT_CHUNK):
            chunk = to_insert[start : start + INSERT_CHUNK]
            news = [
                NewBill(
                    biller_id,
                    r.terms,
                    self.bills.stored_token(biller_id, r.terms.bill_no),
                    r.fingerprint,
                )
                for r in chunk
            ]
            for r, stored in zip(chunk, insert_bills(conn, news, now, identify), strict=True):
                if stored is None:
                    raced.append(r)  # stored by a concurrent request since we looked
                    continue
                serial, bill = stored
                items.append(BatchItem(r.row, serial, True))
                event_id = "evt_" + secrets.token_hex(12)
                new_events.append((event_id, BILL_CREATED, event_json({"bill": event_doc(bill)})))
                if want_mail and bill.customer.email:
                    mail.append((biller_id, serial))
            if progress is not None:
                progress("store", start + len(chunk), len(to_insert))
        if raced:
            sort_out(raced)
            if errors or new_rows:
                raise _refused(
                    errors or [(r.row, "bill_no", "changed concurrently") for r in new_rows]
                )
        items.sort(key=lambda item: item.row)
        batch = Batch(
            batch_id,
            biller_id,
            source,
            checked.encoding,
            len(items),
            len(new_events),
            len(items) - len(new_events),
            now,
        )
        insert_batch(conn, batch, items)
        if mail:
            queue_bill_emails(conn, mail, now)
        # Last: it locks the biller's row for the events' seq until the commit.
        append_events(conn, biller_id, new_events, now)
        summary = {
            "batch_id": batch_id,
            "rows": batch.rows,
            "created": batch.created,
            "existing": batch.existing,
            "result_url": self.result_url(batch_id),
        }
        if audit is not None:
            audit(conn, summary)
        return StoredResponse(Outcome.CREATED, _dumps(summary))

    async def result_csv(
        self, biller_id: str, batch_id: str, encoding: str | None = UTF8
    ) -> tuple[bytes, str]:
        """The batch's result file and its encoding (None: the file's own, as read).

        One row per bill row of the file, in its order: the bill as ``GET /v1/bills/{bill_no}``
        shows it now, and whether this file created it or found it (``created``, ``existing``).
        """
        found = await self.store.run_interaction(
            "bills.batch.result", batch_bills, biller_id, batch_id
        )
        if found is None:
            raise NotFound(f"batch {batch_id}")
        batch, rows = found
        chosen = encoding or batch.encoding
        return await self._in_thread(partial(self._result, rows, chosen)), chosen

    def _result(self, rows: Sequence[tuple[BatchItem, Bill]], encoding: str) -> bytes:
        render = self.bills.render

        def line(item: BatchItem, bill: Bill) -> list[object]:
            doc = render(bill)
            cvs = doc.get("cvs", {})
            pe = doc.get("payeasy", {})
            return [
                item.row,
                doc["bill_no"],
                "created" if item.created else "existing",
                doc["status"],
                doc["amount"],
                doc["due_date"],
                cvs.get("barcode"),
                cvs.get("human_readable"),
                pe.get("institution_code"),
                pe.get("customer_number"),
                pe.get("confirmation_number"),
                doc["page_url"],
            ]

        return write_csv(RESULT_COLUMNS, (line(i, b) for i, b in rows), encoding)

    # --- the watched folder (gateway.protocols.bill_inbox, wired by gateway.app.service) ------

    def refuse_entry(self, name: str, reason: str) -> FileOutcome:
        """An entry of the folder set aside unread (a link, not a regular file, too large):
        its errors file says why, in the words of :mod:`gateway.infra.safe_files` (never its
        content)."""
        FILES.labels("inbox", "refused").inc()
        output = write_csv(ERROR_COLUMNS, [("", "file", reason)], UTF8)
        return FileOutcome(False, f"refused: {reason}", output)

    async def biller_exists(self, biller_id: str) -> bool:
        def txn(conn: Connection) -> bool:
            try:
                get_biller(conn, biller_id)
            except NotFound:
                return False
            return True

        return await self.store.run_interaction("bills.batch.biller", txn)

    async def register_file(self, biller_id: str, name: str, data: bytes) -> FileOutcome:
        """A file from the biller's folder, registered as the API does. The same bytes again
        (within the idempotency TTL, e.g. after a crash before the file was moved) get the
        first registration's result: the claim is keyed by the file's SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        claim = IdempotencyClaim(f"inbox:{biller_id}", f"file:{digest}", digest)
        try:
            stored = await self.register(biller_id, data, None, claim, f"inbox:{name}")
        except InvalidRequest as e:
            return self._refusal(e, data)
        summary = json.loads(stored.body)
        result, _ = await self.result_csv(biller_id, summary["batch_id"], None)
        report = (
            f"registered: batch {summary['batch_id']}: {summary['rows']} bill row(s),"
            f" {summary['created']} created, {summary['existing']} existing"
        )
        return FileOutcome(True, report, result)

    def errors_file(self, e: InvalidRequest, data: bytes) -> bytes:
        """The errors CSV of a refused file (``row``, ``column``, ``message``), as the watched
        folder writes it, in the file's encoding."""
        return self._refusal(e, data).output

    def _refusal(self, e: InvalidRequest, data: bytes) -> FileOutcome:
        rows: list[tuple[object, str, str]] = []
        for f in e.errors:
            m = _FIELD.fullmatch(f.field)
            rows.append((int(m[1]), m[2], f.message) if m else ("", f.field, f.message))
        try:
            data.decode("utf-8")
            encoding = UTF8
        except UnicodeDecodeError:
            encoding = SHIFT_JIS
        lines = [f"refused: {e}"]
        lines += [f"{f.field}: {f.message}" for f in e.errors[:20]]
        if len(e.errors) > 20:
            lines.append(f"... and {len(e.errors) - 20} more")
        return FileOutcome(False, "\n".join(lines), write_csv(ERROR_COLUMNS, rows, encoding))
