"""A reload of the 速報 link's TLS (gateway.infra.reload.ServerTLS) over real mutual TLS on
loopback: established connections keep working, new ones follow the new names and files, and
a bad file changes nothing."""

from __future__ import annotations

import socket
import ssl as stdlib_ssl
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, task, threads
from twisted.internet.interfaces import IListeningPort

from gateway.errors import ConfigError
from gateway.infra.reload import ServerTLS
from gateway.infra.tls import TLSFiles, make_certs
from gateway.protocols.cvs import CvsLinkFactory, listen_cvs_link
from simulators.cvs_link import start_agency_link

TIMEOUT = 10
OLD, NEW = "cvs-agency", "cvs-agency-2"


def record(n: int) -> bytes:
    return (b"201" + b"20261123" + b"0930" + b"1" + f"{n:044d}".encode()).ljust(120, b" ")


def files(paths: dict[str, Path], name: str, ca: Path | None = None) -> TLSFiles:
    return TLSFiles(ca or paths["ca"], paths[name], paths[f"{name}_key"])


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    return make_certs(tmp_path / "tls", now=datetime.now(UTC), peers=(OLD, NEW))


@pytest.fixture
def other_ca(tmp_path: Path) -> dict[str, Path]:
    """Another CA, with a certificate for the same names."""
    return make_certs(tmp_path / "other", now=datetime.now(UTC), peers=(OLD, NEW))


def one_record(port: int, paths: dict[str, Path], name: str) -> str:
    """A new connection as ``name`` (its certificate from ``paths``) sends one DT: the ack's
    result, or ``closed`` if the gateway closed the connection without answering."""
    context = stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(paths["ca"])
    context.load_cert_chain(paths[name], paths[f"{name}_key"])
    payload = b"DT" + b"0000000001" + record(1)
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname="gateway") as tls,
        ):
            tls.sendall(struct.pack("!H", len(payload)) + payload)
            data = b""
            while len(data) < 2 + 14:
                chunk = tls.recv(64)
                if not chunk:
                    return "closed"
                data += chunk
            assert data[2:14] == b"AK0000000001", data
            return data[14:16].decode()
    except (stdlib_ssl.SSLError, OSError):
        return "closed"


def factory_of(port: IListeningPort) -> CvsLinkFactory:
    factory = port.factory.wrappedFactory  # type: ignore[attr-defined]
    assert isinstance(factory, CvsLinkFactory)
    return factory


async def until_closed(port: IListeningPort) -> None:
    from twisted.internet import reactor  # noqa: TID251

    for _ in range(TIMEOUT * 50):
        if factory_of(port).connections == 0:
            return
        await task.deferLater(reactor, 0.02)
    raise AssertionError("the gateway kept a connection open")


@pytest_twisted.ensureDeferred
async def test_new_peers_apply_to_new_connections_and_established_ones_stay(
    certs: dict[str, Path],
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    submitted: list[str] = []

    def submit(record: bytes, source: str) -> defer.Deferred[str]:
        submitted.append(source)
        return defer.succeed("00")

    tls = ServerTLS(files(certs, "gateway"), [OLD], option="cvs.link.peers")
    port = await listen_cvs_link(reactor, "tcp:0:interface=127.0.0.1", tls, submit, 60.0)
    number = port.getHost().port
    link = start_agency_link(reactor, f"tcp:127.0.0.1:{number}", files(certs, OLD), "gateway")
    try:
        assert await link.send(record(1)).addTimeout(TIMEOUT, reactor) == "00"

        tls.prepare(files(certs, "gateway"), [NEW])()  # OLD is no longer a peer

        # The established connection keeps working...
        assert await link.send(record(2)).addTimeout(TIMEOUT, reactor) == "00"
        assert factory_of(port).connections == 1
        # ...a new one as OLD is refused, one as NEW accepted.
        assert await threads.deferToThread(one_record, number, certs, OLD) == "closed"
        assert await threads.deferToThread(one_record, number, certs, NEW) == "00"
        assert submitted == [f"link:{OLD}", f"link:{OLD}", f"link:{NEW}"]

        # A bad file refuses the reload whole: neither the files nor the names change.
        missing = TLSFiles(
            certs["ca"], certs["gateway"].with_name("gone.pem"), certs["gateway_key"]
        )
        with pytest.raises(ConfigError, match=r"tls\.certificate"):
            tls.prepare(missing, [OLD])
        with pytest.raises(ConfigError, match=r"cvs\.link\.peers"):
            tls.prepare(files(certs, "gateway"), [])
        assert tls.peers == (NEW,)
        assert await threads.deferToThread(one_record, number, certs, OLD) == "closed"
        assert await threads.deferToThread(one_record, number, certs, NEW) == "00"
        assert await link.send(record(3)).addTimeout(TIMEOUT, reactor) == "00"
    finally:
        await link.stop().addTimeout(TIMEOUT, reactor)
        await until_closed(port)
        await defer.maybeDeferred(port.stopListening)


@pytest_twisted.ensureDeferred
async def test_a_new_ca_and_certificate_apply_to_new_handshakes(
    certs: dict[str, Path], other_ca: dict[str, Path]
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    def submit(record: bytes, source: str) -> defer.Deferred[str]:
        return defer.succeed("00")

    tls = ServerTLS(files(certs, "gateway"), [OLD], option="cvs.link.peers")
    port = await listen_cvs_link(reactor, "tcp:0:interface=127.0.0.1", tls, submit, 60.0)
    number = port.getHost().port
    link = start_agency_link(reactor, f"tcp:127.0.0.1:{number}", files(certs, OLD), "gateway")
    try:
        assert await link.send(record(1)).addTimeout(TIMEOUT, reactor) == "00"

        tls.prepare(files(other_ca, "gateway"), [OLD])()  # the other CA, its gateway certificate

        assert await link.send(record(2)).addTimeout(TIMEOUT, reactor) == "00"
        assert await threads.deferToThread(one_record, number, certs, OLD) == "closed"
        assert await threads.deferToThread(one_record, number, other_ca, OLD) == "00"
    finally:
        await link.stop().addTimeout(TIMEOUT, reactor)
        await until_closed(port)
        await defer.maybeDeferred(port.stopListening)
