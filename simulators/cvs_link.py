"""The CVS agency's side of the real-time 速報 link (spec/cvs.md §4), for the simulator and tests.

:class:`AgencyLinkClient` keeps the state that outlives a connection: the next sequence number and
an ordered dict of every record not yet acknowledged. :meth:`AgencyLinkClient.send` gives a record
the next 10-digit sequence, sends ``DT`` if connected, and returns a Deferred that fires with the
final ``AK`` result: ``00`` (stored) or ``10`` (rejected for good), both of which drop the record.
``90`` (try again later) keeps it and sends it again ``retry_delay`` seconds later. After every
(re)connection, every unacknowledged record is sent again, in order, with its own sequence.

:class:`AgencyLinkProtocol` frames like the gateway (2-byte big-endian length, 1,024-byte limit),
sends ``HB`` every ``heartbeat_interval`` seconds, answers ``HB`` with ``HA`` and closes after
``idle_timeout`` seconds without a frame from the gateway (the ``ClientService`` then reconnects).

:func:`start_agency_link` dials the gateway with mutual TLS through a ``ClientService`` (default
back-off) and returns an :class:`AgencyLink`.

This is the agency's implementation, written from the spec and not from the gateway's module, so
that the tests exercising both catch a misreading of the spec on either side.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from twisted.application.internet import ClientService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.basic import IntNStringReceiver
from twisted.python.failure import Failure

from gateway.infra.tls import TLSFiles, client_options, connect_tls_endpoint

__all__ = ["AgencyLink", "AgencyLinkClient", "AgencyLinkProtocol", "start_agency_link"]

MAX_PAYLOAD: Final = 1024
_MAX_SEQUENCE: Final = 9_999_999_999
_MAX_RECORD: Final = MAX_PAYLOAD - 12
FINAL_RESULTS: Final = ("00", "10")
RETRY_RESULT: Final = "90"

log = Logger()


def _digits(raw: bytes) -> str | None:
    return raw.decode("ascii") if len(raw) == 10 and raw.isdigit() else None


class AgencyLinkProtocol(IntNStringReceiver):
    """One connection to the gateway; the state that outlives it is in the client."""

    structFormat = "!H"
    prefixLength = 2
    MAX_LENGTH = MAX_PAYLOAD

    def __init__(self, client: AgencyLinkClient) -> None:
        self.client = client
        self._heartbeats: LoopingCall | None = None
        self._idle_call: IDelayedCall | None = None
        self._heartbeat_sequence = 1

    def connectionMade(self) -> None:
        client = self.client
        if client.heartbeat_interval > 0:
            self._heartbeats = LoopingCall(self._heartbeat)
            self._heartbeats.clock = client.clock
            self._heartbeats.start(client.heartbeat_interval, now=False)
        if client.idle_timeout > 0:
            self._idle_call = client.clock.callLater(client.idle_timeout, self._idle)
        client._attach(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._heartbeats is not None and self._heartbeats.running:
            self._heartbeats.stop()
        self._heartbeats = None
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None
        self.client._detach(self, reason)

    def send_data(self, sequence: str, record: bytes) -> None:
        self.sendString(b"DT" + sequence.encode("ascii") + record)
        self.client.dt_frames_sent += 1

    def _heartbeat(self) -> None:
        sequence = f"{self._heartbeat_sequence:010d}"
        self._heartbeat_sequence = self._heartbeat_sequence % _MAX_SEQUENCE + 1
        self.sendString(b"HB" + sequence.encode("ascii"))

    def _idle(self) -> None:
        self._idle_call = None
        log.warn(
            "agency link: nothing from the gateway for {s} s, closing", s=self.client.idle_timeout
        )
        if self.transport is not None:
            self.transport.loseConnection()

    def lengthLimitExceeded(self, length: int) -> None:
        log.warn("agency link: frame of {length} bytes from the gateway, closing", length=length)
        if self.transport is not None:
            self.transport.loseConnection()

    def stringReceived(self, payload: bytes) -> None:
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.reset(self.client.idle_timeout)
        kind, sequence = payload[:2], _digits(payload[2:12])
        if kind == b"AK" and sequence is not None and len(payload) == 14:
            self.client._acked(sequence, payload[12:14].decode("ascii", "replace"))
        elif kind == b"HB" and sequence is not None and len(payload) == 12:
            self.sendString(b"HA" + payload[2:12])
        elif kind == b"HA" and sequence is not None and len(payload) == 12:
            pass
        else:
            log.warn("agency link: ignored frame {start!r}", start=payload[:40])


@dataclass
class _Unacked:
    record: bytes
    deferred: Deferred[str] = field(default_factory=Deferred)
    retry: IDelayedCall | None = None

    def cancel_retry(self) -> None:
        if self.retry is not None and self.retry.active():
            self.retry.cancel()
        self.retry = None


class AgencyLinkClient(Factory):
    """The agency's sending state, kept across connections; the factory of its protocols.

    ``acked`` lists the records by the result they got: ``"00"`` and ``"10"`` are final (a record
    appears once); ``"90"`` gets an entry for every try-again answer.
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        heartbeat_interval: float = 20.0,
        retry_delay: float = 5.0,
        idle_timeout: float = 60.0,
        first_sequence: int = 1,
    ) -> None:
        if not 1 <= first_sequence <= _MAX_SEQUENCE:
            raise ValueError(f"first_sequence must be 1..{_MAX_SEQUENCE}, not {first_sequence}")
        self.clock = clock
        self.heartbeat_interval = heartbeat_interval
        self.retry_delay = retry_delay
        self.idle_timeout = idle_timeout
        self.acked: dict[str, list[bytes]] = {"00": [], "10": [], "90": []}
        self.dt_frames_sent = 0
        self.connections = 0
        self.disconnects: list[Failure] = []
        self._next_sequence = first_sequence
        self._unacked: OrderedDict[str, _Unacked] = OrderedDict()
        self._protocol: AgencyLinkProtocol | None = None

    @property
    def unacked(self) -> int:
        """How many records wait for a final ack."""
        return len(self._unacked)

    @property
    def unacked_sequences(self) -> list[str]:
        return list(self._unacked)

    @property
    def connected(self) -> bool:
        return self._protocol is not None

    def send(self, record: bytes) -> Deferred[str]:
        """Queue ``record`` with the next sequence; fires with ``"00"`` or ``"10"``."""
        if len(record) > _MAX_RECORD:
            raise ValueError(f"a record of {len(record)} bytes does not fit in a frame")
        sequence = f"{self._next_sequence:010d}"
        self._next_sequence = self._next_sequence % _MAX_SEQUENCE + 1
        entry = _Unacked(record)
        self._unacked[sequence] = entry
        if self._protocol is not None:
            self._protocol.send_data(sequence, record)
        return entry.deferred

    def stop(self) -> None:
        """Cancel the pending resends; unacknowledged records stay (and their Deferreds unfired)."""
        for entry in self._unacked.values():
            entry.cancel_retry()

    def buildProtocol(self, addr: IAddress | None) -> AgencyLinkProtocol:
        protocol = AgencyLinkProtocol(self)
        protocol.factory = self
        return protocol

    def _attach(self, protocol: AgencyLinkProtocol) -> None:
        self._protocol = protocol
        self.connections += 1
        if self._unacked:
            log.info("agency link: resending {n} unacknowledged records", n=len(self._unacked))
        for sequence, entry in self._unacked.items():
            entry.cancel_retry()
            protocol.send_data(sequence, entry.record)

    def _detach(self, protocol: AgencyLinkProtocol, reason: Failure) -> None:
        if self._protocol is protocol:
            self._protocol = None
            self.disconnects.append(reason)
            for entry in self._unacked.values():
                entry.cancel_retry()  # everything is resent on the next connection

    def _acked(self, sequence: str, result: str) -> None:
        entry = self._unacked.get(sequence)
        if entry is None:
            log.warn(
                "agency link: AK {result} for unknown sequence {sequence}",
                result=result,
                sequence=sequence,
            )
            return
        if result in FINAL_RESULTS:
            del self._unacked[sequence]
            entry.cancel_retry()
            self.acked[result].append(entry.record)
            entry.deferred.callback(result)
        elif result == RETRY_RESULT:
            self.acked[result].append(entry.record)
            entry.cancel_retry()
            entry.retry = self.clock.callLater(self.retry_delay, self._retry, sequence)
        else:
            log.warn(
                "agency link: AK {sequence} with unknown result {result!r}",
                sequence=sequence,
                result=result,
            )

    def _retry(self, sequence: str) -> None:
        entry = self._unacked.get(sequence)
        if entry is None:
            return
        entry.retry = None
        if self._protocol is not None:
            self._protocol.send_data(sequence, entry.record)


