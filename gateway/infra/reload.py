"""TLS settings a reload can replace without dropping a connection (SIGHUP, gateway.app.reload).

A listener or a client is given one of these holders instead of fixed options. Each new
connection asks the holder for its TLS connection, so it takes the settings current when it
is made; a connection already made keeps the OpenSSL context it was made with, and stays up.

A reload is two steps, so that it is never half applied: :meth:`ServerTLS.prepare` (or
:meth:`ClientTLS.prepare`) reads and checks the new files and names and raises
:class:`gateway.errors.ConfigError` if one is wrong, changing nothing; the function it returns
puts them in force and cannot fail. The caller prepares every link before it applies any.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from OpenSSL.SSL import Connection
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

from gateway.errors import ConfigError
from gateway.infra.tls import TLSFiles, client_options, server_options

__all__ = ["ClientTLS", "ServerTLS"]


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """A listener's TLS (:func:`gateway.infra.tls.server_options` of ``files``) and the
    certificate names it admits (``peers``), replaced together by a reload."""

    def __init__(self, files: TLSFiles, peers: Collection[str], *, option: str) -> None:
        self.option = option  # the option that names the peers, for the error that says so
        self.files = files
        self.peers = _peers(peers, option)
        self.options = server_options(files)

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> Connection:
        connection: Connection = self.options.serverConnectionForTLS(tlsProtocol)
        return connection

    def prepare(self, files: TLSFiles, peers: Collection[str]) -> Callable[[], None]:
        """Load ``files`` and check ``peers`` now (:class:`ConfigError`, nothing changed); the
        function returned puts both in force for the connections made after it."""
        names = _peers(peers, self.option)
        options = server_options(files)

        def apply() -> None:
            self.files, self.peers, self.options = files, names, options

        return apply


@implementer(IOpenSSLClientConnectionCreator)
class ClientTLS:
    """A client's TLS (:func:`gateway.infra.tls.client_options` of ``files``) and the name the
    server's certificate must carry (``hostname``), replaced together by a reload."""

    def __init__(self, files: TLSFiles, hostname: str) -> None:
        self.files = files
        self.hostname = hostname
        self.options = client_options(files, hostname)

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> Connection:
        connection: Connection = self.options.clientConnectionForTLS(tlsProtocol)
        return connection

    def prepare(self, files: TLSFiles, hostname: str) -> Callable[[], None]:
        """Load ``files`` now (:class:`ConfigError`, nothing changed); the function returned
        puts them and ``hostname`` in force for the connections made after it."""
        options = client_options(files, hostname)

        def apply() -> None:
            self.files, self.hostname, self.options = files, hostname, options

        return apply


def _peers(peers: Collection[str], option: str) -> tuple[str, ...]:
    names = tuple(peers)
    if not names:
        raise ConfigError(option, "must name at least one certificate name")
    return names
