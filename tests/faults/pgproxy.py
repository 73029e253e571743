"""A TCP proxy between the daemon and PostgreSQL that a test can cut, in the test's reactor.

The daemon's ``[database] url`` names the proxy's port; every byte goes through as it is, until
the test says otherwise:

- :meth:`PgProxy.cut` aborts every connection on both sides at once (a network failure, a
  server crash as the client sees it): the transaction in flight dies on the server, the
  client's next read fails.
- :meth:`PgProxy.refuse` stops listening (a new connection is refused: the database is down)
  and cuts; :meth:`PgProxy.accept` listens again on the same port.
- :meth:`PgProxy.cut_on` cuts at a chosen statement: when a client runs, for the ``nth`` time,
  a statement whose SQL holds ``trigger`` (e.g. ``b"INSERT INTO settlements ("``), every
  connection is cut before it reaches the server, so a transaction dies in its middle. With
  ``at`` (e.g. ``b"COMMIT"``) the connection that ran the trigger is cut when it next runs
  ``at``, and with ``deliver`` the statement that cuts still reaches the server first: a
  ``COMMIT`` then commits, and the client never hears that it did (a commit whose outcome is
  unknown to the client).

It reads the client's messages only to know which statement each one runs (the daemon's URL
must say ``sslmode=disable``: the proxy cannot read TLS); it never rewrites a byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

__all__ = ["PgProxy"]


@dataclass
class _Rule:
    trigger: bytes
    nth: int
    at: bytes | None
    deliver: bool
    fired: Deferred[None]
    seen: int = 0


_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104


class _Messages:
    """The client's half of the PostgreSQL protocol, read only to know what it runs.

    psycopg sends a statement's text once (a ``Parse``, named ``_pg3_N`` once it prepares it)
    and then only ``Bind`` messages naming it; a ``Query`` carries its text each time. The
    text of every statement run (each ``Query``, each ``Bind``) is what the rules look at.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.started = False  # past the startup packet (and an SSL or GSS request before it)
        self.statements: dict[bytes, bytes] = {}  # name ("" unnamed) -> SQL text

    def feed(self, data: bytes) -> list[bytes]:
        """The SQL text of each statement run by the messages completed by ``data``."""
        self.buffer += data
        run: list[bytes] = []
        while True:
            buf = self.buffer
            if not self.started:
                if len(buf) < 8 or len(buf) < int.from_bytes(buf[:4], "big"):
                    return run
                size, code = int.from_bytes(buf[:4], "big"), int.from_bytes(buf[4:8], "big")
                self.started = code not in (_SSL_REQUEST, _GSSENC_REQUEST)
                self.buffer = buf[size:]
                continue
            if len(buf) < 5 or len(buf) < 1 + int.from_bytes(buf[1:5], "big"):
                return run
            kind, size = buf[:1], int.from_bytes(buf[1:5], "big")
            body, self.buffer = buf[5 : 1 + size], buf[1 + size :]
            if kind == b"Q":
                run.append(body.split(b"\0", 1)[0])
            elif kind == b"P":
                name, rest = body.split(b"\0", 1)
                self.statements[name] = rest.split(b"\0", 1)[0]
            elif kind == b"B":
                _portal, rest = body.split(b"\0", 1)
                run.append(self.statements.get(rest.split(b"\0", 1)[0], b""))


class _Upstream(Protocol):
    """The proxy's connection to PostgreSQL: what it says goes back to the client."""

    def __init__(self, client: _Client) -> None:
        self.client = client

    def dataReceived(self, data: bytes) -> None:
        if self.client.transport is not None:
            self.client.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.client.upstream_lost()


