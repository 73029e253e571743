"""Bulk registration through POST /v1/bills/batch, against the raw insert of the same rows.

    .venv/bin/python bench/bulk.py [--database-url URL] [--rows 4000 100000]
    .venv/bin/python bench/bulk.py --rows 500                     # smoke: a few seconds

Starts the real daemon (``twistd -n gateway``) on a scratch database, registers one CSV file of
each size through ``POST /v1/bills/batch`` (one request, timed from the first byte sent to the
last byte of the answer), downloads each result file, checks that the database holds exactly the
bills, slips, events and batch rows of each file and that the result file names them, stops the
daemon, then inserts the same bill rows into ``bills`` directly with one ``executemany`` in one
transaction. Prints a table and, last, one JSON line. See bench/README.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
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
    venv_command,
)
from bills_api import stored_page_token
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from gateway.billing.bills import parse_bill_request
from gateway.config import Config, load_config
from gateway.mappers.bills_csv import bill_document
from gateway.model import JST, Biller
from gateway.networks.issuer import Issuer
from gateway.store import create_db_engine
from gateway.store.billers import get_biller
from gateway.store.bills import NewBill, identifier_columns, new_bill_columns
from gateway.store.schema import bill_batch_items, bill_batches, bill_slips, bills, events

HEADER = ("bill_no", "amount", "due_date", "channels", "customer_no", "name", "kana", "email")
HEADER += ("phone", "description")
WARMUP = "W"
RAW_SERIAL_BASE = 5_000_000_000  # the raw rows' serials (barcodes, お客様番号): away from the API's


# --- the files ---------------------------------------------------------------------------------


def prefix(rows: int) -> str:
    return f"S{rows}"


def cells(bill_no: str, i: int, due: date) -> list[str]:
    """One bill row, shaped like bench/bills_api.py's request body, with every column filled."""
    return [
        bill_no,
        str(1000 + (i * 37) % 40000),  # under the 50,000 yen stamp threshold
        due.isoformat(),
        "cvs;payeasy",
        f"C{i:06d}",
        "山田 太郎",
        "ﾔﾏﾀﾞ ﾀﾛｳ",
        f"taro{i}@example.jp",
        "09012345678",
        "12月分 利用料",
    ]


def bill_file(name: str, rows: int, due: date) -> tuple[bytes, list[list[str]]]:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    lines = [cells(f"{name}-{i:06d}", i, due) for i in range(rows)]
    writer.writerows(lines)
    return out.getvalue().encode("utf-8"), lines


# --- the API phase -------------------------------------------------------------------------------


