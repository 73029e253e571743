"""The simulated peers of one seed, and what each of them believes happened.

- :class:`CvsAgency` — the convenience-store agency: :class:`simulators.cvs.Agency` keeps its
  payments, voids, 確報 files and CSV rows; its 速報 go over the real agency link client
  (:class:`simulators.cvs_link.AgencyLinkClient`) on an in-memory :class:`~simulators.world.
  wire.Wire` to the live gateway's link factory, with the seed's frame faults (duplicated,
  reordered, dropped frames; an ack timeout that reconnects and resends).
- :class:`MpnCenter` — the MPN center and its banks: 照会, 消込 (resent as 再送確認 when no
  answer comes), 取消, and the 閉局 figures, asked of the live gateway's ``MpnNetwork.answer``.
- :class:`ZenginBank` — :class:`simulators.zengin.SimulatedBank` on the gateway's outbox and
  inbox, taking request files and answering them on the shared clock.
- :class:`Receivers` — the billers' webhook endpoints: a client (``Poster``) the delivery
  service posts to, that records each delivery and fails some.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from gateway.mappers.cvs.agency import build_agency_csv
from gateway.mappers.cvs.mapper import RecordKind, build_file, build_record, parse_file
from gateway.mappers.cvs.records import make_event_key
from gateway.mappers.mpn.mapper import (
    Body,
    Cancel,
    Close,
    Header,
    Inquiry,
    Key,
    Message,
    PaymentChannel,
    PaymentNotice,
    ResendCheck,
    build_message,
    event_key,
    parse_message,
)
from gateway.model import JST
from gateway.protocols.inbox import FileResult
from gateway.webhooks.attempts import PostResult
from gateway.webhooks.signing import SignatureError, verify_signature
from simulators.cvs import APP_CHAINS, APP_STORE, SEGMENTS, STORE_CHAINS, Agency, Fate, Payment
from simulators.cvs import Scenario as CvsScenario
from simulators.cvs_link import AgencyLinkClient, AgencyLinkProtocol
from simulators.world.daemon import Daemon
from simulators.world.faults import FaultPlan, Injected
from simulators.world.runtime import Sim
from simulators.world.wire import Wire, certificate
from simulators.zengin import SimulatedBank

if TYPE_CHECKING:
    from simulators.world.world import World

Log = Callable[[str, str], None]
KINDS = {"01": "preliminary", "02": "confirmation", "03": "void"}


# --- the CVS agency ------------------------------------------------------------------------------


class _FaultyAgencyProtocol(AgencyLinkProtocol):
    """The agency's protocol, sending some DT frames twice, late or never (the seed's faults)."""

    def __init__(self, client: AgencyLinkClient, agency: CvsAgency) -> None:
        super().__init__(client)
        self.agency = agency
        self.held: tuple[str, bytes] | None = None

    def send_data(self, sequence: str, record: bytes) -> None:
        a, plan = self.agency, self.agency.plan
        if a.faulty() and a.rng.random() < plan.drop:
            a.fault("net.drop_frame", f"DT {sequence} lost on the way")
            return
        if a.faulty() and self.held is None and a.rng.random() < plan.reorder:
            a.fault("net.reorder_frame", f"DT {sequence} held back behind the next frame")
            self.held = (sequence, record)
            a.sim.call_later(a.rng.uniform(0.01, 2.0), self._release)
            return
        super().send_data(sequence, record)
        if a.faulty() and a.rng.random() < plan.duplicate:
            a.fault("net.duplicate_frame", f"DT {sequence} sent twice")
            super().send_data(sequence, record)
        self._release()

    def _release(self) -> None:
        held, self.held = self.held, None
        transport: Any = self.transport
        if held is not None and transport is not None and not transport.disconnecting:
            super().send_data(*held)


class _AgencyClient(AgencyLinkClient):
    def __init__(self, agency: CvsAgency) -> None:
        super().__init__(
            agency.sim.clock, heartbeat_interval=20.0, retry_delay=5.0, idle_timeout=90.0
        )
        self.agency = agency

    def buildProtocol(self, addr: Any) -> AgencyLinkProtocol:
        protocol = _FaultyAgencyProtocol(self, self.agency)
        protocol.factory = self
        return protocol

    def _acked(self, sequence: str, result: str) -> None:
        self.agency.progress = self.agency.sim.seconds()
        super()._acked(sequence, result)


@dataclass
class Slip:
    bill_no: str
    biller_id: str
    barcode: str


class CvsAgency:
    """The agency's side: payments at stores, the 速報 link, 確報 files, the CSV."""

    ACK_TIMEOUT = 30.0

    def __init__(self, world: World, company_code: str, inbox: Path) -> None:
        self.world = world
        self.sim: Sim = world.sim
        self.plan: FaultPlan = world.plan
        self.rng = random.Random(f"agency/{world.seed}")
        self.log: Log = world.log
        self.injected: Injected = world.injected
        self.company_code = company_code
        self.inbox = inbox
        start = datetime.fromtimestamp(self.sim.seconds(), JST)
        scenario = CvsScenario(
            seed=world.seed,
            confirmation_delay_days=0,
            overlap_probability=self.plan.overlap,
            start=start,
            company_code=company_code,
        )
        self.model = Agency(scenario, self.sim.clock)
        self.client = _AgencyClient(self)
        self.wire: Wire | None = None
        self.progress = self.sim.seconds()
        self.acked: set[tuple[str, str]] = set()  # (kind, event key) answered 00
        self.refused: list[tuple[str, str]] = []  # answered 10
        self.sent: list[tuple[str, str]] = []  # (kind, event key) in the order sent
        self.slips: dict[str, list[str]] = {}  # bill_no -> barcodes issued, oldest first
        self.files: list[tuple[str, bytes, list[tuple[str, str]]]] = []  # name, bytes, records
        self.csv_accepted: set[tuple[str, str]] = set()
        self.open = True  # the agency dials while open
        self.calm = False
        self._dial_call: Any = None
        self.sim.call_later(10.0, self._watchdog)

    # -- faults --

    def faulty(self) -> bool:
        return not self.calm

    def fault(self, kind: str, what: str) -> None:
        self.injected[kind] += 1
        self.log("fault", f"{kind}: {what}")

    # -- the link --

    def dial(self) -> None:
        """Connect to the live gateway (now), unless connected."""
        self._dial_call = None
        if self.wire is not None or not self.open:
            return
        daemon = self.world.daemon
        if daemon is None or not daemon.alive:
            self.redial()
            return
        client = self.client.buildProtocol(None)
        server = daemon.link.buildProtocol(None)
        self.wire = Wire(
            self.sim,
            self.rng,
            client,
            server,
            server_process=daemon.process,
            client_cert=certificate("cvs-agency.sim"),
            latency=self.plan.latency,
            split=self.plan.split if self.faulty() else 0.0,
            cut_mid_frame=self.plan.cut_mid_frame if self.faulty() else 0.0,
            on_closed=self._closed,
            on_fault=lambda kind: self.fault(kind, "the connection breaks inside a frame"),
        )
        self.progress = self.sim.seconds()
        self.log("agency", f"link: connecting to gateway#{daemon.life}")
        self.wire.open(server.handshakeCompleted)

    def redial(self) -> None:
        if self._dial_call is None or not self._dial_call.active():
            delay = self.rng.uniform(1.0, 10.0)
            self._dial_call = self.sim.call_later(delay, self.dial)

    def _closed(self, wire: Wire, why: str) -> None:
        if wire is self.wire:
            self.wire = None
            self.log("agency", f"link: closed ({why}); {self.client.unacked} record(s) unacked")
            if self.open:
                self.redial()

    def cut(self, why: str) -> None:
        if self.wire is not None:
            self.wire.cut(why)

    def gateway_died(self) -> None:
        if self.wire is not None:
            self.wire.server_died()

    def _watchdog(self) -> None:
        """No ack for ACK_TIMEOUT seconds while records wait: the agency drops the connection
        and resends them on the next one."""
        now = self.sim.seconds()
        if self.wire is not None and self.client.unacked and now - self.progress > self.ACK_TIMEOUT:
            self.log("agency", f"link: no ack for {now - self.progress:.0f}s, reconnecting")
            self.wire.cut("agency ack timeout")
        self.sim.call_later(10.0, self._watchdog)

    def replay(self, n: int) -> int:
        """Send the last ``n`` acknowledged records again, under new sequences."""
        again = [k for k in self.sent if k in self.acked][-n:]
        for kind, key in again:
            self._send(RecordKind(kind), self.model.payments[key])
        return len(again)

    def _send(self, kind: RecordKind, payment: Payment) -> None:
        rec = self.model.events[(kind.value, payment.event_key)]
        key = (kind.value, payment.event_key)
        self.sent.append(key)
        if not self.client.unacked:
            self.progress = self.sim.seconds()
        d = self.client.send(build_record(rec))

        def answered(result: str) -> None:
            self.log("agency", f"AK {result} for {kind.value} …{payment.event_key[-25:]}")
            if result == "00":
                self.acked.add(key)
                self.world.told_stored(
                    f"AK 00 for {kind.value} (DT)", [("cvs", KINDS[kind.value], payment.event_key)]
                )
            else:
                self.refused.append(key)
                self.log("agency", f"{kind.value} {payment.event_key[:20]}… refused {result}")

        d.addCallback(answered)

    # -- payments --

    def pay(self, slip_barcodes: list[str], bill_no: str, *, old: bool = False) -> Payment | None:
        """A customer pays the bill at a store now: its newest slip (or an older one)."""
        if not slip_barcodes:
            return None
        code = (
            self.rng.choice(slip_barcodes[:-1])
            if old and len(slip_barcodes) > 1
            else slip_barcodes[-1]
        )
        at = datetime.fromtimestamp(self.sim.seconds(), JST).replace(second=0, microsecond=0)
        chain = self.rng.choice(STORE_CHAINS + APP_CHAINS)
        store = APP_STORE if chain in APP_CHAINS else f"{self.rng.randrange(1, 10**7):07d}"
        key = make_event_key(code, at.date(), at.strftime("%H%M"), chain, store)
        if key in self.model.payments:
            return None
        amount = int(code[37:43])
        payment = Payment(key, code, amount, chain, store, at, self.rng.choice(SEGMENTS), bill_no)
        self.model.payments[key] = payment
        rec = payment.record(RecordKind.PRELIMINARY)
        self.model.events[(RecordKind.PRELIMINARY.value, key)] = rec
        self.log("agency", f"paid {bill_no} {amount} yen at {chain}-{store} (01 {key[44:]})")
        self._send(RecordKind.PRELIMINARY, payment)
        return payment

    def void(self) -> Payment | None:
        """A store voids one of its pending payments (速報取消)."""
        pending = [p for p in self.model.payments.values() if p.fate is Fate.PENDING]
        if not pending:
            return None
        payment = self.rng.choice(pending)
        self.model.void_records([payment])
        self.log("agency", f"voided {payment.bill_no} (03 {payment.event_key[44:]})")
        self._send(RecordKind.VOID, payment)
        return self.model.payments[payment.event_key]

    # -- files and the CSV --

    def confirmation_file(self, day: date) -> None:
        """The 確報 file of the payments made up to ``day``, dropped into the gateway's inbox
        (and, with the seed's fault, dropped again later)."""
        data = self.model.confirmation_file(day)
        parsed = parse_file(data)
        if parsed.records and self.faulty() and self.rng.random() < self.plan.duplicate_record:
            twice = self.rng.choice(parsed.records)
            self.fault(
                "file.duplicated_record", f"a 確報 file carries …{twice.event_key[-25:]} twice"
            )
            records_twice = sorted([*parsed.records, twice], key=lambda r: (r.paid_on, r.paid_time))
            data = build_file(
                parsed.file_date, parsed.company_code, parsed.agency_name, records_twice
            )
        n = len(self.files) + 1
        name = f"CVS{day:%Y%m%d}_{n:03d}.dat"
        records = [
            (RecordKind.CONFIRMATION.value, k)
            for k, p in self.model.payments.items()
            if p.fate is Fate.CONFIRMED and p.transfer_date == day
        ]
        self.files.append((name, data, records))
        self.model.write_file(self.inbox, name, data)
        self.log("agency", f"確報 file {name}: {len(records)} new record(s)")
        if self.faulty() and self.rng.random() < self.plan.repeat_file:
            again = f"CVS{day:%Y%m%d}_{n:03d}_again.dat"
            self.fault("file.repeated", f"{name} dropped again as {again}")
            self.files.append((again, data, records))
            self.sim.call_later(
                self.rng.uniform(1, 900), self.model.write_file, self.inbox, again, data
            )

    def csv(self, start: date, end: date) -> bytes:
        rows = self.model.agency_rows(start, end)
        if rows and self.faulty() and self.rng.random() < self.plan.duplicate_record:
            twice = self.rng.randrange(len(rows))
            self.fault("file.duplicated_record", f"a CSV answer carries row {twice + 2} twice")
            rows.insert(twice, rows[twice])
        return build_agency_csv(rows)

    def csv_rows(self, start: date, end: date) -> list[tuple[str, str]]:
        return [
            (
                row.kind,
                make_event_key(
                    row.barcode, row.paid_on, row.paid_time, row.chain_code, row.store_code
                ),
            )
            for row in self.model.agency_rows(start, end)
        ]


