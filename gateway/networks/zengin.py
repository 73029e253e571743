"""Account transfer (口座振替) end to end: request files out, result files in (spec/zengin.md).

Requests. For a debit date (a bank business day) and each biller with a consignor contract,
the gateway chooses the bills to debit — open (never paid, cancelled or expired), with the
transfer channel, an active mandate, due on the debit date or on the bank holidays right after
it (a debit falls on the last business day on or before the due date, so it is never late) —
records them as a pending request in one transaction (a bill is in at most one request per
debit date: unique in the schema). Its file then reaches ``zengin.outbox`` in two
transactions: the first stages it under a hidden name no reader takes (temp file, fsync,
rename) and marks the request ``sending``; the second publishes it (a rename the bank sees
whole) and marks it ``written``. A request left ``pending`` by a cut run was never published:
it is staged again from its items (the file is a pure function of them). One left
``sending`` was staged, perhaps published: its staged file is published, and a file no
longer staged is marked written and never written again, whether it still waits in the
outbox or the bank took it (a second copy would be a second debit: seed 8964).

Results. A result file (from ``zengin.inbox`` or ``gateway-admin import zengin-result``) is
checked whole, then applied in one transaction through the same ingest as every channel: each
record is matched to its request item by (委託者コード, 引落日, 顧客番号); ``0`` is a confirmed
payment on the debit date, any other code a ``transfer.failed`` event with the code and its
meaning (the bill stays open for the other channels), ``2``/``4`` invalidate and ``3``
suspends the mandate it was debited under, if the customer has not changed the account since.
The same file twice changes nothing (the ingest's message identity); a debit of a bill paid
elsewhere in between is a double payment, with its refund case.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy.engine import Connection
from twisted.application.service import IService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway import calendar
from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.config import Config, ZenginConfig
from gateway.errors import FileErrors, GatewayError, RecordError
from gateway.infra import safe_files
from gateway.infra.jobs import logged_run, timer
from gateway.ingest import Ingest, Received
from gateway.mappers.zengin.mapper import (
    Debit,
    ZenginFile,
    ZenginHeader,
    build_file,
    mandate_action,
    parse_file,
    result_meaning,
    to_canonical,
)
from gateway.mappers.zengin.records import NETWORK, MandateAction
from gateway.model import (
    JST,
    Biller,
    BillTerms,
    Channel,
    CollectionEvent,
    Consignor,
    MandateStatus,
    MessageKind,
    parse_transfer_key,
    transfer_key,
)
from gateway.networks.banks import bank_place
from gateway.networks.base import Started, Wiring
from gateway.protocols.inbox import FileResult, InboxWatcher
from gateway.store import Store
from gateway.store.bills import BillMatch, Identifiers, match_bill_ids
from gateway.store.zengin import (
    Item,
    Request,
    consignors_by_codes,
    due_for_debit,
    get_consignor,
    insert_items,
    insert_request,
    items_by_result_keys,
    items_of_request,
    list_consignors,
    mandates_by_ids,
    mark_mandates_requested,
    mark_sending,
    mark_written,
    requests_to_send,
    set_item_results,
    update_mandate,
)

log = Logger()

REQUEST_FILES = Counter(
    "gateway_zengin_request_files_total", "Zengin request files written to the outbox."
)
REQUEST_RECORDS = Counter(
    "gateway_zengin_request_records_total", "Debits asked of the banks in request files."
)
_KNOWN_CODES = ("0", "1", "2", "3", "4", "8", "9", "E", "N")
RESULTS = Counter(
    "gateway_zengin_results_total",
    "Transfer results applied, by 振替結果コード (0 debited; other codes grouped as 'other').",
    ["code"],
)
MANDATES_CHANGED = Counter(
    "gateway_zengin_mandates_changed_total",
    "Mandates suspended or invalidated by a transfer result.",
    ["status"],
)
RUN_FAILURES = Counter(
    "gateway_zengin_run_failures_total",
    "Scheduled runs of the account-transfer requests that failed (logged).",
)


class RequestError(GatewayError):
    """A request run that cannot be done (a debit date in the past or on a bank holiday)."""


@dataclass(frozen=True)
class WrittenFile:
    biller_id: str
    file: str
    debit_date: date
    records: int
    total: int

    def as_json(self) -> dict[str, Any]:
        return {
            "biller_id": self.biller_id,
            "file": self.file,
            "debit_date": self.debit_date.isoformat(),
            "records": self.records,
            "total": self.total,
        }


def customer_number(bill_id: int) -> str:
    """顧客番号 of a bill's debits: the bill's serial, 20 digits. With 委託者コード and 引落日 it
    names one request item, so a result finds its bill even when a customer has several."""
    return f"{bill_id:020d}"


def debit_window(debit_date: date) -> tuple[date, date]:
    """The due dates a debit date serves: itself and the bank holidays that follow it."""
    return debit_date, calendar.next_business_day(debit_date) - timedelta(days=1)


def check_debit_date(debit_date: date, today: date) -> None:
    if debit_date < today:
        raise RequestError(f"{debit_date} is in the past: a bank cannot debit it")
    if not calendar.is_business_day(debit_date):
        before = calendar.on_or_before(debit_date)
        raise RequestError(
            f"{debit_date} is not a bank business day; bills due then are debited on {before}"
        )


def request_bytes(
    config: ZenginConfig, consignor: Consignor, request: Request, items: Sequence[Item]
) -> bytes:
    account = consignor.account
    header = ZenginHeader(
        biller_code=consignor.code,
        biller_name=consignor.name,
        debit_mmdd=f"{request.debit_date:%m%d}",
        bank_code=account.bank_code,
        bank_name=account.bank_name,
        branch_code=account.branch_code,
        branch_name=account.branch_name,
        account_type=account.account_type,
        account_number=account.account_number,
    )
    debits = [
        Debit(
            bank_code=i.account.bank_code,
            bank_name=i.account.bank_name,
            branch_code=i.account.branch_code,
            branch_name=i.account.branch_name,
            account_type=i.account.account_type,
            account_number=i.account.account_number,
            holder_name=i.holder_kana,
            amount=i.amount,
            new_code=i.new_code,
            customer_number=i.customer_number,
        )
        for i in items
    ]
    return build_file(header, debits, separator=config.separator, eof=config.eof_mark)


# --- requests: synchronous steps, each inside the caller's transaction ---------------------


def prepare_requests(
    conn: Connection, debit_date: date, now: datetime, biller_id: str | None = None
) -> list[Request]:
    """Choose and record (pending) every biller's debits for ``debit_date``."""
    first_due, last_due = debit_window(debit_date)
    made: list[Request] = []
    for listed in list_consignors(conn):
        if biller_id is not None and listed.biller_id != biller_id:
            continue
        consignor = get_consignor(conn, listed.biller_id, for_update=True)  # one run at a time
        assert consignor is not None
        due = due_for_debit(conn, consignor.biller_id, first_due, last_due, debit_date)
        if not due:
            continue
        total = sum(d.amount for d in due)
        request_id, name = insert_request(
            conn,
            biller_id=consignor.biller_id,
            consignor_code=consignor.code,
            debit_date=debit_date,
            records=len(due),
            total=total,
            now=now,
        )
        items = [
            Item(
                request_id=request_id,
                record_no=no,
                bill_id=d.bill_id,
                mandate_id=d.mandate_id,
                consignor_code=consignor.code,
                debit_date=debit_date,
                customer_number=customer_number(d.bill_id),
                account=d.mandate.account,
                holder_kana=d.mandate.holder_kana,
                amount=d.amount,
                new_code=d.mandate.new_code,
            )
            for no, d in enumerate(due, 2)
        ]
        insert_items(conn, items)
        mark_mandates_requested(conn, [d.mandate_id for d in due], now)
        made.append(
            Request(
                request_id,
                consignor.biller_id,
                consignor.code,
                debit_date,
                name,
                len(due),
                total,
                "pending",
            )
        )
    return made


