"""Bill creations per second through the merchant API, against the raw insert rate of the rows.

    .venv/bin/python bench/bills_api.py [--database-url URL] [--bills N] [--clients 20]

Starts the real daemon (``twistd -n gateway``) on a scratch database, creates ``N`` bills through
``POST /v1/bills`` from ``--clients`` threads (one keep-alive HTTP/1.1 connection each), checks
that the database holds exactly the bills answered 201, stops the daemon, then inserts ``N`` rows
of the same shape into ``bills`` with SQLAlchemy Core, one row per transaction, and ``N`` more in
one ``executemany`` transaction. Prints a table and, last, one JSON line. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from _daemon import (
    BILLER_ID,
    BenchFailure,
    Gateway,
    ScratchDatabase,
    add_database_url,
    bench_main,
    durability_settings,
    prepare,
    say,
)
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from gateway.billing.bills import parse_bill_request
from gateway.config import Config, load_config
from gateway.infra.secretbox import SecretBox
from gateway.model import JST, Biller, BillStatus
from gateway.networks.issuer import Issuer
from gateway.store import create_db_engine
from gateway.store.billers import get_biller
from gateway.store.schema import bill_slips, bills, events

# bill_no prefixes, one per phase, so every phase's rows can be counted apart afterwards.
API_WARMUP, API, RAW_WARMUP, RAW, BATCHED = "W", "B", "RW", "R", "X"
# Serials for the rows inserted directly (barcode and お客様番号 are derived from a serial; the
# API's serials are the row ids, 1, 2, ...). Far apart, and below Pay-easy's 10-digit limit.
SERIAL_BASE = {RAW_WARMUP: 1_000_000_000, RAW: 2_000_000_000, BATCHED: 3_000_000_000}


# --- what is sent and what is stored ---------------------------------------------------------


def bill_body(bill_no: str, i: int, due: date) -> dict[str, Any]:
    return {
        "bill_no": bill_no,
        "amount": 1000 + (i * 37) % 40000,  # under the 50,000 yen stamp threshold
        "due_date": due.isoformat(),
        "channels": ["cvs", "payeasy"],
        "customer": {"customer_no": f"C{i:06d}", "name": "山田 太郎"},
    }


@dataclass(frozen=True)
class RowMaker:
    """Builds ``bills`` rows exactly as the API would store them for the same request body."""

    config: Config
    issuer: Issuer
    biller: Biller
    today: date
    due: date
    page_token: Callable[[str, str], str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "page_token", stored_page_token(self.config))

    def rows(self, prefix: str, count: int) -> list[dict[str, Any]]:
        return [self.row(f"{prefix}-{i:06d}", i, SERIAL_BASE[prefix] + i) for i in range(count)]

    def row(self, bill_no: str, i: int, serial: int) -> dict[str, Any]:
        request = parse_bill_request(
            bill_body(bill_no, i, self.due),
            limits=self.issuer.channel_limits(),
            today=self.today,
            max_due_days=self.config.bills.max_due_days,
        )
        now = datetime.now(UTC)
        # The columns of gateway.store.bills.insert_bill, then those its UPDATE sets.
        row: dict[str, Any] = {
            "biller_id": self.biller.biller_id,
            "bill_no": request.bill_no,
            "amount": request.amount,
            "due_date": request.due_date,
            "channels": ",".join(sorted(request.channels)),
            "customer_no": request.customer.customer_no,
            "customer_name": request.customer.name,
            "customer_kana": request.customer.kana,
            "customer_email": request.customer.email,
            "customer_phone": request.customer.phone,
            "taxable": request.tax.taxable,
            "tax_amount": request.tax.tax_amount,
            "description": request.description,
            "status": BillStatus.OPEN.value,
            "version": 1,
            "reissue": 0,
            "double_paid": False,
            "late": False,
            "stamp": False,
            "page_token": self.page_token(self.biller.biller_id, request.bill_no),
            "fingerprint": request.fingerprint(),
            "created_at": now,
            "updated_at": now,
            "barcode": None,
            "cvs_bill_key": None,
            "payeasy_institution_code": None,
            "payeasy_customer_number": None,
            "payeasy_confirmation_number": None,
        }
        ids = self.issuer.identify(self.biller, serial, request, self.today)
        if ids.slip is not None:
            slip = ids.slip
            row.update(barcode=slip.barcode, cvs_bill_key=slip.barcode[2:29], stamp=slip.stamp)
        if ids.payeasy is not None:
            row.update(
                payeasy_institution_code=ids.payeasy.institution_code,
                payeasy_customer_number=ids.payeasy.customer_number,
                payeasy_confirmation_number=ids.payeasy.confirmation_number,
            )
        return row


def stored_page_token(config: Config) -> Callable[[str, str], str]:
    """What ``bills.page_token`` holds for (biller id, bill number): the SHA-256 of the page
    token derived under ``[secrets] key``, by the function ``BillService.stored_token`` calls,
    so the rows inserted raw hold what the API stores (and their page URLs work)."""
    assert config.secret_key is not None, "[secrets] key"
    return SecretBox(config.secret_key).stored_page_token


# --- running work from many threads ----------------------------------------------------------


class Feed:
    """Hands out 0, 1, ... n-1 to whichever thread asks first; None when done or stopped."""

    def __init__(self, n: int, stop: threading.Event) -> None:
        self._n = n
        self._next = 0
        self._lock = threading.Lock()
        self._stop = stop

    def take(self) -> int | None:
        with self._lock:
            if self._next >= self._n or self._stop.is_set():
                return None
            self._next += 1
            return self._next - 1


# One unit of work: (index, warm-up?) -> None, raising on any failure.
Step = Callable[[int, bool], None]


@dataclass
class Timing:
    seconds: float
    count: int
    latencies: list[float] = field(default_factory=list)  # seconds, measured units only

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def percentile_ms(self, p: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def run_concurrently(
    threads: int, warmup: int, n: int, session: Callable[[], AbstractContextManager[Step]]
) -> Timing:
    """Run ``warmup`` then ``n`` steps on ``threads`` threads, each in its own ``session()``.

    Every thread opens its session (a connection) and shares the warm-up; a barrier then starts
    the clock for all of them at once, and it stops when the last thread finishes its last step.
    The first failure stops every thread and is raised here.
    """
    stop = threading.Event()
    warm_feed, feed = Feed(warmup, stop), Feed(n, stop)
    started: list[float] = []
    barrier = threading.Barrier(threads, action=lambda: started.append(time.perf_counter()))
    finished: list[float] = []
    latencies: list[list[float]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        mine: list[float] = []
        try:
            with session() as step:
                while (i := warm_feed.take()) is not None:
                    step(i, True)
                barrier.wait()
                while (i := feed.take()) is not None:
                    t0 = time.perf_counter()
                    step(i, False)
                    mine.append(time.perf_counter() - t0)
            end = time.perf_counter()
            with lock:
                finished.append(end)
                latencies.append(mine)
        except BaseException as e:
            with lock:
                errors.append(e)
            stop.set()
            barrier.abort()

    pool = [threading.Thread(target=work, name=f"bench-{k}", daemon=True) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
        first = (real or errors)[0]
        if isinstance(first, BenchFailure):
            raise first
        raise BenchFailure(f"{type(first).__name__}: {first}") from first
    done = sum(len(m) for m in latencies)
    if done != n:
        raise BenchFailure(f"{done} of {n} steps ran")
    return Timing(max(finished) - started[0], n, [x for m in latencies for x in m])


# --- the API phase ---------------------------------------------------------------------------


@dataclass
class ApiLoad:
    gateway: Gateway
    warm_bodies: list[bytes]
    bodies: list[bytes]
    created: list[str] = field(default_factory=list)  # bill_no of every 201, warm-up included
    connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def session(self) -> Iterator[Step]:
        """One persistent HTTP/1.1 connection, reused for every request of this thread."""
        conn = HTTPConnection("127.0.0.1", self.gateway.api_port, timeout=60)
        headers = {
            "Authorization": f"Bearer {self.gateway.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        try:
            conn.connect()
            sock = conn.sock
            with self._lock:
                self.connections += 1

            def step(i: int, warm: bool) -> None:
                body = (self.warm_bodies if warm else self.bodies)[i]
                bill_no = (API_WARMUP if warm else API) + f"-{i:06d}"
                conn.request("POST", "/v1/bills", body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if response.status != 201:
                    raise BenchFailure(f"{bill_no}: HTTP {response.status}: {data[:300]!r}")
                if not response.isclosed():
                    raise BenchFailure(f"{bill_no}: the response was not read to its end")
                if response.will_close or conn.sock is not sock:
                    raise BenchFailure(f"{bill_no}: the server did not keep the connection")
                doc = json.loads(data)
                if doc.get("bill_no") != bill_no or "barcode" not in doc.get("cvs", {}):
                    raise BenchFailure(f"{bill_no}: unexpected body {data[:300]!r}")
                with self._lock:
                    self.created.append(bill_no)

            yield step
        finally:
            conn.close()


def encoded_bodies(prefix: str, count: int, due: date) -> list[bytes]:
    return [
        json.dumps(bill_body(f"{prefix}-{i:06d}", i, due), ensure_ascii=False).encode()
        for i in range(count)
    ]


def check_stored(engine: Engine, created: Sequence[str]) -> str:
    """The database holds exactly the bills answered 201, each with its slip and its event."""
    with engine.connect() as conn:
        stored = set(
            conn.execute(select(bills.c.bill_no).where(bills.c.biller_id == BILLER_ID)).scalars()
        )
        slips = conn.execute(select(func.count()).select_from(bill_slips)).scalar_one()
        n_events = conn.execute(
            select(func.count()).where(
                events.c.biller_id == BILLER_ID, events.c.type == "bill.created"
            )
        ).scalar_one()
    answered = set(created)
    if len(answered) != len(created):
        raise BenchFailure(f"{len(created) - len(answered)} bill_no answered 201 twice")
    if stored != answered:
        raise BenchFailure(
            f"the API answered 201 for {len(answered)} bills but the database holds"
            f" {len(stored)}: {len(answered - stored)} missing, {len(stored - answered)} extra"
        )
    if slips != len(stored) or n_events != len(stored):
        raise BenchFailure(f"{len(stored)} bills but {slips} slips and {n_events} events")
    return (
        f"{len(stored)} bills answered 201, {len(stored)} stored, {slips} slips, {n_events} events"
    )


# --- the raw insert phase --------------------------------------------------------------------


def raw_inserts(
    engine: Engine, threads: int, warm_rows: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> Timing:
    """One INSERT per transaction (a commit each), as one API request commits one bill."""
    stmt = bills.insert()

    @contextmanager
    def session() -> Iterator[Step]:
        def step(i: int, warm: bool) -> None:
            with engine.begin() as conn:
                conn.execute(stmt, (warm_rows if warm else rows)[i])

        yield step

    return run_concurrently(threads, len(warm_rows), len(rows), session)


def batched_inserts(engine: Engine, rows: list[dict[str, Any]]) -> Timing:
    """Every row in one executemany, one transaction: the reference for "no commit per row"."""
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(bills.insert(), rows)
    return Timing(time.perf_counter() - t0, len(rows))


def count_by_prefix(engine: Engine) -> dict[str, int]:
    prefix = func.substr(bills.c.bill_no, 1, func.length(bills.c.bill_no) - 7)
    with engine.connect() as conn:
        rows = conn.execute(select(prefix, func.count()).group_by(prefix)).all()
    return {str(p): int(c) for p, c in rows}


def check_same_shape(engine: Engine, maker: RowMaker) -> None:
    """The first row of each phase has the same columns set, of the same types and lengths,
    and the API's first bill has the ``page_token`` the raw rows' function gives it."""

    def shape(value: object) -> tuple[str, int | None]:
        return type(value).__name__, len(value) if isinstance(value, str) else None

    names = [f"{p}-000000" for p in (API, RAW, BATCHED)]
    with engine.connect() as conn:
        rows = conn.execute(select(bills).where(bills.c.bill_no.in_(names))).mappings().all()
    shapes = {r["bill_no"]: {k: shape(v) for k, v in r.items() if k != "id"} for r in rows}
    if len(shapes) != len(names):
        raise BenchFailure(f"expected rows {names}, found {sorted(shapes)}")
    api = shapes[names[0]]
    stored_token = next(r["page_token"] for r in rows if r["bill_no"] == names[0])
    if stored_token != maker.page_token(BILLER_ID, names[0]):
        raise BenchFailure(f"{names[0]}: the daemon stored another page_token than the raw rows'")
    for name in names[1:]:
        differ = {k: (api[k], v) for k, v in shapes[name].items() if api[k] != v}
        if differ:
            raise BenchFailure(f"{name} differs from the API's {names[0]}: {differ}")


# --- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    backend: str
    bills: int
    clients: int
    warmup: int
    daemon_pool_size: int
    raw_threads: int
    api: Timing
    raw: Timing
    batched: Timing
    durability: str
    stored: str
    daemon_cpu_us_per_bill: float | None

    def figures(self) -> dict[str, Any]:
        return {
            "bench": "bills_api",
            "backend": self.backend,
            "bills": self.bills,
            "clients": self.clients,
            "warmup": self.warmup,
            "daemon_store_threads": 1 if self.backend == "sqlite" else self.daemon_pool_size,
            "raw_threads": self.raw_threads,
            "api_bills_per_s": round(self.api.rate, 1),
            "api_p50_ms": round(self.api.percentile_ms(50), 2),
            "api_p99_ms": round(self.api.percentile_ms(99), 2),
            "raw_rows_per_s": round(self.raw.rate, 1),
            "ratio_api_raw": round(self.api.rate / self.raw.rate, 3),
            "batched_rows_per_s": round(self.batched.rate, 1),
            "daemon_cpu_us_per_bill": (
                None if self.daemon_cpu_us_per_bill is None else round(self.daemon_cpu_us_per_bill)
            ),
        }


def run(args: argparse.Namespace, db: ScratchDatabase, workdir: Path) -> Result:
    say(f"setting up the gateway on {db.backend} in {workdir}")
    gateway = prepare(workdir, db.url)
    config = load_config(gateway.config_path)
    raw_threads = 1 if db.backend == "sqlite" else args.clients
    engine = create_db_engine(db.url, pool_size=raw_threads)
    try:
        today = datetime.now(JST).date()
        due = today + timedelta(days=30)
        with engine.connect() as conn:
            biller = get_biller(conn, BILLER_ID)
        maker = RowMaker(config, Issuer(config), biller, today, due)
        say("building request bodies and rows (not timed)")
        load = ApiLoad(
            gateway,
            encoded_bodies(API_WARMUP, args.warmup, due),
            encoded_bodies(API, args.bills, due),
        )
        raw_warm_rows = maker.rows(RAW_WARMUP, args.warmup)
        raw_rows = maker.rows(RAW, args.bills)
        batched_rows = maker.rows(BATCHED, args.bills)
        engine.dispose()

        with gateway.daemon() as daemon:
            say(f"daemon ready; {args.clients} clients, {args.warmup} warm-up + {args.bills} bills")
            cpu_before = daemon.cpu_seconds()
            try:
                api = run_concurrently(args.clients, args.warmup, args.bills, load.session)
            except BenchFailure as e:
                raise BenchFailure(f"{e}\n--- daemon log ---\n{daemon.log_tail()}") from e
            cpu_after = daemon.cpu_seconds()
            # per bill answered, warm-up included (the CPU is read around the whole phase)
            cpu_us = (
                None
                if cpu_before is None or cpu_after is None
                else 1e6 * (cpu_after - cpu_before) / (args.warmup + args.bills)
            )
            code = daemon.stop()
            how = "cleanly, on SIGTERM" if daemon.stopped_cleanly() else f"exit {code}"
            say(f"daemon stopped ({how}); {load.connections} connections used")
        if load.connections != args.clients:
            raise BenchFailure(f"{load.connections} connections for {args.clients} clients")

        stored = check_stored(engine, load.created)
        say(stored)
        say(f"raw inserts: {args.bills} rows, one per transaction, {raw_threads} thread(s)")
        raw = raw_inserts(engine, raw_threads, raw_warm_rows, raw_rows)
        say(f"batched inserts: {args.bills} rows in one transaction")
        batched = batched_inserts(engine, batched_rows)
        counts = count_by_prefix(engine)
        expected = {API_WARMUP: args.warmup, API: args.bills, RAW_WARMUP: args.warmup}
        expected |= {RAW: args.bills, BATCHED: args.bills}
        if counts != {k: v for k, v in expected.items() if v}:
            raise BenchFailure(f"rows by phase {counts}, expected {expected}")
        check_same_shape(engine, maker)
        stored += (
            "; API, raw and batched rows alike (columns set, types, lengths; page_token as the"
            " daemon stores it)"
        )
        durability = durability_settings(db.url)
    finally:
        engine.dispose()
    return Result(
        db.backend,
        args.bills,
        args.clients,
        args.warmup,
        gateway.pool_size,
        raw_threads,
        api,
        raw,
        batched,
        durability,
        stored,
        cpu_us,
    )


def report(r: Result) -> str:
    f = r.figures()
    columns = [
        ("backend", r.backend),
        ("N", str(r.bills)),
        ("clients", str(r.clients)),
        ("API bills/s", f"{f['api_bills_per_s']:.1f}"),
        ("p50 ms", f"{f['api_p50_ms']:.1f}"),
        ("p99 ms", f"{f['api_p99_ms']:.1f}"),
        ("raw rows/s (1/txn)", f"{f['raw_rows_per_s']:.1f}"),
        ("API/raw", f"{f['ratio_api_raw']:.3f}"),
        ("batched rows/s", f"{f['batched_rows_per_s']:.1f}"),
    ]
    widths = [max(len(h), len(v)) for h, v in columns]
    head = "  ".join(
        h.rjust(w) if i > 0 else h.ljust(w)
        for i, ((h, _), w) in enumerate(zip(columns, widths, strict=True))
    )
    row = "  ".join(
        v.rjust(w) if i > 0 else v.ljust(w)
        for i, ((_, v), w) in enumerate(zip(columns, widths, strict=True))
    )
    store = (
        "1 thread (SQLite)"
        if r.backend == "sqlite"
        else f"{r.daemon_pool_size} threads/connections (database.pool_size)"
    )
    raw_how = (
        "1 thread" if r.raw_threads == 1 else f"{r.raw_threads} threads, pool of {r.raw_threads}"
    )
    return "\n".join(
        [
            "",
            f"bills_api: {r.bills} bills through POST /v1/bills vs the same rows inserted directly",
            f"  database: {r.durability}",
            f"  API:      twistd gateway, store on {store};"
            f" {r.clients} clients, one keep-alive connection each;"
            f" {r.warmup} warm-up bills not counted",
            f"  checked:  {r.stored}",
            f"  raw:      SQLAlchemy Core INSERT, one row per transaction, {raw_how};"
            f" {r.warmup} warm-up rows not counted",
            "  batched:  the same INSERT, every row in one executemany, one transaction",
            f"  wall:     API {r.api.seconds:.2f}s, raw {r.raw.seconds:.2f}s,"
            f" batched {r.batched.seconds:.2f}s",
            f"  CPU:      daemon {f['daemon_cpu_us_per_bill']} µs per bill (warm-up included)",
            "",
            head,
            "-" * len(head),
            row,
            "",
            json.dumps(f),
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/bills_api.py", description=__doc__.strip().splitlines()[0]
    )
    add_database_url(p)
    p.add_argument("--bills", type=int, default=3000, help="bills counted (default 3000)")
    p.add_argument("--clients", type=int, default=20, help="concurrent API clients (default 20)")
    p.add_argument("--warmup", type=int, default=100, help="warm-up bills, not counted")
    args = p.parse_args(argv)
    if args.bills < 1 or args.clients < 1 or args.warmup < 0:
        p.error("--bills and --clients must be at least 1, --warmup at least 0")
    if args.bills + args.warmup > 999_999:
        p.error("at most 999,999 bills and warm-up bills (bill_no has 6 digits)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main("bills_api", parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
