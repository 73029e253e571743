"""Settlement runs: a month of confirmed payments settled biller by biller, next to one aggregate
query over the same rows.

    .venv/bin/python bench/settlement.py [--database-url URL] [--billers 1000]
                                         [--payments 1000000] [--workers 2]
    .venv/bin/python bench/settlement.py --billers 20 --payments 20000     # smoke: seconds

No daemon: the settlement job's own store function, called as the job calls it. Set-up, not
timed, on a scratch database (``gateway_bench_<pid>`` on the PostgreSQL server of
``--database-url``, created and dropped; a ``sqlite://`` URL means a file in a temporary
directory): ``migrate``; ``B`` billers (``create_biller``) each with one monthly fee plan from
2026-11-01 (``save_plan``); one bill per payment and ``N`` confirmed payments spread at random over
the billers and the three channels, paid and confirmed in November 2026 (JST), plus 2 % pending
(速報 only) and 1 % voided ones that must not be paid out, loaded with ``copy_rows`` (``COPY`` on
PostgreSQL), then ``VACUUM ANALYZE``. A bill's お客様番号 and ``page_token`` are what a daemon
with the example config issues and stores (``customer_number`` under its ``[mpn] number_key``,
``BillService.stored_token`` under its ``[secrets] key``). Then:

1. baseline (timed, best of 3): one ``SELECT biller_id, channel, count(*), sum(amount),
   sum(stamped) FROM payments WHERE status = 'confirmed' AND confirmed_at < 2026-12-01 JST
   GROUP BY biller_id, channel``: the figures every settlement needs, in one read of the rows;
2. settlement (timed): ``settle_next(conn, biller, today=2026-12-01, ...)`` for every biller,
   each in its own transaction (``engine.begin()``), as the settlement job runs it, on
   ``--workers`` threads (default: as the job runs, 2 on PostgreSQL, its ``[settlement]
   workers`` default, and 1 on SQLite, which has one writer);
3. checks: one settlement per biller; its lines add up to its payout; its counts and yen are the
   baseline's (per biller and channel), its fees, tax, stamp duty and payout are the plan's
   arithmetic done here; every confirmed payment claimed by its biller's settlement, no pending
   or voided one; one ``settlement.created`` event each;
4. again (timed): ``settle_next`` for every biller once more, which must create nothing.

Prints a table and, last, one JSON line; exits 1 when a check fails. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from _daemon import (
    EXAMPLE_CONFIG,
    BenchFailure,
    ScratchDatabase,
    bench_main,
    durability_settings,
    say,
)
from bills_api import Step, Timing, run_concurrently, stored_page_token
from cvs_ingest import _table, code_state
from sqlalchemy import and_, case, event, func, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError

from gateway import ids
from gateway.config import load_config
from gateway.fee_model import ChannelRates, Cycle, FeePlan, Rounding, jst_midnight
from gateway.mappers.cvs import barcode
from gateway.mappers.cvs.barcode import STAMP_DIGIT
from gateway.mappers.mpn.numbers import customer_number
from gateway.model import JST, BillStatus, Channel, PaymentStatus, transfer_key
from gateway.money.settlement import settle_next, settlement_json
from gateway.store import create_db_engine
from gateway.store.billers import create_biller
from gateway.store.copy import copy_rows
from gateway.store.migrate import migrate
from gateway.store.schema import bills, events, payments, settlement_lines, settlements
from gateway.store.settlements import save_plan

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PERIOD_START, PERIOD_END = date(2026, 11, 1), date(2026, 11, 30)
TODAY = date(2026, 12, 1)  # the run's JST date: November has closed
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=JST)  # the run's clock (settlements' created_at)
UNTIL = jst_midnight(TODAY)  # confirmed before this: November's
PAYOUT_DATE = date(2026, 12, 3)  # T+3 bank business days after Mon 2026-11-30
BILLS_CREATED = datetime(2026, 10, 20, 10, 0, tzinfo=JST)
PLAN = FeePlan(
    effective_from=PERIOD_START,
    cycle=Cycle.MONTHLY,
    payout_days=3,
    settlement_fee=500,
    tax_rate=10,
    tax_rounding=Rounding.FLOOR,
    rates={
        Channel.CVS: ChannelRates(per_payment=60, per_uncollected=10, stamp_charge=200),
        Channel.PAYEASY: ChannelRates(per_payment=80, per_uncollected=5),
        Channel.TRANSFER: ChannelRates(per_payment=40),
    },
)
COMPANY_CODE = "987654"  # the example config's [cvs] company_code (checked)
INSTITUTION_CODE = "58191"  # the example config's [mpn] institution_code (checked)
CENTER_CODE = "0001"  # 仕向センタコード in a Pay-easy payment's event key
DEBIT_DAYS = (date(2026, 11, 5), date(2026, 11, 16), date(2026, 11, 26))  # 振替日
PENDING_SHARE, VOIDED_SHARE = 0.02, 0.01  # of --payments, on top of them
STAMPED_SHARE = 0.05  # of CVS payments: ¥50,000 or more, 印紙フラグ 1
CHUNK = 50_000  # bills and payments built and copied at a time
SEED = 20261201
CHANNELS = (Channel.CVS, Channel.PAYEASY, Channel.TRANSFER)
BILL_COLUMNS = (
    *("id", "biller_id", "bill_no", "amount", "due_date", "channels", "customer_no"),
    *("customer_name", "customer_kana", "customer_email", "customer_phone", "taxable"),
    *("tax_amount", "description", "status", "version", "reissue", "double_paid", "late"),
    *("barcode", "cvs_bill_key", "stamp", "payeasy_institution_code"),
    *("payeasy_customer_number", "payeasy_confirmation_number", "page_token", "fingerprint"),
    *("created_at", "updated_at"),
)


@contextmanager
def step(name: str) -> Iterator[None]:
    """A database error fails the run with the driver's message and the step, not the
    statement (a COPY or an IN list can be megabytes)."""
    try:
        yield
    except DBAPIError as e:
        raise BenchFailure(f"{name}: {type(e.orig).__name__}: {str(e.orig)[:500]}") from None


# --- the month's payments ----------------------------------------------------------------------


@dataclass(slots=True)
class Pay:
    """One generated payment (and its bill, whose id and serial is ``bill_id``)."""

    bill_id: int  # numbered in arrival order, once all are made
    biller: int  # index into Load.biller_ids
    channel: Channel
    status: PaymentStatus
    amount: int
    stamped: bool
    paid_at: datetime
    confirmed_at: datetime | None
    voided_at: datetime | None
    due: date


@dataclass
class Expected:
    """What one biller's settlement must say, counted while the rows were made."""

    collected: dict[Channel, list[int]] = field(
        default_factory=lambda: {ch: [0, 0] for ch in CHANNELS}
    )  # channel -> [count, yen]
    stamped: int = 0
    uncollected: dict[Channel, int] = field(default_factory=lambda: dict.fromkeys(CHANNELS, 0))

    def totals(self) -> dict[str, int]:
        """The plan's arithmetic, done here and not by gateway.money.fees: fees per payment and per
        uncollected bill and per settlement, 10 % tax rounded down, ¥200 per stamp."""
        count = sum(c for c, _ in self.collected.values())
        collected = sum(s for _, s in self.collected.values())
        fees = PLAN.settlement_fee + sum(
            self.collected[ch][0] * PLAN.rate(ch).per_payment
            + self.uncollected[ch] * PLAN.rate(ch).per_uncollected
            for ch in CHANNELS
        )
        tax = fees * PLAN.tax_rate // 100
        stamp_duty = self.stamped * PLAN.rate(Channel.CVS).stamp_charge
        balance = collected - fees - tax - stamp_duty
        return {
            "payments_count": count,
            "collected": collected,
            "fees": fees,
            "tax": tax,
            "stamp_count": self.stamped,
            "stamp_duty": stamp_duty,
            "refunds": 0,
            "carried_in": 0,
            "carried_out": max(0, -balance),
            "payout": max(0, balance),
        }


