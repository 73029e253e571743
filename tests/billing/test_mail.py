"""The page-URL e-mail of a new bill, through a real local SMTP server (Twisted's ESMTP)."""

from __future__ import annotations

import email
import email.policy
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import select
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import succeed
from twisted.internet.task import deferLater
from twisted.mail import smtp
from zope.interface import implementer

from gateway.billing.notify import describe_failure
from gateway.store import create_db_engine
from gateway.store.schema import notifications
from tests.conftest import Running, logged
from tests.test_api import bill_body


@implementer(smtp.IMessage)
class _Message:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server
        self.lines: list[bytes] = []

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)

    def eomReceived(self) -> Any:
        raw = b"\n".join(self.lines)
        self.server.received.append(email.message_from_bytes(raw, policy=email.policy.default))
        return succeed(None)

    def connectionLost(self) -> None:
        self.lines = []


@implementer(smtp.IMessageDelivery)
class _Delivery:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    def receivedHeader(self, helo: Any, origin: Any, recipients: Any) -> bytes:
        return b"Received: from the gateway by the test relay"

    def validateFrom(self, helo: Any, origin: Any) -> Any:
        return origin

    def validateTo(self, user: Any) -> Any:
        self.server.attempts += 1
        if self.server.refuse > 0:
            self.server.refuse -= 1
            raise smtp.SMTPBadRcpt(user, code=451, resp="mailbox busy, try again later")
        return lambda: _Message(self.server)


@dataclass
class SmtpServer:
    port: int = 0
    refuse: int = 0  # refuse this many recipients first
    attempts: int = 0
    received: list[EmailMessage] = field(default_factory=list)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    from twisted.internet import reactor  # noqa: TID251 - a real server for the real client

    server = SmtpServer()
    factory = smtp.SMTPFactory()
    factory.protocol = smtp.ESMTP

    def build(addr: Any) -> Any:
        proto = smtp.ESMTP()
        proto.factory = factory
        proto.delivery = _Delivery(server)
        proto.challengers = {}
        return proto

    factory.buildProtocol = build  # type: ignore[method-assign]
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    server.port = port.getHost().port
    yield server
    port.stopListening()


@pytest.fixture
def retry_base() -> float:
    return 0.1


async def until(check: Any, timeout: float = 10.0) -> None:
    from twisted.internet import reactor  # noqa: TID251

    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError("timed out")


def rows(running: Running) -> list[Any]:
    engine = create_db_engine(running.config.database.url, 1)
    with engine.connect() as conn:
        found = conn.execute(select(notifications).order_by(notifications.c.id)).all()
    engine.dispose()
    return list(found)


@pytest_twisted.ensureDeferred
async def test_a_new_bill_with_an_email_sends_its_page_url(
    gateway: Running, smtp_server: SmtpServer
) -> None:
    acme = gateway.onboard("acme")
    status, bill, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("M-1"))
    assert status == 201
    await until(lambda: len(smtp_server.received) == 1)
    (msg,) = smtp_server.received
    assert msg["To"] == "taro@example.jp"
    assert msg["From"].addresses[0].addr_spec == "billing@example.jp"
    assert msg["Subject"] == "【acme 株式会社】お支払いのご案内（M-1）"
    text = msg.get_content()
    assert "山田 太郎 様" in text and "¥5,400" in text
    assert bill["page_url"] in text
    await until(lambda: [r.status for r in rows(gateway)] == ["sent"])

    # A bill without an e-mail address sends nothing; a replay of M-1 sends nothing more.
    body = bill_body("M-2")
    del body["customer"]["email"]
    assert (await gateway.request("POST", "/v1/bills", acme, body))[0] == 201
    assert (await gateway.request("POST", "/v1/bills", acme, bill_body("M-1")))[0] == 200
    assert len(rows(gateway)) == 1 and len(smtp_server.received) == 1


