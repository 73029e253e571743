"""The account-transfer request schedule runs on the one job runner (gateway.infra.jobs): a
scheduled run that fails is logged and counted in ``gateway_zengin_run_failures_total``, and the
next tick runs again (a bare TimerService stops for good on its first failure).

The store is a stand-in whose first interaction fails; nothing reaches a database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer, task
from twisted.logger import globalLogPublisher

from gateway.config import load_config
from gateway.networks.zengin import RUN_FAILURES, ZenginNetwork
from tests.conftest import config_text


class FlakyStore:
    """Fails the first interaction; then no request file is left to write."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def run_interaction(self, desc: str, fn: Any, *args: Any) -> defer.Deferred[list[Any]]:
        self.calls.append(desc)
        if len(self.calls) == 1:
            return defer.fail(RuntimeError("database gone"))
        return defer.succeed([])


def test_a_failed_scheduled_run_is_logged_and_counted_and_the_next_tick_runs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(f"sqlite:///{tmp_path / 'unused.sqlite3'}"), encoding="utf-8")
    config = load_config(path)
    assert config.zengin is not None
    clock = task.Clock()
    store = FlakyStore()
    network = ZenginNetwork(config.zengin, store, None, clock)  # type: ignore[arg-type]
    schedule = network.services()[0]
    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    failures = RUN_FAILURES._value.get()
    try:
        schedule.startService()  # the first run, now: writing the pending files fails
        assert store.calls == ["zengin.stage"]
        assert RUN_FAILURES._value.get() == failures + 1
        assert any(
            "the next run tries again" in e.get("log_format", "")
            and e.get("what") == "zengin: a scheduled request run"
            for e in logged
        )
        assert schedule.running

        clock.advance(60)  # the next tick runs and succeeds
        assert store.calls == ["zengin.stage", "zengin.stage"]  # nothing staged: no write
        assert RUN_FAILURES._value.get() == failures + 1

        clock.advance(60)
        assert len(store.calls) == 3
    finally:
        schedule.stopService()
        globalLogPublisher.removeObserver(logged.append)
