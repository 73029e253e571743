"""The retention job: customers' personal data goes once nothing more can be asked of them
(DESIGN.md §7: "kept 3 months after it is paid or expired, then purged").

What is purged
    *Bills* that are paid, confirmed, expired or cancelled, not purged yet and unchanged
    (``updated_at``) since before the cutoff lose ``customer_name``, ``customer_kana``,
    ``customer_email`` and ``customer_phone`` (set to NULL) and get ``purge_id``. What
    settlements, statements and a late payment still need stays: ``bill_no``, ``customer_no``,
    the amounts and tax, the barcode and slips, the Pay-easy numbers and the payments. Their
    ``version`` and ``updated_at`` do not move (the biller changed nothing) and no event is sent.

    Their *account-transfer request items* get ``account_number`` ``0000000`` and
    ``holder_kana`` ``""`` (the columns are NOT NULL), and the *transfer result messages* of
    those items (event key ``委託者コード:引落日:顧客番号`` of :func:`gateway.model.transfer_key`,
    and that key plus ``:`` and the result code for a failed debit) keep their raw 120-byte data
    record with the 口座番号 field as zeros and the 預金者名 field as spaces
    (:func:`redact_data_record`); a raw message that is not such a record becomes ``b""``.

    *Transfer results that matched no request* (outcome ``unknown_bill``: a debit or a failure
    the bank reports for a 顧客番号 this center never asked for, so no bill purges them) received
    before the cutoff are redacted the same way, once nothing more needs their account: a debit
    whose payment has a refund case open, or resolved at or after the cutoff, is kept (the money
    goes back to that account). Their redacted raw is no longer selected, so a run always moves
    on to records that still hold an account.

    *Mandates* that are revoked or invalid and unchanged since before the cutoff get
    ``account_number`` ``0000000``, ``holder_kana`` ``""`` and ``purge_id``. Active and suspended
    mandates are still used and never purged. A mandate that the biller registered again after
    its purge (``PUT`` gives it a new account but leaves ``purge_id``) is purged again once it
    is revoked or invalid and old enough; its ``purge_id`` then names the later run.

    *Payout accounts* (every version) of a biller that has ended — suspended since before the
    cutoff, and none of its settlements still owes it money (a payout in no file yet, a transfer
    requested, a returned one that no settlement has taken) — lose the sealed account number and
    holder name and get ``purge_id``; the bank, branch, type and last 3 digits stay. A live
    biller's accounts are never purged, whatever their age (gateway.store.payouts).

    *Events* of the outbox created before the cutoff lose every key of ``data.bill.customer``
    but ``customer_no`` (:func:`scrub_event_data`); their ``id``, ``seq``, type and the rest of
    the data stay.

The cutoff
    ``months`` calendar months (default 3) before the run's start, on the JST calendar, with the
    day clamped to the end of a shorter month (:func:`months_before`): at 2026-12-03T10:00+09:00
    it is 2026-09-03T10:00+09:00; at May 31 it is Feb 28 (29). A bill changed exactly at the
    cutoff is kept until the next run.

Runs and batches
    One run (:meth:`RetentionJob.run`) takes the bills, then the unmatched transfer results,
    then the mandates, then the events, each in batches of ``batch_size`` rows, one transaction
    per batch, at most ``max_batches`` batches of each kind per run (the rest waits for the next
    run). Bills, results and mandates are locked ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
    several daemons share the work and a bill that a payment holds is left for the next run;
    SQLite has one writer at a time.

    Events are scrubbed incrementally: from the highest ``last_event_id`` of the audit rows, in
    id order, as long as they were created before the cutoff. The run stops at the first event
    created at or after the cutoff, even if later ids are older, so ``last_event_id`` always
    means "every event up to here is scrubbed". Event rows are locked ``FOR UPDATE`` (waiting):
    of two runs at once, the second finds nothing left and counts nothing.

The audit record
    A run that purged or scrubbed anything writes one ``data_purges`` row, created by its first
    batch that changes something and brought up to date by each following batch (totals so far,
    ``last_event_id``), so after a crash the row still says exactly what its committed batches
    did. ``detail`` is JSON: the fields removed from each kind, the bills purged per biller and
    ``months``. The purged bills and mandates point to the row by ``purge_id``. A run that finds
    nothing writes no row; the events it read without anything to remove are then read again by
    the next run. A run that purged anything also writes, once its batches are done, one line to
    the operator's audit log (:func:`audit_run`: ``retention.purge`` by ``system:retention``,
    with the row's id and the run's totals); a run cut short (a crash) leaves its
    ``data_purges`` row, which says what its committed batches did, and no audit line.

Logs carry only counts, ids and the cutoff: never a name, e-mail, phone or account number.

The job runs every ``[retention] interval`` seconds on the injected clock
(:func:`retention_service`), and once when the daemon starts; a run that fails is logged and
counted, and the next one tries again.
"""

