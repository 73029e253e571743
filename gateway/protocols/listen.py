"""A listener on a Twisted endpoint string, started and stopped as a service.

Used by the composition root (the API and metrics listeners) and by the networks (their links).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IReactorCore
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.infra.listen import listen

log = Logger()


def _exit_failure() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


class ListenerService(Service):
    """Listens on a Twisted endpoint string; exposes the bound port (``tcp:0`` in tests). With
    ``reuse_port`` other daemons of the host may listen on the same port (a factory given as a
    function listens by itself and is told so on its own).

    A listener that cannot bind stops the reactor: a daemon that is not listening where the
    operator said must not look healthy.
    """

    def __init__(
        self,
        name: str,
        description: str,
        factory: IProtocolFactory | Callable[[], Deferred[IListeningPort]],
        reactor: IReactorCore,
        *,
        reuse_port: bool = False,
    ) -> None:
        self.name = name
        self.description = description
        self.factory = factory
        self.reactor = reactor
        self.reuse_port = reuse_port  # share the port with other daemons (SO_REUSEPORT)
        self.port: IListeningPort | None = None
        self.listening: Deferred[IListeningPort] | None = None

    def startService(self) -> None:
        super().startService()
        if IProtocolFactory.providedBy(self.factory):
            self.listening = listen(
                self.reactor, self.description, self.factory, reuse_port=self.reuse_port
            )
        else:
            self.listening = self.factory()  # e.g. a TLS listener built by a network

        def bound(port: IListeningPort) -> IListeningPort:
            self.port = port
            log.info("{name} listening on {address}", name=self.name, address=port.getHost())
            return port

        def failed(failure: Failure) -> None:
            log.critical(
                "{name} cannot listen on {description}: {error}",
                name=self.name,
                description=self.description,
                error=failure.getErrorMessage(),
            )
            # twistd has no exit status of its own: shut down cleanly, then exit 1.
            self.reactor.addSystemEventTrigger("after", "shutdown", _exit_failure)
            self.reactor.callWhenRunning(self.reactor.stop)

        self.listening.addCallbacks(bound, failed)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None