# --- the MPN center ------------------------------------------------------------------------------


@dataclass
class CenterPayment:
    triple: tuple[str, date, str]
    bill_no: str
    biller_id: str
    notice: PaymentNotice
    answered: bool = False  # 0000 received
    refused: str | None = None  # another code received
    cancelled: bool = False  # 取消 answered 0000
    cancel_asked: bool = False
    cancel_refused: str | None = None  # 取消 answered another code

    @property
    def key(self) -> str:
        return event_key(*self.triple)


@dataclass
class _Ask:
    message: Message
    tries: int = 0
    deferred: Deferred[Message] = field(default_factory=Deferred)


class MpnCenter:
    """The center: asks the live gateway, waits ``TIMEOUT`` for an answer, asks again."""

    TIMEOUT = 10.0
    CENTER = "9001"

    def __init__(self, world: World) -> None:
        self.world = world
        self.sim = world.sim
        self.plan = world.plan
        self.rng = random.Random(f"center/{world.seed}")
        self.log: Log = world.log
        self.injected = world.injected
        self.serial = 0
        self.payments: dict[tuple[str, date, str], CenterPayment] = {}
        self.answers: Counter[str] = Counter()
        self.calm = False
        self.closes: dict[date, tuple[int, int, int, int]] = {}  # figures it sent at 閉局

    def business_date(self) -> date:
        return datetime.fromtimestamp(self.sim.seconds(), JST).date()

    def _header(self, type_: str, triple: tuple[str, date, str] | None = None) -> Header:
        if triple is None:
            self.serial += 1
            triple = (self.CENTER, self.business_date(), f"{self.serial:08d}")
        return Header(type_, *triple)

    def ask(
        self, type_: str, body: Body, triple: tuple[str, date, str] | None = None
    ) -> Deferred[Message]:
        """Send a request to the live gateway until an answer comes; fires with it."""
        ask = _Ask(Message(self._header(type_, triple), body))
        self._try(ask)
        return ask.deferred

    def _try(self, ask: _Ask) -> None:
        ask.tries += 1
        message = ask.message
        if ask.tries > 1 and message.header.type == "1200":
            # the bank never had the answer: ask again under the same triple (再送確認)
            body = message.body
            assert isinstance(body, PaymentNotice)
            ask.message = message = Message(replace(message.header, type="1400"), ResendCheck(body))
        daemon = self.world.daemon
        timer = self.sim.call_later(self.TIMEOUT * min(ask.tries, 6), self._timeout, ask)
        if daemon is None or not daemon.alive:
            return
        raw = build_message(message)  # the bytes on the wire, parsed as the link would
        request = parse_message(raw)
        latency = self.rng.uniform(*self.plan.latency)
        if not self.calm and self.rng.random() < self.plan.duplicate:
            self._fault(
                "net.duplicate_request", f"{request.header.type} {request.header.serial} sent twice"
            )
            self.sim.call_later(latency, self._deliver, daemon, request, None, None)
        self.sim.call_later(latency, self._deliver, daemon, request, ask, timer)

    def _fault(self, kind: str, what: str) -> None:
        self.injected[kind] += 1
        self.log("fault", f"{kind}: {what}")

    def _deliver(self, daemon: Daemon, request: Message, ask: _Ask | None, timer: Any) -> None:
        if not daemon.alive:
            return
        d = daemon.mpn.answer(request, "mpn:center")

        def answered(response: Message) -> None:
            if ask is None or ask.deferred.called or not daemon.alive:
                return
            if not self.calm and self.rng.random() < self.plan.drop:
                self._fault("net.drop_answer", f"{response.header.type} answer lost")
                return
            self.sim.call_later(
                self.rng.uniform(*self.plan.latency), self._answered, ask, timer, response
            )

        def failed(failure: Failure) -> None:  # the link answers 9001: try again later
            if ask is not None and daemon.alive:
                self.answers["9001"] += 1

        d.addCallbacks(answered, failed)

    def _answered(self, ask: _Ask, timer: Any, response: Message) -> None:
        if ask.deferred.called:
            return
        if timer.active():
            timer.cancel()
        code = response.header.response_code
        self.answers[f"{response.header.type}:{code}"] += 1
        ask.deferred.callback(response)

    def _timeout(self, ask: _Ask) -> None:
        if ask.deferred.called:
            return
        if ask.tries >= 40:
            self.log("center", f"{ask.message.header.type} {ask.message.header.serial}: gave up")
            return
        self._try(ask)

    # -- what customers do --

    async def pay(self, bill: dict[str, Any], biller_id: str, *, wrong_first: bool) -> None:
        pe = bill["payeasy"]
        key = Key(pe["institution_code"], pe["customer_number"], pe["confirmation_number"])
        if wrong_first:
            last = key.confirmation_number[-1]
            wrong = replace(
                key, confirmation_number=key.confirmation_number[:-1] + str((int(last) + 1) % 10)
            )
            await self.ask("1100", Inquiry(wrong))
        answer = await self.ask("1100", Inquiry(key))
        code = answer.header.response_code
        self.log("center", f"照会 {bill['bill_no']}: {code}")
        if code != "0000":
            return
        amount = getattr(answer.body, "amount", 0) or int(bill["amount"])
        notice = PaymentNotice(
            key,
            amount,
            datetime.fromtimestamp(int(self.sim.seconds()), JST),
            self.rng.choice(("0001", "0005", "0009", "0033")),
            self.rng.choice(list(PaymentChannel)),
        )
        header = self._header("1200")
        paid = CenterPayment(header.triple, bill["bill_no"], biller_id, notice)
        self.payments[header.triple] = paid
        self.log("center", f"消込 {bill['bill_no']} {amount} yen ({paid.key})")
        result = await self.ask("1200", notice, header.triple)
        code = result.header.response_code
        if code == "0000":
            paid.answered = True
            self.world.told_stored("MPN 消込 answered 0000", [("payeasy", "preliminary", paid.key)])
        else:
            paid.refused = code
            self.log("center", f"消込 {paid.key}: refused {code}")

    async def cancel(self) -> None:
        """The bank cancels one of today's answered 消込 (取消)."""
        today = self.business_date()
        candidates = [
            p
            for p in self.payments.values()
            if p.answered and not p.cancel_asked and p.triple[1] == today
        ]
        if not candidates:
            return
        paid = self.rng.choice(candidates)
        paid.cancel_asked = True
        self.log("center", f"取消 {paid.bill_no} ({paid.key})")
        answer = await self.ask("1300", Cancel(*paid.triple, paid.notice.key, paid.notice.amount))
        if answer.header.response_code == "0000":
            paid.cancelled = True
            self.world.told_stored("MPN 取消 answered 0000", [("payeasy", "void", paid.key)])
        else:
            paid.cancel_refused = answer.header.response_code
            self.log("center", f"取消 {paid.key}: answered {answer.header.response_code}")

    def figures(self, day: date) -> tuple[int, int, int, int]:
        """(消込 count, sum, 取消 count, sum) of a business day, as the center knows them."""
        paid = [p for p in self.payments.values() if p.triple[1] == day and p.answered]
        cancelled = [p for p in paid if p.cancelled]
        return (
            len(paid),
            sum(p.notice.amount for p in paid),
            len(cancelled),
            sum(p.notice.amount for p in cancelled),
        )

    def close_day(self, daemon: Daemon, day: date, ours: Close) -> Deferred[Close]:
        """The 閉局 exchange the daemon's DayCloser starts: the center's figures back."""
        figures = self.figures(day)
        self.closes[day] = figures
        self.log(
            "center", f"閉局 {day}: gateway {tuple(vars(ours).values())[1:]}, center {figures}"
        )
        d: Deferred[Close] = Deferred()
        self.sim.call_later(self.rng.uniform(*self.plan.latency), d.callback, Close(day, *figures))
        return d


