"""simulators.cvs_link: the agency's side of the CVS link, alone, against the gateway in memory,
and over real mutual TLS on loopback."""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet import defer, ssl, task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IListeningPort
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim

from gateway.infra.tls import TLSFiles, connect_tls_endpoint, make_certs
from gateway.protocols.cvs import CvsLinkFactory, CvsLinkProtocol, listen_cvs_link
from simulators.cvs_link import (
    AgencyLink,
    AgencyLinkClient,
    AgencyLinkProtocol,
    start_agency_link,
)
from tests.helpers import connected_in_memory

TIMEOUT = 10  # seconds; no network wait may be longer
PEER = IPv4Address("TCP", "192.0.2.7", 40001)
AGENCY = "cvs-agency"


def record(n: int) -> bytes:
    return (b"201" + b"20261123" + b"0930" + b"1" + f"{n:044d}".encode()).ljust(120, b" ")


def frame(payload: bytes) -> bytes:
    return struct.pack("!H", len(payload)) + payload


def parse(data: bytes) -> list[bytes]:
    payloads = []
    while data:
        (length,) = struct.unpack("!H", data[:2])
        assert len(data) >= 2 + length, data
        payloads.append(data[2 : 2 + length])
        data = data[2 + length :]
    return payloads


def dt(sequence: int, n: int | None = None) -> bytes:
    return b"DT" + f"{sequence:010d}".encode() + record(sequence if n is None else n)


def ak(sequence: int, result: str) -> bytes:
    return frame(b"AK" + f"{sequence:010d}".encode() + result.encode())


def attach(client: AgencyLinkClient) -> tuple[AgencyLinkProtocol, StringTransport]:
    protocol = client.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def drop(protocol: AgencyLinkProtocol) -> None:
    protocol.connectionLost(Failure(ConnectionLost()))


def fired(d: defer.Deferred[str]) -> list[str]:
    """What ``d`` has fired with so far (it keeps its result)."""
    results: list[str] = []

    def keep(result: str) -> str:
        results.append(result)
        return result

    d.addCallback(keep)
    return results


@pytest.fixture
def clock() -> task.Clock:
    return task.Clock()


@pytest.fixture
def client(clock: task.Clock) -> AgencyLinkClient:
    return AgencyLinkClient(clock, heartbeat_interval=20.0, retry_delay=5.0, idle_timeout=60.0)


# --- the client alone ---------------------------------------------------------------------------


def test_send_numbers_records_and_queues_them_while_disconnected(client: AgencyLinkClient) -> None:
    first = client.send(record(1))
    assert client.unacked == 1 and not client.connected

    protocol, transport = attach(client)
    second = client.send(record(2))

    assert parse(transport.value()) == [dt(1), dt(2)]
    protocol.dataReceived(ak(2, "00") + ak(1, "10"))  # out of order
    assert (fired(first), fired(second)) == (["10"], ["00"])
    assert client.unacked == 0
    assert client.acked == {"00": [record(2)], "10": [record(1)], "90": []}


def test_unacked_records_are_resent_after_a_reconnect_with_their_sequences(
    client: AgencyLinkClient,
) -> None:
    protocol, transport = attach(client)
    sent = [client.send(record(n)) for n in (1, 2, 3, 4)]
    protocol.dataReceived(ak(2, "00") + ak(4, "90"))
    drop(protocol)
    fifth = client.send(record(5))  # numbering goes on across connections

    protocol, transport = attach(client)

    assert parse(transport.value()) == [dt(1), dt(3), dt(4), dt(5)]
    protocol.dataReceived(ak(3, "10") + ak(1, "00") + ak(5, "00") + ak(4, "00"))
    assert [fired(d) for d in sent] == [["00"], ["00"], ["10"], ["00"]]
    assert fired(fifth) == ["00"]
    assert client.unacked == 0
    assert client.acked["00"] == [record(2), record(1), record(5), record(4)]
    assert client.acked["10"] == [record(3)]
    assert len(client.disconnects) == 1


