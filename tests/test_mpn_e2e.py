"""The Pay-easy link against the real daemon (twistd subprocess) over mutual TLS: the simulated
MPN center listens, the daemon dials it, the center's banks look up and pay bills.

- The center's scenario (wrong 確認番号, lost answers and 再送確認, 取消, double payments): every
  answer as the spec says, the ledger is the center's own, the day's counters are its figures.
- A bill paid at a store first answers 照会 ``1002``.
- Issue 14: a center whose certificate (same CA) carries another name is refused; without
  ``mpn.hostname`` the daemon does not start.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from gateway.app.process import DaemonProcess, admin, free_port, http
from gateway.infra.tls import TLSFiles
from gateway.mappers.cvs.mapper import RecordKind, ResultRecord, build_file
from gateway.mappers.mpn.mapper import Inquiry, InquiryAnswer
from gateway.model import JST
from gateway.store import create_db_engine
from gateway.store.mpn import day_counters
from simulators.mpn import MpnCenter, MpnScenario, api_rows, bill_key
from simulators.mpn_link import MpnCenterFactory, listen_mpn_center
from tests.conftest import config_text, due

pytestmark = pytest.mark.e2e

TIMEOUT = 30  # seconds: the bound of every network wait of a test, all together
MPN_SECTION = '[mpn]\ninstitution_code = "58191"\n'


@dataclass
class Site:
    config: Path
    api: str
    api_port: int
    metrics_port: int
    center_port: int
    tls: Path
    key: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    def center_tls(self) -> TLSFiles:
        return TLSFiles(
            self.tls / "ca.pem", self.tls / "mpn-center.pem", self.tls / "mpn-center.key"
        )

    def start(self) -> DaemonProcess:
        return DaemonProcess.start(
            self.config, self.api_port, self.metrics_port, log=self.config.parent / "twistd.log"
        )


def make_site(root: Path, database_url: str) -> Site:
    """Config, schema, certificates, a biller with CVS and Pay-easy and its key."""
    api, metrics, center = free_port(), free_port(), free_port()
    tls = root / "tls"
    text = config_text(
        database_url,
        api=f"tcp:{api}:interface=127.0.0.1",
        metrics=f"tcp:{metrics}:interface=127.0.0.1",
        public_url=f"http://127.0.0.1:{api}",
        extra=f'[tls]\nca = "{tls}/ca.pem"\ncertificate = "{tls}/gateway.pem"\n'
        f'key = "{tls}/gateway.key"\n',
    )
    assert MPN_SECTION in text
    text = text.replace(
        MPN_SECTION,
        f'{MPN_SECTION}connect = "tcp:127.0.0.1:{center}"\ncenter_code = "0001"\n'
        'hostname = "mpn-center"\n',
    )
    path = root / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    site = Site(path, f"http://127.0.0.1:{api}", api, metrics, center, tls)
    admin(path, "migrate")
    admin(path, "certs", "make", str(tls))
    admin(path, "biller", "create", "--id", "acme", "--name", "Acme", "--kana", "ｱｸﾒ",
          "--channels", "cvs,payeasy")  # fmt: skip
    site.key = json.loads(admin(path, "key", "create", "--biller", "acme").stdout)["key"]
    return site


def make_bills(site: Site, n: int) -> list[dict[str, Any]]:
    made = []
    for i in range(n):
        body = {
            "bill_no": f"P-{i}",
            "amount": 1000 + 10 * i,
            "due_date": due(30),
            "channels": ["cvs", "payeasy"],
        }
        status, bill, _ = http("POST", site.api + "/v1/bills", body, site.auth)
        assert status == 201, bill
        made.append(bill)
    return made


def get_all(site: Site, path: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        sep = "&" if "?" in path else "?"
        url = f"{site.api}{path}{sep}limit=100" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = http("GET", url, None, site.auth)
        assert status == 200, page
        rows += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def counters(database_url: str, day: date) -> tuple[int, int, int, int]:
    engine = create_db_engine(database_url, 1)
    try:
        with engine.connect() as conn:
            return day_counters(conn, day)
    finally:
        engine.dispose()


async def started(site: Site, factory: MpnCenterFactory) -> tuple[IListeningPort, DaemonProcess]:
    """The center listens, then the daemon starts and completes 開局."""
    from twisted.internet import reactor  # noqa: TID251

    port = await listen_mpn_center(
        reactor, f"tcp:{site.center_port}:interface=127.0.0.1", site.center_tls(), factory=factory
    )
    daemon = site.start()
    try:
        await deferToThread(daemon.wait, "/healthz", 20)
        await factory.opened.addTimeout(20, reactor)
    except BaseException:
        await deferToThread(daemon.stop)
        await maybeDeferred(port.stopListening)
        raise
    return port, daemon


@pytest_twisted.ensureDeferred
async def test_daemon_and_center_simulator_agree(tmp_path: Path, database_url: str) -> None:
    from twisted.internet import reactor  # noqa: TID251

    site = await deferToThread(make_site, tmp_path, database_url)
    factory = MpnCenterFactory(reactor, deadline=5.0)
    center = MpnCenter(
        factory,
        MpnScenario(
            seed=20261123,
            drop_probability=0.25,
            cancel_probability=0.25,
            wrong_probability=0.25,
            double_probability=0.35,
        ),
    )
    port, daemon = await started(site, factory)
    try:
        bills = await deferToThread(make_bills, site, 20)
        await center.run(bills, rate=50).addTimeout(TIMEOUT, reactor)
        payments = await deferToThread(get_all, site, "/v1/payments?channel=payeasy")
        listed = await deferToThread(get_all, site, "/v1/bills")
    finally:
        await deferToThread(daemon.stop)
        await maybeDeferred(port.stopListening)

    assert center.mismatches == []
    for tag in ("1100:1001", "1200:0000", "1300:0000", "1400:0000", "1100:1002"):
        assert center.answers.get(tag), tag  # the scenario went through every path
    expected = center.expected()
    assert api_rows(payments) == expected.api_rows()
    assert {p["status"] for p in payments} == {"pending", "voided"}
    flagged = {b["bill_no"] for b in listed if b["double_paid"]}
    assert flagged == expected.double_paid_bills and flagged
    day = factory.gateway_business_date
    assert day is not None and day == datetime.now(JST).date()
    assert counters(database_url, day) == center.figures(day)


@pytest_twisted.ensureDeferred
async def test_a_bill_paid_at_a_store_answers_1002(tmp_path: Path, database_url: str) -> None:
    from twisted.internet import reactor  # noqa: TID251

    site = await deferToThread(make_site, tmp_path, database_url)
    factory = MpnCenterFactory(reactor, deadline=5.0)
    port, daemon = await started(site, factory)
    try:
        paid, other = await deferToThread(make_bills, site, 2)
        today = datetime.now(JST).date()
        record = ResultRecord(
            kind=RecordKind.PRELIMINARY,
            paid_on=today,
            paid_time="0930",
            barcode=paid["cvs"]["barcode"],
            store_code="0001234",
            customer_segment="  ",
            data_date=today,
            transfer_date=None,
            accounting_date=None,
            chain_code="000010",
        )
        result = tmp_path / "sokuho.dat"
        result.write_bytes(build_file(today, "987654", "ｼﾕｳﾉｳﾀﾞｲｺｳ", [record]))
        await deferToThread(admin, site.config, "import", "cvs", str(result))

        at_store = await factory.request("1100", Inquiry(bill_key(paid)))
        still_open = await factory.request("1100", Inquiry(bill_key(other)))
    finally:
        await deferToThread(daemon.stop)
        await maybeDeferred(port.stopListening)

    assert at_store.header.response_code == "1002"
    assert still_open.header.response_code == "0000"
    assert isinstance(still_open.body, InquiryAnswer) and still_open.body.amount == other["amount"]


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait (at most TIMEOUT seconds) until ``condition()`` holds."""
    from twisted.internet import reactor  # noqa: TID251

    for _ in range(TIMEOUT * 10):
        if condition():
            return
        await deferLater(reactor, 0.1)
    raise AssertionError(f"not after {TIMEOUT} s: {what}")


