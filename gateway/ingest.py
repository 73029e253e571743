"""Ingest: every collection message, from any network, into the one ledger.

A message is first stored as received (``collection_messages``, unique on channel + event key +
kind: a resend changes nothing), then applied through the state machine (gateway.ledger) and
its outcome written in the same transaction: payments, refund cases, anomalies, the bill's new
version and the outbox events. Links submit messages to a group committer
(:class:`gateway.store.group.GroupCommitter`), so that all
messages arriving while one commit runs go into the next one; files are applied whole.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

from prometheus_client import Counter, Histogram
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway import ids, ledger
from gateway.chain_rules import ChainRules
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
    RefundReason,
    Slip,
    business_date,
)
from gateway.store import Store
from gateway.store.billers import chain_rules_of
from gateway.store.bills import BillMatch, lock_bills, slips_of_bills, update_bills
from gateway.store.events import append_events
from gateway.store.group import GroupCommitter
from gateway.store.ledger import (
    close_refund_cases,
    insert_payments,
    open_refund_cases,
    payments_by_keys,
    payments_of_bills,
    record_anomalies,
    record_messages,
    refund_cases_of_payments,
    set_outcomes,
    update_payments,
)
from gateway.views import payment_json, refund_case_json

log = Logger()

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
CASES_CLOSED = Counter(
    "gateway_refund_cases_closed_by_void_total",
    "Refund cases closed because of a void: the voided payment's own, and double-payment cases "
    "no longer owed once a void left fewer payments paying the bill.",
)
DOUBLE_PAID = Counter("gateway_bills_double_paid_total", "Bills that became double-paid.")
OFF_CHAIN = Counter(
    "gateway_ingest_off_chain_payments_total",
    "New payments taken at a chain their biller does not accept (recorded, paying their bill, "
    "flagged chain_accepted=false), by channel.",
    ["channel"],
)
GROUP_SIZE = Histogram(
    "gateway_ingest_group_size",
    "Messages committed together in one transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)


class BillFinder(Protocol):
    """How one network's messages find their bills (each network's is in gateway.networks)."""

    @property
    def channel(self) -> Channel:
        """The channel its messages are recorded under."""
        ...

    def lookup(self, event: CollectionEvent) -> tuple[str, str] | None:
        """How a message names its bill, as the finder's :class:`BillMatch` keys a locked row
        (None: the message names no bill)."""
        ...

    def match(self, conn: Connection, events: Sequence[CollectionEvent]) -> BillMatch | None:
        """The bills these messages (each with a lookup) name, for one locking statement."""
        ...

    def billers(self, conn: Connection, events: Sequence[CollectionEvent]) -> Mapping[str, str]:
        """For messages of no known bill: bill key → the id of the biller the key still names."""
        ...


@runtime_checkable
class PaymentJudge(Protocol):
    """A finder whose network also judges each new payment by its biller's chain rules (the
    CVS one: gateway.networks.cvs.CvsBills.judge); the ingest asks it before the payment is
    stored or shown in an event."""

    def judge(self, payment: Payment, rules: ChainRules) -> Payment:
        """The new payment with what the rules say of where it was made."""
        ...


NO_RULES = ChainRules()


@dataclass(frozen=True)
class Received:
    """A message to apply, with its place in a file (or None for a link or a poll)."""

    event: CollectionEvent
    line: int | None = None


class _Batch:
    """The state of one group while it is applied in memory, then written set by set."""

    def __init__(self) -> None:
        self.bills: dict[int, Bill] = {}  # current state of each locked bill
        self.changed_bills: dict[int, Bill] = {}
        self.payments: dict[int, list[Payment]] = {}  # per bill, current states
        self.unknown: dict[str, list[Payment]] = {}  # per event key, for unknown bills
        self.new_payments: dict[str, tuple[Payment, int | None]] = {}
        self.changed_payments: dict[str, Payment] = {}
        self.cases: list[tuple[RefundCase, int | None]] = []
        self.anomalies: list[tuple[int, Anomaly]] = []
        self.events: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
        self.outcomes: list[tuple[int, str]] = []
        self.bill_ids: dict[tuple[str, str], int] = {}  # how a message names a bill -> id
        self.slips: dict[int, list[Slip]] = {}
        self.billers: dict[tuple[Channel, str], str] = {}  # bill key -> biller, unknown bills
        self.known: set[str] = set()  # payment ids already in the store
        self.open_cases: dict[str, list[tuple[str, RefundReason]]] = {}  # payment id -> open
        self.refunded: set[str] = set()  # payments with a case other than a double payment
        self.closed_cases: list[tuple[str, str, str]] = []
        self.chain_rules: dict[str, ChainRules] = {}  # the billers' that set any

    def keep_payment(self, payment: Payment, bill_id: int | None) -> None:
        if payment.payment_id in self.new_payments:
            self.new_payments[payment.payment_id] = (payment, bill_id)
        elif payment.payment_id in self.known:
            self.changed_payments[payment.payment_id] = payment
        else:
            self.new_payments[payment.payment_id] = (payment, bill_id)


class Ingest:
    """Applies collection messages to the ledger inside a caller's transaction
    (:meth:`apply_group`), or from the reactor through the store (:meth:`apply_file`,
    :meth:`committer`, which need the daemon's store and clock)."""

    def __init__(
        self,
        store: Store | None,
        clock: IReactorTime | None,
        render_bill: Callable[[Bill], Any],
        finders: Sequence[BillFinder],
        new_id: Callable[[str], str] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.render_bill = render_bill
        self.finders: dict[Channel, BillFinder] = {}
        for finder in finders:
            assert finder.channel not in self.finders, f"two finders for {finder.channel}"
            self.finders[finder.channel] = finder
        self.judges: dict[Channel, PaymentJudge] = {
            f.channel: f for f in finders if isinstance(f, PaymentJudge)
        }
        self.new_id = new_id or ids.new_id

    # -- inside a transaction ---------------------------------------------------------------

    def apply(self, conn: Connection, received: Received, now: datetime, today: date) -> str:
        """Store and apply one message; returns its outcome."""
        return self.apply_group(conn, [received], now, today)[0]

    def apply_all(
        self, conn: Connection, messages: Sequence[Received], now: datetime, today: date
    ) -> dict[str, int]:
        """Apply a whole file in the caller's transaction (all or nothing); a summary."""
        summary: dict[str, int] = {}
        for outcome in self.apply_many(conn, messages, now, today):
            summary[outcome] = summary.get(outcome, 0) + 1
        return summary

    def apply_many(
        self,
        conn: Connection,
        messages: Sequence[Received],
        now: datetime,
        today: date,
        chunk: int = 1000,
    ) -> list[str]:
        """:meth:`apply_group` over any number of messages in the caller's transaction, a chunk
        at a time (the set-based statements take a bounded number of parameters; a later
        chunk sees what an earlier one wrote)."""
        outcomes: list[str] = []
        for start in range(0, len(messages), chunk):
            outcomes += self.apply_group(conn, messages[start : start + chunk], now, today)
        return outcomes

    def apply_group(
        self, conn: Connection, group: Sequence[Received], now: datetime, today: date
    ) -> list[str]:
        """Store and apply messages in their order; one outcome per message.

        Reads and writes are set-based (one statement per table), and the state machine runs
        in memory in message order, so a group costs about as many statements as one message.
        """
        ids = record_messages(conn, [(r.event, r.line) for r in group])
        fresh: list[tuple[int, CollectionEvent]] = []
        outcomes: list[str | int] = []
        for received in group:
            e = received.event
            message_id = ids.pop((e.channel.value, e.kind.value, e.event_key), None)
            if message_id is None:
                MESSAGES.labels(e.channel.value, e.kind.value, "duplicate").inc()
                outcomes.append("duplicate")
            else:
                fresh.append((message_id, e))
                outcomes.append(message_id)
        batch = self._load(conn, [e for _, e in fresh])
        results = {mid: self._apply(batch, mid, e, now, today) for mid, e in fresh}
        self._write(conn, batch, now)
        return [results[o] if isinstance(o, int) else o for o in outcomes]

    def _lookup(self, event: CollectionEvent) -> tuple[str, str] | None:
        """How a message names its bill, as :func:`lock_bills` returns it (its network's)."""
        if event.kind is MessageKind.CORRECTION:
            return None
        finder = self.finders.get(event.channel)
        return finder.lookup(event) if finder is not None else None

    def _load(self, conn: Connection, fresh: Sequence[CollectionEvent]) -> _Batch:
        batch = _Batch()
        named = [e for e in fresh if self._lookup(e) is not None]
        channels = [c for c in self.finders if any(e.channel is c for e in named)]
        matches = [
            self.finders[c].match(conn, [e for e in named if e.channel is c]) for c in channels
        ]
        found = lock_bills(conn, [m for m in matches if m is not None])
        batch.bills = {bill_id: bill for bill_id, bill in found.values()}
        batch.bill_ids = {key: bill_id for key, (bill_id, _) in found.items()}
        batch.payments = payments_of_bills(conn, {i: b.bill_no for i, b in batch.bills.items()})
        batch.slips = slips_of_bills(conn, list(batch.bills))
        unknown = [e for e in named if self._lookup(e) not in found]
        for channel in {e.channel for e in unknown}:
            keys = [e.event_key for e in unknown if e.channel is channel]
            for key, known in payments_by_keys(conn, channel, keys).items():
                batch.unknown[f"{channel.value}:{key}"] = known
        for channel in self.finders:
            of_channel = [e for e in unknown if e.channel is channel]
            if of_channel:
                billers = self.finders[channel].billers(conn, of_channel)
                batch.billers.update({(channel, k): b for k, b in billers.items()})
        if any(e.channel in self.judges for e in fresh):
            owners = {b.biller_id for b in batch.bills.values()} | set(batch.billers.values())
            batch.chain_rules = chain_rules_of(conn, sorted(owners))
        batch.known = {p.payment_id for ps in batch.payments.values() for p in ps}
        batch.known |= {p.payment_id for ps in batch.unknown.values() for p in ps}
        for payment_id, cases in refund_cases_of_payments(conn, sorted(batch.known)).items():
            opened = [(case_id, reason) for case_id, reason, is_open in cases if is_open]
            if opened:
                batch.open_cases[payment_id] = opened
            if any(reason is not RefundReason.DOUBLE_PAYMENT for _, reason, _ in cases):
                batch.refunded.add(payment_id)
        return batch

    def _apply(
        self, batch: _Batch, message_id: int, event: CollectionEvent, now: datetime, today: date
    ) -> str:
        if event.kind is MessageKind.CORRECTION:
            # A network's own correction of an amount is kept for an operator: applying it
            # silently would change a payment the biller has already been told about.
            anomaly = Anomaly(
                AnomalyKind.AMOUNT_CORRECTION,
                event.channel,
                event.event_key,
                f"the network corrects the amount to {event.amount} yen",
            )
            return self._finish(batch, message_id, event, "anomaly", anomalies=[anomaly])
        lookup = self._lookup(event)
        bill_id = batch.bill_ids.get(lookup) if lookup is not None else None
        if bill_id is not None:
            bill: Bill | None = self._expire_if_paid_late(batch, bill_id, event, now)
            known = batch.payments[bill_id]
            biller_id: str | None = batch.bills[bill_id].biller_id
            slips = batch.slips[bill_id]
        else:
            unknown_key = f"{event.channel.value}:{event.event_key}"
            bill, known, slips = None, batch.unknown.setdefault(unknown_key, []), []
            biller_id = batch.billers.get((event.channel, event.bill_key))
        outcome = ledger.apply_message(
            bill,
            known,
            event,
            biller_id=biller_id,
            slips=slips,
            today=today,
            now=now,
            new_id=self.new_id,
            refunded=batch.refunded,
        )
        for payment in outcome.payments:
            payment = self._judged(batch, payment)
            batch.keep_payment(payment, bill_id)
            current = [p for p in known if p.payment_id != payment.payment_id]
            known[:] = [*current, payment]
        for case in outcome.refund_cases:
            batch.cases.append((case, bill_id))
            REFUND_CASES.labels(case.reason.value).inc()
            batch.open_cases.setdefault(case.payment_id, []).append((case.case_id, case.reason))
            if case.reason is not RefundReason.DOUBLE_PAYMENT:
                batch.refunded.add(case.payment_id)
        if event.kind is MessageKind.VOID and outcome.payments:
            after = outcome.bill if bill_id is not None else None
            self._close_cases_after_void(batch, after, known, slips, outcome.payments)
        if outcome.bill_changed and bill_id is not None and outcome.bill is not None:
            batch.bills[bill_id] = batch.changed_bills[bill_id] = outcome.bill
        if biller_id is not None:
            self._events(batch, biller_id, outcome, known)
        result = (
            "duplicate"
            if outcome.duplicate
            else "anomaly"
            if outcome.anomalies
            else "unknown_bill"
            if bill is None
            else "applied"
        )
        return self._finish(batch, message_id, event, result, anomalies=outcome.anomalies)

    def _judged(self, batch: _Batch, payment: Payment) -> Payment:
        """A payment new with this message, as its network judges it by its biller's chain
        rules (a network without rules, or a payment seen before, as it is)."""
        judge = self.judges.get(payment.channel)
        if judge is None or payment.payment_id in batch.known:
            return payment
        if payment.payment_id in batch.new_payments:
            return payment
        judged = judge.judge(payment, batch.chain_rules.get(payment.biller_id, NO_RULES))
        if judged.chain_accepted is False:
            OFF_CHAIN.labels(payment.channel.value).inc()
        return judged

    @staticmethod
    def _close_cases_after_void(
        batch: _Batch,
        bill: Bill | None,
        known: Sequence[Payment],
        slips: Sequence[Slip],
        voided: Sequence[Payment],
    ) -> None:
        """A void gives the payer's money back, so nothing of it is left to refund: the voided
        payment's own open refund cases are closed. Of the payments still paying the bill, one
        pays it and only the others are double payments: when fewer than two are left, the
        bill's double-payment cases are closed; when every one left has a case, the case of
        the first (which now pays the bill) is closed. Each closed case gets a note."""
        names = ", ".join(p.payment_id for p in voided)

        def close(payment: Payment, reasons: Collection[RefundReason], note: str) -> None:
            cases = batch.open_cases.pop(payment.payment_id, [])
            kept = [(case_id, reason) for case_id, reason in cases if reason not in reasons]
            if kept:
                batch.open_cases[payment.payment_id] = kept
            for case_id, reason in cases:
                if reason in reasons:
                    batch.closed_cases.append((case_id, "voided_by_network", note))
                    CASES_CLOSED.inc()

        def double_paid(payment: Payment) -> bool:
            cases = batch.open_cases.get(payment.payment_id, [])
            return any(reason is RefundReason.DOUBLE_PAYMENT for _, reason in cases)

        left = ledger.paying(bill, known, slips, batch.refunded) if bill is not None else []
        once = f"payment {names} was voided by the network; the bill is no longer paid twice"
        back = f"payment {names} was voided by the network; its money went back to the payer"
        for payment in voided:
            ended = bill is not None and len(left) < 2 and double_paid(payment)
            close(payment, set(RefundReason), once if ended else back)
        if bill is None:
            return
        if len(left) < 2:
            done = [p for p in known if double_paid(p)]
            note = once
        elif all(double_paid(p) for p in left):
            done = left[:1]
            note = (
                f"payment {names} was voided by the network; payment {left[0].payment_id} "
                "now pays the bill"
            )
        else:
            return
        for payment in done:
            close(payment, {RefundReason.DOUBLE_PAYMENT}, note)

    def _finish(
        self,
        batch: _Batch,
        message_id: int,
        event: CollectionEvent,
        result: str,
        anomalies: Sequence[Anomaly] = (),
    ) -> str:
        for anomaly in anomalies:
            batch.anomalies.append((message_id, anomaly))
            ANOMALIES.labels(anomaly.channel.value, anomaly.kind.value).inc()
        batch.outcomes.append((message_id, result))
        MESSAGES.labels(event.channel.value, event.kind.value, result).inc()
        return result

    def _expire_if_paid_late(
        self, batch: _Batch, bill_id: int, event: CollectionEvent, now: datetime
    ) -> Bill:
        """A bill still open but past its due date on the day it was paid had expired:
        record that first (the expiry job may not have run yet), so the payment is late."""
        bill = batch.bills[bill_id]
        if event.kind not in (MessageKind.PRELIMINARY, MessageKind.CONFIRMATION):
            return bill
        expired = ledger.expire_bill(bill, today=business_date(event.paid_at), now=now)
        if not expired.bill_changed or expired.bill is None:
            return bill
        batch.bills[bill_id] = batch.changed_bills[bill_id] = expired.bill
        batch.events.setdefault(bill.biller_id, []).append(
            (
                self.new_id("evt"),
                EventType.BILL_EXPIRED.value,
                {"bill": self.render_bill(expired.bill)},
            )
        )
        return expired.bill

    def _events(
        self, batch: _Batch, biller_id: str, outcome: ledger.LedgerChange, known: Sequence[Payment]
    ) -> None:
        by_id = {p.payment_id: p for p in known}
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
            if event.type is EventType.BILL_DOUBLE_PAID:
                DOUBLE_PAID.inc()
            batch.events.setdefault(biller_id, []).append(
                (self.new_id("evt"), event.type.value, data)
            )

    def _write(self, conn: Connection, batch: _Batch, now: datetime) -> None:
        insert_payments(conn, list(batch.new_payments.values()))
        update_payments(conn, list(batch.changed_payments.values()))
        open_refund_cases(conn, batch.cases)
        close_refund_cases(conn, batch.closed_cases, now)
        record_anomalies(conn, batch.anomalies, now)
        update_bills(conn, list(batch.changed_bills.items()))
        set_outcomes(conn, batch.outcomes)
        for biller_id in sorted(batch.events):  # last: the seq row locks, in a fixed order
            append_events(conn, biller_id, batch.events[biller_id], now)

    # -- from the reactor ---------------------------------------------------------------------

    def apply_file(self, messages: Sequence[Received], desc: str) -> Deferred[dict[str, int]]:
        assert self.store is not None and self.clock is not None
        return self.store.run_interaction(
            desc, self.apply_all, messages, clock_now(self.clock), clock_today(self.clock)
        )

    def committer(self, desc: str) -> GroupCommitter[Received, str]:
        assert self.store is not None and self.clock is not None
        store, clock = self.store, self.clock

        def apply_many(conn: Connection, group: list[Received]) -> list[str]:
            return self.apply_group(conn, group, clock_now(clock), clock_today(clock))

        return GroupCommitter(
            store,
            desc,
            apply_many,
            observe=GROUP_SIZE.observe,
            before_commit="ingest.before_commit",
        )
