"""The purge of expired Idempotency-Key records: every hour, the records older than
``[api] idempotency_ttl`` (and an hour more) are deleted.

The job runs on the injected clock (:func:`idempotency_purge_service`), and once when the daemon
starts. A run that fails is logged and counted, and the next one tries again (the one job
runner, :func:`gateway.infra.jobs.logged_run`).
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import Counter
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from gateway.clock import now
from gateway.infra.jobs import logged_run, timer
from gateway.store import Store
from gateway.store.idempotency import purge_expired

INTERVAL = 3600  # seconds
GRACE = timedelta(hours=1)  # kept this much longer than the TTL

RUN_FAILURES = Counter(
    "gateway_idempotency_purge_run_failures_total",
    "Runs of the Idempotency-Key purge that failed (logged).",
)


class IdempotencyPurge:
    """Deletes expired Idempotency-Key records; ``run()`` is one run of the job."""

    def __init__(self, store: Store, clock: IReactorTime, ttl: timedelta) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self.running: Deferred[int] | None = None  # the last run; fires with its count

    async def run(self) -> int:
        """How many records were deleted."""
        cutoff = now(self.clock) - self.ttl - GRACE
        return await self.store.run_interaction("idempotency.purge", purge_expired, cutoff)

    def tick(self) -> Deferred[int]:
        """One scheduled run; a failure is logged and counted (the timer must keep going)."""
        d, self.running = logged_run(self.run(), RUN_FAILURES, "The Idempotency-Key purge", 0)
        return d


def idempotency_purge_service(job: IdempotencyPurge, clock: IReactorTime) -> TimerService:
    """Runs ``job`` now and then every hour on ``clock``."""
    return timer("idempotency-purge", INTERVAL, job.tick, clock)
