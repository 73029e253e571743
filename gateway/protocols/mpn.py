"""The MPN center link (spec/mpn.md §2-§5), the gateway's side: the gateway dials the center.

Each frame is a 4-byte big-endian length and a message of at most 4,096 bytes (a longer one closes
the connection). On every connection the gateway first sends 開局 ``1000`` and waits
``request_deadline`` seconds for ``1010`` (else it closes); until then a center request is answered
``9001``. Then:

- a center request (照会 1100, 消込 1200, 取消 1300, 再送確認 1400) goes to the ``answer`` function
  (this module never sees the store); the response it fires with is written as soon as it fires, so
  answers may go out of order. A failure (or a response that does not belong to the request) is
  answered ``9001``. An answer not ready within ``answer_deadline`` is logged and counted as late,
  and still written when it comes (the center sends 再送確認 for a 消込 it did not see answered).
- echo ``1800`` is answered ``1810``; after ``echo_interval`` seconds without a message from the
  center the gateway sends its own ``1800`` and closes if no ``1810`` comes within
  ``request_deadline``.
- :meth:`MpnLinkProtocol.close_day` sends 閉局 ``1900`` and fires with the center's ``1910``.

The gateway's own requests are matched to their responses by the header triple (as jPOS's QMUX
does); a response that matches nothing is logged and counted. A message that does not parse is
answered ``2001`` if its header's type and triple are readable (the response type, the triple
copied, the request's key copied into the body when there is one); otherwise the connection is
closed. :class:`MpnLink` keeps the connection up through a ``ClientService`` with back-off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from prometheus_client import Counter, Gauge, Histogram
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import IntNStringReceiver
from twisted.python.failure import Failure

from gateway.errors import GatewayError, PeerUnavailable, RecordError
from gateway.infra.reload import ClientTLS
from gateway.infra.tls import TLSFiles, client_options, connect_tls_endpoint, peer_common_name
from gateway.mappers.fields import build_fields, parse_fields
from gateway.mappers.mpn.mapper import (
    Close,
    Echo,
    Header,
    Message,
    Open,
    build_message,
    parse_message,
    response_for,
)
from gateway.mappers.mpn.records import (
    BODIES,
    HEADER,
    HEADER_LENGTH,
    MAX_MESSAGE_LENGTH,
    NETWORK,
    REQUEST_TYPES,
    RESPONSE_CODES,
    TYPE_NAMES,
)
from gateway.protocols.link_state import LinkState

__all__ = [
    "CENTER_REQUESTS",
    "Answer",
    "MpnLink",
    "MpnLinkFactory",
    "MpnLinkProtocol",
    "MpnResponseError",
    "Serials",
]

#: Answers one center request (and its source, ``mpn:<peer>``) with its response message.
Answer = Callable[[Message, str], Deferred[Message]]
Triple = tuple[str, date, str]

CENTER_REQUESTS: Final = frozenset({"1100", "1200", "1300", "1400"})
_KEY_OFFSET: Final = {"1100": 0, "1200": 0, "1300": 20, "1400": 0}  # where a request's key is
_KEY_LENGTH: Final = 31
_MAX_SERIAL: Final = 99_999_999
DISCONNECT_REASONS: Final = (
    "open_timeout",
    "open_refused",
    "echo_timeout",
    "frame_too_long",
    "bad_message",
    "peer_closed",
)

LINK_UP = Gauge("gateway_mpn_link_up", "1 while the MPN link is open (開局 answered), else 0.")
MESSAGES = Counter(
    "gateway_mpn_messages_total", "MPN link messages, by type and direction.", ["type", "direction"]
)
ANSWERS = Counter(
    "gateway_mpn_answers_total", "Answers to MPN center requests, by response code.", ["code"]
)
ANSWER_SECONDS = Histogram(
    "gateway_mpn_answer_duration_seconds",
    "Time from a center request's arrival to our answer, on the MPN link.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LATE_ANSWERS = Counter(
    "gateway_mpn_late_answers_total", "Center requests not answered within the answer deadline."
)
UNMATCHED = Counter(
    "gateway_mpn_unmatched_responses_total", "Responses from the center that match no request."
)
DISCONNECTS = Counter(
    "gateway_mpn_disconnects_total", "MPN link connections closed, by reason.", ["reason"]
)
for _type in TYPE_NAMES.values():
    for _direction in ("in", "out"):
        MESSAGES.labels(_type, _direction)
for _reason in DISCONNECT_REASONS:
    DISCONNECTS.labels(_reason)
for _code in RESPONSE_CODES:  # every code from the start, so an alert sees the first 2001 or 9001
    ANSWERS.labels(_code)

log = Logger()


class MpnResponseError(GatewayError):
    """The center answered one of our requests with a code other than ``0000``."""

    def __init__(self, message: Message) -> None:
        self.response = message
        self.code = message.header.response_code
        super().__init__(f"MPN center answered {message.header.type} with {self.code}")


class Serials:
    """仕向処理通番 per business date: 1, 2, ... 99999999, then 1 again; kept across connections."""

    def __init__(self) -> None:
        self._next: dict[date, int] = {}

    def next(self, business_date: date) -> str:
        n = self._next.get(business_date, 1)
        self._next[business_date] = n % _MAX_SERIAL + 1
        return f"{n:08d}"


@dataclass
class _Pending:
    expected: str  # the response type
    deferred: Deferred[Message]
    timer: IDelayedCall | None = field(default=None)


def _format_error_answer(values: dict[str, Any], raw: bytes) -> bytes:
    """``2001`` for an unparsable message whose type and triple are readable."""
    type_ = values["type"]
    answer = f"{int(type_) + 10:04d}" if type_[2] == "0" else type_
    head = dict(values, type=answer, response_code="2001")
    out = build_fields(HEADER, head, network=NETWORK)
    if answer in BODIES and type_ in _KEY_OFFSET:  # key copied, the rest zeros and spaces
        start = HEADER_LENGTH + _KEY_OFFSET[type_]
        key = raw[start : start + _KEY_LENGTH].ljust(_KEY_LENGTH, b" ")
        tail = b"0" * 18 + b" " * 40 if answer == "1110" else b""
        out += key + tail
    return out


class MpnLinkProtocol(IntNStringReceiver):
    """One connection to the center; see the module docstring for the rules."""

    structFormat = "!I"
    prefixLength = 4
    MAX_LENGTH = MAX_MESSAGE_LENGTH

    def __init__(
        self,
        answer: Answer,
        clock: IReactorTime,
        *,
        institution_code: str,
        center_code: str,
        business_date: Callable[[], date],
        serials: Serials | None = None,
        answer_deadline: float = 5.0,
        request_deadline: float = 10.0,
        echo_interval: float = 30.0,
    ) -> None:
        self._answer = answer
        self._clock = clock
        self.institution_code = institution_code
        self.center_code = center_code
        self._business_date = business_date
        self._serials = serials if serials is not None else Serials()
        self.answer_deadline = answer_deadline
        self.request_deadline = request_deadline
        self.echo_interval = echo_interval
        self.open = False
        self.pending_answers = 0
        self._connected = False
        self._closing = False
        self._pending: dict[Triple, _Pending] = {}
        self._echo_call: IDelayedCall | None = None
        self._peer: str | None = None

    # --- connection -----------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self._connected = True
        if isinstance(self.factory, MpnLinkFactory):
            self.factory.protocol_made(self)
        today = self._business_date()
        d = self._request("1000", today, Open(self.institution_code, today))
        d.addCallbacks(self._opened, self._open_failed)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self._connected:
            return
        self._connected = False
        if not self._closing:
            DISCONNECTS.labels("peer_closed").inc()
        if self.open:
            LINK_UP.set(0)
            if isinstance(self.factory, MpnLinkFactory):
                self.factory.state.set(False)
        self.open = False
        self._cancel_echo()
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            if entry.timer is not None and entry.timer.active():
                entry.timer.cancel()
            entry.deferred.errback(PeerUnavailable(f"MPN link lost: {reason.getErrorMessage()}"))
        if isinstance(self.factory, MpnLinkFactory):
            self.factory.protocol_lost(self)
        log.info("MPN link: disconnected ({why})", why=reason.getErrorMessage())

    @property
    def source(self) -> str:
        """``mpn:<CN of the center's certificate>``, or ``mpn:<address>`` without one."""
        if self._peer is None:
            self._peer = peer_common_name(self.transport)
        if self._peer:
            return f"mpn:{self._peer}"
        address = self.transport.getPeer() if self.transport is not None else None
        return f"mpn:{getattr(address, 'host', address)}:{getattr(address, 'port', '')}"

    def _close(self, reason: str, why: str) -> None:
        if self._closing or not self._connected:
            return
        self._closing = True
        DISCONNECTS.labels(reason).inc()
        log.warn("MPN link: closing ({reason}): {why}", reason=reason, why=why)
        self._cancel_echo()
        if self.transport is not None:
            self.transport.loseConnection()

    def _opened(self, response: Message) -> None:
        if response.header.response_code != "0000":
            self._close("open_refused", f"開局 answered {response.header.response_code}")
            return
        self.open = True
        LINK_UP.set(1)
        if isinstance(self.factory, MpnLinkFactory):
            self.factory.state.set(True)
        log.info("MPN link: open, business date {d}", d=response.header.business_date)
        self._schedule_echo()

    def _open_failed(self, failure: Failure) -> None:
        if isinstance(failure.value, MpnResponseError):
            self._opened(failure.value.response)
        elif self._connected:
            self._close("open_timeout", f"no 1010 within {self.request_deadline:g} s")

    # --- echo -----------------------------------------------------------------------------------

    def _schedule_echo(self) -> None:
        if not self.open or self._closing or self.echo_interval <= 0:
            return
        if self._echo_call is not None and self._echo_call.active():
            self._echo_call.reset(self.echo_interval)
        else:
            self._echo_call = self._clock.callLater(self.echo_interval, self._echo)

    def _cancel_echo(self) -> None:
        if self._echo_call is not None and self._echo_call.active():
            self._echo_call.cancel()
        self._echo_call = None

    def _echo(self) -> None:
        self._echo_call = None
        d = self._request("1800", self._business_date(), Echo())

        def no_answer(failure: Failure) -> None:
            if self._connected and not failure.check(MpnResponseError):
                self._close("echo_timeout", f"no 1810 within {self.request_deadline:g} s")

        d.addCallbacks(lambda _: self._schedule_echo(), no_answer)

    # --- our requests ---------------------------------------------------------------------------

    def close_day(self, business_date: date, counters: Close) -> Deferred[Close]:
        """Send 閉局 with our figures; fires with the center's (``MpnResponseError`` if not 0000,
        :class:`PeerUnavailable` on the deadline or if the link goes)."""
        if not self.open or self._closing:
            return fail(PeerUnavailable("the MPN link is not open"))
        d = self._request("1900", business_date, counters)
        return d.addCallback(lambda m: m.body if isinstance(m.body, Close) else _bad_body(m))

    def _request(self, type_: str, business_date: date, body: Any) -> Deferred[Message]:
        header = Header(type_, self.center_code, business_date, self._serials.next(business_date))
        d: Deferred[Message] = Deferred()
        entry = _Pending(f"{int(type_) + 10:04d}", d)
        triple = header.triple
        self._pending[triple] = entry
        entry.timer = self._clock.callLater(self.request_deadline, self._expired, triple)
        self._send(Message(header, body))
        return d

    def _expired(self, triple: Triple) -> None:
        entry = self._pending.pop(triple, None)
        if entry is not None:
            reason = f"no {entry.expected} within {self.request_deadline:g} s"
            entry.deferred.errback(PeerUnavailable(reason))

    def _response(self, message: Message) -> None:
        entry = self._pending.get(message.header.triple)
        if entry is None or entry.expected != message.header.type:
            UNMATCHED.inc()
            log.warn("MPN link: unmatched response {header}", header=message.header)
            return
        del self._pending[message.header.triple]
        if entry.timer is not None and entry.timer.active():
            entry.timer.cancel()
        if message.header.response_code == "0000":
            entry.deferred.callback(message)
        else:
            entry.deferred.errback(MpnResponseError(message))

    # --- messages -------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if not self._closing:
            super().dataReceived(data)

    def lengthLimitExceeded(self, length: int) -> None:
        self._close("frame_too_long", f"frame of {length} bytes, the limit is {self.MAX_LENGTH}")

    def stringReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self._schedule_echo()
        try:
            message = parse_message(data)
        except RecordError as e:
            self._unparsable(data, e)
            return
        type_ = message.header.type
        MESSAGES.labels(TYPE_NAMES[type_], "in").inc()
        if type_ in CENTER_REQUESTS:
            self._center_request(message)
        elif type_ == "1800":
            self._send(response_for(message, "0000"))
        elif type_ in REQUEST_TYPES:  # 1000 or 1900: ours to send, not the center's
            log.warn("MPN link: ignored a {type} from the center", type=type_)
        else:
            self._response(message)

    def _unparsable(self, data: bytes, error: RecordError) -> None:
        values, _ = parse_fields(HEADER, data[:HEADER_LENGTH], network=NETWORK, record=0)
        readable = {"type", "center_code", "business_date", "serial"} <= values.keys()
        if not readable:
            self._close("bad_message", f"unreadable message: {error}")
            return
        if values["type"] in BODIES and values["type"] not in REQUEST_TYPES:
            UNMATCHED.inc()  # a response we cannot read: the request times out
            log.warn("MPN link: unreadable response, ignored: {error}", error=error)
            return
        log.warn("MPN link: answering 2001: {error}", error=error)
        ANSWERS.labels("2001").inc()
        self._write(_format_error_answer(values, data), values["type"])

    def _center_request(self, request: Message) -> None:
        if not self.open:
            self._reply(request, response_for(request, "9001"))
            return
        triple = request.header.triple
        self.pending_answers += 1
        received = self._clock.seconds()
        late = self._clock.callLater(self.answer_deadline, self._late, request)
        d: Deferred[Message] = maybeDeferred(self._answer, request, self.source)

        def done(response: Message) -> None:
            self.pending_answers -= 1
            ANSWER_SECONDS.observe(self._clock.seconds() - received)
            if late.active():
                late.cancel()
            header = response.header if isinstance(response, Message) else None
            if header is None or header.triple != triple or header.type != _answer_type(request):
                log.error("MPN link: answer {r!r} does not fit {t}; 9001", r=response, t=triple)
                response = response_for(request, "9001")
            self._reply(request, response)

        def failed(failure: Failure) -> None:
            self.pending_answers -= 1
            ANSWER_SECONDS.observe(self._clock.seconds() - received)
            if late.active():
                late.cancel()
            log.failure("MPN link: answering {t} failed; 9001", failure, t=triple)
            self._reply(request, response_for(request, "9001"))

        d.addCallbacks(done, failed)
        d.addErrback(lambda f: log.failure("MPN link: answering {t}", f, t=triple))

    def _late(self, request: Message) -> None:
        LATE_ANSWERS.inc()
        log.warn("MPN link: {t} not answered in time (the center resends)", t=request.header)

    def _reply(self, request: Message, response: Message) -> None:
        if not self._connected or self._closing:
            log.info("MPN link: answer to {t} not sent, link gone", t=request.header.triple)
            return
        ANSWERS.labels(response.header.response_code).inc()
        self._send(response)

    def _send(self, message: Message) -> None:
        self._write(build_message(message), message.header.type)

    def _write(self, data: bytes, type_: str) -> None:
        if type_ in TYPE_NAMES:
            MESSAGES.labels(TYPE_NAMES[type_], "out").inc()
        self.sendString(data)