def stage_pending(conn: Connection, config: ZenginConfig) -> list[Request]:
    """Step 1 of writing (one transaction): stage each ``pending`` request's file in the outbox
    under a hidden name no reader takes, and mark the request ``sending`` in the same
    transaction — so a request that says ``sending`` has its file staged or published. Returns
    those and the ones a cut run left ``sending``."""
    staged = []
    for request in requests_to_send(conn):
        if request.status == "pending":
            consignor = get_consignor(conn, request.biller_id)
            assert consignor is not None, "a request's consignor is never deleted"
            items = items_of_request(conn, request.request_id)
            data = request_bytes(config, consignor, request, items)
            safe_files.stage(config.outbox / request.file_name, data)
            mark_sending(conn, request.request_id)
        staged.append(request)
    return staged


def publish_staged(
    conn: Connection, config: ZenginConfig, staged: Sequence[Request], now: datetime
) -> list[WrittenFile]:
    """Step 2 (one transaction): publish each staged file (a rename: the bank sees it whole)
    and mark its request written. A file no longer staged was published by an earlier run,
    cut before it marked the request: still in the outbox, or already taken by the bank —
    either way it is marked written and never written again (a second copy would be a
    second debit)."""
    written = []
    for request in staged:
        path = config.outbox / request.file_name
        mark_written(conn, request.request_id, now)
        if not safe_files.publish(path):
            log.warn(
                "zengin: request {file} was published before its run was cut ({where}): "
                "marked written, not written again",
                file=request.file_name,
                where="still in the outbox" if path.exists() else "taken by the bank",
            )
            continue
        REQUEST_FILES.inc()
        REQUEST_RECORDS.inc(request.records)
        log.info(
            "zengin: request {file} written: {records} debit(s), {total} yen, 引落日 {day}",
            file=request.file_name,
            records=request.records,
            total=request.total,
            day=request.debit_date.isoformat(),
        )
        written.append(
            WrittenFile(
                request.biller_id, str(path), request.debit_date, request.records, request.total
            )
        )
    return written


