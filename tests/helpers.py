"""Helpers the tests share: two protocols connected in memory, the one use of twisted.test.iosim."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.test import iosim


def connected_in_memory(
    server: Callable[[], Any],
    client: Callable[[], Any],
    clock: task.Clock,
    *,
    peer: IPv4Address,
    gateway_end: Literal["server", "client"],
    transport: type[iosim.FakeTransport] = iosim.FakeTransport,
    greet: bool = True,
) -> tuple[Any, Any, iosim.IOPump]:
    """``(client, server, pump)`` on the test's clock. The gateway's end (``gateway_end``) sees
    ``peer`` as its peer's address, through ``transport`` (one that shows a certificate, say)."""

    def gateway_transport(protocol: Any) -> iosim.FakeTransport:
        return transport(protocol, True, peerAddress=peer)

    side = "serverTransportFactory" if gateway_end == "server" else "clientTransportFactory"
    return iosim.connectedServerAndClient(
        server, client, clock=clock, greet=greet, **{side: gateway_transport}
    )
