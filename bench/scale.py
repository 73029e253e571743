"""More daemons on one PostgreSQL: CVS link and bills API throughput with 1, 2 and 4 daemons.

Every daemon is the real ``twistd -n gateway`` with the example's config (bench/_daemon.py), one
scratch database, and ``reuse_port = true`` under ``[api]`` and ``[cvs.link]``: the daemons
share the API port and the link port, and the kernel spreads the connections (SO_REUSEPORT).
Each daemon has its own metrics port, whose counters say how the work was split. For each count:

1. **Link**: ``--links`` agency connections (mutual TLS), each keeping ``--window`` 速報 records
   unacknowledged, ``--records`` records in all; records acked 00 per second, first send to
   last ack.
2. **API**: ``--clients`` keep-alive connections creating ``--bills`` bills; bills per second.

Then, daemons stopped, the database must hold exactly what was acknowledged and answered: one
message and one pending payment per record acked, one bill (with its slip and its
``bill.created`` event) per 201 — nothing lost, nothing doubled. PostgreSQL only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from _daemon import (
    BenchFailure,
    CvsLink,
    Daemon,
    Gateway,
    ScratchDatabase,
    add_database_url,
    bench_main,
    durability_settings,
    free_ports,
    prepare,
    say,
    set_toml_values,
    toml_string,
)
from bills_api import Step, bill_body, run_concurrently
from cvs_ingest import (
    Phase,
    Records,
    Sender,
    check_stored,
    connected,
    issue_bills,
    make_records,
    scrape,
)
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.threads import blockingCallFromThread

from gateway.config import load_config
from gateway.infra.tls import TLSFiles
from gateway.model import JST
from gateway.store import create_db_engine
from gateway.store.schema import bill_slips, bills, events
from simulators.cvs_link import AgencyLink, start_agency_link

API_PREFIX = "S"  # bill_no S<count>-000000: the API phase's bills


def daemon_gateways(gateway: Gateway, count: int) -> list[Gateway]:
    """``count`` daemons' set-ups: the prepared config, each in its own directory with its own
    metrics port, ``reuse_port = true`` for the API and the link (their ports shared)."""
    source = gateway.config_path.read_text(encoding="utf-8")
    out = []
    for k, port in enumerate(free_ports(count)):
        home = gateway.workdir / f"daemon-{count}-{k}"
        home.mkdir()
        text = set_toml_values(
            source,
            {
                ("metrics", "listen"): toml_string(f"tcp:{port}:interface=127.0.0.1"),
                ("api", "reuse_port"): "true",
            },
        )
        (home / "gateway.toml").write_text(text, encoding="utf-8")
        out.append(
            replace(gateway, workdir=home, config_path=home / "gateway.toml", metrics_port=port)
        )
    return out


def postgres_cpu(database: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends of ``database`` on this machine (0
    without /proc): the database shares the cores with the daemons here. The server's shared
    processes (WAL writer, checkpointer) and other databases' backends are left out."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().decode(errors="replace")
                if not title.startswith("postgres: ") or f" {database} " not in title:
                    continue
                total += cpu_of((entry / "stat").read_text())
            except OSError:
                continue
    return total


def cpu_of(stat: str) -> float:
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    ticks = [int(x) for x in first]
    idle = ticks[3] + ticks[4]  # idle, iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


@dataclass
class Cpu:
    """CPU seconds during one phase: the daemons, PostgreSQL, this driver, and the machine's
    busy share (all cores)."""

    daemons: float
    postgres: float
    driver: float
    busy: float  # 0..1 of all the machine's cores

    @classmethod
    def measure(cls, watch: Daemons, database: str) -> Callable[[], Cpu]:
        d0, p0 = watch.cpu(), postgres_cpu(database)
        t0, (b0, a0) = time.process_time(), machine_busy()

        def done() -> Cpu:
            b1, a1 = machine_busy()
            return cls(
                watch.cpu() - d0,
                postgres_cpu(database) - p0,
                time.process_time() - t0,
                (b1 - b0) / (a1 - a0) if a1 > a0 else 0.0,
            )

        return done


class Daemons:
    """The running daemons, for the link's watchdog (one of them exiting fails the run)."""

    def __init__(self, daemons: Sequence[Daemon]) -> None:
        self.daemons = daemons

    def running(self) -> bool:
        return all(d.running() for d in self.daemons)

    def cpu(self) -> float:
        """CPU seconds the daemons have used so far (0 without /proc)."""
        total = 0.0
        for d in self.daemons:
            try:
                total += cpu_of(Path(f"/proc/{d.pid}/stat").read_text())
            except OSError:
                pass
        return total


