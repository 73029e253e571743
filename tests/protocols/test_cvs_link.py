"""gateway.protocols.cvs: the gateway's side of the CVS real-time link (StringTransport, Clock).

The TLS layer is stood in for by :class:`TLSTransport`, a StringTransport that shows a peer
certificate; the tests call ``handshakeCompleted`` where TLS would.
"""

from __future__ import annotations

import datetime
import functools
import struct
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import crypto
from prometheus_client import REGISTRY
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import LogEvent, capturedLogs, formatEvent
from twisted.python.failure import Failure

from gateway.protocols.cvs import CLOSE_GRACE, CvsLinkFactory, CvsLinkProtocol, Submit
from gateway.protocols.link_state import LinkState

PEER = IPv4Address("TCP", "192.0.2.7", 40001)
AGENCY = "cvs-agency"


@functools.cache
def certificate(common_name: str | None, dns_names: Sequence[str] = ()) -> crypto.X509:
    """A certificate with these names, as a verified peer's would look after the handshake."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    )
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    return crypto.X509.from_cryptography(builder.sign(key, hashes.SHA256()))


class TLSTransport(StringTransport):
    """A StringTransport that shows the peer's certificate, as TLSMemoryBIOProtocol does."""

    def __init__(self, peer_certificate: crypto.X509 | None) -> None:
        super().__init__(peerAddress=PEER)
        self.peer_certificate = peer_certificate

    def getPeerCertificate(self) -> crypto.X509 | None:
        return self.peer_certificate


def record(n: int) -> bytes:
    """A 120-byte 速報 record (spec/cvs.md §2); only its length matters to the protocol."""
    return (b"201" + b"20261123" + b"0930" + b"1" + f"{n:044d}".encode()).ljust(120, b" ")


def frame(payload: bytes) -> bytes:
    return struct.pack("!H", len(payload)) + payload


def dt(sequence: int, body: bytes | None = None) -> bytes:
    return frame(b"DT" + f"{sequence:010d}".encode() + (record(sequence) if body is None else body))


