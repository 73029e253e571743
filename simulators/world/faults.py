"""The fault plan of a seed, and the database faults injected into the real store.

:func:`draw_plan` turns a seed into a :class:`FaultPlan`: for each kind of fault whether it
happens at all in this seed and how often, so that some seeds are calm in a dimension and
others stormy. Faults happen during the storm (the workload's days); the last stretch of every
seed is calm, so that every party can finish what it was doing (resends, re-polls, retries)
and the invariants can be held against a settled world.

Database faults go in through SQLAlchemy, under the real ``gateway.store.Store``:

- ``db.retryable`` — a serialization failure or deadlock (PostgreSQL: SQLSTATE 40001 / 40P01;
  SQLite: "database is locked") raised by a statement inside a transaction: the store retries.
- ``db.lost_connection`` — the connection dies inside a transaction (PostgreSQL: "server closed
  the connection unexpectedly"; SQLite: a disk I/O error): the transaction is rolled back and
  the caller sees the error.
- ``db.commit_unknown`` — the transaction commits, then the client is told the connection was
  lost: the caller sees an error for work that is in the database.
- ``db.disk_full`` — SQLite only: a write statement fails with "database or disk is full".
- ``db.server_restart`` — PostgreSQL only: the server ends every session of the seed's database
  (``pg_terminate_backend``), as a restart would; the pool's pre-ping reconnects.

Each is raised from the engine's ``before_cursor_execute`` event (so it is wrapped by
SQLAlchemy exactly as the driver's own error would be) or, for the commit, by
:class:`FaultyEngine` right after the real commit.
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from gateway.model import JST

#: Days a seed may start on: month ends, a leap day, the turn of the year, Golden Week, the
#: Obon and Silver Week stretches, plain weekdays and a Friday before a holiday Monday.
START_DAYS = (
    date(2027, 1, 29),
    date(2027, 2, 26),
    date(2027, 4, 28),
    date(2027, 5, 31),
    date(2027, 9, 17),
    date(2027, 11, 30),
    date(2027, 12, 29),
    date(2028, 2, 28),  # 2028 is a leap year: the 29th exists
    date(2028, 2, 29),
    date(2028, 3, 17),
    date(2028, 4, 27),
    date(2028, 6, 30),
    date(2028, 7, 14),
    date(2028, 8, 10),
    date(2028, 10, 6),
    date(2028, 12, 28),
    date(2029, 2, 27),
    date(2029, 4, 30),
)


@dataclass(frozen=True)
class Crash:
    """Kill the process at the ``nth`` store job whose description starts with ``desc``, at
    ``stage`` ("before": the transaction never runs; "after": it committed, the process never
    learns). ``desc`` "" with ``at`` set: at that simulated second instead."""

    desc: str
    stage: str
    nth: int
    at: float | None = None

    def describe(self) -> str:
        if self.at is not None:
            return f"at +{self.at:.1f}s"
        return f"{self.stage} {self.desc or 'any'} job #{self.nth}"


#: Where crashes land: the link's group commit, a 確報 file, the agency CSV, a settlement, an
#: MPN answer, a transfer result file, a bill, webhook bookkeeping, anything.
CRASH_SITES = (
    "cvs.link.commit",
    "cvs.link.commit",
    "cvs.file",
    "cvs.agency",
    "settlement.settle",
    "mpn.payment",
    "mpn.close",
    "zengin.result",
    "zengin.request",
    "zengin.write",
    "bills.",
    "webhooks.",
    "",
)


@dataclass
class FaultPlan:
    seed: int
    start: datetime  # the first moment of the seed, JST
    days: int  # business days of traffic
    # network
    latency: tuple[float, float] = (0.001, 0.02)
    split: float = 0.0
    cut_mid_frame: float = 0.0  # per write of the agency
    duplicate: float = 0.0  # per DT frame: the agency sends it twice
    reorder: float = 0.0  # per DT frame: it goes after the next one
    drop: float = 0.0  # per DT frame: lost (the agency times out, reconnects, resends)
    cut_after_commit: float = 0.0  # per link commit: the connection breaks before the ack
    disconnects: float = 0.0  # per minute of traffic: the connection breaks now
    replay: float = 0.0  # per minute of traffic: the agency sends acked records again
    # files and polls
    repeat_file: float = 0.0  # a 確報 file is dropped into the inbox again
    overlap: float = 0.0  # a record of an earlier 確報 file is repeated in the next
    duplicate_record: float = 0.0  # per 確報 file or CSV answer: one record in it twice
    repoll: float = 0.0  # per CSV poll: the window is polled again
    # database
    retryable: float = 0.0  # per store job
    lost_connection: float = 0.0
    commit_unknown: float = 0.0
    disk_full: float = 0.0
    server_restart: float = 0.0  # PostgreSQL, per traffic minute: every connection is cut
    # process
    crashes: list[Crash] = field(default_factory=list)
    # time
    jump: float = 0.0  # per traffic minute: the clock jumps (a VM paused, a long stall)

    def summary(self) -> str:
        parts = [f"start {self.start:%Y-%m-%d %H:%M} JST", f"{self.days} day(s)"]
        for name in (
            "split",
            "cut_mid_frame",
            "duplicate",
            "reorder",
            "drop",
            "cut_after_commit",
            "disconnects",
            "replay",
            "repeat_file",
            "overlap",
            "duplicate_record",
            "repoll",
            "retryable",
            "lost_connection",
            "commit_unknown",
            "disk_full",
            "server_restart",
            "jump",
        ):
            value = getattr(self, name)
            if value:
                parts.append(f"{name}={value:.3f}")
        if self.crashes:
            parts.append("crashes: " + "; ".join(c.describe() for c in self.crashes))
        return ", ".join(parts)


def draw_plan(seed: int, *, sqlite: bool) -> FaultPlan:
    """The seed's faults: each kind on in about half the seeds, at a seed-drawn rate."""
    rng = random.Random(f"faults/{seed}")

    def some(low: float, high: float, on: float = 0.5) -> float:
        return rng.uniform(low, high) if rng.random() < on else 0.0

    day = rng.choice(START_DAYS)
    start = datetime.combine(day, time(8, rng.randrange(0, 60)), tzinfo=JST)
    plan = FaultPlan(seed=seed, start=start, days=rng.randint(1, 3))
    plan.latency = (0.0005, rng.choice((0.005, 0.05, 0.5, 2.0)))
    plan.split = some(0.1, 0.6)
    plan.cut_mid_frame = some(0.002, 0.03, 0.3)
    plan.duplicate = some(0.02, 0.2)
    plan.reorder = some(0.02, 0.2, 0.3)
    plan.drop = some(0.01, 0.08, 0.3)
    plan.cut_after_commit = some(0.02, 0.15, 0.4)
    plan.disconnects = some(0.01, 0.1, 0.4)
    plan.replay = some(0.02, 0.1, 0.3)
    plan.repeat_file = some(0.2, 0.6)
    plan.overlap = some(0.1, 0.5)
    plan.repoll = some(0.2, 0.6)
    plan.duplicate_record = some(0.3, 0.8, 0.6)
    plan.retryable = some(0.01, 0.1)
    plan.lost_connection = some(0.005, 0.05, 0.4)
    plan.commit_unknown = some(0.005, 0.05, 0.4)
    plan.disk_full = some(0.005, 0.03, 0.3) if sqlite else 0.0
    plan.server_restart = 0.0 if sqlite else some(0.01, 0.05, 0.4)
    plan.jump = some(0.01, 0.05, 0.3)
    crashes = rng.choice((0, 0, 1, 1, 2, 3))
    for _ in range(crashes):
        if rng.random() < 0.25:
            plan.crashes.append(Crash("", "at", 0, at=rng.uniform(60, plan.days * 3000.0)))
        else:
            site = rng.choice(CRASH_SITES)
            plan.crashes.append(
                Crash(site, rng.choice(("before", "after")), rng.randint(1, 4 if site else 60))
            )
    return plan


