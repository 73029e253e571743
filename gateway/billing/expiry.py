"""The expiry job: open bills past their due date become ``expired`` (DESIGN.md §4).

A bill is expired on the JST business day *after* its due date (``ledger.expire_bill``: ``due_date
< today``). Each run takes the overdue open bills in batches of ``batch_size``, one transaction per
batch: the bills are locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several daemons share
the work instead of waiting for each other), moved through ``ledger.expire_bill`` and written
with their ``bill.expired`` events (``{"bill": …}``, as every bill event). A bill that another
run has expired in the meantime is no longer open, so it is never expired twice.

A bill whose account-transfer debit is in flight (a request item with no result yet, for a
debit date on or before the due date) is left open: its result may be a payment made on time.
It expires on the first run after a failure result arrives; a success makes it confirmed.

The job runs every ``[bills] expiry_interval`` seconds on the injected clock
(:func:`expiry_service`), and once when the daemon starts. A run that fails is logged and the
next one tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy.engine import Connection
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway import ids, ledger
from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.infra.jobs import logged_run, timer
from gateway.model import Bill
from gateway.store import Store
from gateway.store.bills import update_bills
from gateway.store.events import append_events
from gateway.store.expiry import lock_overdue

log = Logger()

BILLS_EXPIRED = Counter("gateway_bills_expired_total", "Bills the expiry job moved to expired.")
RUN_FAILURES = Counter(
    "gateway_bills_expiry_run_failures_total", "Runs of the expiry job that failed (logged)."
)

DEFAULT_BATCH = 500
DEFAULT_MAX_BATCHES = 100  # per run: the rest waits for the next run


def expire_batch(
    conn: Connection,
    today: date,
    now: datetime,
    limit: int,
    render: Callable[[Bill], Any],
    new_id: Callable[[str], str] = ids.new_id,
) -> int:
    """Expire up to ``limit`` overdue bills in the caller's transaction; how many it expired."""
    changed: list[tuple[int, Bill]] = []
    events: dict[str, list[tuple[str, str, Any]]] = {}
    for bill_id, bill in lock_overdue(conn, today, limit):
        outcome = ledger.expire_bill(bill, today=today, now=now)
        if not outcome.bill_changed or outcome.bill is None:
            continue
        changed.append((bill_id, outcome.bill))
        for event in outcome.events:
            events.setdefault(bill.biller_id, []).append(
                (new_id("evt"), event.type.value, {"bill": render(outcome.bill)})
            )
    update_bills(conn, changed)
    for biller_id in sorted(events):  # last, in a fixed order: the billers' seq row locks
        append_events(conn, biller_id, events[biller_id], now)
    return len(changed)


class ExpiryJob:
    """Expires overdue bills through the store; ``run()`` is one run of the job."""

    def __init__(
        self,
        store: Store,
        clock: IReactorTime,
        render: Callable[[Bill], Any],
        *,
        batch_size: int = DEFAULT_BATCH,
        max_batches: int = DEFAULT_MAX_BATCHES,
    ) -> None:
        self.store = store
        self.clock = clock
        self.render = render
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.running: Deferred[int] | None = None  # the last run; fires with its count

    async def run(self) -> int:
        """Expire every overdue bill (up to ``max_batches`` batches); how many were expired."""
        total = 0
        for _ in range(self.max_batches):
            # The date and time of each batch come from the clock when it starts.
            expired = await self.store.run_interaction(
                "bills.expire",
                expire_batch,
                clock_today(self.clock),
                clock_now(self.clock),
                self.batch_size,
                self.render,
            )
            total += expired
            BILLS_EXPIRED.inc(expired)
            if expired < self.batch_size:
                break
        if total:
            log.info("Expired {count} overdue bill(s)", count=total)
        return total

    def tick(self) -> Deferred[int]:
        """One scheduled run; a failure is logged and counted (the timer must keep going)."""
        d, self.running = logged_run(self.run(), RUN_FAILURES, "The expiry job", 0)
        return d


def expiry_service(job: ExpiryJob, interval: float, clock: IReactorTime) -> TimerService:
    """Runs ``job`` now and then every ``interval`` seconds on ``clock``."""
    return timer("bills-expiry", interval, job.tick, clock)
