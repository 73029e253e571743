"""Ingest: every collection message, from any network, into the one ledger.

A message is first stored as received (``collection_messages``, unique on channel + event key +
kind: a resend changes nothing), then applied through the state machine (gateway.ledger) and
its outcome written in the same transaction: payments, refund cases, anomalies, the bill's new
version and the outbox events. Links submit messages to a :class:`GroupCommitter`, so that all
messages arriving while one commit runs go into the next one; files are applied whole.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from prometheus_client import Counter, Histogram
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway import ledger
from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.model import (
    Anomaly,
    AnomalyKind,
    Bill,
    Channel,
    CollectionEvent,
    EventType,
    MessageKind,
    Payment,
    RefundCase,
    business_date,
)
from gateway.store import Store
from gateway.store.bills import find_by_cvs_key, list_slips, save_bill
from gateway.store.events import append_event
from gateway.store.ledger import (
    bill_payments,
    biller_by_code,
    open_refund_case,
    payments_by_key,
    record_anomaly,
    record_message,
    save_payment,
    set_outcome,
)
from gateway.views import payment_json, refund_case_json

log = Logger()
T = TypeVar("T")
R = TypeVar("R")

MESSAGES = Counter(
    "gateway_ingest_messages_total",
    "Collection messages received, by channel, kind and outcome (applied, duplicate, "
    "anomaly, unknown_bill).",
    ["channel", "kind", "outcome"],
)
ANOMALIES = Counter(
    "gateway_ledger_anomalies_total",
    "Messages that contradict the ledger (recorded, never applied), by channel and kind.",
    ["channel", "kind"],
)
REFUND_CASES = Counter(
    "gateway_refund_cases_opened_total", "Refund cases opened, by reason.", ["reason"]
)
DOUBLE_PAID = Counter("gateway_bills_double_paid_total", "Bills that became double-paid.")
GROUP_SIZE = Histogram(
    "gateway_ingest_group_size",
    "Messages committed together in one transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)


@dataclass(frozen=True)
class Received:
    """A message to apply, with its place in a file (or None for a link or a poll)."""

    event: CollectionEvent
    line: int | None = None


class Ingest:
    """``apply``/``apply_all`` run inside a caller's transaction (the admin command uses them
    directly); ``apply_file``/``committer`` need the daemon's store and clock."""

    def __init__(
        self,
        store: Store | None,
        clock: IReactorTime | None,
        render_bill: Callable[[Bill], Any],
        cvs_company_code: str | None,
        new_id: Callable[[str], str] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.render_bill = render_bill
        self.cvs_company_code = cvs_company_code
        self.new_id = new_id or (lambda prefix: f"{prefix}_{secrets.token_hex(12)}")

    # -- inside a transaction ---------------------------------------------------------------

    def _locate(
        self, conn: Connection, event: CollectionEvent
    ) -> tuple[tuple[int, Bill] | None, str | None]:
        """The bill a message names (locked), and its biller even when the bill is unknown."""
        if event.channel is Channel.CVS:
            found = find_by_cvs_key(conn, event.bill_key, for_update=True)
            if found is not None:
                return found, found[1].biller_id
            if event.bill_key[:6] == self.cvs_company_code:
                return None, biller_by_code(conn, event.bill_key[6:11])
            return None, None
        raise NotImplementedError(f"no bill lookup for channel {event.channel}")

    def apply(self, conn: Connection, received: Received, now: datetime, today: date) -> str:
        """Store and apply one message; returns its outcome."""
        event = received.event
        message_id = record_message(conn, event, received.line)
        if message_id is None:
            MESSAGES.labels(event.channel.value, event.kind.value, "duplicate").inc()
            return "duplicate"
        if event.kind is MessageKind.CORRECTION:
            # A network's own correction of an amount is kept for an operator: applying it
            # silently would change a payment the biller has already been told about.
            record_anomaly(
                conn,
                message_id,
                Anomaly(
                    AnomalyKind.AMOUNT_CORRECTION,
                    event.channel,
                    event.event_key,
                    f"the network corrects the amount to {event.amount} yen",
                ),
                now,
            )
            ANOMALIES.labels(event.channel.value, AnomalyKind.AMOUNT_CORRECTION.value).inc()
            set_outcome(conn, message_id, "anomaly")
            MESSAGES.labels(event.channel.value, event.kind.value, "anomaly").inc()
            return "anomaly"
        found, biller_id = self._locate(conn, event)
        bill_id, bill = found if found is not None else (None, None)
        if bill_id is not None and bill is not None:
            known = bill_payments(conn, bill_id, bill.bill_no)
            slips = list_slips(conn, bill_id)
            bill = self._expire_if_paid_late(conn, bill_id, bill, event, now)
        else:
            known, slips = payments_by_key(conn, event.channel, event.event_key), []
        outcome = ledger.apply_message(
            bill,
            known,
            event,
            biller_id=biller_id,
            slips=slips,
            today=today,
            now=now,
            new_id=self.new_id,
        )
        known_ids = {p.payment_id for p in known}
        for payment in outcome.payments:
            save_payment(conn, payment, bill_id, new=payment.payment_id not in known_ids)
        for case in outcome.refund_cases:
            open_refund_case(conn, case, bill_id)
            REFUND_CASES.labels(case.reason.value).inc()
        for anomaly in outcome.anomalies:
            record_anomaly(conn, message_id, anomaly, now)
            ANOMALIES.labels(anomaly.channel.value, anomaly.kind.value).inc()
        after = outcome.bill
        if outcome.bill_changed and bill_id is not None and bill is not None and after:
            save_bill(conn, bill_id, bill, after)
        if biller_id is not None:
            self._events(conn, biller_id, outcome, known, now)
        result = (
            "duplicate"
            if outcome.duplicate
            else "anomaly"
            if outcome.anomalies
            else "unknown_bill"
            if bill is None
            else "applied"
        )
        set_outcome(conn, message_id, result)
        MESSAGES.labels(event.channel.value, event.kind.value, result).inc()
        return result

    def _expire_if_paid_late(
        self, conn: Connection, bill_id: int, bill: Bill, event: CollectionEvent, now: datetime
    ) -> Bill:
        """A bill still open but past its due date on the day it was paid had expired:
        record that first (the expiry job may not have run yet), so the payment is late."""
        if event.kind not in (MessageKind.PRELIMINARY, MessageKind.CONFIRMATION):
            return bill
        expired = ledger.expire_bill(bill, today=business_date(event.paid_at), now=now)
        if not expired.bill_changed or expired.bill is None:
            return bill
        save_bill(conn, bill_id, bill, expired.bill)
        append_event(
            conn,
            biller_id=bill.biller_id,
            event_id=self.new_id("evt"),
            type=EventType.BILL_EXPIRED.value,
            data={"bill": self.render_bill(expired.bill)},
            now=now,
        )
        return expired.bill

    def _events(
        self,
        conn: Connection,
        biller_id: str,
        outcome: ledger.Outcome,
        known: Sequence[Payment],
        now: datetime,
    ) -> None:
        by_id = {p.payment_id: p for p in known}
        by_id.update({p.payment_id: p for p in outcome.payments})
        cases: dict[str, RefundCase] = {c.case_id: c for c in outcome.refund_cases}
        bill_doc = self.render_bill(outcome.bill) if outcome.bill is not None else None
        for event in outcome.events:
            data: dict[str, Any] = {"bill": bill_doc}
            if event.payment_id and event.payment_id in by_id:
                data["payment"] = payment_json(by_id[event.payment_id])
            if event.case_id and event.case_id in cases:
                data["refund_case"] = refund_case_json(cases[event.case_id])
            if event.detail:
                data["detail"] = dict(event.detail)
            if event.type.value == "bill.double_paid":
                DOUBLE_PAID.inc()
            append_event(
                conn,
                biller_id=biller_id,
                event_id=self.new_id("evt"),
                type=event.type.value,
                data=data,
                now=now,
            )

    def apply_all(
        self, conn: Connection, messages: Sequence[Received], now: datetime, today: date
    ) -> dict[str, int]:
        """Apply a whole file in the caller's transaction: all or nothing."""
        summary: dict[str, int] = {}
        for received in messages:
            outcome = self.apply(conn, received, now, today)
            summary[outcome] = summary.get(outcome, 0) + 1
        return summary

    # -- from the reactor ---------------------------------------------------------------------

    def apply_file(self, messages: Sequence[Received], desc: str) -> Deferred[dict[str, int]]:
        assert self.store is not None and self.clock is not None
        return self.store.run_interaction(
            desc, self.apply_all, messages, clock_now(self.clock), clock_today(self.clock)
        )

    def committer(self, desc: str) -> GroupCommitter[Received, str]:
        assert self.store is not None and self.clock is not None
        store, clock = self.store, self.clock

        def apply_one(conn: Connection, received: Received) -> str:
            return self.apply(conn, received, clock_now(clock), clock_today(clock))

        return GroupCommitter(store, desc, apply_one)


class GroupCommitter(Generic[T, R]):
    """Commits items in groups: everything submitted while one group's transaction runs goes
    into the next transaction. Each item runs in its own savepoint, so one failing item does
    not take the others down; if the commit itself fails, every item of the group fails."""

    def __init__(
        self, store: Store, desc: str, apply: Callable[[Connection, T], R], max_group: int = 1000
    ) -> None:
        self.store = store
        self.desc = desc
        self.apply = apply
        self.max_group = max_group
        self._queue: list[tuple[T, Deferred[R]]] = []
        self._running = False

    def submit(self, item: T) -> Deferred[R]:
        d: Deferred[R] = Deferred()
        self._queue.append((item, d))
        self._kick()
        return d

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _kick(self) -> None:
        if self._running or not self._queue:
            return
        group, self._queue = self._queue[: self.max_group], self._queue[self.max_group :]
        self._running = True
        GROUP_SIZE.observe(len(group))
        items = [item for item, _ in group]

        def done(results: list[R | Failure]) -> None:
            for (_, d), result in zip(group, results, strict=True):
                if isinstance(result, Failure):
                    d.errback(result)
                else:
                    d.callback(result)

        def failed(failure: Failure) -> None:
            log.failure(
                "{desc}: a group of {n} could not be committed",
                failure,
                desc=self.desc,
                n=len(group),
            )
            for _, d in group:
                d.errback(failure)

        def next_group(_: object) -> None:
            self._running = False
            self._kick()

        try:
            d = self.store.run_interaction(self.desc, self._run_group, items)
        except Exception:
            failed(Failure())
            next_group(None)
            return
        d.addCallbacks(done, failed)
        d.addBoth(next_group)

    def _run_group(self, conn: Connection, items: list[T]) -> list[R | Failure]:
        results: list[R | Failure] = []
        for item in items:
            savepoint = conn.begin_nested()
            try:
                result = self.apply(conn, item)
            except Exception:
                savepoint.rollback()
                results.append(Failure())
            else:
                savepoint.commit()
                results.append(result)
        return results