from __future__ import annotations

import json
from calendar import monthrange
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from prometheus_client import Counter
from sqlalchemy.engine import Connection
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway.billing.actors import system_actor
from gateway.clock import now as clock_now
from gateway.infra.jobs import logged_run, timer
from gateway.mappers.files import DATA_TYPE, RECORD_LENGTH
from gateway.mappers.zengin.records import RECORD_ACCOUNT, REDACTED_ACCOUNT, RESULT_CODE_CHARS
from gateway.model import JST, transfer_key
from gateway.store import Store
from gateway.store.audit import record
from gateway.store.events import event_json
from gateway.store.payouts import lock_purgeable_payout_accounts, purge_payout_accounts
from gateway.store.retention import (
    ACCOUNT_FIELDS,
    BILL_FIELDS,
    clear_customers,
    event_watermark,
    lock_events_after,
    lock_purgeable_bills,
    lock_purgeable_mandates,
    lock_unmatched_transfer_messages,
    purge_mandates,
    redact_request_items,
    request_item_keys,
    save_purge,
    set_event_data,
    set_message_raws,
    transfer_messages,
)

log = Logger()

BILLS_PURGED = Counter(
    "gateway_retention_bills_purged_total",
    "Bills whose customer data the retention job removed.",
)
RUN_FAILURES = Counter(
    "gateway_retention_run_failures_total",
    "Runs of the retention job that failed (logged).",
)

DEFAULT_MONTHS = 3
DEFAULT_BATCH = 500
DEFAULT_MAX_BATCHES = 100  # of each kind per run: the rest waits for the next run


#: What the audit row says was removed, by kind.
FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "bills": BILL_FIELDS,
        "mandates": ACCOUNT_FIELDS,
        "request_items": ACCOUNT_FIELDS,
        "messages": ("raw.account_number", "raw.holder_name"),
        "events": ("data.bill.customer",),
        "payout_accounts": ACCOUNT_FIELDS,
    }
)


# --- pure ------------------------------------------------------------------------------------


def months_before(moment: datetime, months: int) -> datetime:
    """``moment`` minus ``months`` calendar months in JST, the day clamped to the month's end."""
    local = moment.astimezone(JST)
    year, month = divmod(local.year * 12 + local.month - 1 - months, 12)
    day = min(local.day, monthrange(year, month + 1)[1])
    return local.replace(year=year, month=month + 1, day=day)


def redact_data_record(raw: bytes) -> bytes:
    """A Zengin data record (120 bytes, データ区分 ``2``) with its 口座番号 as zeros and its
    預金者名 as spaces, every other byte as it was; ``b""`` for anything else."""
    if len(raw) != RECORD_LENGTH or raw[:1] != DATA_TYPE:
        return b""
    return raw[: RECORD_ACCOUNT.start] + REDACTED_ACCOUNT + raw[RECORD_ACCOUNT.stop :]


def scrub_event_data(data: Any) -> dict[str, Any] | None:
    """The event's data with ``bill.customer`` reduced to its ``customer_no``; None when there
    is nothing to remove (no bill, no customer, or only a customer number)."""
    if not isinstance(data, dict) or not isinstance(bill := data.get("bill"), dict):
        return None
    customer = bill.get("customer")
    if not isinstance(customer, dict) or set(customer) <= {"customer_no"}:
        return None
    kept = {k: v for k, v in customer.items() if k == "customer_no"}
    return {**data, "bill": {**bill, "customer": kept}}


def message_keys(items: Iterable[tuple[str, date, str]]) -> list[str]:
    """The event keys the transfer results of these request items were stored under: the
    debit's key (a debit), and the key with ``:`` and each possible result code (a failure)."""
    keys: list[str] = []
    for consignor_code, debit_date, customer_number in items:
        key = transfer_key(consignor_code, debit_date, customer_number)
        keys.append(key)
        keys.extend(f"{key}:{code}" for code in RESULT_CODE_CHARS)
    return keys


# --- one run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgeReport:
    """What one run did (totals so far while it runs)."""

    ran_at: datetime
    cutoff: datetime
    months: int
    purge_id: int | None = None  # its data_purges row; None while it has changed nothing
    bills: int = 0
    mandates: int = 0
    request_items: int = 0
    messages: int = 0
    events: int = 0  # events whose customer data was removed
    last_event_id: int = 0  # every event up to it is scrubbed
    billers: Mapping[str, int] = field(default_factory=dict)  # bills purged per biller
    payout_accounts: int = 0  # payout account versions of ended billers

    @property
    def purged(self) -> bool:
        return self.purge_id is not None


