"""The webhook delivery queue: claims with a lease, outcomes fenced by lease and attempt.

Due deliveries are locked with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite has one writer and
``BEGIN IMMEDIATE``), marked in flight with a lease (their ``due_at`` becomes the lease's end, so
a crashed daemon's claims are due again when it runs out) and their attempt number raised; each
attempt is recorded in the delivery log with its own ``delivery_id``. An outcome is applied only
by the lease holder of that attempt number (a fencing token): one attempt is never counted
twice.

:func:`cycle` is one pass of a delivery service in one transaction: the outcomes that came in
since the last pass, a dispatch when one is due, and a claim for the free slots (one commit
where there were three: the store's commits are what a busy daemon waits for).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.engine import Connection

from gateway.store.schema import events
from gateway.store.webhooks import (
    CANCELLED,
    FAILED,
    IN_FLIGHT,
    PENDING,
    SUCCEEDED,
    Dispatched,
    at,
    dispatch,
    dl,
    ep,
)


@dataclass(frozen=True)
class Claim:
    """One attempt this daemon now holds the lease for."""

    delivery_pk: int
    attempt: int
    delivery_id: str  # the attempt's Gateway-Delivery-Id
    endpoint_pk: int
    endpoint_id: str
    url: str
    secret: str = field(repr=False)  # never in a log, not even by accident
    event_id: str
    seq: int
    type: str
    created_at: datetime
    data: str  # the event's data, JSON text as stored


CLAIM_PAGES = 4  # pages of due deliveries one claim looks at, at most


@dataclass(frozen=True)
class Claimed:
    claims: list[Claim]
    more: bool  # due deliveries were left (slots or per-endpoint limits): look again soon


def claim_due(
    conn: Connection,
    *,
    now: datetime,
    owner: str,
    lease: timedelta,
    limit: int,
    in_flight: Mapping[int, int],
    per_endpoint: int,
    new_delivery_id: Callable[[], str],
    queue_step: timedelta = timedelta(0),
    sends: int = 1,
) -> Claimed:
    """Take up to ``limit`` due deliveries, at most ``per_endpoint`` in flight per endpoint
    counting ``in_flight`` (this daemon's claims held by endpoint), oldest due first.

    A claim's lease is ``lease`` plus one ``queue_step`` per round of attempts ahead of it in
    the daemon's queue: the k-th claim held for an endpoint (from 0, counting those held
    already) that sends ``sends`` attempts at once waits at most ``k // sends`` rounds of at
    most ``queue_step`` (the attempt timeout) before it is sent."""
    if limit <= 0:
        return Claimed([], True)
    counts = dict(in_flight)
    chosen: list[Any] = []
    leases: dict[int, datetime] = {}  # delivery pk -> the end of its lease
    more = skipped = False
    # Oldest due first, a page at a time; an endpoint that reaches its limit is left out of
    # the next page, so a backlog of one endpoint costs one page, not a scan of its backlog.
    for _ in range(CLAIM_PAGES):
        full = sorted(pk for pk, n in counts.items() if n >= per_endpoint)
        query = select(
            dl.c.id, dl.c.endpoint_pk, dl.c.event_pk, dl.c.attempts, dl.c.state, dl.c.round
        ).where(dl.c.due_at <= now)
        if full:
            query = query.where(dl.c.endpoint_pk.not_in(full))
        if chosen:
            query = query.where(dl.c.id.not_in([r.id for r in chosen]))
        page = min(limit - len(chosen), 2 * per_endpoint, 1000)
        candidates = conn.execute(
            query.order_by(dl.c.due_at, dl.c.id).limit(page).with_for_update(skip_locked=True)
        ).all()
        for row in candidates:
            ahead = counts.get(row.endpoint_pk, 0)
            if ahead >= per_endpoint or len(chosen) == limit:
                skipped = True
                continue
            counts[row.endpoint_pk] = ahead + 1
            chosen.append(row)
            leases[row.id] = now + lease + (ahead // max(1, sends)) * queue_step
        more = skipped or len(candidates) == page
        if len(candidates) < page or len(chosen) == limit:
            break
    if not chosen:
        return Claimed([], more)
    endpoints = {
        r.id: r
        for r in conn.execute(
            select(ep.c.id, ep.c.endpoint_id, ep.c.url, ep.c.secret, ep.c.enabled).where(
                ep.c.id.in_({r.endpoint_pk for r in chosen})
            )
        )
    }
    event_rows = {
        r.id: r
        for r in conn.execute(
            select(
                events.c.id,
                events.c.event_id,
                events.c.seq,
                events.c.type,
                events.c.created_at,
                events.c.data,
            ).where(events.c.id.in_({r.event_pk for r in chosen}))
        )
    }
    # An attempt whose lease ran out without an outcome (its daemon died or hung).
    abandoned = [{"b_pk": r.id, "b_attempt": r.attempts} for r in chosen if r.state == IN_FLIGHT]
    if abandoned:
        conn.execute(
            update(at)
            .where(
                at.c.delivery_pk == bindparam("b_pk"),
                at.c.attempt == bindparam("b_attempt"),
                at.c.result == IN_FLIGHT,
            )
            .values(result="abandoned", error="no outcome before the lease ran out"),
            abandoned,
        )
    disabled = [r.id for r in chosen if not endpoints[r.endpoint_pk].enabled]
    if disabled:
        conn.execute(
            update(dl)
            .where(dl.c.id.in_(disabled))
            .values(state=CANCELLED, due_at=None, completed_at=now, lease_owner=None)
        )
    claims: list[Claim] = []
    leased, logged = [], []
    for row in chosen:
        endpoint = endpoints[row.endpoint_pk]
        if not endpoint.enabled:
            continue
        event = event_rows[row.event_pk]
        claim = Claim(
            delivery_pk=row.id,
            attempt=row.attempts + 1,
            delivery_id=new_delivery_id(),
            endpoint_pk=row.endpoint_pk,
            endpoint_id=endpoint.endpoint_id,
            url=endpoint.url,
            secret=endpoint.secret,
            event_id=event.event_id,
            seq=int(event.seq),
            type=event.type,
            created_at=event.created_at,
            data=event.data,
        )
        claims.append(claim)
        leased.append({"b_pk": row.id, "b_attempt": claim.attempt, "b_due": leases[row.id]})
        logged.append(
            {
                "delivery_id": claim.delivery_id,
                "delivery_pk": row.id,
                "endpoint_pk": row.endpoint_pk,
                "event_id": claim.event_id,
                "event_type": claim.type,
                "redelivery": row.round > 0,
                "attempt": claim.attempt,
                "attempted_at": now,
                "result": IN_FLIGHT,
            }
        )
    if leased:
        conn.execute(
            update(dl)
            .where(dl.c.id == bindparam("b_pk"))
            .values(
                state=IN_FLIGHT,
                attempts=bindparam("b_attempt"),
                due_at=bindparam("b_due"),
                lease_owner=owner,
            ),
            leased,
        )
        conn.execute(at.insert(), logged)
    return Claimed(claims, more)


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt got, and when to try again if it failed."""

    delivery_pk: int
    attempt: int
    delivery_id: str
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    retry_at: datetime  # ignored when ok
    sent_at: datetime | None = None  # None: never sent (the daemon stopped first)


