"""SMS to customers: every SMS notice of the one outbox (``notifications``), through an SMS
provider (docs/notices.md).

:class:`SmsProvider` is what this service needs of one: send one text to one number, and say
whether it was taken, refused for good (a number the provider does not serve, a text it
refuses: no retry changes that) or not taken for now (an outage, a throttle, no answer: retried).
The composition root hands it the HTTP provider (gateway.protocols.sms_client, ``[sms]``).

:class:`SmsSender` claims due SMS notices with a lease (several daemons share them; a crashed
daemon's are taken up again), checks each is still to be sent and words it
(gateway.billing.notice_text), sends it and records the outcome: ``sent`` (with the provider's
message id and its segments; recorded for the per-notice fee), ``pending`` again after a back-off
(``retry_base`` doubled up to ``retry_cap``) until ``max_attempts``, then ``failed``;
a sent one is charged per segment, as carriers bill it (gateway.notice_rules.sms_segments: one
up to 70 characters, one per 67 beyond); a text over 660 characters is ``failed``, never cut;
``skipped`` when no longer true. The reason stored is one of a few fixed texts: never the
number, the text, the endpoint or the key, and neither is any log line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from prometheus_client import Counter
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway.billing.notice_text import skip_reason, sms_text
from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.config.notices import SmsConfig
from gateway.infra.jobs import logged_run
from gateway.model import Bill
from gateway.notice_rules import Medium, sms_segments
from gateway.store import Store
from gateway.store.notify import Claimed, Finished, claim, finish

log = Logger()

MESSAGES = Counter(
    "gateway_sms_messages_total",
    "Customer SMS by result: sent, retry (not taken, tried again later), failed (given up or "
    "refused for good), skipped (no longer to be sent).",
    ["result"],
)
RUN_FAILURES = Counter(
    "gateway_sms_run_failures_total", "Sending rounds of the SMS sender that failed (logged)."
)

TOO_LONG = "the message is longer than one long SMS"


@dataclass(frozen=True)
class SmsResult:
    """What the provider made of one message."""

    taken: bool
    provider_id: str | None = None  # its id of the message, when it gave one
    permanent: bool = False  # refused for good: no retry
    error: str | None = None  # a fixed text (no number, no URL, no key)


class SmsProvider(Protocol):
    def send(self, to: str, text: str, sender: str | None, reference: str) -> Deferred[SmsResult]:
        """Send ``text`` to the domestic number ``to``; never fails (a :class:`SmsResult`).
        ``reference`` is the notice's own id, for a provider that deduplicates on it."""
        ...

    def close(self) -> Deferred[None]: ...


def backoff(config: SmsConfig, attempts: int) -> timedelta:
    """Wait before the next attempt after ``attempts`` failed ones."""
    return timedelta(seconds=min(config.retry_cap, config.retry_base * 2 ** (attempts - 1)))


class SmsSender(TimerService):
    """Sends due SMS notices every ``poll_interval`` seconds."""

    def __init__(
        self,
        config: SmsConfig,
        store: Store,
        reactor: IReactorTime,
        provider: SmsProvider,
        page_url: Callable[[Bill], str],
        batch: int = 20,
    ) -> None:
        super().__init__(config.poll_interval, self._tick)
        self.clock = reactor
        self.config = config
        self.store = store
        self.reactor = reactor
        self.provider = provider
        self.page_url = page_url
        self.batch = batch

    def _tick(self) -> Deferred[int]:
        d, _ = logged_run(self.run_once(), RUN_FAILURES, "sms: a sending round", 0)
        return d

    async def run_once(self) -> int:
        """Claim and send one batch; how many were handled."""
        now = clock_now(self.reactor)
        lease = timedelta(seconds=self.config.timeout * 2 + 10)
        claimed: list[Claimed] = await self.store.run_interaction(
            "sms.claim", claim, now, lease, self.batch, (Medium.SMS,)
        )
        if not claimed:
            return 0
        outcomes = await DeferredList(
            [Deferred.fromCoroutine(self._one(c)) for c in claimed], consumeErrors=True
        )
        results = [result for ok, result in outcomes if ok]
        await self.store.run_interaction("sms.finish", finish, results, clock_now(self.reactor))
        return len(claimed)

    async def _one(self, c: Claimed) -> Finished:
        skipped = skip_reason(c, clock_today(self.reactor))
        if skipped is not None or c.recipient is None:
            MESSAGES.labels("skipped").inc()
            return Finished(c.notification_id, "skipped", skipped)
        try:
            text = sms_text(c, self.page_url(c.bill))
        except ValueError:
            MESSAGES.labels("failed").inc()
            return Finished(c.notification_id, "failed", TOO_LONG)
        result: Any = await self.provider.send(
            c.recipient, text, self.config.sender, f"notice-{c.notification_id}"
        )
        if result.taken:
            MESSAGES.labels("sent").inc()
            log.info("sms: notification {id} ({kind}) sent", id=c.notification_id, kind=c.kind)
            return Finished(
                c.notification_id,
                "sent",
                provider_id=result.provider_id,
                segments=sms_segments(text),
            )
        if result.permanent or c.attempts >= self.config.max_attempts:
            MESSAGES.labels("failed").inc()
            log.warn(
                "sms: notification {id} failed after {n} attempt(s): {error}",
                id=c.notification_id,
                n=c.attempts,
                error=result.error,
            )
            return Finished(c.notification_id, "failed", result.error)
        MESSAGES.labels("retry").inc()
        next_at = clock_now(self.reactor) + backoff(self.config, c.attempts)
        return Finished(c.notification_id, "pending", result.error, next_at)

    def startService(self) -> None:
        super().startService()
        log.info("sms: sending through the configured HTTP provider")

    def stopService(self) -> Deferred[None]:
        d = super().stopService()
        closing = self.provider.close()
        if d is None:
            return closing
        return d.addCallback(lambda _: closing)
