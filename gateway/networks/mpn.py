"""The Pay-easy network (spec/mpn.md): the MPN center's requests answered from the ledger.

照会 answers from the store: ``0000`` with the amount, due date and biller kana for an open bill;
``1002`` when paid through any channel (a CVS 速報 included: this is how a second payment is
stopped before it happens), ``1003`` past due, ``1005`` cancelled, ``1001`` for an unknown
お客様番号 or a wrong 確認番号 — and, after ``guard_limit`` wrong 確認番号 for one number in a day,
for every 照会 of it that day. 消込 and 再送確認 are stored through the ingest (the same state
machine and outbox as every channel) before ``0000`` goes back; the same 消込 again changes
nothing. 取消 voids the 消込 it names (``1006`` when there is none). 閉局 compares the day's
counters both ways and confirms the day's pending 消込.

An お客様番号 of 18 digits is a customer's reusable payer number: its 照会, 消込 and 取消 are
answered by gateway.networks.mpn_payer (the customer's oldest open bill), with the same guard.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy.engine import Connection
from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.config import Config, MpnConfig, TLSConfig
from gateway.infra.reload import ClientTLS
from gateway.infra.tls import TLSFiles
from gateway.ingest import Ingest, Received
from gateway.mappers.mpn import numbers
from gateway.mappers.mpn.mapper import (
    Cancel,
    Close,
    Inquiry,
    InquiryAnswer,
    Message,
    PaymentNotice,
    ResendCheck,
    build_message,
    response_for,
    to_canonical,
)
from gateway.mappers.mpn.numbers import is_payer_number
from gateway.model import (
    JST,
    Bill,
    Biller,
    BillStatus,
    BillTerms,
    Channel,
    CollectionEvent,
    MessageKind,
    PayEasyNumbers,
)
from gateway.networks.banks import bank_place
from gateway.networks.base import Started, Wiring
from gateway.networks.mpn_payer import PayerAnswers, asks_for
from gateway.protocols.mpn import MpnLink
from gateway.store import Store
from gateway.store.bills import BillMatch, Identifiers, match_payeasy_numbers
from gateway.store.group import GroupCommitter
from gateway.store.ledger import billers_by_codes, payments_by_keys
from gateway.store.mpn import (
    GuardKey,
    count_guard_attempt,
    count_guard_attempts,
    day_counters,
    day_payments,
    payeasy_lookup,
    payeasy_lookups,
    purge_guard_before,
    record_day_close,
)

log = Logger()

GUARD_REFUSALS = Counter(
    "gateway_mpn_guard_refusals_total",
    "照会 refused 1001 because the お客様番号 had too many wrong 確認番号 that day.",
)
INQUIRY_GROUP_SIZE = Histogram(
    "gateway_mpn_inquiry_group_size",
    "照会 answered together in one transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
CONFLICTING_RESENDS = Counter(
    "gateway_mpn_conflicting_resends_total",
    "消込 whose triple was already stored with another amount or bank: answered 0000 as the "
    "spec says, not applied, logged for an operator.",
)
CLOSE_MISMATCHES = Counter(
    "gateway_mpn_close_mismatches_total",
    "閉局 whose counters differed from the center's.",
)


@dataclass
class CloseState:
    """What /readyz shows about the last 閉局."""

    last: dict[str, Any] = field(default_factory=dict)


class MpnNetwork:
    def __init__(self, config: MpnConfig, store: Store, ingest: Ingest, reactor: Any) -> None:
        self.config = config
        self.store = store
        self.ingest = ingest
        self.reactor = reactor
        self.close_state = CloseState()
        self.payers = PayerAnswers(self._guarded, self._store)
        # 照会 that arrive together are answered in one transaction (one commit), set-based.
        self.inquiries: GroupCommitter[Message, Message] = GroupCommitter(
            store, "mpn.inquiry", self._inquiries, max_group=500, observe=INQUIRY_GROUP_SIZE.observe
        )

    # -- answers --------------------------------------------------------------------------------

    def answer(self, request: Message, source: str) -> Deferred[Message]:
        """The response to a center request; a failure (the store down) fails the Deferred,
        which the link answers ``9001`` (temporarily unable: the center may retry)."""
        return maybeDeferred(self._answer, request, source)

    def _answer(self, request: Message, source: str) -> Deferred[Message]:
        body = request.body
        if isinstance(body, Inquiry):
            return self.inquiries.submit(request)
        if isinstance(body, PaymentNotice | ResendCheck):
            return self.store.run_interaction("mpn.payment", self._payment, request, source)
        if isinstance(body, Cancel):
            return self.store.run_interaction("mpn.cancel", self._cancel, request, source)
        raise ValueError(f"{request.header.type} is not a request the center sends")

    def _known_bill(
        self, conn: Connection, key: Any, day: date
    ) -> tuple[Bill | None, str, str | None]:
        """(the bill, its biller's kana, None) or (None, "", the refusal code) for a key."""
        found = payeasy_lookup(conn, key.institution_code, key.customer_number)
        if found is None:
            return None, "", "1001"
        bill, kana = found
        assert bill.payeasy is not None
        refusal = self._guarded(conn, key, day, bill.payeasy.confirmation_number)
        if refusal is not None:
            return None, "", refusal
        return bill, kana, None

    def _guarded(self, conn: Connection, key: Any, day: date, secret: str) -> str | None:
        """None when the key's 確認番号 is ``secret`` and the guard lets it through, else the
        refusal (``1001``): every attempt on a number is counted."""
        wrong = _wrong(key, secret)
        # The count returned by the one atomic statement decides, never a count read before.
        failures = count_guard_attempt(
            conn, key.institution_code, key.customer_number, day, wrong=wrong
        )
        return self._judged(wrong, failures)

    def _judged(self, wrong: bool, failures: int) -> str | None:
        """The guard's decision on one attempt from the day's wrong count including it."""
        # A wrong one counted past the limit, or a right one once the limit is reached.
        if failures > self.config.guard_limit or (
            not wrong and failures >= self.config.guard_limit
        ):
            GUARD_REFUSALS.inc()
            return "1001"
        return "1001" if wrong else None

    def _store(self, conn: Connection, event: CollectionEvent) -> str:
        """Store and apply a 消込 or 取消 through the ingest, in the caller's transaction."""
        return self.ingest.apply(
            conn, Received(event), clock_now(self.reactor), clock_today(self.reactor)
        )

    def _inquiry(self, conn: Connection, request: Message) -> Message:
        (answer,) = self._inquiries(conn, [request])
        return answer

    def _inquiries(self, conn: Connection, requests: list[Message]) -> list[Message]:
        """The answers to a group of 照会 in one transaction, each as if answered alone in the
        order given: one SELECT of every bill, one upsert of every guard count (each attempt
        counted, in order: :func:`count_guard_attempts`). A payer number's is answered on its
        own (gateway.networks.mpn_payer)."""
        answers: list[Message | None] = [None] * len(requests)
        plain: list[tuple[int, Message, Inquiry]] = []
        for i, request in enumerate(requests):
            body = request.body
            assert isinstance(body, Inquiry)
            if is_payer_number(body.key.customer_number):
                answers[i] = self.payers.inquiry(conn, request)
            else:
                plain.append((i, request, body))
        found = payeasy_lookups(
            conn, {(b.key.institution_code, b.key.customer_number) for _, _, b in plain}
        )
        known: list[tuple[int, Message, Bill, str, bool]] = []
        attempts: list[tuple[GuardKey, bool]] = []
        for i, request, body in plain:
            key = body.key
            hit = found.get((key.institution_code, key.customer_number))
            if hit is None:  # no such number: nothing to guard
                answers[i] = response_for(request, "1001")
                continue
            bill, kana = hit
            assert bill.payeasy is not None
            wrong = _wrong(key, bill.payeasy.confirmation_number)
            day = request.header.business_date
            known.append((i, request, bill, kana, wrong))
            attempts.append(((key.institution_code, key.customer_number, day), wrong))
        counts = count_guard_attempts(conn, attempts)
        for (i, request, bill, kana, wrong), failures in zip(known, counts, strict=True):
            refusal = self._judged(wrong, failures)
            answers[i] = (
                response_for(request, refusal)
                if refusal is not None
                else self._bill_answer(request, bill, kana)
            )
        return [a for a in answers if a is not None]

    def _bill_answer(self, request: Message, bill: Bill, kana: str) -> Message:
        """A known bill's answer once its 確認番号 is let through: its state, else the amount."""
        body = request.body
        assert isinstance(body, Inquiry)
        day = request.header.business_date
        if bill.status is BillStatus.CANCELLED:
            return response_for(request, "1005")
        if bill.status in (BillStatus.PAID, BillStatus.CONFIRMED):
            return response_for(request, "1002")
        if bill.status is BillStatus.EXPIRED or (bill.due_date is not None and bill.due_date < day):
            return response_for(request, "1003")
        amount = 0 if bill.payer_chooses else bill.amount  # 0: the payer enters it
        answer = InquiryAnswer(body.key, amount, bill.due_date, kana)
        return response_for(request, "0000", answer)

    def _payment(self, conn: Connection, request: Message, source: str) -> Message:
        body = request.body
        payment = body.payment if isinstance(body, ResendCheck) else body
        assert isinstance(payment, PaymentNotice)
        event = self._event(request, source)
        stored = payments_by_keys(conn, Channel.PAYEASY, [event.event_key])[event.event_key]
        if stored:
            # Already stored: a resend changes nothing (spec/mpn.md §5). A "resend" that
            # differs is a center reusing a triple: still 0000 as the spec says, but loud.
            if (stored[0].amount, stored[0].store) != (event.amount, event.store):
                CONFLICTING_RESENDS.inc()
                log.error(
                    "MPN 消込 {triple} repeats a stored triple with other content (stored "
                    "{stored} yen via {via}, now {amount} yen via {now_via}): not applied",
                    triple=event.event_key,
                    stored=stored[0].amount,
                    via=stored[0].store,
                    amount=event.amount,
                    now_via=event.store,
                )
            return response_for(request, "0000")
        if is_payer_number(payment.key.customer_number):
            return self.payers.payment(conn, request, payment, event)
        bill, _, refusal = self._known_bill(conn, payment.key, request.header.business_date)
        if bill is None:
            return response_for(request, refusal or "1001")
        if not asks_for(bill, payment.amount):
            return response_for(request, "1004")
        # Stored before the answer; a bill paid elsewhere or cancelled is recorded all the
        # same (the bank has the money): double payment or paid-after-cancel, refund case.
        self._store(conn, event)
        return response_for(request, "0000")

    def _cancel(self, conn: Connection, request: Message, source: str) -> Message:
        body = request.body
        assert isinstance(body, Cancel)
        event = self._event(request, source)
        found = payments_by_keys(conn, Channel.PAYEASY, [event.event_key])[event.event_key]
        if not found or body.original_business_date != request.header.business_date:
            return response_for(request, "1006")
        if is_payer_number(body.key.customer_number):
            event = self.payers.cancelled(conn, event)
        self._store(conn, event)
        return response_for(request, "0000")

    def _event(self, request: Message, source: str) -> CollectionEvent:
        return to_canonical(
            request, raw=build_message(request), source=source, received_at=clock_now(self.reactor)
        )

    # -- 閉局 -----------------------------------------------------------------------------------

    def counters(self, day: date) -> Deferred[tuple[int, int, int, int]]:
        return self.store.run_interaction("mpn.counters", day_counters, day)

    def close_day(
        self, day: date, theirs: tuple[int, int, int, int] | None
    ) -> Deferred[dict[str, Any]]:
        """Store the day's counters with the center's, flag a difference, confirm the day's
        pending 消込 (a payment the center counted is final), and drop the guard's counts of the
        days before it."""
        return self.store.run_interaction("mpn.close", self._close, day, theirs)

    def _close(
        self, conn: Connection, day: date, theirs: tuple[int, int, int, int] | None
    ) -> dict[str, Any]:
        ours = day_counters(conn, day)
        now = clock_now(self.reactor)
        record_day_close(conn, day, ours, theirs, now)
        purge_guard_before(conn, day)
        confirmations = [
            Received(
                CollectionEvent(
                    channel=Channel.PAYEASY,
                    kind=MessageKind.CONFIRMATION,
                    event_key=p.event_key,
                    amount=p.amount,
                    paid_at=p.paid_at,
                    received_at=now,
                    source=f"close:{day:%Y%m%d}",
                    raw=b"",
                    bill_key=number or "",
                    transfer_date=None,
                    store=p.store,
                    detail={
                        "institution_code": institution or "",
                        "business_date": day.isoformat(),
                    },
                )
            )
            for p, institution, number in day_payments(conn, day)
            if p.status.value == "pending"
        ]
        summary = self.ingest.apply_all(conn, confirmations, now, clock_today(self.reactor))
        matched = theirs is None or ours == theirs
        if not matched:
            CLOSE_MISMATCHES.inc()
            log.error(
                "MPN 閉局 {day}: our counters {ours} differ from the center's {theirs}",
                day=day.isoformat(),
                ours=ours,
                theirs=theirs,
            )
        state = {
            "business_date": day.isoformat(),
            "ours": list(ours),
            "center": list(theirs) if theirs else None,
            "matched": matched,
            "confirmed": summary.get("applied", 0),
        }
        self.close_state.last = state
        return state

    def business_date(self) -> date:
        return datetime.fromtimestamp(self.reactor.seconds(), JST).date()


def _wrong(key: Any, secret: str) -> bool:
    """Whether the key's 確認番号 is not ``secret`` (compared in constant time)."""
    return not hmac.compare_digest(secret.encode(), str(key.confirmation_number).encode())


def close_body(day: date, counters: tuple[int, int, int, int]) -> Close:
    return Close(day, *counters)


class MpnLinkService(Service):
    """Starts and stops the link to the center (it redials on its own). A reload (SIGHUP,
    gateway.app.reload) reads its TLS files and ``hostname`` again for the next connection."""

    name = "mpn-link"

    def __init__(self, link: Any, tls: ClientTLS | None = None) -> None:
        self.link = link
        self.tls = tls

    def prepare_reload(self, config: Config) -> Callable[[], str]:
        """Check the new files (:class:`ConfigError` if one is wrong); the function returned
        puts them and the new ``hostname`` in force and says what it did."""
        mpn, tls = config.mpn, config.tls
        if self.tls is None or mpn is None or mpn.connect is None or tls is None:
            return lambda: "mpn link kept (gone from the file: a restart removes it)"
        assert mpn.hostname is not None, "config requires mpn.hostname with mpn.connect"
        hostname = mpn.hostname
        apply = self.tls.prepare(link_files(tls, mpn), hostname)

        def applied() -> str:
            apply()
            return f"mpn link (hostname {hostname})"

        return applied

    def startService(self) -> None:
        super().startService()
        self.link.start()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        d: Deferred[None] = self.link.stop()
        return d


class DayCloser(Service):
    """閉局 once a day at ``close_at`` (JST) on the injected clock: our counters to the center,
    its figures back, both stored; a failed exchange is retried a minute later."""

    def __init__(self, network: MpnNetwork, link: Any, close_at: time, reactor: Any) -> None:
        self.network = network
        self.link = link
        self.close_at = close_at
        self.reactor = reactor
        self._call: IDelayedCall | None = None

    def startService(self) -> None:
        super().startService()
        self._schedule(self._seconds_until_next())

    def stopService(self) -> None:
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()

    def _seconds_until_next(self) -> float:
        now = datetime.fromtimestamp(self.reactor.seconds(), JST)
        at = datetime.combine(now.date(), self.close_at, tzinfo=JST)
        if at <= now:
            at += timedelta(days=1)
        return (at - now).total_seconds()

    def _schedule(self, delay: float) -> None:
        if self.running:
            self._call = self.reactor.callLater(delay, self._close)

    def _close(self) -> None:
        day = self.network.business_date()
        d = Deferred.fromCoroutine(self.close(day))

        def done(ok: bool) -> None:
            self._schedule(self._seconds_until_next() if ok else 60.0)

        d.addCallback(done)

    async def close(self, day: date) -> bool:
        ours = await self.network.counters(day)
        try:
            theirs = await self.link.close_day(day, close_body(day, ours))
        except Exception as e:
            log.warn(
                "MPN 閉局 {day} not exchanged ({error}); retrying in a minute",
                day=day.isoformat(),
                error=e,
            )
            return False
        figures = (
            theirs.payments_count,
            theirs.payments_sum,
            theirs.cancels_count,
            theirs.cancels_sum,
        )
        state = await self.network.close_day(day, figures)
        log.info("MPN 閉局 {day}: {state}", day=day.isoformat(), state=state)
        return True


def mpn_services(network: MpnNetwork, tls: Any, reactor: Any) -> tuple[list[IService], Any]:
    """The link and the day closer for make_service, and the link (for /readyz)."""

    config = network.config
    assert config.connect is not None and config.center_code is not None and tls is not None
    assert config.hostname is not None, "config requires mpn.hostname with mpn.connect"
    # A missing or wrong file stops the daemon before it starts.
    holder = ClientTLS(link_files(tls, config), config.hostname)
    link = MpnLink(
        reactor,
        config.connect,
        holder,
        config.hostname,
        network.answer,
        institution_code=config.institution_code,
        center_code=config.center_code,
        business_date=network.business_date,
    )
    return [MpnLinkService(link, holder), DayCloser(network, link, config.close_at, reactor)], link


def link_files(tls: TLSConfig, config: MpnConfig) -> TLSFiles:
    """The TLS files of the MPN link: ``[tls]``, with ``mpn.ca`` if it is given."""
    return TLSFiles(
        config.ca or tls.ca,
        tls.certificate,
        tls.key,
        ca_option="tls.ca" if config.ca is None else "mpn.ca",
        link="mpn",
    )


def payeasy_numbers(
    config: MpnConfig, randbelow: Callable[[int], int], biller: Biller, serial: int
) -> PayEasyNumbers:
    """A bill's Pay-easy numbers: 収納機関番号, お客様番号 (from the biller code and serial) and
    a random 確認番号."""
    return PayEasyNumbers(
        institution_code=biller.payeasy_institution_code or config.institution_code,
        customer_number=numbers.customer_number(biller.code, serial, config.number_key),
        confirmation_number=numbers.confirmation_number(randbelow, config.confirmation_digits),
    )


@dataclass(frozen=True)
class PayeasyBills:
    """A Pay-easy message names its bill by (収納機関番号, お客様番号)."""

    channel: Channel = Channel.PAYEASY

    def lookup(self, event: CollectionEvent) -> tuple[str, str] | None:
        return ("payeasy", f"{event.detail.get('institution_code', '')}:{event.bill_key}")

    def match(self, conn: Connection, events: Sequence[CollectionEvent]) -> BillMatch | None:
        return match_payeasy_numbers(
            "payeasy", [(e.detail.get("institution_code", ""), e.bill_key) for e in events]
        )

    def billers(self, conn: Connection, events: Sequence[CollectionEvent]) -> dict[str, str]:
        """An お客様番号 of no known bill still names its biller: its first 5 digits."""
        codes = {e.bill_key: e.bill_key[:5] for e in events if len(e.bill_key) == 16}
        ids = billers_by_codes(conn, sorted({c for c in codes.values() if c}))
        return {key: ids[code] for key, code in codes.items() if code in ids}


PAYEASY_CHANNELS = {"1": "atm", "2": "internet", "3": "mobile"}  # spec/mpn.md 消込 channel
PAYEASY_WORDING = {
    "atm": "ATM",
    "internet": "インターネットバンキング",
    "mobile": "モバイルバンキング",
}


@dataclass(frozen=True)
class PayeasyPayments:
    """A Pay-easy payment's place is ``BANK-HOW``: the bank code and the 消込 channel (ATM,
    internet or mobile banking)."""

    wording: str = "Pay-easy（ペイジー）"

    def detail(self, store: str) -> dict[str, Any]:
        bank_code, _, how = store.partition("-")
        return {"bank": {"bank_code": bank_code, "channel": PAYEASY_CHANNELS.get(how, how)}}

    def place(self, store: str) -> str:
        """The bank (the master's name, or its code) and how the customer paid."""
        bank_code, _, how = store.partition("-")
        bank, _ = bank_place(bank_code)
        return f"{bank} {PAYEASY_WORDING.get(PAYEASY_CHANNELS.get(how, ''), '')}".strip()


class Mpn:
    """The Pay-easy (MPN) network, for the registry."""

    name = "mpn"
    channel = Channel.PAYEASY
    description = PayeasyPayments()

    def enabled(self, config: Config) -> bool:
        return config.mpn is not None

    def limit(self, config: Config) -> int:
        assert config.mpn is not None
        return config.mpn.max_amount

    def identify(
        self,
        config: Config,
        randbelow: Callable[[int], int],
        biller: Biller,
        serial: int,
        terms: BillTerms,
        today: date,
    ) -> Identifiers:
        assert config.mpn is not None, "the payeasy channel is off"
        return Identifiers(None, payeasy_numbers(config.mpn, randbelow, biller, serial))

    def finder(self, config: Config) -> PayeasyBills:
        return PayeasyBills()

    def start(self, wiring: Wiring) -> Started:
        config = wiring.config.mpn
        assert config is not None
        if config.connect is None:  # no link: Pay-easy numbers are issued, nothing is received
            return Started([])
        network = MpnNetwork(config, wiring.store, wiring.ingest, wiring.reactor)
        services, link = mpn_services(network, wiring.config.tls, wiring.reactor)
        return Started(
            services,
            lambda: {
                "mpn": {
                    **link.state.document(),  # "link": open or down, "since"
                    "last_close": network.close_state.last or None,
                }
            },
        )


MPN = Mpn()
