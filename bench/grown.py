"""CVS ingest and Pay-easy 照会 on an empty database, then on one grown by ``--preload`` messages.

    .venv/bin/python bench/grown.py [--database-url URL] [--preload 10000000] [--records 20000]

PostgreSQL only (the scratch database ``gateway_bench_<pid>`` on the server of the URL, dropped at
the end). Starts the real daemon with the CVS link and the MPN link on, then, in one run:

1. *empty*: ``--records`` 速報 through the CVS link (``--window`` unacknowledged at most) and
   ``--inquiry-seconds`` of 照会 with ``--in-flight`` outstanding, against ``--bills`` Pay-easy
   bills; the daemon's CPU time of each;
2. *preload*: ``--preload`` collection messages with their payments and ``payment.preliminary``
   events, as the link stores them (each row made from the link's own rows of step 1: distinct
   event keys, payment and event ids, seqs reserved on the biller row as ``append_events`` does;
   dates spread over the past months), through ``gateway.store.copy.copy_rows`` (``COPY``), while
   the daemon runs; then ``VACUUM ANALYZE`` of the three tables (what autovacuum does in
   production);
3. *grown*: step 1 again with new bills' records;

then stops the daemon and checks what is stored: every record acknowledged is one message and one
payment, applied and pending, the preloaded rows are all there, and the three tables hold exactly
the rows expected. Prints a table with the ratios grown/empty and, last, one JSON line. See
bench/README.md ("grown.py").
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
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
from cvs_ingest import (
    Cpu,
    CpuClock,
    PhaseMetrics,
    Records,
    Sender,
    check_phase,
    code_state,
    connected,
    issue_bills,
    make_records,
    max_unacked,
    on_reactor,
    scrape,
)
from mpn_inquiry import Asker, Bills, inquiry_store, load_bills
from mpn_inquiry import check_phase as check_answers
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Connection, Engine
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from gateway.config import load_config
from gateway.infra.tls import TLSFiles
from gateway.mappers.cvs.records import make_event_key
from gateway.model import JST
from gateway.store import create_db_engine
from gateway.store.copy import copy_rows
from gateway.store.schema import (
    billers,
    collection_messages,
    events,
    notice_cursors,
    payments,
    webhook_cursors,
)
from simulators.cvs_link import start_agency_link
from simulators.mpn_link import MpnCenterFactory, listen_mpn_center

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
EVENT_TYPE = "payment.preliminary"
PRELOAD_DAYS = 730  # the preloaded payments are spread over the two years before today
SEED = 20261206


# --- one measurement: ingest through the CVS link, then 照会 over the MPN link ------------------


STATS_SETTLE = 11.0  # s: an idle backend flushes its statistics within 10 s (PostgreSQL 15)


def blocks(engine: Engine) -> int:
    """Buffer accesses (hits and reads) of this database so far, from ``pg_stat_database``."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT blks_hit + blks_read FROM pg_stat_database"
                    " WHERE datname = current_database()"
                )
            ).scalar_one()
        )


Reads = dict[str, tuple[int, int, int]]  # table -> (seq scans, rows they read, buffer accesses)


def table_reads(engine: Engine) -> Reads:
    """Per table: sequential scans, the rows they read, and buffer accesses (heap, indexes,
    TOAST), from ``pg_stat_user_tables`` and ``pg_statio_user_tables``."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.relname, s.seq_scan, s.seq_tup_read,"
                " coalesce(io.heap_blks_hit, 0) + coalesce(io.heap_blks_read, 0)"
                " + coalesce(io.idx_blks_hit, 0) + coalesce(io.idx_blks_read, 0)"
                " + coalesce(io.toast_blks_hit, 0) + coalesce(io.toast_blks_read, 0)"
                " + coalesce(io.tidx_blks_hit, 0) + coalesce(io.tidx_blks_read, 0)"
                " FROM pg_stat_user_tables s JOIN pg_statio_user_tables io USING (relid)"
            )
        ).all()
    return {name: (int(a), int(b), int(c)) for name, a, b, c in rows}


def reads_between(before: Reads, after: Reads, top: int = 4) -> str:
    """The tables read most between two :func:`table_reads`, e.g. ``payments 1200 (2 scans of
    40 rows)``."""
    deltas = [
        (name, *(x - y for x, y in zip(now, before.get(name, (0, 0, 0)), strict=True)))
        for name, now in after.items()
    ]
    deltas.sort(key=lambda d: -d[3])
    return ", ".join(
        f"{name} {blocks}" + (f" ({scans} seq scans of {rows} rows)" if scans else "")
        for name, scans, rows, blocks in deltas[:top]
        if blocks or scans
    )


async def settled_blocks(reactor: Any, engine: Engine) -> int:
    """:func:`blocks` once the daemon's idle connections have flushed their statistics."""
    await deferLater(reactor, STATS_SETTLE, lambda: None)
    return blocks(engine)


