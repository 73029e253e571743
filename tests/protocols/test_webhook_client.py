"""Where a webhook attempt connects: the client on a MemoryReactor (nothing leaves the process),
with a name resolver the test controls. A refused address is refused before any connection is
tried; a permitted one is connected to exactly as it was resolved (no second lookup)."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_network
from typing import Any

import pytest
from twisted.internet import error as net_error
from twisted.internet._resolver import HostResolution
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IHostnameResolver, IResolutionReceiver
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.client import ResponseNeverReceived
from zope.interface import implementer

from gateway.protocols.webhook_client import (
    CANNOT_CONNECT,
    CONNECTION_REFUSED,
    DNS_FAILED,
    FAILED,
    REFUSED_ADDRESS,
    PostResult,
    WebhookClient,
    describe,
    shown_error,
)
from gateway.webhooks.address import AddressPolicy

HEADERS = {"Content-Type": "application/json", "Gateway-Event-Id": "evt_1"}


@implementer(IHostnameResolver)
class FakeResolver:
    """Names to successive answers (the last one repeats): a DNS server the test controls, as
    a rebinding attacker's would be. Other names: ``fallback`` (a real resolver), or none."""

    def __init__(
        self, answers: dict[str, list[list[str]]], fallback: IHostnameResolver | None = None
    ) -> None:
        self.answers = answers
        self.fallback = fallback
        self.asked: list[str] = []

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Iterable[Any] | None = None,
        transportSemantics: str = "TCP",
    ) -> IResolutionReceiver:
        if hostName not in self.answers and self.fallback is not None:
            return self.fallback.resolveHostName(
                resolutionReceiver, hostName, portNumber, addressTypes, transportSemantics
            )
        self.asked.append(hostName)
        seen = self.asked.count(hostName)
        answers = self.answers.get(hostName, [[]])
        resolutionReceiver.resolutionBegan(HostResolution(hostName))
        for host in answers[min(seen, len(answers)) - 1]:
            kind = IPv6Address if ":" in host else IPv4Address
            resolutionReceiver.addressResolved(kind("TCP", host, portNumber))
        resolutionReceiver.resolutionComplete()
        return resolutionReceiver


def make(resolver: FakeResolver, *allowed: str) -> tuple[MemoryReactorClock, WebhookClient]:
    reactor = MemoryReactorClock()
    policy = AddressPolicy(tuple(ip_network(n) for n in allowed))
    return reactor, WebhookClient(reactor, 5.0, 2, policy=policy, resolver=resolver)


def result_of(d: Any) -> PostResult | None:
    got: list[PostResult] = []
    d.addCallback(got.append)
    return got[0] if got else None


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/",
        "https://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:9464/metrics",
        "https://[fd00::1]/",
        "https://[::1]/",
        "https://[::ffff:10.0.0.1]/",  # IPv4-mapped
        "https://[64:ff9b::a9fe:a9fe]/",  # NAT64 form of 169.254.169.254
        "https://100.64.0.1/",
        "https://[fe80::1]/",
        "https://224.0.0.1/",
        "https://0.0.0.0/",
        "https://2130706433/",  # 127.0.0.1 as the C resolver reads it
        "https://internal.test/",  # a name resolving to 10.0.0.1
        "https://metadata.test/",  # ...and one to 169.254.169.254 and fd00::1
    ],
)
def test_a_non_public_address_is_refused_before_any_connection(url: str) -> None:
    resolver = FakeResolver(
        {
            "internal.test": [["10.0.0.1"]],
            "metadata.test": [["169.254.169.254", "fd00::1"]],
        }
    )
    reactor, client = make(resolver)
    result = result_of(client.post(url, b"{}", HEADERS))
    assert result == PostResult(None, REFUSED_ADDRESS)
    assert reactor.tcpClients == []  # not even a connection attempt


