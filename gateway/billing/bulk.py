"""Bulk registration (spec/merchant-api.md, "Bulk registration"): a CSV file of bills, all or none.

The same file comes through ``POST /v1/bills/batch`` or the biller's watched folder. It is read
as a stream (bytes or a seekable binary file, decoded a block at a time, never held as text or
rows) and every row checked with the rules of ``POST /v1/bills`` (the same function,
:func:`gateway.billing.bills.parse_bill_request`) on a worker thread, so that a large file does
not hold up the reactor. Then one store interaction reads the rows that passed again,
:data:`INSERT_CHUNK` at a time, checks what needs the database (the biller's channels, the
bill_nos it has already) and, while no row is wrong, stores each chunk's new bills set-based
(:func:`gateway.store.bills.insert_bills`); then the batch and its rows, and each bill's
``bill.created`` event (spooled to a temporary file meanwhile): one commit for the whole file.
With any bad row the transaction is rolled back, so nothing is stored, and every bad row and
field is named (``row 12: amount``; the header is row 1).

A row whose ``bill_no`` the biller already has with identical fields is counted as ``existing``
(as ``POST /v1/bills`` answers 200 for it); with different fields it is an error of that row.

A caller that shows the work as it goes (the console's upload: gateway.billing.console_bulk)
passes ``progress``, told ``("check", rows checked, rows)`` while the rows are checked and
``("store", rows stored, rows that passed)`` while they are stored, and may choose the ``batch_id``
and pass an ``audit`` hook, called in the file's transaction with its summary.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from itertools import islice
from typing import IO, Any, TypeVar

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
    BillRows,
    bill_document,
    csv_lines,
    open_bill_file,
    write_csv,
)
from gateway.model import Bill, BillTerms, Channel, EventType, Outcome
from gateway.store.batches import Batch, BatchItem, batch_bills_page, get_batch, insert_batch
from gateway.store.billers import active_biller, get_biller
from gateway.store.bills import Identifiers, NewBill, find_bills, insert_bills
from gateway.store.events import append_event_chunks, event_json
from gateway.store.idempotency import IdempotencyClaim, StoredResponse, run_idempotent
from gateway.store.notify import queue_bill_emails

T = TypeVar("T")

MAX_ROWS = 100_000  # bill rows in one file (spec)
MAX_BYTES = 64 * 1024 * 1024  # as the API's limit for a text/csv body (spec)
INSERT_CHUNK = 2000  # rows read, checked and stored at a time (all in the one transaction)
RESULT_CHUNK = 5000  # rows of a result file read and written at a time
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
    """A file read and checked row by row (what needs no database). The rows that passed are
    not kept: the store reads them again from the file (:func:`passed_rows`), a chunk at a
    time, so a large file is never held as rows."""

    encoding: str
    passed: int  # rows that passed
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


def _stream(data: bytes | IO[bytes]) -> IO[bytes]:
    return io.BytesIO(data) if isinstance(data, bytes) else data


def _size(stream: IO[bytes]) -> int:
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    return size


def _too_many_rows(count: int) -> InvalidRequest:
    return InvalidRequest(
        [
            FieldError(
                "body",
                f"the file has {count:,} bill rows; at most {MAX_ROWS:,} in one file: split it",
            )
        ],
        Refusal.TOO_LARGE,
        "Payload too large",
        detail=f"at most {MAX_ROWS:,} bill rows in one file",
    )


def check_file(
    data: bytes | IO[bytes],
    charset: str | None,
    *,
    limits: Mapping[Channel, int],
    today: date,
    max_due_days: int,
    source: str = "file",
    progress: Progress | None = None,
) -> CheckedFile:
    """Read a bulk file (bytes, or a seekable binary file: read as a stream, never whole) and
    check each row as ``POST /v1/bills`` checks a body, plus a bill_no twice in the file.
    Raises :class:`InvalidRequest` when the file cannot be read as bills at all: a charset the
    gateway does not read (:attr:`Refusal.UNSUPPORTED_ENCODING`), more than :data:`MAX_BYTES`
    or :data:`MAX_ROWS` rows (:attr:`Refusal.TOO_LARGE`), or its encoding, its header, a record
    that is not CSV or no bill rows (:attr:`Refusal.INVALID`)."""
    stream = _stream(data)
    size = _size(stream)
    if size > MAX_BYTES:
        raise InvalidRequest(
            [FieldError("body", f"the file has {size:,} bytes; at most {MAX_BYTES:,}")],
            Refusal.TOO_LARGE,
            "Payload too large",
        )
    # ``of`` for the progress: the file's lines, a bound known before reading it (rows are
    # counted as they are read; a record may span lines).
    lines = _count_lines(stream) if progress is not None else 0
    opened = _open(stream, charset, source)
    passed = 0
    errors: list[tuple[int, str, str]] = []
    first_row: dict[str, int] = {}
    total = 0
    try:
        for row in opened.rows:
            if progress is not None and total % PROGRESS_EVERY == 0:
                progress("check", total, max(lines - 1, total))
            total += 1
            if total > MAX_ROWS:
                continue  # counted, for the refusal to say how many
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
                parse_bill_request(
                    bill_document(row.cells), limits=limits, today=today, max_due_days=max_due_days
                )
            except InvalidRequest as e:
                errors += [(row.row, _column(f.field), f.message) for f in e.errors]
                continue
            passed += 1
    except FileErrors as e:
        raise _refused([(r.record, r.field, r.reason) for r in e.errors]) from None
    if total > MAX_ROWS:
        raise _too_many_rows(total)
    if not total:
        raise _refused([(2, "row", "no bills: the file has a header row and nothing after it")])
    if progress is not None:
        progress("check", total, total)
    return CheckedFile(opened.encoding, passed, tuple(errors), total)


def _count_lines(stream: IO[bytes]) -> int:
    lines = 1
    while block := stream.read(1 << 20):
        lines += block.count(b"\n")
    stream.seek(0)
    return lines


def _open(stream: IO[bytes], charset: str | None, source: str) -> BillRows:
    try:
        return open_bill_file(stream, charset, source)
    except ValueError as e:
        raise InvalidRequest(
            [FieldError("Content-Type", f"{e}; send charset=utf-8 or charset=shift_jis")],
            Refusal.UNSUPPORTED_ENCODING,
            "Unsupported media type",
        ) from None
    except FileErrors as e:
        raise _refused([(r.record, r.field, r.reason) for r in e.errors]) from None


def passed_rows(
    stream: IO[bytes],
    checked: CheckedFile,
    *,
    limits: Mapping[Channel, int],
    today: date,
    max_due_days: int,
) -> Iterator[RowTerms]:
    """The rows of a checked file that passed (:func:`check_file`), read again from the file,
    with their terms, in the file's order."""
    bad = {row for row, _, _ in checked.errors}
    for row in open_bill_file(stream, checked.encoding).rows:
        if row.row in bad:
            continue
        terms = parse_bill_request(
            bill_document(row.cells), limits=limits, today=today, max_due_days=max_due_days
        )
        yield RowTerms(row.row, terms, terms.fingerprint())