def link_up(daemon: DaemonProcess) -> float | None:
    status, text, _ = http("GET", daemon.metrics + "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_mpn_link_up":
                return float(sample.value)
    return None


@pytest_twisted.ensureDeferred
async def test_the_gateway_refuses_a_center_whose_certificate_has_another_name(
    tmp_path: Path, database_url: str
) -> None:
    """Issue 14, finding 1: an impostor center at the configured address presents the bank's
    development certificate (same CA): the gateway never completes a handshake with it, never
    sends 開局, answers nothing. The real center at the same address is then opened."""
    from twisted.internet import reactor  # noqa: TID251

    site = await deferToThread(make_site, tmp_path, database_url)
    listen = f"tcp:{site.center_port}:interface=127.0.0.1"
    impostor = MpnCenterFactory(reactor, deadline=5.0)
    bank = TLSFiles(site.tls / "ca.pem", site.tls / "bank.pem", site.tls / "bank.key")
    port = await listen_mpn_center(reactor, listen, bank, factory=impostor)
    daemon = site.start()
    try:
        await deferToThread(daemon.wait, "/healthz", 20)
        await eventually(lambda: len(impostor.disconnects) >= 2, "the gateway dialled twice")
        await maybeDeferred(port.stopListening)
        assert not impostor.opened.called
        assert sum(impostor.received.values()) == 0  # no 開局, nothing at all
        assert await deferToThread(link_up, daemon) == 0
        assert "VerificationError" in daemon.output()  # the log says why the link is down

        center = MpnCenterFactory(reactor, deadline=5.0)
        port = await listen_mpn_center(reactor, listen, site.center_tls(), factory=center)
        await center.opened.addTimeout(TIMEOUT, reactor)
        assert center.received["1000"] == 1
    finally:
        await deferToThread(daemon.stop)
        await maybeDeferred(port.stopListening)


def test_the_daemon_does_not_start_without_mpn_hostname(tmp_path: Path, database_url: str) -> None:
    """Issue 14: there is no default name for the center (it was ``localhost``, which every
    development certificate carried): the daemon refuses to start and names the option."""
    site = make_site(tmp_path, database_url)
    text = site.config.read_text(encoding="utf-8")
    site.config.write_text(text.replace('hostname = "mpn-center"\n', ""), encoding="utf-8")
    daemon = site.start()
    try:
        with pytest.raises(RuntimeError, match="daemon exited") as info:
            daemon.wait("/healthz", 20)
    finally:
        daemon.stop()
    assert "mpn.hostname: is required with mpn.connect" in str(info.value)
