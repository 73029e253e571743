"""The real-time 速報 link with the CVS agency (spec/cvs.md §4), the gateway's side.

The agency connects over mutual TLS. Who may speak is decided once the handshake is complete
(:meth:`CvsLinkProtocol.handshakeCompleted`), before a single byte of it is read:

- The certificate must carry one of the factory's ``peers`` (``cvs.link.peers``) as its CN or a
  DNS subjectAltName; a certificate of the same CA with any other name (the MPN center's, the
  bank's) is closed at once, logged with its names and counted in
  ``gateway_cvs_link_refused_total{reason="peer_name"}``.
- At most ``max_connections`` connections are established at once (a further one is refused,
  ``too_many_connections``); only an established connection counts in
  ``gateway_cvs_link_connections``. Apart from them, at most ``max_connections`` handshakes may
  be in progress (a further connection is closed at once, ``too_many_handshakes``), and a
  handshake not complete ``handshake_timeout`` seconds after the connection (on the injected
  clock) is aborted (``handshake_timeout``). A connection lost before its handshake completed
  (another CA, no certificate, a weak cipher, a port scan) is counted ``handshake_failed``.
- At most ``max_unacked`` records are in flight (submitted, not yet answered) per connection:
  at that many the protocol stops reading (``pauseProducing``: the socket is not read, the frames
  already received wait in the buffer) and reads again once an ack has gone out.

Each frame is a 2-byte big-endian length and a payload of at
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

from collections.abc import Callable, Collection
from typing import Final

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHandshakeListener,
    IListeningPort,
    IReactorTime,
)
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import IntNStringReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway.errors import FrameError
from gateway.infra.reload import ServerTLS
from gateway.infra.tls import TLSFiles, listen_tls, peer_names, server_options
from gateway.protocols.cvs_metrics import (
    ACK_SECONDS,
    ACKS,
    CONNECTIONS,
    DISCONNECTS,
    FRAMES,
    PAUSES,
    REFUSED,
    RESULTS,
)
from gateway.protocols.link_state import LinkState
from gateway.protocols.peers import address_text, allowed_name

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
DEFAULT_MAX_UNACKED: Final = 100
DEFAULT_MAX_CONNECTIONS: Final = 4
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
_LOGGED_NAMES: Final = 5  # a refused certificate's names in the log: at most this many
_LOGGED_NAME: Final = 80  # characters of each

log = Logger()


def _sequence(payload: bytes) -> str:
    """The 10-digit sequence after the 2-byte type, or :class:`FrameError`."""
    raw = payload[2 : 2 + SEQUENCE_LENGTH]
    if len(raw) != SEQUENCE_LENGTH or not raw.isdigit():  # bytes.isdigit: ASCII digits only
        raise FrameError(
            f"{payload[:2]!r} frame of {len(payload)} bytes without a 10-digit sequence"
        )
    return raw.decode("ascii")


@implementer(IHandshakeListener)
class CvsLinkProtocol(IntNStringReceiver):
    """One connection from the agency; see the module docstring for the rules.

    Nothing is read before :meth:`handshakeCompleted` has admitted the peer: over TLS the
    handshake comes first; on a plain transport (tests) the connection is never admitted.
    """

    structFormat = "!H"
    prefixLength = 2
    MAX_LENGTH = MAX_PAYLOAD

    def __init__(
        self,
        submit: Submit,
        clock: IReactorTime,
        idle_timeout: float,
        heartbeat_interval: float | None = None,
        *,
        peers: Collection[str],
        max_unacked: int = DEFAULT_MAX_UNACKED,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, not {idle_timeout}")
        if max_unacked < 1:
            raise ValueError(f"max_unacked must be at least 1, not {max_unacked}")
        if handshake_timeout <= 0:
            raise ValueError(f"handshake_timeout must be positive, not {handshake_timeout}")
        self._submit = submit
        self._clock = clock
        self.idle_timeout = idle_timeout
        self.heartbeat_interval = (
            idle_timeout / 3 if heartbeat_interval is None else heartbeat_interval
        )
        self.peers = tuple(peers)
        self.max_unacked = max_unacked
        self.handshake_timeout = handshake_timeout
        self.pending = 0  # submits whose Deferred has not fired yet
        self._connected = False
        self.established = False  # handshake complete and the peer's name allowed
        self._refused = False
        self._closing = False
        self._peer_name: str | None = None
        self._heartbeat_sequence = 1
        self._handshake_call: IDelayedCall | None = None
        self._idle_call: IDelayedCall | None = None
        self._heartbeat_call: IDelayedCall | None = None
        self._abort_call: IDelayedCall | None = None

    # --- connection -----------------------------------------------------------------------------

    def _link_factory(self) -> CvsLinkFactory | None:
        factory = self.factory
        return factory if isinstance(factory, CvsLinkFactory) else None

    def connectionMade(self) -> None:
        self._connected = True
        factory = self._link_factory()
        if factory is not None:
            if len(factory._handshaking) >= factory.max_connections:
                self._refuse(
                    "too_many_handshakes",
                    f"{len(factory._handshaking)} handshakes already in progress",
                    names=(),
                )
                return
            factory._handshaking.add(self)
        self._handshake_call = self._clock.callLater(self.handshake_timeout, self._handshake_late)

    def handshakeCompleted(self) -> None:
        """The peer's certificate chains to the link's CA; admit it if its name is allowed and
        a connection is free, else close it before reading anything."""
        if not self._connected or self._closing:
            return
        self._end_handshake()
        names = peer_names(self.transport)
        factory = self._link_factory()
        # The factory's names are the link's now (a reload may have replaced them since this
        # connection was accepted); a connection already admitted is never checked again.
        name = allowed_name(names, self.peers if factory is None else factory.peers)
        if name is None:
            self._refuse("peer_name", "its certificate names no allowed peer", names=names)
            return
        if factory is not None and factory.connections >= factory.max_connections:
            self._refuse(
                "too_many_connections",
                f"{factory.connections} connections already open",
                names=names,
            )
            return
        self._peer_name = name
        self.established = True
        CONNECTIONS.inc()
        if factory is not None:
            factory._protocols.add(self)
            factory.link_changed()
        self._idle_call = self._clock.callLater(self.idle_timeout, self._idle)
        self._schedule_heartbeat()
        log.info("CVS link: {peer} connected from {address}", peer=name, address=self._address())

    def _handshake_late(self) -> None:
        self._handshake_call = None
        self._refuse(
            "handshake_timeout",
            f"no complete TLS handshake within {self.handshake_timeout:g} s",
            names=(),
        )

    def _end_handshake(self) -> None:
        if self._handshake_call is not None and self._handshake_call.active():
            self._handshake_call.cancel()
        self._handshake_call = None
        factory = self._link_factory()
        if factory is not None:
            factory._handshaking.discard(self)

    def _refuse(self, reason: str, why: str, *, names: tuple[str, ...]) -> None:
        """Close a connection that was never admitted; nothing of it has been read."""
        self._end_handshake()
        if self._closing or not self._connected:
            return
        self._refused = self._closing = True
        REFUSED.labels(reason).inc()
        log.warn(
            "CVS link: refused {address} ({reason}): {why}; certificate names {names}",
            address=self._address(),
            reason=reason,
            why=why,
            names=", ".join(repr(n[:_LOGGED_NAME]) for n in names[:_LOGGED_NAMES]) or "none",
        )
        if self.transport is None:
            return
        if reason in ("handshake_timeout", "too_many_handshakes"):
            self._abort(force=True)  # no handshake to close cleanly
        else:
            self.transport.loseConnection()
            self._abort_call = self._clock.callLater(CLOSE_GRACE, self._abort)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self._connected:
            return
        self._connected = False
        self._end_handshake()
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        if not self.established:
            if not self._refused:
                REFUSED.labels("handshake_failed").inc()
                log.warn(
                    "CVS link: {address} closed before its TLS handshake completed ({why})",
                    address=self._address(),
                    why=reason.getErrorMessage(),
                )
            return
        self.established = False
        CONNECTIONS.dec()
        if not self._closing:
            DISCONNECTS.labels("peer_closed").inc()
        self._cancel_timers()
        factory = self._link_factory()
        if factory is not None:
            factory._protocols.discard(self)
            factory.link_changed()
        log.info(
            "CVS link: {peer} disconnected ({why}); {pending} acks outstanding",
            peer=self._peer(),
            why=reason.getErrorMessage(),
            pending=self.pending,
        )

    @property
    def source(self) -> str:
        """``link:<the allowed name of the peer's certificate>``."""
        return f"link:{self._peer()}"

    def _peer(self) -> str:
        return self._peer_name or self._address()

    def _address(self) -> str:
        return address_text(self.transport.getPeer() if self.transport is not None else None)

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

    def _abort(self, force: bool = False) -> None:
        self._abort_call = None
        abort = getattr(self.transport, "abortConnection", None)
        if not self._connected:
            return
        if not callable(abort):
            if force and self.transport is not None:
                self.transport.loseConnection()
            return
        if not force:
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
        if self.paused:  # we stopped reading: the silence is ours, not the agency's
            self._idle_call = self._clock.callLater(self.idle_timeout, self._idle)
            return
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
        if self.established and not self._closing:
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
        received = self._clock.seconds()
        d: Deferred[str] = maybeDeferred(self._submit, payload[_HEADER_LENGTH:], source)

        def answer(result: str) -> None:
            self.pending -= 1
            ACK_SECONDS.observe(self._clock.seconds() - received)
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
            ACK_SECONDS.observe(self._clock.seconds() - received)
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
        if self.pending >= self.max_unacked and not self.paused:
            PAUSES.inc()
            log.info(
                "CVS link: {pending} records from {peer} in flight, reading stops until acks go",
                pending=self.pending,
                peer=self._peer(),
            )
            self.pauseProducing()

    def _resume_if_drained(self) -> None:
        if (
            self.paused
            and self.pending < self.max_unacked
            and self._connected
            and not self._closing
        ):
            self.resumeProducing()  # reads again, the buffered frames first

    def _ack(self, sequence: str, result: str) -> None:
        try:
            self._write_ack(sequence, result)
        finally:
            self._resume_if_drained()

    def _write_ack(self, sequence: str, result: str) -> None:
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
    """Builds a :class:`CvsLinkProtocol` per connection; knows the established connections and
    the handshakes in progress, and holds both under ``max_connections``.

    With ``tls`` (the listener's reloadable TLS), the names admitted are its ``peers``, read at
    each handshake: a reload applies to the connections that complete their handshake after it.
    """

    def __init__(
        self,
        submit: Submit,
        clock: IReactorTime,
        idle_timeout: float,
        heartbeat_interval: float | None = None,
        *,
        peers: Collection[str],
        max_unacked: int = DEFAULT_MAX_UNACKED,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        tls: ServerTLS | None = None,
        state: LinkState | None = None,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, not {idle_timeout}")
        if not peers and tls is None:
            raise ValueError("peers must name at least one certificate name")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        self.submit = submit
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.heartbeat_interval = heartbeat_interval
        self._peers = tuple(peers)
        self.tls = tls
        self.max_unacked = max_unacked
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        self._protocols: set[CvsLinkProtocol] = set()
        self._handshaking: set[CvsLinkProtocol] = set()
        self.state = state  # up while at least one connection is established

    def link_changed(self) -> None:
        if self.state is not None:
            self.state.set(bool(self._protocols))

    @property
    def peers(self) -> tuple[str, ...]:
        """The certificate names admitted now."""
        return self._peers if self.tls is None else self.tls.peers

    @property
    def connections(self) -> int:
        """The number of established connections (handshake complete, peer allowed)."""
        return len(self._protocols)

    @property
    def handshakes(self) -> int:
        """The number of connections whose TLS handshake is still in progress."""
        return len(self._handshaking)

    def buildProtocol(self, addr: IAddress | None) -> CvsLinkProtocol:
        protocol = CvsLinkProtocol(
            self.submit,
            self.clock,
            self.idle_timeout,
            self.heartbeat_interval,
            peers=self.peers,
            max_unacked=self.max_unacked,
            handshake_timeout=self.handshake_timeout,
        )
        protocol.factory = self
        return protocol


def listen_cvs_link(
    reactor: IReactorTime,
    description: str,
    tls: TLSFiles | ServerTLS,
    submit: Submit,
    idle_timeout: float,
    *,
    peers: Collection[str] = (),
    max_unacked: int = DEFAULT_MAX_UNACKED,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    state: LinkState | None = None,
    reuse_port: bool = False,
) -> Deferred[IListeningPort]:
    """Listen for the agency on ``description`` (e.g. ``tcp:7001``) with mutual TLS from ``tls``;
    with ``reuse_port``, sharing the port with the host's other daemons (SO_REUSEPORT).

    Only a client whose certificate chains to ``tls.ca`` completes the handshake, and only one
    whose certificate names one of ``peers`` is read from; ``reactor`` is also the clock of the
    handshake deadline, the idle timeout and heartbeats. Given a :class:`ServerTLS`, the files
    and the names are its own (``peers`` is not used), and a reload replaces them for the
    connections made after it while the established ones stay up.
    """
    reloadable = tls if isinstance(tls, ServerTLS) else None
    factory = CvsLinkFactory(
        submit,
        reactor,
        idle_timeout,
        peers=peers,
        max_unacked=max_unacked,
        max_connections=max_connections,
        handshake_timeout=handshake_timeout,
        tls=reloadable,
        state=state,
    )
    options = tls if isinstance(tls, ServerTLS) else server_options(tls)
    return listen_tls(reactor, description, factory, options, reuse_port=reuse_port)