# --- results ---------------------------------------------------------------------------------


def _refused(source: str, reason: str) -> FileErrors:
    return FileErrors(source, [RecordError(NETWORK, 1, "biller_code", "", reason)])


def check_result(parsed: ZenginFile, name: str, conn: Connection) -> str:
    """The biller a result file is for; :class:`FileErrors` if it is not a result of ours."""
    if not parsed.is_result and parsed.debits:
        raise FileErrors(
            name,
            [
                RecordError(
                    NETWORK,
                    len(parsed.debits) + 2,
                    "debited_count",
                    "0",
                    "this is a request (its trailer has no 振替済/振替不能 figures), not a result",
                )
            ],
        )
    code = parsed.header.biller_code
    biller_id = consignors_by_codes(conn, [code]).get(code)
    if biller_id is None:
        raise _refused(name, f"委託者コード {code} is not a consignor of this center")
    return biller_id


def apply_result(
    conn: Connection,
    ingest: Ingest,
    parsed: ZenginFile,
    name: str,
    now: datetime,
    today: date,
) -> dict[str, Any]:
    """Apply a checked result file in the caller's transaction; a summary of what happened."""
    biller_id = check_result(parsed, name, conn)
    try:
        debit_date = parsed.header.debit_date(today)
    except ValueError as e:  # the mapper checked MMDD; this is only a guard
        raise _refused(name, str(e)) from None
    events = to_canonical(parsed, debit_date=debit_date, name=name, received_at=now)
    outcomes = ingest.apply_many(
        conn, [Received(e, line) for line, e in enumerate(events, 2)], now, today
    )
    fresh = [(e, o) for e, o in zip(events, outcomes, strict=True) if o != "duplicate"]
    items = items_by_result_keys(conn, [parse_transfer_key(e.bill_key) for e, _ in fresh])
    results, to_mandates = [], []
    for event, _ in fresh:
        code = event.detail["result_code"]
        RESULTS.labels(code if code in _KNOWN_CODES else "other").inc()
        item = items.get(parse_transfer_key(event.bill_key))
        if item is None:
            continue
        if item.result_code != "0":  # a debit is final; a later failure does not undo it
            results.append((item.request_id, item.record_no, code))
        if event.kind is MessageKind.FAILURE and mandate_action(code) is not MandateAction.KEEP:
            to_mandates.append((item, code))
    set_item_results(conn, results, now)
    # A result proves the bank has the request: one still pending (its file written, the
    # transaction that marks it lost to a crash or a full disk) must not be written again,
    # or the bank would take it as a second request and debit the bills once more.
    for request_id in sorted({item.request_id for item in items.values()}):
        mark_written(conn, request_id, now)
    changed = _mandate_results(conn, to_mandates, debit_date, now)
    summary: dict[str, int] = {}
    for outcome in outcomes:
        summary[outcome] = summary.get(outcome, 0) + 1
    debited = [d for d in parsed.debits if d.debited]
    return {
        "biller_id": biller_id,
        "consignor_code": parsed.header.biller_code,
        "debit_date": debit_date.isoformat(),
        "records": len(events),
        "debited": {"count": len(debited), "total": sum(d.amount for d in debited)},
        "failed": {
            "count": len(events) - len(debited),
            "total": sum(d.amount for d in parsed.debits if not d.debited),
        },
        "matched": sum(1 for e, _ in fresh if parse_transfer_key(e.bill_key) in items),
        "outcomes": summary,
        "mandates_changed": changed,
    }


