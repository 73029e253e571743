"""What the fault tests share: the real daemon started with a test-only environment, an agency
that reconnects at once and remembers what it was acknowledged, and what the store holds.

The daemon is the real one (``twistd -n gateway``, or a module that patches it first and then
runs twistd: :mod:`tests.faults.early_ack`); the agency is :mod:`simulators.cvs_link`'s client,
kept connected by a ``ClientService`` that retries every 0.1 s instead of backing off, so that a
restarted daemon is found as soon as it listens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from twisted.application.internet import ClientService
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import deferLater

from gateway.app.process import BIN, DaemonProcess, http
from gateway.infra.crashpoints import ENV as CRASH_ENV
from gateway.infra.tls import client_options, connect_tls_endpoint, make_certs
from gateway.mappers.cvs.mapper import parse_record
from gateway.store import create_db_engine
from gateway.store.schema import collection_messages, payments
from simulators.cvs_link import AgencyLinkClient
from tests.conftest import admin, due
from tests.test_cvs_link_e2e import Site

__all__ = [
    "Agency",
    "bill_codes",
    "certificates",
    "event_key",
    "messages_stored",
    "onboard_biller",
    "start_daemon",
    "stored_keys",
]


def start_daemon(
    site: Site, *, crash_at: str = "", module: str | None = None, config: Path | None = None
) -> DaemonProcess:
    """The site's daemon with ``GATEWAY_TEST_CRASH_AT=crash_at`` (none if empty), run as
    ``twistd`` or as ``python -m module`` with twistd's arguments; ``config`` replaces the
    site's configuration file (the same ports)."""
    site.starts += 1
    path = config or site.config
    log = site.config.parent / f"twistd-{site.starts}.log"
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_at:
        env[CRASH_ENV] = crash_at
    program = [sys.executable, "-m", module] if module else [str(BIN / "twistd")]
    if module:
        # a module of the checkout's tests: the installed package has no ``tests`` to import
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    daemon = DaemonProcess(
        path, log, f"http://127.0.0.1:{site.api_port}", f"http://127.0.0.1:{site.metrics_port}"
    )
    with log.open("wb") as out:
        daemon.proc = subprocess.Popen(
            [*program, "-n", "--pidfile=", "gateway", "-c", str(path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=site.config.parent,
            env=env,
        )
    return daemon


def onboard_biller(config: Path, biller_id: str = "acme") -> str:
    """A CVS biller and its API key, in this process (``config`` must reach the database
    directly, not through a proxy this process runs)."""
    admin(
        config,
        "biller",
        "create",
        "--id",
        biller_id,
        "--name",
        biller_id,
        "--kana",
        "ｱｸﾒ",
        "--channels",
        "cvs",
    )
    key: str = admin(config, "key", "create", "--biller", biller_id)["key"]
    return key


def bill_codes(daemon: DaemonProcess, key: str, bills: int, prefix: str = "K") -> list[str]:
    """``bills`` CVS bills made through the daemon's API; their barcodes."""
    codes = []
    for i in range(bills):
        status, bill, _ = http(
            "POST",
            daemon.api + "/v1/bills",
            {
                "bill_no": f"{prefix}-{i}",
                "amount": 1000 + i,
                "due_date": due(30),
                "channels": ["cvs"],
            },
            {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        assert status == 201, json.dumps(bill)
        codes.append(bill["cvs"]["barcode"])
    return codes


def event_key(record: bytes) -> str:
    return parse_record(record).event_key


def stored_keys(database_url: str) -> list[str]:
    """Every payment's event key, as often as it is stored."""
    engine = create_db_engine(database_url, 1)
    try:
        with engine.connect() as conn:
            return [r.event_key for r in conn.execute(select(payments.c.event_key))]
    finally:
        engine.dispose()


def messages_stored(database_url: str) -> int:
    engine = create_db_engine(database_url, 1)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(collection_messages)).scalar_one()
            )
    finally:
        engine.dispose()


class Agency:
    """The CVS agency on the site's link: sends records, resends what is not acknowledged after
    every reconnection (and ``90`` answers after 0.2 s), and keeps the event key of every record
    acknowledged ``00``."""

    def __init__(self, reactor: Any, site: Site) -> None:
        self.reactor = reactor
        endpoint = connect_tls_endpoint(
            reactor,
            f"tcp:127.0.0.1:{site.link_port}",
            client_options(site.agency_tls(), "gateway"),
        )
        self.client = AgencyLinkClient(reactor, heartbeat_interval=5, retry_delay=0.2)
        self.service = ClientService(
            endpoint, self.client, retryPolicy=lambda _: 0.1, clock=reactor
        )
        self.service.startService()
        self.acked: set[str] = set()
        self.sent = 0
        self.answers: list[Deferred[str]] = []

    def send(self, record: bytes) -> None:
        key = event_key(record)

        def acked(result: str) -> str:
            if result == "00":
                self.acked.add(key)
            return result

        self.answers.append(self.client.send(record).addCallback(acked))
        self.sent += 1

    def send_all(self, records: Sequence[bytes]) -> None:
        for record in records:
            self.send(record)

    @property
    def unacked(self) -> int:
        return self.client.unacked

    async def disconnected(self, timeout: float = 10) -> None:
        """Wait until the agency has seen its connection go (every byte before it is read)."""
        for _ in range(int(timeout / 0.02)):
            if not self.client.connected:
                return
            await deferLater(self.reactor, 0.02)
        raise AssertionError("the agency still believes it is connected")

    async def all_answered(self, timeout: float = 60) -> list[str]:
        done = DeferredList(self.answers, fireOnOneErrback=True, consumeErrors=True)
        done.addTimeout(timeout, self.reactor)
        return [result for _, result in await done]

    async def stop(self) -> None:
        self.client.stop()
        await self.service.stopService()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The development CA and certificates (gateway, agency), made once for the session;
    a test that imports this fixture passes it to ``make_site(..., tls=certificates)``."""
    folder = tmp_path_factory.mktemp("tls")
    make_certs(folder, now=datetime.now(UTC))
    return folder
