"""The real-time 速報 link with the CVS agency (spec/cvs.md §4), the gateway's side.

The agency connects over mutual TLS. Each frame is a 2-byte big-endian length and a payload of at
most 1,024 bytes (a longer one closes the connection):

- ``DT`` + sequence (10 digits) + one 120-byte record, from the agency. The record goes to the
  ``submit`` function given to the factory (this module never sees the store or the mappers); the
  Deferred it returns fires with ``"00"``, ``"10"`` or ``"90"``, and ``AK`` + sequence + that result
  goes back as soon as it fires, so acks go out in the order the core commits, not in arrival order.
  A submit that fails (or answers anything else) is answered ``90``: the agency tries again later.
- ``HB`` + sequence is answered ``HA`` + the same sequence.

Choices the spec leaves open:

- A ``DT`` whose sequence is readable but whose length is wrong is answered ``10`` (it can never be
  accepted). A ``DT`` without a readable sequence cannot be answered at all: the connection is
  closed (reason ``bad_frame``), and the agency resends what it has not had acknowledged.
- A ``HB`` or ``HA`` that is not exactly type + 10 digits is counted as ``bad``, logged and ignored.
- Any other payload type (an ``AK`` from the agency included) is logged with at most its first 40
  bytes, counted as ``unknown`` and ignored; the connection stays up, so a newer agency that sends a
  new kind of frame is not cut off.
- Every complete frame, even one that is ignored, resets the idle timer; the bytes of an incomplete
  frame do not (a peer that trickles one byte at a time is still closed after ``idle_timeout``).
- The gateway sends its own ``HB`` after ``heartbeat_interval`` seconds (default
  ``idle_timeout / 3``) without sending anything, so that the agency's idle timer never fires on a
  quiet day; ``HA`` answers are counted, never required.
- A connection the gateway closes is closed cleanly, then aborted :data:`CLOSE_GRACE` seconds later
  if it is still there (a dead peer never drains the write buffer). Acks decided after the gateway
  started closing, or after the connection is gone, are not written: the agency resends those
  records and the store answers ``00`` again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from prometheus_client import Counter, Gauge
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IListeningPort, IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import IntNStringReceiver
from twisted.python.failure import Failure

from gateway.errors import FrameError
from gateway.tls import TLSFiles, listen_tls, peer_common_name, server_options

__all__ = [
    "CLOSE_GRACE",
    "MAX_PAYLOAD",
    "RECORD_LENGTH",
    "CvsLinkFactory",
    "CvsLinkProtocol",
    "Submit",
    "listen_cvs_link",
]

#: Hands one 120-byte record and its source (``link:<peer>``) to the core; fires with the result.
Submit = Callable[[bytes, str], Deferred[str]]

MAX_PAYLOAD: Final = 1024
RECORD_LENGTH: Final = 120
SEQUENCE_LENGTH: Final = 10
_DT_LENGTH: Final = 2 + SEQUENCE_LENGTH + RECORD_LENGTH
_HEADER_LENGTH: Final = 2 + SEQUENCE_LENGTH  # type + sequence; all of a HB or HA
_MAX_SEQUENCE: Final = 10**SEQUENCE_LENGTH - 1
_LOGGED_BYTES: Final = 40
#: Seconds between closing a connection cleanly and aborting it if it is still open.
CLOSE_GRACE: Final = 10.0

RESULTS: Final = ("00", "10", "90")
FRAME_TYPES: Final = ("dt", "hb", "ha", "ak_sent", "unknown", "bad")
DISCONNECT_REASONS: Final = ("idle", "frame_too_long", "peer_closed", "bad_frame")

FRAMES = Counter(
    "gateway_cvs_link_frames_total",
    "Frames on the CVS real-time link: dt, hb, ha, unknown and bad received; ak_sent sent.",
    ["type"],
)
ACKS = Counter(
    "gateway_cvs_link_acks_total", "AK frames sent to the CVS agency, by result.", ["result"]
)
CONNECTIONS = Gauge("gateway_cvs_link_connections", "Open connections from the CVS agency.")
DISCONNECTS = Counter(
    "gateway_cvs_link_disconnects_total",
    "CVS link connections closed, by reason (idle, frame_too_long, bad_frame; peer_closed).",
    ["reason"],
)
for _type in FRAME_TYPES:
    FRAMES.labels(_type)
for _result in RESULTS:
    ACKS.labels(_result)
for _reason in DISCONNECT_REASONS:
    DISCONNECTS.labels(_reason)

log = Logger()


def _sequence(payload: bytes) -> str:
    """The 10-digit sequence after the 2-byte type, or :class:`FrameError`."""
    raw = payload[2 : 2 + SEQUENCE_LENGTH]
    if len(raw) != SEQUENCE_LENGTH or not raw.isdigit():  # bytes.isdigit: ASCII digits only
        raise FrameError(
            f"{payload[:2]!r} frame of {len(payload)} bytes without a 10-digit sequence"
        )
    return raw.decode("ascii")


def _address(address: IAddress | None) -> str:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None or port is None:
        return str(address)
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class CvsLinkProtocol(IntNStringReceiver):
    """One connection from the agency; see the module docstring for the rules."""

    structFormat = "!H"
    prefixLength = 2
    MAX_LENGTH = MAX_PAYLOAD

    def __init__(
        self,
        submit: Submit,
        clock: IReactorTime,
        idle_timeout: float,
        heartbeat_interval: float | None = None,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, not {idle_timeout}")
        self._submit = submit
        self._clock = clock
        self.idle_timeout = idle_timeout
        self.heartbeat_interval = (
            idle_timeout / 3 if heartbeat_interval is None else heartbeat_interval
        )
        self.pending = 0  # submits whose Deferred has not fired yet
        self._connected = False
        self._closing = False
        self._common_name: str | None = None
        self._heartbeat_sequence = 1
        self._idle_call: IDelayedCall | None = None
        self._heartbeat_call: IDelayedCall | None = None
        self._abort_call: IDelayedCall | None = None

    # --- connection -----------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self._connected = True
        CONNECTIONS.inc()
        if isinstance(self.factory, CvsLinkFactory):
            self.factory._protocols.add(self)
        self._idle_call = self._clock.callLater(self.idle_timeout, self._idle)
        self._schedule_heartbeat()
        log.info("CVS link: connection from {address}", address=self._address())

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self._connected:
            return
        self._connected = False
        CONNECTIONS.dec()
        if not self._closing:
            DISCONNECTS.labels("peer_closed").inc()
        self._cancel_timers()
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        if isinstance(self.factory, CvsLinkFactory):
            self.factory._protocols.discard(self)
        log.info(
            "CVS link: {peer} disconnected ({why}); {pending} acks outstanding",
            peer=self._peer(),
            why=reason.getErrorMessage(),
            pending=self.pending,
        )

    @property
    def source(self) -> str:
        """``link:<CN of the peer's certificate>``, or ``link:<address>`` without one."""
        return f"link:{self._peer()}"

    def _peer(self) -> str:
        if self._common_name is None:
            self._common_name = peer_common_name(self.transport)
        return self._common_name or self._address()

    def _address(self) -> str:
        return _address(self.transport.getPeer() if self.transport is not None else None)

    def _close(self, reason: str, why: str) -> None:
        if self._closing or not self._connected:
            return
        self._closing = True
        DISCONNECTS.labels(reason).inc()
        log.warn(
            "CVS link: closing {peer} ({reason}): {why}", peer=self._peer(), reason=reason, why=why
        )
        self._cancel_timers()
        if self.transport is not None:
            self.transport.loseConnection()
        self._abort_call = self._clock.callLater(CLOSE_GRACE, self._abort)

    def _abort(self) -> None:
        self._abort_call = None
        abort = getattr(self.transport, "abortConnection", None)
        if self._connected and callable(abort):
            log.warn(
                "CVS link: {peer} still open {grace} s after close, aborting",
                peer=self._peer(),
                grace=CLOSE_GRACE,
            )
            abort()

    def _cancel_timers(self) -> None:
        for call in (self._idle_call, self._heartbeat_call):
            if call is not None and call.active():
                call.cancel()
        self._idle_call = self._heartbeat_call = None

    # --- timers ---------------------------------------------------------------------------------

    def _idle(self) -> None:
        self._idle_call = None
        self._close("idle", f"no frame for {self.idle_timeout:g} s")

    def _schedule_heartbeat(self) -> None:
        if self.heartbeat_interval <= 0 or self._closing:
            return
        call = self._heartbeat_call
        if call is not None and call.active():
            call.reset(self.heartbeat_interval)
        else:
            self._heartbeat_call = self._clock.callLater(self.heartbeat_interval, self._heartbeat)

    def _heartbeat(self) -> None:
        self._heartbeat_call = None
        sequence = f"{self._heartbeat_sequence:010d}"
        self._heartbeat_sequence = self._heartbeat_sequence % _MAX_SEQUENCE + 1
        self._send(b"HB" + sequence.encode("ascii"))

    # --- frames ---------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if not self._closing:
            super().dataReceived(data)

    def lengthLimitExceeded(self, length: int) -> None:
        self._close("frame_too_long", f"frame of {length} bytes, the limit is {self.MAX_LENGTH}")

    def stringReceived(self, payload: bytes) -> None:
        if self._closing:  # the rest of a read that held the frame we closed for
            return
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.reset(self.idle_timeout)
        kind = payload[:2]
        if kind == b"DT":
            self._data(payload)
        elif kind in (b"HB", b"HA"):
            self._heartbeat_frame(kind, payload)
        else:
            FRAMES.labels("unknown").inc()
            log.warn(
                "CVS link: ignored a frame of unknown type {kind!r} from {peer} "
                "({length} bytes, starting {start!r})",
                kind=kind,
                peer=self._peer(),
                length=len(payload),
                start=payload[:_LOGGED_BYTES],
            )

    def _heartbeat_frame(self, kind: bytes, payload: bytes) -> None:
        try:
            sequence = _sequence(payload)
            if len(payload) != _HEADER_LENGTH:
                raise FrameError(f"{kind!r} frame of {len(payload)} bytes, not {_HEADER_LENGTH}")
        except FrameError as e:
            FRAMES.labels("bad").inc()
            log.warn(
                "CVS link: ignored a bad frame from {peer}: {error}", peer=self._peer(), error=e
            )
            return
        if kind == b"HB":
            FRAMES.labels("hb").inc()
            self._send(b"HA" + sequence.encode("ascii"))
        else:
            FRAMES.labels("ha").inc()

    def _data(self, payload: bytes) -> None:
        try:
            sequence = _sequence(payload)
        except FrameError as e:
            FRAMES.labels("bad").inc()
            self._close("bad_frame", str(e))
            return
        if len(payload) != _DT_LENGTH:
            FRAMES.labels("bad").inc()
            log.warn(
                "CVS link: DT {sequence} from {peer} has {length} bytes, not {expected}; "
                "answered 10 (starting {start!r})",
                sequence=sequence,
                peer=self._peer(),
                length=len(payload),
                expected=_DT_LENGTH,
                start=payload[:_LOGGED_BYTES],
            )
            self._ack(sequence, "10")
            return
        FRAMES.labels("dt").inc()
        source = self.source
        self.pending += 1
        d: Deferred[str] = maybeDeferred(self._submit, payload[_HEADER_LENGTH:], source)

        def answer(result: str) -> None:
            self.pending -= 1
            if result not in RESULTS:
                log.error(
                    "CVS link: submit answered {result!r} for DT {sequence} from {source}; "
                    "answering 90",
                    result=result,
                    sequence=sequence,
                    source=source,
                )
                result = "90"
            self._ack(sequence, result)

        def failed(failure: Failure) -> None:
            self.pending -= 1
            log.failure(
                "CVS link: submit failed for DT {sequence} from {source}; answering 90",
                failure,
                sequence=sequence,
                source=source,
            )
            self._ack(sequence, "90")

        d.addCallbacks(answer, failed)
        d.addErrback(
            lambda f: log.failure("CVS link: answering DT {sequence}", f, sequence=sequence)
        )

    def _ack(self, sequence: str, result: str) -> None:
        if not self._connected or self._closing:
            log.info(
                "CVS link: ack {result} for DT {sequence} not sent, the connection is gone "
                "(the agency resends it)",
                result=result,
                sequence=sequence,
            )
            return
        self._send(b"AK" + sequence.encode("ascii") + result.encode("ascii"))
        FRAMES.labels("ak_sent").inc()
        ACKS.labels(result).inc()

    def _send(self, payload: bytes) -> None:
        self.sendString(payload)
        self._schedule_heartbeat()


