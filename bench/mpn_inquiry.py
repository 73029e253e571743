"""Pay-easy 照会 answered per second over the MPN center link, against the same lookups done
directly on the database.

    .venv/bin/python bench/mpn_inquiry.py [--database-url URL] [--bills N] [--rate 500]
        [--seconds 20] [--saturation-seconds 10] [--in-flight 200] [--py-spy FILE]

PostgreSQL only (a scratch database ``gateway_bench_<pid>`` on the server of ``--database-url``).
Loads ``N`` open Pay-easy bills with ``COPY``, starts an MPN center (``simulators.mpn_link``,
mutual TLS) in this process and the real daemon (``twistd -n gateway``) dialling it, then offers
照会 at a fixed ``--rate`` for ``--seconds`` and, after that, with ``--in-flight`` outstanding
for ``--saturation-seconds``; each 照会 names a random existing bill with its right 確認番号, and
every answer must be ``0000`` with that bill's amount. The bills' お客様番号 are those the
daemon issues (``gateway.mappers.mpn.numbers.customer_number`` under its ``[mpn]
number_key``) and their ``page_token`` what ``BillService.stored_token`` stores. Then, with
the daemon stopped, the same 照会 answered by ``MpnNetwork._inquiry`` itself (the bill's
SELECT and the 確認番号 guard's upsert), one transaction each, on 1 and 10 threads. Prints a
table and, last, one JSON line.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from _daemon import (
    BILLER_ID,
    MPN_INSTITUTION_CODE,
    BenchFailure,
    Daemon,
    Gateway,
    MpnCenter,
    ScratchDatabase,
    add_database_url,
    bench_main,
    durability_settings,
    prepare,
    say,
)
from bills_api import Step, Timing, run_concurrently, stored_page_token
from cvs_ingest import Cpu, CpuClock, PySpy, _table, code_state, on_reactor, scrape
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from gateway.billing.bills import parse_bill_request
from gateway.config import Config, load_config
from gateway.infra.tls import TLSFiles
from gateway.mappers.mpn import numbers as payeasy
from gateway.mappers.mpn.mapper import Header, Inquiry, InquiryAnswer, Key, Message
from gateway.model import JST, Biller, BillStatus
from gateway.networks.issuer import Issuer
from gateway.networks.mpn import MpnNetwork
from gateway.store import create_db_engine
from gateway.store.billers import get_biller
from simulators.mpn_link import MpnCenterFactory, listen_mpn_center

TICK = 0.002  # seconds between two turns of the fixed-rate schedule
COPY_CHUNK = 20_000  # rows per write to the COPY stream
DEADLINE = 30.0  # the center fails a 照会 not answered within this
WARMUP = 1000  # 照会 before the clock, not counted (window of 50)
DIRECT_THREADS = (1, 10)


# --- the bills, loaded with COPY ---------------------------------------------------------------

# The columns gateway.store.bills.insert_bill and its UPDATE set (all but id are as the API
# stores a bill with channels ["payeasy"]: no slip, no barcode).
COLUMNS = (
    "id",
    "biller_id",
    "bill_no",
    "amount",
    "due_date",
    "channels",
    "customer_no",
    "customer_name",
    "customer_kana",
    "customer_email",
    "customer_phone",
    "taxable",
    "tax_amount",
    "description",
    "status",
    "version",
    "reissue",
    "double_paid",
    "late",
    "barcode",
    "cvs_bill_key",
    "stamp",
    "payeasy_institution_code",
    "payeasy_customer_number",
    "payeasy_confirmation_number",
    "page_token",
    "fingerprint",
    "created_at",
    "updated_at",
)


def amount_of(serial: int) -> int:
    return 1000 + (serial * 37) % 40000  # as bills_api.bill_body: under the stamp threshold


def bill_body(serial: int, due: date) -> dict[str, Any]:
    return {
        "bill_no": f"P-{serial:07d}",
        "amount": amount_of(serial),
        "due_date": due.isoformat(),
        "channels": ["payeasy"],
        "customer": {"customer_no": f"C{serial:07d}", "name": "山田 太郎"},
    }


@dataclass(frozen=True)
class Bills:
    """The bills loaded: serials 1..count (= ids, as the API numbers them), one biller."""

    count: int
    biller: Biller
    institution: str
    numbers: array[int]  # お客様番号 (16 digits) as integers, index serial - 1
    confirmations: array[int]  # index serial - 1

    def key(self, serial: int) -> Key:
        return Key(
            self.institution,
            f"{self.numbers[serial - 1]:016d}",
            f"{self.confirmations[serial - 1]:06d}",
        )


@dataclass(frozen=True)
class Load:
    bills: Bills
    copy_seconds: float
    analyze_seconds: float
    table_size: str

    @property
    def seconds(self) -> float:
        return self.copy_seconds + self.analyze_seconds


class RowText:
    """One ``COPY ... FROM STDIN`` text line per bill, built as the API builds the row.

    ``parse_bill_request`` on the first body gives every derived column (tax, kana, fingerprint
    recipe); per row only what depends on the serial changes: bill_no, amount, customer_no, the
    fingerprint (``BillRequest.fingerprint``'s JSON with those three fields, checked against
    ``parse_bill_request`` for the first rows), お客様番号 (:meth:`number`, computed before the
    COPY), 確認番号, and ``page_token``: ``BillService.stored_token`` (the SHA-256 of the token
    derived under the daemon's ``[secrets] key``), as the API stores it.
    """

    def __init__(self, gateway_config: Config, biller: Biller, today: date, due: date) -> None:
        self.config = gateway_config
        self.issuer = Issuer(gateway_config)
        self.page_token = stored_page_token(gateway_config)
        self.biller = biller
        self.today = today
        self.due = due
        first_numbers = self.issuer.payeasy_numbers(biller, 1)
        self.institution = first_numbers.institution_code
        if self.number(1) != first_numbers.customer_number:
            raise BenchFailure("bill 1: the お客様番号 differs from the one the daemon issues")
        first = self.request(1)
        if first.tax.taxable or first.customer.kana or first.description:
            raise BenchFailure(f"unexpected derived fields in {first}")
        self.now = datetime.now(UTC).isoformat()
        self.head = f"{biller.biller_id}\t"
        self.due_channels = f"\t{due.isoformat()}\tpayeasy\t"
        # customer_kana .. payeasy_institution_code, the same for every bill
        self.middle = (
            f"\t{first.customer.name}\t\\N\t\\N\t\\N\tf\t{first.tax.tax_amount}\t\\N"
            f"\t{BillStatus.OPEN.value}\t1\t0\tf\tf\t\\N\t\\N\tf\t{self.institution}\t"
        )
        self.tail = f"\t{self.now}\t{self.now}\n"
        doc = json.loads(self._fingerprint_doc(first))
        self.doc_template = doc

    def request(self, serial: int) -> Any:
        return parse_bill_request(
            bill_body(serial, self.due),
            limits=self.issuer.channel_limits(),
            today=self.today,
            max_due_days=self.config.bills.max_due_days,
        )

    @staticmethod
    def _fingerprint_doc(request: Any) -> str:
        import dataclasses

        doc = dataclasses.asdict(request)
        if request.max_amount is None:  # as BillRequest.fingerprint (payer-chosen amounts)
            del doc["min_amount"], doc["max_amount"]
        doc["channels"] = sorted(request.channels)
        doc["due_date"] = request.due_date.isoformat()
        return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def number(self, serial: int) -> str:
        """The お客様番号 the daemon issues for this serial:
        ``gateway.mappers.mpn.numbers.customer_number`` under the daemon's ``[mpn] number_key``
        (checked against ``Issuer.payeasy_numbers``)."""
        assert self.config.mpn is not None
        return payeasy.customer_number(self.biller.code, serial, self.config.mpn.number_key)

    def fingerprint(self, serial: int) -> str:
        doc = self.doc_template
        doc["bill_no"] = f"P-{serial:07d}"
        doc["amount"] = amount_of(serial)
        doc["customer"]["customer_no"] = f"C{serial:07d}"
        blob = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def check(self, serials: range) -> None:
        """The per-row shortcut gives the API's fingerprint."""
        for serial in serials:
            if self.fingerprint(serial) != self.request(serial).fingerprint():
                raise BenchFailure(f"bill {serial}: the fingerprint differs from the API's")

    def line(self, serial: int, number: int, confirmation: int) -> str:
        bill_no = f"P-{serial:07d}"
        return (
            f"{serial}\t{self.head}{bill_no}\t{amount_of(serial)}{self.due_channels}"
            f"C{serial:07d}{self.middle}{number:016d}\t{confirmation:06d}"
            f"\t{self.page_token(self.biller.biller_id, bill_no)}\t{self.fingerprint(serial)}"
            f"{self.tail}"
        )


def load_bills(url: str, gateway: Gateway, count: int) -> Load:
    """``count`` open Pay-easy bills of the bench biller, with PostgreSQL ``COPY``, then
    ``VACUUM ANALYZE bills``."""
    config = load_config(gateway.config_path)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            biller = get_biller(conn, BILLER_ID)
        today = datetime.now(JST).date()
        rows = RowText(config, biller, today, today + timedelta(days=60))
        rows.check(range(1, 51))
        rng = random.Random(20240501)
        confirmations = array("I", (rng.randrange(1_000_000) for _ in range(count)))
        # The keyed permutation costs tens of µs a number: made before the clock, kept for the
        # 照会 (the load figure is the database's).
        t_numbers = time.perf_counter()
        numbers = array("Q", (int(rows.number(s)) for s in range(1, count + 1)))
        say(f"{count} お客様番号 under [mpn] number_key: {time.perf_counter() - t_numbers:.1f}s")
        columns = ", ".join(COLUMNS)
        t0 = time.perf_counter()
        raw = engine.raw_connection()
        try:
            psycopg_conn: Any = raw.driver_connection
            with psycopg_conn.cursor() as cur:
                with cur.copy(f"COPY bills ({columns}) FROM STDIN") as copy:
                    for start in range(1, count + 1, COPY_CHUNK):
                        stop = min(count + 1, start + COPY_CHUNK)
                        chunk = "".join(
                            rows.line(s, numbers[s - 1], confirmations[s - 1])
                            for s in range(start, stop)
                        )
                        copy.write(chunk.encode())
                        if stop - 1 and (stop - 1) % 200_000 == 0:
                            say(f"  {stop - 1} rows sent ({time.perf_counter() - t0:.1f}s)")
                cur.execute(
                    "SELECT setval(pg_get_serial_sequence('bills', 'id'),"
                    " (SELECT max(id) FROM bills))"
                )
            psycopg_conn.commit()
        finally:
            raw.close()
        copy_seconds = time.perf_counter() - t0
        say(f"COPY of {count} bills: {copy_seconds:.1f}s; VACUUM ANALYZE bills")
        t1 = time.perf_counter()
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("VACUUM ANALYZE bills"))
            stored = conn.execute(
                text("SELECT count(*) FROM bills WHERE biller_id = :b AND status = 'open'"),
                {"b": BILLER_ID},
            ).scalar_one()
            size = conn.execute(
                text("SELECT pg_size_pretty(pg_total_relation_size('bills'))")
            ).scalar_one()
        analyze_seconds = time.perf_counter() - t1
        if stored != count:
            raise BenchFailure(f"{stored} open bills stored, {count} loaded")
    finally:
        engine.dispose()
    return Load(
        Bills(count, biller, rows.institution, numbers, confirmations),
        copy_seconds,
        analyze_seconds,
        str(size),
    )


