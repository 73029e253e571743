"""The notice job: from each biller's events to the notices they call for, and the fallback
after a failed debit (docs/notices.md).

Every ``[notices] poll_interval`` seconds it reads the events each biller has written since its
cursor (``notice_cursors``, locked ``SKIP LOCKED`` so several daemons share billers and none is
read twice) and, in the transaction that moves the cursor:

- ``bill.created``, ``bill.reissued``: queues the ``page`` notice (the page URL), ref the
  reissue number;
- ``bill.fallback_issued``: queues the ``fallback`` notice (the page URL and the ways now open);
- ``payment.preliminary``, ``payment.confirmed`` of a store or Pay-easy payment: queues the
  ``received`` notice, ref the payment id (one per payment);
- ``transfer.failed``: decides and applies the biller's fallback
  (gateway.billing.fallback.decide): the bill is debited again on a later date
  (``bill.redebit_scheduled``) or reissued with the store and Pay-easy channels instead of
  transfer (``bill.fallback_issued``), recorded in ``bill_fallbacks`` once per failed debit.

Each notice goes by the media gateway.billing.notice_text.media_for allows (the biller's
settings, the customer's details and opt-out, the media this gateway can send). Once a day, from
``[notices] reminder_at`` (JST), it queues the ``reminder`` of the bills due ``reminder_days``
days ahead (a bill that existed on its reminder day and missed it, the daemon being down, gets
it on the next run). The same notice is never queued twice (unique per bill, kind, medium and
ref). The senders are gateway.billing.notify (e-mail) and gateway.billing.sms.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy.engine import Connection
from twisted.application.service import IService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway.billing.fallback import (
    Action,
    Decision,
    Failure,
    decide,
    earliest_debit_date,
    fallback_due_date,
    redebit_bill,
    reissue_with_channels,
)
from gateway.billing.issuing import BillIssuer
from gateway.billing.notice_text import media_for
from gateway.clock import now as clock_now
from gateway.config import Config
from gateway.infra.jobs import logged_run, timer
from gateway.model import JST, Bill, Biller, BillTerms, Channel, EventType, MandateStatus
from gateway.notice_rules import Medium, Notice
from gateway.store import Store
from gateway.store.billers import get_biller, list_billers
from gateway.store.bills import save_bill
from gateway.store.events import StoredEvent, append_events, list_events
from gateway.store.notices import (
    FallbackRecord,
    billers_behind,
    contacts_by_no,
    due_for_reminder,
    fallbacks_of,
    last_debit_date,
    lock_bills_by_no,
    lock_cursor,
    move_cursor,
    optouts_of,
    record_fallback,
    save_reissued,
)
from gateway.store.notify import NewNotice, queue_notices
from gateway.store.zengin import get_mandate

log = Logger()

QUEUED = Counter(
    "gateway_notices_queued_total",
    "Customer notices queued, by kind (page, fallback, reminder, received) and medium.",
    ["kind", "medium"],
)
FALLBACKS = Counter(
    "gateway_fallbacks_total",
    "Failed debits acted on by the billers' fallback, by action (redebit, reissue, none).",
    ["action"],
)
RUN_FAILURES = Counter(
    "gateway_notices_run_failures_total", "Runs of the notice job that failed (logged)."
)

BUDGET = 500  # events read in one transaction
MAX_ROUNDS = 20  # transactions in one run; the rest waits for the next run
REMINDER_BATCH = 1000

_PAGE_EVENTS = {
    EventType.BILL_CREATED.value: Notice.PAGE,
    EventType.BILL_REISSUED.value: Notice.PAGE,
    EventType.BILL_FALLBACK_ISSUED.value: Notice.FALLBACK,
}
_PAYMENT_EVENTS = {EventType.PAYMENT_PRELIMINARY.value, EventType.PAYMENT_CONFIRMED.value}
_SELF_PAID = {Channel.CVS.value, Channel.PAYEASY.value}  # a receipt notice: the customer paid


class NoticeJob:
    """Reads the events into notices and fallbacks; :meth:`run` is one run of the job."""

    def __init__(
        self,
        store: Store,
        clock: IReactorTime,
        config: Config,
        issuer: BillIssuer,
        render: Callable[[Bill], Any],
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.issuer = issuer
        self.render = render
        configured = []
        if config.mail is not None:
            configured.append(Medium.EMAIL)
        if config.sms is not None:
            configured.append(Medium.SMS)
        self.configured = tuple(configured)
        self.reminded_on: date | None = None
        self.running: Deferred[int] | None = None  # the last run; fires with its count

    # -- one run -------------------------------------------------------------------------------

    async def run(self) -> int:
        """Read what is new (up to ``MAX_ROUNDS`` transactions), then the day's reminders once
        their time has come; how many events were read."""
        total = 0
        for _ in range(MAX_ROUNDS):
            walked, more = await self.store.run_interaction(
                "notices.follow", self.follow, clock_now(self.clock)
            )
            total += walked
            if not more:
                break
        local = clock_now(self.clock).astimezone(JST)
        due = self.configured and local.time() >= self.config.notices.reminder_at
        if due and self.reminded_on != local.date():
            await self.store.run_interaction("notices.remind", self.remind, clock_now(self.clock))
            self.reminded_on = local.date()
        return total

    def tick(self) -> Deferred[int]:
        d, self.running = logged_run(self.run(), RUN_FAILURES, "The notice job", 0)
        return d

    def services(self) -> list[IService]:
        return [timer("notices", self.config.notices.poll_interval, self.tick, self.clock)]

    # -- inside a transaction ------------------------------------------------------------------

    def follow(self, conn: Connection, now: datetime) -> tuple[int, bool]:
        """Read up to ``BUDGET`` new events of the billers behind; (read, more to read).

        Locks in the order the ingest takes them, so neither waits on the other in a cycle: the
        bills of every failed debit read, in id order in one statement, then (last, by biller)
        the billers' rows that the new events' seqs come from."""
        walked, more = 0, False
        read: list[tuple[Biller, Sequence[StoredEvent]]] = []
        for biller_id, target in billers_behind(conn):
            if walked >= BUDGET:
                more = True
                break
            last = lock_cursor(conn, biller_id)
            if last is None or last >= target:
                continue  # another daemon has it, or has just done it
            biller = get_biller(conn, biller_id)
            found = list_events(
                conn, biller_id, last, BUDGET - walked, decode=self._looked_into(biller)
            )
            if not found:
                continue
            read.append((biller, found))
            move_cursor(conn, biller_id, found[-1].seq)
            walked += len(found)
            more = more or found[-1].seq < target
        failures = [
            (biller, failure)
            for biller, events_read in read
            if biller.notice_rules.fallback.ways
            for e in events_read
            if e.type == EventType.TRANSFER_FAILED.value
            and (failure := Failure.from_event(e.data)) is not None
        ]
        locked = lock_bills_by_no(conn, [(b.biller_id, f.bill_no) for b, f in failures])
        events: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
        for biller, failure in failures:
            found_bill = locked.get((biller.biller_id, failure.bill_no))
            if found_bill is not None:
                made = self._fallback(conn, biller, found_bill, failure, now)
                if made is not None:
                    events.setdefault(biller.biller_id, []).append(made)
        for biller, events_read in read:
            self._read(conn, biller, events_read, now)
        for biller_id in sorted(events):  # last, in a fixed order: the billers' seq row locks
            append_events(conn, biller_id, events[biller_id], now)
        return walked, more

    def _looked_into(self, biller: Biller) -> frozenset[str]:
        """The event types whose data this job reads for ``biller``: the page and payment events
        when a medium is configured (:meth:`_read`), a failed debit when the biller has a
        fallback (:meth:`follow`). The cursor still moves past every event; the others are not
        decoded (with no mail or SMS configured, the job decoded every payment's event for
        nothing: a fifth of the daemon's CPU per 速報 in bench/cvs_ingest.py)."""
        types: set[str] = set()
        if self.configured:
            types |= set(_PAGE_EVENTS) | _PAYMENT_EVENTS
        if biller.notice_rules.fallback.ways:
            types.add(EventType.TRANSFER_FAILED.value)
        return frozenset(types)

    def _read(
        self, conn: Connection, biller: Biller, found: Sequence[StoredEvent], now: datetime
    ) -> None:
        """Queue the notices these events of one biller call for."""
        wanted: list[tuple[Notice, str, str]] = []  # (kind, bill_no, ref)
        for e in found:
            bill = e.data.get("bill")
            if not isinstance(bill, Mapping) or "bill_no" not in bill:
                continue
            bill_no = str(bill["bill_no"])
            if e.type in _PAGE_EVENTS:
                wanted.append((_PAGE_EVENTS[e.type], bill_no, str(bill.get("reissue", 0))))
            elif e.type in _PAYMENT_EVENTS:
                payment = e.data.get("payment") or {}
                if payment.get("channel") in _SELF_PAID and payment.get("payment_id"):
                    wanted.append((Notice.RECEIVED, bill_no, str(payment["payment_id"])))
        if wanted and self.configured:
            self._queue(conn, biller, wanted, now)

    def _queue(
        self,
        conn: Connection,
        biller: Biller,
        wanted: Sequence[tuple[Notice, str, str]],
        now: datetime,
    ) -> None:
        rules = biller.notice_rules
        wanted = [w for w in wanted if rules.media(w[0]) & frozenset(self.configured)]
        if not wanted:
            return
        contacts = contacts_by_no(conn, biller.biller_id, [no for _, no, _ in wanted])
        customers = [c.customer_no for c in contacts.values() if c.customer_no]
        optouts = optouts_of(conn, biller.biller_id, customers)
        new: list[NewNotice] = []
        for kind, bill_no, ref in wanted:
            contact = contacts.get(bill_no)
            if contact is None:
                continue
            optout = optouts.get(contact.customer_no or "")
            refused = [m for m in Medium if optout is not None and optout.refuses(m)]
            for medium in media_for(
                rules,
                kind,
                email=contact.email,
                phone=contact.phone,
                opted_out=refused,
                configured=self.configured,
            ):
                new.append(NewNotice(biller.biller_id, contact.bill_id, kind, medium, ref))
        queue_notices(conn, new, now)
        for n in new:
            QUEUED.labels(n.kind.value, n.medium.value).inc()

    # -- the fallback after a failed debit -----------------------------------------------------

    def _addable(self, biller: Biller, bill: Bill, due: date, today: date) -> frozenset[Channel]:
        """The channels the biller has, the gateway enables and the networks would carry this
        bill on, due ``due``."""
        limits = self.issuer.channel_limits()
        found = set()
        for channel in (Channel.CVS, Channel.PAYEASY):
            if channel not in biller.channels or channel not in limits:
                continue
            if bill.amount > limits[channel]:
                continue
            terms = BillTerms(
                bill.bill_no,
                bill.amount,
                due,
                frozenset({channel}),
                bill.customer,
                bill.tax,
                bill.description,
            )
            if self.issuer.refusals(biller, terms):
                continue
            found.add(channel)
        return frozenset(found)

    def _fallback(
        self,
        conn: Connection,
        biller: Biller,
        located: tuple[int, Bill],
        failure: Failure,
        now: datetime,
    ) -> tuple[str, str, Mapping[str, Any]] | None:
        """Decide and apply the fallback of one failed debit of a bill the caller holds
        locked; the event to append (None: nothing done, or done before)."""
        bill_id, bill = located
        policy = biller.notice_rules.fallback
        today = now.astimezone(JST).date()
        mandate = None
        if bill.customer.customer_no is not None:
            mandate = get_mandate(conn, biller.biller_id, bill.customer.customer_no)
        windows = [days for _, days in biller.chain_rules.windows()]
        due = fallback_due_date(today, policy, windows, self.config.bills.max_due_days)
        zengin = self.config.zengin
        earliest = earliest_debit_date(
            now,
            zengin.lead_days if zengin is not None else 0,
            zengin.request_at if zengin is not None else None,
        )
        done = fallbacks_of(conn, bill_id)
        decision = decide(
            bill,
            failure,
            policy,
            today=today,
            earliest=earliest,
            redebits=sum(1 for r in done if r.action == Action.REDEBIT.value),
            last_debit=last_debit_date(conn, bill_id),
            mandate_active=mandate is not None and mandate[1].status is MandateStatus.ACTIVE,
            addable=self._addable(biller, bill, due, today),
            due_date=due,
        )
        record = FallbackRecord(
            bill_id,
            biller.biller_id,
            failure.debit_date,
            failure.result_code,
            decision.action.value,
            redebit_date=decision.redebit_date,
            channels=",".join(sorted(decision.channels)) or None,
            reason=decision.reason,
        )
        if not record_fallback(conn, record, now):
            return None  # this failed debit was acted on before
        FALLBACKS.labels(decision.action.value).inc()
        if decision.action is Action.NONE:
            log.info(
                "fallback: bill {bill} of {biller}: nothing done ({reason})",
                bill=bill.bill_no,
                biller=biller.biller_id,
                reason=decision.reason,
            )
            return None
        after, event, detail = self._apply(conn, biller, bill_id, bill, failure, decision, now)
        key = "redebit" if decision.action is Action.REDEBIT else "fallback"
        data = {"bill": self.render(after), key: detail}
        log.info(
            "fallback: bill {bill} of {biller}: {action} after result {code} of {day}",
            bill=bill.bill_no,
            biller=biller.biller_id,
            action=decision.action.value,
            code=failure.result_code,
            day=failure.debit_date.isoformat(),
        )
        return ("evt_" + secrets.token_hex(12), event.value, data)

    def _apply(
        self,
        conn: Connection,
        biller: Biller,
        bill_id: int,
        bill: Bill,
        failure: Failure,
        decision: Decision,
        now: datetime,
    ) -> tuple[Bill, EventType, dict[str, Any]]:
        detail: dict[str, Any] = {
            "failed_debit_date": failure.debit_date.isoformat(),
            "result_code": failure.result_code,
        }
        if decision.action is Action.REDEBIT:
            assert decision.redebit_date is not None
            after = redebit_bill(bill, decision.redebit_date, now)
            save_bill(conn, bill_id, bill, after)
            detail["debit_date"] = decision.redebit_date.isoformat()
            return after, EventType.BILL_REDEBIT_SCHEDULED, detail
        assert decision.due_date is not None
        today = now.astimezone(JST).date()
        new_channels = (bill.channels - {Channel.TRANSFER}) | decision.channels
        fresh = decision.channels - bill.channels
        terms = BillTerms(
            bill.bill_no,
            bill.amount,
            decision.due_date,
            frozenset(fresh),
            bill.customer,
            bill.tax,
            bill.description,
        )
        ids = self.issuer.identify(biller, bill_id, terms, today)
        slip = None
        if Channel.CVS in new_channels:
            slip = self.issuer.slip(
                biller,
                bill_id,
                reissue=bill.reissue + 1,
                amount=bill.amount,
                due_date=decision.due_date,
                tax=bill.tax,
                today=today,
            )
        after = reissue_with_channels(
            bill,
            add=decision.channels,
            slip=slip,
            payeasy=ids.payeasy,
            due_date=decision.due_date,
            now=now,
        )
        save_reissued(conn, bill_id, bill, after, ids.cvs_bill_key)
        detail["channels_added"] = sorted(decision.channels)
        detail["channels_removed"] = [Channel.TRANSFER.value]
        return after, EventType.BILL_FALLBACK_ISSUED, detail

    # -- reminders -----------------------------------------------------------------------------

    def remind(self, conn: Connection, now: datetime) -> int:
        """Queue the reminders due today (and those missed while the daemon was down)."""
        today = now.astimezone(JST).date()
        queued = 0
        for biller in list_billers(conn):
            rules = biller.notice_rules
            if not rules.media(Notice.REMINDER) & frozenset(self.configured):
                continue
            n = rules.reminder_days
            for ahead in range(1, n + 1):
                due = today + timedelta(days=ahead)
                reminder_day = due - timedelta(days=n)  # today, or a day missed
                created_before = datetime.combine(reminder_day + timedelta(days=1), time(0), JST)
                found = due_for_reminder(
                    conn, biller.biller_id, due, due, created_before, REMINDER_BATCH
                )
                wanted = [(Notice.REMINDER, bill.bill_no, due.isoformat()) for _, bill in found]
                before = len(wanted)
                if before:
                    self._queue(conn, biller, wanted, now)
                    queued += before
        if queued:
            log.info("notices: reminders for {n} bill(s) queued", n=queued)
        return queued
