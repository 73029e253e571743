"""速報 to webhook latency: CVS payments at a fixed rate, timed to their signed webhook.

    .venv/bin/python bench/webhooks.py [--database-url URL] [--rate 200] [--seconds 10]

Starts the real daemon (``twistd -n gateway``) with the CVS link on (mutual TLS) on a scratch
database, issues one bill per payment, runs a webhook receiver (twisted.web on 127.0.0.1:0, in
this process) and registers it for ``payment.preliminary``, then sends 速報 records at ``--rate``
per second for ``--seconds`` over the link and times each payment:

- send → AK: the 速報 committed (the gateway acks after its commit);
- send → webhook and AK → webhook: the signed POST arrives at the receiver (first arrival);
- send → feed: a client polling ``GET /v1/events?after=`` every ``poll_interval`` (the same
  interval the dispatcher uses) first sees the event — the pull baseline, in the same run;
- a bare POST round trip to the same receiver (no gateway), before the load — the HTTP floor.

Every payment must arrive as a webhook with a good signature (the run fails otherwise). Prints a
table and, last, one JSON line. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import treq
from _daemon import (
    BenchFailure,
    Daemon,
    Gateway,
    ScratchDatabase,
    add_database_url,
    bench_main,
    durability_settings,
    prepare,
    say,
    set_toml_values,
)
from bills_api import Timing
from cvs_ingest import (
    BILL_PREFIX,
    CpuClock,
    Records,
    Sender,
    check_phase,
    code_state,
    connected,
    issue_bills,
    make_records,
    on_reactor,
)
from sqlalchemy import func, select
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.web import resource, server

from gateway.config import load_config
from gateway.infra.tls import TLSFiles
from gateway.model import JST
from gateway.store import create_db_engine
from gateway.store.schema import webhook_attempts
from gateway.webhooks.signing import SignatureError, verify_signature
from simulators.cvs_link import start_agency_link

RTT_SAMPLES = 200  # bare POST round trips before the load


# --- the receiver, in this process ---------------------------------------------------------------


@dataclass
class Receiver(resource.Resource):
    """Records the first arrival (perf_counter) of each bill's webhook; checks every signature."""

    isLeaf = True
    secret: str = ""
    first: dict[str, float] = field(default_factory=dict)  # bill_no -> perf_counter()
    arrivals: int = 0
    duplicates: int = 0
    bad: list[str] = field(default_factory=list)
    probes: int = 0

    def __post_init__(self) -> None:
        resource.Resource.__init__(self)

    def render_POST(self, request: server.Request) -> bytes:
        at = time.perf_counter()
        assert request.content is not None
        body = request.content.read()
        if request.path == b"/probe":
            self.probes += 1
            return b""
        self.arrivals += 1
        try:
            verify_signature(
                self.secret, request.getHeader("gateway-signature") or "", body, now=time.time()
            )
        except SignatureError as e:
            self.bad.append(str(e))
        bill_no = json.loads(body)["data"]["bill"]["bill_no"]
        if bill_no in self.first:
            self.duplicates += 1
        else:
            self.first[bill_no] = at
        request.setResponseCode(204)
        return b""


@dataclass
class FeedPoller:
    """Polls the events feed every ``interval`` s; the first time each bill's event was seen."""

    api: str
    key: str
    interval: float
    after: int = 0
    seen: dict[str, float] = field(default_factory=dict)
    polls: int = 0
    running: bool = True

    async def run(self, reactor: Any) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        while self.running:
            started = time.perf_counter()
            response = await treq.get(
                f"{self.api}/v1/events?after={self.after}&limit=500", headers=headers
            )
            page = await response.json()
            at = time.perf_counter()
            self.polls += 1
            for item in page["data"]:
                self.seen.setdefault(item["data"]["bill"]["bill_no"], at)
            self.after = page["next_after"]
            if len(page["data"]) < 500:
                await deferLater(reactor, max(0.0, self.interval - (at - started)))


