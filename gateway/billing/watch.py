"""The operator's watch: gauges of what the ledger holds, for the alert rules and the dashboard
(deploy/prometheus/, deploy/grafana/; docs/runbook.md).

Counters say what happened in this process since it started; some alerts need the state of the
whole database instead: a 速報 still waiting for its 確報 days later, a refund case nobody has
resolved, an account-transfer debit whose result never came back, an endpoint with deliveries
piling up. Every ``interval`` seconds (and once at start) one read-only transaction
(gateway.store.watch) counts them, and the gauges below are set from its figures. Ages are as of
that run, so they lag by at most one interval. A run that fails is logged and counted in
``gateway_watch_run_failures_total``; the next one tries again.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from prometheus_client import Counter, Gauge
from twisted.application.internet import TimerService
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.infra.jobs import logged_run, timer
from gateway.model import JST, Channel, RefundReason
from gateway.store import Store
from gateway.store.watch import WatchFigures, watch_figures

log = Logger()

DEFAULT_INTERVAL = 60.0

PENDING = Gauge(
    "gateway_ledger_pending_payments",
    "Payments still pending (a 速報 or 消込 not yet confirmed), by channel.",
    ["channel"],
)
PENDING_AGE = Gauge(
    "gateway_ledger_pending_max_age_seconds",
    "Age (since it was paid) of the oldest payment still pending, by channel; 0 when none.",
    ["channel"],
)
OPEN_CASES = Gauge(
    "gateway_refund_cases_open", "Refund cases not yet resolved, by reason.", ["reason"]
)
OPEN_CASE_AGE = Gauge(
    "gateway_refund_cases_open_max_age_seconds",
    "Age (since it was opened) of the oldest refund case not yet resolved; 0 when none.",
)
UNANSWERED = Gauge(
    "gateway_zengin_unanswered_debits",
    "Account-transfer debits whose debit date (引落日) has passed with no result from the bank.",
)
UNANSWERED_AGE = Gauge(
    "gateway_zengin_unanswered_max_age_seconds",
    "Time since the start (JST) of the debit date of the oldest debit with no result; 0 when none.",
)
ENDPOINT_BACKLOG = Gauge(
    "gateway_webhook_endpoint_backlog",
    "Webhook deliveries not yet final (due, retrying or in flight), by endpoint id; "
    "only endpoints that have some.",
    ["endpoint"],
)
RUN_FAILURES = Counter(
    "gateway_watch_run_failures_total", "Runs of the operator's watch that failed (logged)."
)
for _channel in Channel:
    PENDING.labels(_channel.value)
    PENDING_AGE.labels(_channel.value)
for _reason in RefundReason:
    OPEN_CASES.labels(_reason.value)


def publish(figures: WatchFigures, now: datetime) -> None:
    """Set the gauges from one run's figures, as of ``now``."""
    for channel in Channel:
        PENDING.labels(channel.value).set(figures.pending.get(channel.value, 0))
        PENDING_AGE.labels(channel.value).set(_age(now, figures.oldest_pending.get(channel.value)))
    for reason in RefundReason:
        OPEN_CASES.labels(reason.value).set(figures.open_cases.get(reason.value, 0))
    for reason_name, n in figures.open_cases.items():
        OPEN_CASES.labels(reason_name).set(n)
    OPEN_CASE_AGE.set(_age(now, figures.oldest_open_case))
    UNANSWERED.set(figures.unanswered_debits)
    debit = figures.oldest_unanswered_debit
    UNANSWERED_AGE.set(_age(now, None if debit is None else datetime.combine(debit, time(), JST)))
    ENDPOINT_BACKLOG.clear()  # endpoints whose backlog is gone leave no series behind
    for endpoint_id, n in figures.webhook_backlog.items():
        ENDPOINT_BACKLOG.labels(endpoint_id).set(n)


def _age(now: datetime, then: datetime | None) -> float:
    if then is None:
        return 0.0
    return max(0.0, (now - then.astimezone(UTC)).total_seconds())


class WatchJob:
    """Counts what the gauges show through the store; ``run()`` is one run."""

    def __init__(self, store: Store, clock: IReactorTime) -> None:
        self.store = store
        self.clock = clock

    async def run(self) -> WatchFigures:
        figures: WatchFigures = await self.store.run_interaction(
            "watch.figures", watch_figures, clock_today(self.clock)
        )
        publish(figures, clock_now(self.clock))
        return figures

    def tick(self) -> object:
        """One scheduled run; a failure is logged and counted (the timer must keep going)."""
        d, _ = logged_run(self.run(), RUN_FAILURES, "The operator's watch", None)
        return d


def watch_service(job: WatchJob, interval: float, clock: IReactorTime) -> TimerService:
    """Runs ``job`` now and then every ``interval`` seconds on ``clock``."""
    return timer("watch", interval, job.tick, clock)
