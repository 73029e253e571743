"""One seed: the daemon's lives, the peers, the drain and the checks.

:func:`run_seed` is the whole of it: a fresh database and the configuration
(:mod:`simulators.world.setup`), then :class:`World` sets the billers up and runs the seed's days
(:mod:`simulators.world.workload`) on the shared clock, builds the daemon again after each crash,
checks every ack against the database as it is given, lets everything calm down and drain, and
hands the settled world to :mod:`simulators.world.invariants`.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import time as wall
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from zope.interface import implementer

from gateway.mappers.cvs.mapper import parse_file as parse_cvs_file
from gateway.mappers.zengin.mapper import parse_file as parse_zengin_file
from gateway.mappers.zengin.mapper import to_canonical as zengin_events
from gateway.model import (
    JST,
)
from gateway.protocols.inbox import FileResult
from gateway.store.schema import collection_messages, payments, zengin_requests
from simulators.world.daemon import Daemon
from simulators.world.faults import Crash, DatabaseFaults, FaultPlan, Injected, draw_plan
from simulators.world.networks import CvsAgency, MpnCenter, Receivers, ZenginBank
from simulators.world.runtime import Process, Sim
from simulators.world.setup import (
    COMPANY_CODE,
    Databases,
    config_text,
    load,
    seeded_randomness,
)
from simulators.world.trace import Trace
from simulators.world.workload import BillerSide, Workload

# --- the world ----------------------------------------------------------------------------------


@dataclass
class Result:
    seed: int
    backend: str
    breaks: list[str]
    injected: Counter[str]
    stats: Counter[str]
    seconds: float
    trace: Trace
    plan: str


class World(Workload):
    """The seed's world on one clock; :meth:`run` plays it and returns the settled world."""

    def __init__(
        self, seed: int, workdir: Path, database_url: str, engine: Engine, *, keep_trace: bool
    ) -> None:
        self.seed = seed
        self.workdir = workdir
        self.database_url = database_url
        self.engine = engine
        self.sqlite = database_url.startswith("sqlite")
        self.plan: FaultPlan = draw_plan(seed, sqlite=self.sqlite)
        start = self.plan.start.timestamp()
        self.trace = Trace(start, keep=keep_trace)
        self.sim = Sim(start, self.trace)
        self.trace.clock = self.sim.seconds
        self.rng = random.Random(f"workload/{seed}")
        self.injected = Injected()
        self.stats: Counter[str] = Counter()
        self.config = load(config_text(workdir, database_url), workdir)
        self.db_faults = DatabaseFaults(
            self.plan,
            random.Random(f"db/{seed}"),
            self.injected,
            self.log,
            sqlite=self.sqlite,
        )
        self.daemon: Daemon | None = None
        self.life = 0
        self.job_counts: Counter[str] = Counter()
        self.crashes_left: list[Crash] = [c for c in self.plan.crashes if c.at is None]
        self.calm = False
        self.billers: dict[str, BillerSide] = {}
        self.restart_call: Any = None
        assert self.config.cvs is not None and self.config.zengin is not None
        files = self.config.cvs.agency(None).files
        assert files is not None
        self.cvs_inbox = files.inbox
        self.agency = CvsAgency(self, COMPANY_CODE, files.inbox)
        self.center = MpnCenter(self)
        self.bank = ZenginBank(
            self, self.config.zengin.outbox, self.config.zengin.inbox, workdir / "bank"
        )
        self.receivers = Receivers(self)
        self.reader = engine  # the checks read on connections of their own
        self.ack_breaks: list[str] = []  # told "stored" when it was not (found at that moment)
        # What each Zengin request transaction could see: the bills with a live payment of
        # another channel, committed when the transaction began (commit order, not timestamps:
        # a request's created_at is read when it is queued, and a job queued later may run first)
        self.request_saw: dict[int, frozenset[int]] = {}
        self._request_before: tuple[int, frozenset[int]] | None = None

    def log(self, who: str, what: str) -> None:
        self.trace(who, what)

    def told_stored(self, who: str, messages: Sequence[tuple[str, str, str]]) -> None:
        """A network was just told that these messages (channel, kind, event key) are stored:
        they must be in the database now, committed (read on a connection of our own)."""
        if not messages:
            return
        c = collection_messages.c
        with self.reader.connect() as conn:
            found = set(
                conn.execute(
                    select(c.channel, c.kind, c.event_key).where(
                        c.event_key.in_(sorted({key for _, _, key in messages}))
                    )
                ).all()
            )
        for message in messages:
            if tuple(message) not in found:
                what = f"{who}: told {message[0]} {message[1]} {message[2]} is stored, it is not"
                self.ack_breaks.append(what)
                self.log("check", f"BREAK (at the ack) {what}")

    # -- the daemon's lives --------------------------------------------------------------------

    def start_daemon(self) -> None:
        self.restart_call = None
        if self.daemon is not None and self.daemon.alive:
            return
        self.life += 1
        process = Process(self.sim, self.life, random.Random(f"process/{self.seed}/{self.life}"))
        self.daemon = Daemon(
            self.config,
            process,
            self.db_faults,
            hook=self._job_hook,
            poster=self.receivers,
            engine=self.engine,
            randbelow=random.Random(f"issuer/{self.seed}/{self.life}").randrange,
            on_file=self.file_applied,
        )
        self.daemon.center_link = self.center
        self.stats["lives"] += 1
        self.log(f"gateway#{self.life}", "started from the database")
        self.agency.redial()

    def file_applied(self, network: str, name: str, data: bytes, result: FileResult) -> None:
        """The inbox has a file's result: an accepted file's records must all be stored."""
        self.log(f"gateway#{self.life}", f"{network} file {name}: {result.report[:160]}")
        if not result.accepted:
            return
        now = datetime.fromtimestamp(self.sim.seconds(), JST)
        if network == "cvs":
            parsed = parse_cvs_file(data, source=name)
            messages = [("cvs", "confirmation", r.event_key) for r in parsed.records]
        else:
            result_file = parse_zengin_file(data, source=name)
            debit_date = result_file.header.debit_date(now.date())
            events = zengin_events(result_file, debit_date=debit_date, name=name, received_at=now)
            messages = [(e.channel.value, e.kind.value, e.event_key) for e in events]
        self.told_stored(f"{network} file {name} accepted", messages)

    def crash(self, why: str) -> None:
        daemon = self.daemon
        if daemon is None or not daemon.alive:
            return
        self.injected["process.crash"] += 1
        self.log("fault", f"process.crash of gateway#{daemon.life}: {why}")
        daemon.kill()
        self.agency.gateway_died()
        self.restart_call = self.sim.call_later(self.rng.uniform(1.0, 120.0), self.start_daemon)

    def _watch_requests(self, stage: str) -> None:
        """Around a ``zengin.request`` job: note the bills already paid another way when it
        began, and give that set to every request it made."""
        with self.reader.connect() as conn:
            last = conn.execute(select(func.coalesce(func.max(zengin_requests.c.id), 0))).scalar()
            if stage == "before":
                paid = conn.execute(
                    select(payments.c.bill_id).where(
                        payments.c.bill_id.is_not(None),
                        payments.c.channel != "transfer",
                        payments.c.status.in_(("pending", "confirmed")),
                    )
                ).scalars()
                self._request_before = (int(last), frozenset(paid))
                return
            if self._request_before is None:
                return
            first, paid = self._request_before
            self._request_before = None
            for request_id in range(first + 1, int(last) + 1):
                self.request_saw[request_id] = paid

    def _job_hook(self, desc: str, stage: str) -> bool:
        """Asked by the store's pool around every job: a crash here? the link cut here?"""
        if desc == "zengin.request":
            self._watch_requests(stage)
        if stage == "before":
            for prefix in {desc[:i] for i in range(len(desc) + 1)}:
                self.job_counts[prefix] += 1
        if self.calm:
            return False
        for crash in list(self.crashes_left):
            if (
                crash.stage == stage
                and desc.startswith(crash.desc)
                and self.job_counts[crash.desc] >= crash.nth
            ):
                self.crashes_left.remove(crash)
                self.crash(f"{stage} the {desc} job #{self.job_counts[crash.desc]}")
                return True
        if (
            stage == "after"
            and desc == "cvs.link.commit"
            and self.rng.random() < self.plan.cut_after_commit
        ):
            self.injected["net.cut_after_commit"] += 1
            self.log("fault", "net.cut_after_commit: the link breaks before the acks go out")
            self.agency.cut("cut after commit")
        return False

    # -- the end: calm, drained ----------------------------------------------------------------

    def calm_down(self) -> None:
        self.calm = True
        self.db_faults.enabled = False
        self.agency.calm = self.center.calm = self.receivers.calm = True
        if self.agency.wire is not None:
            self.agency.wire.cut_mid_frame = 0.0
        if self.daemon is None or not self.daemon.alive:
            if self.restart_call is not None and self.restart_call.active():
                self.restart_call.cancel()
            self.start_daemon()
        self.log("world", "calm: no more faults; everyone finishes what they started")

    def unsettled(self) -> str | None:
        """What someone is still doing (None: everyone is done)."""
        daemon = self.daemon
        if daemon is None or not daemon.alive:
            return "the gateway is down"
        if self.agency.client.unacked:
            return f"{self.agency.client.unacked} 速報 unacked"
        if any(p.is_file() for p in self.cvs_inbox.iterdir()):
            return "確報 files wait in the inbox"
        assert self.config.zengin is not None
        if any(p.is_file() for p in self.config.zengin.inbox.iterdir()):
            return "transfer results wait in the inbox"
        if self.bank.bank.pending() or self.bank.bank.waiting():
            return "the bank has requests to answer"
        for p in self.center.payments.values():
            if not (p.answered or p.refused):
                return f"消込 {p.key} unanswered"
            if p.cancel_asked and p.answered and not p.cancelled and not p.cancel_refused:
                return f"取消 {p.key} unanswered"
        return None

    def drain(self) -> None:
        self.calm_down()
        now = datetime.fromtimestamp(self.sim.seconds(), JST)
        morning = datetime.combine(
            now.date() + timedelta(days=1), datetime.min.time(), tzinfo=JST
        ) + timedelta(hours=9)
        self.sim.jump(morning.timestamp() - self.sim.seconds())
        today = morning.date()
        # the last CSV poll covers every day: what the link or a file missed comes now
        self.at(morning + timedelta(minutes=1), self._last_poll, self.plan.start.date(), today)
        deadline = morning + timedelta(hours=4)
        step = morning + timedelta(minutes=3)
        self.sim.run_until(step.timestamp())
        while step < deadline and self.unsettled() is not None:
            step += timedelta(minutes=3)
            self.sim.run_until(step.timestamp())
        why = self.unsettled()
        if why is not None:
            self.log("world", f"not settled after 4 hours of calm: {why}")
            self.stats["unsettled"] += 1
        # webhook retries (backoff at most 2 minutes when calm) finish
        step += timedelta(minutes=4)
        self.sim.run_until(step.timestamp())
        # weeks pass: the settlement timer settles every period that closes meanwhile (each
        # landing fires it once), and the webhooks of what it made go out
        for days in (6, 11, 19):
            self.sim.jump(days * 86400.0)
            step += timedelta(days=days, minutes=3)
            self.log("world", f"{days} days later")
            self.sim.run_until(step.timestamp())

    def run(self) -> None:
        self.setup()
        self.start_daemon()
        self.bank_work()
        self.run_days()
        self.drain()


