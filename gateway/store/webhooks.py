"""Webhook endpoints, the dispatcher's cursors, the delivery queue and the delivery log.

Dispatch: a biller's ``seq`` is gap-free and commits in order (``append_event`` holds the biller
row lock until commit), so a committed ``billers.last_event_seq = N`` means that events
1..N are all visible. The dispatcher keeps one cursor per biller, locks it with
``FOR UPDATE SKIP LOCKED`` (another daemon's dispatcher skips that biller meanwhile), turns
the events after it into deliveries and moves it, in one transaction. (A cursor over the
global ``events.id`` could skip an event on PostgreSQL: an identity value is taken at insert,
so a smaller id can commit after a larger one has been read.)

Claims and outcomes are :mod:`gateway.store.webhook_queue`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection, Row

from gateway.errors import Conflict, NotFound
from gateway.store.dialect import dialect_insert
from gateway.store.schema import (
    billers,
    events,
    webhook_attempts,
    webhook_cursors,
    webhook_deliveries,
    webhook_endpoints,
)

MAX_ENABLED_ENDPOINTS = 20  # per biller

# Delivery states; the last three are final (due_at NULL, completed_at set).
PENDING, IN_FLIGHT = "pending", "in_flight"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"

ep, cur, dl, at = webhook_endpoints, webhook_cursors, webhook_deliveries, webhook_attempts


@dataclass(frozen=True)
class Endpoint:
    pk: int
    endpoint_id: str
    biller_id: str
    url: str
    events: tuple[str, ...]  # ("*",) or event types
    enabled: bool
    created_at: datetime
    disabled_at: datetime | None

    def wants(self, event_type: str) -> bool:
        return self.events == ("*",) or event_type in self.events


def _endpoint(row: Row[Any]) -> Endpoint:
    return Endpoint(
        pk=row.id,
        endpoint_id=row.endpoint_id,
        biller_id=row.biller_id,
        url=row.url,
        events=tuple(row.events.split(",")),
        enabled=bool(row.enabled),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


_ENDPOINT_COLUMNS = [c for c in ep.columns if c.name != "secret"]


# --- endpoints ---------------------------------------------------------------------------------


def _lock_cursor(
    conn: Connection, biller_id: str, *, skip_locked: bool, create: bool = True
) -> int | None:
    """Lock (creating it at the biller's newest event if needed) the biller's dispatch
    cursor; its ``last_seq``, or None when another transaction holds it and ``skip_locked``."""
    if create:
        conn.execute(
            dialect_insert(conn, cur)
            .on_conflict_do_nothing()
            .from_select(
                ["biller_id", "last_seq"],
                select(billers.c.biller_id, billers.c.last_event_seq).where(
                    billers.c.biller_id == biller_id
                ),
            )
        )
    row = conn.execute(
        select(cur.c.last_seq)
        .where(cur.c.biller_id == biller_id)
        .with_for_update(skip_locked=skip_locked)
    ).first()
    return None if row is None else int(row.last_seq)


def create_endpoint(
    conn: Connection,
    *,
    biller_id: str,
    endpoint_id: str,
    url: str,
    event_types: Sequence[str],
    secret: str,
    now: datetime,
) -> Endpoint:
    """Register an endpoint; it receives the events committed after this transaction.

    The biller's cursor row is locked first, so a dispatcher working on this biller either
    finished before (and the endpoint starts after what it saw) or sees the endpoint.
    """
    _lock_cursor(conn, biller_id, skip_locked=False)
    enabled = conn.execute(
        select(func.count()).where(ep.c.biller_id == biller_id, ep.c.enabled.is_(True))
    ).scalar_one()
    if enabled >= MAX_ENABLED_ENDPOINTS:
        raise Conflict(
            f"a biller has at most {MAX_ENABLED_ENDPOINTS} enabled webhook endpoints:"
            " delete one first"
        )
    last_seq = conn.execute(
        select(billers.c.last_event_seq).where(billers.c.biller_id == biller_id)
    ).scalar_one()
    conn.execute(
        ep.insert().values(
            endpoint_id=endpoint_id,
            biller_id=biller_id,
            url=url,
            events=",".join(event_types),
            secret=secret,
            enabled=True,
            after_seq=last_seq,
            created_at=now,
        )
    )
    found = get_endpoint(conn, biller_id, endpoint_id)
    assert found is not None
    return found


def endpoint_secret(conn: Connection, biller_id: str, endpoint_id: str) -> str | None:
    """The secret as stored (encrypted: gateway.infra.secretbox)."""
    found = conn.execute(
        select(ep.c.secret).where(ep.c.biller_id == biller_id, ep.c.endpoint_id == endpoint_id)
    ).scalar()
    return None if found is None else str(found)


def plain_secrets(conn: Connection) -> list[tuple[int, str, str]]:
    """(pk, endpoint_id, secret) of the secrets stored in clear (before migration 0009)."""
    rows = conn.execute(
        select(ep.c.id, ep.c.endpoint_id, ep.c.secret).where(ep.c.secret.not_like("v1:%"))
    ).all()
    return [(r.id, r.endpoint_id, r.secret) for r in rows]


def set_secret(conn: Connection, pk: int, plain: str, sealed: str) -> None:
    """Replace a plain secret by its encrypted form (only if it is still the same plain one)."""
    conn.execute(update(ep).where(ep.c.id == pk, ep.c.secret == plain).values(secret=sealed))


def get_endpoint(conn: Connection, biller_id: str, endpoint_id: str) -> Endpoint | None:
    row = conn.execute(
        select(*_ENDPOINT_COLUMNS).where(
            ep.c.biller_id == biller_id, ep.c.endpoint_id == endpoint_id
        )
    ).first()
    return None if row is None else _endpoint(row)


def list_endpoints(conn: Connection, biller_id: str, after_pk: int, limit: int) -> list[Endpoint]:
    rows = conn.execute(
        select(*_ENDPOINT_COLUMNS)
        .where(ep.c.biller_id == biller_id, ep.c.id > after_pk)
        .order_by(ep.c.id)
        .limit(limit)
    ).all()
    return [_endpoint(r) for r in rows]


def disable_endpoint(conn: Connection, biller_id: str, endpoint_id: str, now: datetime) -> Endpoint:
    """Disable an endpoint (again: no change) and cancel its deliveries that wait for an
    attempt; one in flight finishes, and is not retried."""
    found = get_endpoint(conn, biller_id, endpoint_id)
    if found is None:
        raise NotFound(f"webhook endpoint {endpoint_id[:40]}")
    if not found.enabled:
        return found
    conn.execute(update(ep).where(ep.c.id == found.pk).values(enabled=False, disabled_at=now))
    conn.execute(
        update(dl)
        .where(dl.c.endpoint_pk == found.pk, dl.c.state == PENDING)
        .values(state=CANCELLED, due_at=None, completed_at=now)
    )
    disabled = get_endpoint(conn, biller_id, endpoint_id)
    assert disabled is not None
    return disabled


def enable_endpoint(conn: Connection, biller_id: str, endpoint_id: str, now: datetime) -> Endpoint:
    """Enable a disabled endpoint again (an enabled one: no change). It receives the events
    committed after this transaction, as a new endpoint would: what happened while it was
    disabled is not sent (a redelivery sends one such event). :class:`Conflict` when the
    biller already has :data:`MAX_ENABLED_ENDPOINTS` enabled."""
    found = get_endpoint(conn, biller_id, endpoint_id)
    if found is None:
        raise NotFound(f"webhook endpoint {endpoint_id[:40]}")
    if found.enabled:
        return found
    _lock_cursor(conn, biller_id, skip_locked=False)  # as create_endpoint: see its docstring
    enabled = conn.execute(
        select(func.count()).where(ep.c.biller_id == biller_id, ep.c.enabled.is_(True))
    ).scalar_one()
    if enabled >= MAX_ENABLED_ENDPOINTS:
        raise Conflict(
            f"a biller has at most {MAX_ENABLED_ENDPOINTS} enabled webhook endpoints:"
            " delete one first"
        )
    last_seq = conn.execute(
        select(billers.c.last_event_seq).where(billers.c.biller_id == biller_id)
    ).scalar_one()
    conn.execute(
        update(ep)
        .where(ep.c.id == found.pk)
        .values(enabled=True, disabled_at=None, after_seq=last_seq)
    )
    again = get_endpoint(conn, biller_id, endpoint_id)
    assert again is not None
    return again


# --- dispatch ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dispatched:
    events: int  # events walked past
    deliveries: int  # deliveries created
    more: bool  # the budget ran out before every cursor was at its biller's last event


def dispatch(
    conn: Connection, now: datetime, budget: int = 1000, *, served_only: bool = False
) -> Dispatched:
    """Turn events after each biller's cursor into deliveries for its enabled endpoints that
    want them, and move the cursors; at most ``budget`` events in one transaction.

    ``served_only`` (a dispatch woken by a commit): only the billers that have an enabled
    endpoint, and no new cursor; the cursors of the others (nothing to deliver, only to move)
    are left to the next full dispatch, so that a commit of a biller without webhooks costs a
    read, not a write."""
    if not served_only:
        # Billers seen for the first time (no endpoint was ever created for them): start at
        # their newest event. Anything before cannot have an endpoint to go to.
        conn.execute(
            dialect_insert(conn, cur)
            .on_conflict_do_nothing()
            .from_select(
                ["biller_id", "last_seq"],
                select(billers.c.biller_id, billers.c.last_event_seq).where(
                    billers.c.biller_id.not_in(select(cur.c.biller_id))
                ),
            )
        )
    query = (
        select(billers.c.biller_id, billers.c.last_event_seq)
        .join(cur, cur.c.biller_id == billers.c.biller_id)
        .where(billers.c.last_event_seq > cur.c.last_seq)
    )
    if served_only:
        query = query.where(
            select(ep.c.id)
            .where(ep.c.biller_id == billers.c.biller_id, ep.c.enabled.is_(True))
            .exists()
        )
    behind = conn.execute(query.order_by(billers.c.biller_id)).all()
    walked = created = 0
    more = False
    for biller_id, target in behind:
        if walked >= budget:
            more = True
            break
        last_seq = _lock_cursor(conn, biller_id, skip_locked=True, create=False)
        if last_seq is None or last_seq >= target:
            continue  # another dispatcher has it, or has just done it
        found = conn.execute(
            select(*_ENDPOINT_COLUMNS).where(ep.c.biller_id == biller_id, ep.c.enabled.is_(True))
        ).all()
        endpoints = [_endpoint(r) for r in found]
        after = {r.id: int(r.after_seq) for r in found}
        if not endpoints:
            new_last = int(target)
        else:
            rows = conn.execute(
                select(events.c.id, events.c.seq, events.c.type)
                .where(
                    events.c.biller_id == biller_id,
                    events.c.seq > last_seq,
                    events.c.seq <= target,
                )
                .order_by(events.c.seq)
                .limit(budget - walked)
            ).all()
            if not rows:
                continue
            new = [
                {
                    "endpoint_pk": e.pk,
                    "event_pk": r.id,
                    "round": 0,
                    "state": PENDING,
                    "attempts": 0,
                    "due_at": now,
                    "created_at": now,
                }
                for r in rows
                for e in endpoints
                if r.seq > after[e.pk] and e.wants(r.type)
            ]
            if new:
                conn.execute(dl.insert(), new)
            created += len(new)
            walked += len(rows)
            new_last = int(rows[-1].seq)
            more = more or new_last < target
        conn.execute(update(cur).where(cur.c.biller_id == biller_id).values(last_seq=new_last))
    return Dispatched(walked, created, more)


def redeliver(
    conn: Connection,
    biller_id: str,
    event_id: str,
    endpoint_id: str | None,
    now: datetime,
) -> tuple[str, list[tuple[Endpoint, int]]]:
    """A new delivery (next round) of one of the biller's events to each enabled endpoint that
    wants its type, or to ``endpoint_id`` only; (event type, [(endpoint, round)])."""
    event = conn.execute(
        select(events.c.id, events.c.type)
        .where(events.c.biller_id == biller_id, events.c.event_id == event_id)
        .with_for_update()  # two redelivers of one event take rounds one after the other
    ).first()
    if event is None:
        raise NotFound(f"event {event_id[:40]}")
    if endpoint_id is not None:
        one = get_endpoint(conn, biller_id, endpoint_id)
        if one is None:
            raise NotFound(f"webhook endpoint {endpoint_id[:40]}")
        if not one.enabled:
            raise Conflict(f"webhook endpoint {endpoint_id} is disabled", field="endpoint_id")
        targets = [one]
    else:
        targets = [
            e
            for e in (
                _endpoint(r)
                for r in conn.execute(
                    select(*_ENDPOINT_COLUMNS)
                    .where(ep.c.biller_id == biller_id, ep.c.enabled.is_(True))
                    .order_by(ep.c.id)
                )
            )
            if e.wants(event.type)
        ]
        if not targets:
            raise Conflict(f"no enabled webhook endpoint of this biller wants {event.type} events")
    made: list[tuple[Endpoint, int]] = []
    for target in targets:
        last = conn.execute(
            select(func.max(dl.c.round)).where(
                dl.c.endpoint_pk == target.pk, dl.c.event_pk == event.id
            )
        ).scalar()
        round_ = 1 if last is None else int(last) + 1
        conn.execute(
            dl.insert().values(
                endpoint_pk=target.pk,
                event_pk=event.id,
                round=round_,
                state=PENDING,
                attempts=0,
                due_at=now,
                created_at=now,
            )
        )
        made.append((target, round_))
    return str(event.type), made


# --- the delivery log, purging ------------------------------------------------------------------


def list_attempts(
    conn: Connection,
    endpoint: Endpoint,
    *,
    before_id: int | None,
    event_id: str | None,
    limit: int,
) -> list[Row[Any]]:
    """The endpoint's attempts, newest first."""
    query = select(at).where(at.c.endpoint_pk == endpoint.pk)
    if before_id is not None:
        query = query.where(at.c.id < before_id)
    if event_id is not None:
        query = query.where(at.c.event_id == event_id)
    return list(conn.execute(query.order_by(at.c.id.desc()).limit(limit)).all())


def purge_finished(conn: Connection, before: datetime) -> int:
    """Delete deliveries that ended before ``before``, with their attempts."""
    old = select(dl.c.id).where(dl.c.completed_at < before)
    conn.execute(delete(at).where(at.c.delivery_pk.in_(old)))
    return int(conn.execute(delete(dl).where(dl.c.completed_at < before)).rowcount)
