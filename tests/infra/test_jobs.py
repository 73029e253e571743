"""A periodic job cut by the store stopping (the daemon shutting down) has not failed: it is
neither counted nor logged as a failure, and leaves no traceback in the daemon's log."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from prometheus_client import CollectorRegistry, Counter
from twisted.internet import reactor  # noqa: TID251 - the store's threads need the reactor
from twisted.logger import globalLogPublisher

from gateway.errors import StoreError
from gateway.infra.jobs import logged_run
from gateway.store import Store


@pytest_twisted.ensureDeferred
async def test_a_run_cut_by_the_stopping_store_is_not_a_failure(migrated_url: str) -> None:
    failures = Counter("job_failures", "test", registry=CollectorRegistry())
    store = Store.from_url(migrated_url, reactor, 1)
    seen: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)

    async def run() -> str:
        return await store.run_interaction("test.select", lambda conn: "done")

    try:
        # Never started: the store cannot do what is asked, a failure.
        _, watched = logged_run(run(), failures, "The test job", "failed")
        assert await watched == "failed" and failures._value.get() == 1
        store.start()
        _, watched = logged_run(run(), failures, "The test job", "failed")
        assert await watched == "done"
        store.stop()
        _, watched = logged_run(run(), failures, "The test job", "failed")
        assert await watched == "failed"
    finally:
        globalLogPublisher.removeObserver(seen.append)
        store.stop()
    assert failures._value.get() == 1  # the run after stop() is not counted
    tracebacks = [e for e in seen if e.get("log_failure") is not None]
    assert len(tracebacks) == 1 and tracebacks[0]["log_failure"].check(StoreError)
    assert any("stopped with the store" in str(e.get("log_format")) for e in seen)