def scrape_batch_seconds(port: int) -> float:
    """The daemon's total time in ``bills.batch`` store interactions so far."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if (
                s.name == "gateway_store_interaction_duration_seconds_sum"
                and s.labels.get("desc") == "bills.batch"
            ):
                return float(s.value)
    return 0.0


@dataclass(frozen=True)
class Upload:
    rows: int
    seconds: float  # POST, first byte sent to the answer read
    store_seconds: float  # of which the daemon's bills.batch transaction
    cpu_seconds: float | None  # the daemon's CPU (user + system, every thread) for the POST
    result_seconds: float  # GET result.csv
    batch_id: str
    result: list[dict[str, str]]


def post_file(gateway: Gateway, data: bytes, rows: int, pid: int) -> Upload:
    conn = HTTPConnection("127.0.0.1", gateway.api_port, timeout=600)
    auth = {"Authorization": f"Bearer {gateway.api_key}"}
    try:
        conn.connect()
        before = scrape_batch_seconds(gateway.metrics_port)
        cpu0 = cpu_seconds(pid)
        t0 = time.perf_counter()
        conn.request(
            "POST", "/v1/bills/batch", body=data, headers={**auth, "Content-Type": "text/csv"}
        )
        response = conn.getresponse()
        body = response.read()
        seconds = time.perf_counter() - t0
        cpu1 = cpu_seconds(pid)
        store = scrape_batch_seconds(gateway.metrics_port) - before
        if response.status != 201:
            raise BenchFailure(f"{rows} rows: HTTP {response.status}: {body[:600]!r}")
        summary = json.loads(body)
        if (summary["rows"], summary["created"], summary["existing"]) != (rows, rows, 0):
            raise BenchFailure(f"{rows} rows: unexpected summary {summary}")
        path = summary["result_url"].split(str(gateway.api_port), 1)[1]
        t1 = time.perf_counter()
        conn.request("GET", path, headers=auth)
        response = conn.getresponse()
        result = response.read()
        result_seconds = time.perf_counter() - t1
        if response.status != 200 or not result.startswith(b"\xef\xbb\xbf"):
            raise BenchFailure(f"{rows} rows: result.csv: HTTP {response.status} {result[:300]!r}")
    finally:
        conn.close()
    parsed = list(csv.DictReader(io.StringIO(result[3:].decode(), newline="")))
    cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    return Upload(rows, seconds, store, cpu, result_seconds, summary["batch_id"], parsed)


# --- checks ---------------------------------------------------------------------------------------


def check_stored(engine: Engine, uploads: Sequence[Upload], warmup: int) -> str:
    """Per file: its bills (and nothing else) with their slips, one bill.created event each, the
    batch and its rows; its result file names exactly those bills with their stored numbers."""
    with engine.connect() as conn:
        by_prefix = Counter(
            bill_no.rsplit("-", 1)[0]
            for bill_no in conn.execute(
                select(bills.c.bill_no).where(bills.c.biller_id == BILLER_ID)
            ).scalars()
        )
        expected = {prefix(u.rows): u.rows for u in uploads} | ({WARMUP: warmup} if warmup else {})
        if by_prefix != expected:
            raise BenchFailure(f"bills by file {by_prefix}, expected {expected}")
        total = sum(expected.values())
        slips = conn.execute(select(func.count()).select_from(bill_slips)).scalar_one()
        created = conn.execute(
            select(func.count()).where(events.c.type == "bill.created")
        ).scalar_one()
        seqs = conn.execute(
            select(func.min(events.c.seq), func.max(events.c.seq), func.count()).where(
                events.c.biller_id == BILLER_ID
            )
        ).one()
        if slips != total or created != total or tuple(seqs) != (1, total, total):
            raise BenchFailure(f"{total} bills, {slips} slips, {created} events, seq {tuple(seqs)}")
        for u in uploads:
            items = conn.execute(
                select(func.count()).where(bill_batch_items.c.batch_id == u.batch_id)
            ).scalar_one()
            batch = conn.execute(
                select(bill_batches.c.row_count, bill_batches.c.created_count).where(
                    bill_batches.c.batch_id == u.batch_id
                )
            ).one()
            if items != u.rows or tuple(batch) != (u.rows, u.rows):
                raise BenchFailure(f"batch {u.batch_id}: {items} items, {tuple(batch)}")
            stored = {
                r.bill_no: r
                for r in conn.execute(
                    select(
                        bills.c.bill_no,
                        bills.c.barcode,
                        bills.c.payeasy_customer_number,
                        bills.c.payeasy_confirmation_number,
                    ).where(bills.c.bill_no.like(prefix(u.rows) + "-%"))
                )
            }
            seen = set()
            for i, row in enumerate(u.result):
                r = stored.get(row["bill_no"])
                if (
                    r is None
                    or int(row["row"]) != i + 2
                    or row["result"] != "created"
                    or row["barcode"] != r.barcode
                    or row["payeasy_customer_number"] != r.payeasy_customer_number
                    or row["payeasy_confirmation_number"] != r.payeasy_confirmation_number
                ):
                    raise BenchFailure(f"result.csv row {i + 2} of batch {u.batch_id}: {row}")
                seen.add(row["bill_no"])
            if seen != set(stored):
                raise BenchFailure(f"batch {u.batch_id}: result.csv names {len(seen)} bills")
    return (
        f"{total} bills, {slips} slips, {created} bill.created events (seq 1..{total}),"
        " each file's batch rows; every result.csv row = its stored bill"
    )


# --- the raw phase --------------------------------------------------------------------------------


def raw_rows(
    config: Config, biller: Biller, today: date, lines: list[list[str]], base: int
) -> list[dict[str, Any]]:
    """The ``bills`` rows the API stores for these CSV rows (every column insert_bill and its
    UPDATE set), under bill_nos prefixed ``R`` and serials from ``base``, so nothing collides."""
    issuer = Issuer(config)
    page_token = stored_page_token(config)  # what BulkService stores (BillService.stored_token)
    now = datetime.now(UTC)
    rows = []
    for i, line in enumerate(lines):
        doc = bill_document(dict(zip(HEADER, ["R" + line[0], *line[1:]], strict=True)))
        terms = parse_bill_request(
            doc, limits=issuer.channel_limits(), today=today, max_due_days=config.bills.max_due_days
        )
        ids = issuer.identify(biller, base + i, terms, today)
        new = NewBill(biller.biller_id, terms, page_token(biller.biller_id, terms.bill_no))
        rows.append(
            {
                "id": base + i,
                **new_bill_columns(new, terms.fingerprint(), now),
                **identifier_columns(ids),
            }
        )
    return rows


def raw_insert(engine: Engine, rows: list[dict[str, Any]]) -> tuple[float, float]:
    """(seconds, this process's CPU seconds) of the one executemany and its commit."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    with engine.begin() as conn:
        conn.execute(bills.insert(), rows)
    return time.perf_counter() - t0, time.process_time() - cpu0


def cpu_seconds(pid: int) -> float | None:
    """A process's CPU seconds so far (user + system, every thread), None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set (Linux ``VmHWM``), or None where /proc has no such line."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


# --- py-spy -------------------------------------------------------------------------------------


class PySpy:
    """``py-spy record`` of the daemon during the largest upload (``--py-spy FILE``)."""

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
        time.sleep(1.0)  # attached before the upload starts

    def stop(self) -> None:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.process.communicate(timeout=60)
        if not self.out.exists():
            raise BenchFailure(f"py-spy wrote no {self.out}")


# --- the run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    backend: str
    uploads: list[Upload]
    raw: dict[int, float]
    raw_cpu: dict[int, float]  # CPU seconds of the raw insert (this process: SQLite's work too)
    warmup: int
    durability: str
    stored: str
    peak_rss_mib: float | None  # the daemon's, over the whole run

    def figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bench": "bulk", "backend": self.backend, "warmup": self.warmup}
        for u in self.uploads:
            out[f"api_s_{u.rows}"] = round(u.seconds, 3)
            out[f"store_s_{u.rows}"] = round(u.store_seconds, 3)
            out[f"result_csv_s_{u.rows}"] = round(u.result_seconds, 3)
            out[f"raw_s_{u.rows}"] = round(self.raw[u.rows], 3)
            out[f"ratio_api_raw_{u.rows}"] = round(u.seconds / self.raw[u.rows], 2)
            if u.cpu_seconds is not None:
                out[f"daemon_cpu_us_per_row_{u.rows}"] = round(1e6 * u.cpu_seconds / u.rows)
                out[f"raw_cpu_us_per_row_{u.rows}"] = round(1e6 * self.raw_cpu[u.rows] / u.rows)
        out["daemon_peak_rss_mib"] = self.peak_rss_mib
        return out


def run(args: argparse.Namespace, db: ScratchDatabase, workdir: Path) -> Result:
    say(f"setting up the gateway on {db.backend} in {workdir}")
    gateway = prepare(workdir, db.url)
    config = load_config(gateway.config_path)
    today = datetime.now(JST).date()
    due = today + timedelta(days=30)
    sizes = sorted(args.rows)
    say(f"building files of {', '.join(f'{n:,}' for n in sizes)} rows (not timed)")
    files = {n: bill_file(prefix(n), n, due) for n in sizes}
    warm = bill_file(WARMUP, args.warmup, due)[0] if args.warmup else None
    uploads = []
    with gateway.daemon() as daemon:
        try:
            if warm is not None:
                post_file(gateway, warm, args.warmup, daemon.pid)
            for n in sizes:
                spy = PySpy(daemon.pid, args.py_spy) if args.py_spy and n == sizes[-1] else None
                try:
                    upload = post_file(gateway, files[n][0], n, daemon.pid)
                finally:
                    if spy is not None:
                        spy.stop()
                say(
                    f"{n:,} rows: {upload.seconds:.3f}s (store {upload.store_seconds:.3f}s),"
                    f" result.csv {upload.result_seconds:.3f}s"
                )
                uploads.append(upload)
        except BenchFailure as e:
            raise BenchFailure(f"{e}\n--- daemon log ---\n{daemon.log_tail()}") from e
        peak_rss = peak_rss_mib(daemon.pid)
        daemon.stop()
    engine = create_db_engine(db.url, 1)
    try:
        stored = check_stored(engine, uploads, args.warmup)
        say(stored)
        with engine.connect() as conn:
            biller = get_biller(conn, BILLER_ID)
        raw, raw_cpu = {}, {}
        for k, n in enumerate(sizes):
            rows = raw_rows(config, biller, today, files[n][1], RAW_SERIAL_BASE + k * 1_000_000)
            raw[n], raw_cpu[n] = raw_insert(engine, rows)
            say(f"raw: {n:,} bills rows in one executemany: {raw[n]:.3f}s")
        with engine.connect() as conn:
            count = conn.execute(
                select(func.count()).where(bills.c.bill_no.like("R%"))
            ).scalar_one()
        if count != sum(sizes):
            raise BenchFailure(f"the raw phase stored {count} rows, not {sum(sizes)}")
    finally:
        engine.dispose()
    return Result(
        db.backend,
        uploads,
        raw,
        raw_cpu,
        args.warmup,
        durability_settings(db.url),
        stored,
        peak_rss,
    )


def report(r: Result) -> str:
    header = ("rows", "API s", "bills/s", "store s", "result.csv s", "raw s", "API/raw")
    header += ("CPU µs/row", "raw CPU µs/row")
    lines = [header]
    for u in r.uploads:
        lines.append(
            (
                f"{u.rows:,}",
                f"{u.seconds:.3f}",
                f"{u.rows / u.seconds:,.0f}",
                f"{u.store_seconds:.3f}",
                f"{u.result_seconds:.3f}",
                f"{r.raw[u.rows]:.3f}",
                f"{u.seconds / r.raw[u.rows]:.2f}",
                "-" if u.cpu_seconds is None else f"{1e6 * u.cpu_seconds / u.rows:,.0f}",
                f"{1e6 * r.raw_cpu[u.rows] / u.rows:,.0f}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    table = ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    table.insert(1, "-" * len(table[0]))
    return "\n".join(
        [
            "",
            "bulk: POST /v1/bills/batch (one CSV file, one request) vs the same bills rows"
            f" inserted directly ({r.backend})",
            f"  database: {r.durability}",
            "  API:      twistd gateway; the time of the one request: upload, decoding, every row"
            " checked, one transaction (bills, slips, batch rows, events), the answer",
            "  store:    of which the daemon's bills.batch transaction (its metrics)",
            "  raw:      the same bills rows (every column the API sets), one executemany, one"
            " transaction, daemon stopped: no slips, events, batch rows, HTTP or checks",
            f"  checked:  {r.stored}",
            f"  memory:   the daemon's peak RSS {r.peak_rss_mib} MiB (VmHWM)",
            "  CPU:      the daemon's CPU for the POST (every thread, /proc), per row; raw: this"
            " process's CPU for the executemany and commit (SQLite's work included)",
            "",
            *table,
            "",
            json.dumps(r.figures()),
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/bulk.py", description=__doc__.strip().splitlines()[0])
    add_database_url(p)
    p.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[4000, 100_000],
        help="one file of each size (default 4000 100000; 500 for a smoke run)",
    )
    p.add_argument("--warmup", type=int, default=200, help="rows of a first file, not counted")
    p.add_argument("--py-spy", type=Path, help="record the daemon during the largest upload")
    args = p.parse_args(argv)
    if any(not 1 <= n <= 100_000 for n in args.rows) or len(set(args.rows)) != len(args.rows):
        p.error("--rows: distinct sizes from 1 to 100000")
    if not 0 <= args.warmup <= 100_000:
        p.error("--warmup: 0 to 100000")
    if args.py_spy is not None:
        args.py_spy = args.py_spy.resolve()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main("bulk", parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