def in_november(rng: random.Random, first: int, last: int) -> datetime:
    """A random instant on a JST day from the ``first`` to the ``last`` of November 2026."""
    day = datetime(2026, 11, rng.randint(first, last), tzinfo=JST)
    return day + timedelta(seconds=rng.randrange(86_400))


def month(n_billers: int, n_confirmed: int, rng: random.Random) -> list[Pay]:
    """Every payment of the month, in the order they arrived (as the ledger inserts them):
    ``n_confirmed`` confirmed over the three channels, 2 % pending, 1 % voided; a bill each."""
    n_pending = round(n_confirmed * PENDING_SHARE)
    n_voided = round(n_confirmed * VOIDED_SHARE)
    kinds = (
        [PaymentStatus.CONFIRMED] * n_confirmed
        + [PaymentStatus.PENDING] * n_pending
        + [PaymentStatus.VOIDED] * n_voided
    )
    made = []
    for status in kinds:
        biller = rng.randrange(n_billers)
        if status is PaymentStatus.CONFIRMED:
            channel = CHANNELS[rng.randrange(3)]
        else:  # a transfer result is final: no pending or voided debit
            channel = CHANNELS[rng.randrange(2)]
        stamped = channel is Channel.CVS and rng.random() < STAMPED_SHARE
        if stamped:
            amount = rng.randint(50_000, 150_000)
        elif channel is Channel.TRANSFER:
            amount = rng.randint(1_000, 30_000)
        else:
            amount = rng.randint(1_000, 49_999)
        confirmed_at = voided_at = None
        if channel is Channel.TRANSFER:
            debit = DEBIT_DAYS[rng.randrange(len(DEBIT_DAYS))]
            paid_at = datetime.combine(debit, datetime.min.time(), JST)
            confirmed_at = paid_at + timedelta(days=2, hours=10)  # the result file's import
        elif status is PaymentStatus.CONFIRMED:
            paid_at = in_november(rng, 1, 27)
            hours = rng.randint(12, 72) if channel is Channel.CVS else rng.randint(1, 24)
            confirmed_at = paid_at + timedelta(hours=hours)  # 確報 / day close
        elif status is PaymentStatus.PENDING:
            paid_at = in_november(rng, 29, 30)  # its 確報 comes in December
        else:
            paid_at = in_november(rng, 1, 28)
            voided_at = paid_at + timedelta(hours=rng.randint(1, 40))
        due = min(PERIOD_END, paid_at.date() + timedelta(days=rng.randint(0, 5)))
        made.append(
            Pay(0, biller, channel, status, amount, stamped, paid_at, confirmed_at, voided_at, due)
        )
    made.sort(key=lambda p: p.paid_at)
    for i, p in enumerate(made, 1):
        p.bill_id = i
    return made