@dataclass(frozen=True)
class Measure:
    name: str
    records: int
    ingest_seconds: float
    ingest_cpu: Cpu
    ingest: PhaseMetrics
    inquiries: int
    inquiry_seconds: float
    inquiry_cpu: Cpu
    inquiry_store_ms: float  # mean mpn.inquiry store interaction
    ingest_blocks: int  # buffer accesses of the database during the ingest (pg_stat_database)
    inquiry_blocks: int
    idle_blocks: int  # ... during STATS_SETTLE s of no traffic: the daemon's timers
    idle_reads: str  # the tables read then (reads_between)
    ingest_reads: str
    inquiry_reads: str

    @property
    def ingest_rate(self) -> float:
        return self.records / self.ingest_seconds

    @property
    def ingest_us(self) -> float:
        return 1e6 * self.ingest_cpu.daemon / self.records

    @property
    def commit_ms(self) -> float:
        m = self.ingest
        return 1000 * m.commit_seconds / m.commits if m.commits else 0.0

    @property
    def ingest_blocks_per(self) -> float:
        """Per record, less what the daemon's timers read while the link was idle."""
        return (self.ingest_blocks - self.idle_blocks) / self.records

    @property
    def inquiry_blocks_per(self) -> float:
        return (self.inquiry_blocks - self.idle_blocks) / self.inquiries

    @property
    def inquiry_rate(self) -> float:
        return self.inquiries / self.inquiry_seconds

    @property
    def inquiry_us(self) -> float:
        return 1e6 * self.inquiry_cpu.daemon / self.inquiries


async def measure(
    name: str,
    gateway: Gateway,
    daemon: Daemon,
    sender: Sender,
    asker: Asker,
    warmup: Records,
    records: Records,
    engine: Engine,
    args: argparse.Namespace,
) -> Measure:
    say(f"{name}: warm-up {len(warmup)} records, then {len(records)} through the CVS link")
    check_phase(await sender.run(warmup, window=args.window), f"{name} warm-up")
    reactor = sender.reactor
    idle0 = await settled_blocks(reactor, engine)
    reads0 = table_reads(engine)
    blocks0 = await settled_blocks(reactor, engine)
    reads1 = table_reads(engine)
    before = scrape(gateway.metrics_port)
    cpu = CpuClock(daemon.pid)
    ingest = await sender.run(records, window=args.window)
    ingest_cpu = cpu.read()
    after = scrape(gateway.metrics_port)
    check_phase(ingest, f"{name} ingest")
    blocks1 = await settled_blocks(reactor, engine)
    reads2 = table_reads(engine)
    metrics = PhaseMetrics.between(before, after)
    n = len(records)
    if metrics.acks != {"00": n, "10": 0, "90": 0} or metrics.applied != n or metrics.pauses:
        raise BenchFailure(
            f"{name}: the daemon sent AK {metrics.acks}, applied {metrics.applied} and paused"
            f" {metrics.pauses} time(s) for {n} records"
        )
    say(
        f"{name}: 照会 warm-up (500, 50 in flight), then {args.in_flight} in flight"
        f" for {args.inquiry_seconds:g}s"
    )
    check_answers(await asker.window(50, None, 500), f"{name} 照会 warm-up")
    blocks2 = await settled_blocks(reactor, engine)
    reads3 = table_reads(engine)
    before = scrape(gateway.metrics_port)
    cpu = CpuClock(daemon.pid)
    asked = await asker.window(args.in_flight, args.inquiry_seconds, None)
    asked_cpu = cpu.read()
    after = scrape(gateway.metrics_port)
    check_answers(asked, f"{name} 照会")
    blocks3 = await settled_blocks(reactor, engine)
    reads4 = table_reads(engine)
    store_seconds, store_count = inquiry_store(before, after)
    return Measure(
        name,
        n,
        ingest.seconds,
        ingest_cpu,
        metrics,
        asked.count,
        asked.seconds,
        asked_cpu,
        1000 * store_seconds / store_count if store_count else 0.0,
        blocks1 - blocks0,
        blocks3 - blocks2,
        blocks0 - idle0,
        reads_between(reads0, reads1),
        reads_between(reads1, reads2),
        reads_between(reads3, reads4),
    )


