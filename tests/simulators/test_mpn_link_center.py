"""simulators.mpn_link: the MPN center's side of the link, alone, against the gateway in memory,
and over real mutual TLS on loopback."""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, ssl, task
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IListeningPort
from twisted.internet.testing import StringTransport
from twisted.test import iosim

from gateway.errors import PeerUnavailable
from gateway.infra.tls import TLSFiles, connect_tls_endpoint, make_certs
from gateway.mappers.mpn.mapper import (
    Close,
    Echo,
    Header,
    Inquiry,
    InquiryAnswer,
    Key,
    Message,
    Open,
    build_message,
    parse_message,
    response_for,
)
from gateway.protocols.mpn import MpnLink, MpnLinkFactory, MpnLinkProtocol
from simulators.mpn_link import MpnCenterFactory, MpnCenterProtocol, listen_mpn_center
from tests.helpers import connected_in_memory

TIMEOUT = 10  # seconds; no network wait may be longer
PEER = IPv4Address("TCP", "192.0.2.9", 50001)
TODAY = date(2026, 11, 23)
KEY = Key("12345", "0000111122223333", "9876")


def frame(message: Message) -> bytes:
    data = build_message(message)
    return struct.pack("!I", len(data)) + data


def parse(data: bytes) -> list[Message]:
    messages = []
    while data:
        (length,) = struct.unpack("!I", data[:4])
        messages.append(parse_message(data[4 : 4 + length]))
        data = data[4 + length :]
    return messages


def gateway(type_: str, serial: int, body: object) -> Message:
    return Message(Header(type_, "0009", TODAY, f"{serial:08d}"), body)  # type: ignore[arg-type]


def results(d: defer.Deferred[Message]) -> list[object]:
    out: list[object] = []
    d.addBoth(out.append)
    return out


@pytest.fixture
def clock() -> task.Clock:
    return task.Clock()


def attach(center: MpnCenterFactory) -> tuple[MpnCenterProtocol, StringTransport]:
    protocol = center.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    open_request = gateway("1000", 1, Open("12345", TODAY))
    protocol.dataReceived(frame(open_request))
    assert parse(transport.value()) == [response_for(open_request, "0000")]
    transport.clear()
    return protocol, transport


# --- the center alone ----------------------------------------------------------------------------


def test_open_is_answered_and_recorded(clock: task.Clock) -> None:
    center = MpnCenterFactory(clock)
    opened = results(center.opened)  # type: ignore[arg-type]
    protocol, _ = attach(center)

    assert opened == [protocol]
    assert (center.institution_code, center.gateway_business_date) == ("12345", TODAY)
    assert center.received["1000"] == 1 and center.sent["1010"] == 1


def test_requests_are_matched_by_triple_with_a_deadline(clock: task.Clock) -> None:
    center = MpnCenterFactory(clock, deadline=5.0)
    assert results(center.request("1100", Inquiry(KEY)))[0].check(PeerUnavailable)  # type: ignore[union-attr]
    protocol, transport = attach(center)

    first = results(center.request("1100", Inquiry(KEY)))
    second = results(center.request("1100", Inquiry(KEY)))
    a, b = parse(transport.value())
    assert (a.header.center_code, a.header.business_date, a.header.serial) == (
        "0002",
        TODAY,
        "00000001",
    )
    assert b.header.serial == "00000002"
    answer = response_for(b, "1001")
    protocol.dataReceived(frame(answer))
    assert first == [] and second == [answer]

    clock.advance(5)
    assert isinstance(first[0], defer.Failure) and first[0].check(TimeoutError)
    protocol.dataReceived(frame(response_for(a, "1001")))  # too late: unmatched
    assert center.received["unmatched"] == 1


def test_close_is_answered_with_the_simulators_figures(clock: task.Clock) -> None:
    theirs = Close(TODAY, 9, 9, 9, 9)
    center = MpnCenterFactory(clock, close_figures=lambda ours: theirs)
    protocol, transport = attach(center)
    ours = gateway("1900", 2, Close(TODAY, 1, 100, 0, 0))

    protocol.dataReceived(frame(ours) + frame(gateway("1800", 3, Echo())))

    assert parse(transport.value()) == [
        response_for(ours, "0000", theirs),
        response_for(gateway("1800", 3, Echo()), "0000"),
    ]
    assert center.closes == [(ours.body, theirs)]


# --- the center against the gateway, in memory ---------------------------------------------------


def in_memory(
    center: MpnCenterFactory, link: MpnLinkFactory, clock: task.Clock
) -> tuple[MpnLinkProtocol, MpnCenterProtocol, iosim.IOPump]:
    """A gateway protocol and a center protocol connected in memory."""
    client, server, pump = connected_in_memory(
        lambda: center.buildProtocol(None),
        lambda: link.buildProtocol(PEER),
        clock,
        peer=PEER,
        gateway_end="client",
    )
    return client, server, pump