def _save(conn: Connection, report: PurgeReport) -> PurgeReport:
    """Create or bring up to date the run's audit row with the report's totals."""
    if report.purge_id is None:
        watermark = max(report.last_event_id, event_watermark(conn))
        report = replace(report, last_event_id=watermark)
    detail = {
        "fields": {kind: list(names) for kind, names in FIELDS.items()},
        "billers": dict(sorted(report.billers.items())),
        "months": report.months,
        "payout_accounts": report.payout_accounts,
    }
    values = {
        "ran_at": report.ran_at,
        "cutoff": report.cutoff,
        "bills": report.bills,
        "mandates": report.mandates,
        "request_items": report.request_items,
        "messages": report.messages,
        "events": report.events,
        "last_event_id": report.last_event_id,
        "detail": json.dumps(detail, ensure_ascii=False, separators=(",", ":")),
    }
    return replace(report, purge_id=save_purge(conn, report.purge_id, values))


# Every batch: (conn, report so far, last id seen by this run, limit) -> (report, rows, last id).
Batch = Callable[[Connection, PurgeReport, int, int], tuple[PurgeReport, int, int]]


def _audit_row(conn: Connection, report: PurgeReport) -> tuple[PurgeReport, int]:
    """The report with its audit row written, and the row's id, for a batch whose purged rows
    point to it (``purge_id``): the row comes first."""
    if report.purge_id is None:
        report = _save(conn, report)
    assert report.purge_id is not None
    return report, report.purge_id


JOB_ACTOR = system_actor("retention")  # the job, in the operator's audit log


def audit_run(conn: Connection, report: PurgeReport, now: datetime) -> None:
    """A run that purged anything, in the operator's audit log (gateway.store.audit) as
    ``system:retention``: ``retention.purge``, target ``data_purge:<id>``, ``after`` the run's
    totals (counts and the bills purged per biller: never a name or an account)."""
    record(
        conn,
        JOB_ACTOR,
        "retention.purge",
        f"data_purge:{report.purge_id}",
        now,
        after={
            "cutoff": report.cutoff.isoformat(),
            "months": report.months,
            "bills": report.bills,
            "mandates": report.mandates,
            "payout_accounts": report.payout_accounts,
            "request_items": report.request_items,
            "messages": report.messages,
            "events": report.events,
            "last_event_id": report.last_event_id,
            "billers": dict(sorted(report.billers.items())),
        },
    )


def purge_bills_batch(
    conn: Connection, report: PurgeReport, after: int, limit: int
) -> tuple[PurgeReport, int, int]:
    """Purge up to ``limit`` bills (ids above ``after``), their request items and messages."""
    found = lock_purgeable_bills(conn, report.cutoff, after, limit)
    if not found:
        return report, 0, after
    report, purge_id = _audit_row(conn, report)
    ids = [bill_id for bill_id, _ in found]
    clear_customers(conn, ids, purge_id)
    keys = message_keys(request_item_keys(conn, ids))
    items = redact_request_items(conn, ids)
    messages = transfer_messages(conn, keys)
    redacted = [(i, raw, redact_data_record(raw)) for i, raw in messages]
    set_message_raws(conn, [(i, new) for i, raw, new in redacted if new != raw])
    billers = dict(report.billers)
    for _, biller_id in found:
        billers[biller_id] = billers.get(biller_id, 0) + 1
    report = replace(
        report,
        bills=report.bills + len(found),
        request_items=report.request_items + items,
        messages=report.messages + len(messages),
        billers=billers,
    )
    return _save(conn, report), len(found), ids[-1]


def purge_unmatched_messages_batch(
    conn: Connection, report: PurgeReport, after: int, limit: int
) -> tuple[PurgeReport, int, int]:
    """Redact up to ``limit`` transfer results that matched no request (ids above ``after``)."""
    found = lock_unmatched_transfer_messages(
        conn,
        report.cutoff,
        after,
        limit,
        record_length=RECORD_LENGTH,
        account=RECORD_ACCOUNT,
        redacted=REDACTED_ACCOUNT,
    )
    if not found:
        return report, 0, after
    set_message_raws(conn, [(i, redact_data_record(raw)) for i, raw in found])
    report = replace(report, messages=report.messages + len(found))
    return _save(conn, report), len(found), found[-1][0]


