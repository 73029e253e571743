"""Webhook delivery woken by the commit that wrote the event, not by its timer: with
``poll_interval`` at its longest (60 s) a webhook still leaves as soon as its event commits —
a bill created through this daemon's API (the store's in-process signal), and, on PostgreSQL,
events committed by another process on the same database (LISTEN/NOTIFY). The real service
(make_service) in this process, the receiver of test_webhooks.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_twisted
from sqlalchemy.engine import Connection

from gateway.store import Store
from gateway.store.events import append_event
from tests.conftest import on_postgres
from tests.webhooks.test_webhooks import (
    Receiver,
    gateway_with,
    new_bills,
    reactor,
    register,
    wait_for,
)

LONGEST_POLL = 60  # [webhooks] poll_interval's maximum: nothing here waits for it
WITHIN = 20.0  # well under one poll interval


@pytest_twisted.async_yield_fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    r.start()
    try:
        yield r
    finally:
        await r.stop()


@pytest_twisted.ensureDeferred
async def test_a_webhook_leaves_when_its_event_commits_not_at_the_next_poll(
    tmp_path: Path, migrated_url: str, receiver: Receiver
) -> None:
    async with gateway_with(tmp_path, migrated_url, poll_interval=LONGEST_POLL) as gw:
        acme = gw.onboard("acme")
        await register(gw, acme, receiver, "/acme")
        event_ids = await new_bills(gw, acme, 3)
        await wait_for(
            "every bill.created webhook",
            lambda: {a.event_id for a in receiver.at("/acme")} == set(event_ids),
            timeout=WITHIN,
        )
        arrivals = receiver.at("/acme")
        assert len(arrivals) == 3 and all(a.verified == "ok" for a in arrivals)


def other_daemon_writes(conn: Connection, n: int) -> None:
    for i in range(n):
        append_event(
            conn,
            biller_id="acme",
            event_id=f"evt_other{i:019x}",
            type="bill.created",
            data={"i": i},
            now=datetime.now(UTC),
        )


@pytest.mark.skipif(
    not on_postgres(), reason="LISTEN/NOTIFY is PostgreSQL's (GATEWAY_TEST_DATABASE_URL); .ci/run"
)
@pytest_twisted.ensureDeferred
async def test_another_daemon_commit_wakes_this_daemon_delivery(
    tmp_path: Path, migrated_url: str, receiver: Receiver
) -> None:
    async with gateway_with(tmp_path, migrated_url, poll_interval=LONGEST_POLL) as gw:
        acme = gw.onboard("acme")
        await register(gw, acme, receiver, "/acme")
        other = Store.from_url(migrated_url, reactor(), 1)  # another daemon's store
        other.start()
        try:
            await other.run_interaction("test.other_daemon", other_daemon_writes, 4)
        finally:
            other.stop()
        wanted = {f"evt_other{i:019x}" for i in range(4)}
        await wait_for(
            "the other daemon's events, delivered by this one",
            lambda: {a.event_id for a in receiver.at("/acme")} == wanted,
            timeout=WITHIN,
        )
        assert all(a.verified == "ok" for a in receiver.at("/acme"))