def complete_attempts(
    conn: Connection,
    outcomes: Sequence[AttemptResult],
    *,
    owner: str,
    now: datetime,
    max_age: timedelta,
) -> list[str]:
    """Record the outcomes; each one's result: success, retry, failed, cancelled, or stale
    (the lease had been lost: the log gets the outcome, the delivery is left alone)."""
    if not outcomes:
        return []
    rows = {
        r.id: r
        for r in conn.execute(
            select(
                dl.c.id, dl.c.state, dl.c.attempts, dl.c.lease_owner, dl.c.created_at, ep.c.enabled
            )
            .join(ep, ep.c.id == dl.c.endpoint_pk)
            .where(dl.c.id.in_({o.delivery_pk for o in outcomes}))
            .with_for_update(of=dl)
        )
    }
    results: list[str] = []
    final = {"success": SUCCEEDED, "failed": FAILED, "cancelled": CANCELLED}
    settled: list[dict[str, Any]] = []  # deliveries whose lease this outcome held
    logged: list[dict[str, Any]] = []  # their attempts' log rows
    late: list[dict[str, Any]] = []  # attempts whose lease was lost: the log only
    for o in outcomes:
        row = rows.get(o.delivery_pk)
        held = (
            row is not None
            and row.state == IN_FLIGHT
            and row.lease_owner == owner
            and row.attempts == o.attempt
        )
        next_at: datetime | None = None
        if not held or row is None:
            result = "stale"
        elif o.ok:
            result = "success"
        elif not row.enabled:
            result = "cancelled"
        elif o.retry_at > row.created_at + max_age:
            result = "failed"
        else:
            result, next_at = "retry", o.retry_at
        if held:
            settled.append(
                {
                    "b_pk": o.delivery_pk,
                    "b_state": final.get(result, PENDING),
                    "b_due": next_at,
                    "b_completed": None if result == "retry" else now,
                }
            )
        (late if result == "stale" else logged).append(
            {
                "b_pk": o.delivery_pk,
                "b_attempt": o.attempt,
                "b_result": ("success" if o.ok else "abandoned") if result == "stale" else result,
                "b_status": o.status_code,
                "b_error": o.error[:200] if o.error else None,
                "b_ms": o.duration_ms if o.sent_at is not None else None,
                "b_next": next_at,
                "b_sent": o.sent_at,  # None: never sent, attempted_at stays the claim's
            }
        )
        results.append(result)
    if settled:
        conn.execute(
            update(dl)
            .where(dl.c.id == bindparam("b_pk"))
            .values(
                state=bindparam("b_state"),
                due_at=bindparam("b_due"),
                lease_owner=None,
                completed_at=bindparam("b_completed"),
            ),
            settled,
        )
    for rows_, stale in ((logged, False), (late, True)):
        if not rows_:
            continue
        where = (at.c.delivery_pk == bindparam("b_pk")) & (at.c.attempt == bindparam("b_attempt"))
        if stale:  # fill in an attempt that has no outcome yet, never overwrite one
            # (two comparisons, not IN: an expanding IN cannot go in an executemany)
            where = where & or_(at.c.result == IN_FLIGHT, at.c.result == "abandoned")
        conn.execute(
            update(at)
            .where(where)
            .values(
                result=bindparam("b_result"),
                status_code=bindparam("b_status"),
                error=bindparam("b_error"),
                duration_ms=bindparam("b_ms"),
                next_attempt_at=bindparam("b_next"),
                attempted_at=func.coalesce(
                    bindparam("b_sent", type_=at.c.attempted_at.type), at.c.attempted_at
                ),
            ),
            rows_,
        )
    return results


