"""Mutual TLS: development certificates, the configured ``[tls]`` files, and TLS endpoints.

The CVS agency connects to the gateway with a client certificate (spec/cvs.md §4); the gateway dials
the MPN center with its own client certificate and verifies the center's (spec/mpn.md §2). Both use
the ``[tls]`` section: ``certificate`` and ``key`` (the gateway's own) and ``ca`` (signs the peers'
certificates), which each link may replace with a CA file of its own (``cvs.link.ca``,
``mpn.ca``). A CA only says a certificate is genuine, not who may speak: the CVS link admits
only the names of ``cvs.link.peers`` (:func:`peer_names`), the MPN link only ``mpn.hostname``.

Every context this module builds speaks TLS 1.3 (preferred) or TLS 1.2 with ECDHE key exchange and
AES-GCM or ChaCha20-Poly1305 (:data:`CIPHERS`), nothing older or weaker.

:func:`make_certs` writes a development CA and certificates for ``gateway-admin certs make DIR``;
each certificate carries its own name only, so no development peer can pass for another.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import crypto
from prometheus_client import Gauge
from twisted.internet import ssl
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import clientFromString, wrapClientTLS
from twisted.internet.interfaces import (
    IAcceptableCiphers,
    IListeningPort,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.protocols.tls import TLSMemoryBIOFactory

from gateway.errors import ConfigError
from gateway.infra import safe_files
from gateway.infra.listen import listen

__all__ = [
    "CERTIFICATE_NOT_AFTER",
    "CIPHERS",
    "PEERS",
    "TLSFiles",
    "TLSKey",
    "TLSMaterial",
    "client_options",
    "connect_tls_endpoint",
    "listen_tls",
    "make_certs",
    "peer_common_name",
    "peer_names",
    "server_options",
]

#: The simulated peers that ``certs make`` writes a certificate for.
PEERS = ("cvs-agency", "mpn-center", "bank", "webhook-receiver")

#: TLS 1.2 cipher suites (OpenSSL syntax): ECDHE key exchange, AES-GCM or ChaCha20-Poly1305 only.
#: TLS 1.3 suites are all AEAD and are left to OpenSSL; TLS 1.3 is negotiated when both sides
#: speak it, TLS 1.1 and older never.
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!PSK"

_ORGANIZATION = "collection-gateway (development)"
_BACKDATE = datetime.timedelta(minutes=5)
_PEER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_RESERVED = frozenset({"ca", "gateway"})
_KEY_MODE = 0o600
_CERT_MODE = 0o644

#: When the certificate a link presents stops being valid: the earliest end of validity of the
#: chain in ``[tls] certificate`` (leaf and intermediates), set each time a link loads its files
#: (at start, and whenever the files are read again). Only the links the configuration starts
#: have a series, so ``link`` also tells which links this daemon runs.
CERTIFICATE_NOT_AFTER = Gauge(
    "gateway_tls_certificate_not_after_seconds",
    "End of validity (Unix time) of the certificate chain a link presents, by link "
    "(cvs or cvs-<agency>, mpn); set when the link loads its TLS files.",
    ["link"],
)

#: The private keys that can authenticate a TLS connection.
TLSKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
_TLS_KEY_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


# --- development certificates -------------------------------------------------------------------


def make_certs(
    directory: Path,
    *,
    now: datetime.datetime,
    peers: Sequence[str] = PEERS,
    hostnames: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    days: int = 825,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write a development CA and, signed by it, a certificate for the gateway and each peer.

    Files are ``ca.pem``/``ca.key``, ``gateway.pem``/``gateway.key`` and
    ``<peer>.pem``/``<peer>.key`` (EC P-256, keys mode 0600). Each leaf names itself only: its
    file name is its CN and its one DNS subjectAltName (``gateway``, ``cvs-agency``, ...), so
    that no development peer can pass for another (a shared name such as ``localhost`` would let
    the bank's certificate answer for the MPN center). ``hostnames`` and ``ip_addresses`` add
    names to the gateway's certificate only. Every leaf is valid as both TLS server and TLS
    client, from ``now`` minus 5 minutes for ``days`` days.

    If any of the files exists, nothing is written and :class:`FileExistsError` names it, unless
    ``overwrite`` is true. Each file is written to a temporary file beside it and renamed over it.

    Returns the path of every file by name: ``ca``, ``ca_key``, ``gateway``, ``gateway_key``,
    ``<peer>``, ``<peer>_key``.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    if days <= 0:
        raise ValueError(f"days must be positive, not {days}")
    names = ["gateway", *peers]
    for name in peers:
        if not _PEER_NAME.fullmatch(name) or name in _RESERVED:
            raise ValueError(f"invalid peer name {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate peer names in {list(peers)!r}")
    addresses = [ipaddress.ip_address(a) for a in ip_addresses]

    paths: dict[str, Path] = {"ca": directory / "ca.pem", "ca_key": directory / "ca.key"}
    for name in names:
        paths[name] = directory / f"{name}.pem"
        paths[f"{name}_key"] = directory / f"{name}.key"

    directory.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        for path in paths.values():
            if path.exists() or path.is_symlink():
                raise FileExistsError(
                    errno.EEXIST, "refusing to overwrite (use overwrite)", str(path)
                )

    not_before = now.astimezone(datetime.UTC) - _BACKDATE
    not_after = now.astimezone(datetime.UTC) + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key, not_before, not_after)
    files: dict[str, tuple[bytes, bytes]] = {"ca": (_cert_pem(ca_cert), _key_pem(ca_key))}
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        extra = name == "gateway"
        cert = _leaf_certificate(
            name,
            key,
            ca_cert,
            ca_key,
            not_before,
            not_after,
            [name, *hostnames] if extra else [name],
            addresses if extra else [],
        )
        files[name] = (_cert_pem(cert), _key_pem(key))

    for name, (cert_pem, key_pem) in files.items():
        _write_atomic(paths[f"{name}_key"], key_pem, _KEY_MODE)
        _write_atomic(paths[name], cert_pem, _CERT_MODE)
    _fsync_directory(directory)
    return paths


def _ca_certificate(
    key: ec.EllipticCurvePrivateKey, not_before: datetime.datetime, not_after: datetime.datetime
) -> x509.Certificate:
    name = _name("collection-gateway development CA")
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf_certificate(
    common_name: str,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    dns_names: Sequence[str],
    addresses: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> x509.Certificate:
    public = key.public_key()
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(dns_names)]
    alt_names += [x509.IPAddress(a) for a in addresses]
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a new file beside ``path`` created with ``mode``, then rename it over."""
    safe_files.write_atomically(path, data, mode)  # exclusive, random name, never via a link


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- the configured files -----------------------------------------------------------------------