@dataclass(frozen=True)
class Measured:
    sent: list[float]
    acked: list[float]
    webhook: list[float]
    feed: list[float]
    rtt: list[float]
    offered_rate: float
    duplicates: int
    feed_polls: int
    daemon_cpu: float | None
    seconds: float


def _latencies(start: Sequence[float], end: Sequence[float]) -> Timing:
    return Timing(1.0, len(start), [e - s for s, e in zip(start, end, strict=True)])


async def measure(
    reactor: Any,
    gateway: Gateway,
    daemon: Daemon,
    warmup: Records,
    load: Records,
    bill_nos: list[str],
    rate: float,
    poll_interval: float,
) -> Measured:
    receiver = Receiver()
    site = server.Site(receiver)
    site.log = lambda request: None  # type: ignore[method-assign]
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    base = f"http://127.0.0.1:{port.getHost().port}"
    api = f"http://127.0.0.1:{gateway.api_port}"
    auth = {"Authorization": f"Bearer {gateway.api_key}", "Content-Type": "application/json"}
    cvs = gateway.cvs_link
    assert cvs is not None
    link = start_agency_link(
        reactor, cvs.connect, TLSFiles(cvs.ca, cvs.certificate, cvs.key), "gateway"
    )
    poller = FeedPoller(api, gateway.api_key, poll_interval)
    try:
        body = {"url": f"{base}/hook", "events": ["payment.preliminary"]}
        response = await treq.post(
            f"{api}/v1/webhook-endpoints", json.dumps(body).encode(), headers=auth
        )
        made = await response.json()
        if response.code != 201:
            raise BenchFailure(f"POST /v1/webhook-endpoints answered {response.code}: {made}")
        receiver.secret = made["secret"]

        say(f"baseline: {RTT_SAMPLES} bare POSTs to the receiver, one at a time")
        rtt = []
        probe = json.dumps({"probe": "x" * 1500}).encode()  # about a payment event's size
        for _ in range(RTT_SAMPLES):
            t0 = time.perf_counter()
            r = await treq.post(
                f"{base}/probe", probe, headers={"Content-Type": "application/json"}
            )
            await r.content()
            rtt.append(time.perf_counter() - t0)

        await connected(reactor, link)
        sender = Sender(reactor, link, daemon)
        if len(warmup):
            say(f"warm-up: {len(warmup)} payments; waiting for their webhooks")
            check_phase(await sender.run(warmup, window=100), "warm-up")
            await _arrived(reactor, receiver, bill_nos[: len(warmup)], 60.0)

        poll_done = Deferred.fromCoroutine(poller.run(reactor))
        say(f"load: {len(load)} payments at {rate:g}/s; the feed polled every {poll_interval:g}s")
        cpu = CpuClock(daemon.pid)
        t0 = time.perf_counter()
        phase = await sender.run(load, rate=rate)
        check_phase(phase, "load")
        wanted = bill_nos[len(warmup) :]
        await _arrived(reactor, receiver, wanted, max(30.0, 20 * poll_interval))
        seconds = time.perf_counter() - t0
        daemon_cpu = cpu.read().daemon
        deadline = time.monotonic() + 30
        while any(b not in poller.seen for b in wanted) and time.monotonic() < deadline:
            await deferLater(reactor, 0.05)
        poller.running = False
        await poll_done
        await deferLater(reactor, 2 * poll_interval + 0.5)  # late duplicates, if any
    finally:
        poller.running = False
        stopped = link.stop()
        stopped.addTimeout(10, reactor)
        await stopped
        await port.stopListening()
    if receiver.bad:
        raise BenchFailure(f"{len(receiver.bad)} webhooks with a bad signature: {receiver.bad[0]}")
    missing = [b for b in wanted if b not in poller.seen]
    if missing:
        raise BenchFailure(f"{len(missing)} events never seen in the feed, e.g. {missing[0]}")
    return Measured(
        sent=phase.sent,
        acked=phase.acked,
        webhook=[receiver.first[b] for b in wanted],
        feed=[poller.seen[b] for b in wanted],
        rtt=rtt,
        offered_rate=phase.offered_rate,
        duplicates=receiver.duplicates,
        feed_polls=poller.polls,
        daemon_cpu=daemon_cpu,
        seconds=seconds,
    )