class _Client(Protocol):
    """One client connection (the daemon's pool holds several)."""

    def __init__(self, proxy: PgProxy) -> None:
        self.proxy = proxy
        self.upstream: _Upstream | None = None
        self.waiting: list[bytes] = []  # what the client sent before the server was reached
        self.messages = _Messages()
        self.armed_at: _Rule | None = None  # this connection sent a trigger; cut at rule.at
        self.closed = False

    def connectionMade(self) -> None:
        self.proxy.clients.add(self)
        self.proxy.connections += 1
        endpoint = TCP4ClientEndpoint(self.proxy.reactor, self.proxy.host, self.proxy.port)
        d = connectProtocol(endpoint, _Upstream(self))
        d.addCallbacks(self._connected, lambda _: self.abort())

    def _connected(self, upstream: _Upstream) -> None:
        if self.closed:
            upstream.transport.abortConnection()  # type: ignore[union-attr]
            return
        self.upstream = upstream
        for data in self.waiting:
            upstream.transport.write(data)  # type: ignore[union-attr]
        self.waiting = []

    def dataReceived(self, data: bytes) -> None:
        if self.proxy.inspect(self, self.messages.feed(data), data):
            return  # cut: the data went to the server or nowhere, as the rule says
        self.forward(data)

    def forward(self, data: bytes) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.write(data)
        else:
            self.waiting.append(data)

    def abort(self, deliver: bytes | None = None) -> None:
        """Cut both sides; ``deliver`` reaches the server first (then its side closes)."""
        if self.closed:
            return
        self.closed = True
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]
        if self.upstream is not None and self.upstream.transport is not None:
            if deliver is not None:
                self.upstream.transport.write(deliver)
                self.upstream.transport.loseConnection()  # after the write is flushed
            else:
                self.upstream.transport.abortConnection()  # type: ignore[attr-defined]

    def upstream_lost(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.proxy.clients.discard(self)
        rule, self.armed_at = self.armed_at, None
        if rule is not None:  # gone before it ran ``at``: the next trigger arms the rule again
            rule.seen = rule.nth - 1
            self.proxy.rules.append(rule)
        if not self.closed:
            self.closed = True
            if self.upstream is not None and self.upstream.transport is not None:
                self.upstream.transport.loseConnection()


class PgProxy(Factory):
    """Listens on 127.0.0.1 and forwards every connection to ``host:port``."""

    def __init__(self, reactor: Any, host: str, port: int) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.listen_port = 0
        self.clients: set[_Client] = set()
        self.connections = 0  # every connection accepted so far
        self.cuts = 0  # how many times connections were cut (one cut aborts them all)
        self.rules: list[_Rule] = []
        self._listening: IListeningPort | None = None

    def buildProtocol(self, addr: Any) -> _Client:
        return _Client(self)

    async def start(self, port: int = 0) -> int:
        """Listen (on ``port``, or a free one the first time); the port."""
        endpoint = TCP4ServerEndpoint(self.reactor, port, interface="127.0.0.1")
        self._listening = await endpoint.listen(self)
        self.listen_port = self._listening.getHost().port  # type: ignore[attr-defined]
        return self.listen_port

    def cut(self, deliver_to: _Client | None = None, deliver: bytes | None = None) -> int:
        """Abort every open connection; how many there were."""
        self.cuts += 1
        clients = list(self.clients)
        for client in clients:
            client.abort(deliver if client is deliver_to else None)
        self.clients.clear()
        return len(clients)

    async def refuse(self) -> None:
        """The database is gone: no new connection is accepted, the open ones are cut."""
        if self._listening is not None:
            listening, self._listening = self._listening, None
            await listening.stopListening()
        self.cut()

    async def accept(self) -> None:
        """The database is back, on the same port."""
        if self._listening is None:
            await self.start(self.listen_port)

    async def stop(self) -> None:
        await self.refuse()

    def cut_on(
        self, trigger: bytes, nth: int = 1, *, at: bytes | None = None, deliver: bool = False
    ) -> Deferred[None]:
        """Cut every connection at the ``nth`` client message holding ``trigger`` (or, with
        ``at``, when that connection next sends ``at``); fires once it has cut. With
        ``deliver``, the message that cuts reaches the server before the cut."""
        rule = _Rule(trigger, nth, at, deliver, Deferred())
        self.rules.append(rule)
        return rule.fired

    def inspect(self, client: _Client, statements: list[bytes], data: bytes) -> bool:
        """Apply the rules to the statements ``client`` runs in ``data``; True if it was cut."""
        for sql in statements:
            rule = client.armed_at
            if rule is not None and rule.at is not None and rule.at in sql:
                self._fire(rule, client, data)
                return True
            for rule in list(self.rules):
                if rule.trigger not in sql:
                    continue
                rule.seen += 1
                if rule.seen < rule.nth:
                    continue
                self.rules.remove(rule)
                if rule.at is None:
                    self._fire(rule, client, data)
                    return True
                client.armed_at = rule  # this statement goes on; the cut waits for ``at``
        return False

    def _fire(self, rule: _Rule, client: _Client, data: bytes) -> None:
        client.armed_at = None
        self.cut(client, data if rule.deliver else None)
        rule.fired.callback(None)