def _mandate_results(
    conn: Connection, failures: Sequence[tuple[Item, str]], debit_date: date, now: datetime
) -> int:
    """Suspend or invalidate the mandates that results say so of: only if the account is still
    the one debited (a customer who has given a new account keeps it) and only towards the
    graver state (invalid beats suspended)."""
    mandates = mandates_by_ids(conn, [item.mandate_id for item, _ in failures])
    changed = 0
    for item, code in failures:
        mandate = mandates[item.mandate_id]
        target = (
            MandateStatus.INVALID
            if mandate_action(code) is MandateAction.INVALID
            else MandateStatus.SUSPENDED
        )
        allowed = {
            MandateStatus.INVALID: (MandateStatus.ACTIVE, MandateStatus.SUSPENDED),
            MandateStatus.SUSPENDED: (MandateStatus.ACTIVE,),
        }[target]
        if mandate.account != item.account or mandate.status not in allowed:
            continue
        mandate = dataclasses.replace(
            mandate,
            status=target,
            status_reason=f"振替結果コード {code}: {result_meaning(code)}; 引落日 {debit_date}",
            version=mandate.version + 1,
            updated_at=now,
        )
        mandates[item.mandate_id] = mandate
        update_mandate(conn, item.mandate_id, mandate)
        MANDATES_CHANGED.labels(target.value).inc()
        changed += 1
    return changed


def result_report(summary: dict[str, Any]) -> str:
    d, f = summary["debited"], summary["failed"]
    parts = ", ".join(f"{k} {v}" for k, v in sorted(summary["outcomes"].items()))
    return (
        f"applied: {summary['records']} result(s) of 委託者 {summary['consignor_code']} "
        f"for 引落日 {summary['debit_date']}: debited {d['count']} ({d['total']} yen), "
        f"failed {f['count']} ({f['total']} yen); matched to requests {summary['matched']}; "
        f"{parts}; mandates changed {summary['mandates_changed']}"
    )


# --- in the daemon ---------------------------------------------------------------------------


class ZenginNetwork:
    """The account-transfer network's ways out (request files) and in (result files)."""

    def __init__(self, config: ZenginConfig, store: Store, ingest: Ingest, clock: Any) -> None:
        self.config = config
        self.store = store
        self.ingest = ingest
        self.clock: IReactorTime = clock
        self.last_scheduled: date | None = None

    async def request(self, debit_date: date, biller_id: str | None = None) -> list[WrittenFile]:
        check_debit_date(debit_date, clock_today(self.clock))
        await self.store.run_interaction(
            "zengin.request", prepare_requests, debit_date, clock_now(self.clock), biller_id
        )
        return await self.write_pending()

    async def write_pending(self) -> list[WrittenFile]:
        """Stage the pending requests' files, then publish them (two transactions: see
        :func:`stage_pending` and :func:`publish_staged`)."""
        staged = await self.store.run_interaction("zengin.stage", stage_pending, self.config)
        if not staged:
            return []
        written: list[WrittenFile] = await self.store.run_interaction(
            "zengin.write", publish_staged, self.config, staged, clock_now(self.clock)
        )
        return written

    def apply_file(self, name: str, data: bytes) -> Deferred[FileResult]:
        """A result file from the inbox, all records or none."""
        try:
            parsed = parse_file(data, source=name)
        except FileErrors as e:
            return succeed(FileResult(False, e.report()))

        def txn(conn: Connection) -> FileResult:
            try:  # apply_result refuses a file before it writes anything
                summary = apply_result(
                    conn,
                    self.ingest,
                    parsed,
                    name,
                    clock_now(self.clock),
                    clock_today(self.clock),
                )
            except FileErrors as e:
                return FileResult(False, e.report())
            return FileResult(True, result_report(summary))

        return self.store.run_interaction("zengin.result", txn)

    async def scheduled(self) -> None:
        """Once per bank business day at ``request_at`` (JST): the requests of the debit date
        ``lead_days`` bank days ahead. Pending files are written on every tick."""
        await self.write_pending()
        at = self.config.request_at
        local = clock_now(self.clock).astimezone(JST)
        today = local.date()
        if at is None or self.last_scheduled == today or local.time() < at:
            return
        if not calendar.is_business_day(today):
            return
        self.last_scheduled = today
        debit_date = calendar.add_business_days(today, self.config.lead_days)
        written = await self.request(debit_date)
        log.info(
            "zengin: scheduled run for 引落日 {day}: {n} file(s)",
            day=debit_date.isoformat(),
            n=len(written),
        )

    def tick(self) -> Deferred[None]:
        """One scheduled run (the one job runner): a failure is logged and counted, and the
        next tick tries again."""
        d, _ = logged_run(self.scheduled(), RUN_FAILURES, "zengin: a scheduled request run", None)
        return d

    def services(self) -> list[IService]:
        schedule = timer("zengin-requests", 60, self.tick, self.clock)
        inbox = InboxWatcher(
            "zengin", self.config.inbox, self.apply_file, self.clock, self.config.poll_interval
        )
        return [schedule, inbox]