@pytest_twisted.ensureDeferred
async def test_a_refusing_relay_is_retried_then_given_up(
    gateway: Running, smtp_server: SmtpServer
) -> None:
    acme = gateway.onboard("acme")
    smtp_server.refuse = 2
    await gateway.request("POST", "/v1/bills", acme, bill_body("R-1"))
    await until(lambda: len(smtp_server.received) == 1)
    assert len(rows(gateway)) == 1
    assert smtp_server.attempts == 3
    await until(lambda: rows(gateway)[0].status == "sent")
    assert rows(gateway)[0].attempts == 3

    smtp_server.refuse = 10  # more than max_attempts
    with logged() as lines:
        await gateway.request("POST", "/v1/bills", acme, bill_body("R-2"))
        await until(lambda: rows(gateway)[-1].status == "failed")
    last = rows(gateway)[-1]
    assert last.attempts == 3
    # The relay's reply, without the customer's address (in the row and in the log).
    assert last.last_error == (
        "SMTPDeliveryError: 451 No recipients accepted"
        " / <address>: 451 mailbox busy, try again later"
    )
    text = "\n".join(lines)
    assert "failed after 3 attempt(s)" in text and "451 mailbox busy" in text
    assert "taro@example.jp" not in text
    assert len(smtp_server.received) == 1


def test_a_failure_is_described_without_any_address() -> None:
    reply = smtp.SMTPDeliveryError(
        550, b"5.1.1 <Taro.Yamada+bill@example.co.jp>: Recipient address rejected", b"log"
    )
    assert describe_failure(reply) == (
        "SMTPDeliveryError: 550 5.1.1 <<address>>: Recipient address rejected / log"
    )
    assert describe_failure(TimeoutError("relay did not answer")) == (
        "TimeoutError: relay did not answer"
    )
    assert len(describe_failure(ValueError("x" * 500))) == 300


@pytest.mark.parametrize("retry_base", [2.0])  # time to cancel between two attempts
@pytest_twisted.ensureDeferred
async def test_a_bill_paid_or_cancelled_before_sending_is_not_announced(
    gateway: Running, smtp_server: SmtpServer
) -> None:
    acme = gateway.onboard("acme")
    smtp_server.refuse = 1  # the first attempt fails; the bill is cancelled meanwhile
    await gateway.request("POST", "/v1/bills", acme, bill_body("C-1"))
    await until(lambda: smtp_server.attempts >= 1)
    await gateway.request("POST", "/v1/bills/C-1/cancel", acme)
    assert rows(gateway)[0].status == "pending"  # waiting for its second attempt
    await until(lambda: rows(gateway)[0].status == "skipped")
    assert smtp_server.received == []


# --- finding 7: STARTTLS before AUTH, a verified relay, a timeout on every send ---------------

PASSWORD = b"s3cret-relay-pass"


