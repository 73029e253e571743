"""gateway.infra.reload.ClientTLS over real TLS on loopback: a reload changes the name and the
CA the next connection checks; a bad file changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, protocol
from twisted.internet.endpoints import connectProtocol
from twisted.python.failure import Failure

from gateway.errors import ConfigError
from gateway.infra.reload import ClientTLS
from gateway.infra.tls import TLSFiles, connect_tls_endpoint, listen_tls, make_certs, server_options

TIMEOUT = 10


class Echo(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Probe(protocol.Protocol):
    """Sends ``ping``; fires ``done`` with ``ok`` on the echo, or ``refused`` if the connection
    is lost first (the server's certificate was not accepted)."""

    def __init__(self) -> None:
        self.done: defer.Deferred[str] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(b"ping")

    def dataReceived(self, data: bytes) -> None:
        if not self.done.called:
            self.done.callback("ok")
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        if not self.done.called:
            self.done.callback("refused")


@pytest_twisted.ensureDeferred
async def test_the_next_connection_takes_the_new_name_and_a_bad_file_changes_nothing(
    tmp_path: Path,
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    certs = make_certs(tmp_path / "tls", now=datetime.now(UTC))
    ours = TLSFiles(certs["ca"], certs["gateway"], certs["gateway_key"])
    center = TLSFiles(certs["ca"], certs["mpn-center"], certs["mpn-center_key"])
    factory = protocol.Factory.forProtocol(Echo)
    port = await listen_tls(reactor, "tcp:0:interface=127.0.0.1", factory, server_options(center))
    address = f"tcp:127.0.0.1:{port.getHost().port}"

    async def probe(tls: ClientTLS) -> str:
        p = Probe()
        await connectProtocol(connect_tls_endpoint(reactor, address, tls), p)
        return await p.done.addTimeout(TIMEOUT, reactor)

    try:
        tls = ClientTLS(ours, "mpn-center")
        assert await probe(tls) == "ok"

        tls.prepare(ours, "bank")()  # the center's certificate does not name the bank
        assert await probe(tls) == "refused"

        missing = TLSFiles(certs["ca"], tmp_path / "gone.pem", certs["gateway_key"])
        with pytest.raises(ConfigError, match=r"tls\.certificate"):
            tls.prepare(missing, "mpn-center")
        assert tls.hostname == "bank"
        assert await probe(tls) == "refused"

        tls.prepare(ours, "mpn-center")()
        assert await probe(tls) == "ok"
    finally:
        await defer.maybeDeferred(port.stopListening)