@dataclass(frozen=True)
class ClaimRequest:
    """What :func:`claim_due` needs besides the connection and the time."""

    owner: str
    lease: timedelta
    limit: int
    in_flight: Mapping[int, int]
    per_endpoint: int
    new_delivery_id: Callable[[], str]
    queue_step: timedelta = timedelta(0)
    sends: int = 1


@dataclass(frozen=True)
class Cycled:
    results: list[str]  # complete_attempts' result of each outcome, in order
    dispatched: Dispatched | None  # None: no dispatch was asked for
    claimed: Claimed | None  # None: no claim was asked for


def cycle(
    conn: Connection,
    *,
    now: datetime,
    outcomes: Sequence[AttemptResult],
    owner: str,
    max_age: timedelta,
    dispatching: str | None,
    claim: ClaimRequest | None,
) -> Cycled:
    """In one transaction: record ``outcomes`` (:func:`complete_attempts`), dispatch new events
    when ``dispatching`` says so (``"all"``, or ``"served"``: a dispatch woken by a commit,
    ``gateway.store.webhooks.dispatch(served_only=True)``), then claim due deliveries when
    ``claim`` is given (:func:`claim_due`), in that order, so that a delivery just recorded as
    a retry or just dispatched is seen by the claim."""
    results = complete_attempts(conn, outcomes, owner=owner, now=now, max_age=max_age)
    dispatched = (
        None if dispatching is None else dispatch(conn, now, served_only=dispatching == "served")
    )
    claimed = (
        None
        if claim is None
        else claim_due(
            conn,
            now=now,
            owner=claim.owner,
            lease=claim.lease,
            limit=claim.limit,
            in_flight=claim.in_flight,
            per_endpoint=claim.per_endpoint,
            new_delivery_id=claim.new_delivery_id,
            queue_step=claim.queue_step,
            sends=claim.sends,
        )
    )
    return Cycled(results, dispatched, claimed)


def queue_depth(conn: Connection, now: datetime) -> dict[str, int]:
    """Deliveries not final: due (waiting for a worker), retrying (waiting for their next
    attempt), in_flight."""
    due = (dl.c.state == PENDING) & (dl.c.due_at <= now)
    rows = conn.execute(
        select(dl.c.state, due.label("due"), func.count())
        .where(dl.c.due_at.is_not(None))
        .group_by(dl.c.state, due)
    ).all()
    depth = {"due": 0, "retrying": 0, "in_flight": 0}
    for state, is_due, n in rows:
        key = "in_flight" if state == IN_FLIGHT else ("due" if is_due else "retrying")
        depth[key] += int(n)
    return depth
