"""The 速報 link against the real daemon (twistd subprocess) over mutual TLS.

- SIGKILL the daemon several times while the agency streams: every acknowledged record is
  stored, no record is stored twice, and in the end every record is in the ledger.
- Two daemons on one database receive the same records at the same time: each payment once.
- Issue 14: a certificate of the same CA made for another peer (the MPN center's, the bank's,
  ``CN=anything``) cannot speak on the link; a burst of unacknowledged records is read only
  ``max_unacked`` at a time; ``max_connections`` and the handshake deadline hold.
"""

from __future__ import annotations

import json
import signal
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import clientFromString, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from gateway.app.process import DaemonProcess, admin, free_port, http
from gateway.infra.tls import TLSFiles, client_options, connect_tls_endpoint
from gateway.mappers.cvs.mapper import RecordKind, ResultRecord, build_record
from gateway.model import JST
from gateway.store import create_db_engine
from gateway.store.schema import collection_messages, payments
from simulators.cvs_link import AgencyLink, start_agency_link
from tests.conftest import config_text, due
from tests.infra.test_tls import stdlib_client

pytestmark = pytest.mark.e2e


@dataclass
class Site:
    """One configured gateway (config, certificates, ports), started as often as needed."""

    config: Path
    api_port: int
    metrics_port: int
    link_port: int
    tls: Path
    starts: int = 0

    def start(self) -> DaemonProcess:
        self.starts += 1
        return DaemonProcess.start(
            self.config,
            self.api_port,
            self.metrics_port,
            log=self.config.parent / f"twistd-{self.starts}.log",
        )

    def agency_tls(self) -> TLSFiles:
        return TLSFiles(
            self.tls / "ca.pem", self.tls / "cvs-agency.pem", self.tls / "cvs-agency.key"
        )


def make_site(
    root: Path, database_url: str, tls: Path | None = None, link_options: str = ""
) -> Site:
    root.mkdir(parents=True, exist_ok=True)
    api, metrics, link = free_port(), free_port(), free_port()
    tls = tls or root / "tls"
    text = config_text(
        database_url,
        api=f"tcp:{api}:interface=127.0.0.1",
        metrics=f"tcp:{metrics}:interface=127.0.0.1",
        public_url=f"http://127.0.0.1:{api}",
        extra=f'[tls]\nca = "{tls}/ca.pem"\ncertificate = "{tls}/gateway.pem"\n'
        f'key = "{tls}/gateway.key"\n\n[cvs.link]\n'
        f'listen = "tcp:{link}:interface=127.0.0.1"\npeers = ["cvs-agency"]\n{link_options}\n'
        f'[cvs.files]\ninbox = "{root}/inbox"\npoll_interval = 0.2\n',
    )
    path = root / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return Site(path, api, metrics, link, tls)


def records_for(barcodes: Sequence[str], per_bill: int) -> list[bytes]:
    """``per_bill`` distinct 速報 for each barcode (other stores, other minutes)."""
    day = datetime.now(JST).date()
    out = []
    for n, code in enumerate(barcodes):
        for k in range(per_bill):
            out.append(
                build_record(
                    ResultRecord(
                        kind=RecordKind.PRELIMINARY,
                        paid_on=day,
                        paid_time=f"{(n % 24):02d}{k:02d}",
                        barcode=code,
                        store_code=f"{n * 10 + k:07d}",
                        customer_segment="  ",
                        data_date=day,
                        transfer_date=None,
                        accounting_date=None,
                        chain_code="000010",
                    )
                )
            )
    return out


def stored_keys(database_url: str) -> list[str]:
    engine = create_db_engine(database_url, 1)
    with engine.connect() as conn:
        keys = [r.event_key for r in conn.execute(select(payments.c.event_key))]
    engine.dispose()
    return keys


def count(database_url: str, table: Any) -> int:
    engine = create_db_engine(database_url, 1)
    with engine.connect() as conn:
        n = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    engine.dispose()
    return n


def event_key(record: bytes) -> str:
    from gateway.mappers.cvs.mapper import parse_record

    return parse_record(record).event_key