@dataclass(frozen=True)
class Issuing:
    """What a daemon with the example config gives a bill: the key of its お客様番号
    permutation (``[mpn] number_key``) and what ``bills.page_token`` stores
    (``BillService.stored_token`` under ``[secrets] key``)."""

    number_key: bytes
    page_token: Callable[[str, str], str]

    @classmethod
    def example(cls) -> Issuing:
        config = load_config(EXAMPLE_CONFIG)
        if config.cvs is None or config.mpn is None:
            raise BenchFailure(f"{EXAMPLE_CONFIG}: no [cvs] or [mpn]: update bench/settlement.py")
        if (config.cvs.agency(None).company_code, config.mpn.institution_code) != (
            COMPANY_CODE,
            INSTITUTION_CODE,
        ):
            raise BenchFailure(f"{EXAMPLE_CONFIG}: other codes: update bench/settlement.py")
        return cls(config.mpn.number_key, stored_page_token(config))


def bill_row(p: Pay, biller_id: str, code: str, issuing: Issuing) -> dict[str, Any]:
    """The bill of ``p``: every column insert_bill and its UPDATE set, as the API stores a bill
    of that one channel with id = serial, and the state its payment left it in."""
    bill_no = f"N-{p.bill_id:07d}"
    row: dict[str, Any] = dict.fromkeys(BILL_COLUMNS)
    row.update(
        id=p.bill_id,
        biller_id=biller_id,
        bill_no=bill_no,
        amount=p.amount,
        due_date=p.due,
        channels=p.channel.value,
        customer_no=f"C{p.bill_id:07d}",
        customer_name="山田 太郎",
        customer_kana="ヤマダ タロウ",
        taxable=False,
        tax_amount=0,
        description="11月分 利用料",
        status={
            PaymentStatus.CONFIRMED: BillStatus.CONFIRMED,
            PaymentStatus.PENDING: BillStatus.PAID,
            PaymentStatus.VOIDED: BillStatus.OPEN,  # the void reopened it
        }[p.status].value,
        version=1 if p.status is PaymentStatus.PENDING else 2,
        reissue=0,
        double_paid=False,
        late=False,
        stamp=p.stamped,
        page_token=issuing.page_token(biller_id, bill_no),
        fingerprint=hashlib.sha256(bill_no.encode()).hexdigest(),
        created_at=BILLS_CREATED,
        updated_at=p.confirmed_at or p.voided_at or p.paid_at,
    )
    if p.channel is Channel.CVS:
        digits = barcode.build(
            company_code=COMPANY_CODE,
            free_field=barcode.free_field_for(code, p.bill_id),
            reissue=0,
            due=p.due,
            stamp=p.stamped,
            amount=p.amount,
        ).digits
        row.update(barcode=digits, cvs_bill_key=digits[2:29])
    elif p.channel is Channel.PAYEASY:
        row.update(
            payeasy_institution_code=INSTITUTION_CODE,
            payeasy_customer_number=customer_number(code, p.bill_id, issuing.number_key),
            payeasy_confirmation_number=f"{p.bill_id * 7919 % 1_000_000:06d}",
        )
    return row


def payment_row(p: Pay, biller_id: str, code: str, bill: dict[str, Any]) -> dict[str, Any]:
    """The ledger's row for ``p``: event keys as each network's mapper makes them."""
    if p.channel is Channel.CVS:
        # barcode + 収納日 + 収納時刻 + chain (6) + store (7): digit 37 is the 印紙フラグ.
        store = f"{p.bill_id % 997:07d}"
        event_key = f"{bill['barcode']}{p.paid_at:%Y%m%d%H%M}000020{store}"
        place = f"000020-{store}"
        transfer = p.paid_at.date() + timedelta(days=10)
    elif p.channel is Channel.PAYEASY:
        # 仕向センタコード + 年月日 + 通番: the bill id keeps the 8-digit serial unique.
        event_key = f"{CENTER_CODE}{p.paid_at:%Y%m%d}{p.bill_id:08d}"
        place, transfer = "0005-atm", None
    else:
        debit = p.paid_at.date()
        event_key = transfer_key(f"{int(code):010d}", debit, f"{p.bill_id:020d}")
        place, transfer = "0005-135", debit
    return {
        "payment_id": ids.new_id("pay"),
        "biller_id": biller_id,
        "bill_id": p.bill_id,
        "channel": p.channel.value,
        "event_key": event_key,
        "amount": p.amount,
        "paid_at": p.paid_at,
        "status": p.status.value,
        "late": False,
        "store": place,
        "transfer_date": transfer,
        "created_at": p.paid_at,
        "confirmed_at": p.confirmed_at,
        "voided_at": p.voided_at,
        "settlement_id": None,
    }