@dataclass(frozen=True)
class TLSMaterial:
    """The parsed ``[tls]`` files: trusted CA(s), our chain (leaf first) and its private key."""

    authorities: tuple[x509.Certificate, ...]
    chain: tuple[x509.Certificate, ...]
    key: TLSKey

    def private_certificate(self) -> ssl.PrivateCertificate:
        return ssl.PrivateCertificate.fromCertificateAndKeyPair(
            ssl.Certificate(crypto.X509.from_cryptography(self.chain[0])),
            ssl.KeyPair(crypto.PKey.from_cryptography_key(self.key)),
        )

    def extra_chain(self) -> list[crypto.X509]:
        return [crypto.X509.from_cryptography(c) for c in self.chain[1:]]

    def authority_certs(self) -> list[crypto.X509]:
        return [crypto.X509.from_cryptography(c) for c in self.authorities]


@dataclass(frozen=True)
class TLSFiles:
    """The ``[tls]`` section: CA bundle, the gateway's certificate (chain) and its private key.

    ``ca_option`` is the option that named ``ca`` (``tls.ca``, or a link's own ``cvs.link.ca`` /
    ``mpn.ca``), for the error that says it is wrong. ``link`` names the link the files are
    for (``cvs``, ``cvs-<agency>``, ``mpn``): each load sets its
    ``gateway_tls_certificate_not_after_seconds`` (none without a name).
    """

    ca: Path
    certificate: Path
    key: Path
    ca_option: str = "tls.ca"
    link: str = ""

    def load(self) -> TLSMaterial:
        """Read and check the three files; :class:`ConfigError` (``tls.<key>``) if one is wrong."""
        authorities = _load_certificates(self.ca_option, self.ca)
        chain = _load_certificates("tls.certificate", self.certificate)
        key = _load_key("tls.key", self.key)
        if _spki(key.public_key()) != _spki(chain[0].public_key()):
            raise ConfigError(
                "tls.key", f"{self.key} does not match the certificate in {self.certificate}"
            )
        if self.link:
            ends = min(c.not_valid_after_utc for c in chain)
            CERTIFICATE_NOT_AFTER.labels(self.link).set(ends.timestamp())
        return TLSMaterial(authorities=authorities, chain=chain, key=key)