@dataclass
class Round:
    daemons: int
    link_seconds: float
    link_records: int
    link_cpu: Cpu
    link_share: list[int]  # records acked 00 by each daemon
    link_group: float  # records per transaction (the daemons' group committers)
    api_seconds: float
    api_bills: int
    api_cpu: Cpu
    api_share: list[int]  # bills answered 201 by each daemon
    api_group: float  # bills per transaction

    @property
    def link_rate(self) -> float:
        return self.link_records / self.link_seconds

    @property
    def api_rate(self) -> float:
        return self.api_bills / self.api_seconds


@dataclass
class Result:
    args: argparse.Namespace
    durability: str
    rounds: list[Round]
    stored: list[str] = field(default_factory=list)


def groups(daemons: Sequence[Daemon], metric: str) -> tuple[float, float]:
    """(transactions, items in them) of a group committer, summed over the daemons."""
    count = total = 0.0
    for d in daemons:
        samples = scrape(d.gateway.metrics_port)
        count += samples.get((f"{metric}_count", ()), 0.0)
        total += samples.get((f"{metric}_sum", ()), 0.0)
    return count, total


def mean_group(before: tuple[float, float], after: tuple[float, float]) -> float:
    n = after[0] - before[0]
    return (after[1] - before[1]) / n if n else 0.0


INGEST_GROUPS = "gateway_ingest_group_size"  # the link's records per transaction
BILL_GROUPS = "gateway_bills_create_group_size"  # POST /v1/bills per transaction


def acks(port: int) -> int:
    return int(scrape(port).get(("gateway_cvs_link_acks_total", (("result", "00"),)), 0.0))


def created(port: int) -> int:
    return int(
        sum(
            v
            for (name, labels), v in scrape(port).items()
            if name == "gateway_http_requests_total"
            and ("route", "/v1/bills") in labels
            and ("method", "POST") in labels
            and ("status", "201") in labels
        )
    )


async def link_phase(
    reactor: Any, cvs: CvsLink, records: Records, links: int, window: int, watch: Daemons
) -> float:
    """Send ``records`` on ``links`` connections (records dealt round-robin); the seconds from
    the first send to the last ack, every ack 00."""
    tls = TLSFiles(cvs.ca, cvs.certificate, cvs.key)
    agency: list[AgencyLink] = [
        start_agency_link(reactor, cvs.connect, tls, "gateway") for _ in range(links)
    ]
    try:
        for link in agency:
            await connected(reactor, link)
        parts = [type(records)(records.raw[k::links], records.keys[k::links]) for k in range(links)]
        t0 = time.perf_counter()
        phases: list[Phase] = await gatherResults(
            [
                Sender(reactor, link, watch).run(part, window=window)  # type: ignore[arg-type]
                for link, part in zip(agency, parts, strict=True)
            ],
            consumeErrors=True,
        )
        seconds = time.perf_counter() - t0
        for phase in phases:
            if set(phase.results) != {"00"}:
                raise BenchFailure(f"link acks other than 00: {phase.results}")
        return seconds
    finally:
        for link in agency:
            stopped = link.stop()
            stopped.addTimeout(10, reactor)
            await stopped


def send(
    reactor: Any, cvs: CvsLink, records: Records, links: int, window: int, watch: Daemons
) -> float:
    """:func:`link_phase` on the reactor's thread, from this one; its seconds."""
    seconds: float = blockingCallFromThread(
        reactor,
        lambda: Deferred.fromCoroutine(link_phase(reactor, cvs, records, links, window, watch)),
    )
    return seconds


