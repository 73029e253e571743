"""Webhook delivery: from the events outbox to each biller's endpoints, at least once.

One :class:`WebhookDelivery` service per daemon. Every ``poll_interval`` (and at once while
there is more work) it

1. dispatches: turns new events into deliveries (``store.webhooks.dispatch``: a cursor per
   biller, locked with SKIP LOCKED, so several daemons share billers and none is done twice);
2. claims due deliveries for its free slots (``claim_due``: SKIP LOCKED, a lease, a new
   Gateway-Delivery-Id per attempt), never more than ``concurrency`` in flight in all and
   ``per_endpoint`` per endpoint, so an endpoint that hangs holds a few slots and no more;
3. POSTs each claimed attempt, signed, with a timeout; outcomes are recorded in batches
   (one transaction for all that finished meanwhile), with the next attempt after an
   exponential back-off with full jitter, until ``max_age``, then failed.

Attempts connect only to public addresses and ``webhooks.allowed_networks``, checked at each
attempt by the client the composition root passes in (:class:`gateway.webhooks.attempts.Poster`,
:mod:`gateway.protocols.webhook_client`). Time is the injected reactor's. Logs name the
endpoint and delivery ids, never a URL or secret.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
from collections import Counter as Tally
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.clock import now as clock_now
from gateway.config import WebhooksConfig
from gateway.errors import StoreError
from gateway.ids import new_id
from gateway.infra.secretbox import SecretBox
from gateway.store import Store
from gateway.store.webhook_queue import (
    AttemptResult,
    Claim,
    claim_due,
    complete_attempts,
    queue_depth,
)
from gateway.store.webhooks import Dispatched, dispatch, purge_finished
from gateway.webhooks.api import backoff, event_body
from gateway.webhooks.attempts import NOT_SENT, Poster, PostResult
from gateway.webhooks.signing import signature_header

log = Logger()

DELIVERIES = Counter(
    "gateway_webhook_deliveries_total",
    "Webhook attempts by result: success (2xx in time), retry (failed, tried again later), "
    "failed (failed, the last: the delivery gave up), cancelled (endpoint deleted), "
    "stale (outcome after the lease was lost).",
    ["result"],
)
ATTEMPT_SECONDS = Histogram(
    "gateway_webhook_attempt_duration_seconds",
    "Time from sending a webhook attempt to its outcome (response or error).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUEUE = Gauge(
    "gateway_webhook_queue_depth",
    "Webhook deliveries not yet final, on the whole database, by state: due (waiting for a "
    "worker), retrying (waiting for their next attempt), in_flight.",
    ["state"],
)
IN_FLIGHT = Gauge("gateway_webhook_attempts_in_flight", "Webhook attempts this daemon has open.")
# One series per endpoint that was attempted (endpoint ids, never a URL): the failure ratio of
# each endpoint, for the alert that names the failing one.
ENDPOINT_ATTEMPTS = Counter(
    "gateway_webhook_endpoint_attempts_total",
    "Webhook attempts sent, by endpoint id and result (success: 2xx in time; failure).",
    ["endpoint", "result"],
)
for _result in ("success", "retry", "failed", "cancelled", "stale"):
    DELIVERIES.labels(_result)
for _state in ("due", "retrying", "in_flight"):
    QUEUE.labels(_state)

USER_AGENT = "collection-gateway-webhooks/1"
# Claims held per slot: while attempts are sent, the next ones wait here already claimed, so a
# fast receiver is not left idle during the claim transaction. Held claims are bounded by
# PREFETCH x per_endpoint per endpoint, so one waits at most about one attempt for its turn.
PREFETCH = 2
DEPTH_EVERY = 5.0  # seconds between two queue-depth counts
PURGE_EVERY = 3600.0


def _reason(failure: Failure) -> str:
    return f"{type(failure.value).__name__}: {failure.getErrorMessage()[:200]}"


def owner_name() -> str:
    """This daemon's name on its leases: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


