"""gateway.infra.tls: development certificates, the [tls] files, mutual TLS over loopback
sockets."""

from __future__ import annotations

import ipaddress
import socket
import ssl as stdlib_ssl
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store
from cryptography.x509.verification import VerificationError as X509VerificationError
from OpenSSL import SSL, crypto
from service_identity import VerificationError
from twisted.internet import (
    defer,
    protocol,
    reactor,  # noqa: TID251
    ssl,
    threads,
)
from twisted.internet.interfaces import (
    IAddress,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.python.failure import Failure

from gateway.errors import ConfigError
from gateway.infra.tls import (
    PEERS,
    TLSFiles,
    client_options,
    connect_tls_endpoint,
    listen_tls,
    make_certs,
    peer_common_name,
    server_options,
)

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
TIMEOUT = 10  # seconds; no network test may wait longer than this
NAMES = ("ca", "gateway", *PEERS)


def files_for(paths: dict[str, Path], name: str) -> TLSFiles:
    return TLSFiles(ca=paths["ca"], certificate=paths[name], key=paths[f"{name}_key"])


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    """Certificates valid right now, for real handshakes."""
    return make_certs(tmp_path / "tls", now=datetime.now(UTC))


@pytest.fixture
def other_certs(tmp_path: Path) -> dict[str, Path]:
    """A second, unrelated development CA and its certificates."""
    return make_certs(tmp_path / "other", now=datetime.now(UTC))


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


# --- make_certs ---------------------------------------------------------------------------------


def test_make_certs_writes_every_file_with_its_permissions(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "tls"  # created, parents too

    paths = make_certs(directory, now=NOW)

    expected = {n: directory / f"{n}.pem" for n in NAMES}
    expected |= {f"{n}_key": directory / f"{n}.key" for n in NAMES}
    assert paths == expected
    assert sorted(p.name for p in directory.iterdir()) == sorted(p.name for p in expected.values())
    for name in NAMES:
        key_mode = stat.S_IMODE(paths[f"{name}_key"].stat().st_mode)
        assert key_mode == 0o600, (name, oct(key_mode))
        cert_mode = stat.S_IMODE(paths[name].stat().st_mode)
        assert cert_mode & 0o022 == 0, (name, oct(cert_mode))
        key = load_pem_private_key(paths[f"{name}_key"].read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, ec.SECP256R1)
        assert key.public_key() == load_cert(paths[name]).public_key()


def test_make_certs_validity_comes_from_now(tmp_path: Path) -> None:
    paths = make_certs(tmp_path, now=NOW, days=30)

    for name in NAMES:
        cert = load_cert(paths[name])
        assert cert.not_valid_before_utc == datetime(2026, 11, 23, 9, 25, tzinfo=UTC)
        assert cert.not_valid_after_utc == datetime(2026, 12, 23, 9, 30, tzinfo=UTC)


def test_make_certs_default_validity_is_825_days(tmp_path: Path) -> None:
    paths = make_certs(tmp_path, now=NOW)

    assert load_cert(paths["gateway"]).not_valid_after_utc == NOW + timedelta(days=825)


def test_make_certs_extensions(tmp_path: Path) -> None:
    paths = make_certs(
        tmp_path,
        now=NOW,
        peers=["cvs-agency"],
        hostnames=["localhost", "gw.test"],
        ip_addresses=["127.0.0.1", "::1"],
    )

    ca = load_cert(paths["ca"])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    assert ca.subject == ca.issuer
    for name in ("gateway", "cvs-agency"):
        leaf = load_cert(paths[name])
        assert leaf.issuer == ca.subject
        assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    # the extra names and addresses are the gateway's only
    gateway = load_cert(paths["gateway"])
    san = gateway.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"gateway", "localhost", "gw.test"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    agency = load_cert(paths["cvs-agency"])
    san = agency.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.DNSName("cvs-agency")]


def test_each_development_certificate_carries_its_own_name_only(tmp_path: Path) -> None:
    """Issue 14: with a shared name (``localhost`` in each) the bank's certificate passed for the
    MPN center's, and any of them for the agency's."""
    paths = make_certs(tmp_path, now=NOW)

    for name in ("gateway", *PEERS):
        leaf = load_cert(paths[name])
        common_names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [n.value for n in common_names] == [name]
        assert list(san) == [x509.DNSName(name)], name  # no localhost, no 127.0.0.1


def test_make_certs_refuses_to_overwrite(tmp_path: Path) -> None:
    paths = make_certs(tmp_path, now=NOW)
    before = {name: path.read_bytes() for name, path in paths.items()}

    with pytest.raises(FileExistsError) as info:
        make_certs(tmp_path, now=NOW)

    assert info.value.filename == str(paths["ca"])
    assert {name: path.read_bytes() for name, path in paths.items()} == before


def test_make_certs_refuses_if_any_one_file_exists(tmp_path: Path) -> None:
    (tmp_path / "bank.key").write_bytes(b"keep me")

    with pytest.raises(FileExistsError, match=r"bank\.key"):
        make_certs(tmp_path, now=NOW)

    assert [p.name for p in tmp_path.iterdir()] == ["bank.key"]
    assert (tmp_path / "bank.key").read_bytes() == b"keep me"


def test_make_certs_overwrites_when_asked(tmp_path: Path) -> None:
    paths = make_certs(tmp_path, now=NOW)
    old_ca = paths["ca"].read_bytes()
    paths["bank_key"].chmod(0o644)

    again = make_certs(tmp_path, now=NOW, overwrite=True)

    assert again == paths
    assert paths["ca"].read_bytes() != old_ca
    assert stat.S_IMODE(paths["bank_key"].stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


def test_make_certs_rejects_naive_now_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="aware"):
        make_certs(tmp_path, now=datetime(2026, 11, 23))
    with pytest.raises(ValueError, match="peer name"):
        make_certs(tmp_path, now=NOW, peers=["../evil"])
    with pytest.raises(ValueError, match="peer name"):
        make_certs(tmp_path, now=NOW, peers=["ca"])
    assert list(tmp_path.iterdir()) == []


def test_chain_verifies_against_its_ca_only(tmp_path: Path) -> None:
    paths = make_certs(tmp_path / "a", now=NOW)
    other = make_certs(tmp_path / "b", now=NOW)
    store = Store([load_cert(paths["ca"])])
    at = NOW + timedelta(days=1)
    client_verifier = PolicyBuilder().store(store).time(at).build_client_verifier()

    for name in ("gateway", *PEERS):
        leaf = load_cert(paths[name])
        verified = client_verifier.verify(leaf, [])
        assert verified.chain == [leaf, load_cert(paths["ca"])]
        server_verifier = (
            PolicyBuilder().store(store).time(at).build_server_verifier(x509.DNSName(name))
        )
        assert server_verifier.verify(leaf, []) == [leaf, load_cert(paths["ca"])]
        with pytest.raises(X509VerificationError):
            client_verifier.verify(load_cert(other[name]), [])

    expired = PolicyBuilder().store(store).time(NOW + timedelta(days=826))
    with pytest.raises(X509VerificationError):
        expired.build_client_verifier().verify(load_cert(paths["gateway"]), [])


# --- TLSFiles.load ------------------------------------------------------------------------------


def test_load_reads_matching_files(certs: dict[str, Path]) -> None:
    material = files_for(certs, "gateway").load()

    assert material.authorities == (load_cert(certs["ca"]),)
    assert material.chain == (load_cert(certs["gateway"]),)
    assert material.key.public_key() == load_cert(certs["gateway"]).public_key()


def test_load_refuses_a_key_that_does_not_match(certs: dict[str, Path]) -> None:
    files = TLSFiles(ca=certs["ca"], certificate=certs["gateway"], key=certs["bank_key"])

    with pytest.raises(ConfigError) as info:
        files.load()

    assert info.value.path == "tls.key"
    assert "does not match" in info.value.message


def test_load_names_a_missing_ca(certs: dict[str, Path], tmp_path: Path) -> None:
    files = TLSFiles(tmp_path / "nope.pem", certs["gateway"], certs["gateway_key"])

    with pytest.raises(ConfigError) as info:
        files.load()

    assert info.value.path == "tls.ca"
    assert "nope.pem" in info.value.message


@pytest.mark.parametrize(
    ("which", "config_path"),
    [("ca", "tls.ca"), ("certificate", "tls.certificate"), ("key", "tls.key")],
)
def test_load_names_a_file_that_is_not_pem(
    certs: dict[str, Path], tmp_path: Path, which: str, config_path: str
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"this is not PEM\n")
    files = {
        "ca": certs["ca"],
        "certificate": certs["gateway"],
        "key": certs["gateway_key"],
        which: garbage,
    }

    with pytest.raises(ConfigError) as info:
        TLSFiles(**files).load()

    assert info.value.path == config_path


def test_load_names_an_unreadable_file(certs: dict[str, Path], tmp_path: Path) -> None:
    files = TLSFiles(certs["ca"], tmp_path, certs["gateway_key"])  # a directory

    with pytest.raises(ConfigError) as info:
        files.load()

    assert info.value.path == "tls.certificate"


# --- mutual TLS over loopback -------------------------------------------------------------------


@dataclass
class Outcome:
    """What each side of one connection saw."""

    server_received: bytes = b""
    server_peer: str | None = None
    client_received: bytes = b""
    client_peer: str | None = None
    client_lost: Failure | None = None
    connect_failed: Failure | None = None
    server_lost: defer.Deferred[None] = field(default_factory=defer.Deferred)


class Build(protocol.Factory):
    def __init__(self, make: Callable[[], protocol.Protocol]) -> None:
        self.make = make

    def buildProtocol(self, addr: IAddress) -> protocol.Protocol:
        built = self.make()
        built.factory = self
        return built


class EchoServer(protocol.Protocol):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome

    def dataReceived(self, data: bytes) -> None:
        self.outcome.server_peer = peer_common_name(self.transport)
        self.outcome.server_received += data
        assert self.transport is not None
        self.transport.write(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.outcome.server_lost.callback(None)


class HelloClient(protocol.Protocol):
    """Says hello, closes once the echo is complete, and reports when the connection is gone."""

    def __init__(self, outcome: Outcome, lost: defer.Deferred[None]) -> None:
        self.outcome = outcome
        self.lost = lost

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(b"hello")

    def dataReceived(self, data: bytes) -> None:
        self.outcome.client_peer = peer_common_name(self.transport)
        self.outcome.client_received += data
        if self.outcome.client_received == b"hello":
            assert self.transport is not None
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.outcome.client_lost = reason
        self.lost.callback(None)


async def exchange(
    server: IOpenSSLServerConnectionCreator,
    client: IOpenSSLClientConnectionCreator,
) -> Outcome:
    """Listen with ``server`` on 127.0.0.1:0, connect with ``client``, send b"hello", wait."""
    outcome = Outcome()
    port = await listen_tls(
        reactor,
        "tcp:0:interface=127.0.0.1",
        Build(lambda: EchoServer(outcome)),
        server,
    )
    try:
        client_lost: defer.Deferred[None] = defer.Deferred()
        endpoint = connect_tls_endpoint(reactor, f"tcp:127.0.0.1:{port.getHost().port}", client)
        factory = Build(lambda: HelloClient(outcome, client_lost))
        try:
            await endpoint.connect(factory).addTimeout(TIMEOUT, reactor)
        except defer.TimeoutError:
            raise
        except Exception:  # refused before the client protocol existed
            outcome.connect_failed = Failure()
            return outcome
        await client_lost.addTimeout(TIMEOUT, reactor)
        await outcome.server_lost.addTimeout(TIMEOUT, reactor)
        return outcome
    finally:
        await defer.maybeDeferred(port.stopListening)


@pytest_twisted.ensureDeferred
async def test_mutual_tls_echo_knows_the_peer(certs: dict[str, Path]) -> None:
    outcome = await exchange(
        server_options(files_for(certs, "gateway")),
        client_options(files_for(certs, "cvs-agency"), "gateway"),
    )

    assert outcome.connect_failed is None
    assert outcome.server_received == b"hello"
    assert outcome.client_received == b"hello"
    assert outcome.server_peer == "cvs-agency"
    assert outcome.client_peer == "gateway"


@pytest_twisted.ensureDeferred
async def test_gateway_dials_a_center_at_an_address_by_its_name(certs: dict[str, Path]) -> None:
    outcome = await exchange(  # connects to 127.0.0.1, verifies the name mpn-center
        server_options(files_for(certs, "mpn-center")),
        client_options(files_for(certs, "gateway"), "mpn-center"),
    )

    assert outcome.client_received == b"hello"
    assert outcome.server_peer == "gateway"
    assert outcome.client_peer == "mpn-center"


def assert_refused(outcome: Outcome) -> None:
    """The TLS handshake failed: nothing reached the server's protocol and nothing came back."""
    assert outcome.server_received == b""
    assert outcome.client_received == b""
    assert outcome.server_peer is None
    assert outcome.connect_failed is None  # TCP connected; it is TLS that said no
    assert outcome.client_lost is not None
    assert outcome.client_lost.check(SSL.Error, VerificationError), outcome.client_lost


@pytest_twisted.ensureDeferred
async def test_client_without_certificate_is_refused(certs: dict[str, Path]) -> None:
    ca = ssl.Certificate.loadPEM(certs["ca"].read_bytes())
    anonymous = ssl.optionsForClientTLS("gateway", trustRoot=ca)  # trusts the server, no cert

    outcome = await exchange(server_options(files_for(certs, "gateway")), anonymous)

    assert_refused(outcome)


@pytest_twisted.ensureDeferred
async def test_client_with_certificate_from_another_ca_is_refused(
    certs: dict[str, Path], other_certs: dict[str, Path]
) -> None:
    # The client trusts the gateway's CA, but its own certificate is signed by another CA.
    stranger = TLSFiles(
        ca=certs["ca"], certificate=other_certs["cvs-agency"], key=other_certs["cvs-agency_key"]
    )

    outcome = await exchange(
        server_options(files_for(certs, "gateway")), client_options(stranger, "gateway")
    )

    assert_refused(outcome)


@pytest_twisted.ensureDeferred
async def test_gateway_refuses_a_center_from_another_ca(
    certs: dict[str, Path], other_certs: dict[str, Path]
) -> None:
    # An impostor center that would accept the gateway but presents a foreign certificate.
    impostor = TLSFiles(
        ca=certs["ca"], certificate=other_certs["mpn-center"], key=other_certs["mpn-center_key"]
    )

    outcome = await exchange(
        server_options(impostor), client_options(files_for(certs, "gateway"), "mpn-center")
    )

    assert_refused(outcome)


@pytest_twisted.ensureDeferred
async def test_gateway_refuses_a_center_with_the_wrong_name(certs: dict[str, Path]) -> None:
    outcome = await exchange(
        server_options(files_for(certs, "mpn-center")),
        client_options(files_for(certs, "gateway"), "center.example.com"),
    )

    assert_refused(outcome)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("impostor", ["bank", "webhook-receiver", "cvs-agency"])
async def test_gateway_refuses_another_peer_of_its_ca_as_the_center(
    certs: dict[str, Path], impostor: str
) -> None:
    """Issue 14: a certificate of the same CA made for another peer is not the center's."""
    outcome = await exchange(
        server_options(files_for(certs, impostor)),
        client_options(files_for(certs, "gateway"), "mpn-center"),
    )

    assert_refused(outcome)


def test_plain_endpoint_strings_only(certs: dict[str, Path]) -> None:
    options = client_options(files_for(certs, "gateway"), "mpn-center")

    with pytest.raises(ValueError, match="plain endpoint"):
        connect_tls_endpoint(reactor, "ssl:127.0.0.1:7002", options)


def test_peer_common_name_without_tls() -> None:
    assert peer_common_name(object()) is None


# --- protocol versions and ciphers (issue 14, finding 10) ---------------------------------------


@dataclass(frozen=True)
class Handshake:
    """What a stdlib ``ssl`` client (a real OpenSSL client, not Twisted) got from a server."""

    version: str | None = None
    cipher: str | None = None
    error: str | None = None


def stdlib_client(
    port: int,
    paths: dict[str, Path],
    *,
    ciphers: str | None = None,
    maximum: stdlib_ssl.TLSVersion | None = None,
) -> Handshake:
    """Connect as the agency with only ``ciphers`` / versions up to ``maximum`` on offer."""
    context = stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(paths["ca"])
    context.load_cert_chain(paths["cvs-agency"], paths["cvs-agency_key"])
    if maximum is not None:
        context.set_ciphers("ALL:@SECLEVEL=0")  # let the client itself offer old versions
        context.minimum_version = stdlib_ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = maximum
    if ciphers is not None:
        context.maximum_version = stdlib_ssl.TLSVersion.TLSv1_2  # 1.3 suites cannot be limited
        context.set_ciphers(ciphers)
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname="gateway") as tls,
        ):
            tls.sendall(b"hello")
            tls.recv(5)
            cipher = tls.cipher()
            return Handshake(tls.version(), cipher[0] if cipher else None)
    except (stdlib_ssl.SSLError, OSError) as e:
        return Handshake(error=str(e))