def test_90_keeps_the_record_and_resends_it_after_the_delay(
    client: AgencyLinkClient, clock: task.Clock
) -> None:
    protocol, transport = attach(client)
    d = client.send(record(1))
    protocol.dataReceived(ak(1, "90"))
    transport.clear()

    clock.advance(4.9)
    assert transport.value() == b""
    clock.advance(0.1)

    assert parse(transport.value()) == [dt(1)]
    assert fired(d) == [] and client.unacked == 1
    protocol.dataReceived(ak(1, "00"))
    assert fired(d) == ["00"]
    assert client.acked == {"00": [record(1)], "10": [], "90": [record(1)]}


def test_a_resend_pending_at_disconnect_waits_for_the_reconnect(
    client: AgencyLinkClient, clock: task.Clock
) -> None:
    protocol, _ = attach(client)
    client.send(record(1))
    protocol.dataReceived(ak(1, "90"))
    drop(protocol)
    clock.advance(10)

    protocol, transport = attach(client)

    assert parse(transport.value()) == [dt(1)]  # once, at the reconnect
    clock.advance(10)
    assert parse(transport.value()) == [dt(1)]


def test_heartbeats_and_answers(client: AgencyLinkClient, clock: task.Clock) -> None:
    protocol, transport = attach(client)

    clock.advance(20)
    protocol.dataReceived(frame(b"HB0000000077") + frame(b"HA0000000001"))
    clock.advance(20)

    assert parse(transport.value()) == [b"HB0000000001", b"HA0000000077", b"HB0000000002"]


def test_the_client_closes_a_silent_connection(client: AgencyLinkClient, clock: task.Clock) -> None:
    protocol, transport = attach(client)
    clock.advance(59)
    protocol.dataReceived(frame(b"HA0000000001"))
    clock.advance(59)
    assert not transport.disconnecting
    clock.advance(1)

    assert transport.disconnecting
    drop(protocol)
    assert clock.getDelayedCalls() == []


# --- the client against the gateway, in memory --------------------------------------------------


class Core:
    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str, defer.Deferred[str]]] = []

    def __call__(self, record: bytes, source: str) -> defer.Deferred[str]:
        d: defer.Deferred[str] = defer.Deferred()
        self.calls.append((record, source, d))
        return d

    def records(self) -> list[bytes]:
        return [r for r, _, _ in self.calls]


