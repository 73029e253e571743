"""Fuzz checks of the two link framers: the CVS 速報 link (the agency's bytes) and the MPN link
(the center's bytes), each driven as its tests drive it, on a StringTransport and a task.Clock
(see tests/fuzz/registry.py).

An input is two control bytes and the stream the peer sends: the first byte is the size of each
read (1-256 bytes), the second picks how the core answers the records or requests (two bits a
call, in turn: at once, later, a failure, or nonsense). After the stream the clock runs past
every deadline, the late answers fire and the connection is lost.

Nothing may raise out of the protocol, no log line may carry an unexpected failure, and every
frame written must be one the peer can read: a well-formed ``AK``/``HA``/``HB`` on the CVS link,
a message with a readable header (and a valid message, unless it is a ``2001`` answer that
copies a bad request's key) on the MPN link.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Callable, Iterator
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import crypto
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from gateway.errors import PeerUnavailable
from gateway.mappers.fields import parse_fields
from gateway.mappers.mpn.mapper import (
    Close,
    InquiryAnswer,
    Message,
    parse_message,
    response_for,
)
from gateway.mappers.mpn.records import HEADER, HEADER_LENGTH
from gateway.protocols.cvs import RECORD_LENGTH, CvsLinkFactory
from gateway.protocols.cvs_metrics import RESULTS
from gateway.protocols.mpn import MpnLinkFactory, MpnResponseError

PEER = IPv4Address("TCP", "192.0.2.7", 40001)
AGENCY = "cvs-agency"
TODAY = datetime.date(2026, 11, 23)
CONTROL = 2  # bytes before the stream


class CoreFailed(Exception):
    """The failure the fuzzing core answers with on purpose (logged by the protocol)."""


def _certificate(common_name: str) -> crypto.X509:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return crypto.X509.from_cryptography(cert)


_AGENCY_CERTIFICATE = _certificate(AGENCY)


class _TLSTransport(StringTransport):
    """A StringTransport that shows the agency's certificate, as TLSMemoryBIOProtocol does."""

    def __init__(self) -> None:
        super().__init__(peerAddress=PEER)

    def getPeerCertificate(self) -> crypto.X509:
        return _AGENCY_CERTIFICATE


class _Core:
    """Answers each call in turn at once, later, with a failure, or with nonsense."""

    def __init__(self, pattern: int, answer: Callable[[Any], Any], nonsense: Any) -> None:
        self.pattern = pattern
        self.calls = 0
        self.answer = answer
        self.nonsense = nonsense
        self.later: list[tuple[Deferred[Any], Any]] = []

    def __call__(self, request: Any, source: str) -> Deferred[Any]:
        how = (self.pattern >> (2 * (self.calls % 4))) & 3
        self.calls += 1
        if how == 0:
            return succeed(self.answer(request))
        if how == 1:
            d: Deferred[Any] = Deferred()
            self.later.append((d, request))
            return d
        if how == 2:
            return fail(CoreFailed("the core failed on purpose"))
        return succeed(self.nonsense)

    def fire_later(self) -> None:
        later, self.later = self.later, []
        for d, request in later:
            d.callback(self.answer(request))


def _reads(data: bytes) -> Iterator[bytes]:
    size = data[0] + 1 if data else 256
    stream = data[CONTROL:]
    for i in range(0, len(stream), size):
        yield stream[i : i + size]


def _frames(out: bytes, prefix: str) -> list[bytes]:
    """Every frame written; the writes end on a frame boundary."""
    width = struct.calcsize(prefix)
    frames = []
    while out:
        assert len(out) >= width, f"a partial length prefix written: {out!r}"
        (length,) = struct.unpack(prefix, out[:width])
        assert len(out) >= width + length, f"a partial frame written: {out!r}"
        frames.append(out[width : width + length])
        out = out[width + length :]
    return frames


