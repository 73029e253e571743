"""The page-URL e-mail of a new bill, through a real local SMTP server (Twisted's ESMTP)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import select
from twisted.internet.defer import succeed
from twisted.internet.task import deferLater
from twisted.mail import smtp
from zope.interface import implementer

from gateway.notify import describe_failure
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


@pytest.fixture
def gateway_extra(smtp_server: SmtpServer, retry_base: float) -> str:
    return (
        f'[mail]\nrelay = "tcp:127.0.0.1:{smtp_server.port}"\n'
        'sender = "billing@example.jp"\nsender_name = "デモ収納センター"\n'
        f"poll_interval = 0.05\nretry_base = {retry_base}\nmax_attempts = 3\ntimeout = 5\n"
    )


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
    assert "failed after 3 attempts" in text and "451 mailbox busy" in text
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