@functools.cache
def agency_certificate() -> crypto.X509:
    """A certificate named ``cvs-agency``, as the gateway sees the agency's after the handshake."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, AGENCY)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return crypto.X509.from_cryptography(cert)


class AgencyTransport(iosim.FakeTransport):
    """The gateway's end of the in-memory connection: shows the agency's certificate, as the
    TLS layer would once its handshake is complete."""

    def getPeerCertificate(self) -> crypto.X509:
        return agency_certificate()


def in_memory(
    factory: CvsLinkFactory, client: AgencyLinkClient, clock: task.Clock
) -> tuple[CvsLinkProtocol, AgencyLinkProtocol, iosim.IOPump]:
    """A gateway protocol and an agency protocol connected in memory, the gateway told that the
    handshake is complete before a byte moves."""
    agency, gateway, pump = connected_in_memory(
        lambda: factory.buildProtocol(PEER),
        lambda: client.buildProtocol(None),
        clock,
        peer=PEER,
        gateway_end="server",
        transport=AgencyTransport,
        greet=False,
    )
    gateway.handshakeCompleted()
    pump.flush()
    return gateway, agency, pump


def test_records_survive_a_reconnect_end_to_end(clock: task.Clock) -> None:
    core = Core()
    factory = CvsLinkFactory(core, clock, 60.0, peers=[AGENCY])
    client = AgencyLinkClient(clock, retry_delay=5.0)
    _, agency, pump = in_memory(factory, client, clock)
    sent = [client.send(record(n)) for n in (1, 2, 3)]
    pump.flush()
    assert core.records() == [record(1), record(2), record(3)]
    assert {s for _, s, _ in core.calls} == {"link:cvs-agency"}

    core.calls[2][2].callback("00")  # the core commits out of order
    core.calls[0][2].callback("10")
    pump.flush()
    assert [fired(d) for d in sent] == [["10"], [], ["00"]]

    assert agency.transport is not None
    agency.transport.loseConnection()
    pump.flush()
    core.calls[1][2].callback("00")  # committed, but the connection is gone: no ack
    pump.flush()
    assert fired(sent[1]) == [] and client.unacked == 1
    assert factory.connections == 0
    fourth = client.send(record(4))

    _, agency, pump = in_memory(factory, client, clock)
    pump.flush()
    assert core.records()[3:] == [record(2), record(4)]
    core.calls[3][2].callback("00")  # "already stored"
    core.calls[4][2].callback("90")  # try again later
    pump.flush()
    assert fired(sent[1]) == ["00"] and fired(fourth) == []

    clock.advance(5)
    pump.flush()
    assert core.records()[5:] == [record(4)]
    core.calls[5][2].callback("00")
    pump.flush()
    assert fired(fourth) == ["00"]
    assert client.unacked == 0
    assert client.acked == {
        "00": [record(3), record(2), record(4)],
        "10": [record(1)],
        "90": [record(4)],
    }


def test_heartbeats_keep_a_quiet_link_open(clock: task.Clock) -> None:
    factory = CvsLinkFactory(Core(), clock, 60.0, peers=[AGENCY])
    client = AgencyLinkClient(clock, heartbeat_interval=20.0, idle_timeout=60.0)
    gateway, _, pump = in_memory(factory, client, clock)

    for _ in range(30):  # ten minutes
        clock.advance(20)
        pump.flush()

    assert factory.connections == 1 and client.connected
    assert isinstance(gateway.transport, iosim.FakeTransport)
    assert not gateway.transport.disconnecting


# --- over real mutual TLS on loopback -----------------------------------------------------------


def files_for(paths: dict[str, Path], name: str) -> TLSFiles:
    return TLSFiles(ca=paths["ca"], certificate=paths[name], key=paths[f"{name}_key"])


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    return make_certs(tmp_path / "tls", now=datetime.now(UTC))


def address(port: IListeningPort) -> str:
    host = port.getHost()
    assert isinstance(host, IPv4Address)
    return f"tcp:127.0.0.1:{host.port}"


def gateway_connections(port: IListeningPort) -> int:
    """The open connections of the CvsLinkFactory that listen_cvs_link put under TLS."""
    factory = port.factory.wrappedFactory  # type: ignore[attr-defined]
    assert isinstance(factory, CvsLinkFactory)
    return factory.connections


async def until(predicate: Callable[[], bool], what: str) -> None:
    from twisted.internet import reactor  # noqa: TID251

    deadline = reactor.seconds() + TIMEOUT
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await task.deferLater(reactor, 0.02)


async def refused(certs: dict[str, Path], connect: Callable[[str], AgencyLink]) -> None:
    """The gateway listens; ``connect`` dials it; nothing may be acknowledged or submitted."""
    from twisted.internet import reactor  # noqa: TID251

    submitted: list[tuple[bytes, str]] = []

    def submit(record: bytes, source: str) -> defer.Deferred[str]:
        submitted.append((record, source))
        return defer.succeed("00")

    port = await listen_cvs_link(
        reactor,
        "tcp:0:interface=127.0.0.1",
        files_for(certs, "gateway"),
        submit,
        60.0,
        peers=[AGENCY],
    )
    link = connect(address(port))
    try:
        d = link.send(record(1))
        await until(lambda: len(link.client.disconnects) >= 1, "the handshake to fail")
        assert fired(d) == [] and link.unacked == 1
        assert submitted == []
        assert link.client.disconnects[0].check(SSL.Error), link.client.disconnects[0]
    finally:
        await link.stop().addTimeout(TIMEOUT, reactor)
        await until(lambda: gateway_connections(port) == 0, "the gateway to close")
        await defer.maybeDeferred(port.stopListening)


@pytest_twisted.ensureDeferred
async def test_a_record_is_acknowledged_over_mutual_tls(certs: dict[str, Path]) -> None:
    from twisted.internet import reactor  # noqa: TID251

    submitted: list[tuple[bytes, str]] = []

    def submit(record: bytes, source: str) -> defer.Deferred[str]:
        submitted.append((record, source))
        return task.deferLater(reactor, 0.01, lambda: "00")

    port = await listen_cvs_link(
        reactor,
        "tcp:0:interface=127.0.0.1",
        files_for(certs, "gateway"),
        submit,
        60.0,
        peers=[AGENCY],
    )
    link = start_agency_link(
        reactor,
        address(port),
        files_for(certs, "cvs-agency"),
        "gateway",
    )
    try:
        results = [await link.send(record(n)).addTimeout(TIMEOUT, reactor) for n in (1, 2)]

        assert results == ["00", "00"]
        assert submitted == [(record(1), "link:cvs-agency"), (record(2), "link:cvs-agency")]
        assert link.unacked == 0
        assert gateway_connections(port) == 1
    finally:
        await link.stop().addTimeout(TIMEOUT, reactor)
        await until(lambda: gateway_connections(port) == 0, "the gateway to close")
        await defer.maybeDeferred(port.stopListening)


@pytest_twisted.ensureDeferred
async def test_a_client_without_a_certificate_gets_nothing_acknowledged(
    certs: dict[str, Path],
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    ca = ssl.Certificate.loadPEM(certs["ca"].read_bytes())
    anonymous = ssl.optionsForClientTLS("gateway", trustRoot=ca)  # trusts the gateway, no cert

    def connect(description: str) -> AgencyLink:
        endpoint = connect_tls_endpoint(reactor, description, anonymous)
        return AgencyLink(endpoint, AgencyLinkClient(reactor), reactor)

    await refused(certs, connect)


@pytest_twisted.ensureDeferred
async def test_a_client_certificate_from_another_ca_gets_nothing_acknowledged(
    certs: dict[str, Path], tmp_path: Path
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    other = make_certs(tmp_path / "other", now=datetime.now(UTC))
    stranger = TLSFiles(  # trusts the gateway's CA, but its own certificate is from another CA
        ca=certs["ca"], certificate=other["cvs-agency"], key=other["cvs-agency_key"]
    )

    await refused(certs, lambda d: start_agency_link(reactor, d, stranger, "gateway"))


@pytest_twisted.ensureDeferred
async def test_two_links_share_a_port_with_reuse_port(certs: dict[str, Path]) -> None:
    """``reuse_port`` (two daemons of one host): two TLS link listeners on one port, the kernel
    spreads the agency's connections between them, and each record is acknowledged over mutual
    TLS by the listener its connection reached."""
    from twisted.internet import reactor  # noqa: TID251

    from gateway.app.process import free_port

    submitted: list[list[bytes]] = [[], []]

    def submitter(k: int) -> Callable[[bytes, str], defer.Deferred[str]]:
        def submit(record: bytes, source: str) -> defer.Deferred[str]:
            submitted[k].append(record)
            return defer.succeed("00")

        return submit

    description = f"tcp:{free_port()}:interface=127.0.0.1"
    ports = [
        await listen_cvs_link(
            reactor,
            description,
            files_for(certs, "gateway"),
            submitter(k),
            60.0,
            peers=[AGENCY],
            max_connections=32,
            reuse_port=True,
        )
        for k in (0, 1)
    ]
    assert ports[0].getHost() == ports[1].getHost()
    links = [
        start_agency_link(reactor, address(ports[0]), files_for(certs, "cvs-agency"), "gateway")
        for _ in range(16)
    ]
    try:
        sends = [link.send(record(n)) for n, link in enumerate(links)]
        results = [await d.addTimeout(TIMEOUT, reactor) for d in sends]
        assert results == ["00"] * 16
        assert sorted(submitted[0] + submitted[1]) == sorted(record(n) for n in range(16))
        # Both listeners took connections: 2 chances in 2**16 that the kernel gave all to one.
        assert [gateway_connections(p) > 0 for p in ports] == [True, True]
    finally:
        for link in links:
            await link.stop().addTimeout(TIMEOUT, reactor)
        for p in ports:
            await until(lambda p=p: gateway_connections(p) == 0, "the gateway to close")
            await defer.maybeDeferred(p.stopListening)
