"""SMS to customers: every SMS notice of the one outbox (``notifications``), through an SMS
provider (docs/notices.md).

:class:`SmsProvider` is what this service needs of one: send one text to one number, and say
whether it was taken, refused for good (a number the provider does not serve, a text it
refuses: no retry changes that) or not taken for now (an outage, a throttle, no answer: retried).
The composition root hands it the HTTP provider (gateway.protocols.sms_client, ``[sms]``).

:class:`SmsSender` is the SMS channel of the sending round (gateway.billing.sending): it claims
due SMS notices with a lease (several daemons share them; a crashed daemon's are taken up
again), checks each is still to be sent and words it
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
from typing import Any, Protocol

from prometheus_client import Counter
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway.billing.notice_text import sms_text
from gateway.billing.sending import NoticeSender
from gateway.config.notices import SmsConfig
from gateway.model import Bill
from gateway.notice_rules import Medium, sms_segments
from gateway.store import Store
from gateway.store.notify import Claimed, Finished

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


class SmsSender(NoticeSender):
    """Sends due SMS notices every ``poll_interval`` seconds (gateway.billing.sending)."""

    medium = Medium.SMS
    name = "sms"
    messages = MESSAGES
    run_failures = RUN_FAILURES

    def __init__(
        self,
        config: SmsConfig,
        store: Store,
        reactor: IReactorTime,
        provider: SmsProvider,
        page_url: Callable[[Bill], str],
        batch: int = 20,
    ) -> None:
        super().__init__(config, store, reactor, page_url, batch)
        self.config = config
        self.provider = provider

    async def deliver(self, c: Claimed, recipient: str) -> Finished:
        try:
            text = sms_text(c, self.page_url(c.bill))
        except ValueError:
            return self.not_sent(c, TOO_LONG, permanent=True)
        result: Any = await self.provider.send(
            recipient, text, self.config.sender, f"notice-{c.notification_id}"
        )
        if result.taken:
            return self.sent(c, provider_id=result.provider_id, segments=sms_segments(text))
        return self.not_sent(c, result.error, permanent=result.permanent)

    def startService(self) -> None:
        super().startService()
        log.info("sms: sending through the configured HTTP provider")

    def stopService(self) -> Deferred[None]:
        d = super().stopService()
        closing = self.provider.close()
        if d is None:
            return closing
        return d.addCallback(lambda _: closing)