def _answer_type(request: Message) -> str:
    return f"{int(request.header.type) + 10:04d}"


def _bad_body(message: Message) -> Close:
    raise MpnResponseError(message)


class MpnLinkFactory(Factory):
    """Builds the protocol of each connection (``settings``: the keyword arguments of
    :class:`MpnLinkProtocol`); keeps the serials and the current connection."""

    def __init__(self, answer: Answer, clock: IReactorTime, **settings: Any) -> None:
        self.answer = answer
        self.clock = clock
        self.settings = settings
        self.serials = Serials()
        self.current: MpnLinkProtocol | None = None
        self.state = LinkState(clock)  # up while a connection is open (開局 answered)

    def buildProtocol(self, addr: IAddress | None) -> MpnLinkProtocol:
        protocol = MpnLinkProtocol(self.answer, self.clock, serials=self.serials, **self.settings)
        protocol.factory = self
        return protocol

    def protocol_made(self, protocol: MpnLinkProtocol) -> None:
        self.current = protocol

    def protocol_lost(self, protocol: MpnLinkProtocol) -> None:
        if self.current is protocol:
            self.current = None


class MpnLink:
    """The link to the center, redialled with exponential back-off; ``start`` it, ``stop`` it.

    Given a :class:`ClientTLS` as ``tls``, its files and hostname are used (``hostname`` is
    not), and a reload replaces them for the next connection; the open one stays up.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        description: str,
        tls: TLSFiles | ClientTLS,
        hostname: str,
        answer: Answer,
        *,
        institution_code: str,
        center_code: str,
        business_date: Callable[[], date],
        answer_deadline: float = 5.0,
        request_deadline: float = 10.0,
        echo_interval: float = 30.0,
    ) -> None:
        self.factory = MpnLinkFactory(
            answer,
            reactor,
            institution_code=institution_code,
            center_code=center_code,
            business_date=business_date,
            answer_deadline=answer_deadline,
            request_deadline=request_deadline,
            echo_interval=echo_interval,
        )
        options = tls if isinstance(tls, ClientTLS) else client_options(tls, hostname)
        endpoint = connect_tls_endpoint(reactor, description, options)
        self.service = ClientService(
            endpoint,
            self.factory,
            retryPolicy=backoffPolicy(initialDelay=1.0, maxDelay=60.0),
            clock=reactor,
        )

    def start(self) -> None:
        self.service.startService()

    def stop(self) -> Deferred[None]:
        """Stop redialling and close the connection; fires once it is closed."""
        d: Deferred[None] = self.service.stopService()
        return d

    @property
    def connected(self) -> bool:
        return self.factory.current is not None

    @property
    def open(self) -> bool:
        return self.factory.current is not None and self.factory.current.open

    @property
    def state(self) -> LinkState:
        return self.factory.state

    def close_day(self, business_date: date, counters: Close) -> Deferred[Close]:
        current = self.factory.current
        if current is None or not current.open:
            return fail(PeerUnavailable("the MPN link is not open"))
        return current.close_day(business_date, counters)