class ApiClients:
    """Keep-alive connections creating bills ``<prefix>-NNNNNN``; every 201 is remembered."""

    def __init__(self, port: int, key: str, prefix: str, due: date) -> None:
        self.port, self.prefix, self.due = port, prefix, due
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.created: list[str] = []
        self.lock = threading.Lock()

    @contextmanager
    def session(self) -> Iterator[Step]:
        conn = HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.connect()

        def step(i: int, warm: bool) -> None:
            bill_no = f"{self.prefix}{'W' if warm else ''}-{i:06d}"
            body = json.dumps(bill_body(bill_no, i, self.due), ensure_ascii=False).encode()
            conn.request("POST", "/v1/bills", body=body, headers=self.headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 201 or json.loads(data).get("bill_no") != bill_no:
                raise BenchFailure(f"{bill_no}: HTTP {response.status}: {data[:300]!r}")
            with self.lock:
                self.created.append(bill_no)

        try:
            yield step
        finally:
            conn.close()


def check_api(engine: Any, answered: Sequence[str]) -> str:
    """Exactly the bills answered 201 are stored, each once with its slip and its event."""
    with engine.connect() as conn:
        stored = list(
            conn.execute(
                select(bills.c.bill_no).where(bills.c.bill_no.like(f"{API_PREFIX}%"))
            ).scalars()
        )
        joined = bill_slips.join(bills, bills.c.id == bill_slips.c.bill_id)
        slips = conn.execute(
            select(func.count()).select_from(joined).where(bills.c.bill_no.like(f"{API_PREFIX}%"))
        ).scalar_one()
        created_events = conn.execute(
            select(func.count()).where(events.c.type == "bill.created")
        ).scalar_one()
    if len(set(answered)) != len(answered):
        raise BenchFailure("a bill_no was answered 201 twice")
    if sorted(stored) != sorted(answered):
        raise BenchFailure(f"{len(answered)} bills answered 201 but {len(stored)} stored")
    if slips != len(stored) or created_events != len(stored):
        raise BenchFailure(f"{len(stored)} bills, {slips} slips, {created_events} bill.created")
    return f"{len(stored)} bills answered 201 = stored, each with one slip and one bill.created"


def run(args: argparse.Namespace, db: ScratchDatabase, workdir: Path) -> Result:
    if db.backend != "postgresql":
        raise BenchFailure("several daemons need PostgreSQL: give --database-url")
    from twisted.internet import reactor

    window = args.window
    gateway = prepare(
        workdir,
        db.url,
        cvs_link=True,
        link_options={
            "reuse_port": "true",
            "max_unacked": str(window + 1),
            "max_connections": str(max(4, args.links)),
        },
    )
    assert gateway.cvs_link is not None
    cvs = gateway.cvs_link
    dbname = str(make_url(db.url).database)
    config = load_config(gateway.config_path)
    engine = create_db_engine(db.url, 2)
    counts = [int(c) for c in args.daemons.split(",")]
    per_round = args.records + args.warmup
    say(f"issuing {per_round * len(counts)} bills for the link's records")
    barcodes = issue_bills(engine, config, per_round * len(counts))
    with engine.begin() as conn:  # the rows took their ids themselves: the API's come after
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence('bills', 'id'), max(id)) FROM bills")
        )
    today = datetime.now(JST).date()
    result = Result(args, durability_settings(db.url), [])
    keys: list[str] = []
    answered: list[str] = []
    thread = threading.Thread(
        target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True
    )
    thread.start()
    try:
        for r, count in enumerate(counts):
            say(f"--- {count} daemon(s)")
            daemons = [g.daemon() for g in daemon_gateways(gateway, count)]
            try:
                for d in daemons:
                    d.start()
                watch = Daemons(daemons)

                mine = barcodes[r * per_round : (r + 1) * per_round]
                warm = make_records(mine[: args.warmup], r * per_round, today)
                records = make_records(mine[args.warmup :], r * per_round + args.warmup, today)
                if len(warm):
                    send(reactor, cvs, warm, args.links, window, watch)
                before = [acks(d.gateway.metrics_port) for d in daemons]
                g0 = groups(daemons, INGEST_GROUPS)
                cpu = Cpu.measure(watch, dbname)
                link_seconds = send(reactor, cvs, records, args.links, window, watch)
                link_cpu = cpu()
                link_group = mean_group(g0, groups(daemons, INGEST_GROUPS))
                share = [
                    acks(d.gateway.metrics_port) - b for d, b in zip(daemons, before, strict=True)
                ]
                keys += warm.keys + records.keys
                say(f"link: {len(records)} records in {link_seconds:.2f}s, per daemon {share}")

                clients = ApiClients(
                    gateway.api_port,
                    gateway.api_key,
                    f"{API_PREFIX}{r}",
                    today + timedelta(days=30),
                )
                before = [created(d.gateway.metrics_port) for d in daemons]
                g0 = groups(daemons, BILL_GROUPS)
                cpu = Cpu.measure(watch, dbname)
                timing = run_concurrently(
                    args.clients, args.warmup_bills, args.bills, clients.session
                )
                api_cpu = cpu()
                api_group = mean_group(g0, groups(daemons, BILL_GROUPS))
                api_share = [
                    created(d.gateway.metrics_port) - b
                    for d, b in zip(daemons, before, strict=True)
                ]
                answered += clients.created
                say(f"api: {args.bills} bills in {timing.seconds:.2f}s, per daemon {api_share}")
                result.rounds.append(
                    Round(
                        count,
                        link_seconds,
                        len(records),
                        link_cpu,
                        share,
                        link_group,
                        timing.seconds,
                        args.bills,
                        api_cpu,
                        api_share,
                        api_group,
                    )
                )
            except BenchFailure as e:
                tails = "\n".join(d.log_tail(15) for d in daemons)
                raise BenchFailure(f"{e}\nthe daemons' logs end:\n{tails}") from e
            finally:
                for d in daemons:
                    d.stop()
    finally:
        reactor.callFromThread(reactor.stop)
        thread.join(10)
    result.stored = [check_stored(engine, keys), check_api(engine, answered)]
    engine.dispose()
    return result


