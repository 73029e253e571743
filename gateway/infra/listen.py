"""Listening on an endpoint string, alone or sharing the port with other daemons (SO_REUSEPORT).

Twisted's ``serverFromString`` never sets ``SO_REUSEPORT``. With ``reuse_port`` the socket is
made here (``tcp:`` or ``tcp6:`` endpoints only), bound and listening, and handed to the
reactor with ``adoptStreamPort``: several daemons on one host then listen on the same address
and the kernel spreads the new connections between them (docs/operations.md, "More than one
daemon"). Without it, the plain endpoint, as before.
"""

from __future__ import annotations

import socket
from typing import Any, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, serverFromString
from twisted.internet.interfaces import IListeningPort, IProtocolFactory

REUSE_PORT_SUPPORTED = hasattr(socket, "SO_REUSEPORT")


def reuse_port_problem(description: str) -> str | None:
    """Why ``description`` cannot be listened on with ``SO_REUSEPORT``, or ``None`` if it can."""
    if not REUSE_PORT_SUPPORTED:
        return "SO_REUSEPORT is not available on this system"
    try:
        endpoint = serverFromString(None, description)
    except Exception as e:
        return f"{description!r} is not a Twisted endpoint: {e}"
    if not isinstance(endpoint, TCP4ServerEndpoint | TCP6ServerEndpoint):
        return f"needs a tcp: or tcp6: listen endpoint, not {description!r}"
    return None


def _bound_socket(description: str) -> tuple[socket.socket, socket.AddressFamily]:
    endpoint = serverFromString(None, description)
    if not isinstance(endpoint, TCP4ServerEndpoint | TCP6ServerEndpoint):
        raise ValueError(f"SO_REUSEPORT needs a tcp: or tcp6: endpoint, not {description!r}")
    # What the endpoint parsed: its port, interface and backlog (the same attributes as
    # gateway.config.table reads to check the port).
    family = socket.AF_INET6 if isinstance(endpoint, TCP6ServerEndpoint) else socket.AF_INET
    interface = endpoint._interface or ("::" if family == socket.AF_INET6 else "")
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted's own ports
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((interface, endpoint._port))
        sock.listen(endpoint._backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, family


def listen_reuse_port(
    reactor: Any, description: str, factory: IProtocolFactory
) -> Deferred[IListeningPort]:
    """Listen on the ``tcp:``/``tcp6:`` endpoint ``description`` with ``SO_REUSEPORT`` set.

    A failure to bind (another process holds the port without the option) is the Deferred's
    failure, as with an endpoint."""
    try:
        sock, family = _bound_socket(description)
    except Exception:
        return fail()
    try:
        # The reactor duplicates the descriptor; ours is closed once it has its own.
        port = reactor.adoptStreamPort(sock.fileno(), family, factory)
    except Exception:
        return fail()
    finally:
        sock.close()
    return succeed(cast(IListeningPort, port))


def listen(
    reactor: Any, description: str, factory: IProtocolFactory, *, reuse_port: bool = False
) -> Deferred[IListeningPort]:
    """Listen on ``description``: through ``serverFromString``, or sharing it if ``reuse_port``."""
    if reuse_port:
        return listen_reuse_port(reactor, description, factory)
    return cast("Deferred[IListeningPort]", serverFromString(reactor, description).listen(factory))
