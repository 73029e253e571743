"""The sending round both customer channels share (e-mail, gateway.billing.notify; SMS,
gateway.billing.sms): every ``poll_interval`` seconds, claim a batch of due notices of one
medium with a lease (several daemons share them; a crashed daemon's are taken up again), skip
the ones no longer true (gateway.billing.notice_text), hand the others to the channel's
:meth:`NoticeSender.deliver` at once, and record every outcome in one transaction.

A channel says how one notice goes out and what became of it; the round, its lease, its
counters and the back-off (``retry_base`` doubled up to ``retry_cap``, until ``max_attempts``,
then ``failed``) are here once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from prometheus_client import Counter
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway.billing.notice_text import skip_reason
from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.infra.jobs import logged_run
from gateway.model import Bill
from gateway.notice_rules import Medium
from gateway.store import Store
from gateway.store.notify import Claimed, Finished, claim, finish

log = Logger()


class RetryPolicy(Protocol):
    """The part of a channel's configuration the round reads."""

    @property
    def poll_interval(self) -> float: ...
    @property
    def timeout(self) -> float: ...
    @property
    def retry_base(self) -> float: ...
    @property
    def retry_cap(self) -> float: ...
    @property
    def max_attempts(self) -> int: ...


def backoff(config: RetryPolicy, attempts: int) -> timedelta:
    """Wait before the next attempt after ``attempts`` failed ones."""
    return timedelta(seconds=min(config.retry_cap, config.retry_base * 2 ** (attempts - 1)))


class NoticeSender(TimerService):
    """Sends the due notices of one medium; a subclass says how one goes out
    (:meth:`deliver`)."""

    medium: Medium
    name: str  # "mail", "sms": the store's job labels and the log lines
    messages: Counter  # by result: sent, retry, failed, skipped
    run_failures: Counter

    def __init__(
        self,
        config: RetryPolicy,
        store: Store,
        reactor: IReactorTime,
        page_url: Callable[[Bill], str],
        batch: int = 20,
    ) -> None:
        super().__init__(config.poll_interval, self._tick)
        self.clock = reactor
        self.policy = config
        self.store = store
        self.reactor = reactor
        self.page_url = page_url
        self.batch = batch

    def _tick(self) -> Deferred[int]:
        """One scheduled round (the one job runner): a failure is logged and counted."""
        d, _ = logged_run(self.run_once(), self.run_failures, f"{self.name}: a sending round", 0)
        return d

    async def run_once(self) -> int:
        """Claim and send one batch; how many were handled."""
        now = clock_now(self.reactor)
        lease = timedelta(seconds=self.policy.timeout * 2 + 10)
        claimed: list[Claimed] = await self.store.run_interaction(
            f"{self.name}.claim", claim, now, lease, self.batch, (self.medium,)
        )
        if not claimed:
            return 0
        outcomes = await DeferredList(
            [Deferred.fromCoroutine(self._one(c)) for c in claimed], consumeErrors=True
        )
        results = [result for ok, result in outcomes if ok]
        await self.store.run_interaction(
            f"{self.name}.finish", finish, results, clock_now(self.reactor)
        )
        return len(claimed)

    async def _one(self, c: Claimed) -> Finished:
        skipped = skip_reason(c, clock_today(self.reactor))
        if skipped is not None or c.recipient is None:
            self.messages.labels("skipped").inc()
            return Finished(c.notification_id, "skipped", skipped)
        return await self.deliver(c, c.recipient)

    async def deliver(self, c: Claimed, recipient: str) -> Finished:
        """Send one notice to ``recipient``: :meth:`sent`, :meth:`not_sent` or a
        :class:`Finished` of the channel's own."""
        raise NotImplementedError

    def sent(self, c: Claimed, **recorded: Any) -> Finished:
        self.messages.labels("sent").inc()
        log.info(
            "{name}: notification {id} ({kind}) sent",
            name=self.name,
            id=c.notification_id,
            kind=c.kind,
        )
        return Finished(c.notification_id, "sent", **recorded)

    def not_sent(self, c: Claimed, error: str | None, permanent: bool = False) -> Finished:
        """A send that failed: ``pending`` again after the back-off, or ``failed`` when it was
        refused for good or was the last attempt. ``error`` is a fixed text: never an address,
        a number or a key."""
        if permanent or c.attempts >= self.policy.max_attempts:
            self.messages.labels("failed").inc()
            log.warn(
                "{name}: notification {id} failed after {n} attempt(s): {error}",
                name=self.name,
                id=c.notification_id,
                n=c.attempts,
                error=error,
            )
            return Finished(c.notification_id, "failed", error)
        self.messages.labels("retry").inc()
        next_at: datetime = clock_now(self.reactor) + backoff(self.policy, c.attempts)
        return Finished(c.notification_id, "pending", error, next_at)


__all__ = ["NoticeSender", "RetryPolicy", "backoff"]