def _no_unexpected_failure(events: list[dict[str, Any]]) -> None:
    for event in events:
        failure = event.get("log_failure")
        if isinstance(failure, Failure) and not failure.check(CoreFailed):
            failure.raiseException()


def _is_sequence(raw: bytes) -> bool:
    return len(raw) == 10 and raw.isdigit()


def cvs_link(data: bytes) -> None:
    clock = task.Clock()
    pattern = data[1] if len(data) > 1 else 0
    submitted: list[bytes] = []

    def answer(record: bytes) -> str:
        submitted.append(record)
        return "00" if record[:1] == b"2" else "10"

    core = _Core(pattern, answer, nonsense="??")
    factory = CvsLinkFactory(core, clock, 60.0, peers=[AGENCY], max_unacked=3)
    protocol = factory.buildProtocol(PEER)
    transport = _TLSTransport()
    with capturedLogs() as events:
        protocol.makeConnection(transport)
        protocol.handshakeCompleted()
        for read in _reads(data):
            protocol.dataReceived(read)
            clock.advance(0.5)
        core.fire_later()
        clock.advance(30.0)  # a heartbeat of ours
        clock.advance(61.0)  # the idle timeout
        clock.advance(11.0)  # the abort after a close
        protocol.connectionLost(Failure(ConnectionDone()))
        core.fire_later()
    _no_unexpected_failure(events)
    assert protocol.pending == 0, f"{protocol.pending} acks still counted as pending"
    assert all(len(r) == RECORD_LENGTH for r in submitted), "a record of another length submitted"
    for payload in _frames(transport.value(), "!H"):
        kind, sequence = payload[:2], payload[2:12]
        assert _is_sequence(sequence), f"a frame without a sequence written: {payload!r}"
        if kind == b"AK":
            assert len(payload) == 14 and payload[12:].decode() in RESULTS, payload
        else:
            assert kind in (b"HA", b"HB") and len(payload) == 12, payload


def _mpn_answer(request: Message) -> Message:
    if request.header.type == "1100":
        key = request.body.key  # type: ignore[union-attr]
        return response_for(request, "0000", InquiryAnswer(key, 5400, TODAY, "ﾃｽﾄ"))
    return response_for(request, "0000")


def mpn_link(data: bytes) -> None:
    clock = task.Clock()
    pattern = data[1] if len(data) > 1 else 0
    core = _Core(pattern, _mpn_answer, nonsense="nonsense")
    factory = MpnLinkFactory(
        core,
        clock,
        institution_code="12345",
        center_code="0009",
        business_date=lambda: TODAY,
    )
    protocol = factory.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    closed: list[Failure] = []
    reads = list(_reads(data))
    with capturedLogs() as events:
        protocol.makeConnection(transport)  # sends 1000, serial 00000001
        for i, read in enumerate(reads):
            if i == len(reads) // 2 and protocol.open:  # 閉局 on the way: 1900, the next serial
                day = protocol.close_day(TODAY, Close(TODAY, 1, 5400, 0, 0))
                day.addErrback(lambda f: f.trap(PeerUnavailable, MpnResponseError))
                day.addErrback(closed.append)
            protocol.dataReceived(read)
            clock.advance(0.5)
        core.fire_later()
        clock.advance(6.0)  # the answer deadline
        clock.advance(11.0)  # the request deadline
        clock.advance(31.0)  # an echo of ours, then its deadline
        clock.advance(11.0)
        protocol.connectionLost(Failure(ConnectionDone()))
        core.fire_later()
    _no_unexpected_failure(events)
    for failure in closed:
        failure.raiseException()
    assert protocol.pending_answers == 0, f"{protocol.pending_answers} answers still pending"
    for message in _frames(transport.value(), "!I"):
        values, errors = parse_fields(HEADER, message[:HEADER_LENGTH], network="mpn", record=0)
        assert not errors, f"a message with a bad header written: {message!r}"
        if values["response_code"] != "2001":
            parse_message(message)
