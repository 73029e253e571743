"""The MPN center's side of the link (spec/mpn.md §2-§5), for the simulator, benchmark and tests.

The center listens with mutual TLS (:func:`listen_mpn_center`); the gateway dials it. On each
connection the center waits for 開局 ``1000`` and answers ``1010`` (recording the gateway's
institution code and business date; :attr:`MpnCenterFactory.opened` fires), answers echo ``1800``
with ``1810`` and 閉局 ``1900`` with ``1910`` carrying the figures of ``close_figures`` (by default
the gateway's own). :meth:`MpnCenterFactory.request` sends 照会 / 消込 / 取消 / 再送確認 under the
center's code, business date and next serial, and fires with the gateway's response, matched by
the header triple, or fails with ``TimeoutError`` after ``deadline`` seconds.

Written from the spec and not from the gateway's module, so that tests exercising both sides catch
a misreading on either one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any, Final

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IAddress, IDelayedCall, IListeningPort, IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import IntNStringReceiver
from twisted.python.failure import Failure

from gateway.errors import PeerUnavailable, RecordError
from gateway.infra.tls import TLSFiles, listen_tls, server_options
from gateway.mappers.mpn.mapper import (
    Body,
    Close,
    Header,
    Message,
    Open,
    build_message,
    parse_message,
    response_for,
)
from gateway.mappers.mpn.records import MAX_MESSAGE_LENGTH

__all__ = ["MpnCenterFactory", "MpnCenterProtocol", "listen_mpn_center"]

_MAX_SERIAL: Final = 99_999_999
Triple = tuple[str, date, str]

log = Logger()


class MpnCenterProtocol(IntNStringReceiver):
    """One connection from the gateway; the state that outlives it is in the factory."""

    structFormat = "!I"
    prefixLength = 4
    MAX_LENGTH = MAX_MESSAGE_LENGTH

    def __init__(self, center: MpnCenterFactory) -> None:
        self.center = center
        self.open = False

    def connectionMade(self) -> None:
        self.center._attach(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.center._detach(self, reason)

    def lengthLimitExceeded(self, length: int) -> None:
        log.warn("MPN center: frame of {n} bytes from the gateway, closing", n=length)
        if self.transport is not None:
            self.transport.loseConnection()

    def send(self, message: Message) -> None:
        self.center.sent[message.header.type] += 1
        self.sendString(build_message(message))

    def stringReceived(self, data: bytes) -> None:
        try:
            message = parse_message(data)
        except RecordError as e:
            self.center.received["bad"] += 1
            log.warn("MPN center: unreadable message from the gateway: {e}", e=e)
            return
        type_ = message.header.type
        self.center.received[type_] += 1
        if type_ == "1000":
            self._open(message)
        elif type_ == "1800":
            self.send(response_for(message, "0000"))
        elif type_ == "1900" and isinstance(message.body, Close):
            code = "0000" if self.open else "9001"
            figures = self.center.close_figures(message.body)
            self.center.closes.append((message.body, figures))
            self.send(response_for(message, code, figures))
        elif type_[2] == "1":
            self.center._response(message)
        else:
            log.warn("MPN center: unexpected {type} from the gateway", type=type_)

    def _open(self, message: Message) -> None:
        body = message.body
        assert isinstance(body, Open)
        self.send(response_for(message, "0000"))
        self.open = True
        self.center._opened(self, body)


class MpnCenterFactory(Factory):
    """The center: builds a protocol per connection, numbers its requests, matches responses.

    ``sent`` and ``received`` count messages by type (``received["bad"]``: unreadable ones);
    ``closes`` lists each 閉局 as (the gateway's figures, the figures answered).
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        center_code: str = "0002",
        business_date: date | None = None,
        deadline: float = 5.0,
        close_figures: Callable[[Close], Close] | None = None,
        first_serial: int = 1,
    ) -> None:
        self.clock = clock
        self.center_code = center_code
        self.business_date = business_date
        self.deadline = deadline
        self.close_figures: Callable[[Close], Close] = close_figures or (lambda ours: ours)
        self.sent: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.closes: list[tuple[Close, Close]] = []
        self.institution_code: str | None = None
        self.gateway_business_date: date | None = None
        self.opened: Deferred[MpnCenterProtocol] = Deferred()
        self.connected_protocol: MpnCenterProtocol | None = None
        self.disconnects: list[Failure] = []
        self._serial = first_serial - 1
        self._pending: dict[Triple, tuple[Deferred[Message], IDelayedCall]] = {}

    def buildProtocol(self, addr: IAddress | None) -> MpnCenterProtocol:
        protocol = MpnCenterProtocol(self)
        protocol.factory = self
        return protocol

    def request(self, type_: str, body: Body, *, triple: Triple | None = None) -> Deferred[Message]:
        """Send a ``type_`` request with ``body`` under the next serial (or under ``triple``,
        e.g. a 再送確認's original 消込); fires with the gateway's response."""
        if self.connected_protocol is None or not self.connected_protocol.open:
            return fail(PeerUnavailable("no gateway has completed 開局"))
        if triple is None:
            when = self.business_date or self.gateway_business_date or self.clock_date()
            self._serial = self._serial % _MAX_SERIAL + 1
            triple = (self.center_code, when, f"{self._serial:08d}")
        return self.send_request(Message(Header(type_, *triple), body))

    def send_request(self, message: Message) -> Deferred[Message]:
        """Send ``message`` as it is; fires with the response that carries its triple."""
        protocol = self.connected_protocol
        if protocol is None or not protocol.open:
            return fail(PeerUnavailable("no gateway has completed 開局"))
        triple = message.header.triple
        if triple in self._pending:
            return fail(ValueError(f"a request with triple {triple} is already waiting"))
        d: Deferred[Message] = Deferred()
        timer = self.clock.callLater(self.deadline, self._expired, triple)
        self._pending[triple] = (d, timer)
        protocol.send(message)
        return d

    def clock_date(self) -> date:
        return date.fromtimestamp(self.clock.seconds())

    def _expired(self, triple: Triple) -> None:
        entry = self._pending.pop(triple, None)
        if entry is not None:
            entry[0].errback(TimeoutError(f"no response to {triple} in {self.deadline:g} s"))

    def _response(self, message: Message) -> None:
        entry = self._pending.pop(message.header.triple, None)
        if entry is None:
            self.received["unmatched"] += 1
            log.warn("MPN center: unmatched response {t}", t=message.header.triple)
            return
        d, timer = entry
        if timer.active():
            timer.cancel()
        d.callback(message)

    def _attach(self, protocol: MpnCenterProtocol) -> None:
        if self.connected_protocol is not None and self.connected_protocol.transport is not None:
            log.warn("MPN center: a second gateway connection replaces the first")
            self.connected_protocol.transport.loseConnection()
        self.connected_protocol = protocol

    def _opened(self, protocol: MpnCenterProtocol, body: Open) -> None:
        self.institution_code = body.institution_code
        self.gateway_business_date = body.business_date
        if not self.opened.called:
            self.opened.callback(protocol)

    def _detach(self, protocol: MpnCenterProtocol, reason: Failure) -> None:
        if self.connected_protocol is not protocol:
            return
        self.connected_protocol = None
        self.disconnects.append(reason)
        if self.opened.called:
            self.opened = Deferred()
        pending, self._pending = self._pending, {}
        for d, timer in pending.values():
            if timer.active():
                timer.cancel()
            d.errback(PeerUnavailable("the gateway disconnected"))


def listen_mpn_center(
    reactor: Any,
    description: str,
    tls: TLSFiles,
    *,
    center_code: str = "0002",
    business_date: date | None = None,
    deadline: float = 5.0,
    close_figures: Callable[[Close], Close] | None = None,
    factory: MpnCenterFactory | None = None,
) -> Deferred[IListeningPort]:
    """Listen on ``description`` (e.g. ``tcp:0:interface=127.0.0.1``) with mutual TLS from ``tls``;
    pass ``factory`` to keep hold of the center (otherwise ``port.factory.wrappedFactory``)."""
    if factory is None:
        factory = MpnCenterFactory(
            reactor,
            center_code=center_code,
            business_date=business_date,
            deadline=deadline,
            close_figures=close_figures,
        )
    return listen_tls(reactor, description, factory, server_options(tls))