class WebhookDelivery(Service):
    name = "webhooks"

    def __init__(
        self,
        store: Store,
        reactor: IReactorTime,
        config: WebhooksConfig,
        *,
        client: Poster,
        owner: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.reactor = reactor
        self.config = config
        self.client = client
        self.owner = owner or owner_name()
        self.secrets = SecretBox(config.secret_key or bytes(32))  # plain secrets: read as is
        self.rng = rng or random.Random()
        # Long enough for a claim to wait its turn here (at most about one timeout: see
        # PREFETCH), be sent and be recorded; a daemon that dies loses its claims for this
        # long, then another takes them up.
        self.lease = timedelta(seconds=3 * config.timeout + 30)
        self.held: Tally[int] = Tally()  # endpoint pk -> claims held (queued or being sent)
        self.sending: Tally[int] = Tally()  # endpoint pk -> attempts open
        self.queued: dict[int, deque[Claim]] = {}  # endpoint pk -> claims waiting for a slot
        self.open: dict[str, Deferred[PostResult]] = {}  # delivery id -> attempt
        self.outcomes: list[AttemptResult] = []
        self._flushing: Deferred[None] | None = None
        self._timer: IDelayedCall | None = None
        self._pumping: Deferred[bool] | None = None
        self._again = False  # woken while a pass ran: run another at once
        self._starved = False  # the last claim left due deliveries behind: look again soon
        self._depth_at = float("-inf")
        self._dispatch_at = float("-inf")  # when the next dispatch is due (reactor seconds)
        self._purge = LoopingCall(self._purge_old)
        self._purge.clock = reactor

    # -- life --------------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        # The per-endpoint series belong to the service that counts them: none is left behind
        # by an endpoint deleted meanwhile, or by another service of this process.
        ENDPOINT_ATTEMPTS.clear()
        self._schedule(0)
        self._purge.start(PURGE_EVERY, now=False)

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        ENDPOINT_ATTEMPTS.clear()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._purge.running:
            self._purge.stop()
        for attempt in list(self.open.values()):
            attempt.cancel()  # recorded as failed attempts, due again at once
        for queue in list(self.queued.values()):
            while queue:
                claim = queue.popleft()
                self._release(claim)
                self._finished(PostResult(None, NOT_SENT), claim, None)
        waits: list[Deferred[Any]] = [self.client.close()]
        if self._flushing is not None:
            waits.append(self._flushing)
        if self.outcomes:
            # Queued on the store's pool now, before the store stops and drains it.
            batch, self.outcomes = self.outcomes, []
            waits.append(self._record(batch))
        return DeferredList(waits, consumeErrors=True)

    # -- the loop ----------------------------------------------------------------------------

    def _schedule(self, delay: float) -> None:
        if not self.running:
            return
        if self._pumping is not None:
            self._again = self._again or delay == 0
            return
        due = self.reactor.seconds() + delay
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() <= due:
                return
            self._timer.cancel()
        self._timer = self.reactor.callLater(delay, self._pump)

    def wake(self) -> None:
        """Look for work now (new events, free slots)."""
        self._schedule(0)

    def _pump(self) -> None:
        self._timer = None
        if not self.running or self._pumping is not None:
            return
        self._again = False
        self._pumping = Deferred.fromCoroutine(self.pass_once())

        def done(more: bool) -> None:
            self._pumping = None
            wait = max(0.0, self._dispatch_at - self.reactor.seconds())
            self._schedule(0 if more or self._again else wait)

        def failed(failure: Failure) -> None:
            self._pumping = None
            log.warn(
                "webhook dispatch or claim failed: {error}; trying again in {delay}s",
                error=_reason(failure),
                delay=self.config.poll_interval,
            )
            self._schedule(self.config.poll_interval)

        self._pumping.addCallbacks(done, failed)

    async def pass_once(self) -> bool:
        """A dispatch (when one is due: every ``poll_interval``, or at once while events wait)
        and a claim; True when more work is waiting. A pass woken by a finished attempt only
        claims: the dispatcher keeps its own pace."""
        more = False
        started = self.reactor.seconds()
        if started >= self._dispatch_at:
            dispatched: Dispatched = await self.store.run_interaction(
                "webhooks.dispatch", dispatch, clock_now(self.reactor)
            )
            more = dispatched.more
            self._dispatch_at = started if more else started + self.config.poll_interval
        free = PREFETCH * self.config.concurrency - sum(self.held.values())
        if free > 0 and self.running:
            claimed = await self.store.run_interaction(
                "webhooks.claim",
                claim_due,
                now=clock_now(self.reactor),
                owner=self.owner,
                lease=self.lease,
                limit=free,
                in_flight=dict(self.held),
                per_endpoint=PREFETCH * self.config.per_endpoint,
                new_delivery_id=lambda: new_id("dlv"),
            )
            if not self.running:  # stopped meanwhile: give them back, due again at once
                for claim in claimed.claims:
                    self._finished(PostResult(None, NOT_SENT), claim, None)
                batch, self.outcomes = self.outcomes, []
                await self._record(batch)
                return False
            for claim in claimed.claims:
                self.held[claim.endpoint_pk] += 1
                self.queued.setdefault(claim.endpoint_pk, deque()).append(claim)
            self._drain()
            # Due deliveries left behind (no free slot, or their endpoint at its limit): look
            # again as soon as an attempt finishes, not a poll interval later.
            self._starved = claimed.more
        else:
            self._starved = True
        if self.reactor.seconds() - self._depth_at >= max(DEPTH_EVERY, self.config.poll_interval):
            self._depth_at = self.reactor.seconds()
            depth = await self.store.run_interaction(
                "webhooks.queue_depth", queue_depth, clock_now(self.reactor)
            )
            for state, n in depth.items():
                QUEUE.labels(state).set(n)
        return more

    # -- attempts ----------------------------------------------------------------------------

    def _drain(self) -> None:
        """Send queued claims while there are free slots, in all and per endpoint, taking the
        endpoints in turn."""
        while self.running and sum(self.sending.values()) < self.config.concurrency:
            ready = [
                pk
                for pk, queue in self.queued.items()
                if queue and self.sending[pk] < self.config.per_endpoint
            ]
            if not ready:
                return
            for pk in ready:
                if sum(self.sending.values()) >= self.config.concurrency:
                    return
                queue = self.queued.get(pk)  # an attempt that failed at once re-entered here
                if queue and self.sending[pk] < self.config.per_endpoint:
                    self._send(queue.popleft())
            for pk in [pk for pk, queue in self.queued.items() if not queue]:
                del self.queued[pk]

    def _release(self, claim: Claim) -> None:
        self.held[claim.endpoint_pk] -= 1
        if self.held[claim.endpoint_pk] <= 0:
            del self.held[claim.endpoint_pk]

    def _send(self, claim: Claim) -> None:
        body = event_body(claim.event_id, claim.seq, claim.type, claim.created_at, claim.data)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Gateway-Event-Id": claim.event_id,
            "Gateway-Delivery-Id": claim.delivery_id,
            "Gateway-Signature": signature_header(
                self.secrets.decrypt(claim.secret, claim.endpoint_id),  # stored encrypted
                int(self.reactor.seconds()),
                body,
            ),
        }
        self.sending[claim.endpoint_pk] += 1
        IN_FLIGHT.inc()
        started = self.reactor.seconds()
        attempt = self.client.post(claim.url, body, headers)
        self.open[claim.delivery_id] = attempt

        def finished(result: PostResult) -> None:
            self.open.pop(claim.delivery_id, None)
            self.sending[claim.endpoint_pk] -= 1
            if self.sending[claim.endpoint_pk] <= 0:
                del self.sending[claim.endpoint_pk]
            self._release(claim)
            IN_FLIGHT.dec()
            self._finished(result, claim, started)
            self._drain()
            if self._starved:
                self.wake()

        attempt.addCallback(finished)
        attempt.addErrback(lambda f: log.failure("webhook attempt bookkeeping failed", f))

    def _finished(self, result: PostResult, claim: Claim, started: float | None) -> None:
        """Queue the outcome of an attempt sent at ``started`` (None: never sent)."""
        seconds = 0.0 if started is None else self.reactor.seconds() - started
        if started is not None:
            ATTEMPT_SECONDS.observe(seconds)
            ENDPOINT_ATTEMPTS.labels(claim.endpoint_id, "success" if result.ok else "failure").inc()
        now = clock_now(self.reactor)
        retry_at = now
        if not result.ok and self.running:
            delay = backoff(
                claim.attempt, self.config.backoff_base, self.config.backoff_cap, self.rng
            )
            retry_at = now + timedelta(seconds=delay)
        if not result.ok:
            log.info(
                "webhook {delivery_id} (event {event_id}, endpoint {endpoint_id}, attempt "
                "{attempt}) failed: {reason}",
                delivery_id=claim.delivery_id,
                event_id=claim.event_id,
                endpoint_id=claim.endpoint_id,
                attempt=claim.attempt,
                reason=result.error or f"HTTP {result.status_code}",
            )
        self.outcomes.append(
            AttemptResult(
                delivery_pk=claim.delivery_pk,
                attempt=claim.attempt,
                delivery_id=claim.delivery_id,
                ok=result.ok,
                status_code=result.status_code,
                error=result.error,
                duration_ms=round(seconds * 1000),
                retry_at=retry_at,
                sent_at=None if started is None else datetime.fromtimestamp(started, UTC),
            )
        )
        if self._flushing is None and self.running:
            self._flushing = Deferred.fromCoroutine(self._flush())

    async def _flush(self) -> None:
        """Record outcomes, all that finished meanwhile in one transaction (a group commit)."""
        try:
            while self.outcomes and self.running:
                batch, self.outcomes = self.outcomes, []
                await self._record(batch)
        finally:
            self._flushing = None

    def _record(self, batch: list[AttemptResult]) -> Deferred[None]:
        try:
            d = self.store.run_interaction(
                "webhooks.complete",
                complete_attempts,
                batch,
                owner=self.owner,
                now=clock_now(self.reactor),
                max_age=self.config.max_age,
            )
        except StoreError as e:  # the store has stopped: the leases will run out
            log.warn("could not record {n} webhook outcomes: {error}", n=len(batch), error=e)
            return succeed(None)

        def counted(results: list[str]) -> None:
            for result in results:
                DELIVERIES.labels(result).inc()

        def lost(failure: Failure) -> None:
            # The attempts stay in flight until their leases run out, then are tried again.
            log.warn(
                "could not record {n} webhook outcomes: {error}",
                n=len(batch),
                error=_reason(failure),
            )

        return d.addCallbacks(counted, lost)

    # -- housekeeping ------------------------------------------------------------------------

    def _purge_old(self) -> Deferred[None]:
        before = clock_now(self.reactor) - timedelta(days=self.config.log_retention_days)
        d = self.store.run_interaction("webhooks.purge", purge_finished, before)
        return d.addCallbacks(
            lambda n: None,
            lambda f: log.warn("webhook log purge failed: {error}", error=f.getErrorMessage()),
        )