def test_gateway_and_center_in_memory(clock: task.Clock) -> None:
    def answer(request: Message, source: str) -> defer.Deferred[Message]:
        return defer.succeed(response_for(request, "0000", InquiryAnswer(KEY, 5500, TODAY, "ｱ")))

    center = MpnCenterFactory(clock)
    link = MpnLinkFactory(
        answer, clock, institution_code="12345", center_code="0009", business_date=lambda: TODAY
    )
    gateway_protocol, _, pump = in_memory(center, link, clock)
    pump.flush()
    assert gateway_protocol.open and center.opened.called

    got = results(center.request("1100", Inquiry(KEY)))
    pump.flush()
    assert [m.body for m in got] == [InquiryAnswer(KEY, 5500, TODAY, "ｱ")]  # type: ignore[attr-defined]

    closed = results(gateway_protocol.close_day(TODAY, Close(TODAY, 1, 5500, 0, 0)))
    pump.flush()
    assert closed == [Close(TODAY, 1, 5500, 0, 0)]

    for _ in range(10):  # five minutes of echo keep the link open
        clock.advance(30)
        pump.flush()
    assert gateway_protocol.open and center.received["1800"] == 10


# --- over real mutual TLS on loopback ------------------------------------------------------------


def files_for(paths: dict[str, Path], name: str) -> TLSFiles:
    return TLSFiles(ca=paths["ca"], certificate=paths[name], key=paths[f"{name}_key"])


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    return make_certs(tmp_path / "tls", now=datetime.now(UTC))


def address(port: IListeningPort) -> str:
    host = port.getHost()
    assert isinstance(host, IPv4Address)
    return f"tcp:127.0.0.1:{host.port}"


async def until(predicate: Callable[[], bool], what: str) -> None:
    from twisted.internet import reactor  # noqa: TID251

    deadline = reactor.seconds() + TIMEOUT
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await task.deferLater(reactor, 0.02)


@pytest_twisted.ensureDeferred
async def test_an_inquiry_is_answered_over_mutual_tls(certs: dict[str, Path]) -> None:
    from twisted.internet import reactor  # noqa: TID251

    sources: list[str] = []

    def answer(request: Message, source: str) -> defer.Deferred[Message]:
        sources.append(source)
        return task.deferLater(reactor, 0.01, lambda: response_for(request, "1002"))

    center = MpnCenterFactory(reactor)
    port = await listen_mpn_center(
        reactor, "tcp:0:interface=127.0.0.1", files_for(certs, "mpn-center"), factory=center
    )
    link = MpnLink(
        reactor,
        address(port),
        files_for(certs, "gateway"),
        "mpn-center",
        answer,
        institution_code="12345",
        center_code="0009",
        business_date=lambda: TODAY,
    )
    link.start()
    try:
        await center.opened.addTimeout(TIMEOUT, reactor)
        await until(lambda: link.open, "the gateway to see 1010")
        response = await center.request("1100", Inquiry(KEY)).addTimeout(TIMEOUT, reactor)

        assert response.header.type == "1110" and response.header.response_code == "1002"
        assert response.body == InquiryAnswer(KEY)
        assert sources == ["mpn:mpn-center"]
        assert center.institution_code == "12345"
    finally:
        await link.stop().addTimeout(TIMEOUT, reactor)
        await until(lambda: center.connected_protocol is None, "the center to see the close")
        await defer.maybeDeferred(port.stopListening)


@pytest_twisted.ensureDeferred
async def test_a_gateway_without_a_certificate_cannot_open(certs: dict[str, Path]) -> None:
    from twisted.internet import reactor  # noqa: TID251

    center = MpnCenterFactory(reactor)
    port = await listen_mpn_center(
        reactor, "tcp:0:interface=127.0.0.1", files_for(certs, "mpn-center"), factory=center
    )
    ca = ssl.Certificate.loadPEM(certs["ca"].read_bytes())
    anonymous = ssl.optionsForClientTLS("mpn-center", trustRoot=ca)  # trusts the center, no cert
    link = MpnLinkFactory(
        lambda m, s: defer.fail(RuntimeError("never asked")),
        reactor,
        institution_code="12345",
        center_code="0009",
        business_date=lambda: TODAY,
    )
    try:
        endpoint = connect_tls_endpoint(reactor, address(port), anonymous)
        await endpoint.connect(link).addTimeout(TIMEOUT, reactor)
        await until(lambda: link.current is None, "the handshake to fail")

        assert not center.opened.called
        assert center.received["1000"] == 0
    finally:
        await until(lambda: center.connected_protocol is None, "the center to close")
        await defer.maybeDeferred(port.stopListening)