def _read(config_path: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(config_path, f"{path}: no such file") from None
    except OSError as e:
        raise ConfigError(config_path, f"cannot read {path}: {e.strerror or e}") from None


def _load_certificates(config_path: str, path: Path) -> tuple[x509.Certificate, ...]:
    data = _read(config_path, path)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise ConfigError(config_path, f"{path} is not a PEM certificate file: {e}") from None
    if not certs:  # pragma: no cover - cryptography raises instead of returning nothing
        raise ConfigError(config_path, f"{path} holds no certificate")
    return tuple(certs)


def _load_key(config_path: str, path: Path) -> TLSKey:
    data = _read(config_path, path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(config_path, f"{path} is encrypted; give an unencrypted key") from None
    except (ValueError, crypto.Error) as e:
        raise ConfigError(config_path, f"{path} is not a PEM private key: {e}") from None
    if not isinstance(key, _TLS_KEY_TYPES):
        raise ConfigError(config_path, f"{path}: {type(key).__name__} cannot be used for TLS")
    return key


def _spki(public_key: Any) -> bytes:
    return cast(
        bytes,
        public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


# --- connection creators and endpoints ----------------------------------------------------------


def _ciphers() -> IAcceptableCiphers:
    return ssl.AcceptableCiphers.fromOpenSSLCipherString(CIPHERS)


def server_options(files: TLSFiles) -> IOpenSSLServerConnectionCreator:
    """Present our certificate and require a client certificate that chains to ``files.ca``;
    TLS 1.2 or 1.3 with :data:`CIPHERS` only (the server's order of preference)."""
    material = files.load()
    options = ssl.CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(material.key),
        certificate=crypto.X509.from_cryptography(material.chain[0]),
        extraCertChain=material.extra_chain(),
        verify=True,
        caCerts=material.authority_certs(),
        requireCertificate=True,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        acceptableCiphers=_ciphers(),
    )
    return cast(IOpenSSLServerConnectionCreator, options)


def client_options(files: TLSFiles, hostname: str) -> IOpenSSLClientConnectionCreator:
    """Present our certificate and verify the server's against ``files.ca`` and ``hostname``
    (a DNS subjectAltName of the server's certificate, or an IP address one for an address);
    TLS 1.2 or 1.3 with :data:`CIPHERS` only."""
    material = files.load()
    authorities = [ssl.Certificate(c) for c in material.authority_certs()]
    return ssl.optionsForClientTLS(
        hostname,
        trustRoot=ssl.trustRootFromCertificates(authorities),
        clientCertificate=material.private_certificate(),
        extraCertificateOptions={
            "extraCertChain": material.extra_chain(),
            "raiseMinimumTo": ssl.TLSVersion.TLSv1_2,
            "acceptableCiphers": _ciphers(),
        },
    )


def listen_tls(
    reactor: Any,
    description: str,
    factory: IProtocolFactory,
    options: IOpenSSLServerConnectionCreator,
    *,
    reuse_port: bool = False,
) -> Deferred[IListeningPort]:
    """Listen on an endpoint string such as ``tcp:7001:interface=127.0.0.1`` with TLS around it;
    with ``reuse_port``, on a port other daemons of the host share (gateway.infra.listen)."""
    _refuse_tls_description(description)
    wrapped = TLSMemoryBIOFactory(options, False, factory)
    return listen(reactor, description, wrapped, reuse_port=reuse_port)


def connect_tls_endpoint(
    reactor: Any, description: str, options: IOpenSSLClientConnectionCreator
) -> IStreamClientEndpoint:
    """A client endpoint for ``tcp:HOST:PORT`` with TLS around it (for a ``ClientService``)."""
    _refuse_tls_description(description)
    return wrapClientTLS(options, clientFromString(reactor, description))


def _refuse_tls_description(description: str) -> None:
    kind = description.split(":", 1)[0].strip().lower()
    if kind in {"ssl", "tls"}:
        raise ValueError(f"{description!r}: give a plain endpoint, TLS is added from [tls]")


@runtime_checkable
class _HasPeerCertificate(Protocol):
    def getPeerCertificate(self) -> crypto.X509 | None: ...


def _peer_certificate(transport: object) -> x509.Certificate | None:
    if not isinstance(transport, _HasPeerCertificate):
        return None
    peer = transport.getPeerCertificate()
    return None if peer is None else peer.to_cryptography()


def _common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return None
    value = names[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def peer_common_name(transport: object) -> str | None:
    """The CN of the peer's verified certificate on a TLS transport, or ``None`` if there is none.

    The certificate is only there once the handshake has verified it, so this is meant for a
    protocol's ``dataReceived`` or ``handshakeCompleted``, not ``connectionMade``.
    """
    cert = _peer_certificate(transport)
    return None if cert is None else _common_name(cert)


def peer_names(transport: object) -> tuple[str, ...]:
    """The names of the peer's verified certificate: its CN first, then its DNS
    subjectAltNames, each once; empty without a certificate (or before the handshake)."""
    cert = _peer_certificate(transport)
    if cert is None:
        return ()
    names: list[str] = []
    common_name = _common_name(cert)
    if common_name:
        names.append(common_name)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        san = None
    if san is not None:
        names += san.get_values_for_type(x509.DNSName)
    return tuple(dict.fromkeys(names))