# --- the 照会 over the link ---------------------------------------------------------------------


@dataclass
class Phase:
    """One phase's 照会: perf_counter() of each send and answer, and the answers' codes."""

    sent: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)  # what was wrong with an answer
    cpu: Cpu | None = None
    store_seconds: float = 0.0  # mpn.inquiry store interactions, from /metrics
    store_count: int = 0

    @property
    def count(self) -> int:
        return len(self.answered)

    @property
    def seconds(self) -> float:
        """First send to last answer."""
        return max(self.answered) - min(self.sent)

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def offered_rate(self) -> float:
        span = max(self.sent) - min(self.sent)
        return (len(self.sent) - 1) / span if span > 0 else float("inf")

    def timing(self) -> Timing:
        return Timing(
            self.seconds,
            self.count,
            [a - s for s, a in zip(self.sent, self.answered, strict=True)],
        )


class Asker:
    """Sends 照会 for random bills on the center and checks each answer."""

    def __init__(self, reactor: Any, center: MpnCenterFactory, bills: Bills, seed: int) -> None:
        self.reactor = reactor
        self.center = center
        self.bills = bills
        self.rng = random.Random(seed)

    def ask(self, phase: Phase, on_done: Any) -> None:
        serial = self.rng.randint(1, self.bills.count)
        key = self.bills.key(serial)
        i = len(phase.sent)
        phase.sent.append(time.perf_counter())
        phase.answered.append(0.0)
        d = self.center.request("1100", Inquiry(key))

        def answered(response: Message) -> None:
            phase.answered[i] = time.perf_counter()
            code = response.header.response_code
            phase.codes[code] = phase.codes.get(code, 0) + 1
            body = response.body
            if (
                code != "0000"
                or not isinstance(body, InquiryAnswer)
                or body.key.customer_number != key.customer_number
                or body.amount != amount_of(serial)
                or not body.biller_name
            ) and len(phase.wrong) < 10:
                phase.wrong.append(f"bill {serial}: {code} {body!r}")
            on_done(None)

        d.addCallbacks(answered, on_done)

    def fixed_rate(self, rate: float, seconds: float) -> Deferred[Phase]:
        """Send 照会 k at k / rate s after the first (a LoopingCall every TICK sends every one
        due), whatever the answers do; done with the last answer."""
        n = max(2, round(rate * seconds))
        phase = Phase()
        done: Deferred[Phase] = Deferred()
        state = {"answered": 0}

        def one_done(result: object) -> None:
            if isinstance(result, Failure):
                if not done.called:
                    done.errback(result)
                return
            state["answered"] += 1
            if state["answered"] == n and not done.called:
                done.callback(phase)

        def tick() -> None:
            due = min(n, int((time.perf_counter() - t0) * rate) + 1)
            while len(phase.sent) < due:
                self.ask(phase, one_done)
            if len(phase.sent) == n and schedule.running:
                schedule.stop()

        schedule = LoopingCall(tick)
        schedule.clock = self.reactor
        t0 = time.perf_counter()
        schedule.start(TICK, now=True)

        def finish(result: object) -> object:
            if schedule.running:
                schedule.stop()
            return result

        return done.addBoth(finish)

    def window(self, in_flight: int, seconds: float | None, count: int | None) -> Deferred[Phase]:
        """Keep ``in_flight`` 照会 outstanding (each answer sends the next) for ``seconds`` or
        ``count`` 照会; done with the last answer."""
        phase = Phase()
        done: Deferred[Phase] = Deferred()
        state = {"outstanding": 0}
        t0 = time.perf_counter()

        def more() -> bool:
            if count is not None:
                return len(phase.sent) < count
            assert seconds is not None
            return time.perf_counter() - t0 < seconds

        def one_done(result: object) -> None:
            state["outstanding"] -= 1
            if isinstance(result, Failure):
                if not done.called:
                    done.errback(result)
                return
            if more():
                state["outstanding"] += 1
                self.ask(phase, one_done)
            elif state["outstanding"] == 0 and not done.called:
                done.callback(phase)

        for _ in range(in_flight):
            state["outstanding"] += 1
            self.ask(phase, one_done)
        return done


