"""Webhook delivery: from the events outbox to each biller's endpoints, at least once.

One :class:`WebhookDelivery` service per daemon. As soon as a transaction that wrote events
commits (the store's ``outbox`` signal: in this process at once, from another daemon on the
same PostgreSQL through ``LISTEN``/``NOTIFY``), every ``poll_interval`` whatever happens (the
fallback: a signal is a hint, never the record), and at once while there is more work, it

1. dispatches: turns new events into deliveries (``store.webhooks.dispatch``: a cursor per
   biller, locked with SKIP LOCKED, so several daemons share billers and none is done twice);
2. claims due deliveries for its free slots (``claim_due``: SKIP LOCKED, a lease, a new
   Gateway-Delivery-Id per attempt), never more than ``concurrency`` in flight in all and
   ``per_endpoint`` per endpoint, so an endpoint that hangs holds a few slots and no more;
3. POSTs each claimed attempt, signed, with a timeout; each finished attempt asks for a
   pass, and the next pass records the outcomes of all that finished meanwhile, with the next
   attempt after an exponential back-off with full jitter, until ``max_age``, then failed.

Outcomes, dispatch and claim of one pass are one transaction (``webhook_queue.cycle``): under
load the store's commits, not the HTTP, are what delivery waits for.

Attempts connect only to public addresses and ``webhooks.allowed_networks``, checked at each
attempt by the client the composition root passes in (:class:`gateway.webhooks.attempts.Poster`,
:mod:`gateway.protocols.webhook_client`). Time is the injected reactor's. Logs name the
endpoint and delivery ids, never a URL or secret.

Wakes are folded together: a signal while a pass runs asks for one more pass after it (which
dispatches), a signal while a pass is already due adds nothing. So at most one dispatch and one
claim run at a time, however many commits signal meanwhile.
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
from gateway.store.signals import OUTBOX
from gateway.store.webhook_queue import (
    AttemptResult,
    Claim,
    ClaimRequest,
    Cycled,
    complete_attempts,
    cycle,
    queue_depth,
)
from gateway.store.webhooks import purge_finished
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
# fast receiver is not left idle during the claim transaction, and one pass claims (and records)
# up to PREFETCH x per_endpoint deliveries of an endpoint at once. A held claim waits at most
# one attempt timeout per round of attempts ahead of it: its lease is that much longer
# (claim_due's queue_step), so it never runs out while the claim waits its turn here.
PREFETCH = 8
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
        # Long enough for a claim at the head of the queue to be sent and recorded; one
        # timeout more per round of attempts ahead of it (see PREFETCH). A daemon that dies
        # loses its claims for this long, then another takes them up.
        self.lease = timedelta(seconds=2 * config.timeout + 30)
        self.held: Tally[int] = Tally()  # endpoint pk -> claims held (queued or being sent)
        self.sending: Tally[int] = Tally()  # endpoint pk -> attempts open
        self.queued: dict[int, deque[Claim]] = {}  # endpoint pk -> claims waiting for a slot
        self.open: dict[str, Deferred[PostResult]] = {}  # delivery id -> attempt
        self.outcomes: list[AttemptResult] = []  # recorded by the next pass
        self._timer: IDelayedCall | None = None
        self._pumping: Deferred[bool] | None = None
        self._again = False  # woken while a pass ran: run another at once
        self._depth_at = float("-inf")
        self._dispatch_at = float("-inf")  # when the next dispatch is due (reactor seconds)
        self._events = False  # events committed since the last dispatch began: dispatch now
        self._purge = LoopingCall(self._purge_old)
        self._purge.clock = reactor

    # -- life --------------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        # The per-endpoint series belong to the service that counts them: none is left behind
        # by an endpoint deleted meanwhile, or by another service of this process.
        ENDPOINT_ATTEMPTS.clear()
        self.store.add_listener(OUTBOX, self.events_committed)
        self._schedule(0)
        self._purge.start(PURGE_EVERY, now=False)

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        ENDPOINT_ATTEMPTS.clear()
        self.store.remove_listener(OUTBOX, self.events_committed)
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
        """Look for work now (free slots; new events when a dispatch is due)."""
        self._schedule(0)

    def events_committed(self) -> None:
        """The store's ``outbox`` signal: events were committed (here or by another daemon):
        dispatch and claim at once, not at the next poll."""
        self._events = True
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
        """One transaction (``webhook_queue.cycle``): the outcomes that came in, a dispatch
        when one is due (events were committed since the last one began, or
        ``poll_interval`` has passed, or events wait), and a claim for the free slots; True
        when more events wait for a dispatch."""
        more = False
        started = self.reactor.seconds()
        # The poll's (or a backlog's) dispatch moves every biller's cursor; one woken by a
        # commit looks only at the billers with an endpoint (the others' cursors can wait).
        dispatching = "all" if started >= self._dispatch_at else "served" if self._events else None
        self._events = False  # a commit from now on asks for another dispatch
        free = PREFETCH * self.config.concurrency - sum(self.held.values())
        claiming = free > 0 and self.running
        batch, self.outcomes = self.outcomes, []
        if dispatching or claiming or batch:
            try:
                done: Cycled = await self.store.run_interaction(
                    "webhooks.cycle",
                    cycle,
                    now=clock_now(self.reactor),
                    outcomes=batch,
                    owner=self.owner,
                    max_age=self.config.max_age,
                    dispatching=dispatching,
                    claim=ClaimRequest(
                        owner=self.owner,
                        lease=self.lease,
                        limit=free,
                        in_flight=dict(self.held),
                        per_endpoint=PREFETCH * self.config.per_endpoint,
                        new_delivery_id=lambda: new_id("dlv"),
                        queue_step=timedelta(seconds=self.config.timeout),
                        sends=self.config.per_endpoint,
                    )
                    if claiming
                    else None,
                )
            except BaseException:
                # Nothing of it was committed (or, if the commit's answer was lost, recording
                # them again is fenced): the outcomes go with the next pass, the dispatch too.
                self.outcomes = batch + self.outcomes
                self._events = self._events or dispatching is not None
                raise
            for result in done.results:
                DELIVERIES.labels(result).inc()
            if done.dispatched is not None:
                more = done.dispatched.more
                if more:
                    self._dispatch_at = started
                elif dispatching == "all":
                    self._dispatch_at = started + self.config.poll_interval
            if done.claimed is not None:
                if not self.running:  # stopped meanwhile: give them back, due again at once
                    for claim in done.claimed.claims:
                        self._finished(PostResult(None, NOT_SENT), claim, None)
                    batch, self.outcomes = self.outcomes, []
                    await self._record(batch)
                    return False
                for claim in done.claimed.claims:
                    self.held[claim.endpoint_pk] += 1
                    self.queued.setdefault(claim.endpoint_pk, deque()).append(claim)
                # Due deliveries left behind (no free slot, or their endpoint at its limit) are
                # claimed by the pass that the next finished attempt asks for.
                self._drain()
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
        if self.running:
            self.wake()  # the next pass records it, and claims for the slot it freed

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