class Injected(Counter[str]):
    """Faults injected, by kind."""


def _dbapi_error(sqlite: bool, kind: str, rng: random.Random) -> Exception:
    """The driver's own exception for a fault, as the driver would raise it."""
    if sqlite:
        message = {
            "retryable": "database is locked",
            "lost_connection": "disk I/O error",
            "commit_unknown": "disk I/O error",
            "disk_full": "database or disk is full",
        }[kind]
        return sqlite3.OperationalError(message)
    import psycopg
    import psycopg.errors

    if kind == "retryable":
        cls = rng.choice((psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected))
        return cls("could not serialize access due to concurrent update (injected)")
    return psycopg.OperationalError("server closed the connection unexpectedly (injected)")


class DatabaseFaults:
    """Decides, per store transaction, whether and where a database fault strikes."""

    def __init__(
        self,
        plan: FaultPlan,
        rng: random.Random,
        injected: Injected,
        log: Callable[[str, str], None],
        *,
        sqlite: bool,
    ) -> None:
        self.plan = plan
        self.rng = rng
        self.injected = injected
        self.log = log
        self.sqlite = sqlite
        self.enabled = True
        self._armed: tuple[str, int] | None = None  # (kind, statement number) this transaction
        self._statements = 0
        self._commit_lost = False

    def attach(self, engine: Engine) -> None:
        """Strike through ``engine`` from now on (one listener per engine, whoever attaches)."""
        router = getattr(engine, "_sim_faults", None)
        if router is None:
            router = _Router()
            event.listen(engine, "before_cursor_execute", router)
            engine._sim_faults = router  # type: ignore[attr-defined]
        router.faults = self

    def detach(self, engine: Engine) -> None:
        router = getattr(engine, "_sim_faults", None)
        if router is not None and router.faults is self:
            router.faults = None

    def begin(self) -> None:
        """A transaction starts: arm at most one fault for it."""
        self._statements = 0
        self._armed = None
        self._commit_lost = False
        if not self.enabled:
            return
        p = self.plan
        draw = self.rng.random()
        for kind, rate in (
            ("retryable", p.retryable),
            ("lost_connection", p.lost_connection),
            ("disk_full", p.disk_full),
        ):
            if draw < rate:
                self._armed = (kind, self.rng.randint(1, 6))
                return
            draw -= rate
        if draw < p.commit_unknown:
            self._commit_lost = True

    def end(self) -> None:
        self._armed = None

    def commit_lost(self) -> bool:
        lost, self._commit_lost = self._commit_lost, False
        return lost

    def _before_cursor_execute(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if self._armed is None:
            return
        head = statement.lstrip()[:10].upper()
        if head.startswith(("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "PRAGMA")):
            return
        kind, at = self._armed
        if kind == "disk_full" and not head.startswith(("INSERT", "UPDATE", "DELETE")):
            return
        self._statements += 1
        if self._statements < at:
            return
        self._armed = None
        self.injected[f"db.{kind}"] += 1
        self.log("fault", f"db.{kind} on statement {self._statements}: {statement[:60]!r}")
        raise _dbapi_error(self.sqlite, kind, self.rng)


class _Router:
    """The engine's one listener, handing each statement to the faults of the current seed."""

    faults: DatabaseFaults | None = None

    def __call__(self, *args: Any) -> None:
        if self.faults is not None:
            self.faults._before_cursor_execute(*args)


class FaultyEngine:
    """The real engine, seen by the store: a transaction may commit and then report a lost
    connection (the client never learns that its commit went through)."""

    def __init__(self, engine: Engine, faults: DatabaseFaults) -> None:
        self._engine = engine
        self._faults = faults
        faults.attach(engine)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        self._faults.begin()
        try:
            with self._engine.begin() as conn:
                yield conn
        finally:
            self._faults.end()
        if self._faults.commit_lost():
            self._faults.injected["db.commit_unknown"] += 1
            self._faults.log("fault", "db.commit_unknown: committed, the answer is lost")
            error = _dbapi_error(self._faults.sqlite, "commit_unknown", self._faults.rng)
            raise OperationalError("COMMIT", None, error, connection_invalidated=True)


__all__ = [
    "CRASH_SITES",
    "START_DAYS",
    "Crash",
    "DatabaseFaults",
    "FaultPlan",
    "FaultyEngine",
    "Injected",
    "draw_plan",
]