def check_phase(phase: Phase, name: str) -> None:
    if phase.wrong or set(phase.codes) != {"0000"}:
        raise BenchFailure(
            f"{name}: answers by code {phase.codes}; every 照会 must be answered 0000 with its"
            f" bill's amount; e.g. {phase.wrong[:3]}"
        )


@dataclass(frozen=True)
class LinkResults:
    warmup: Phase
    fixed: Phase
    saturation: Phase
    opened_seconds: float
    profile: str | None
    center_counts: dict[str, int]


def inquiry_store(before: dict[Any, float], after: dict[Any, float]) -> tuple[float, int]:
    name = "gateway_store_interaction_duration_seconds"
    label = (("desc", "mpn.inquiry"),)
    seconds = after.get((f"{name}_sum", label), 0.0) - before.get((f"{name}_sum", label), 0.0)
    count = after.get((f"{name}_count", label), 0.0) - before.get((f"{name}_count", label), 0.0)
    return seconds, int(count)


async def link_phases(
    reactor: Any,
    gateway: Gateway,
    daemon: Daemon,
    bills: Bills,
    args: argparse.Namespace,
) -> LinkResults:
    where: MpnCenter | None = gateway.mpn_link
    assert where is not None
    center = MpnCenterFactory(reactor, center_code="0002", deadline=DEADLINE)
    port = await listen_mpn_center(
        reactor,
        where.listen,
        TLSFiles(where.ca, where.certificate, where.key),
        factory=center,
    )
    try:
        say(f"MPN center listening on {where.listen}; starting the daemon")
        t0 = time.perf_counter()
        daemon.start()  # blocks the reactor until /readyz; the daemon's dial waits in the backlog
        say(f"daemon ready (pid {daemon.pid}); waiting for 開局")
        await center.opened.addTimeout(60, reactor)
        opened = time.perf_counter() - t0
        if center.institution_code != MPN_INSTITUTION_CODE:
            raise BenchFailure(f"開局 from institution {center.institution_code}")
        say(f"開局 received {opened:.1f}s after the daemon's start")
        asker = Asker(reactor, center, bills, seed=7)

        say(f"warm-up: {WARMUP} 照会, 50 in flight, not counted")
        warm = await asker.window(50, None, WARMUP)
        check_phase(warm, "warm-up")

        n = max(2, round(args.rate * args.seconds))
        say(f"fixed rate: {n} 照会 at {args.rate:g}/s ({args.seconds:g}s)")
        before = scrape(gateway.metrics_port)
        cpu = CpuClock(daemon.pid)
        fixed = await asker.fixed_rate(args.rate, args.seconds)
        fixed.cpu = cpu.read()
        after = scrape(gateway.metrics_port)
        fixed.store_seconds, fixed.store_count = inquiry_store(before, after)
        check_phase(fixed, "fixed rate")

        say(f"saturation: {args.in_flight} 照会 in flight for {args.saturation_seconds:g}s")
        spy = PySpy(daemon.pid, args.py_spy) if args.py_spy is not None else None
        before = scrape(gateway.metrics_port)
        cpu = CpuClock(daemon.pid)
        saturation = await asker.window(args.in_flight, args.saturation_seconds, None)
        saturation.cpu = cpu.read()
        after = scrape(gateway.metrics_port)
        profiled = spy.stop() if spy is not None else None
        saturation.store_seconds, saturation.store_count = inquiry_store(before, after)
        check_phase(saturation, "saturation")
        counts = dict(center.received)
        if center.disconnects:
            raise BenchFailure(f"the gateway disconnected {len(center.disconnects)} time(s)")
    finally:
        # The gateway's connection stays up until the daemon stops.
        await maybeDeferred(port.stopListening)
    return LinkResults(warm, fixed, saturation, opened, profiled, counts)