def parse(data: bytes) -> list[bytes]:
    """Every complete frame in ``data`` (and nothing may be left over)."""
    payloads = []
    while data:
        (length,) = struct.unpack("!H", data[:2])
        assert len(data) >= 2 + length, data
        payloads.append(data[2 : 2 + length])
        data = data[2 + length :]
    return payloads


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Core:
    """A submit function whose Deferreds the test fires itself, like the grouping core."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str, Deferred[str]]] = []

    def __call__(self, record: bytes, source: str) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        self.calls.append((record, source, d))
        return d


def connect(
    submit: Submit,
    clock: task.Clock,
    idle_timeout: float = 60.0,
    heartbeat: float | None = None,
    *,
    factory: CvsLinkFactory | None = None,
    peer: crypto.X509 | None = None,
    handshake: bool = True,
) -> tuple[CvsLinkProtocol, StringTransport, CvsLinkFactory]:
    """A connection from ``peer`` (default: the agency's certificate), its handshake done."""
    if factory is None:
        factory = CvsLinkFactory(submit, clock, idle_timeout, heartbeat, peers=[AGENCY])
    protocol = factory.buildProtocol(PEER)
    transport = TLSTransport(certificate(AGENCY, (AGENCY,)) if peer is None else peer)
    protocol.makeConnection(transport)
    if handshake:
        protocol.handshakeCompleted()
    return protocol, transport, factory


@pytest.fixture
def clock() -> task.Clock:
    return task.Clock()


def test_a_frame_split_across_reads_is_submitted_once_and_acked(clock: task.Clock) -> None:
    core = Core()
    protocol, transport, _ = connect(core, clock)

    for byte in dt(42):
        protocol.dataReceived(bytes([byte]))

    assert [(r, s) for r, s, _ in core.calls] == [(record(42), "link:cvs-agency")]
    assert transport.value() == b""  # no ack before the record is committed
    core.calls[0][2].callback("00")
    assert parse(transport.value()) == [b"AK000000004200"]


def test_several_frames_in_one_read(clock: task.Clock) -> None:
    core = Core()
    protocol, transport, _ = connect(core, clock)
    before = sample("gateway_cvs_link_frames_total", type="dt")

    data = dt(1) + dt(2) + frame(b"HB0000000009") + dt(3)
    protocol.dataReceived(data + dt(4)[:50])  # and the start of a fourth

    assert [r for r, _, _ in core.calls] == [record(1), record(2), record(3)]
    assert parse(transport.value()) == [b"HA0000000009"]
    protocol.dataReceived(dt(4)[50:])
    assert [r for r, _, _ in core.calls][3:] == [record(4)]
    assert sample("gateway_cvs_link_frames_total", type="dt") == before + 4


def test_acks_go_out_in_the_order_the_core_answers(clock: task.Clock) -> None:
    core = Core()
    protocol, transport, _ = connect(core, clock)
    protocol.dataReceived(dt(1) + dt(2) + dt(3))
    before = sample("gateway_cvs_link_acks_total", result="00")

    for _, _, d in reversed(core.calls):
        d.callback("00")

    assert parse(transport.value()) == [b"AK000000000300", b"AK000000000200", b"AK000000000100"]
    assert sample("gateway_cvs_link_acks_total", result="00") == before + 3


def test_each_result_is_passed_on(clock: task.Clock) -> None:
    core = Core()
    protocol, transport, _ = connect(core, clock)
    protocol.dataReceived(dt(1) + dt(2) + dt(3))

    for (_, _, d), result in zip(core.calls, ["10", "90", "00"], strict=True):
        d.callback(result)

    assert parse(transport.value()) == [b"AK000000000110", b"AK000000000290", b"AK000000000300"]


def test_a_short_dt_is_answered_10_without_reaching_the_core(clock: task.Clock) -> None:
    core = Core()
    protocol, transport, _ = connect(core, clock)
    bad = sample("gateway_cvs_link_frames_total", type="bad")
    tens = sample("gateway_cvs_link_acks_total", result="10")

    protocol.dataReceived(dt(7, record(7)[:119]) + dt(8, record(8) + b" "))

    assert core.calls == []
    assert parse(transport.value()) == [b"AK000000000710", b"AK000000000810"]
    assert not transport.disconnecting
    assert sample("gateway_cvs_link_frames_total", type="bad") == bad + 2
    assert sample("gateway_cvs_link_acks_total", result="10") == tens + 2


def test_a_dt_without_a_readable_sequence_closes_the_connection(clock: task.Clock) -> None:
    core = Core()
    protocol, transport, _ = connect(core, clock)
    before = sample("gateway_cvs_link_disconnects_total", reason="bad_frame")

    with capturedLogs() as events:
        protocol.dataReceived(frame(b"DT00000000x1" + record(1)) + dt(2))

    assert transport.disconnecting
    assert core.calls == []  # the frame after it in the same read is not read either
    assert transport.value() == b""
    assert sample("gateway_cvs_link_disconnects_total", reason="bad_frame") == before + 1
    assert any("10-digit sequence" in text(e) for e in events)


def text(event: LogEvent) -> str:
    return formatEvent(event) or ""


def test_a_frame_over_1024_bytes_closes_the_connection(clock: task.Clock) -> None:
    protocol, transport, _ = connect(Core(), clock)
    before = sample("gateway_cvs_link_disconnects_total", reason="frame_too_long")

    protocol.dataReceived(frame(b"ZZ" + b"x" * 1022))  # 1,024 bytes: the limit itself is fine
    assert not transport.disconnecting
    protocol.dataReceived(frame(b"DT" + b"0" * 1023))  # 1,025 bytes

    assert transport.disconnecting
    assert sample("gateway_cvs_link_disconnects_total", reason="frame_too_long") == before + 1
    protocol.dataReceived(dt(1))  # whatever still arrives is not read
    assert transport.value() == b""
    clock.advance(CLOSE_GRACE)  # a peer that never lets go is aborted
    assert transport.disconnected


def test_heartbeat_is_answered_with_the_same_sequence(clock: task.Clock) -> None:
    protocol, transport, _ = connect(Core(), clock)
    before = sample("gateway_cvs_link_frames_total", type="hb")

    protocol.dataReceived(frame(b"HB0123456789"))

    assert parse(transport.value()) == [b"HA0123456789"]
    assert sample("gateway_cvs_link_frames_total", type="hb") == before + 1


def test_a_malformed_heartbeat_is_ignored(clock: task.Clock) -> None:
    protocol, transport, _ = connect(Core(), clock)
    before = sample("gateway_cvs_link_frames_total", type="bad")

    protocol.dataReceived(frame(b"HB012345678") + frame(b"HB01234567890") + frame(b"HA12345"))

    assert transport.value() == b""
    assert not transport.disconnecting
    assert sample("gateway_cvs_link_frames_total", type="bad") == before + 3


def test_idle_timeout_closes_after_exactly_idle_timeout(clock: task.Clock) -> None:
    protocol, transport, factory = connect(Core(), clock, idle_timeout=60.0)
    before = sample("gateway_cvs_link_disconnects_total", reason="idle")

    clock.advance(59.5)
    assert not transport.disconnecting
    clock.advance(0.5)

    assert transport.disconnecting
    assert sample("gateway_cvs_link_disconnects_total", reason="idle") == before + 1
    peer_closed = sample("gateway_cvs_link_disconnects_total", reason="peer_closed")
    protocol.connectionLost(Failure(ConnectionDone()))
    assert factory.connections == 0
    assert sample("gateway_cvs_link_disconnects_total", reason="peer_closed") == peer_closed
    assert clock.getDelayedCalls() == []


def test_any_frame_resets_the_idle_timer(clock: task.Clock) -> None:
    protocol, transport, _ = connect(Core(), clock, idle_timeout=60.0)

    clock.advance(59)
    protocol.dataReceived(frame(b"HB0000000001"))
    clock.advance(59)
    protocol.dataReceived(frame(b"??"))  # even one that is ignored
    clock.advance(59)
    protocol.dataReceived(dt(1)[:20])  # part of a frame is not a frame
    assert not transport.disconnecting
    clock.advance(1)

    assert transport.disconnecting


def test_the_gateway_sends_heartbeats_when_it_has_been_silent(clock: task.Clock) -> None:
    core = Core()
    protocol, transport, _ = connect(core, clock, idle_timeout=60.0)

    clock.advance(20)
    assert parse(transport.value()) == [b"HB0000000001"]
    clock.advance(10)
    protocol.dataReceived(dt(5))
    core.calls[0][2].callback("00")  # an ack at t=30 postpones the next heartbeat to t=50
    clock.advance(19)
    assert parse(transport.value()) == [b"HB0000000001", b"AK000000000500"]
    protocol.dataReceived(frame(b"HA0000000001"))
    clock.advance(1)
    assert parse(transport.value())[-1] == b"HB0000000002"


def test_a_late_answer_after_disconnect_writes_nothing(clock: task.Clock) -> None:
    core = Core()
    protocol, transport, factory = connect(core, clock)
    protocol.dataReceived(dt(1) + dt(2))
    core.calls[0][2].callback("00")
    before = sample("gateway_cvs_link_acks_total", result="00")
    assert factory.connections == 1

    protocol.connectionLost(Failure(ConnectionDone()))
    transport.clear()
    core.calls[1][2].callback("00")

    assert transport.value() == b""
    assert sample("gateway_cvs_link_acks_total", result="00") == before
    assert factory.connections == 0
    assert clock.getDelayedCalls() == []


def test_a_failed_submit_is_answered_90_and_logged(clock: task.Clock) -> None:
    def broken(record: bytes, source: str) -> Deferred[str]:
        return fail(RuntimeError("database is down"))

    def raises(record: bytes, source: str) -> Deferred[str]:
        raise RuntimeError("bug")

    def nonsense(record: bytes, source: str) -> Deferred[str]:
        return succeed("99")

    for submit in (broken, raises, nonsense):
        protocol, transport, _ = connect(submit, clock)
        with capturedLogs() as events:
            protocol.dataReceived(dt(3))
        assert parse(transport.value()) == [b"AK000000000390"], submit
        assert any("answering 90" in text(e) for e in events), submit


def test_unknown_frames_are_logged_briefly_counted_and_ignored(clock: task.Clock) -> None:
    core = Core()
    protocol, transport, _ = connect(core, clock)
    before = sample("gateway_cvs_link_frames_total", type="unknown")
    payload = b"XY" + b"s" * 38 + b"SECRET-BEYOND-40"

    with capturedLogs() as events:
        protocol.dataReceived(frame(payload) + frame(b"AK000000000100") + dt(1))

    assert sample("gateway_cvs_link_frames_total", type="unknown") == before + 2
    logged = " ".join(text(e) for e in events)
    assert repr(payload[:40]) in logged
    assert "SECRET" not in logged
    assert len(core.calls) == 1  # the link goes on
    assert not transport.disconnecting


def test_the_factory_counts_open_connections(clock: task.Clock) -> None:
    factory = CvsLinkFactory(Core(), clock, 60.0, peers=[AGENCY])
    gauge = sample("gateway_cvs_link_connections")
    protocols = [connect(Core(), clock, factory=factory)[0] for _ in range(3)]

    assert factory.connections == 3
    assert sample("gateway_cvs_link_connections") == gauge + 3
    protocols[0].connectionLost(Failure(ConnectionDone()))
    assert factory.connections == 2
    assert sample("gateway_cvs_link_connections") == gauge + 2
    for protocol in protocols[1:]:
        protocol.connectionLost(Failure(ConnectionDone()))
    assert sample("gateway_cvs_link_connections") == gauge


def test_the_link_is_open_while_a_connection_is_established_and_says_since_when(
    clock: task.Clock,
) -> None:
    clock.advance(1_000)
    state = LinkState(clock)
    factory = CvsLinkFactory(Core(), clock, 60.0, peers=[AGENCY], state=state)
    assert state.document() == {"link": "down", "since": "1970-01-01T00:16:40+00:00"}
    clock.advance(60)
    first = connect(Core(), clock, factory=factory)[0]
    clock.advance(5)
    second = connect(Core(), clock, factory=factory)[0]
    assert state.document() == {"link": "open", "since": "1970-01-01T00:17:40+00:00"}
    clock.advance(30)
    first.connectionLost(Failure(ConnectionDone()))
    assert state.up and state.since == 1_060  # one connection still up
    clock.advance(30)
    second.connectionLost(Failure(ConnectionDone()))
    assert state.document() == {"link": "down", "since": "1970-01-01T00:18:45+00:00"}
    handshaking = connect(Core(), clock, factory=factory, handshake=False)[0]
    assert not state.up  # not before its handshake
    handshaking.connectionLost(Failure(ConnectionDone()))


def test_idle_timeout_must_be_positive(clock: task.Clock) -> None:
    with pytest.raises(ValueError, match="idle_timeout"):
        CvsLinkFactory(Core(), clock, 0, peers=[AGENCY])


# --- peer identity, connection limits, handshake deadline, flow control (issue 14) -------------


def refused(reason: str) -> float:
    return sample("gateway_cvs_link_refused_total", reason=reason)


@pytest.mark.parametrize(
    "peer",
    [
        certificate("mpn-center", ("mpn-center",)),  # another peer of the same CA
        certificate("bank", ("bank", "localhost")),
        certificate("anything"),
        certificate(None, ("cvs-agency.evil.example",)),
        None,  # no certificate at all
    ],
    ids=["mpn-center", "bank", "cn-anything", "san-lookalike", "none"],
)
def test_a_peer_of_another_name_is_closed_before_a_frame_is_read(
    clock: task.Clock, peer: crypto.X509 | None
) -> None:
    core = Core()
    factory = CvsLinkFactory(core, clock, 60.0, peers=[AGENCY])
    protocol = factory.buildProtocol(PEER)
    transport = TLSTransport(peer)
    before, gauge = refused("peer_name"), sample("gateway_cvs_link_connections")
    failed = refused("handshake_failed")

    with capturedLogs() as events:
        protocol.makeConnection(transport)
        protocol.handshakeCompleted()
        protocol.dataReceived(dt(1) + dt(2))  # a 02 record right behind the handshake

    assert core.calls == []  # nothing reached the ledger
    assert transport.value() == b""  # not even an ack
    assert transport.disconnecting
    assert refused("peer_name") == before + 1
    assert sample("gateway_cvs_link_connections") == gauge
    assert factory.connections == 0
    logged = " ".join(text(e) for e in events)
    assert "refused 192.0.2.7:40001 (peer_name)" in logged
    if peer is not None:
        name = peer.to_cryptography().subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        assert repr(name[0].value if name else "cvs-agency.evil.example") in logged
    clock.advance(CLOSE_GRACE)
    assert transport.disconnected  # aborted if it does not go away
    protocol.connectionLost(Failure(ConnectionDone()))
    assert refused("handshake_failed") == failed  # counted once, as peer_name


def test_the_allowed_name_may_be_a_subject_alt_name_in_any_case(clock: task.Clock) -> None:
    core = Core()
    peer = certificate("Agency link 7", ("link7.agency.example", "CVS-Agency"))
    protocol, transport, factory = connect(core, clock, peer=peer)

    protocol.dataReceived(dt(1))

    assert [s for _, s, _ in core.calls] == ["link:cvs-agency"]
    assert factory.connections == 1
    assert not transport.disconnecting


def test_nothing_is_read_before_the_handshake(clock: task.Clock) -> None:
    core = Core()
    protocol, transport, _ = connect(core, clock, handshake=False)

    protocol.dataReceived(dt(1))

    assert core.calls == []
    assert transport.value() == b""


def test_a_connection_counts_only_once_its_handshake_is_complete(clock: task.Clock) -> None:
    factory = CvsLinkFactory(Core(), clock, 60.0, peers=[AGENCY])
    gauge = sample("gateway_cvs_link_connections")
    protocol, _, _ = connect(Core(), clock, factory=factory, handshake=False)

    assert sample("gateway_cvs_link_connections") == gauge
    assert (factory.connections, factory.handshakes) == (0, 1)
    protocol.handshakeCompleted()
    assert sample("gateway_cvs_link_connections") == gauge + 1
    assert (factory.connections, factory.handshakes) == (1, 0)
    protocol.connectionLost(Failure(ConnectionDone()))
    assert sample("gateway_cvs_link_connections") == gauge


def test_at_most_max_connections_are_established(clock: task.Clock) -> None:
    core = Core()
    factory = CvsLinkFactory(core, clock, 60.0, peers=[AGENCY], max_connections=2)
    before = refused("too_many_connections")
    first, _, _ = connect(core, clock, factory=factory)
    connect(core, clock, factory=factory)

    third, transport, _ = connect(core, clock, factory=factory)
    third.dataReceived(dt(3))

    assert factory.connections == 2
    assert transport.disconnecting
    assert core.calls == []
    assert refused("too_many_connections") == before + 1
    first.connectionLost(Failure(ConnectionDone()))  # a place is free again
    fourth, transport, _ = connect(core, clock, factory=factory)
    fourth.dataReceived(dt(4))
    assert not transport.disconnecting
    assert len(core.calls) == 1


def test_at_most_max_connections_handshakes_at_once(clock: task.Clock) -> None:
    factory = CvsLinkFactory(Core(), clock, 60.0, peers=[AGENCY], max_connections=2)
    before = refused("too_many_handshakes")
    for _ in range(2):
        connect(Core(), clock, factory=factory, handshake=False)

    _, transport, _ = connect(Core(), clock, factory=factory, handshake=False)

    assert transport.disconnected  # aborted at once
    assert factory.handshakes == 2
    assert refused("too_many_handshakes") == before + 1


def test_an_unfinished_handshake_is_aborted_at_its_deadline(clock: task.Clock) -> None:
    factory = CvsLinkFactory(Core(), clock, 60.0, peers=[AGENCY], handshake_timeout=5.0)
    before = refused("handshake_timeout")
    protocol, transport, _ = connect(Core(), clock, factory=factory, handshake=False)

    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.1)

    assert transport.disconnected
    assert refused("handshake_timeout") == before + 1
    protocol.connectionLost(Failure(ConnectionDone()))
    assert factory.handshakes == 0
    assert clock.getDelayedCalls() == []