class CvsLinkFactory(Factory):
    """Builds a :class:`CvsLinkProtocol` per connection and knows how many are open."""

    def __init__(
        self,
        submit: Submit,
        clock: IReactorTime,
        idle_timeout: float,
        heartbeat_interval: float | None = None,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, not {idle_timeout}")
        self.submit = submit
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.heartbeat_interval = heartbeat_interval
        self._protocols: set[CvsLinkProtocol] = set()

    @property
    def connections(self) -> int:
        """The number of open connections."""
        return len(self._protocols)

    def buildProtocol(self, addr: IAddress | None) -> CvsLinkProtocol:
        protocol = CvsLinkProtocol(
            self.submit, self.clock, self.idle_timeout, self.heartbeat_interval
        )
        protocol.factory = self
        return protocol


def listen_cvs_link(
    reactor: Any, description: str, tls: TLSFiles, submit: Submit, idle_timeout: float
) -> Deferred[IListeningPort]:
    """Listen for the agency on ``description`` (e.g. ``tcp:7001``) with mutual TLS from ``tls``.

    Only a client whose certificate chains to ``tls.ca`` completes the handshake; ``reactor`` is
    also the clock of the idle timeout and heartbeats.
    """
    factory = CvsLinkFactory(submit, reactor, idle_timeout)
    return listen_tls(reactor, description, factory, server_options(tls))