def _chunks(rows: Iterator[RowTerms], size: int) -> Iterator[list[RowTerms]]:
    while chunk := list(islice(rows, size)):
        yield chunk


def _spooled_events(spool: IO[bytes]) -> Iterator[list[tuple[str, str, str]]]:
    """The events of a file's new bills, from the spool its transaction wrote (one JSON a
    line), :data:`INSERT_CHUNK` at a time, each with its new event_id."""
    lines = (line.decode().rstrip("\n") for line in spool)
    while chunk := list(islice(lines, INSERT_CHUNK)):
        yield [("evt_" + secrets.token_hex(12), BILL_CREATED, data) for data in chunk]


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
        data: bytes | IO[bytes],
        charset: str | None,
        claim: IdempotencyClaim | None,
        source: str = "api",
        *,
        batch_id: str | None = None,
        progress: Progress | None = None,
        audit: BatchAudit | None = None,
    ) -> StoredResponse:
        """Register a whole file (bytes, or a seekable binary file, read as a stream): the
        summary (created), or :class:`InvalidRequest`."""
        clock = self.bills.clock
        today = clock_today(clock)
        origin = "inbox" if source.startswith("inbox") else "api"
        stream = _stream(data)
        rules: dict[str, Any] = {
            "limits": self.bills.issuer.channel_limits(),
            "today": today,
            "max_due_days": self.config.bills.max_due_days,
        }
        try:
            checked = await self._in_thread(
                partial(check_file, stream, charset, source=source, progress=progress, **rules)
            )
            now = clock_now(clock)
            batch_id = batch_id or self.new_batch_id()
            store = partial(
                self._store, biller_id, stream, checked, rules, batch_id, source, now, progress
            )
            stored = await self.store.run_interaction(
                "bills.batch",
                run_idempotent,
                claim,
                now,
                self.config.api.idempotency_ttl,
                partial(store, audit),
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
        stream: IO[bytes],
        checked: CheckedFile,
        rules: Mapping[str, Any],
        batch_id: str,
        source: str,
        now: datetime,
        progress: Progress | None,
        audit: BatchAudit | None,
        conn: Connection,
    ) -> StoredResponse:
        """The file's one transaction. The rows that passed are read again from the file and
        checked against the database, a chunk at a time; while no row of the file is wrong,
        each chunk's new bills are stored at once, their events' JSON spooled to a temporary
        file. Any wrong row (found before or here) stops the storing, the rest is still checked
        for the refusal to name every error, and raising rolls back whatever was stored: the
        file is stored whole or not at all. The events go last (their seqs lock the biller's
        row until the commit), read back from the spool a chunk at a time."""
        today: date = rules["today"]
        if conn.dialect.name == "postgresql":
            # The same lookup runs once per chunk while this transaction grows the bills table
            # by up to the whole file: after five runs psycopg prepares it and PostgreSQL may
            # switch to a generic plan made for the table's last statistics (an empty table:
            # a scan with a 2,000-parameter IN list per row), which made a 100,000-row file
            # take 126 s instead of about 20 (bench/bulk.py). Plan each run for its values.
            conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
        biller = active_biller(conn, biller_id)  # none for a suspended biller
        errors = list(checked.errors)
        issuer = self.bills.issuer
        event_doc = self.bills.event_doc
        want_mail = self.config.mail is not None
        items: list[BatchItem] = []
        mail: list[tuple[str, int]] = []
        raced: list[RowTerms] = []
        created = 0
        done = 0

        def sort_out(rows: Sequence[RowTerms]) -> list[RowTerms]:
            """The rows whose bill_no is new; an existing one is the same bill (a replay) or
            an error of the row."""
            new_rows = []
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
            return new_rows

        def identify(serial: int, terms: BillTerms) -> Identifiers:
            return issuer.identify(biller, serial, terms, today)

        with tempfile.TemporaryFile() as spool:
            for chunk in _chunks(passed_rows(stream, checked, **rules), INSERT_CHUNK):
                for r in chunk:
                    refused = biller_channel_error(biller, r.terms.channels)
                    if refused is not None:
                        errors.append((r.row, "channels", refused))
                    else:
                        refusals = issuer.refusals(biller, r.terms) + due_window_refusals(
                            biller, r.terms.channels, r.terms.due_date, today
                        )
                        errors += [(r.row, _column(e.field), e.message) for e in refusals]
                new_rows = sort_out(chunk)
                done += len(chunk)
                if errors:
                    continue  # the file will be refused: nothing more is stored
                news = [
                    NewBill(
                        biller_id,
                        r.terms,
                        self.bills.stored_token(biller_id, r.terms.bill_no),
                        r.fingerprint,
                    )
                    for r in new_rows
                ]
                lines = []
                for r, stored in zip(
                    new_rows, insert_bills(conn, news, now, identify), strict=True
                ):
                    if stored is None:
                        raced.append(r)  # stored by a concurrent request since we looked
                        continue
                    serial, bill = stored
                    items.append(BatchItem(r.row, serial, True))
                    lines.append(event_json({"bill": event_doc(bill)}))
                    if want_mail and bill.customer.email:
                        mail.append((biller_id, serial))
                created += len(lines)
                if lines:
                    spool.write(("\n".join(lines) + "\n").encode())
                if progress is not None:
                    progress("store", done, checked.passed)
            if raced and not errors:
                still_new = sort_out(raced)
                if still_new and not errors:
                    errors = [(r.row, "bill_no", "changed concurrently") for r in still_new]
            if errors:
                raise _refused(errors)
            items.sort(key=lambda item: item.row)
            batch = Batch(
                batch_id,
                biller_id,
                source,
                checked.encoding,
                len(items),
                created,
                len(items) - created,
                now,
            )
            insert_batch(conn, batch, items)
            if mail:
                queue_bill_emails(conn, mail, now)
            # Last: it locks the biller's row for the events' seq until the commit.
            spool.seek(0)
            append_event_chunks(conn, biller_id, created, _spooled_events(spool), now)
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
        Read and written :data:`RESULT_CHUNK` rows at a time: only the file's bytes are held
        whole, never its bills.
        """
        batch = await self.store.run_interaction(
            "bills.batch.result", get_batch, biller_id, batch_id
        )
        if batch is None:
            raise NotFound(f"batch {batch_id}")
        chosen = encoding or batch.encoding
        parts = [write_csv(RESULT_COLUMNS, (), chosen)]
        after = 0
        while True:
            rows = await self.store.run_interaction(
                "bills.batch.result", batch_bills_page, batch_id, after, RESULT_CHUNK
            )
            if rows:
                parts.append(await self._in_thread(partial(self._result, rows, chosen)))
                after = rows[-1][0].row
            if len(rows) < RESULT_CHUNK:
                return b"".join(parts), chosen

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

        return csv_lines((line(i, b) for i, b in rows), encoding)

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
