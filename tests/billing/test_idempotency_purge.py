"""The Idempotency-Key purge (gateway/billing/idempotency_purge.py) on a driven clock.

The store is a stand-in whose first purge fails: the failure is logged and counted, and the
timer keeps going (a bare TimerService stops for good on its first failure).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from twisted.internet import defer, task
from twisted.logger import globalLogPublisher

from gateway.billing.idempotency_purge import (
    INTERVAL,
    RUN_FAILURES,
    IdempotencyPurge,
    idempotency_purge_service,
)
from gateway.store.idempotency import purge_expired


class FlakyStore:
    """Fails the first interaction; then answers 3 for every purge."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, tuple[Any, ...]]] = []

    def run_interaction(self, desc: str, fn: Any, *args: Any) -> defer.Deferred[int]:
        self.calls.append((desc, fn, args))
        if len(self.calls) == 1:
            return defer.fail(RuntimeError("database gone"))
        return defer.succeed(3)


def test_a_failed_purge_is_logged_and_counted_and_the_next_tick_runs() -> None:
    clock = task.Clock()
    clock.advance(datetime(2026, 12, 6, 12, tzinfo=UTC).timestamp())
    store = FlakyStore()
    job = IdempotencyPurge(store, clock, timedelta(hours=24))  # type: ignore[arg-type]
    service = idempotency_purge_service(job, clock)
    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    failures = RUN_FAILURES._value.get()
    try:
        service.startService()  # the first run, now: it fails
        assert job.running is not None
        assert job.running.result == 0
        assert RUN_FAILURES._value.get() == failures + 1
        assert any(
            "the next run tries again" in e.get("log_format", "")
            and e.get("what") == "The Idempotency-Key purge"
            for e in logged
        )
        assert service.running

        clock.advance(INTERVAL)  # the next tick runs and succeeds
        assert len(store.calls) == 2
        assert job.running.result == 3
        assert RUN_FAILURES._value.get() == failures + 1
        desc, fn, args = store.calls[1]
        assert (desc, fn) == ("idempotency.purge", purge_expired)
        # The records older than the TTL and an hour more.
        assert args == (datetime(2026, 12, 6, 13, tzinfo=UTC) - timedelta(hours=25),)

        clock.advance(INTERVAL)
        assert len(store.calls) == 3
    finally:
        service.stopService()
        globalLogPublisher.removeObserver(logged.append)
