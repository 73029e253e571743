"""E-mail to customers, through the configured SMTP relay: every e-mail notice of the one
outbox (``notifications``, gateway.store.notify) — the page URL of a new bill (queued with the
bill) or of a reissue, the fallback after a failed debit, the reminder, the receipt notice
(queued by the notice job, gateway.billing.notices). SMS notices of the same outbox go through
gateway.billing.sms.

This service is the e-mail channel of the sending round (gateway.billing.sending): it claims
due e-mail notices with a lease (so several daemons share them and a
crashed daemon's are taken up again), renders each from the bill as it is now
(gateway.billing.notice_text: a notice no longer true — a bill already paid, cancelled or
expired, a customer who opted out — is ``skipped``) and sends it with Twisted's ESMTP client.
A refused or failed send is retried with exponential back-off (``retry_base`` doubled up to
``retry_cap``) until ``max_attempts``, then marked ``failed``. Addresses are never logged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from io import BytesIO
from typing import Any

from prometheus_client import Counter
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import clientFromString
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IReactorTime
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.logger import Logger
from twisted.mail.smtp import ESMTPSenderFactory
from twisted.python.failure import Failure

from gateway.billing.notice_text import email_message
from gateway.billing.sending import NoticeSender
from gateway.clock import now as clock_now
from gateway.config import MailConfig
from gateway.errors import ConfigError
from gateway.model import Bill
from gateway.notice_rules import Medium
from gateway.store import Store
from gateway.store.notify import Claimed, Finished

log = Logger()

EMAILS = Counter(
    "gateway_mail_messages_total",
    "Customer e-mails by result: sent, retry (refused or failed, tried again later), failed "
    "(given up), skipped (the bill no longer needs it).",
    ["result"],
)
RUN_FAILURES = Counter(
    "gateway_mail_run_failures_total", "Sending rounds of the mailer that failed (logged)."
)


#: Anything shaped like an e-mail address, as SMTP replies and Twisted's transcripts quote them.
_ADDRESS = re.compile(r"[^\s<>@:;,()\[\]\"]+@[\w.-]*\w")
#: The transcript lines Twisted adds to an SMTP error (">>> RCPT TO:<…>", "<<< 451 …").
_TRANSCRIPT = (">>>", "<<<")


def describe_failure(error: Exception) -> str:
    """What a failed send is stored (``last_error``) and logged as: the error's type and text on
    one line, without Twisted's SMTP transcript and with every e-mail address as ``<address>``
    (the customer's address is personal data: a relay's reply such as ``550 <taro@…> unknown``
    must not keep it past the bill's retention, nor put it in a log), at most 300 characters."""
    lines = [line.strip() for line in f"{type(error).__name__}: {error}".splitlines()]
    kept = [line for line in lines if line and not line.startswith(_TRANSCRIPT)]
    return _ADDRESS.sub("<address>", " / ".join(kept))[:300]


def client_tls(config: MailConfig) -> IOpenSSLClientConnectionCreator:
    """The TLS of STARTTLS: the relay's certificate must chain to ``[mail] ca`` (the system's
    trust store without it) and carry ``tls_hostname``."""
    trust: Any = None  # optionsForClientTLS: the platform's trust store
    if config.ca is not None:
        try:
            trust = Certificate.loadPEM(config.ca.read_bytes())
        except OSError as e:
            raise ConfigError("mail.ca", f"{config.ca} cannot be read: {e.strerror or e}") from None
        except Exception as e:
            raise ConfigError("mail.ca", f"{config.ca} is not a PEM certificate: {e}") from None
    return optionsForClientTLS(config.tls_hostname, trustRoot=trust)


class Mailer(NoticeSender):
    """Sends due e-mail notices every ``poll_interval`` seconds (gateway.billing.sending)."""

    medium = Medium.EMAIL
    name = "mail"
    messages = EMAILS
    run_failures = RUN_FAILURES

    def __init__(
        self,
        config: MailConfig,
        store: Store,
        reactor: IReactorTime,
        page_url: Callable[[Bill], str],
        batch: int = 20,
    ) -> None:
        super().__init__(config, store, reactor, page_url, batch)
        self.config = config
        self.tls = client_tls(config)
        self._sending: set[Deferred[Any]] = set()

    def send(self, recipient: str, message: bytes) -> Deferred[Any]:
        """Hand one message to the relay. The whole exchange (connect, STARTTLS, AUTH, data) is
        cancelled after ``timeout`` seconds, and by :meth:`stopService`."""
        c = self.config
        factory: ESMTPSenderFactory | None = None

        def cancel(_: Deferred[Any]) -> None:
            connecting.cancel()  # still connecting: give up the attempt
            protocol = getattr(factory, "currentProtocol", None)
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.abortConnection()

        done: Deferred[Any] = Deferred(cancel)
        sent: Deferred[Any] = Deferred()

        def relay(result: Any) -> None:  # the first outcome wins (a cancelled send stays so)
            if not done.called:
                if isinstance(result, Failure):
                    done.errback(result)
                else:
                    done.callback(result)

        sent.addBoth(relay)
        factory = ESMTPSenderFactory(
            (c.username or "").encode("utf-8"),
            (c.password or "").encode("utf-8"),
            c.sender,
            [recipient],
            BytesIO(message),
            sent,
            retries=0,
            timeout=c.timeout,
            contextFactory=self.tls,
            requireAuthentication=c.username is not None,
            requireTransportSecurity=c.starttls_required,
        )
        factory.noisy = False
        connecting = clientFromString(self.reactor, c.relay).connect(factory)
        connecting.addErrback(relay)
        self._sending.add(done)
        done.addBoth(self._sent, done)
        return done.addTimeout(c.timeout, self.reactor)

    def _sent(self, result: Any, d: Deferred[Any]) -> Any:
        self._sending.discard(d)
        return result

    async def deliver(self, c: Claimed, recipient: str) -> Finished:
        message = email_message(self.config, c, self.page_url(c.bill), clock_now(self.reactor))
        try:
            await self.send(recipient, message.as_bytes())
        except Exception as e:
            return self.not_sent(c, describe_failure(e))
        return self.sent(c)

    def startService(self) -> None:
        super().startService()
        log.info("mail: sending through {relay}", relay=self.config.relay)

    def stopService(self) -> Deferred[None]:
        # A send in flight must not hold the daemon: cancel it (it is retried after a restart).
        for d in list(self._sending):
            d.cancel()
        return super().stopService()