def purge_mandates_batch(
    conn: Connection, report: PurgeReport, after: int, limit: int
) -> tuple[PurgeReport, int, int]:
    """Purge up to ``limit`` revoked or invalid mandates (ids above ``after``)."""
    found = lock_purgeable_mandates(conn, report.cutoff, after, limit)
    if not found:
        return report, 0, after
    report, purge_id = _audit_row(conn, report)
    ids = [mandate_id for mandate_id, _ in found]
    purge_mandates(conn, ids, purge_id)
    report = replace(report, mandates=report.mandates + len(found))
    return _save(conn, report), len(found), ids[-1]


def purge_payout_accounts_batch(
    conn: Connection, report: PurgeReport, after: int, limit: int
) -> tuple[PurgeReport, int, int]:
    """Purge up to ``limit`` payout account versions of ended billers (ids above ``after``)."""
    found = lock_purgeable_payout_accounts(conn, report.cutoff, after, limit)
    if not found:
        return report, 0, after
    report, purge_id = _audit_row(conn, report)
    ids = [account_id for account_id, _ in found]
    purge_payout_accounts(conn, ids, purge_id)
    report = replace(report, payout_accounts=report.payout_accounts + len(found))
    return _save(conn, report), len(found), ids[-1]


def scrub_events_batch(
    conn: Connection, report: PurgeReport, after: int, limit: int
) -> tuple[PurgeReport, int, int]:
    """Scrub up to ``limit`` events after the watermark, stopping at the first one created at or
    after the cutoff; ``rows`` is how many it read before that (fewer than ``limit``: done)."""
    start = max(after, report.last_event_id, event_watermark(conn))
    last, read, changed = start, 0, []
    for event_id, created_at, text in lock_events_after(conn, start, limit):
        if created_at >= report.cutoff:
            break
        last, read = event_id, read + 1
        scrubbed = scrub_event_data(json.loads(text))
        if scrubbed is not None:
            changed.append((event_id, event_json(scrubbed)))
    set_event_data(conn, changed)
    report = replace(report, events=report.events + len(changed), last_event_id=last)
    if changed or (report.purge_id is not None and last > start):
        report = _save(conn, report)
    return report, read, last


class RetentionJob:
    """Purges customers' personal data through the store; ``run()`` is one run of the job."""

    def __init__(
        self,
        store: Store,
        clock: IReactorTime,
        *,
        months: int = DEFAULT_MONTHS,
        batch_size: int = DEFAULT_BATCH,
        max_batches: int = DEFAULT_MAX_BATCHES,
    ) -> None:
        if months < 1 or batch_size < 1 or max_batches < 1:
            raise ValueError("months, batch_size and max_batches must be at least 1")
        self.store = store
        self.clock = clock
        self.months = months
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.running: Deferred[PurgeReport | None] | None = None  # the last tick; its report

    async def run(self) -> PurgeReport:
        """One run: bills, unmatched transfer results, mandates, events, each up to
        ``max_batches`` batches."""
        now = clock_now(self.clock)
        report = PurgeReport(ran_at=now, cutoff=months_before(now, self.months), months=self.months)
        batches: tuple[tuple[str, Batch], ...] = (
            ("retention.bills", purge_bills_batch),
            ("retention.messages", purge_unmatched_messages_batch),
            ("retention.mandates", purge_mandates_batch),
            ("retention.payout_accounts", purge_payout_accounts_batch),
            ("retention.events", scrub_events_batch),
        )
        for desc, batch in batches:
            after = 0
            for _ in range(self.max_batches):
                before = report.bills
                report, rows, after = await self.store.run_interaction(
                    desc, batch, report, after, self.batch_size
                )
                BILLS_PURGED.inc(report.bills - before)
                if rows < self.batch_size:
                    break
        if report.purged:
            await self.store.run_interaction(
                "retention.audit", audit_run, report, clock_now(self.clock)
            )
            log.info(
                "Retention run {purge_id} (cutoff {cutoff}): purged {bills} bill(s), "
                "{mandates} mandate(s), {request_items} request item(s), {messages} "
                "message(s), {payout_accounts} payout account(s); scrubbed {events} event(s) "
                "up to event {last_event_id}",
                purge_id=report.purge_id,
                cutoff=report.cutoff.isoformat(),
                bills=report.bills,
                mandates=report.mandates,
                request_items=report.request_items,
                messages=report.messages,
                payout_accounts=report.payout_accounts,
                events=report.events,
                last_event_id=report.last_event_id,
            )
        return report

    def tick(self) -> Deferred[PurgeReport | None]:
        """One scheduled run; a failure is logged and counted (the timer must keep going)."""
        d, self.running = logged_run(self.run(), RUN_FAILURES, "The retention job", None)
        return d


def retention_service(job: RetentionJob, interval: float, clock: IReactorTime) -> TimerService:
    """Runs ``job`` now and then every ``interval`` seconds on ``clock``."""
    return timer("retention", interval, job.tick, clock)