async def against_gateway(paths: dict[str, Path], **offer: Any) -> tuple[Handshake, Outcome]:
    outcome = Outcome()
    port = await listen_tls(
        reactor,
        "tcp:0:interface=127.0.0.1",
        Build(lambda: EchoServer(outcome)),
        server_options(files_for(paths, "gateway")),
    )
    try:
        result = await threads.deferToThread(stdlib_client, port.getHost().port, paths, **offer)
    finally:
        await defer.maybeDeferred(port.stopListening)
    return result, outcome


@pytest_twisted.ensureDeferred
async def test_tls_13_is_preferred(certs: dict[str, Path]) -> None:
    result, outcome = await against_gateway(certs)

    assert result == Handshake("TLSv1.3", result.cipher)
    assert outcome.server_received == b"hello"


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "cipher", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"]
)
async def test_tls_12_with_ecdhe_and_an_aead_cipher_is_accepted(
    certs: dict[str, Path], cipher: str
) -> None:
    result, _ = await against_gateway(certs, ciphers=cipher)

    assert result == Handshake("TLSv1.2", cipher)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "cipher",
    [
        "ECDHE-ECDSA-AES128-SHA256",  # CBC
        "ECDHE-ECDSA-AES256-SHA",  # CBC, SHA-1
        "ECDHE-ECDSA-AES256-SHA384",
    ],
)
async def test_a_client_offering_only_a_weak_cipher_is_refused(
    certs: dict[str, Path], cipher: str
) -> None:
    result, outcome = await against_gateway(certs, ciphers=cipher)

    assert result.error is not None and result.version is None
    assert "handshake failure" in result.error or "no shared cipher" in result.error, result
    assert outcome.server_received == b""


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("version", [stdlib_ssl.TLSVersion.TLSv1_1, stdlib_ssl.TLSVersion.TLSv1])
async def test_a_client_offering_only_tls_11_or_older_is_refused(
    certs: dict[str, Path], version: stdlib_ssl.TLSVersion
) -> None:
    result, outcome = await against_gateway(certs, maximum=version)

    assert result.error is not None and result.version is None
    assert "protocol version" in result.error, result  # the server's alert
    assert outcome.server_received == b""


@pytest_twisted.ensureDeferred
async def test_gateway_refuses_a_server_offering_only_a_weak_cipher(
    certs: dict[str, Path],
) -> None:
    material = files_for(certs, "mpn-center").load()
    weak_center = ssl.CertificateOptions(  # the right name and CA, a CBC cipher only
        privateKey=crypto.PKey.from_cryptography_key(material.key),
        certificate=crypto.X509.from_cryptography(material.chain[0]),
        acceptableCiphers=ssl.AcceptableCiphers.fromOpenSSLCipherString(
            "ECDHE-ECDSA-AES128-SHA256"
        ),
        lowerMaximumSecurityTo=ssl.TLSVersion.TLSv1_2,
    )

    outcome = await exchange(weak_center, client_options(files_for(certs, "gateway"), "mpn-center"))

    assert_refused(outcome)
