"""E-mail to customers, through the configured SMTP relay: every e-mail notice of the one
outbox (``notifications``, gateway.store.notify) — the page URL of a new bill (queued with the
bill) or of a reissue, the fallback after a failed debit, the reminder, the receipt notice
(queued by the notice job, gateway.billing.notices). SMS notices of the same outbox go through
gateway.billing.sms.

This service claims due e-mail notices with a lease (so several daemons share them and a
crashed daemon's are taken up again), renders each from the bill as it is now
(gateway.billing.notice_text: a notice no longer true — a bill already paid, cancelled or
expired, a customer who opted out — is ``skipped``) and sends it with Twisted's ESMTP client.
A refused or failed send is retried with exponential back-off (``retry_base`` doubled up to
``retry_cap``) until ``max_attempts``, then marked ``failed``. Addresses are never logged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from io import BytesIO
from typing import Any

from prometheus_client import Counter
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import clientFromString
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IReactorTime
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.logger import Logger
from twisted.mail.smtp import ESMTPSenderFactory
from twisted.python.failure import Failure

from gateway.billing.notice_text import email_message, skip_reason
from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.config import MailConfig
from gateway.errors import ConfigError
from gateway.infra.jobs import logged_run
from gateway.model import Bill
from gateway.notice_rules import Medium
from gateway.store import Store
from gateway.store.notify import Claimed, Finished, claim, finish

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


def backoff(config: MailConfig, attempts: int) -> timedelta:
    """Wait before the next attempt after ``attempts`` failed ones."""
    return timedelta(seconds=min(config.retry_cap, config.retry_base * 2 ** (attempts - 1)))


class Mailer(TimerService):
    """Sends due notifications every ``poll_interval`` seconds."""

    def __init__(
        self,
        config: MailConfig,
        store: Store,
        reactor: IReactorTime,
        page_url: Callable[[Bill], str],
        batch: int = 20,
    ) -> None:
        super().__init__(config.poll_interval, self._tick)
        self.clock = reactor
        self.config = config
        self.store = store
        self.reactor = reactor
        self.page_url = page_url
        self.batch = batch
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

    def _tick(self) -> Deferred[int]:
        """One scheduled round (the one job runner): a failure is logged and counted."""
        d, _ = logged_run(self.run_once(), RUN_FAILURES, "mail: a sending round", 0)
        return d

    async def run_once(self) -> int:
        """Claim and send one batch; how many were handled."""
        now = clock_now(self.reactor)
        lease = timedelta(seconds=self.config.timeout * 2 + 10)
        claimed: list[Claimed] = await self.store.run_interaction(
            "mail.claim", claim, now, lease, self.batch, (Medium.EMAIL,)
        )
        if not claimed:
            return 0
        outcomes = await DeferredList(
            [Deferred.fromCoroutine(self._one(c)) for c in claimed], consumeErrors=True
        )
        results = [result for ok, result in outcomes if ok]
        await self.store.run_interaction("mail.finish", finish, results, clock_now(self.reactor))
        return len(claimed)

    async def _one(self, c: Claimed) -> Finished:
        skipped = skip_reason(c, clock_today(self.reactor))
        if skipped is not None or c.recipient is None:
            EMAILS.labels("skipped").inc()
            return Finished(c.notification_id, "skipped", skipped)
        message = email_message(self.config, c, self.page_url(c.bill), clock_now(self.reactor))
        try:
            await self.send(c.recipient, message.as_bytes())
        except Exception as e:
            error = describe_failure(e)
            if c.attempts >= self.config.max_attempts:
                EMAILS.labels("failed").inc()
                log.warn(
                    "mail: notification {id} failed after {n} attempts: {error}",
                    id=c.notification_id,
                    n=c.attempts,
                    error=error,
                )
                return Finished(c.notification_id, "failed", error)
            EMAILS.labels("retry").inc()
            next_at = clock_now(self.reactor) + backoff(self.config, c.attempts)
            return Finished(c.notification_id, "pending", error, next_at)
        EMAILS.labels("sent").inc()
        log.info("mail: notification {id} ({kind}) sent", id=c.notification_id, kind=c.kind.value)
        return Finished(c.notification_id, "sent")

    def startService(self) -> None:
        super().startService()
        log.info("mail: sending through {relay}", relay=self.config.relay)

    def stopService(self) -> Deferred[None]:
        # A send in flight must not hold the daemon: cancel it (it is retried after a restart).
        for d in list(self._sending):
            d.cancel()
        return super().stopService()