@dataclass(frozen=True)
class Load:
    biller_ids: list[str]
    confirmed: int
    pending: int
    voided: int
    expected: dict[str, Expected]
    build_seconds: float  # making the rows in Python (inside the copy loop)
    seconds: float  # billers, plans, bills and payments, committed
    analyze_seconds: float
    sizes: str

    @property
    def analyze(self) -> str:
        if self.analyze_seconds < 0:
            return "no ANALYZE (SQLite)"
        return f"VACUUM ANALYZE {self.analyze_seconds:.1f}s"


def load(engine: Engine, n_billers: int, n_confirmed: int, issuing: Issuing) -> Load:
    """Billers with their plan, then bills and payments with copy_rows, one transaction."""
    rng = random.Random(SEED)
    t0 = time.perf_counter()
    biller_ids = [f"b{k:05d}" for k in range(1, n_billers + 1)]
    codes: dict[str, str] = {}
    with step("load: billers"), engine.begin() as conn:
        for biller_id in biller_ids:
            biller = create_biller(
                conn,
                biller_id=biller_id,
                name=f"Bench {biller_id}",
                kana="ﾍﾞﾝﾁ",
                channels=frozenset(CHANNELS),
                payeasy_institution_code=None,
                now=BILLS_CREATED,
            )
            codes[biller_id] = biller.code
            save_plan(conn, biller_id, PLAN, BILLS_CREATED)
    t_build = time.perf_counter()
    pays = month(n_billers, n_confirmed, rng)
    build = time.perf_counter() - t_build
    expected = {b: Expected() for b in biller_ids}
    counts = dict.fromkeys(PaymentStatus, 0)
    with step("load: bills and payments"), engine.begin() as conn:
        for start in range(0, len(pays), CHUNK):
            t_build = time.perf_counter()
            bill_rows, payment_rows = [], []
            for p in pays[start : start + CHUNK]:
                biller_id = biller_ids[p.biller]
                bill = bill_row(p, biller_id, codes[biller_id], issuing)
                bill_rows.append(bill)
                payment_rows.append(payment_row(p, biller_id, codes[biller_id], bill))
                counts[p.status] += 1
                e = expected[biller_id]
                if p.status is PaymentStatus.CONFIRMED:
                    e.collected[p.channel][0] += 1
                    e.collected[p.channel][1] += p.amount
                    e.stamped += p.stamped
                elif p.status is PaymentStatus.VOIDED:
                    e.uncollected[p.channel] += 1  # due in November, no live payment
            build += time.perf_counter() - t_build
            copy_rows(conn, bills, bill_rows)
            copy_rows(conn, payments, payment_rows)
            done = start + len(bill_rows)
            if done % 200_000 < CHUNK or done == len(pays):
                say(f"  {done:,} bills and payments sent ({time.perf_counter() - t0:.1f}s)")
        if conn.dialect.name == "postgresql":
            conn.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('bills', 'id'),"
                    " (SELECT max(id) FROM bills))"
                )
            )
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    sizes, analyze_seconds = "", -1.0
    if engine.dialect.name == "sqlite" and engine.url.database:
        sizes = f"database file {Path(engine.url.database).stat().st_size / 2**20:.0f} MiB"
    if engine.dialect.name == "postgresql":
        with step("load: VACUUM ANALYZE"), engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("VACUUM ANALYZE"))
            size = "SELECT pg_size_pretty(pg_total_relation_size(CAST(:t AS regclass)))"
            sizes = ", ".join(
                f"{t} {conn.execute(text(size), {'t': t}).scalar_one()}"
                for t in ("payments", "bills")
            )
        analyze_seconds = time.perf_counter() - t1
    return Load(
        biller_ids,
        counts[PaymentStatus.CONFIRMED],
        counts[PaymentStatus.PENDING],
        counts[PaymentStatus.VOIDED],
        expected,
        build,
        seconds,
        analyze_seconds,
        sizes,
    )