@dataclass(frozen=True)
class TransferBills:
    """A transfer result names its bill through the request item it answers (委託者コード,
    引落日, 顧客番号: gateway.mappers.zengin.mapper.transfer_key)."""

    channel: Channel = Channel.TRANSFER

    def lookup(self, event: CollectionEvent) -> tuple[str, str] | None:
        return ("transfer", event.bill_key)

    def match(self, conn: Connection, events: Sequence[CollectionEvent]) -> BillMatch | None:
        keys = {e.bill_key for e in events}
        items = items_by_result_keys(conn, [parse_transfer_key(k) for k in keys])
        bill_ids = {transfer_key(*key): item.bill_id for key, item in items.items()}
        return match_bill_ids("transfer", bill_ids) if bill_ids else None

    def billers(self, conn: Connection, events: Sequence[CollectionEvent]) -> dict[str, str]:
        """A result of no known bill still names its biller: the 委託者コード."""
        codes = {e.bill_key: parse_transfer_key(e.bill_key)[0] for e in events}
        ids = consignors_by_codes(conn, set(codes.values()))
        return {key: ids[code] for key, code in codes.items() if code in ids}


@dataclass(frozen=True)
class TransferPayments:
    """A debit's place is ``BANK-BRANCH``: the customer's bank and branch codes."""

    wording: str = "口座振替"

    def detail(self, store: str) -> dict[str, Any]:
        bank_code, _, branch_code = store.partition("-")
        return {"bank": {"bank_code": bank_code, "branch_code": branch_code}}

    def place(self, store: str) -> str:
        """The bank and its branch, as the master names them (or their codes)."""
        bank_code, _, branch_code = store.partition("-")
        bank, found = bank_place(bank_code)
        if not branch_code:
            return bank
        branch = found.branches.get(branch_code) if found is not None else None
        if branch is None:
            return f"{bank} 支店コード {branch_code}"
        suffix = "" if branch.name.endswith(("店", "出張所", "営業部", "支所")) else "支店"
        return f"{bank} {branch.name}{suffix}"


class Zengin:
    """The account-transfer (全銀) network, for the registry."""

    name = "zengin"
    channel = Channel.TRANSFER
    description = TransferPayments()

    def enabled(self, config: Config) -> bool:
        return config.zengin is not None

    def limit(self, config: Config) -> int:
        assert config.zengin is not None
        return config.zengin.max_amount

    def identify(
        self,
        config: Config,
        randbelow: Callable[[int], int],
        biller: Biller,
        serial: int,
        terms: BillTerms,
        today: date,
    ) -> Identifiers:
        """Nothing at issue time: a debit's 顧客番号 comes with its request (customer_number)."""
        return Identifiers(None, None)

    def finder(self, config: Config) -> TransferBills:
        return TransferBills()

    def start(self, wiring: Wiring) -> Started:
        assert wiring.config.zengin is not None
        network = ZenginNetwork(wiring.config.zengin, wiring.store, wiring.ingest, wiring.reactor)
        return Started(network.services())


ZENGIN = Zengin()
