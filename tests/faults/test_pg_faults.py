"""PostgreSQL connections cut under the real daemon (tests/faults/pgproxy.py between them).

One daemon, one life, three things it does while its connections are cut:

1. **Link ingest.** The agency streams 速報 in bursts. Every connection is cut while a group
   commit is inserting its payments (the transaction dies on the server), then again right
   after a group's COMMIT reached the server and before its answer came back (committed, and
   the daemon cannot know it). Then the proxy refuses connections (the database is down):
   ``/readyz`` answers 503 naming the store, the link answers ``90`` and the agency waits;
   the proxy accepts again, ``/readyz`` is 200 again. Every record is acknowledged ``00``
   and stored exactly once.
2. **A 確報 file in the inbox.** Cut in the middle of the file's transaction: the file stays
   in the inbox and the next scan applies it whole. A second file's COMMIT reaches the server
   and its answer is lost: the next scan finds every record already applied (its report says
   ``duplicate``). Every payment is confirmed once.
3. **The scheduled settlement run** (three billers, settled two at a time). A settlement's
   COMMIT is cut after it reached the server, and a later one in its middle: the run logs the
   failure and the next run goes on. Each biller has one settlement for the month, holding
   each of its payments once (and the suite's teardown checks that every settlement's lines
   add up to its payout).

The daemon is never restarted: it reconnects by itself. PostgreSQL only (skipped on SQLite,
which has no connection to cut); ``.ci/run`` runs the suite on PostgreSQL too.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from gateway.app.process import DaemonProcess, http
from gateway.mappers.cvs.mapper import RecordKind, build_file, parse_record
from gateway.model import JST
from gateway.store import create_db_engine
from gateway.store.schema import payments, settlements
from simulators.cvs import write_file
from tests.conftest import admin, jst_today, on_postgres
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
from tests.faults.pgproxy import PgProxy
from tests.test_cvs_link_e2e import Site, make_site, records_for

__all__ = ["certificates"]  # the session fixture, imported for the test below

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not on_postgres(),
        reason="PostgreSQL only (GATEWAY_TEST_DATABASE_URL): a TCP proxy cuts the daemon's "
        "connections to the server; SQLite has no connection to cut",
    ),
]

TIMEOUT = 30  # seconds: the bound of any one wait below
BILLERS = ("acme", "beta", "gamma")
BILLS = 12  # per biller: 36 bills, 108 payments


def proxied(url: str, port: int) -> str:
    """``url`` through the proxy on ``port``, in clear (the proxy reads the statements)."""
    through = make_url(url).set(host="127.0.0.1", port=port)
    return through.update_query_dict({"sslmode": "disable"}).render_as_string(hide_password=False)


async def within(d: Deferred[Any], timeout: float = TIMEOUT) -> Any:
    from twisted.internet import reactor  # noqa: TID251 - tests drive the real reactor

    return await d.addTimeout(timeout, reactor)


async def until(check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Poll ``check`` (run in a thread) every 0.1 s until it returns something true."""
    from twisted.internet import reactor  # noqa: TID251

    for _ in range(int(timeout * 10)):
        result = await deferToThread(check)
        if result:
            return result
        await deferLater(reactor, 0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def readyz(daemon: DaemonProcess, status: int) -> dict[str, Any] | None:
    """/readyz's body if it answers ``status``."""
    code, body, _ = http("GET", daemon.metrics + "/readyz", timeout=5)
    return body if code == status else None


async def stream(
    agency: Agency, queue: list[bytes], rng: random.Random, until: Deferred[None] | None = None
) -> None:
    """Send the records of ``queue`` in bursts of 1-10, 5-60 ms apart, at most 20
    unacknowledged, until it is empty; with ``until``, only until that fires (the rest stays in
    ``queue``), and then wait for it."""
    from twisted.internet import reactor  # noqa: TID251

    while queue and not (until is not None and until.called):
        if agency.unacked < 20:
            n = rng.randint(1, 10)
            agency.send_all(queue[:n])
            del queue[:n]
        await deferLater(reactor, rng.uniform(0.005, 0.06))
    if until is not None:
        await within(until)


def scalar(url: str, query: Any) -> Any:
    engine = create_db_engine(url, 1)
    try:
        with engine.connect() as conn:
            return conn.execute(query).scalar_one()
    finally:
        engine.dispose()


def moved(inbox: Path, name: str) -> str | None:
    """The report of ``name`` once the inbox has applied it; a rejection fails the test."""
    assert not (inbox / "rejected" / name).exists(), (inbox / "rejected").iterdir()
    report = inbox / "done" / f"{name}.report.txt"
    return report.read_text(encoding="utf-8") if (inbox / "done" / name).exists() else None


def confirmations(records: Sequence[bytes], day: date) -> list[Any]:
    """The 確報 of these 速報: the same payments, transferred on ``day``."""
    return [
        replace(parse_record(r), kind=RecordKind.CONFIRMATION, transfer_date=day, data_date=day)
        for r in records
    ]


def month_start(day: date, back: int) -> date:
    """The first day of the month ``back`` months before ``day``'s."""
    y, m = divmod(day.year * 12 + day.month - 1 - back, 12)
    return date(y, m + 1, 1)


def backdate(url: str, when: datetime) -> int:
    """Every confirmed payment confirmed at ``when`` (in a closed period); how many."""
    engine = create_db_engine(url, 1)
    try:
        with engine.begin() as conn:
            done = conn.execute(
                payments.update().where(payments.c.status == "confirmed").values(confirmed_at=when)
            )
            return int(done.rowcount)
    finally:
        engine.dispose()


@pytest_twisted.ensureDeferred
async def test_cut_connections_in_ingest_in_a_file_and_in_a_settlement_run(
    tmp_path: Path, migrated_url: str, certificates: Path
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    rng = random.Random(17)
    server = make_url(migrated_url)
    proxy = PgProxy(reactor, server.host or "127.0.0.1", server.port or 5432)
    port = await proxy.start()
    site: Site = make_site(tmp_path, migrated_url, tls=certificates)
    daemon_config = tmp_path / "daemon.toml"  # the same site, through the proxy
    daemon_config.write_text(
        site.config.read_text(encoding="utf-8").replace(migrated_url, proxied(migrated_url, port))
        + "\n[settlement]\ninterval = 1.1\n",
        encoding="utf-8",
    )
    keys = {biller: onboard_biller(site.config, biller) for biller in BILLERS}
    daemon = start_daemon(site, config=daemon_config)
    agency = None
    try:
        await deferToThread(daemon.wait, "/readyz")
        codes = []
        for biller, key in keys.items():
            codes += await deferToThread(bill_codes, daemon, key, BILLS, biller)
        records = records_for(codes, 3)
        half = len(records) // 2

        # 1. link ingest
        agency = Agency(reactor, site)
        queue = list(records)
        await stream(agency, queue, rng, proxy.cut_on(b"INSERT INTO payments (", nth=2))
        unknown = proxy.cut_on(b"INSERT INTO payments (", nth=2, at=b"COMMIT", deliver=True)
        await stream(agency, queue, rng, unknown)
        assert len(queue) > 10, "the cuts took too many records"

        await proxy.refuse()
        down = await until(lambda: readyz(daemon, 503), "/readyz 503 while refused")
        assert down["ready"] is False
        assert down["checks"]["store"].startswith("unavailable"), down
        retries = len(agency.client.acked["90"])
        agency.send_all(queue[:10])
        del queue[:10]
        await until(lambda: len(agency.client.acked["90"]) > retries, "a 90 while refused")
        await proxy.accept()
        up = await until(lambda: readyz(daemon, 200), "/readyz 200 once accepted")
        assert up["checks"]["store"] == "ok"
        await stream(agency, queue, rng)
        assert await agency.all_answered() == ["00"] * len(records)
        stored = await deferToThread(stored_keys, migrated_url)
        assert sorted(stored) == sorted(event_key(r) for r in records)
        assert await deferToThread(messages_stored, migrated_url) == len(records)
        assert len(agency.client.acked["90"]) > retries  # the cuts were answered 90, resent

        # 2. 確報 files
        inbox, today = tmp_path / "inbox", jst_today()
        done = confirmations(records, today)
        cut = proxy.cut_on(b"UPDATE payments SET", nth=1)
        write_file(inbox, "kakuho-1.dat", build_file(today, "987654", "ｼﾕｳﾉｳ", done[:half]))
        await within(cut)
        first = await until(lambda: moved(inbox, "kakuho-1.dat"), "kakuho-1.dat applied")
        cut = proxy.cut_on(b"UPDATE payments SET", nth=1, at=b"COMMIT", deliver=True)
        write_file(inbox, "kakuho-2.dat", build_file(today, "987654", "ｼﾕｳﾉｳ", done[half:]))
        await within(cut)
        second = await until(lambda: moved(inbox, "kakuho-2.dat"), "kakuho-2.dat applied")
        assert "duplicate" not in first, first  # the cut transaction left nothing
        assert f"duplicate {len(records) - half}" in second, second  # its COMMIT had happened
        confirmed = select(func.count()).where(payments.c.status == "confirmed")
        assert await deferToThread(scalar, migrated_url, confirmed) == len(records)
        assert await deferToThread(messages_stored, migrated_url) == 2 * len(records)

        # 3. the settlement run: last month's confirmed payments, three billers
        last_month = month_start(today, 1)
        when = datetime.combine(last_month + timedelta(days=14), datetime.min.time(), JST)
        assert await deferToThread(backdate, migrated_url, when) == len(records)
        plan = tmp_path / "plan.json"
        plan.write_text(
            json.dumps(
                {
                    "effective_from": last_month.isoformat(),
                    "cycle": "monthly",
                    "payout_days": 3,
                    "settlement_fee": 500,
                    "channels": {"cvs": {"per_payment": 60}},
                }
            ),
            encoding="utf-8",
        )
        unknown = proxy.cut_on(b"INSERT INTO settlements (", nth=1, at=b"COMMIT", deliver=True)
        for biller in BILLERS:  # the next run settles it
            admin(site.config, "contract", "set", "--biller", biller, "--plan", str(plan))
        await within(unknown)
        # at least one biller is left for the next run (its worker was cut too, or waits)
        await within(proxy.cut_on(b"INSERT INTO settlements (", nth=1))
        count = select(func.count()).select_from(settlements)
        await until(lambda: scalar(migrated_url, count) == len(BILLERS), "every biller settled")
        await deferLater(reactor, 2.5)  # two more runs: they must settle nothing more
        assert await deferToThread(scalar, migrated_url, count) == len(BILLERS)
        assert daemon.proc is not None and daemon.proc.poll() is None  # never restarted
    finally:
        if agency is not None:
            await agency.stop()
        await deferToThread(daemon.stop)
        await proxy.stop()
    engine = create_db_engine(migrated_url, 1)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.biller_id, s.payments_count, s.collected, count(p.payment_id), "
                "sum(p.amount) FROM settlements s JOIN payments p "
                "ON p.settlement_id = s.settlement_id GROUP BY s.settlement_id"
            )
        ).all()
        unsettled = conn.execute(
            select(func.count()).where(payments.c.settlement_id.is_(None))
        ).scalar_one()
    engine.dispose()
    assert unsettled == 0
    assert sorted(r[0] for r in rows) == sorted(BILLERS)
    for biller, count_, collected, taken, total in rows:
        assert count_ == taken == 3 * BILLS, biller
        assert collected == total, biller
    log = daemon.output()
    assert "Settling" in log and "the next run tries again" in log  # the cut run failed
    assert proxy.cuts >= 7  # 2 in ingest, the refusal, 2 in files, 2 in settlements
