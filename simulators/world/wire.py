"""An in-memory TCP connection on the shared clock, with the network's faults.

Bytes written at one end reach the other after a seed-drawn latency, in order (a stream keeps
its order), cut into seed-drawn pieces (a frame arrives in several reads, or two frames in
one). The faults of a connection: it is cut in the middle of a frame, aborted at any moment,
or the far end's process dies (its peer sees the connection reset a moment later). TLS itself
is not simulated: the gateway's end shows the agency's certificate (``getPeerCertificate``) and
its ``handshakeCompleted`` is called a moment after the connection, as TLS would.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import crypto
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IProtocol
from twisted.python.failure import Failure

from simulators.world.runtime import Process, Sim


@functools.cache
def certificate(name: str) -> crypto.X509:
    """A certificate naming ``name`` (CN and DNS), as a verified peer's looks after TLS."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime(2020, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sim CA")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=36500))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return crypto.X509.from_cryptography(cert)


class End:
    """One end of a :class:`Wire`: the transport its protocol writes to."""

    disconnecting = False

    def __init__(
        self, wire: Wire, name: str, host: IPv4Address, peer: IPv4Address, cert: Any
    ) -> None:
        self.wire = wire
        self.name = name
        self.host = host
        self.peer = peer
        self.cert = cert
        self.protocol: Any = None
        self.other: End | None = None
        self.paused = False
        self.held: list[bytes] = []
        self.lost = False
        self.last_arrival = 0.0  # when the last piece written here reaches the other end

    # ITransport
    def write(self, data: bytes) -> None:
        if data and not self.disconnecting and not self.wire.closed:
            self.wire.send(self, data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        if not self.disconnecting:
            self.disconnecting = True
            self.wire.close_after_flush(self)

    def abortConnection(self) -> None:
        self.disconnecting = True
        self.wire.cut(f"{self.name} aborted")

    def getPeer(self) -> IPv4Address:
        return self.peer

    def getHost(self) -> IPv4Address:
        return self.host

    def getPeerCertificate(self) -> Any:
        return self.cert

    # IProducer / IPushProducer: reading stops while paused
    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self.held:
            self.wire.sim.call_later(0, self.wire.release, self)

    def stopProducing(self) -> None:
        self.abortConnection()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass


class Wire:
    """A connection from a client protocol to a server protocol (the gateway's, of
    ``server_process``), with a seed's latency, splitting and mid-frame cuts."""

    def __init__(
        self,
        sim: Sim,
        rng: random.Random,
        client: IProtocol,
        server: IProtocol,
        *,
        server_process: Process,
        client_cert: Any,
        latency: tuple[float, float] = (0.001, 0.05),
        split: float = 0.2,
        cut_mid_frame: float = 0.0,
        on_closed: Callable[[Wire, str], None] | None = None,
        on_fault: Callable[[str], None] | None = None,
        label: str = "link",
    ) -> None:
        self.sim = sim
        self.rng = rng
        self.server_process = server_process
        self.latency = latency
        self.split = split
        self.cut_mid_frame = cut_mid_frame
        self.on_closed = on_closed
        self.on_fault = on_fault or (lambda kind: None)
        self.label = label
        self.closed = False
        agency = IPv4Address("TCP", "192.0.2.7", 40000 + rng.randrange(20000))
        gateway = IPv4Address("TCP", "198.51.100.1", 7001)
        self.client_end = End(self, "agency", agency, gateway, None)
        self.server_end = End(self, "gateway", gateway, agency, client_cert)
        self.client_end.other, self.server_end.other = self.server_end, self.client_end
        self.client_end.protocol, self.server_end.protocol = client, server

    def open(self, handshake: Callable[[], None]) -> None:
        """The server's end connects now; the TLS handshake completes a moment later, and only
        then does the client's protocol see its connection (TLS holds its writes till then)."""
        self.server_end.protocol.makeConnection(self.server_end)
        self.sim.call_later(self.rng.uniform(0.001, 0.02), self._handshake, handshake)

    def _handshake(self, handshake: Callable[[], None]) -> None:
        if self.closed or not self.server_process.alive:
            return
        handshake()
        if not self.closed:
            self.client_end.protocol.makeConnection(self.client_end)

    def _alive(self, end: End) -> bool:
        return end is self.client_end or self.server_process.alive

    def send(self, end: End, data: bytes) -> None:
        other = end.other
        assert other is not None
        pieces = [data]
        if len(data) > 1 and self.rng.random() < self.split:
            at = self.rng.randrange(1, len(data))
            pieces = [data[:at], data[at:]]
        cut = end is self.client_end and self.rng.random() < self.cut_mid_frame and len(data) > 2
        if cut:
            pieces = [data[: self.rng.randrange(1, len(data))]]
            self.on_fault("net.cut_mid_frame")
        for piece in pieces:
            arrival = max(end.last_arrival, self.sim.seconds() + self.rng.uniform(*self.latency))
            end.last_arrival = arrival
            self.sim.call_later(arrival - self.sim.seconds(), self._arrive, other, piece)
        if cut:
            self.sim.call_later(end.last_arrival - self.sim.seconds(), self.cut, "cut mid-frame")

    def _arrive(self, end: End, piece: bytes) -> None:
        if self.closed or end.lost or not self._alive(end):
            return
        if end.paused or end.held:
            end.held.append(piece)
            return
        end.protocol.dataReceived(piece)

    def release(self, end: End) -> None:
        while end.held and not end.paused and not self.closed and self._alive(end):
            end.protocol.dataReceived(end.held.pop(0))

    def close_after_flush(self, end: End) -> None:
        """A clean close: what was written still arrives, then both ends see the connection
        done."""
        when = max(self.sim.seconds(), end.last_arrival, (end.other or end).last_arrival)
        self.sim.call_later(when - self.sim.seconds() + 0.0001, self._close, f"{end.name} closed")

    def _close(self, why: str) -> None:
        self._lose(why, ConnectionDone(why))

    def cut(self, why: str) -> None:
        """The connection breaks now: nothing in flight arrives."""
        self._lose(why, ConnectionLost(why))

    def _lose(self, why: str, error: Exception) -> None:
        if self.closed:
            return
        self.closed = True
        for end in (self.server_end, self.client_end):
            if not end.lost:
                end.lost = True
                if self._alive(end):
                    end.protocol.connectionLost(Failure(error))
        if self.on_closed is not None:
            self.on_closed(self, why)

    def server_died(self) -> None:
        """The gateway's process is gone: the client sees a reset a moment later."""
        self.server_end.lost = True
        self.sim.call_later(self.rng.uniform(0.01, 0.5), self.cut, "gateway process died")