# --- the direct lookups --------------------------------------------------------------------------


@dataclass(frozen=True)
class Direct:
    threads: int
    timing: Timing


def direct_lookups(
    url: str, config: Config, bills: Bills, threads: int, n: int, seed: int
) -> Direct:
    """``n`` 照会 of random bills answered by ``MpnNetwork._inquiry`` itself, the daemon's
    ``mpn.inquiry`` group transaction for a group of one (``payeasy_lookups``: the bill and its
    biller's kana in one SELECT; then the 確認番号 guard's ``count_guard_attempts``, one
    ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, right attempts included; then the
    bill's state), each in its own transaction, through the gateway's engine
    (``create_db_engine``, pool of ``threads``), on ``threads`` threads. No link, no TLS, no
    framing, no reactor."""
    assert config.mpn is not None
    network = MpnNetwork(config.mpn, None, None, None)  # type: ignore[arg-type]  # _inquiry uses none
    engine = create_db_engine(url, pool_size=threads)
    rng = random.Random(seed)
    keys = [(s, bills.key(s)) for s in (rng.randint(1, bills.count) for _ in range(n + 200))]
    day = datetime.now(JST).date()

    @contextmanager
    def session() -> Iterator[Step]:
        def step(i: int, warm: bool) -> None:
            serial, key = keys[i if warm else 200 + i]
            request = Message(Header("1100", "0002", day, f"{i % 10**8:08d}"), Inquiry(key))
            with engine.begin() as conn:
                response = network._inquiry(conn, request)
            code, body = response.header.response_code, response.body
            if code != "0000" or not isinstance(body, InquiryAnswer):
                raise BenchFailure(f"bill {serial}: answered {code}")
            if body.amount != amount_of(serial) or not body.biller_name:
                raise BenchFailure(f"bill {serial}: amount {body.amount}")

        yield step

    try:
        return Direct(threads, run_concurrently(threads, 200, n, session))
    finally:
        engine.dispose()