def prepare(site: Site, bills: int) -> list[str]:
    return [bill["cvs"]["barcode"] for bill in onboard_and_bill(site, bills)[1]]


def onboard_and_bill(site: Site, bills: int) -> tuple[str, list[dict[str, Any]]]:
    admin(site.config, "migrate")
    admin(site.config, "certs", "make", str(site.tls))
    admin(
        site.config,
        "biller",
        "create",
        "--id",
        "acme",
        "--name",
        "Acme",
        "--kana",
        "ｱｸﾒ",
        "--channels",
        "cvs",
    )
    key = json.loads(admin(site.config, "key", "create", "--biller", "acme").stdout)["key"]
    daemon = site.start()
    try:
        daemon.wait("/readyz")
        made = []
        for i in range(bills):
            status, bill, _ = http(
                "POST",
                daemon.api + "/v1/bills",
                {"bill_no": f"K-{i}", "amount": 1000 + i, "due_date": due(30), "channels": ["cvs"]},
                {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            assert status == 201, bill
            made.append(bill)
    finally:
        daemon.stop()
    return key, made


async def all_acked(ds: list[Deferred[str]], timeout: float = 90) -> list[str]:
    from twisted.internet import reactor  # noqa: TID251

    done = DeferredList(ds, fireOnOneErrback=True, consumeErrors=True)
    done.addTimeout(timeout, reactor)
    return [result for _, result in await done]


@pytest_twisted.ensureDeferred
async def test_sigkill_while_streaming_loses_and_doubles_nothing(
    tmp_path: Path, database_url: str
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    site = make_site(tmp_path, database_url)
    codes = await deferToThread(prepare, site, 40)
    records = records_for(codes, 3)  # 120 payments
    daemon = site.start()
    await deferToThread(daemon.wait, "/readyz")
    link: AgencyLink = start_agency_link(
        reactor,
        f"tcp:127.0.0.1:{site.link_port}",
        site.agency_tls(),
        "gateway",
        retry_delay=0.2,
        heartbeat_interval=5,
    )
    try:
        acked_keys: set[str] = set()
        pending: list[Deferred[str]] = []

        async def feed() -> None:
            """Stream the records over a few seconds, as stores report payments."""
            for record in records:
                d = link.send(record)
                d.addCallback(
                    lambda result, key=event_key(record): (acked_keys.add(key), result)[1]
                )
                pending.append(d)
                await deferLater(reactor, 0.07)  # ~8 s: longer than three restarts

        feeding = Deferred.fromCoroutine(feed())
        in_flight_at_kills = []
        for _ in range(3):
            await deferLater(reactor, 0.5)
            assert daemon.proc is not None
            daemon.proc.send_signal(signal.SIGKILL)
            await deferToThread(daemon.proc.wait, 30)
            in_flight_at_kills.append(len(records) - len(acked_keys))
            stored = await deferToThread(stored_keys, database_url)
            assert acked_keys <= set(stored), "an acknowledged record was lost"
            assert len(stored) == len(set(stored)), "a record was stored twice"
            daemon = site.start()
            await deferToThread(daemon.wait, "/readyz")
        await feeding
        results = await all_acked(pending)
        assert results == ["00"] * len(records)
        assert all(n > 0 for n in in_flight_at_kills), in_flight_at_kills  # killed mid-stream
    finally:
        await link.stop()
        await deferToThread(daemon.stop)
    stored = stored_keys(database_url)
    assert sorted(stored) == sorted(event_key(r) for r in records)
    assert count(database_url, collection_messages) == len(records)


@pytest_twisted.ensureDeferred
async def test_two_daemons_on_one_database_store_each_payment_once(
    tmp_path: Path, database_url: str
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    first = make_site(tmp_path / "one", database_url)
    codes = await deferToThread(prepare, first, 30)
    second = make_site(tmp_path / "two", database_url, tls=first.tls)
    records = records_for(codes, 2)
    daemons = [first.start(), second.start()]
    links = []
    try:
        for daemon in daemons:
            await deferToThread(daemon.wait, "/readyz")
        for site in (first, second):
            links.append(
                start_agency_link(
                    reactor,
                    f"tcp:127.0.0.1:{site.link_port}",
                    site.agency_tls(),
                    "gateway",
                    retry_delay=0.2,
                )
            )
        pending = [link.send(r) for r in records for link in links]
        assert await all_acked(pending) == ["00"] * (2 * len(records))
    finally:
        for link in links:
            await link.stop()
        for daemon in daemons:
            await deferToThread(daemon.stop)
    stored = stored_keys(database_url)
    assert sorted(stored) == sorted(event_key(r) for r in records)
    assert count(database_url, collection_messages) == len(records)


@pytest_twisted.ensureDeferred
async def test_daemon_and_agency_simulator_agree(tmp_path: Path, database_url: str) -> None:
    """Pay bills at random stores over the link (some twice, some with a reissued slip),
    void some, deliver 確報 files (the second overlapping the first): the gateway's ledger is
    the simulator's own record — every payment once, in the right state, every double payment
    flagged, nothing else."""
    from twisted.internet import reactor  # noqa: TID251

    from simulators.cvs import Agency, Scenario, Slip, api_rows

    site = make_site(tmp_path, database_url)
    key, bills = await deferToThread(onboard_and_bill, site, 30)
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    scenario = Scenario(
        seed=20261123,
        void_probability=0.2,
        double_probability=0.3,
        clock_factor=0,
        overlap_probability=0.5,
    )
    daemon = site.start()
    link = None
    try:
        await deferToThread(daemon.wait, "/readyz")
        slips = []
        for bill in bills:
            code, second = bill["cvs"]["barcode"], None
            if scenario.pays_twice(code[2:29]) and int(bill["bill_no"][2:]) % 2:
                status, again, _ = await deferToThread(
                    http,
                    "POST",
                    f"{daemon.api}/v1/bills/{bill['bill_no']}/reissue",
                    {"amount": bill["amount"]},
                    auth,
                )
                assert status == 200, again
                second = again["cvs"]["barcode"]
            slips.append(Slip(code, second, bill["bill_no"]))
        agency = Agency(scenario, reactor)
        link = start_agency_link(
            reactor,
            f"tcp:127.0.0.1:{site.link_port}",
            site.agency_tls(),
            "gateway",
            retry_delay=0.2,
        )
        acks = await agency.stream(link, agency.pay(slips), timeout=30)
        assert acks == {"00": len(agency.payments)}
        await agency.void(link, timeout=30)
        inbox = tmp_path / "inbox"

        days = sorted({p.paid_on for p in agency.payments.values()})
        assert len(days) >= 2, "the scenario should spread payments over days"
        # 確報 for every day but the last (its payments stay pending), the first day twice
        deliveries = [days[0], *days[:-1]]
        for n, day in enumerate(deliveries):
            agency.write_file(inbox, f"kakuho-{n}.dat", agency.confirmation_file(day))
            for _ in range(100):
                if (inbox / "done" / f"kakuho-{n}.dat").exists():
                    break
                assert not (inbox / "rejected" / f"kakuho-{n}.dat").exists()
                await deferLater(reactor, 0.1)
            else:
                raise AssertionError(f"kakuho-{n}.dat was not applied")

        payments, cursor = [], None
        while True:
            url = f"{daemon.api}/v1/payments?limit=100" + (f"&cursor={cursor}" if cursor else "")
            status, page, _ = await deferToThread(http, "GET", url, None, auth)
            assert status == 200
            payments += page["data"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        expected = agency.expected()
        assert api_rows(payments) == expected.api_rows()
        assert {"pending", "confirmed", "voided"} <= {p["status"] for p in payments}
        status, listed, _ = await deferToThread(
            http, "GET", f"{daemon.api}/v1/bills?limit=100", None, auth
        )
        flagged = {b["bill_no"] for b in listed["data"] if b["double_paid"]}
        assert flagged == expected.double_paid_bills and flagged
        status, cases, _ = await deferToThread(
            http, "GET", f"{daemon.api}/v1/refund-cases", None, auth
        )
        assert {c["bill_no"] for c in cases["data"]} >= flagged
    finally:
        if link is not None:
            await link.stop()
        await deferToThread(daemon.stop)


# --- issue 14: who may speak on the link, and how much -----------------------------------------

TIMEOUT = 30  # seconds: the bound of any one network wait below


def dt_frame(sequence: int, record: bytes) -> bytes:
    payload = b"DT" + f"{sequence:010d}".encode() + record
    return struct.pack("!H", len(payload)) + payload


def frames(data: bytes) -> list[bytes]:
    out = []
    while len(data) >= 2:
        (length,) = struct.unpack("!H", data[:2])
        if len(data) < 2 + length:
            break
        out.append(data[2 : 2 + length])
        data = data[2 + length :]
    return out


class RawAgency(Protocol):
    """Writes ``data`` at once (TLS sends it right after the handshake), keeps what comes back;
    ``acked`` fires once ``wanted`` AK frames have come, ``lost`` when the connection goes."""

    def __init__(self, data: bytes, wanted: int = 0) -> None:
        self.data = data
        self.wanted = wanted
        self.received = b""
        self.acked: Deferred[None] = Deferred()
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.data)

    def acks(self) -> list[bytes]:
        return [f for f in frames(self.received) if f.startswith(b"AK")]

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.wanted and len(self.acks()) >= self.wanted and not self.acked.called:
            self.acked.callback(None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)


async def dial(site: Site, tls: TLSFiles | None, client: RawAgency) -> RawAgency:
    """Connect ``client`` to the site's link: with TLS as ``tls``, or plain TCP without."""
    from twisted.internet import reactor  # noqa: TID251

    description = f"tcp:127.0.0.1:{site.link_port}"
    if tls is None:
        endpoint = clientFromString(reactor, description)
    else:
        endpoint = connect_tls_endpoint(reactor, description, client_options(tls, "gateway"))
    await connectProtocol(endpoint, client).addTimeout(TIMEOUT, reactor)
    return client


async def within(d: Deferred[Any]) -> Any:
    from twisted.internet import reactor  # noqa: TID251

    return await d.addTimeout(TIMEOUT, reactor)


def metric(daemon: DaemonProcess, name: str, **labels: str) -> float:
    """One sample of the daemon's /metrics, as a scraper reads it (0 if absent)."""
    status, text, _ = http("GET", daemon.metrics + "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def issue_certificate(tls: Path, common_name: str) -> TLSFiles:
    """A client certificate signed by the site's own development CA, named ``common_name`` only:
    what anyone holding that CA (or a careless issuer) could make."""
    ca = x509.load_pem_x509_certificate((tls / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((tls / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem, key_pem = tls / f"{common_name}.pem", tls / f"{common_name}.key"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TLSFiles(tls / "ca.pem", pem, key_pem)


@pytest_twisted.ensureDeferred
async def test_a_certificate_of_another_name_from_the_same_ca_cannot_pay(
    tmp_path: Path, database_url: str
) -> None:
    """Issue 14, finding 1: the MPN center's and the bank's development certificates, and one
    made for CN=anything by the same CA, each send a 02 record for an open bill right after the
    handshake: each connection is closed unanswered, no payment is stored, every refusal is on
    /metrics and in the log with its name. The agency's certificate then pays the same bill."""
    site = make_site(tmp_path, database_url)
    codes = await deferToThread(prepare, site, 1)
    (record,) = records_for(codes, 1)
    impostors = {
        "mpn-center": TLSFiles(
            site.tls / "ca.pem", site.tls / "mpn-center.pem", site.tls / "mpn-center.key"
        ),
        "bank": TLSFiles(site.tls / "ca.pem", site.tls / "bank.pem", site.tls / "bank.key"),
        "anything": issue_certificate(site.tls, "anything"),
    }
    daemon = site.start()
    try:
        await deferToThread(daemon.wait, "/readyz")
        before = await deferToThread(
            metric, daemon, "gateway_cvs_link_refused_total", reason="peer_name"
        )
        for name, tls in impostors.items():
            client = await dial(site, tls, RawAgency(dt_frame(1, record)))
            await within(client.lost)
            assert client.received == b"", name  # no AK: the record was never read
        assert await deferToThread(stored_keys, database_url) == []
        refused = await deferToThread(
            metric, daemon, "gateway_cvs_link_refused_total", reason="peer_name"
        )
        assert refused == before + len(impostors)
        log = daemon.output()
        for name in impostors:
            assert f"certificate names '{name}'" in log, name

        agency = await dial(site, site.agency_tls(), RawAgency(dt_frame(1, record), wanted=1))
        await within(agency.acked)
        assert agency.acks() == [b"AK000000000100"]
        agency.transport.loseConnection()  # type: ignore[union-attr]
        await within(agency.lost)
    finally:
        await deferToThread(daemon.stop)
    assert stored_keys(database_url) == [event_key(record)]


@pytest_twisted.ensureDeferred
async def test_a_burst_of_unacked_records_is_read_max_unacked_at_a_time(
    tmp_path: Path, database_url: str
) -> None:
    """Issue 14, finding 9: 20 records in one write, max_unacked = 3: the daemon stops reading
    (counted in gateway_cvs_link_pauses_total) and goes on as acks leave, so every record is
    acked 00 and stored once; a second connection is refused while max_connections = 1 is
    taken; a client offering only a CBC suite fails the handshake (finding 10); a peer that never
    completes its handshake is closed at the deadline."""
    from twisted.internet import reactor  # noqa: TID251

    site = make_site(
        tmp_path,
        database_url,
        link_options="max_unacked = 3\nmax_connections = 1\nhandshake_timeout = 1\n",
    )
    codes = await deferToThread(prepare, site, 20)
    records = records_for(codes, 1)
    daemon = site.start()
    try:
        await deferToThread(daemon.wait, "/readyz")
        pauses = await deferToThread(metric, daemon, "gateway_cvs_link_pauses_total")
        refused = {
            reason: await deferToThread(
                metric, daemon, "gateway_cvs_link_refused_total", reason=reason
            )
            for reason in ("too_many_connections", "handshake_timeout", "handshake_failed")
        }
        burst = b"".join(dt_frame(n, r) for n, r in enumerate(records, 1))
        first = await dial(site, site.agency_tls(), RawAgency(burst, wanted=len(records)))
        await within(first.acked)
        assert sorted(first.acks()) == [b"AK%010d00" % n for n in range(1, len(records) + 1)]
        assert await deferToThread(metric, daemon, "gateway_cvs_link_pauses_total") > pauses
        assert await deferToThread(metric, daemon, "gateway_cvs_link_connections") == 1

        second = await dial(site, site.agency_tls(), RawAgency(dt_frame(1, records[0])))
        await within(second.lost)
        assert second.received == b""
        assert (
            await deferToThread(
                metric, daemon, "gateway_cvs_link_refused_total", reason="too_many_connections"
            )
            == refused["too_many_connections"] + 1
        )

        weak = await deferToThread(  # the agency's own certificate, but a CBC suite only
            stdlib_client,
            site.link_port,
            {
                "ca": site.tls / "ca.pem",
                "cvs-agency": site.tls / "cvs-agency.pem",
                "cvs-agency_key": site.tls / "cvs-agency.key",
            },
            ciphers="ECDHE-ECDSA-AES128-SHA256",
        )
        assert weak.error is not None and weak.version is None, weak
        # counted when the daemon sees the connection go, which may follow the client's error
        for _ in range(TIMEOUT * 10):
            failed = await deferToThread(
                metric, daemon, "gateway_cvs_link_refused_total", reason="handshake_failed"
            )
            if failed > refused["handshake_failed"]:
                break
            await deferLater(reactor, 0.1)
        assert failed == refused["handshake_failed"] + 1

        silent = await dial(site, None, RawAgency(b""))  # TCP only: no ClientHello ever
        await within(silent.lost)
        assert (
            await deferToThread(
                metric, daemon, "gateway_cvs_link_refused_total", reason="handshake_timeout"
            )
            == refused["handshake_timeout"] + 1
        )
        assert await deferToThread(metric, daemon, "gateway_cvs_link_connections") == 1
        first.transport.loseConnection()  # type: ignore[union-attr]
        await within(first.lost)
    finally:
        await deferToThread(daemon.stop)
    stored = stored_keys(database_url)
    assert sorted(stored) == sorted(event_key(r) for r in records)
