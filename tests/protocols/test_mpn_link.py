"""gateway.protocols.mpn: the gateway's side of the MPN link (StringTransport, Clock)."""

from __future__ import annotations

import struct
from datetime import date, datetime

import pytest
from prometheus_client import REGISTRY
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from gateway.errors import PeerUnavailable
from gateway.mappers.mpn.mapper import (
    Ack,
    Cancel,
    Close,
    Echo,
    Header,
    Inquiry,
    InquiryAnswer,
    Key,
    Message,
    Open,
    PaymentChannel,
    PaymentNotice,
    ResendCheck,
    build_message,
    parse_message,
    response_for,
)
from gateway.model import JST
from gateway.protocols.mpn import MpnLinkFactory, MpnLinkProtocol, MpnResponseError

PEER = IPv4Address("TCP", "192.0.2.9", 50001)
TODAY = date(2026, 11, 23)
KEY = Key("12345", "0000111122223333", "9876")
PAYMENT = PaymentNotice(
    KEY, 5500, datetime(2026, 11, 23, 9, 30, tzinfo=JST), "0005", PaymentChannel.ATM
)


def frame(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


def parse(data: bytes) -> list[Message]:
    messages = []
    while data:
        (length,) = struct.unpack("!I", data[:4])
        assert len(data) >= 4 + length, data
        messages.append(parse_message(data[4 : 4 + length]))
        data = data[4 + length :]
    return messages


def center(type_: str, serial: int, body: object, code: str = "0000") -> Message:
    return Message(Header(type_, "0002", TODAY, f"{serial:08d}", code), body)  # type: ignore[arg-type]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Core:
    """An Answer whose Deferreds the test fires itself."""

    def __init__(self) -> None:
        self.calls: list[tuple[Message, str, Deferred[Message]]] = []

    def __call__(self, request: Message, source: str) -> Deferred[Message]:
        d: Deferred[Message] = Deferred()
        self.calls.append((request, source, d))
        return d


def connect(
    answer: Core, clock: task.Clock, **settings: float
) -> tuple[MpnLinkProtocol, StringTransport]:
    factory = MpnLinkFactory(
        answer,
        clock,
        institution_code="12345",
        center_code="0009",
        business_date=lambda: TODAY,
        **settings,  # type: ignore[arg-type]
    )
    protocol = factory.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    protocol.makeConnection(transport)
    return protocol, transport


def opened(
    core: Core, clock: task.Clock, **settings: float
) -> tuple[MpnLinkProtocol, StringTransport]:
    protocol, transport = connect(core, clock, **settings)
    (open_request,) = parse(transport.value())
    protocol.dataReceived(frame(build_message(response_for(open_request, "0000"))))
    transport.clear()
    assert protocol.open
    return protocol, transport


@pytest.fixture
def clock() -> task.Clock:
    return task.Clock()


def test_open_is_sent_on_connect_and_1010_opens(clock: task.Clock) -> None:
    protocol, transport = connect(Core(), clock)

    (sent,) = parse(transport.value())
    assert sent == Message(Header("1000", "0009", TODAY, "00000001"), Open("12345", TODAY))
    assert not protocol.open
    protocol.dataReceived(frame(build_message(response_for(sent, "0000"))))
    assert protocol.open
    assert sample("gateway_mpn_link_up") == 1
    protocol.connectionLost(Failure(ConnectionDone()))
    assert sample("gateway_mpn_link_up") == 0


def test_the_link_state_says_open_from_the_1010_and_down_from_the_loss(clock: task.Clock) -> None:
    clock.advance(500)
    protocol, transport = connect(Core(), clock)
    state = protocol.factory.state
    assert state.document() == {"link": "down", "since": "1970-01-01T00:08:20+00:00"}
    clock.advance(2)
    (sent,) = parse(transport.value())
    protocol.dataReceived(frame(build_message(response_for(sent, "0000"))))
    assert state.document() == {"link": "open", "since": "1970-01-01T00:08:22+00:00"}
    clock.advance(100)
    protocol.connectionLost(Failure(ConnectionDone()))
    assert state.document() == {"link": "down", "since": "1970-01-01T00:10:02+00:00"}


def test_requests_before_1010_are_answered_9001(clock: task.Clock) -> None:
    core = Core()
    protocol, transport = connect(core, clock)
    transport.clear()

    protocol.dataReceived(frame(build_message(center("1100", 1, Inquiry(KEY)))))

    assert core.calls == []
    assert parse(transport.value()) == [center("1110", 1, InquiryAnswer(KEY), "9001")]


def test_open_timeout_and_refusal_close(clock: task.Clock) -> None:
    protocol, transport = connect(Core(), clock)
    before = sample("gateway_mpn_disconnects_total", reason="open_timeout")
    clock.advance(9.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnecting
    assert sample("gateway_mpn_disconnects_total", reason="open_timeout") == before + 1
    protocol.connectionLost(Failure(ConnectionDone()))

    protocol, transport = connect(Core(), clock)
    (sent,) = parse(transport.value())
    protocol.dataReceived(frame(build_message(response_for(sent, "9001"))))
    assert transport.disconnecting and not protocol.open


def test_each_request_type_is_answered_through_the_core_out_of_order(clock: task.Clock) -> None:
    core = Core()
    protocol, transport = opened(core, clock)
    cancel = Cancel("0002", TODAY, "00000002", KEY, 5500)
    requests = [
        center("1100", 1, Inquiry(KEY)),
        center("1200", 2, PAYMENT),
        center("1300", 3, cancel),
        center("1400", 2, ResendCheck(PAYMENT)),
    ]
    protocol.dataReceived(b"".join(frame(build_message(r)) for r in requests))
    assert [m for m, _, _ in core.calls] == requests
    assert {s for _, s, _ in core.calls} == {"mpn:192.0.2.9:50001"}
    assert transport.value() == b""

    answers = [
        response_for(requests[0], "0000", InquiryAnswer(KEY, 5500, TODAY, "ﾃｽﾄ")),
        response_for(requests[1], "0000"),
        response_for(requests[2], "1006"),
        response_for(requests[3], "0000"),
    ]
    for i in (3, 1, 0, 2):
        core.calls[i][2].callback(answers[i])

    assert parse(transport.value()) == [answers[i] for i in (3, 1, 0, 2)]


def test_a_failed_or_wrong_answer_is_9001(clock: task.Clock) -> None:
    core = Core()
    protocol, transport = opened(core, clock)
    before = sample("gateway_mpn_answers_total", code="9001")
    protocol.dataReceived(
        frame(build_message(center("1200", 1, PAYMENT)))
        + frame(build_message(center("1200", 2, PAYMENT)))
    )
    core.calls[0][2].errback(RuntimeError("database is down"))
    core.calls[1][2].callback(center("1210", 99, Ack(KEY)))  # not the request's triple

    assert parse(transport.value()) == [
        center("1210", 1, Ack(KEY), "9001"),
        center("1210", 2, Ack(KEY), "9001"),
    ]
    assert sample("gateway_mpn_answers_total", code="9001") == before + 2

    def broken(request: Message, source: str) -> Deferred[Message]:
        return fail(RuntimeError("bug"))

    protocol, transport = opened(broken, clock)  # type: ignore[arg-type]
    protocol.dataReceived(frame(build_message(center("1100", 5, Inquiry(KEY)))))
    assert parse(transport.value()) == [center("1110", 5, InquiryAnswer(KEY), "9001")]


def test_a_late_answer_is_counted_and_still_sent(clock: task.Clock) -> None:
    core = Core()
    protocol, transport = opened(core, clock)
    before = sample("gateway_mpn_late_answers_total")
    request = center("1200", 1, PAYMENT)
    protocol.dataReceived(frame(build_message(request)))

    clock.advance(4.9)
    assert sample("gateway_mpn_late_answers_total") == before
    clock.advance(0.1)
    assert sample("gateway_mpn_late_answers_total") == before + 1
    core.calls[0][2].callback(response_for(request, "0000"))

    assert parse(transport.value()) == [response_for(request, "0000")]


def test_a_bad_message_with_a_readable_header_is_answered_2001(clock: task.Clock) -> None:
    core = Core()
    protocol, transport = opened(core, clock)
    good = build_message(center("1200", 7, PAYMENT))
    bad_amount = good[:71] + b"00000X5500" + good[81:]
    short_inquiry = build_message(center("1100", 8, Inquiry(KEY)))[:-2]

    protocol.dataReceived(frame(bad_amount) + frame(short_inquiry))

    assert core.calls == []
    assert parse(transport.value()) == [
        center("1210", 7, Ack(KEY), "2001"),
        Message(
            Header("1110", "0002", TODAY, "00000008", "2001"),
            InquiryAnswer(KEY),  # the key as far as it goes, padded
        ),
    ]
    assert not transport.disconnecting


def test_an_unreadable_header_closes(clock: task.Clock) -> None:
    protocol, transport = opened(Core(), clock)
    protocol.dataReceived(frame(b"12XX0002202611230000000100000" + b" " * 11))
    assert transport.disconnecting
    assert transport.value() == b""


def test_a_frame_over_4096_bytes_closes(clock: task.Clock) -> None:
    protocol, transport = opened(Core(), clock)
    before = sample("gateway_mpn_disconnects_total", reason="frame_too_long")
    protocol.dataReceived(struct.pack("!I", 4097) + b"1" * 4097)
    assert transport.disconnecting
    assert sample("gateway_mpn_disconnects_total", reason="frame_too_long") == before + 1


def test_echo_both_ways_and_echo_timeout(clock: task.Clock) -> None:
    protocol, transport = opened(Core(), clock)
    protocol.dataReceived(frame(build_message(center("1800", 3, Echo()))))
    assert parse(transport.value()) == [center("1810", 3, Echo())]
    transport.clear()

    clock.advance(30)  # silence: the gateway asks
    (echo,) = parse(transport.value())
    assert echo.header.type == "1800" and echo.header.center_code == "0009"
    protocol.dataReceived(frame(build_message(response_for(echo, "0000"))))
    assert not transport.disconnecting
    transport.clear()

    before = sample("gateway_mpn_disconnects_total", reason="echo_timeout")
    clock.advance(30)
    assert [m.header.type for m in parse(transport.value())] == ["1800"]
    clock.advance(10)
    assert transport.disconnecting
    assert sample("gateway_mpn_disconnects_total", reason="echo_timeout") == before + 1


def test_close_day_round_trip_and_deadline(clock: task.Clock) -> None:
    protocol, transport = opened(Core(), clock)
    ours = Close(TODAY, 3, 16500, 1, 5500)
    theirs = Close(TODAY, 3, 16500, 0, 0)
    results: list[object] = []
    protocol.close_day(TODAY, ours).addBoth(results.append)

    (sent,) = parse(transport.value())
    assert sent.header.type == "1900" and sent.body == ours
    protocol.dataReceived(frame(build_message(response_for(sent, "0000", theirs))))
    assert results == [theirs]

    protocol.close_day(TODAY, ours).addBoth(results.append)
    clock.advance(10)
    assert isinstance(results[1], Failure) and results[1].check(PeerUnavailable)

    transport.clear()
    protocol.close_day(TODAY, ours).addBoth(results.append)
    (sent,) = parse(transport.value())
    protocol.dataReceived(frame(build_message(response_for(sent, "9001", theirs))))
    assert isinstance(results[2], Failure) and results[2].check(MpnResponseError)


def test_close_day_fails_when_closed_or_lost(clock: task.Clock) -> None:
    protocol, _ = connect(Core(), clock)
    results: list[object] = []
    protocol.close_day(TODAY, Close(TODAY, 0, 0, 0, 0)).addBoth(results.append)
    protocol.connectionLost(Failure(ConnectionDone()))
    protocol, _ = opened(Core(), clock)
    protocol.close_day(TODAY, Close(TODAY, 0, 0, 0, 0)).addBoth(results.append)
    protocol.connectionLost(Failure(ConnectionDone()))

    assert [isinstance(r, Failure) and r.check(PeerUnavailable) for r in results] == [
        PeerUnavailable,
        PeerUnavailable,
    ]
    assert clock.getDelayedCalls() == []


def test_an_unmatched_response_is_counted(clock: task.Clock) -> None:
    protocol, transport = opened(Core(), clock)
    before = sample("gateway_mpn_unmatched_responses_total")
    protocol.dataReceived(frame(build_message(center("1910", 42, Close(TODAY, 0, 0, 0, 0)))))
    assert sample("gateway_mpn_unmatched_responses_total") == before + 1
    assert not transport.disconnecting and transport.value() == b""


def test_serials_count_per_business_date_across_connections(clock: task.Clock) -> None:
    days = iter([TODAY, TODAY, date(2026, 11, 24)])
    factory = MpnLinkFactory(
        Core(),
        clock,
        institution_code="12345",
        center_code="0009",
        business_date=lambda: next(days),
    )
    serials = []
    for _ in range(3):
        transport = StringTransport()
        factory.buildProtocol(PEER).makeConnection(transport)
        serials.append(parse(transport.value())[0].header.serial)
    assert serials == ["00000001", "00000002", "00000001"]
