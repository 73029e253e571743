"""Zengin account-transfer files: records per second written and loaded, against raw inserts.

    .venv/bin/python bench/zengin.py [--database-url URL] [--records 100000]
                                     [--mix 0=95,1=3,2=1,3=1] [--seed 1]

No daemon: the gateway's own functions, called as ``gateway-admin`` calls them, on a scratch
database (SQLite in a temporary directory, or ``gateway_bench_<pid>`` on a PostgreSQL server,
created and dropped). Set-up, not timed: the example config with this database, ``migrate``, one
biller with the transfer channel and a 委託者 contract, ``N`` active mandates and ``N`` open
transfer bills due on a debit date ``D`` (3 bank business days ahead), bulk-inserted with
``executemany`` in one transaction. Then:

1. request (timed): ``prepare_requests``, ``stage_pending`` and ``publish_staged`` for ``D`` in
   three transactions, as ``gateway-admin zengin request`` does: one file of ``N`` debits into
   ``zengin.outbox`` (staged, fsynced, renamed), checked by parsing it back;
2. raw items: the ``zengin_request_items`` rows it stored, read back and inserted again into an
   empty copy of the table (same columns, keys, unique constraints and foreign keys) with one
   ``executemany`` in one transaction;
3. the simulated bank (``simulators.zengin``, not timed) answers with a result file (``--mix``);
4. result (timed): read, ``parse_file`` and ``apply_result`` in one transaction, as
   ``gateway-admin import zengin-result`` does; checked against the bank's own totals;
5. again (timed): the same file a second time, which must change nothing (the dedup path);
6. raw result rows: the ``collection_messages`` and ``payments`` rows the load wrote, inserted
   again into empty copies of those tables, one ``executemany`` each, in one transaction.

On PostgreSQL, ``ANALYZE`` runs (untimed) before each timed phase and each raw insert, as
autovacuum would have by the time real files are written or loaded. A database error in the
gateway's code (a driver limit, say) fails the run with the driver's message and the step.

Each timed rate is printed next to its raw rate of the same run and the ratio of the two. Prints
a table and, last, one JSON line; exits 1 when a check fails. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

from _daemon import (
    BILLER_ID,
    EXAMPLE_CONFIG,
    BenchFailure,
    ScratchDatabase,
    add_database_url,
    bench_main,
    durability_settings,
    say,
    set_toml_values,
    toml_string,
)
from bills_api import stored_page_token
from cvs_ingest import code_state
from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    MetaData,
    Table,
    UniqueConstraint,
    func,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from gateway import calendar
from gateway.app.admin.commands import _ingest
from gateway.billing.mandates import bank_names
from gateway.config import Config, ZenginConfig, load_config
from gateway.errors import FileErrors
from gateway.ingest import Ingest
from gateway.mappers.zengin.mapper import MandateAction, ZenginFile, mandate_action, parse_file
from gateway.model import JST, BankAccount, BillStatus, Channel, Consignor, PaymentStatus
from gateway.networks.zengin import (
    WrittenFile,
    apply_result,
    check_debit_date,
    prepare_requests,
    publish_staged,
    stage_pending,
)
from gateway.store import create_db_engine
from gateway.store.billers import create_biller
from gateway.store.migrate import migrate
from gateway.store.schema import (
    bills,
    collection_messages,
    events,
    mandates,
    payments,
    zengin_request_items,
    zengin_requests,
)
from gateway.store.zengin import save_consignor
from simulators.zengin import SimulatedBank, Totals, parse_mix

T = TypeVar("T")

CONSIGNOR_CODE = "1234567890"  # 委託者コード
BANK, BRANCH = "0005", "135"  # in the Zengin master (the consignor's and every customer's)
HOLDER_KANA = "ﾔﾏﾀﾞ ﾀﾛｳ"
LEAD_DAYS = 3  # the debit date: this many bank business days after today (JST)
DEFAULT_MIX = "0=95,1=3,2=1,3=1"
MAX_RECORDS = 999_999  # 合計件数 has 6 digits


def amount_of(i: int) -> int:
    """The yen of bill ``i``: 1,000 to 40,999, varied."""
    return 1000 + (i * 37) % 40_000


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Timed:
    """How long one step took and how many records it handled."""

    seconds: float
    count: int

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


@contextmanager
def step(name: str) -> Iterator[None]:
    """A database error in ``name`` fails the run with the driver's message, not the
    statement (an IN list of the gateway's can be megabytes of parameters); so does a file
    the gateway refuses."""
    try:
        yield
    except DBAPIError as e:
        raise BenchFailure(f"{name}: {type(e.orig).__name__}: {str(e.orig)[:500]}") from None
    except FileErrors as e:
        errors = "; ".join(str(x) for x in e.errors[:5])
        raise BenchFailure(f"{name}: {len(e.errors)} error(s): {errors}") from None


def timed(name: str, fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and the seconds it took; a database error fails the run, naming ``name``."""
    with step(name):
        t0 = time.perf_counter()
        result = fn()
        return result, time.perf_counter() - t0


# --- set-up ----------------------------------------------------------------------------------


def write_config(workdir: Path, database_url: str) -> Config:
    """The example config with this database; [zengin] outbox and inbox (relative paths) land
    under ``workdir``."""
    example = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    path = workdir / "gateway.toml"
    path.write_text(
        set_toml_values(example, {("database", "url"): toml_string(database_url)}),
        encoding="utf-8",
    )
    config = load_config(path)
    if config.zengin is None:
        raise BenchFailure(f"{EXAMPLE_CONFIG} has no [zengin] section: update bench/zengin.py")
    return config


def analyze(engine: Engine) -> None:
    """PostgreSQL: fresh statistics, as autovacuum would have by the time the real files are
    written or loaded (days after the bills, days after the request). SQLite: nothing."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


@dataclass(frozen=True)
class Debits:
    """What the set-up put in the store: ``count`` bills to debit on ``debit_date``."""

    debit_date: date
    count: int
    total: int
    seconds: float


def set_up(engine: Engine, config: Config, n: int, debit_date: date) -> Debits:
    """Migrate; one biller (transfer channel) with its consignor contract; ``n`` active mandates
    C0000001... and ``n`` open transfer bills of those customers, due on ``debit_date``, each
    with the ``page_token`` the API would store (``BillService.stored_token`` under the
    config's ``[secrets] key``)."""
    t0 = time.perf_counter()
    page_token = stored_page_token(config)
    migrate(engine)
    now = utc_now()
    bank_name, branch_name = bank_names(BANK, BRANCH)
    with engine.begin() as conn:
        create_biller(
            conn,
            biller_id=BILLER_ID,
            name="Bench",
            kana="ﾍﾞﾝﾁ",
            channels=frozenset({Channel.TRANSFER}),
            payeasy_institution_code=None,
            now=now,
        )
        account = BankAccount(BANK, bank_name, BRANCH, branch_name, "1", "1234567")
        save_consignor(conn, Consignor(BILLER_ID, CONSIGNOR_CODE, "ﾍﾞﾝﾁ", account), now)
    mandate_rows: list[dict[str, Any]] = []
    bill_rows: list[dict[str, Any]] = []
    for i in range(1, n + 1):
        customer_no = f"C{i:07d}"
        bill_no = f"Z-{i:07d}"
        mandate_rows.append(
            {
                "biller_id": BILLER_ID,
                "customer_no": customer_no,
                "bank_code": BANK,
                "bank_name": bank_name,
                "branch_code": BRANCH,
                "branch_name": branch_name,
                "account_type": "1",
                "account_number": f"{i:07d}",
                "holder_kana": HOLDER_KANA,
                "status": "active",
                "status_reason": None,
                "new_code": "1",
                "requested": False,
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
        bill_rows.append(
            {
                "biller_id": BILLER_ID,
                "bill_no": bill_no,
                "amount": amount_of(i),
                "due_date": debit_date,
                "channels": Channel.TRANSFER.value,
                "customer_no": customer_no,
                "customer_name": "山田 太郎",
                "customer_kana": "ヤマダ タロウ",
                "customer_email": None,
                "customer_phone": None,
                "taxable": False,
                "tax_amount": 0,
                "description": None,
                "status": BillStatus.OPEN.value,
                "version": 1,
                "reissue": 0,
                "double_paid": False,
                "late": False,
                "barcode": None,
                "cvs_bill_key": None,
                "stamp": False,
                "payeasy_institution_code": None,
                "payeasy_customer_number": None,
                "payeasy_confirmation_number": None,
                "page_token": page_token(BILLER_ID, bill_no),
                "fingerprint": hashlib.sha256(bill_no.encode()).hexdigest(),
                "created_at": now,
                "updated_at": now,
            }
        )
    with engine.begin() as conn:
        conn.execute(mandates.insert(), mandate_rows)
        conn.execute(bills.insert(), bill_rows)
    analyze(engine)
    total = sum(r["amount"] for r in bill_rows)
    return Debits(debit_date, n, total, time.perf_counter() - t0)


# --- raw inserts into empty copies of the gateway's tables -----------------------------------


def scratch_copy(table: Table, name: str) -> Table:
    """An empty table ``name`` like ``table``: the same columns and types, primary key, unique
    constraints, indexes and foreign keys (to the gateway's own tables), so that a row costs
    what it costs there. Created in the database on :func:`raw_insert`."""
    columns = [
        Column(
            c.name,
            c.type,
            *(ForeignKey(fk.column) for fk in c.foreign_keys),
            primary_key=c.primary_key,
            nullable=c.nullable,
            autoincrement=c.autoincrement,
        )
        for c in table.columns
    ]
    uniques = [
        UniqueConstraint(*(c.name for c in u.columns), name=f"uq_{name}_{k}")
        for k, u in enumerate(u for u in table.constraints if isinstance(u, UniqueConstraint))
    ]
    indexes = [
        Index(f"ix_{name}_{k}", *(c.name for c in ix.columns)) for k, ix in enumerate(table.indexes)
    ]
    return Table(name, MetaData(), *columns, *uniques, *indexes)


def read_rows(engine: Engine, table: Table, without: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every row of ``table`` as inserted (columns in ``without`` left out: autoincrement ids)."""
    cols = [c for c in table.columns if c.name not in without]
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(*cols)).mappings()]


def raw_insert(engine: Engine, batches: Sequence[tuple[Table, list[dict[str, Any]]]]) -> float:
    """Create the copies, then insert each one's rows with one executemany, all in one
    transaction; the seconds of that transaction (commit included)."""
    with engine.begin() as conn:
        for table, _ in batches:
            table.create(conn)
    analyze(engine)

    def insert() -> None:
        with engine.begin() as conn:
            for table, rows in batches:
                conn.execute(table.insert(), rows)

    _, seconds = timed("raw", insert)
    with engine.connect() as conn:
        for table, rows in batches:
            stored = conn.execute(select(func.count()).select_from(table)).scalar_one()
            if stored != len(rows):
                raise BenchFailure(f"raw: {stored} rows in {table.name}, expected {len(rows)}")
    return seconds


# --- the request file ------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestPhase:
    prepare_seconds: float
    write_seconds: float
    file: Path
    size: int
    records: int

    @property
    def timed(self) -> Timed:
        return Timed(self.prepare_seconds + self.write_seconds, self.records)


def request_file(engine: Engine, config: ZenginConfig, debits: Debits) -> RequestPhase:
    """``gateway-admin zengin request --date D``: choose and record, then write and mark."""
    now = utc_now()
    check_debit_date(debits.debit_date, now.astimezone(JST).date())

    def prepare() -> None:
        with engine.begin() as conn:
            prepare_requests(conn, debits.debit_date, now, BILLER_ID)

    def write() -> list[WrittenFile]:
        with engine.begin() as conn:
            staged = stage_pending(conn, config)
        with engine.begin() as conn:
            return publish_staged(conn, config, staged, now)

    _, prepare_seconds = timed("request: prepare_requests", prepare)
    written, write_seconds = timed("request: stage + publish", write)
    if len(written) != 1:
        raise BenchFailure(f"request: {len(written)} files written, expected 1")
    (w,) = written
    if (w.records, w.total, w.debit_date) != (debits.count, debits.total, debits.debit_date):
        raise BenchFailure(
            f"request: {w.records} debits, {w.total} yen for {w.debit_date}; expected"
            f" {debits.count}, {debits.total} yen for {debits.debit_date}"
        )
    path = Path(w.file)
    return RequestPhase(prepare_seconds, write_seconds, path, path.stat().st_size, w.records)


def check_request(engine: Engine, phase: RequestPhase, debits: Debits) -> str:
    """The file parses as a request of N debits and the right total; the store agrees."""
    parsed = parse_file(phase.file.read_bytes(), source=phase.file.name)
    amounts = [d.amount for d in parsed.debits]
    if parsed.is_result or len(amounts) != debits.count or sum(amounts) != debits.total:
        raise BenchFailure(
            f"{phase.file.name}: {len(amounts)} debits, {sum(amounts)} yen"
            f" (result: {parsed.is_result}); expected a request of {debits.count} debits,"
            f" {debits.total} yen"
        )
    if parsed.trailer.count != debits.count or parsed.trailer.total != debits.total:
        raise BenchFailure(f"{phase.file.name}: trailer {parsed.trailer}")
    if len({d.customer_number for d in parsed.debits}) != debits.count:
        raise BenchFailure(f"{phase.file.name}: a 顧客番号 appears twice")
    if parsed.header.debit_mmdd != f"{debits.debit_date:%m%d}":
        raise BenchFailure(f"{phase.file.name}: 引落日 {parsed.header.debit_mmdd}")
    with engine.connect() as conn:
        items = conn.execute(select(func.count()).select_from(zengin_request_items)).scalar_one()
        statuses = list(conn.execute(select(zengin_requests.c.status)).scalars())
        requested = conn.execute(
            select(func.count()).where(mandates.c.requested.is_(True), mandates.c.new_code == "0")
        ).scalar_one()
    if items != debits.count or statuses != ["written"] or requested != debits.count:
        raise BenchFailure(
            f"request: {items} items, requests {statuses}, {requested} mandates marked"
            f" requested; expected {debits.count} items, one written request"
        )
    return (
        f"{phase.file.name} parses: a request of {debits.count} debits, {debits.total} yen,"
        f" 引落日 {parsed.header.debit_mmdd}, distinct 顧客番号; {items} request items,"
        f" {requested} mandates marked requested"
    )


# --- the result file -------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One ``import zengin-result`` of the file: read + parse, then apply and commit."""

    parse_seconds: float
    apply_seconds: float
    summary: dict[str, Any]
    records: int

    @property
    def timed(self) -> Timed:
        return Timed(self.parse_seconds + self.apply_seconds, self.records)


def load_result(engine: Engine, ingest: Ingest, path: Path, name: str) -> Load:
    """``gateway-admin import zengin-result PATH``: parse, then apply in one transaction."""
    now = utc_now()

    def read_and_parse() -> ZenginFile:
        return parse_file(path.read_bytes(), source=path.name)

    parsed, parse_seconds = timed(f"{name}: parse_file", read_and_parse)

    def apply() -> dict[str, Any]:
        with engine.begin() as conn:
            return apply_result(conn, ingest, parsed, path.name, now, now.astimezone(JST).date())

    summary, apply_seconds = timed(f"{name}: apply_result", apply)
    return Load(parse_seconds, apply_seconds, summary, len(parsed.debits))


@dataclass(frozen=True)
class Stored:
    """What the transfer results left in the store."""

    messages: int
    confirmed: int
    confirmed_total: int
    payments: int
    events: int
    items_with_result: int

    @classmethod
    def read(cls, engine: Engine) -> Stored:
        with engine.connect() as conn:
            messages = conn.execute(
                select(func.count()).where(collection_messages.c.channel == "transfer")
            ).scalar_one()
            confirmed, confirmed_total = conn.execute(
                select(func.count(), func.coalesce(func.sum(payments.c.amount), 0)).where(
                    payments.c.channel == "transfer",
                    payments.c.status == PaymentStatus.CONFIRMED.value,
                )
            ).one()
            n_payments = conn.execute(select(func.count()).select_from(payments)).scalar_one()
            n_events = conn.execute(select(func.count()).select_from(events)).scalar_one()
            with_result = conn.execute(
                select(func.count()).where(zengin_request_items.c.result_code.is_not(None))
            ).scalar_one()
        return cls(
            int(messages),
            int(confirmed),
            int(confirmed_total),
            int(n_payments),
            int(n_events),
            int(with_result),
        )


def check_result(load: Load, stored: Stored, bank: SimulatedBank, n: int) -> str:
    """The store holds what the bank says it debited, one message per record; every mandate
    the bank answered 2, 3 or 4 for (each is debited once, all active) has changed."""
    s = load.summary
    codes = [e.result_code for e in bank.record()]
    to_change = sum(1 for c in codes if mandate_action(c) is not MandateAction.KEEP)
    if s["mandates_changed"] != to_change:
        raise BenchFailure(
            f"result: {s['mandates_changed']} mandates changed; the bank answered {to_change}"
            " debits with a code that suspends or invalidates the mandate"
        )
    totals = bank.totals()
    if totals.count != n:
        raise BenchFailure(f"the bank decided {totals.count} debits for {n} records")
    if s["outcomes"] != {"applied": n} or s["matched"] != n:
        raise BenchFailure(f"result: outcomes {s['outcomes']}, matched {s['matched']} of {n}")
    if (stored.confirmed, stored.confirmed_total) != (
        totals.debited_count,
        totals.debited_total,
    ):
        raise BenchFailure(
            f"result: {stored.confirmed} confirmed transfer payments, {stored.confirmed_total}"
            f" yen; the bank debited {totals.debited_count}, {totals.debited_total} yen"
        )
    if stored.payments != stored.confirmed:
        raise BenchFailure(f"result: {stored.payments} payments, {stored.confirmed} confirmed")
    if stored.messages != n or stored.items_with_result != n:
        raise BenchFailure(
            f"result: {stored.messages} collection_messages, {stored.items_with_result} request"
            f" items with a result code; expected {n} of each"
        )
    return (
        f"{n} results applied and matched; {stored.confirmed} confirmed transfer payments,"
        f" {stored.confirmed_total} yen = the bank's debited {totals.debited_count},"
        f" {totals.debited_total} yen; {stored.messages} collection_messages;"
        f" {stored.items_with_result} request items with their result; {stored.events} events;"
        f" {s['mandates_changed']} mandates suspended or invalidated = the bank's codes 2/3/4"
    )


def check_again(load: Load, before: Stored, after: Stored, n: int) -> str:
    if load.summary["outcomes"] != {"duplicate": n}:
        raise BenchFailure(f"the same file again: outcomes {load.summary['outcomes']}")
    if after != before:
        raise BenchFailure(f"the same file again changed the store: {before} -> {after}")
    return f"the same file again: {n} duplicates, nothing changed"


# --- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    backend: str
    records: int
    mix: str
    seed: int
    debit_date: date
    setup_seconds: float
    request: RequestPhase
    raw_items_seconds: float
    bank_seconds: float
    bank: Totals
    result_size: int
    result: Load
    again: Load
    raw_result_seconds: float
    raw_payments: int
    durability: str
    checked: list[str]
    code: str

    @property
    def raw_items(self) -> Timed:
        return Timed(self.raw_items_seconds, self.records)

    @property
    def raw_result(self) -> Timed:
        return Timed(self.raw_result_seconds, self.records)

    def figures(self) -> dict[str, Any]:
        req, res, dup = self.request.timed, self.result.timed, self.again.timed
        return {
            "bench": "zengin",
            "backend": self.backend,
            "records": self.records,
            "mix": self.mix,
            "request_records_per_s": round(req.rate, 1),
            "raw_items_rows_per_s": round(self.raw_items.rate, 1),
            "ratio_request_raw": round(req.rate / self.raw_items.rate, 3),
            "request_file_bytes": self.request.size,
            "result_records_per_s": round(res.rate, 1),
            "raw_result_records_per_s": round(self.raw_result.rate, 1),
            "ratio_result_raw": round(res.rate / self.raw_result.rate, 3),
            "duplicate_records_per_s": round(dup.rate, 1),
            "ratio_duplicate_raw": round(dup.rate / self.raw_result.rate, 3),
            "request_seconds": round(req.seconds, 3),
            "result_seconds": round(res.seconds, 3),
            "duplicate_seconds": round(dup.seconds, 3),
            "debited": self.bank.debited_count,
            "failed": self.bank.failed_count,
            "code": self.code,
        }


def run(args: argparse.Namespace, db: ScratchDatabase, workdir: Path) -> Result:
    n = args.records
    config = write_config(workdir, db.url)
    assert config.zengin is not None
    engine = create_db_engine(db.url, 1)  # as gateway-admin
    checked: list[str] = []
    try:
        today = utc_now().astimezone(JST).date()
        debit_date = calendar.add_business_days(today, LEAD_DAYS)
        say(f"set-up on {db.backend}: {n} mandates and open bills due {debit_date} (not timed)")
        with step("set-up"):
            debits = set_up(engine, config, n, debit_date)
        say(f"set-up done in {debits.seconds:.1f}s")

        say(f"request: prepare_requests + stage + publish for {debit_date}")
        request = request_file(engine, config.zengin, debits)
        checked.append(check_request(engine, request, debits))
        say(f"request: {n} records in {request.timed.seconds:.2f}s; {checked[-1]}")

        say("raw: the request items again into an empty copy of zengin_request_items")
        items = read_rows(engine, zengin_request_items)
        raw_items_seconds = raw_insert(
            engine, [(scratch_copy(zengin_request_items, "bench_raw_request_items"), items)]
        )
        del items

        say(f"the simulated bank answers (mix {args.mix}, seed {args.seed}; not timed)")
        t0 = time.perf_counter()
        bank = SimulatedBank(
            config.zengin.outbox,
            config.zengin.inbox,
            workdir / "bank",
            mix=parse_mix(args.mix),
            seed=args.seed,
        )
        answered = bank.process_once()
        bank_seconds = time.perf_counter() - t0
        if len(answered) != 1:
            raise BenchFailure(f"the bank wrote {len(answered)} result files, expected 1")
        (result_path,) = answered
        totals = bank.totals()
        say(f"bank: {totals} in {bank_seconds:.1f}s")

        analyze(engine)
        ingest = _ingest(config)
        say(f"result: parse_file + apply_result of {result_path.name}")
        result = load_result(engine, ingest, result_path, "result")
        stored = Stored.read(engine)
        checked.append(check_result(result, stored, bank, n))
        say(f"result: {n} records in {result.timed.seconds:.2f}s; {checked[-1]}")

        say("again: the same result file (every record a duplicate)")
        again = load_result(engine, ingest, result_path, "again")
        checked.append(check_again(again, stored, Stored.read(engine), n))
        say(f"again: {n} records in {again.timed.seconds:.2f}s")

        say("raw: the result's collection_messages and payments rows into empty copies")
        messages = read_rows(engine, collection_messages, without=("id",))
        paid = read_rows(engine, payments)
        raw_result_seconds = raw_insert(
            engine,
            [
                (scratch_copy(collection_messages, "bench_raw_collection_messages"), messages),
                (scratch_copy(payments, "bench_raw_payments"), paid),
            ],
        )
        durability = durability_settings(db.url)
    finally:
        engine.dispose()
    return Result(
        backend=db.backend,
        records=n,
        mix=args.mix,
        seed=args.seed,
        debit_date=debit_date,
        setup_seconds=debits.seconds,
        request=request,
        raw_items_seconds=raw_items_seconds,
        bank_seconds=bank_seconds,
        bank=totals,
        result_size=result_path.stat().st_size,
        result=result,
        again=again,
        raw_result_seconds=raw_result_seconds,
        raw_payments=len(paid),
        durability=durability,
        checked=checked,
        code=code_state(),
    )


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[k]) for r in rows)) for k, h in enumerate(head)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if k else c.ljust(w)
            for k, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    top = line(head)
    return [top, "-" * len(top), *(line(r) for r in rows)]


def report(r: Result) -> str:
    f = r.figures()
    req, res, dup = r.request.timed, r.result.timed, r.again.timed
    b = r.bank
    rows = [
        [
            "request (write file)",
            f"{req.seconds:.2f}",
            f"{req.rate:.0f}",
            "request items",
            f"{r.raw_items.rate:.0f}",
            f"{f['ratio_request_raw']:.3f}",
        ],
        [
            "result (load file)",
            f"{res.seconds:.2f}",
            f"{res.rate:.0f}",
            "messages + payments",
            f"{r.raw_result.rate:.0f}",
            f"{f['ratio_result_raw']:.3f}",
        ],
        [
            "same file again (dedup)",
            f"{dup.seconds:.2f}",
            f"{dup.rate:.0f}",
            "messages + payments",
            f"{r.raw_result.rate:.0f}",
            f"{f['ratio_duplicate_raw']:.3f}",
        ],
    ]
    head = ["phase", "seconds", "rec/s", "raw: rows of", "raw rec/s", "ours/raw"]
    lines = [
        "",
        f"zengin: a {r.records}-record request file written and its result file loaded,"
        " vs the same rows inserted directly",
        f"  database: {r.durability}",
        f"  code:     {r.code}",
        f"  set-up:   {r.records} active mandates + open transfer bills due {r.debit_date}"
        f" (executemany, one transaction), {r.setup_seconds:.1f}s, not timed",
        f"  request:  prepare_requests {r.request.prepare_seconds:.2f}s + stage/publish"
        f" {r.request.write_seconds:.2f}s (two transactions, as gateway-admin zengin request);"
        f" {r.request.file.name}, {r.request.size:,} bytes",
        f"  bank:     simulators.zengin, mix {r.mix}, seed {r.seed}: debited {b.debited_count}"
        f" ({b.debited_total:,} yen), failed {b.failed_count} ({b.failed_total:,} yen);"
        f" {r.result_size:,} bytes, {r.bank_seconds:.1f}s, not timed",
        f"  result:   read + parse_file {r.result.parse_seconds:.2f}s + apply_result"
        f" {r.result.apply_seconds:.2f}s (one transaction, as gateway-admin import"
        " zengin-result)",
        f"  again:    read + parse_file {r.again.parse_seconds:.2f}s + apply_result"
        f" {r.again.apply_seconds:.2f}s: every record a duplicate",
        f"  raw:      one executemany per table into empty copies (same keys, unique"
        f" constraints, foreign keys), one transaction: {r.records} request items"
        f" {r.raw_items_seconds:.2f}s; {r.records} collection_messages + {r.raw_payments}"
        f" payments {r.raw_result_seconds:.2f}s",
        *(f"  checked:  {c}" for c in r.checked),
        "",
        *_table(head, rows),
        "",
        json.dumps(f, ensure_ascii=False),
    ]
    return "\n".join(lines)


def mix_option(value: str) -> str:
    try:
        parse_mix(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/zengin.py", description=__doc__.strip().splitlines()[0])
    add_database_url(p)
    p.add_argument(
        "--records", type=int, default=100_000, help="debits in the file (default 100000)"
    )
    p.add_argument(
        "--mix",
        type=mix_option,
        default=DEFAULT_MIX,
        help=f"the bank's 振替結果コード weights CODE=WEIGHT,... (default {DEFAULT_MIX})",
    )
    p.add_argument("--seed", type=int, default=1, help="the bank's seed (default 1)")
    args = p.parse_args(argv)
    if not 1 <= args.records <= MAX_RECORDS:
        p.error(f"--records must be 1 to {MAX_RECORDS:,} (合計件数 has 6 digits)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main("zengin", parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