# --- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    load: Load
    rate: float
    seconds: float
    in_flight: int
    link: LinkResults
    direct: list[Direct]
    durability: str
    code: str

    def figures(self) -> dict[str, Any]:
        fixed = self.link.fixed.timing()
        sat = self.link.saturation
        one, many = self.direct
        return {
            "bench": "mpn_inquiry",
            "backend": "postgresql",
            "bills": self.load.bills.count,
            "load_seconds": round(self.load.seconds, 1),
            "load_rows_per_s": round(self.load.bills.count / self.load.seconds),
            "offered_rate": self.rate,
            "achieved_offered_rate": round(self.link.fixed.offered_rate, 1),
            "answered_per_s": round(self.link.fixed.rate, 1),
            "p50_ms": round(fixed.percentile_ms(50), 2),
            "p99_ms": round(fixed.percentile_ms(99), 2),
            "max_ms": round(fixed.percentile_ms(100), 2),
            "saturation_in_flight": self.in_flight,
            "saturation_per_s": round(sat.rate, 1),
            "saturation_p50_ms": round(sat.timing().percentile_ms(50), 1),
            "direct_1_thread_per_s": round(one.timing.rate, 1),
            "direct_1_thread_p50_ms": round(one.timing.percentile_ms(50), 3),
            "direct_1_thread_p99_ms": round(one.timing.percentile_ms(99), 3),
            f"direct_{many.threads}_threads_per_s": round(many.timing.rate, 1),
            f"direct_{many.threads}_threads_p50_ms": round(many.timing.percentile_ms(50), 3),
            f"direct_{many.threads}_threads_p99_ms": round(many.timing.percentile_ms(99), 3),
            "ratio_link_direct": round(sat.rate / many.timing.rate, 3),
            "daemon_cpu_us_per_inquiry": _per(sat.cpu, sat.count),
            "code": self.code,
        }