@contextlib.contextmanager
def gateway_logs(world: World) -> Iterator[None]:
    """The gateway's own log lines (twisted.logger) go into the trace, under the life that
    wrote them."""

    @implementer(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        if not world.trace.keep:
            return
        text = (formatEvent(event) or "").split("\n", 1)[0]
        failure = event.get("log_failure")
        if failure is not None:
            first = (str(failure.value).splitlines() or [""])[0][:160]
            text += f" [{type(failure.value).__name__}: {first}]"
        world.log(f"gateway#{world.life}", "log: " + text[:300])

    globalLogPublisher.addObserver(observe)
    try:
        yield
    finally:
        globalLogPublisher.removeObserver(observe)


def run_seed(
    seed: int,
    databases: Databases,
    base: Path,
    *,
    keep_trace: bool = False,
    mutant: str | None = None,
) -> Result:
    """Run one seed from a fresh database; its breaks (invariants that failed) and figures.
    ``mutant``: the seed's database is changed as that mutant needs (its code is patched by
    the caller, simulators.world.mutations)."""
    from simulators.world.invariants import check_world
    from simulators.world.mutations import DATABASE_CHANGES

    started = wall.perf_counter()
    workdir = base / f"seed-{seed}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    breaks: list[str] = []
    world: World | None = None
    try:
        with seeded_randomness(seed), databases.database(seed, workdir) as (url, engine):
            if mutant in DATABASE_CHANGES:
                DATABASE_CHANGES[mutant](url)
            world = World(seed, workdir, url, engine, keep_trace=keep_trace)
            try:
                with gateway_logs(world):
                    world.run()
            except Exception as e:  # the simulation itself must not fail: a break
                import traceback

                breaks.append(f"the run raised {type(e).__name__}: {e}")
                world.log("world", traceback.format_exc())
            if world.daemon is not None and world.daemon.alive:
                world.daemon.kill()
            world.db_faults.detach(engine)
            breaks += world.ack_breaks[:20]
            if not breaks:
                breaks += check_world(world)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert world is not None
    for b in breaks:
        world.log("check", f"BREAK: {b}")
    return Result(
        seed,
        databases.backend,
        breaks,
        world.injected,
        world.stats,
        wall.perf_counter() - started,
        world.trace,
        world.plan.summary(),
    )