def test_a_name_is_connected_to_at_the_address_that_was_checked() -> None:
    """DNS rebinding: the first lookup answers a permitted address, the next ones 127.0.0.1.
    Each attempt resolves once and connects to what that lookup answered; the attempt whose
    lookup answered 127.0.0.1 connects nowhere."""
    resolver = FakeResolver({"rebind.test": [["192.0.2.10"], ["127.0.0.1"]]})
    reactor, client = make(resolver, "192.0.2.0/24")

    first = client.post("https://rebind.test/hook", b"{}", HEADERS)
    assert [(h, p) for h, p, *_ in reactor.tcpClients] == [("192.0.2.10", 443)]
    assert resolver.asked == ["rebind.test"]  # checked and connected on one lookup
    _, _, factory, _, _ = reactor.tcpClients[0]
    factory.clientConnectionFailed(
        reactor.connectors[0], Failure(net_error.ConnectionRefusedError())
    )
    assert result_of(first) == PostResult(None, CONNECTION_REFUSED)

    second = client.post("https://rebind.test/hook", b"{}", HEADERS)
    assert result_of(second) == PostResult(None, REFUSED_ADDRESS)
    assert resolver.asked == ["rebind.test", "rebind.test"]
    assert len(reactor.tcpClients) == 1  # no connection for the second attempt


def test_only_the_permitted_addresses_of_a_name_are_tried_in_turn() -> None:
    resolver = FakeResolver({"mixed.test": [["10.0.0.1", "192.0.2.10", "::1", "2001:db8::7"]]})
    reactor, client = make(resolver, "192.0.2.0/24", "2001:db8::/32")
    d = client.post("https://mixed.test/", b"{}", HEADERS)
    assert [h for h, *_ in reactor.tcpClients] == ["192.0.2.10"]
    reactor.tcpClients[0][2].clientConnectionFailed(
        reactor.connectors[0], Failure(net_error.ConnectionRefusedError())
    )
    assert [h for h, *_ in reactor.tcpClients] == ["192.0.2.10", "2001:db8::7"]
    reactor.tcpClients[1][2].clientConnectionFailed(
        reactor.connectors[1], Failure(net_error.ConnectionRefusedError())
    )
    assert result_of(d) == PostResult(None, CONNECTION_REFUSED)


def test_a_name_that_does_not_resolve_says_so() -> None:
    reactor, client = make(FakeResolver({}))
    assert result_of(client.post("https://nowhere.test/", b"{}", HEADERS)) == PostResult(
        None, DNS_FAILED
    )
    assert reactor.tcpClients == []


def test_an_ipv6_literal_is_connected_to_and_named_in_the_host_header() -> None:
    """Today's treq refused ``[2001:db8::1]`` (InvalidCodepoint) before connecting."""
    resolver = FakeResolver({})
    reactor, client = make(resolver, "2001:db8::/32")

    tls = client.post("https://[2001:db8::1]/hook", b"{}", HEADERS)
    assert [(h, p) for h, p, *_ in reactor.tcpClients] == [("2001:db8::1", 443)]
    assert resolver.asked == []  # a literal is not looked up
    tls.cancel()

    d = client.post("http://[2001:db8::1]:8080/hook?x=1", b'{"a":1}', HEADERS)
    host, port, factory, _, _ = reactor.tcpClients[1]
    assert (host, port) == ("2001:db8::1", 8080)
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    sent = transport.value()
    assert sent.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
    assert b"\r\nHost: [2001:db8::1]:8080\r\n" in sent
    assert sent.endswith(b'\r\n\r\n{"a":1}')
    protocol.dataReceived(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    assert result_of(d) == PostResult(204, None)


def test_an_ipv4_mapped_address_in_an_allowed_network_is_reached_as_ipv4() -> None:
    reactor, client = make(FakeResolver({}), "127.0.0.0/8")
    client.post("http://[::ffff:127.0.0.1]:9000/", b"{}", HEADERS)
    assert [(h, p) for h, p, *_ in reactor.tcpClients] == [("127.0.0.1", 9000)]


def test_failure_texts_are_from_a_fixed_set_and_name_no_internals() -> None:
    texts = {
        describe(e, 10)
        for e in (
            net_error.NoRouteError("10.1.2.3: no route"),
            net_error.TCPTimedOutError(),
            net_error.ConnectError("secret detail"),
            ResponseNeverReceived([Failure(ValueError("x"))]),
            KeyError("internal"),
        )
    }
    assert texts == {CANNOT_CONNECT, "connection closed before a complete response", FAILED}
    # what older versions stored is shown without its exception name
    assert shown_error("cannot connect: NoRouteError") == CANNOT_CONNECT
    assert shown_error("error: KeyError") == FAILED
    assert shown_error("timeout: no complete response within 10s") == (
        "timeout: no complete response within 10s"
    )
    assert shown_error(REFUSED_ADDRESS) == REFUSED_ADDRESS
    assert shown_error(None) is None