def _per(cpu: Cpu | None, count: int) -> float | None:
    return None if cpu is None or cpu.daemon is None else round(1e6 * cpu.daemon / count)


def run(args: argparse.Namespace, db: ScratchDatabase, workdir: Path) -> Result:
    if db.backend != "postgresql":
        raise BenchFailure("this benchmark needs PostgreSQL (--database-url)")
    say(f"setting up the gateway with its MPN link on {db.backend} in {workdir}")
    gateway = prepare(workdir, db.url, mpn_link=True)
    say(f"loading {args.bills} bills with COPY")
    load = load_bills(db.url, gateway, args.bills)
    say(f"{args.bills} bills in {load.seconds:.1f}s ({load.table_size} with indexes)")

    daemon = gateway.daemon()
    try:
        link = on_reactor(
            partial(link_phases, gateway=gateway, daemon=daemon, bills=load.bills, args=args)
        )
    except BenchFailure as e:
        raise BenchFailure(f"{e}\n--- daemon log ---\n{daemon.log_tail()}") from e
    finally:
        code = daemon.stop()
    how = "cleanly" if daemon.stopped_cleanly() else f"exit {code}"
    say(f"daemon stopped ({how})")

    n = max(2, round(args.rate * args.seconds))
    config = load_config(gateway.config_path)
    direct = []
    for threads in DIRECT_THREADS:
        say(f"direct: {n} 照会 on {threads} thread(s) (MpnNetwork._inquiry, no link)")
        direct.append(direct_lookups(db.url, config, load.bills, threads, n, seed=7))
    return Result(
        load,
        args.rate,
        args.seconds,
        args.in_flight,
        link,
        direct,
        durability_settings(db.url),
        code_state(),
    )


def _cpu(cpu: Cpu | None, phase: Phase) -> str:
    if cpu is None or cpu.daemon is None:
        return "CPU: daemon unknown (no /proc)"
    return (
        f"CPU: daemon {100 * cpu.daemon / phase.seconds:.0f}% of a core"
        f" ({1e6 * cpu.daemon / phase.count:.0f} µs per 照会), driver (center side)"
        f" {100 * cpu.driver / phase.seconds:.0f}%; {os.cpu_count()} CPUs;"
        f" mean store interaction {1000 * phase.store_seconds / max(phase.store_count, 1):.2f} ms"
        f" ({phase.store_count} mpn.inquiry transactions, each a group of 照会)"
    )