def check_sample(engine: Engine) -> None:
    """A few stored CVS payments read back: the barcode parses and digit 37 is its stamp."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(payments.c.event_key, bills.c.stamp, bills.c.amount)
            .join(bills, bills.c.id == payments.c.bill_id)
            .where(payments.c.channel == Channel.CVS.value)
            .order_by(bills.c.stamp.desc(), payments.c.bill_id)
            .limit(20)
        ).all()
    for key, stamp, amount in rows:
        code = barcode.parse(key[:44])
        if code.stamp != stamp or key[STAMP_DIGIT - 1] != ("1" if stamp else "0"):
            raise BenchFailure(f"payment {key}: stamp digit vs the bill's stamp {stamp}")
        if code.amount != amount or (stamp and amount < 50_000):
            raise BenchFailure(f"payment {key}: barcode amount vs the bill's {amount}")


# --- the baseline --------------------------------------------------------------------------------


def baseline_query() -> Any:
    c = payments.c
    stamped = case(
        (and_(c.channel == Channel.CVS.value, func.substr(c.event_key, STAMP_DIGIT, 1) == "1"), 1),
        else_=0,
    )
    return (
        select(c.biller_id, c.channel, func.count(), func.sum(c.amount), func.sum(stamped))
        .where(c.status == PaymentStatus.CONFIRMED.value, c.confirmed_at < UNTIL)
        .group_by(c.biller_id, c.channel)
    )


Groups = dict[tuple[str, str], tuple[int, int, int]]  # (biller, channel) -> count, yen, stamps


def baseline(engine: Engine, runs: int, serial: bool = False) -> tuple[list[float], Groups]:
    """The aggregate query ``runs`` times, each in its own transaction; with ``serial``
    (PostgreSQL), in one backend: ``max_parallel_workers_per_gather = 0``."""
    stmt = baseline_query()
    times: list[float] = []
    groups: Groups = {}
    with engine.connect() as conn:
        for _ in range(runs):
            if serial:
                conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
            t0 = time.perf_counter()
            with step("baseline"):
                rows = conn.execute(stmt).all()
            times.append(time.perf_counter() - t0)
            groups = {(b, ch): (int(n), int(s), int(st)) for b, ch, n, s, st in rows}
            conn.rollback()
    return times, groups


def baseline_plan(engine: Engine) -> str:
    """PostgreSQL: the plan's nodes, top down (``Gather`` means parallel workers)."""
    if engine.dialect.name != "postgresql":
        return "SQLite: one thread"
    compiled = baseline_query().compile(dialect=engine.dialect)
    with engine.connect() as conn:
        doc = conn.exec_driver_sql(
            f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params
        ).scalar_one()
    nodes: list[str] = []
    node = (json.loads(doc) if isinstance(doc, str) else doc)[0]["Plan"]
    while node is not None:
        workers = node.get("Workers Planned")
        nodes.append(node["Node Type"] + (f" ({workers} workers)" if workers else ""))
        node = (node.get("Plans") or [None])[0]
    return " > ".join(nodes)


# --- the settlement run -------------------------------------------------------------------------


_VERB = re.compile(r"\s*(SELECT|UPDATE|INSERT INTO|DELETE FROM)\b", re.I)
_FROM = re.compile(r"\bFROM\s+\"?(\w+)", re.I)
_TABLE = re.compile(r"\s*(?:UPDATE|INSERT INTO|DELETE FROM)\s+\"?(\w+)", re.I)


def statement_label(statement: str) -> str:
    """``UPDATE payments``, ``SELECT bills``...: what a statement is, for the time split."""
    verb = _VERB.match(statement)
    if verb is None:
        return statement.split(None, 1)[0].upper() if statement.strip() else "?"
    name = verb.group(1).split()[0].upper()
    found = _FROM.search(statement) if name == "SELECT" else _TABLE.match(statement)
    return f"{name} {found.group(1) if found else '?'}"