async def _arrived(reactor: Any, receiver: Receiver, bill_nos: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        missing = sum(1 for b in bill_nos if b not in receiver.first)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise BenchFailure(
                f"{missing} of {len(bill_nos)} payments got no webhook within {timeout:.0f}s"
            )
        await deferLater(reactor, 0.02)


# --- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    backend: str
    rate: float
    seconds: float
    poll_interval: float
    payments: int
    warmup: int
    m: Measured
    durability: str
    code: str

    def timings(self) -> dict[str, Timing]:
        m = self.m
        return {
            "send→AK (commit)": _latencies(m.sent, m.acked),
            "send→webhook": _latencies(m.sent, m.webhook),
            "AK→webhook": _latencies(m.acked, m.webhook),
            "send→feed (poll)": _latencies(m.sent, m.feed),
            "bare POST RTT": Timing(1.0, len(m.rtt), m.rtt),
        }

    def figures(self) -> dict[str, Any]:
        t = self.timings()

        def ms(name: str, p: float) -> float:
            return round(t[name].percentile_ms(p), 2)

        return {
            "bench": "webhooks",
            "backend": self.backend,
            "rate": self.rate,
            "seconds": self.seconds,
            "payments": self.payments,
            "poll_interval": self.poll_interval,
            "achieved_rate": round(self.m.offered_rate, 1),
            "commit_p50_ms": ms("send→AK (commit)", 50),
            "commit_p99_ms": ms("send→AK (commit)", 99),
            "webhook_p50_ms": ms("send→webhook", 50),
            "webhook_p99_ms": ms("send→webhook", 99),
            "commit_to_webhook_p50_ms": ms("AK→webhook", 50),
            "commit_to_webhook_p99_ms": ms("AK→webhook", 99),
            "feed_p50_ms": ms("send→feed (poll)", 50),
            "feed_p99_ms": ms("send→feed (poll)", 99),
            "post_rtt_p50_ms": ms("bare POST RTT", 50),
            "post_rtt_p99_ms": ms("bare POST RTT", 99),
            # push against pull in the same run: the webhook's p50 over the polling client's
            # (lower is better; about 1 when delivery waits for the poll, as it did until the
            # commit woke it)
            "ratio_webhook_feed": round(
                t["send→webhook"].percentile_ms(50)
                / max(t["send→feed (poll)"].percentile_ms(50), 1e-3),
                3,
            ),
            "duplicates": self.m.duplicates,
            "code": self.code,
        }


def run(args: argparse.Namespace, db: ScratchDatabase, workdir: Path) -> Result:
    say(f"setting up the gateway with its CVS link on {db.backend} in {workdir}")
    gateway = prepare(workdir, db.url, cvs_link=True)
    text = gateway.config_path.read_text(encoding="utf-8")
    # The receiver is on 127.0.0.1: not a public address, so its network must be allowed.
    values = {("webhooks", "allowed_networks"): '["127.0.0.0/8"]'}
    poll = args.poll_interval
    if poll is not None:
        values[("webhooks", "poll_interval")] = repr(float(poll))
    gateway.config_path.write_text(set_toml_values(text, values), encoding="utf-8")
    config = load_config(gateway.config_path)
    poll = config.webhooks.poll_interval
    payments = round(args.rate * args.seconds)
    n_bills = args.warmup + payments
    engine = create_db_engine(db.url, pool_size=2)
    try:
        say(f"inserting {n_bills} bills as the API stores them (not timed)")
        barcodes = issue_bills(engine, config, n_bills)
        today = datetime.now(JST).date()
        warmup = make_records(barcodes[: args.warmup], 0, today)
        load = make_records(barcodes[args.warmup :], args.warmup, today)
        bill_nos = [f"{BILL_PREFIX}-{i:06d}" for i in range(n_bills)]
        with gateway.daemon() as daemon:
            say(f"daemon ready (pid {daemon.pid}); webhooks poll every {poll:g}s")
            try:
                measured = on_reactor(
                    lambda reactor: measure(
                        reactor, gateway, daemon, warmup, load, bill_nos, args.rate, poll
                    )
                )
            except BenchFailure as e:
                raise BenchFailure(f"{e}\n--- daemon log ---\n{daemon.log_tail()}") from e
        with engine.connect() as conn:
            logged = conn.execute(
                select(func.count())
                .select_from(webhook_attempts)
                .where(webhook_attempts.c.result == "success")
            ).scalar_one()
        if logged != n_bills + measured.duplicates:
            raise BenchFailure(
                f"{logged} successful attempts in the delivery log for {n_bills} webhooks"
                f" (+{measured.duplicates} duplicates) received"
            )
        durability = durability_settings(db.url)
    finally:
        engine.dispose()
    return Result(
        db.backend,
        args.rate,
        args.seconds,
        poll,
        payments,
        args.warmup,
        measured,
        durability,
        code_state(),
    )


def report(r: Result) -> str:
    t = r.timings()
    cpu = (
        "unknown (no /proc)"
        if r.m.daemon_cpu is None
        else f"{100 * r.m.daemon_cpu / r.m.seconds:.0f}% of a core"
    )
    lines = [
        "",
        f"webhooks: {r.payments} CVS 速報 at {r.rate:g}/s (achieved {r.m.offered_rate:.1f}/s),"
        " each timed to its payment.preliminary webhook",
        f"  database:  {r.durability}",
        f"  code:      {r.code}",
        "  daemon:    twistd gateway, the example config with [webhooks] poll_interval"
        f" = {r.poll_interval:g}s; daemon CPU during the load {cpu}",
        "  receiver:  twisted.web on 127.0.0.1 in the benchmark process, every signature verified"
        f" with gateway.webhooks.signing; {r.m.duplicates} duplicate deliveries",
        f"  checked:   every payment acked 00, every one's webhook arrived and is in the delivery"
        f" log; {r.warmup} warm-up payments before, not counted",
        f"  feed:      a client polling GET /v1/events every {r.poll_interval:g}s"
        f" ({r.m.feed_polls} polls) during the load",
        "",
        f"{'latency':<18} {'n':>6} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}",
        "-" * 55,
    ]
    for name, timing in t.items():
        lines.append(
            f"{name:<18} {timing.count:>6} {timing.percentile_ms(50):>9.2f}"
            f" {timing.percentile_ms(99):>9.2f} {timing.percentile_ms(100):>9.2f}"
        )
    figures = r.figures()
    lines += [
        "",
        f"webhook/feed (p50 of send→webhook over send→feed): {figures['ratio_webhook_feed']:.3f}",
        "",
        json.dumps(figures, ensure_ascii=False),
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/webhooks.py", description=__doc__.strip().splitlines()[0]
    )
    add_database_url(p)
    p.add_argument("--rate", type=float, default=200.0, help="payments per second (200)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the load (10)")
    p.add_argument("--warmup", type=int, default=100, help="warm-up payments, not counted (100)")
    p.add_argument(
        "--poll-interval",
        type=float,
        default=None,
        help="[webhooks] poll_interval for the daemon and the feed poller (default: the"
        " example config's)",
    )
    args = p.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or round(args.rate * args.seconds) < 2:
        p.error("--rate and --seconds must be positive, and send at least 2 payments")
    if args.warmup < 0 or args.warmup + round(args.rate * args.seconds) > 999_999:
        p.error("--warmup at least 0, and at most 999,999 payments in all")
    if args.poll_interval is not None and not 0 < args.poll_interval <= 60:
        p.error("--poll-interval must be in (0, 60]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main("webhooks", parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
