"""Helpers the tests share: two protocols connected in memory, the one use of twisted.test.iosim;
a store payment's CVS message for a slip's barcode."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Literal

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.test import iosim

from gateway.mappers.cvs import barcode as barcodes
from gateway.mappers.cvs.records import make_event_key
from gateway.model import JST, Channel, CollectionEvent, MessageKind


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


def cvs_event(
    barcode: str,
    kind: MessageKind,
    paid_at: datetime,
    *,
    received_at: datetime | None = None,
    transfer_date: date | None = None,
    chain: str = "000020",
    store: str = "0110002",
) -> CollectionEvent:
    """A store payment of the slip with these 44 digits, as the CVS mapper names it: the event
    key of gateway.mappers.cvs.records.make_event_key (the barcode, the JST minute of
    ``paid_at``, the chain and store codes), the barcode's bill key, reissue digit and amount.
    ``paid_at`` is kept to the second; ``received_at`` is ``paid_at`` unless given."""
    code = barcodes.parse(barcode, ceiling=barcodes.MAX_AMOUNT)
    local = paid_at.astimezone(JST)
    key = make_event_key(barcode, local.date(), f"{local:%H%M}", chain, store)
    return CollectionEvent(
        channel=Channel.CVS,
        kind=kind,
        event_key=key,
        amount=code.amount,
        paid_at=paid_at,
        received_at=paid_at if received_at is None else received_at,
        source="test",
        raw=key.encode(),
        bill_key=code.bill_key,
        slip_reissue=code.reissue,
        transfer_date=transfer_date,
        store=f"{chain}-{store}",
    )