class StatementClock:
    """Wall time per kind of statement (driver execute), from SQLAlchemy's cursor events."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seconds: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self._lock = threading.Lock()
        self.on = False

    def __enter__(self) -> StatementClock:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        self.on = True
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)
        self.on = False

    def _before(self, conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        spent = time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())
        label = statement_label(statement)
        with self._lock:
            self.seconds[label] = self.seconds.get(label, 0.0) + spent
            self.count[label] = self.count.get(label, 0) + 1

    def split(self, total: float) -> str:
        """The kinds that took 1 % of ``total`` or more, the rest summed."""
        parts = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        big = [(k, v) for k, v in parts if v >= total / 100]
        rest = [v for k, v in parts if v < total / 100]
        out = [f"{k} {v:.2f}s ({100 * v / total:.0f}%, {self.count[k]}×)" for k, v in big]
        if rest:
            out.append(f"{len(rest)} other kinds {sum(rest):.2f}s")
        return (
            ", ".join(out) + f"; all statements {sum(self.seconds.values()):.2f}s of {total:.2f}s"
        )


@dataclass(frozen=True)
class Run:
    timing: Timing
    made: int
    payments: int  # paid out by the settlements made
    in_settle_next: float  # summed over billers: the function, without BEGIN and COMMIT
    statements: str


def settle_all(engine: Engine, biller_ids: Sequence[str], workers: int, name: str) -> Run:
    """``settle_next`` for every biller, one transaction each, ``workers`` threads taking the
    next biller in turn; per-statement time from the driver's side."""
    made: list[Any] = [None] * len(biller_ids)
    inside = [0.0] * len(biller_ids)
    progress = {"done": 0}
    lock = threading.Lock()
    tenth = max(1, len(biller_ids) // 10)

    @contextmanager
    def session() -> Iterator[Step]:
        def one(i: int, warm: bool) -> None:
            with step(f"{name}: settle_next({biller_ids[i]})"), engine.begin() as conn:
                t0 = time.perf_counter()
                made[i] = settle_next(
                    conn,
                    biller_ids[i],
                    TODAY,
                    NOW,
                    ids.new_id,
                    settlement_json,
                )
                inside[i] = time.perf_counter() - t0
            with lock:
                progress["done"] += 1
                if name == "settle" and progress["done"] % tenth == 0:
                    say(f"  {name}: {progress['done']} of {len(biller_ids)} billers")

        yield one

    with StatementClock(engine) as clock:
        timing = run_concurrently(workers, 0, len(biller_ids), session)
    done = [s for s in made if s is not None]
    return Run(
        timing,
        len(done),
        sum(s.totals.payments_count for s in done),
        sum(inside),
        clock.split(sum(timing.latencies)),
    )


# --- checks --------------------------------------------------------------------------------------


def check_stored(engine: Engine, loaded: Load, groups: Groups) -> list[str]:
    n = len(loaded.biller_ids)
    c, s = payments.c, settlements.c
    with engine.connect() as conn:
        rows = {r.biller_id: r for r in conn.execute(select(settlements))}
        if (
            set(rows) != set(loaded.biller_ids)
            or conn.execute(select(func.count()).select_from(settlements)).scalar_one() != n
        ):
            raise BenchFailure(f"{len(rows)} billers settled, expected one settlement each of {n}")
        for biller_id, r in rows.items():
            period = (r.period_start, r.period_end, r.cycle, r.payout_date)
            if period != (PERIOD_START, PERIOD_END, Cycle.MONTHLY.value, PAYOUT_DATE):
                raise BenchFailure(f"{r.settlement_id} of {biller_id}: period {period}")
            want = loaded.expected[biller_id].totals()
            got = {k: int(getattr(r, k)) for k in want}
            if got != want:
                raise BenchFailure(f"{r.settlement_id} of {biller_id}: {got}, expected {want}")
        lines = select(
            settlement_lines.c.settlement_id,
            func.sum(settlement_lines.c.amount).label("total"),
        ).group_by(settlement_lines.c.settlement_id)
        sums = {k: int(v) for k, v in conn.execute(lines)}
        bad = [r.settlement_id for r in rows.values() if sums.get(r.settlement_id, 0) != r.payout]
        if bad:
            raise BenchFailure(f"{len(bad)} settlements whose lines do not add up, e.g. {bad[0]}")
        # Each settlement's collection lines are the baseline's groups of its biller.
        collection = {
            (biller_id, ch): (int(q), int(a))
            for biller_id, ch, q, a in conn.execute(
                select(
                    settlements.c.biller_id,
                    settlement_lines.c.channel,
                    settlement_lines.c.quantity,
                    settlement_lines.c.amount,
                )
                .join(settlements, s.settlement_id == settlement_lines.c.settlement_id)
                .where(settlement_lines.c.kind == "collection")
            )
        }
        if collection != {k: (v[0], v[1]) for k, v in groups.items()}:
            raise BenchFailure(
                "collection lines differ from the baseline's (biller, channel) groups"
            )
        for biller_id, r in rows.items():
            stamps = sum(v[2] for (b, _), v in groups.items() if b == biller_id)
            if r.stamp_count != stamps:
                raise BenchFailure(f"{biller_id}: {r.stamp_count} stamps, baseline {stamps}")
        total_count = sum(int(r.payments_count) for r in rows.values())
        total_yen = sum(int(r.collected) for r in rows.values())
        base_count = sum(v[0] for v in groups.values())
        base_yen = sum(v[1] for v in groups.values())
        if (total_count, total_yen) != (base_count, base_yen) or base_count != loaded.confirmed:
            raise BenchFailure(
                f"settled {total_count} payments, {total_yen} yen; baseline {base_count},"
                f" {base_yen} yen; loaded {loaded.confirmed} confirmed"
            )
        by_status = dict(
            conn.execute(
                select(c.status, func.count())
                .where(c.settlement_id.is_not(None))
                .group_by(c.status)
            ).all()
        )
        unclaimed = conn.execute(
            select(func.count()).where(
                c.status == PaymentStatus.CONFIRMED.value, c.settlement_id.is_(None)
            )
        ).scalar_one()
        if by_status != {PaymentStatus.CONFIRMED.value: loaded.confirmed} or unclaimed:
            raise BenchFailure(
                f"payments with a settlement by status {by_status}, {unclaimed} confirmed"
                f" unclaimed; expected {loaded.confirmed} confirmed, none pending or voided"
            )
        foreign = conn.execute(
            select(func.count())
            .select_from(payments.join(settlements, s.settlement_id == c.settlement_id))
            .where(s.biller_id != c.biller_id)
        ).scalar_one()
        if foreign:
            raise BenchFailure(f"{foreign} payments claimed by another biller's settlement")
        created = conn.execute(
            select(func.count()).where(events.c.type == "settlement.created")
        ).scalar_one()
        if created != n:
            raise BenchFailure(f"{created} settlement.created events for {n} settlements")
        payout = sum(int(r.payout) for r in rows.values())
        fees = sum(int(r.fees) for r in rows.values())
    return [
        f"{n} settlements, one per biller, 2026-11-01..30, payout {PAYOUT_DATE}; each one's"
        " lines add up to its payout; counts, yen and stamps = the baseline's per biller and"
        " channel; fees, tax, stamp duty and payout = the plan's arithmetic",
        f"{total_count:,} payments, {total_yen:,} yen collected = the baseline; fees"
        f" {fees:,} yen; payout {payout:,} yen; {n} settlement.created events",
        f"every confirmed payment claimed by its biller's settlement; the {loaded.pending:,}"
        f" pending and {loaded.voided:,} voided ones unclaimed",
    ]


@dataclass(frozen=True)
class Wal:
    """PostgreSQL: where the WAL is and how many checkpoints the server has made (all its
    databases: other work on the server counts too)."""

    lsn: str
    checkpoints: int

    @classmethod
    def read(cls, engine: Engine) -> Wal | None:
        if engine.dialect.name != "postgresql":
            return None
        with engine.connect() as conn:
            lsn = conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar_one()
            checkpoints = conn.execute(
                text("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
            ).scalar_one()
        return cls(str(lsn), int(checkpoints))

    @staticmethod
    def between(engine: Engine, before: Wal | None, after: Wal | None) -> tuple[int, int] | None:
        """(WAL bytes, checkpoints) from ``before`` to ``after``."""
        if before is None or after is None:
            return None
        with engine.connect() as conn:
            written = conn.execute(
                text("SELECT pg_wal_lsn_diff(CAST(:a AS pg_lsn), CAST(:b AS pg_lsn))"),
                {"a": after.lsn, "b": before.lsn},
            ).scalar_one()
        return int(written), after.checkpoints - before.checkpoints


def count_rows(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(settlements)).scalar_one(),
            conn.execute(select(func.count()).select_from(events)).scalar_one(),
            conn.execute(
                select(func.count()).where(payments.c.settlement_id.is_not(None))
            ).scalar_one(),
        )


# --- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    backend: str
    workers: int
    loaded: Load
    baseline: list[float]
    baseline_plan: str
    baseline_serial: list[float]  # PostgreSQL: max_parallel_workers_per_gather = 0
    settle: Run
    again: Run
    wal: tuple[int, int] | None  # PostgreSQL: WAL bytes and checkpoints during the settlement
    durability: str
    checked: list[str]
    code: str

    @property
    def baseline_best(self) -> float:
        return min(self.baseline)

    def figures(self) -> dict[str, Any]:
        t = self.settle.timing
        return {
            "bench": "settlement",
            "backend": self.backend,
            "billers": len(self.loaded.biller_ids),
            "payments": self.loaded.confirmed,
            "pending": self.loaded.pending,
            "voided": self.loaded.voided,
            "workers": self.workers,
            "load_s": round(self.loaded.seconds + max(0.0, self.loaded.analyze_seconds), 1),
            "baseline_s": round(self.baseline_best, 3),
            "baseline_serial_s": (
                round(min(self.baseline_serial), 3) if self.baseline_serial else None
            ),
            "settle_s": round(t.seconds, 3),
            "payments_per_s": round(self.loaded.confirmed / t.seconds, 1),
            "settlements_per_s": round(t.rate, 2),
            "ratio_settle_baseline": round(t.seconds / self.baseline_best, 1),
            "settle_p50_ms": round(t.percentile_ms(50), 2),
            "settle_p99_ms": round(t.percentile_ms(99), 2),
            "settle_max_ms": round(t.percentile_ms(100), 2),
            "again_s": round(self.again.timing.seconds, 3),
            "wal_bytes_per_payment": (
                None if self.wal is None else round(self.wal[0] / self.loaded.confirmed)
            ),
            "checkpoints": None if self.wal is None else self.wal[1],
            "code": self.code,
        }


def run(args: argparse.Namespace, db: ScratchDatabase, workdir: Path) -> Result:
    engine = create_db_engine(db.url, max(1, args.workers))
    try:
        with step("migrate"):
            migrate(engine)
        say(
            f"load on {db.backend}: {args.billers} billers with a fee plan, {args.payments:,}"
            " confirmed payments + 2 % pending + 1 % voided, a bill each (not timed)"
        )
        loaded = load(engine, args.billers, args.payments, Issuing.example())
        check_sample(engine)
        say(
            f"loaded in {loaded.seconds:.1f}s (rows built {loaded.build_seconds:.1f}s) +"
            f" {loaded.analyze}; {loaded.sizes}"
        )

        say(f"baseline: one aggregate query, best of {args.baseline_runs}")
        times, groups = baseline(engine, args.baseline_runs)
        plan = baseline_plan(engine)
        say(f"baseline: {', '.join(f'{t:.3f}s' for t in times)}; {len(groups)} groups; {plan}")
        serial: list[float] = []
        if db.backend == "postgresql":
            serial, serial_groups = baseline(engine, args.baseline_runs, serial=True)
            if serial_groups != groups:
                raise BenchFailure("the baseline in one backend gave other groups")
            say(f"baseline in one backend: {', '.join(f'{t:.3f}s' for t in serial)}")

        say(f"settlement: settle_next for {args.billers} billers on {args.workers} thread(s)")
        wal_before = Wal.read(engine)
        settle = settle_all(engine, loaded.biller_ids, args.workers, "settle")
        wal = Wal.between(engine, wal_before, Wal.read(engine))
        if settle.made != args.billers:
            raise BenchFailure(f"{settle.made} settlements made for {args.billers} billers")
        say(f"settlement: {settle.timing.seconds:.2f}s; {settle.statements}")

        checked = check_stored(engine, loaded, groups)
        for line in checked:
            say(f"checked: {line}")
        before = count_rows(engine)
        say("again: settle_next for every biller once more (must create nothing)")
        again = settle_all(engine, loaded.biller_ids, args.workers, "again")
        after = count_rows(engine)
        if again.made or after != before:
            raise BenchFailure(
                f"the second pass made {again.made} settlements; (settlements, events, claimed"
                f" payments) {before} -> {after}"
            )
        checked.append(f"a second pass over the {args.billers} billers created nothing")
        durability = durability_settings(db.url)
    finally:
        engine.dispose()
    return Result(
        db.backend,
        args.workers,
        loaded,
        times,
        plan,
        serial,
        settle,
        again,
        wal,
        durability,
        checked,
        code_state(),
    )


def report(r: Result) -> str:
    f = r.figures()
    t = r.settle.timing
    ld = r.loaded
    n = len(ld.biller_ids)
    sql = " ".join(str(baseline_query().compile(compile_kwargs={"literal_binds": True})).split())
    lines = [
        "",
        f"settlement: {ld.confirmed:,} confirmed payments settled across {n:,} billers"
        f" (settle_next, one transaction each) vs one aggregate query over the same rows",
        f"  database:   {r.durability}",
        f"  code:       {r.code}",
        f"  load:       {n} billers + fee plans (create_biller, save_plan), {ld.confirmed:,}"
        f" confirmed + {ld.pending:,} pending + {ld.voided:,} voided payments and as many bills"
        f" (copy_rows), {ld.seconds:.1f}s + {ld.analyze}, not timed;"
        f" {ld.sizes}",
        f"  baseline:   {sql}",
        f"              runs {', '.join(f'{x:.3f}s' for x in r.baseline)}: best"
        f" {r.baseline_best:.3f}s; plan {r.baseline_plan}",
        *(
            [
                "              in one backend (max_parallel_workers_per_gather = 0): runs"
                f" {', '.join(f'{x:.3f}s' for x in r.baseline_serial)}: best"
                f" {min(r.baseline_serial):.3f}s (settle/that"
                f" {r.settle.timing.seconds / min(r.baseline_serial):.1f})"
            ]
            if r.baseline_serial
            else []
        ),
        f"  settlement: settle_next(today=2026-12-01) per biller in engine.begin(), on"
        f" {r.workers} thread(s): {t.seconds:.2f}s; per biller p50 {t.percentile_ms(50):.1f} ms,"
        f" p99 {t.percentile_ms(99):.1f} ms, max {t.percentile_ms(100):.1f} ms; in settle_next"
        f" {r.settle.in_settle_next:.2f}s, BEGIN/COMMIT and pool the rest",
        f"  statements: {r.settle.statements}",
        *(
            []
            if r.wal is None
            else [
                f"  WAL:        {r.wal[0] / 2**30:.2f} GiB written during the settlement"
                f" ({r.wal[0] / ld.confirmed / 1024:.1f} KiB per payment), {r.wal[1]}"
                " checkpoints (server-wide)"
            ]
        ),
        f"  again:      {r.again.timing.seconds:.2f}s for {n} billers, nothing created",
        *(f"  checked:    {c}" for c in r.checked),
        "",
        *_table(
            [
                ("rows", f"{ld.confirmed:,}"),
                ("billers", f"{n:,}"),
                ("workers", str(r.workers)),
                ("baseline s", f"{r.baseline_best:.3f}"),
                ("settle s", f"{t.seconds:.2f}"),
                ("payments/s", f"{f['payments_per_s']:,.0f}"),
                ("settlements/s", f"{t.rate:.1f}"),
                ("settle/baseline", f"{f['ratio_settle_baseline']:.1f}"),
            ]
        ),
        "",
        json.dumps(f, ensure_ascii=False),
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/settlement.py", description=__doc__.strip().splitlines()[0]
    )
    p.add_argument(
        "--database-url",
        default=DEFAULT_URL,
        help="a postgresql+psycopg:// URL: the benchmark creates and drops its own database"
        " gateway_bench_<pid> on that server (default %(default)s); any sqlite:// URL: a fresh"
        " SQLite file in a temporary directory (the URL's path is not used)",
    )
    p.add_argument("--billers", type=int, default=1000, help="billers (default 1000)")
    p.add_argument(
        "--payments", type=int, default=1_000_000, help="confirmed payments (default 1000000)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="threads settling billers at once (default: as the job, [settlement] workers = 2"
        " on PostgreSQL, 1 on SQLite)",
    )
    p.add_argument("--baseline-runs", type=int, default=3, help="best of (default 3)")
    args = p.parse_args(argv)
    if not 1 <= args.billers <= 99_999:
        p.error("--billers must be 1 to 99,999 (biller codes have 5 digits)")
    if not 1 <= args.payments <= 9_000_000:
        p.error("--payments must be 1 to 9,000,000 (bill numbers have 7 digits)")
    if (args.workers is not None and args.workers < 1) or args.baseline_runs < 1:
        p.error("--workers and --baseline-runs must be at least 1")
    sqlite = make_url(args.database_url).get_backend_name() == "sqlite"
    if args.workers is None:  # gateway.money.settlement.SettlementJob: one worker on SQLite
        args.workers = 1 if sqlite else 2
    if sqlite:
        args.database_url = None  # _daemon.scratch_database: SQLite in the temporary directory
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main("settlement", parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