# --- the Zengin bank ----------------------------------------------------------------------------


class ZenginBank:
    """The bank of account transfers on the gateway's outbox and inbox (simulators.zengin)."""

    def __init__(self, world: World, outbox: Path, inbox: Path, work: Path) -> None:
        self.world = world
        self.bank = SimulatedBank(
            outbox,
            inbox,
            work,
            mix={"0": 85, "1": 8, "2": 2, "3": 2, "4": 1, "9": 2},
            seed=world.seed,
            delay=120.0,
            clock=world.sim.clock,
        )

    def work(self) -> None:
        for path in self.bank.process_once():
            self.world.log("bank", f"result file {path.name}")

    def entries(self) -> list[Any]:
        return self.bank.record()


# --- webhook receivers --------------------------------------------------------------------------


class Receivers:
    """Every biller's endpoint: records the deliveries that got a 2xx; fails some attempts."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.sim = world.sim
        self.rng = random.Random(f"receivers/{world.seed}")
        self.fail_rate = self.rng.choice((0.0, 0.0, 0.1, 0.3))
        self.calm = False
        self.delivered: dict[str, set[str]] = {}  # url -> event ids answered 2xx
        self.secrets: dict[str, str] = {}  # url -> the endpoint's secret
        self.bad_signatures: list[str] = []
        self.attempts = 0

    def post(self, url: str, body: bytes, headers: Any) -> Deferred[PostResult]:
        self.attempts += 1
        d: Deferred[PostResult] = Deferred()
        event_id = json.loads(body)["id"]
        secret = self.secrets.get(url)
        if secret is not None:  # the receiver checks the signature, as docs/webhooks.md says
            try:
                verify_signature(secret, headers["Gateway-Signature"], body, now=self.sim.seconds())
            except SignatureError as e:
                self.bad_signatures.append(f"{url}: event {event_id}: {e}")
        latency = self.rng.uniform(0.005, 0.5)
        if not self.calm and self.rng.random() < self.fail_rate:
            self.world.injected["webhook.failed_attempt"] += 1
            result = self.rng.choice(
                (PostResult(500, None), PostResult(None, "connection refused"))
            )
        else:
            result = PostResult(200, None)
            self.sim.call_later(latency, self._received, url, event_id)
        self.sim.call_later(latency, d.callback, result)
        return d

    def _received(self, url: str, event_id: str) -> None:
        self.delivered.setdefault(url, set()).add(event_id)

    def close(self) -> Deferred[None]:
        return succeed(None)


def accepted(result: FileResult) -> bool:
    return result.accepted


__all__ = [
    "CenterPayment",
    "CvsAgency",
    "MpnCenter",
    "Receivers",
    "Slip",
    "ZenginBank",
    "accepted",
    "timedelta",
]