def test_a_connection_lost_during_its_handshake_is_counted(clock: task.Clock) -> None:
    factory = CvsLinkFactory(Core(), clock, 60.0, peers=[AGENCY])
    before = refused("handshake_failed")
    protocol, _, _ = connect(Core(), clock, factory=factory, handshake=False)

    protocol.connectionLost(Failure(ConnectionDone()))

    assert refused("handshake_failed") == before + 1
    assert factory.handshakes == 0
    assert clock.getDelayedCalls() == []


def test_reading_stops_at_max_unacked_and_resumes_as_acks_go(clock: task.Clock) -> None:
    core = Core()
    factory = CvsLinkFactory(core, clock, 60.0, peers=[AGENCY], max_unacked=3)
    protocol, transport, _ = connect(core, clock, factory=factory)

    protocol.dataReceived(b"".join(dt(n) for n in range(1, 8)))  # a burst of 7, none acked

    assert [r for r, _, _ in core.calls] == [record(1), record(2), record(3)]
    assert transport.producerState == "paused"  # the socket is no longer read
    core.calls[1][2].callback("00")
    assert parse(transport.value()) == [b"AK000000000200"]
    assert [r for r, _, _ in core.calls][3:] == [record(4)]  # one more read, then paused again
    assert transport.producerState == "paused"
    while not all(d.called for _, _, d in core.calls):  # the core answers the rest
        next(d for _, _, d in core.calls if not d.called).callback("00")
    assert [r for r, _, _ in core.calls] == [record(n) for n in range(1, 8)]
    assert transport.producerState == "producing"
    assert len(parse(transport.value())) == 7
    assert protocol.pending == 0


def test_a_paused_connection_is_not_closed_as_idle(clock: task.Clock) -> None:
    core = Core()
    factory = CvsLinkFactory(core, clock, 60.0, peers=[AGENCY], max_unacked=1)
    protocol, transport, _ = connect(core, clock, factory=factory)
    protocol.dataReceived(dt(1) + dt(2))

    clock.advance(61)  # the core is slow; the agency is waiting for us

    assert not transport.disconnecting
    core.calls[0][2].callback("00")
    assert len(core.calls) == 2
    assert transport.producerState == "paused"
    core.calls[1][2].callback("00")
    assert transport.producerState == "producing"
    clock.advance(60)
    assert transport.disconnecting  # idle again counts once we read


def test_peers_must_be_given(clock: task.Clock) -> None:
    with pytest.raises(ValueError, match="peers"):
        CvsLinkFactory(Core(), clock, 60.0, peers=[])
