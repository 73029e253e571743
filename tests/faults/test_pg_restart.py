"""PostgreSQL restarted (``pg_ctl restart -m fast``) twice while the agency streams 速報 to the
real daemon.

The daemon's database is a private cluster (tests/faults/pgcluster.py), not the shared server.
A fast restart ends every session (the transactions in flight die), refuses connections while
the server is down and comes back with what was committed. The daemon answers ``90`` to what it
could not commit, the agency resends, and the pool reconnects by itself: every record is
acknowledged ``00`` and stored exactly once, nothing acknowledged is lost, ``/readyz`` is 200
again, and it is the same daemon process throughout (no restart of its own).

Run with the PostgreSQL suite (GATEWAY_TEST_DATABASE_URL set), skipped on the SQLite run.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from sqlalchemy import create_engine
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from gateway.app.process import http
from tests.conftest import admin, on_postgres
from tests.faults.link import (
    Agency,
    bill_codes,
    certificates,
    event_key,
    messages_stored,
    onboard_biller,
    start_daemon,
    stored_keys,
)
from tests.faults.pgcluster import PrivateCluster, unavailable
from tests.test_cvs_link_e2e import make_site, records_for

__all__ = ["certificates"]  # the session fixture, imported for the test below

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not on_postgres(),
        reason="PostgreSQL only: runs with the PostgreSQL suite (GATEWAY_TEST_DATABASE_URL), "
        "on a private cluster it restarts",
    ),
    pytest.mark.skipif(unavailable() is not None, reason=f"{unavailable()}"),
]


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    made = PrivateCluster()
    try:
        made.start()
        yield made
    finally:
        made.stop()


def create_database(cluster: PrivateCluster, name: str) -> str:
    engine = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return cluster.url(name)


@pytest_twisted.ensureDeferred
async def test_postgresql_restarts_while_the_link_streams(
    tmp_path: Path, cluster: PrivateCluster, certificates: Path
) -> None:
    from twisted.internet import reactor  # noqa: TID251 - tests drive the real reactor

    rng = random.Random(5)
    url = create_database(cluster, "gateway")
    site = make_site(tmp_path, url, tls=certificates)
    admin(site.config, "migrate")
    key = onboard_biller(site.config)
    daemon = start_daemon(site)
    agency = None
    try:
        await deferToThread(daemon.wait, "/readyz")
        records = records_for(await deferToThread(bill_codes, daemon, key, 40), 3)  # 120
        agency = Agency(reactor, site)
        queue = list(records)
        in_flight: list[tuple[int, int]] = []  # unacknowledged, sent during: each restart

        async def feed() -> None:
            while queue:
                if agency.unacked < 20:
                    n = rng.randint(1, 10)
                    agency.send_all(queue[:n])
                    del queue[:n]
                await deferLater(reactor, rng.uniform(0.005, 0.06))

        feeding = Deferred.fromCoroutine(feed())
        for share in (0.25, 0.55):  # of the records acknowledged: restart then
            while len(agency.acked) < share * len(records) or not agency.unacked:
                await deferLater(reactor, 0.005)
            unacked, before = agency.unacked, agency.sent
            await deferToThread(cluster.restart)  # the feed goes on meanwhile
            in_flight.append((unacked, agency.sent - before))
        await feeding
        assert await agency.all_answered() == ["00"] * len(records)
        code, body, _ = await deferToThread(http, "GET", daemon.metrics + "/readyz")
        assert code == 200, body
        assert daemon.proc is not None and daemon.proc.poll() is None  # never restarted
    finally:
        if agency is not None:
            await agency.stop()
        await deferToThread(daemon.stop)
    stored = stored_keys(url)
    assert sorted(stored) == sorted(event_key(r) for r in records)  # each once
    assert messages_stored(url) == len(records)
    assert all(unacked > 0 for unacked, _ in in_flight), in_flight  # restarted mid-stream
    assert agency.client.acked["90"], "no record was refused while the server was down"