def make_relay_certs(directory: Path, hostname: str) -> tuple[Path, bytes]:
    """A CA (its PEM file) and the relay's certificate + key for ``hostname`` (PEM bytes)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test mail CA"))
        .issuer_name(name("test mail CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name(hostname))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path = directory / "mail-ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pem = leaf.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return ca_path, pem


@dataclass
class SecureRelay(SmtpServer):
    plain: bytearray = field(default_factory=bytearray)  # every byte received before TLS
    secure: bytearray = field(default_factory=bytearray)  # every byte received inside TLS
    logins: list[bytes] = field(default_factory=list)


@implementer(IRealm)
class _Realm:
    def __init__(self, server: SecureRelay) -> None:
        self.server = server

    def requestAvatar(self, avatar_id: bytes, mind: Any, *interfaces: Any) -> Any:
        self.server.logins.append(avatar_id)
        return smtp.IMessageDelivery, _Delivery(self.server), lambda: None


def listen_relay(server: SecureRelay, tls_pem: bytes | None) -> Any:
    """Twisted's ESMTP server on 127.0.0.1: AUTH LOGIN (the password in base64) always offered
    (checked against gateway/PASSWORD), STARTTLS only with ``tls_pem``; every byte recorded."""
    from twisted.internet import reactor  # noqa: TID251 - a real server for the real client
    from twisted.internet.ssl import PrivateCertificate

    ctx = PrivateCertificate.loadPEM(tls_pem).options() if tls_pem is not None else None
    checker = InMemoryUsernamePasswordDatabaseDontUse(gateway=PASSWORD)
    relay_portal = Portal(_Realm(server), [checker])

    class Recording(smtp.ESMTP):
        def dataReceived(self, data: bytes) -> None:
            (server.secure if self.startedTLS else server.plain).extend(data)
            super().dataReceived(data)

    factory = smtp.SMTPFactory()

    def build(addr: Any) -> Any:
        proto = Recording({b"LOGIN": smtp.LOGINCredentials}, ctx)
        proto.factory = factory
        proto.portal = relay_portal
        proto.host = b"relay.test"
        return proto

    factory.buildProtocol = build  # type: ignore[method-assign]
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    server.port = port.getHost().port
    return port


def relay_config(server: SmtpServer, ca: Path | None, extra: str = "") -> str:
    return (
        f'[mail]\nrelay = "tcp:localhost:{server.port}"\n'
        'sender = "billing@example.jp"\nusername = "gateway"\n'
        f'password = "{PASSWORD.decode()}"\n'
        + (f'ca = "{ca}"\n' if ca is not None else "")
        + "poll_interval = 0.05\nretry_base = 0.1\nmax_attempts = 1\ntimeout = 5\n"
        + extra
    )


@pytest.fixture
def relay_mode() -> str | None:
    """Which relay the ``gateway`` fixture's [mail] points at (a test parametrizes it):
    None, the plain test relay; "starttls" (a certificate for localhost from [mail] ca),
    "no-starttls" (AUTH offered, STARTTLS not), "other-name" (a certificate for another host)."""
    return None


@pytest.fixture
def secure_relay(relay_mode: str | None, tmp_path: Path) -> Iterator[tuple[SecureRelay, Path]]:
    server = SecureRelay()
    hostname = "mail.other.example" if relay_mode == "other-name" else "localhost"
    ca, pem = make_relay_certs(tmp_path / "relay", hostname)
    port = listen_relay(server, None if relay_mode == "no-starttls" else pem)
    yield server, ca
    port.stopListening()


@pytest.fixture
def gateway_extra(
    request: pytest.FixtureRequest, smtp_server: SmtpServer, retry_base: float, relay_mode: Any
) -> str:
    if relay_mode is not None:
        server, ca = request.getfixturevalue("secure_relay")
        return relay_config(server, ca)
    return (
        f'[mail]\nrelay = "tcp:127.0.0.1:{smtp_server.port}"\n'
        'sender = "billing@example.jp"\nsender_name = "デモ収納センター"\n'
        f"poll_interval = 0.05\nretry_base = {retry_base}\nmax_attempts = 3\ntimeout = 5\n"
    )


@pytest.mark.parametrize("relay_mode", ["starttls"])
@pytest_twisted.ensureDeferred
async def test_credentials_go_only_inside_starttls_to_a_verified_relay(
    gateway: Running, secure_relay: tuple[SecureRelay, Path]
) -> None:
    server, _ = secure_relay
    acme = gateway.onboard("acme")
    assert (await gateway.request("POST", "/v1/bills", acme, bill_body("T-1")))[0] == 201
    await until(lambda: [r.status for r in rows(gateway)] == ["sent"])
    assert server.logins == [b"gateway"]  # AUTH with the configured credentials (bytes)
    assert len(server.received) == 1 and server.received[0]["Subject"].endswith("（T-1）")
    # In clear: only EHLO and STARTTLS. AUTH, the password and the message came inside TLS.
    assert bytes(server.plain).split(b"\r\n")[1] == b"STARTTLS"
    assert b"AUTH" not in server.plain and b"taro@example.jp" not in server.plain
    assert b"AUTH" in server.secure


@pytest.mark.parametrize("relay_mode", ["no-starttls"])
@pytest_twisted.ensureDeferred
async def test_a_relay_without_starttls_never_gets_the_credentials(
    gateway: Running, secure_relay: tuple[SecureRelay, Path]
) -> None:
    server, _ = secure_relay
    acme = gateway.onboard("acme")
    await gateway.request("POST", "/v1/bills", acme, bill_body("N-1"))
    await until(lambda: [r.status for r in rows(gateway)] == ["failed"])
    assert "TLS" in rows(gateway)[0].last_error
    wire = bytes(server.plain)
    assert wire.startswith(b"EHLO ")  # the gateway did talk to it
    assert b"AUTH" not in wire and PASSWORD not in wire
    assert b"c2VjcmV0" not in wire and b"czNjcmV0" not in wire  # nor in base64
    assert server.logins == [] and server.received == []


@pytest.mark.parametrize("relay_mode", ["other-name"])
@pytest_twisted.ensureDeferred
async def test_a_relay_with_a_certificate_for_another_name_is_refused(
    gateway: Running, secure_relay: tuple[SecureRelay, Path]
) -> None:
    server, _ = secure_relay
    acme = gateway.onboard("acme")
    await gateway.request("POST", "/v1/bills", acme, bill_body("O-1"))
    await until(lambda: [r.status for r in rows(gateway)] == ["failed"])
    assert server.logins == [] and server.received == []
    assert PASSWORD not in bytes(server.plain)
    assert b"AUTH" not in server.plain


def _notifications(url: str) -> list[Any]:
    engine = create_db_engine(url, 1)
    with engine.connect() as conn:
        found = list(conn.execute(select(notifications).order_by(notifications.c.id)).all())
    engine.dispose()
    return found


def _wait_for(check: Any, timeout: float = 30.0) -> None:
    import time

    for _ in range(int(timeout / 0.1)):
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_relay_that_never_answers_is_timed_out_and_sigterm_still_stops_the_daemon(
    tmp_path: Path, database_url: str
) -> None:
    from tests.daemon import admin_cli, http, start_daemon, write_config

    with socket.socket() as silent:  # accepts connections (the kernel's backlog), says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        mail = (
            f'[mail]\nrelay = "tcp:127.0.0.1:{port}"\nsender = "billing@example.jp"\n'
            "poll_interval = 0.05\nretry_base = 0.1\nmax_attempts = 1\n"
        )
        # 1. A timeout of 1 s: the stuck send is given up and stored as failed.
        config, api_port, metrics_port = write_config(
            tmp_path, database_url, extra=mail + "timeout = 1\n"
        )
        admin_cli(config, "migrate")
        admin_cli(config, "biller", "create", "--id", "acme", "--name", "acme", "--kana", "ﾃｽﾄ")
        key = json.loads(admin_cli(config, "key", "create", "--biller", "acme").stdout)["key"]
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        daemon = start_daemon(config, api_port, metrics_port)
        try:
            daemon.wait()
            assert http("POST", daemon.api + "/v1/bills", bill_body("S-1"), auth)[0] == 201
            _wait_for(lambda: [n.status for n in _notifications(database_url)] == ["failed"])
            assert "TimeoutError" in _notifications(database_url)[0].last_error
        finally:
            assert daemon.stop() == 0

        # 2. A timeout of 10 minutes: SIGTERM with the send in flight stops the daemon at once.
        config.write_text(
            config.read_text(encoding="utf-8").replace("timeout = 1\n", "timeout = 600\n"),
            encoding="utf-8",
        )
        daemon = start_daemon(config, api_port, metrics_port)
        try:
            daemon.wait()
            assert http("POST", daemon.api + "/v1/bills", bill_body("S-2"), auth)[0] == 201
            _wait_for(lambda: _notifications(database_url)[-1].status == "sending")
        finally:
            assert daemon.stop(timeout=20) == 0  # raises "daemon ignored SIGTERM" otherwise
        assert "Traceback" not in daemon.output()


def test_the_relay_name_to_verify_comes_from_the_relay_or_tls_hostname(tmp_path: Path) -> None:
    from gateway.config import parse_config
    from gateway.errors import ConfigError

    base = {
        "api": {"listen": "tcp:0", "public_url": "http://127.0.0.1:8080"},
        "metrics": {"listen": "tcp:0"},
    }
    mail = {"relay": "tcp:smtp.example.jp:587", "sender": "billing@example.jp"}
    config = parse_config({**base, "mail": mail}, tmp_path).mail
    assert config is not None and config.tls_hostname == "smtp.example.jp" and config.ca is None
    assert not config.starttls_required
    login = {**mail, "username": "gw", "password": "pw", "ca": "ca.pem"}
    config = parse_config({**base, "mail": login}, tmp_path).mail
    assert config is not None and config.starttls_required and config.ca == tmp_path / "ca.pem"
    unix = {**mail, "relay": "unix:/run/smtp.sock"}
    with pytest.raises(ConfigError, match=r"^mail\.tls_hostname: is required"):
        parse_config({**base, "mail": unix}, tmp_path)
    named = {**unix, "tls_hostname": "smtp.example.jp"}
    assert parse_config({**base, "mail": named}, tmp_path).mail.tls_hostname == "smtp.example.jp"  # type: ignore[union-attr]