class AgencyLink:
    """An :class:`AgencyLinkClient` kept connected by a ``ClientService``; started on creation."""

    def __init__(
        self, endpoint: IStreamClientEndpoint, client: AgencyLinkClient, clock: IReactorTime
    ) -> None:
        self.client = client
        self.service = ClientService(endpoint, client, clock=clock)
        self.service.startService()

    def send(self, record: bytes) -> Deferred[str]:
        return self.client.send(record)

    @property
    def unacked(self) -> int:
        return self.client.unacked

    @property
    def acked(self) -> dict[str, list[bytes]]:
        return self.client.acked

    def stop(self) -> Deferred[None]:
        """Stop reconnecting and close the connection; fires once it is closed."""
        self.client.stop()
        d: Deferred[None] = self.service.stopService()
        return d


def start_agency_link(
    reactor: Any,
    description: str,
    tls: TLSFiles,
    hostname: str,
    clock: IReactorTime | None = None,
    *,
    heartbeat_interval: float = 20.0,
    retry_delay: float = 5.0,
    idle_timeout: float = 60.0,
    first_sequence: int = 1,
) -> AgencyLink:
    """Dial ``description`` (``tcp:HOST:PORT``) with mutual TLS, checking the gateway's
    certificate against ``tls.ca`` and ``hostname``; reconnect with the default back-off."""
    endpoint = connect_tls_endpoint(reactor, description, client_options(tls, hostname))
    time = reactor if clock is None else clock
    client = AgencyLinkClient(
        time,
        heartbeat_interval=heartbeat_interval,
        retry_delay=retry_delay,
        idle_timeout=idle_timeout,
        first_sequence=first_sequence,
    )
    return AgencyLink(endpoint, client, time)