# --- the preload: the link's own rows, many times over ----------------------------------------


@dataclass(frozen=True)
class Templates:
    message: dict[str, Any]
    payment: dict[str, Any]
    event: dict[str, Any]


def templates(engine: Engine, key: str) -> Templates:
    """The message, payment and event the link stored for the record with event key ``key``."""
    with engine.connect() as conn:
        message = (
            conn.execute(select(collection_messages).where(collection_messages.c.event_key == key))
            .one()
            ._asdict()
        )
        payment = conn.execute(select(payments).where(payments.c.event_key == key)).one()._asdict()
        event = (
            conn.execute(
                select(events)
                .where(events.c.type == EVENT_TYPE)
                .where(events.c.data.contains(payment["payment_id"]))
            )
            .one()
            ._asdict()
        )
    return Templates(message, payment, event)


class RowFactory:
    """Rows ``i`` of the preload: distinct event keys (the CVS key of one of the benchmark's
    barcodes, a past date, a time of day and a store code unique to ``i``), random payment and
    event ids of the real ids' length, dates spread over :data:`PRELOAD_DAYS`."""

    def __init__(self, t: Templates, barcodes: Sequence[str], today: date, count: int) -> None:
        self.t = t
        self.barcodes = barcodes
        self.today = today
        self.per_day = max(1, -(-count // PRELOAD_DAYS))
        self.rng = random.Random(SEED)
        pay_prefix, pay_hex = str(t.payment["payment_id"]).split("_", 1)
        evt_prefix, evt_hex = str(t.event["event_id"]).split("_", 1)
        self.pay = (pay_prefix, len(pay_hex))
        self.evt = (evt_prefix, len(evt_hex))
        self.event_data = str(t.event["data"])
        self.template_payment_id = str(t.payment["payment_id"])
        self.template_key = str(t.message["event_key"])

    def _id(self, prefix: tuple[str, int]) -> str:
        name, digits = prefix
        return f"{name}_{self.rng.getrandbits(4 * digits):0{digits}x}"

    def rows(self, i: int, seq: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        paid_on = self.today - timedelta(days=PRELOAD_DAYS - i // self.per_day)  # oldest first
        minute = i % 1440
        key = make_event_key(
            self.barcodes[i % len(self.barcodes)],
            paid_on,
            f"{minute // 60:02d}{minute % 60:02d}",
            "000001",
            f"{i % 10_000_000:07d}",
        )
        paid_at = datetime(paid_on.year, paid_on.month, paid_on.day, tzinfo=JST) + timedelta(
            minutes=minute
        )
        received = paid_at + timedelta(seconds=30)
        payment_id = self._id(self.pay)
        message = self.t.message | {"event_key": key, "paid_at": paid_at, "received_at": received}
        del message["id"]
        payment = self.t.payment | {
            "payment_id": payment_id,
            "event_key": key,
            "paid_at": paid_at,
            "created_at": received,
            # What a payment that old is: confirmed by the 確報, of a bill not loaded here.
            "status": "confirmed",
            "confirmed_at": received + timedelta(days=2),
            "bill_id": None,
        }
        data = self.event_data.replace(self.template_payment_id, payment_id).replace(
            self.template_key, key
        )
        event = self.t.event | {
            "event_id": self._id(self.evt),
            "seq": seq,
            "created_at": received,
            "data": data,
        }
        del event["id"]
        return message, payment, event


def reserve_seqs(conn: Connection, count: int) -> int:
    """The first of ``count`` consecutive seqs of the bench biller, reserved (and its row locked
    until commit) as ``append_events`` does."""
    last = conn.execute(
        update(billers)
        .where(billers.c.biller_id == BILLER_ID)
        .values(last_event_seq=billers.c.last_event_seq + count)
        .returning(billers.c.last_event_seq)
    ).scalar_one()
    return int(last) - count + 1


def advance_cursors(conn: Connection, first: int, last: int) -> None:
    """The notice job's and the webhook dispatcher's cursors of the bench biller moved past the
    preloaded events ``first..last`` when they had read every event before: in production they
    read each event as it commits, so the preload is no backlog for them."""
    for cursor in (notice_cursors, webhook_cursors):
        conn.execute(
            update(cursor)
            .where(cursor.c.biller_id == BILLER_ID, cursor.c.last_seq == first - 1)
            .values(last_seq=last)
        )


@dataclass(frozen=True)
class Preload:
    rows: int
    copy_seconds: float
    vacuum_seconds: float
    sizes: dict[str, str]  # table -> pg_total_relation_size, pretty


def preload(url: str, factory: RowFactory, count: int, chunk: int) -> Preload:
    """``count`` message, payment and event rows, ``chunk`` records per transaction, then
    ``VACUUM ANALYZE`` of the three tables (run in a thread: the links stay up)."""
    engine = create_db_engine(url, pool_size=1)
    try:
        t0 = time.perf_counter()
        done = 0
        while done < count:
            n = min(chunk, count - done)
            with engine.begin() as conn:
                first_seq = reserve_seqs(conn, n)
                made = [factory.rows(done + j, first_seq + j) for j in range(n)]
                copy_rows(conn, collection_messages, [m for m, _, _ in made])
                copy_rows(conn, payments, [p for _, p, _ in made])
                copy_rows(conn, events, [e for _, _, e in made])
                advance_cursors(conn, first_seq, first_seq + n - 1)
            done += n
            if done % (10 * chunk) == 0 or done == count:
                rate = done / (time.perf_counter() - t0)
                say(f"  preload: {done} of {count} ({rate:.0f} records/s)")
        copy_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        sizes = {}
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("collection_messages", "payments", "events"):
                conn.execute(text(f"VACUUM ANALYZE {table}"))
            # The preload's WAL written out now, not by a checkpoint during the measurement.
            conn.execute(text("CHECKPOINT"))
            for table in ("collection_messages", "payments", "events"):
                sizes[table] = str(
                    conn.execute(
                        text(f"SELECT pg_size_pretty(pg_total_relation_size('{table}'))")
                    ).scalar_one()
                )
        return Preload(count, copy_seconds, time.perf_counter() - t1, sizes)
    finally:
        engine.dispose()


# --- the run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkResults:
    empty: Measure
    grown: Measure
    preload: Preload


async def link_phases(
    reactor: Any,
    gateway: Gateway,
    daemon: Daemon,
    bills: Bills,
    phases: tuple[Records, Records, Records, Records],
    barcodes: Sequence[str],
    engine: Engine,
    url: str,
    args: argparse.Namespace,
) -> LinkResults:
    where: MpnCenter | None = gateway.mpn_link
    assert where is not None and gateway.cvs_link is not None
    center = MpnCenterFactory(reactor, center_code="0002", deadline=30.0)
    port = await listen_mpn_center(
        reactor, where.listen, TLSFiles(where.ca, where.certificate, where.key), factory=center
    )
    cvs = gateway.cvs_link
    link = None
    try:
        daemon.start()  # blocks the reactor until /readyz; the daemon's dial waits in the backlog
        say(f"daemon ready (pid {daemon.pid}); waiting for 開局")
        await center.opened.addTimeout(60, reactor)
        if center.institution_code != MPN_INSTITUTION_CODE:
            raise BenchFailure(f"開局 from institution {center.institution_code}")
        link = start_agency_link(
            reactor, cvs.connect, TLSFiles(cvs.ca, cvs.certificate, cvs.key), "gateway"
        )
        await connected(reactor, link)
        sender = Sender(reactor, link, daemon)
        asker = Asker(reactor, center, bills, seed=7)
        warm_a, records_a, warm_b, records_b = phases
        empty = await measure(
            "empty", gateway, daemon, sender, asker, warm_a, records_a, engine, args
        )

        factory = RowFactory(
            templates(engine, records_a.keys[0]),
            barcodes,
            datetime.now(JST).date(),
            args.preload,
        )
        say(f"preload: {args.preload} records, {args.chunk} per transaction (COPY)")
        loaded: Preload = await deferToThread(preload, url, factory, args.preload, args.chunk)
        say(
            f"preload: {loaded.rows} in {loaded.copy_seconds:.1f}s, VACUUM ANALYZE"
            f" {loaded.vacuum_seconds:.1f}s; {loaded.sizes}"
        )
        grown = await measure(
            "grown", gateway, daemon, sender, asker, warm_b, records_b, engine, args
        )
        if center.disconnects:
            raise BenchFailure(f"the gateway disconnected {len(center.disconnects)} time(s)")
        if link.client.connections != 1:
            raise BenchFailure(f"the CVS link connected {link.client.connections} times")
    finally:
        if link is not None:
            stopped = link.stop()
            stopped.addTimeout(10, reactor)
            await stopped
        await maybeDeferred(port.stopListening)
    return LinkResults(empty, grown, loaded)


def check_stored(engine: Engine, sent: Sequence[str], preloaded: int) -> str:
    """Each record sent is one applied message and one pending payment; the preloaded rows are
    all there; the three tables hold exactly these rows and nothing else."""
    n = len(sent)
    with engine.connect() as conn:

        def one(sql: str, **params: Any) -> int:
            return int(conn.execute(text(sql), params).scalar_one())

        keys = list(sent)
        checks = {
            "messages of the records sent, applied": one(
                "SELECT count(DISTINCT event_key) FROM collection_messages"
                " WHERE event_key = ANY(:k) AND outcome = 'applied'",
                k=keys,
            ),
            "payments of the records sent, pending": one(
                "SELECT count(DISTINCT event_key) FROM payments"
                " WHERE event_key = ANY(:k) AND status = 'pending'",
                k=keys,
            ),
            "messages": one("SELECT count(*) FROM collection_messages"),
            "payments": one("SELECT count(*) FROM payments"),
            f"{EVENT_TYPE} events": one(
                "SELECT count(*) FROM events WHERE type = :t", t=EVENT_TYPE
            ),
            "preloaded payments (confirmed)": one(
                "SELECT count(*) FROM payments WHERE status = 'confirmed'"
            ),
            "anomalies": one("SELECT count(*) FROM anomalies"),
            "refund cases": one("SELECT count(*) FROM refund_cases"),
        }
        seqs = conn.execute(
            select(func.count(), func.min(events.c.seq), func.max(events.c.seq)).where(
                events.c.biller_id == BILLER_ID
            )
        ).one()
        last_seq = conn.execute(
            select(billers.c.last_event_seq).where(billers.c.biller_id == BILLER_ID)
        ).scalar_one()
    expected = {
        "messages of the records sent, applied": n,
        "payments of the records sent, pending": n,
        "messages": n + preloaded,
        "payments": n + preloaded,
        f"{EVENT_TYPE} events": n + preloaded,
        "preloaded payments (confirmed)": preloaded,
        "anomalies": 0,
        "refund cases": 0,
    }
    wrong = {k: (checks[k], v) for k, v in expected.items() if checks[k] != v}
    if wrong:
        raise BenchFailure(f"stored (found, expected): {wrong}")
    count, low, high = seqs
    if (low, high) != (1, count) or last_seq != count:
        raise BenchFailure(
            f"the biller's events: {count} with seqs {low}..{high}, last_event_seq {last_seq}:"
            " not gap-free"
        )
    return (
        f"stored: {n} records sent, each one applied message and one pending payment;"
        f" {preloaded} preloaded; {n + preloaded} messages, payments and {EVENT_TYPE} events;"
        f" seqs 1..{count} gap-free; no anomaly, no refund case"
    )


@dataclass(frozen=True)
class Result:
    args: argparse.Namespace
    link: LinkResults
    stored: str
    durability: str
    code: str

    def figures(self) -> dict[str, Any]:
        e, g = self.link.empty, self.link.grown
        return {
            "bench": "grown",
            "backend": "postgresql",
            "preloaded": self.link.preload.rows,
            "records": e.records,
            "window": self.args.window,
            "bills": self.args.bills,
            "empty_ingest_per_s": round(e.ingest_rate, 1),
            "grown_ingest_per_s": round(g.ingest_rate, 1),
            "ratio_ingest": round(g.ingest_rate / e.ingest_rate, 3),
            "empty_ingest_cpu_us": round(e.ingest_us),
            "grown_ingest_cpu_us": round(g.ingest_us),
            "ratio_ingest_cpu": round(g.ingest_us / e.ingest_us, 3),
            "empty_commit_ms": round(e.commit_ms, 2),
            "grown_commit_ms": round(g.commit_ms, 2),
            "empty_ingest_blocks": round(e.ingest_blocks_per, 1),
            "grown_ingest_blocks": round(g.ingest_blocks_per, 1),
            "ratio_ingest_blocks": round(g.ingest_blocks_per / e.ingest_blocks_per, 3),
            "empty_inquiry_per_s": round(e.inquiry_rate, 1),
            "grown_inquiry_per_s": round(g.inquiry_rate, 1),
            "ratio_inquiry": round(g.inquiry_rate / e.inquiry_rate, 3),
            "empty_inquiry_cpu_us": round(e.inquiry_us),
            "grown_inquiry_cpu_us": round(g.inquiry_us),
            "ratio_inquiry_cpu": round(g.inquiry_us / e.inquiry_us, 3),
            "empty_idle_blocks": e.idle_blocks,
            "grown_idle_blocks": g.idle_blocks,
            "empty_inquiry_blocks": round(e.inquiry_blocks_per, 1),
            "grown_inquiry_blocks": round(g.inquiry_blocks_per, 1),
            "ratio_inquiry_blocks": round(g.inquiry_blocks_per / e.inquiry_blocks_per, 3),
            "empty_inquiry_store_ms": round(e.inquiry_store_ms, 2),
            "grown_inquiry_store_ms": round(g.inquiry_store_ms, 2),
            "preload_s": round(self.link.preload.copy_seconds, 1),
            "vacuum_s": round(self.link.preload.vacuum_seconds, 1),
            "sizes": self.link.preload.sizes,
            "code": self.code,
        }


def run(args: argparse.Namespace, db: ScratchDatabase, workdir: Path) -> Result:
    if db.backend != "postgresql":
        raise BenchFailure("this benchmark needs PostgreSQL (--database-url)")
    say(f"setting up the gateway with its CVS and MPN links in {workdir}")
    options = {"max_unacked": str(max_unacked(args.window))}
    gateway = prepare(workdir, db.url, cvs_link=True, mpn_link=True, link_options=options)
    say(f"loading {args.bills} Pay-easy bills with COPY (the 照会's)")
    load = load_bills(db.url, gateway, args.bills)
    engine = create_db_engine(db.url, pool_size=2)
    try:
        w, n = args.warmup, args.records
        say(f"inserting {2 * (w + n)} CVS bills (the records')")
        barcodes = issue_bills(engine, load_config(gateway.config_path), 2 * (w + n))
        today = datetime.now(JST).date()
        phases = (
            make_records(barcodes[:w], 0, today),
            make_records(barcodes[w : w + n], w, today),
            make_records(barcodes[w + n : 2 * w + n], w + n, today),
            make_records(barcodes[2 * w + n :], 2 * w + n, today),
        )
        daemon = gateway.daemon()
        try:
            link = on_reactor(
                partial(
                    link_phases,
                    gateway=gateway,
                    daemon=daemon,
                    bills=load.bills,
                    phases=phases,
                    barcodes=barcodes,
                    engine=engine,
                    url=db.url,
                    args=args,
                )
            )
        except BenchFailure as e:
            raise BenchFailure(f"{e}\n--- daemon log ---\n{daemon.log_tail()}") from e
        finally:
            code = daemon.stop()
        how = "cleanly" if daemon.stopped_cleanly() else f"exit {code}"
        say(f"daemon stopped ({how})")
        sent = [k for p in phases for k in p.keys]
        stored = check_stored(engine, sent, args.preload)
        say(stored)
    finally:
        engine.dispose()
    return Result(args, link, stored, durability_settings(db.url), code_state())


def report(r: Result) -> str:
    f = r.figures()
    e, g = r.link.empty, r.link.grown
    rows = [
        ("CVS ingest rec/s", f"{e.ingest_rate:.0f}", f"{g.ingest_rate:.0f}", f["ratio_ingest"]),
        (
            "  daemon CPU µs/record",
            f"{e.ingest_us:.0f}",
            f"{g.ingest_us:.0f}",
            f["ratio_ingest_cpu"],
        ),
        (
            "  mean group commit ms",
            f"{e.commit_ms:.2f}",
            f"{g.commit_ms:.2f}",
            round(g.commit_ms / e.commit_ms, 3) if e.commit_ms else "-",
        ),
        (
            "  buffer accesses/record",
            f"{e.ingest_blocks_per:.1f}",
            f"{g.ingest_blocks_per:.1f}",
            f["ratio_ingest_blocks"],
        ),
        (
            f"idle buffer accesses/{STATS_SETTLE:g}s",
            f"{e.idle_blocks}",
            f"{g.idle_blocks}",
            round(g.idle_blocks / e.idle_blocks, 3) if e.idle_blocks else "-",
        ),
        ("照会 answered/s", f"{e.inquiry_rate:.0f}", f"{g.inquiry_rate:.0f}", f["ratio_inquiry"]),
        (
            "  daemon CPU µs/照会",
            f"{e.inquiry_us:.0f}",
            f"{g.inquiry_us:.0f}",
            f["ratio_inquiry_cpu"],
        ),
        (
            "  mean mpn.inquiry txn ms",
            f"{e.inquiry_store_ms:.2f}",
            f"{g.inquiry_store_ms:.2f}",
            round(g.inquiry_store_ms / e.inquiry_store_ms, 3) if e.inquiry_store_ms else "-",
        ),
        (
            "  buffer accesses/照会",
            f"{e.inquiry_blocks_per:.1f}",
            f"{g.inquiry_blocks_per:.1f}",
            f["ratio_inquiry_blocks"],
        ),
    ]
    p = r.link.preload
    lines = [
        f"grown: {p.rows} messages preloaded ({p.copy_seconds:.0f}s COPY,"
        f" {p.vacuum_seconds:.0f}s VACUUM ANALYZE); {e.records} records per ingest"
        f" measurement (window {r.args.window}), 照会 {r.args.in_flight} in flight for"
        f" {r.args.inquiry_seconds:g}s over {r.args.bills} bills",
        f"sizes after the preload: {p.sizes}",
        f"durability: {r.durability}",
        "",
        f"| {'':24} | {'empty':>8} | {'grown':>8} | grown/empty |",
        f"| {'-' * 24} | {'-' * 8} | {'-' * 8} | {'-' * 11} |",
        *(f"| {a:24} | {b:>8} | {c:>8} | {d!s:>11} |" for a, b, c, d in rows),
        "",
        *(
            f"tables read, {m.name}: idle {m.idle_reads or '-'}; ingest {m.ingest_reads};"
            f" 照会 {m.inquiry_reads}"
            for m in (e, g)
        ),
        "",
        r.stored,
        json.dumps(f, ensure_ascii=False),
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_database_url(parser, DEFAULT_URL)
    parser.add_argument("--preload", type=int, default=10_000_000, help="messages preloaded")
    parser.add_argument("--records", type=int, default=20_000, help="records per measurement")
    parser.add_argument("--warmup", type=int, default=500, help="records, not counted")
    parser.add_argument("--window", type=int, default=2000, help="records unacknowledged")
    parser.add_argument("--bills", type=int, default=100_000, help="Pay-easy bills (照会)")
    parser.add_argument("--inquiry-seconds", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=50_000, help="preload rows per transaction")
    args = parser.parse_args(argv)
    if args.database_url is None:
        parser.error("PostgreSQL only: --database-url")
    if min(args.preload, args.records, args.warmup, args.window, args.bills, args.chunk) < 1:
        parser.error("sizes must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main("grown", parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