def _us(seconds: float, count: int) -> str:
    return f"{1e6 * seconds / count:,.0f}"


def report(r: Result) -> str:
    a = r.args
    lines = [
        "bench/scale.py: more daemons on one PostgreSQL (reuse_port on the API and the link)",
        f"database: {r.durability}",
        f"link: {a.records} records per round on {a.links} connections, window {a.window} each;"
        f" api: {a.bills} bills per round from {a.clients} keep-alive clients",
        "CPU µs per record or bill: the daemons (together), PostgreSQL (this database's"
        " backends), this driver; busy: the machine's cores in use during the phase; per txn:"
        " records or bills per transaction of the daemons' group committers",
        "",
        "| phase | daemons | per s | × | daemons µs | PostgreSQL µs | driver µs | busy |"
        " per txn | per daemon |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    first = r.rounds[0]
    figures: dict[str, Any] = {"bench": "scale"}
    for name in ("link", "api"):
        for x in r.rounds:
            n, seconds, cpu, share, group, base = (
                (
                    x.link_records,
                    x.link_seconds,
                    x.link_cpu,
                    x.link_share,
                    x.link_group,
                    first.link_rate,
                )
                if name == "link"
                else (
                    x.api_bills,
                    x.api_seconds,
                    x.api_cpu,
                    x.api_share,
                    x.api_group,
                    first.api_rate,
                )
            )
            rate = n / seconds
            lines.append(
                f"| {name} | {x.daemons} | {rate:,.0f} | {rate / base:.2f} |"
                f" {_us(cpu.daemons, n)} | {_us(cpu.postgres, n)} | {_us(cpu.driver, n)} |"
                f" {100 * cpu.busy:.0f} % | {group:.1f} | {share} |"
            )
            figures[f"{name}_per_s_{x.daemons}"] = round(rate, 1)
            figures[f"{name}_daemon_cpu_us_{x.daemons}"] = round(1e6 * cpu.daemons / n, 1)
            figures[f"{name}_postgres_cpu_us_{x.daemons}"] = round(1e6 * cpu.postgres / n, 1)
            figures[f"{name}_per_txn_{x.daemons}"] = round(group, 1)
    lines += ["", "stored (daemons stopped):", *(f"  {s}" for s in r.stored), ""]
    lines.append(json.dumps(figures))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/scale.py", description=__doc__.strip().splitlines()[0])
    add_database_url(p)
    p.add_argument("--daemons", default="1,2,4", help="daemon counts, one round each (1,2,4)")
    p.add_argument("--records", type=int, default=6000, help="link records per round (6000)")
    p.add_argument("--warmup", type=int, default=400, help="link warm-up records per round (400)")
    p.add_argument("--links", type=int, default=16, help="agency connections (16)")
    p.add_argument("--window", type=int, default=25, help="records unacked per connection (25)")
    p.add_argument("--bills", type=int, default=2000, help="API bills per round (2000)")
    p.add_argument("--warmup-bills", type=int, default=100, help="API warm-up bills (100)")
    p.add_argument("--clients", type=int, default=16, help="API keep-alive clients (16)")
    args = p.parse_args(argv)
    if min(args.records, args.links, args.window, args.bills, args.clients) < 1:
        p.error("--records, --links, --window, --bills and --clients must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main("scale", parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