def report(r: Result) -> str:
    f = r.figures()
    fixed, sat = r.link.fixed, r.link.saturation
    ft = fixed.timing()
    one, many = r.direct
    lines = [
        "",
        f"mpn_inquiry: 照会 over the MPN center link vs the same lookups done directly,"
        f" {r.load.bills.count} bills",
        f"  database:   {r.durability}",
        f"  code:       {r.code}",
        f"  load:       {r.load.bills.count} open Pay-easy bills (one biller), COPY"
        f" {r.load.copy_seconds:.1f}s + VACUUM ANALYZE {r.load.analyze_seconds:.1f}s ="
        f" {r.load.seconds:.1f}s ({f['load_rows_per_s']} rows/s); bills {r.load.table_size}"
        " with its indexes",
        "  link:       twistd gateway dials the center (simulators.mpn_link, in this process)"
        f" over mutual TLS on 127.0.0.1; 開局 {r.link.opened_seconds:.1f}s after the start;"
        f" {WARMUP} warm-up 照会 not counted",
        "  checked:    every answer 1110 0000 with the bill's amount and the biller's kana;"
        f" center received {r.link.center_counts}",
        f"  fixed rate: {fixed.count} 照会 offered at {r.rate:g}/s (LoopingCall every"
        f" {1000 * TICK:g} ms), achieved {fixed.offered_rate:.1f}/s, answered {fixed.rate:.1f}/s"
        f" (first send to last answer {fixed.seconds:.2f}s)",
        f"              {_cpu(fixed.cpu, fixed)}",
        f"  saturation: {r.in_flight} in flight for {sat.seconds:.1f}s: {sat.count} 照会,"
        f" {sat.rate:.1f}/s, send→answer p50 {sat.timing().percentile_ms(50):.1f} ms,"
        f" p99 {sat.timing().percentile_ms(99):.1f} ms",
        f"              {_cpu(sat.cpu, sat)}",
        "  direct:     MpnNetwork._inquiry, the daemon's own store call for a group of one"
        " (payeasy_lookups: one SELECT; count_guard_attempts: one upsert), one transaction per"
        " 照会, create_db_engine;"
        " daemon stopped; 200 warm-up;"
        f" {one.timing.count} lookups: 1 thread {one.timing.rate:.1f}/s"
        f" (p50 {one.timing.percentile_ms(50):.2f} ms,"
        f" p99 {one.timing.percentile_ms(99):.2f} ms), {many.threads} threads"
        f" {many.timing.rate:.1f}/s (p50 {many.timing.percentile_ms(50):.2f} ms,"
        f" p99 {many.timing.percentile_ms(99):.2f} ms)",
    ]
    if r.link.profile is not None:
        lines.append(f"  py-spy:     {r.link.profile}")
    lines += [
        "",
        *_table(
            [
                ("bills", str(r.load.bills.count)),
                ("load s", f"{r.load.seconds:.1f}"),
                ("offered /s", f"{r.rate:g}"),
                ("answered /s", f"{fixed.rate:.1f}"),
                ("p50 ms", f"{ft.percentile_ms(50):.2f}"),
                ("p99 ms", f"{ft.percentile_ms(99):.2f}"),
                ("max ms", f"{ft.percentile_ms(100):.2f}"),
                ("saturation /s", f"{sat.rate:.1f}"),
                ("direct 1t /s", f"{one.timing.rate:.1f}"),
                (f"direct {many.threads}t /s", f"{many.timing.rate:.1f}"),
                ("link/direct", f"{f['ratio_link_direct']:.3f}"),
            ]
        ),
        f"(link/direct = saturation 照会/s ÷ direct lookups/s on {many.threads} threads,"
        " the daemon's store pool size)",
        "",
        json.dumps(f, ensure_ascii=False),
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/mpn_inquiry.py", description=__doc__.strip().splitlines()[0]
    )
    add_database_url(p, "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    p.add_argument("--bills", type=int, default=1_000_000, help="bills loaded (1000000)")
    p.add_argument("--rate", type=float, default=500.0, help="offered 照会/s (500)")
    p.add_argument("--seconds", type=float, default=20.0, help="fixed-rate phase length (20)")
    p.add_argument("--saturation-seconds", type=float, default=10.0, help="(10)")
    p.add_argument("--in-flight", type=int, default=200, help="saturation 照会 outstanding (200)")
    p.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="FILE",
        help="record the daemon with py-spy (-f raw) during the saturation phase into FILE",
    )
    args = p.parse_args(argv)
    if not 1 <= args.bills <= 9_999_999:
        p.error("--bills must be from 1 to 9,999,999 (bill_no has 7 digits)")
    if args.rate <= 0 or args.seconds <= 0 or args.saturation_seconds <= 0 or args.in_flight < 1:
        p.error("--rate, --seconds, --saturation-seconds and --in-flight must be positive")
    if args.py_spy is not None:
        args.py_spy = args.py_spy.resolve()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main("mpn_inquiry", parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
