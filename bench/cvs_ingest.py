"""CVS 速報 records per second through the real-time link into the store, against raw inserts.

    .venv/bin/python bench/cvs_ingest.py [--database-url URL] [--records N] [--rate 1000]

Starts the real daemon (``twistd -n gateway``) with the CVS link on (mutual TLS, certificates
from ``gateway-admin certs make``) on a scratch database, issues one bill per record with the
gateway's own store code, then connects as the agency (``simulators.cvs_link``) and:

1. throughput: sends ``N`` 速報 records with up to ``--window`` unacknowledged, from the first
   send to the last ``AK``; every ack must be ``00``. The daemon's ``[cvs.link] max_unacked``
   (default 100, a per-connection safety valve: reading stops at that many records in flight)
   is set to ``--window`` + 1, so the valve never closes on the window this phase measures
   (checked: ``gateway_cvs_link_pauses_total`` does not move during it);
2. latency: sends ``--rate`` records/s for ``--seconds`` (a LoopingCall schedule on the reactor)
   and times each record from send to ack;

then stops the daemon, checks the database holds exactly the payments acknowledged, deletes the
link's rows and inserts the throughput phase's ``collection_messages`` and ``payments`` rows again
with SQLAlchemy Core, ``--batch`` records per transaction. Prints a table and, last, one JSON
line. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from _daemon import (
    BILLER_ID,
    ROOT,
    BenchFailure,
    CvsLink,
    Daemon,
    Gateway,
    ScratchDatabase,
    add_database_url,
    bench_main,
    durability_settings,
    prepare,
    say,
    terminated,
    venv_command,
)
from bills_api import RowMaker, Timing
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import Connection, Engine
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall, deferLater
from twisted.python.failure import Failure

from gateway.config import Config, load_config
from gateway.infra.tls import TLSFiles
from gateway.mappers.cvs.mapper import CHAINS, RecordKind, ResultRecord, build_record
from gateway.model import JST, BillStatus, PaymentStatus
from gateway.networks.issuer import Issuer
from gateway.store import create_db_engine
from gateway.store.billers import get_biller
from gateway.store.schema import (
    anomalies,
    bill_slips,
    bills,
    collection_messages,
    events,
    payments,
    refund_cases,
)
from simulators.cvs_link import AgencyLink, start_agency_link

T = TypeVar("T")

BILL_PREFIX = "L"  # bill_no L-000000, L-000001, ...: one bill per record sent
BILLS_PER_TXN = 5000  # bills inserted per transaction during the set-up
STALL_SECONDS = 30.0  # no ack for this long: the run fails
TICK = 0.002  # seconds between two turns of the fixed-rate schedule


# --- the bills, issued with the gateway's own store code --------------------------------------


def issue_bills(engine: Engine, config: Config, count: int) -> list[str]:
    """``count`` open bills with their CVS slips, as ``POST /v1/bills`` stores them; their
    barcodes, in bill order.

    The rows come from bills_api.RowMaker (the API's own ``parse_bill_request``,
    ``Issuer.slip`` and ``Issuer.payeasy_numbers``; every column ``insert_bill`` and its
    ``UPDATE`` set), with ``id`` = the serial the barcode is made from, as the API does, and one
    ``bill_slips`` row each (``insert_slip``'s columns). :data:`BILLS_PER_TXN` bills per
    ``executemany`` transaction: seconds, where the API would take minutes. The API's
    ``bill.created`` events are left out (the events table then holds only the link's events).
    """
    issuer = Issuer(config)
    today = datetime.now(JST).date()
    with engine.connect() as conn:
        biller = get_biller(conn, BILLER_ID)
        first = 1 + int(conn.execute(select(func.coalesce(func.max(bills.c.id), 0))).scalar_one())
    maker = RowMaker(config, issuer, biller, today, today + timedelta(days=30))
    barcodes: list[str] = []
    for start in range(0, count, BILLS_PER_TXN):
        rows, slips = [], []
        for i in range(start, min(count, start + BILLS_PER_TXN)):
            serial = first + i
            row = maker.row(f"{BILL_PREFIX}-{i:06d}", i, serial) | {"id": serial}
            if row["barcode"] is None:
                raise BenchFailure(f"bill {row['bill_no']} has no CVS slip")
            rows.append(row)
            slips.append(
                {
                    "bill_id": serial,
                    "reissue": 0,
                    "barcode": row["barcode"],
                    "amount": row["amount"],
                    "due_date": row["due_date"],
                    "stamp": row["stamp"],
                    "issued_at": row["created_at"],
                }
            )
            barcodes.append(row["barcode"])
        with engine.begin() as conn:
            conn.execute(bills.insert(), rows)
            conn.execute(bill_slips.insert(), slips)
    return barcodes


# --- the records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Records:
    """The 120-byte 速報 records of one phase and their event keys (one distinct bill each)."""

    raw: list[bytes]
    keys: list[str]

    def __len__(self) -> int:
        return len(self.raw)


def make_records(barcodes: Sequence[str], first: int, paid_on: date) -> Records:
    """One 速報 per barcode, each at its own store, chain and time of day."""
    chains = sorted(CHAINS)
    raw, keys = [], []
    for n, code in enumerate(barcodes, first):
        rec = ResultRecord(
            kind=RecordKind.PRELIMINARY,
            paid_on=paid_on,
            paid_time=f"{n // 60 % 24:02d}{n % 60:02d}",
            barcode=code,
            store_code=f"{n % 10_000_000:07d}",
            customer_segment="  ",
            data_date=paid_on,
            transfer_date=None,
            accounting_date=None,
            chain_code=chains[n % len(chains)],
        )
        raw.append(build_record(rec))
        keys.append(rec.event_key)
    return Records(raw, keys)


# --- the daemon's metrics ----------------------------------------------------------------------

Sample = tuple[str, tuple[tuple[str, str], ...]]


def scrape(port: int) -> dict[Sample, float]:
    """Every sample of the daemon's ``/metrics``, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


PAUSES: Sample = ("gateway_cvs_link_pauses_total", ())  # looked up strictly: must be there


@dataclass(frozen=True)
class PhaseMetrics:
    """What the daemon counted during one phase (the difference of two scrapes)."""

    groups: int  # gateway_ingest_group_size_count: transactions of the group committer
    grouped: float  # gateway_ingest_group_size_sum: messages in them
    commit_seconds: float  # store time of the cvs.link.commit interactions
    commits: int
    applied: int  # gateway_ingest_messages_total{channel="cvs",outcome="applied"}, all kinds
    acks: dict[str, int]  # gateway_cvs_link_acks_total by result: AK frames the daemon sent
    pauses: int  # gateway_cvs_link_pauses_total: reading stopped at max_unacked in flight

    @property
    def mean_group(self) -> float:
        return self.grouped / self.groups if self.groups else 0.0

    @classmethod
    def between(cls, before: Mapping[Sample, float], after: Mapping[Sample, float]) -> PhaseMetrics:
        def delta(name: str, **labels: str) -> float:
            key = (name, tuple(sorted(labels.items())))
            return after.get(key, 0.0) - before.get(key, 0.0)

        interaction = "gateway_store_interaction_duration_seconds"
        applied = sum(
            after[k] - before.get(k, 0.0)
            for k in after
            if k[0] == "gateway_ingest_messages_total"
            and ("channel", "cvs") in k[1]
            and ("outcome", "applied") in k[1]
        )
        return cls(
            groups=int(delta("gateway_ingest_group_size_count")),
            grouped=delta("gateway_ingest_group_size_sum"),
            commit_seconds=delta(f"{interaction}_sum", desc="cvs.link.commit"),
            commits=int(delta(f"{interaction}_count", desc="cvs.link.commit")),
            applied=int(applied),
            acks={
                r: int(delta("gateway_cvs_link_acks_total", result=r)) for r in ("00", "10", "90")
            },
            pauses=int(after[PAUSES] - before[PAUSES]),
        )


# --- the link phases, on the global reactor ----------------------------------------------------


@dataclass
class Phase:
    """One phase's sends and acks: perf_counter() times, indexed by record."""

    sent: list[float]
    acked: list[float]
    results: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """First send to last ack."""
        return max(self.acked) - min(self.sent)

    @property
    def offered_rate(self) -> float:
        """Records per second between the first and the last send."""
        span = max(self.sent) - min(self.sent)
        return (len(self.sent) - 1) / span if span > 0 else float("inf")

    def timing(self) -> Timing:
        latencies = [a - s for s, a in zip(self.sent, self.acked, strict=True)]
        return Timing(self.seconds, len(self.sent), latencies)


@dataclass
class _Progress:
    next: int = 0  # the next record to send
    acked: int = 0
    last_ack: float = 0.0  # perf_counter() of the last ack (or of the start)


class Sender:
    """Sends records on an AgencyLink and times each one from ``send`` to its ack.

    ``window``: keep that many records unacknowledged, each ack sending the next one (as fast as
    the link takes them). ``rate``: send record k at ``k / rate`` s after the first, from a
    LoopingCall that every :data:`TICK` s sends every record due by then (acks do not slow the
    schedule down). Either way the phase ends with the last ack; every ack is counted by result.
    """

    def __init__(self, reactor: Any, link: AgencyLink, daemon: Daemon) -> None:
        self.reactor = reactor
        self.link = link
        self.daemon = daemon

    def run(
        self, records: Records, *, window: int | None = None, rate: float | None = None
    ) -> Deferred[Phase]:
        if (window is None) == (rate is None):
            raise ValueError("give exactly one of window and rate")
        n = len(records)
        phase = Phase([0.0] * n, [0.0] * n)
        done: Deferred[None] = Deferred()
        state = _Progress(last_ack=time.perf_counter())

        def send_next() -> None:
            i = state.next
            state.next = i + 1
            phase.sent[i] = time.perf_counter()
            self.link.send(records.raw[i]).addCallbacks(partial(on_ack, i), on_error)

        def on_ack(i: int, result: str) -> None:
            phase.acked[i] = state.last_ack = time.perf_counter()
            phase.results[result] = phase.results.get(result, 0) + 1
            state.acked += 1
            if window is not None and state.next < n:
                send_next()
            if state.acked == n and not done.called:
                done.callback(None)

        def on_error(failure: Failure) -> None:
            if not done.called:
                done.errback(failure)

        def tick() -> None:
            assert rate is not None
            due = min(n, int((time.perf_counter() - t0) * rate) + 1)
            while state.next < due:
                send_next()
            if state.next == n and schedule.running:
                schedule.stop()

        def watch() -> None:
            if done.called:
                return
            if not self.daemon.running():
                done.errback(BenchFailure("the daemon exited during the run"))
            elif time.perf_counter() - state.last_ack > STALL_SECONDS:
                reason = (
                    f"no ack for {STALL_SECONDS:.0f}s: {state.acked} of {n} acknowledged,"
                    f" {self.link.unacked} unacknowledged on the link"
                )
                done.errback(BenchFailure(reason))

        watchdog = LoopingCall(watch)
        watchdog.clock = self.reactor
        watchdog.start(1.0, now=False)
        schedule = LoopingCall(tick)
        schedule.clock = self.reactor
        t0 = time.perf_counter()
        if window is not None:
            for _ in range(min(window, n)):
                send_next()
        else:
            schedule.start(TICK, now=True)

        def finish(result: Failure | None) -> Phase | Failure:
            for loop in (watchdog, schedule):
                if loop.running:
                    loop.stop()
            return result if isinstance(result, Failure) else phase

        return done.addBoth(finish)


async def connected(reactor: Any, link: AgencyLink, timeout: float = 30.0) -> None:
    """Wait until the agency's TLS connection is up (the ClientService retries until then)."""
    deadline = time.monotonic() + timeout
    while not link.client.connected:
        if time.monotonic() > deadline:
            raise BenchFailure(f"the CVS link did not connect within {timeout:.0f}s")
        await deferLater(reactor, 0.05)


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far; None where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Cpu:
    """CPU seconds the daemon and this driver used during one phase (None: no /proc)."""

    daemon: float | None
    driver: float


class CpuClock:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.daemon = process_cpu(pid)
        self.driver = time.process_time()

    def read(self) -> Cpu:
        now = process_cpu(self.pid)
        used = None if now is None or self.daemon is None else now - self.daemon
        return Cpu(used, time.process_time() - self.driver)


def count_rows(engine: Engine) -> tuple[int, int]:
    """(payments, collection_messages) rows, read while the daemon runs (or after)."""
    with engine.connect() as conn:
        n_payments = conn.execute(select(func.count()).select_from(payments)).scalar_one()
        n_messages = conn.execute(
            select(func.count()).select_from(collection_messages)
        ).scalar_one()
    return int(n_payments), int(n_messages)


def check_phase(phase: Phase, name: str) -> None:
    if set(phase.results) != {"00"}:
        raise BenchFailure(f"{name}: acks by result {phase.results}; every ack must be 00")


@dataclass(frozen=True)
class LinkResults:
    warmup: Phase | None
    throughput: Phase
    latency: Phase
    throughput_metrics: PhaseMetrics
    latency_metrics: PhaseMetrics
    stored_after_throughput: tuple[int, int]
    throughput_cpu: Cpu
    latency_cpu: Cpu
    connections: int
    profile: str | None


@dataclass(frozen=True)
class Plan:
    """What the link phases send."""

    warmup: Records
    throughput: Records
    latency: Records
    window: int
    rate: float


class PySpy:
    """``py-spy record`` of the daemon for the throughput phase (``--py-spy FILE``): collapsed
    stacks, one root per thread, idle samples included (so shares are of wall time)."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        self.process = subprocess.Popen(
            [
                *(venv_command("py-spy"), "record", "-p", str(pid), "--threads", "--idle"),
                *("--nonblocking", "-f", "raw", "-o", str(out)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> str:
        """SIGINT (py-spy then writes its file) and wait; what was written."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        output, _ = self.process.communicate(timeout=60)
        if not self.out.exists():
            raise BenchFailure(f"py-spy wrote no {self.out}: {output.decode(errors='replace')}")
        samples = sum(int(line.rpartition(" ")[2]) for line in self.out.open() if line.strip())
        return f"{samples} samples (all threads, idle included) in {self.out}"


async def link_phases(
    reactor: Any,
    gateway: Gateway,
    daemon: Daemon,
    engine: Engine,
    plan: Plan,
    profile: Path | None,
) -> LinkResults:
    assert gateway.cvs_link is not None
    cvs: CvsLink = gateway.cvs_link
    link = start_agency_link(
        reactor, cvs.connect, TLSFiles(cvs.ca, cvs.certificate, cvs.key), "gateway"
    )
    try:
        await connected(reactor, link)
        sender = Sender(reactor, link, daemon)
        warm: Phase | None = None
        if len(plan.warmup):
            say(f"warm-up: {len(plan.warmup)} records, not counted")
            warm = await sender.run(plan.warmup, window=plan.window)
            check_phase(warm, "warm-up")

        say(f"throughput: {len(plan.throughput)} records, up to {plan.window} unacknowledged")
        spy = PySpy(daemon.pid, profile) if profile is not None else None
        before = scrape(gateway.metrics_port)
        cpu = CpuClock(daemon.pid)
        throughput = await sender.run(plan.throughput, window=plan.window)
        throughput_cpu = cpu.read()
        after = scrape(gateway.metrics_port)
        profiled = spy.stop() if spy is not None else None
        check_phase(throughput, "throughput")
        stored = count_rows(engine)

        seconds = len(plan.latency) / plan.rate
        say(f"latency: {len(plan.latency)} records at {plan.rate:g}/s ({seconds:.1f}s)")
        cpu = CpuClock(daemon.pid)
        latency = await sender.run(plan.latency, rate=plan.rate)
        latency_cpu = cpu.read()
        last = scrape(gateway.metrics_port)
        check_phase(latency, "latency")
        connections = link.client.connections
    finally:
        stopped = link.stop()
        stopped.addTimeout(10, reactor)
        await stopped
    return LinkResults(
        warm,
        throughput,
        latency,
        PhaseMetrics.between(before, after),
        PhaseMetrics.between(after, last),
        stored,
        throughput_cpu,
        latency_cpu,
        connections,
        profiled,
    )


def on_reactor(main: Callable[[Any], Coroutine[Deferred[Any], Any, T]]) -> T:
    """Run ``main(reactor)`` on the global reactor, which stops when it is done; its result.

    The reactor runs once per process: everything before and after (set-up, the daemon's start
    and stop, the raw phase) is plain blocking code. Ctrl-C or SIGTERM stop the reactor (its
    own handlers): that is reported as a failure, and the callers' ``finally`` blocks still run.
    """
    from twisted.internet import reactor

    outcome: list[Any] = []

    def begin() -> None:
        d = Deferred.fromCoroutine(main(reactor))

        def end(result: object) -> None:
            outcome.append(result)
            reactor.stop()

        d.addBoth(end)

    reactor.callWhenRunning(begin)
    reactor.run()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, terminated)
    if not outcome:
        raise BenchFailure("interrupted: the reactor stopped before the link phases ended")
    result = outcome[0]
    if isinstance(result, Failure):
        if isinstance(result.value, BenchFailure):
            raise result.value
        raise BenchFailure(f"{type(result.value).__name__}: {result.getErrorMessage()}")
    value: T = result
    return value


# --- after the daemon: what is stored, then the raw inserts -----------------------------------


def check_stored(engine: Engine, keys: Sequence[str]) -> str:
    """The database holds exactly one message and one payment per record acknowledged: applied,
    pending, each paying its own bill; nothing else."""
    expected = set(keys)
    with engine.connect() as conn:
        message_keys = list(conn.execute(select(collection_messages.c.event_key)).scalars())
        payment_keys = list(conn.execute(select(payments.c.event_key)).scalars())
        message_outcomes = collection_messages.c.outcome
        outcomes = {
            str(outcome): int(n)
            for outcome, n in conn.execute(
                select(message_outcomes, func.count()).group_by(message_outcomes)
            )
        }
        statuses = {
            str(status): int(n)
            for status, n in conn.execute(
                select(payments.c.status, func.count()).group_by(payments.c.status)
            )
        }
        unmatched = conn.execute(
            select(func.count()).select_from(payments).where(payments.c.bill_id.is_(None))
        ).scalar_one()
        paid_bills = conn.execute(
            select(func.count()).select_from(bills).where(bills.c.status == BillStatus.PAID.value)
        ).scalar_one()
        cases = conn.execute(select(func.count()).select_from(refund_cases)).scalar_one()
        odd = conn.execute(select(func.count()).select_from(anomalies)).scalar_one()
        paid_events = conn.execute(
            select(func.count()).where(events.c.type == "payment.preliminary")
        ).scalar_one()
    n = len(expected)
    if len(expected) != len(keys):
        raise BenchFailure("two records sent with the same event key")
    if len(message_keys) != n or set(message_keys) != expected:
        raise BenchFailure(
            f"{n} records acknowledged but {len(message_keys)} collection_messages rows,"
            f" {len(expected - set(message_keys))} acknowledged records missing"
        )
    if len(payment_keys) != n or set(payment_keys) != expected:
        raise BenchFailure(
            f"{n} records acknowledged but {len(payment_keys)} payments,"
            f" {len(expected - set(payment_keys))} acknowledged records missing"
        )
    if outcomes != {"applied": n} or statuses != {PaymentStatus.PENDING.value: n}:
        raise BenchFailure(f"message outcomes {outcomes}, payment statuses {statuses}")
    if unmatched or cases or odd or paid_bills != n or paid_events != n:
        raise BenchFailure(
            f"{unmatched} payments without a bill, {cases} refund cases, {odd} anomalies,"
            f" {paid_bills} bills paid and {paid_events} payment.preliminary events for {n}"
        )
    return (
        f"{n} records acknowledged 00 = {n} collection_messages (applied) = {n} payments"
        f" (pending, each paying its own bill: {n} bills paid), {n} payment.preliminary events,"
        " no refund case, no anomaly"
    )


_MESSAGE_COLUMNS = [c.name for c in collection_messages.columns if c.name != "id"]


def link_rows(
    engine: Engine, keys: Sequence[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The collection_messages and payments rows the link wrote for ``keys``, in that order."""
    with engine.connect() as conn:
        messages = {
            r["event_key"]: dict(r)
            for r in conn.execute(
                select(*(collection_messages.c[name] for name in _MESSAGE_COLUMNS))
            ).mappings()
        }
        paid = {r["event_key"]: dict(r) for r in conn.execute(select(payments)).mappings()}
    return [messages[k] for k in keys], [paid[k] for k in keys]


def delete_link_rows(engine: Engine, backend: str) -> None:
    """Empty payments and collection_messages (the link's rows are all they hold)."""
    with engine.begin() as conn:
        conn.execute(delete(payments))
        conn.execute(delete(collection_messages))
    if backend == "postgresql":
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("VACUUM ANALYZE payments, collection_messages"))


def raw_batches(
    engine: Engine, messages: list[dict[str, Any]], paid: list[dict[str, Any]], batch: int
) -> float:
    """Insert the rows, ``batch`` records (a message and a payment each) per transaction, with
    one executemany per table; returns the seconds taken."""
    t0 = time.perf_counter()
    for start in range(0, len(messages), batch):
        with engine.begin() as conn:
            _insert_batch(conn, messages[start : start + batch], paid[start : start + batch])
    return time.perf_counter() - t0


def _insert_batch(
    conn: Connection, messages: list[dict[str, Any]], paid: list[dict[str, Any]]
) -> None:
    conn.execute(collection_messages.insert(), messages)
    conn.execute(payments.insert(), paid)


# --- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    backend: str
    records: int
    warmup: int
    window: int
    rate: float
    latency_records: int
    batch: int
    bills: int
    bills_seconds: float
    link: LinkResults
    raw_seconds: float
    durability: str
    stored: str
    code: str

    @property
    def link_rate(self) -> float:
        return self.records / self.link.throughput.seconds

    @property
    def raw_rate(self) -> float:
        return self.records / self.raw_seconds

    def figures(self) -> dict[str, Any]:
        thr, lat = self.link.throughput.timing(), self.link.latency.timing()
        m = self.link.throughput_metrics
        return {
            "bench": "cvs_ingest",
            "backend": self.backend,
            "records": self.records,
            "window": self.window,
            "max_unacked": max_unacked(self.window),
            "link_records_per_s": round(self.link_rate, 1),
            "raw_batched_records_per_s": round(self.raw_rate, 1),
            "raw_batch": self.batch,
            "ratio_link_raw": round(self.link_rate / self.raw_rate, 3),
            "mean_group_size": round(m.mean_group, 1),
            "throughput_p50_ms": round(thr.percentile_ms(50), 1),
            "throughput_p99_ms": round(thr.percentile_ms(99), 1),
            "offered_rate": self.rate,
            "achieved_offered_rate": round(self.link.latency.offered_rate, 1),
            "latency_records": self.latency_records,
            "latency_p50_ms": round(lat.percentile_ms(50), 2),
            "latency_p99_ms": round(lat.percentile_ms(99), 2),
            "latency_max_ms": round(lat.percentile_ms(100), 2),
            "latency_mean_group_size": round(self.link.latency_metrics.mean_group, 1),
            "daemon_cpu_us_per_record": _per_record(self.link.throughput_cpu, self.records),
            "code": self.code,
        }


def run(args: argparse.Namespace, db: ScratchDatabase, workdir: Path) -> Result:
    say(f"setting up the gateway with its CVS link on {db.backend} in {workdir}")
    # max_unacked: reading stops at that many in flight; one more than the window keeps the
    # valve shut while the throughput phase keeps its window full (it measures throughput).
    options = {"max_unacked": str(max_unacked(args.window))}
    gateway = prepare(workdir, db.url, cvs_link=True, link_options=options)
    config = load_config(gateway.config_path)
    link = None if config.cvs is None else config.cvs.agency(None).link
    if link is None:
        raise BenchFailure("the daemon's config has no [cvs.link]")
    say(f"[cvs.link] max_unacked = {link.max_unacked} (window {args.window})")
    engine = create_db_engine(db.url, pool_size=2)
    try:
        latency_records = round(args.rate * args.seconds)
        n_bills = args.warmup + args.records + latency_records
        say(f"inserting {n_bills} bills as the API stores them (not timed)")
        t0 = time.perf_counter()
        barcodes = issue_bills(engine, config, n_bills)
        bills_seconds = time.perf_counter() - t0
        say(f"{n_bills} bills in {bills_seconds:.1f}s; building the records")
        today = datetime.now(JST).date()
        w, n = args.warmup, args.records
        plan = Plan(
            make_records(barcodes[:w], 0, today),
            make_records(barcodes[w : w + n], w, today),
            make_records(barcodes[w + n :], w + n, today),
            args.window,
            args.rate,
        )
        engine.dispose()

        assert gateway.cvs_link is not None
        link_at = gateway.cvs_link.connect
        with gateway.daemon() as daemon:
            say(f"daemon ready (pid {daemon.pid}); the CVS link on {link_at}")
            try:
                phases = partial(
                    link_phases,
                    gateway=gateway,
                    daemon=daemon,
                    engine=engine,
                    plan=plan,
                    profile=args.py_spy,
                )
                link = on_reactor(phases)
            except BenchFailure as e:
                raise BenchFailure(f"{e}\n--- daemon log ---\n{daemon.log_tail()}") from e
            code = daemon.stop()
            how = "cleanly, on SIGTERM" if daemon.stopped_cleanly() else f"exit {code}"
            say(f"daemon stopped ({how}); {link.connections} link connection(s) used")
        if link.connections != 1:
            raise BenchFailure(f"the link connected {link.connections} times: it was dropped")
        if link.stored_after_throughput != (w + n, w + n):
            raise BenchFailure(
                "after the throughput phase: (payments, messages) ="
                f" {link.stored_after_throughput}, expected {w + n} of each"
            )
        for name, m, count in (
            ("throughput", link.throughput_metrics, n),
            ("latency", link.latency_metrics, latency_records),
        ):
            # The agency client resends a 90 by itself: only the daemon's counters show one.
            if m.acks != {"00": count, "10": 0, "90": 0} or m.applied != count:
                raise BenchFailure(
                    f"{name}: the daemon sent AK {m.acks} and applied {m.applied} messages"
                    f" for {count} records; expected {count} AK 00 and nothing else"
                )
        if link.throughput_metrics.pauses:
            raise BenchFailure(
                f"throughput: the link stopped reading {link.throughput_metrics.pauses} time(s)"
                f" (max_unacked) with a window of {args.window}"
            )
        all_keys = plan.warmup.keys + plan.throughput.keys + plan.latency.keys
        stored = check_stored(engine, all_keys)
        say(stored)

        say(
            f"raw: deleting the link's rows, then inserting the warm-up's and throughput phase's"
            f" rows again, {args.batch} records per transaction"
        )
        warm_messages, warm_paid = link_rows(engine, plan.warmup.keys)
        messages, paid = link_rows(engine, plan.throughput.keys)
        delete_link_rows(engine, db.backend)
        raw_batches(engine, warm_messages, warm_paid, args.batch)  # not timed: same table sizes
        raw_seconds = raw_batches(engine, messages, paid, args.batch)
        if count_rows(engine) != (w + n, w + n):
            raise BenchFailure(
                f"raw: (payments, messages) = {count_rows(engine)}, expected {w + n}"
            )
        durability = durability_settings(db.url)
    finally:
        engine.dispose()
    return Result(
        db.backend,
        n,
        w,
        args.window,
        args.rate,
        latency_records,
        args.batch,
        n_bills,
        bills_seconds,
        link,
        raw_seconds,
        durability,
        stored,
        code_state(),
    )


def code_state() -> str:
    """The commit the daemon ran and the files of gateway/ changed since (read-only git)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "gateway", "simulators"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    dirty = sorted(line[3:] for line in changed if line.strip())
    return f"{head}" + (f" + uncommitted {', '.join(dirty)}" if dirty else " (clean)")


def _table(columns: Sequence[tuple[str, str]]) -> list[str]:
    widths = [max(len(h), len(v)) for h, v in columns]
    cells = list(zip(columns, widths, strict=True))
    head = "  ".join(h.rjust(w) if i else h.ljust(w) for i, ((h, _), w) in enumerate(cells))
    row = "  ".join(v.rjust(w) if i else v.ljust(w) for i, ((_, v), w) in enumerate(cells))
    return [head, "-" * len(head), row]


def _per_record(cpu: Cpu, records: int) -> float | None:
    """Daemon CPU microseconds per record, or None without /proc."""
    return None if cpu.daemon is None else round(1e6 * cpu.daemon / records)


def _cpu(cpu: Cpu, seconds: float, records: int) -> str:
    driver = f"driver (agency side) {100 * cpu.driver / seconds:.0f}% of a core"
    if cpu.daemon is None:
        return f"CPU: daemon unknown (no /proc), {driver}"
    return (
        f"CPU: daemon {100 * cpu.daemon / seconds:.0f}% of a core"
        f" ({1e6 * cpu.daemon / records:.0f} µs per record), {driver};"
        f" {os.cpu_count()} CPUs"
    )


def report(r: Result) -> str:
    f = r.figures()
    thr, lat = r.link.throughput.timing(), r.link.latency.timing()
    tm, lm = r.link.throughput_metrics, r.link.latency_metrics
    busy = tm.commit_seconds / r.link.throughput.seconds
    lines = [
        "",
        f"cvs_ingest: {r.records} 速報 records over the CVS link vs the same rows inserted"
        " directly",
        f"  database:   {r.durability}",
        f"  code:       {r.code}",
        f"  bills:      {r.bills} open bills, one per record (every record pays its own bill),"
        " inserted before the clock: bills_api.RowMaker rows (the API's parse_bill_request,"
        f" Issuer.slip, payeasy_numbers) + bill_slips, executemany, {BILLS_PER_TXN} per"
        f" transaction, {r.bills_seconds:.1f}s; no bill.created events",
        "  link:       twistd gateway, [cvs.link] mutual TLS on 127.0.0.1, one agency connection"
        " (simulators.cvs_link); an ack counts only once the gateway has committed;"
        f" max_unacked {max_unacked(r.window)} (the window + 1: the link never stopped reading"
        f" in the throughput phase; {lm.pauses} time(s) in the latency phase)",
        f"  checked:    every ack 00 (and the daemon sent no 10 or 90); {r.stored}",
        f"  throughput: {r.records} records, up to {r.window} unacknowledged, first send to last"
        f" ack {r.link.throughput.seconds:.2f}s; {r.warmup} warm-up records before, not counted",
        f"              {tm.commits} group commits, mean group {tm.mean_group:.1f} records,"
        f" mean commit transaction {1000 * tm.commit_seconds / max(tm.commits, 1):.1f} ms,"
        f" store thread busy {100 * busy:.0f}% of the phase",
        f"              {_cpu(r.link.throughput_cpu, r.link.throughput.seconds, r.records)}",
        f"  latency:    {r.latency_records} records offered at {r.rate:g}/s (LoopingCall every"
        f" {1000 * TICK:g} ms), achieved {r.link.latency.offered_rate:.1f}/s,"
        f" last ack after {r.link.latency.seconds:.2f}s; mean group {lm.mean_group:.1f}",
        f"              {_cpu(r.link.latency_cpu, r.link.latency.seconds, r.latency_records)}",
        f"  raw:        the throughput phase's collection_messages + payments rows, read back,"
        f" deleted, and inserted again with SQLAlchemy Core executemany, {r.batch} records"
        f" ({2 * r.batch} rows) per transaction, after the warm-up's (not timed) so the tables"
        f" have the same sizes; {r.raw_seconds:.2f}s",
    ]
    if r.link.profile is not None:
        lines.append(f"  py-spy:     {r.link.profile}")
    lines += [
        "",
        *_table(
            [
                ("backend", r.backend),
                ("N", str(r.records)),
                ("link rec/s", f"{f['link_records_per_s']:.1f}"),
                ("raw batched rec/s", f"{f['raw_batched_records_per_s']:.1f}"),
                ("link/raw", f"{f['ratio_link_raw']:.3f}"),
                ("mean group", f"{tm.mean_group:.1f}"),
                (f"p50 ms @{r.rate:g}/s", f"{lat.percentile_ms(50):.2f}"),
                (f"p99 ms @{r.rate:g}/s", f"{lat.percentile_ms(99):.2f}"),
                ("max ms", f"{lat.percentile_ms(100):.2f}"),
                ("achieved /s", f"{r.link.latency.offered_rate:.1f}"),
            ]
        ),
    ]
    lines += [
        f"(throughput phase: per-record send→ack p50 {thr.percentile_ms(50):.1f} ms,"
        f" p99 {thr.percentile_ms(99):.1f} ms with {r.window} in flight)",
        "",
        json.dumps(f, ensure_ascii=False),
    ]
    return "\n".join(lines)


MAX_UNACKED_LIMIT = 10_000  # the highest cvs.link.max_unacked the config accepts


def max_unacked(window: int) -> int:
    """The daemon's ``[cvs.link] max_unacked`` for a window: it stops reading at that many
    records in flight, so one more than the window never stops it."""
    return window + 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/cvs_ingest.py", description=__doc__.strip().splitlines()[0]
    )
    add_database_url(p)
    p.add_argument("--records", type=int, default=20_000, help="throughput records (20000)")
    p.add_argument(
        "--window",
        type=int,
        default=2000,
        help="most records unacknowledged (2000); the daemon's max_unacked is set one above",
    )
    p.add_argument("--rate", type=float, default=1000.0, help="latency phase records/s (1000)")
    p.add_argument("--seconds", type=float, default=10.0, help="latency phase length (10)")
    p.add_argument("--warmup", type=int, default=200, help="warm-up records, not counted (200)")
    p.add_argument("--batch", type=int, default=1000, help="raw records per transaction (1000)")
    p.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="FILE",
        help="record the daemon with py-spy (-f raw) during the throughput phase into FILE",
    )
    args = p.parse_args(argv)
    if min(args.records, args.window, args.batch) < 1 or args.warmup < 0:
        p.error("--records, --window and --batch must be at least 1, --warmup at least 0")
    if max_unacked(args.window) > MAX_UNACKED_LIMIT:
        p.error(f"--window must be below {MAX_UNACKED_LIMIT} (cvs.link.max_unacked's limit)")
    if args.rate <= 0 or args.seconds <= 0 or round(args.rate * args.seconds) < 2:
        p.error("--rate and --seconds must be positive, and send at least 2 records")
    if args.warmup + args.records + round(args.rate * args.seconds) > 999_999:
        p.error("at most 999,999 records in all (bill_no has 6 digits)")
    if args.py_spy is not None:
        args.py_spy = args.py_spy.resolve()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main("cvs_ingest", parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
