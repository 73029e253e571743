"""The console's delivery log of a webhook endpoint: its deliveries (one per event and round:
round 0 from the dispatcher, 1, 2… for each redelivery), newest event first, each with its
event, its state, how many attempts it took, the last attempt's answer and when the next one is
due.

The API's ``GET /v1/webhook-endpoints/{id}/deliveries`` lists attempts; a person asks first
"did this event get there", which is the delivery. A delivery waiting for its first attempt
shows too. Walked by the unique index on (endpoint, event, round).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection

from gateway.store.schema import events, webhook_attempts, webhook_deliveries
from gateway.store.webhooks import Endpoint

dl, at = webhook_deliveries, webhook_attempts


@dataclass(frozen=True)
class DeliveryRow:
    event_id: str
    event_type: str
    event_at: datetime
    round: int  # 0: the first delivery; 1, 2…: redeliveries
    state: str  # pending, in_flight, succeeded, failed, cancelled
    attempts: int
    next_attempt_at: datetime | None  # while pending (or in flight: when its lease ends)
    completed_at: datetime | None
    last_attempt_at: datetime | None
    last_result: str | None  # in_flight, success, retry, failed…
    last_status: int | None  # the receiver's HTTP status, if it answered
    last_error: str | None  # as stored (gateway.webhooks.attempts.shown_error shows it)
    cursor: str  # "<event pk>.<round>": the page after this row starts after it


def delivery_log(
    conn: Connection,
    endpoint: Endpoint,
    *,
    limit: int,
    after: tuple[int, int] | None = None,
    event_id: str | None = None,
) -> list[DeliveryRow]:
    """At most ``limit`` deliveries of ``endpoint``, newest event first (its rounds newest
    first), after the ``(event pk, round)`` of the last row of the previous page; ``event_id``:
    that event's only."""
    last = and_(at.c.delivery_pk == dl.c.id, at.c.attempt == dl.c.attempts)
    query = (
        select(
            dl.c.event_pk,
            dl.c.round,
            dl.c.state,
            dl.c.attempts,
            dl.c.due_at,
            dl.c.completed_at,
            events.c.event_id,
            events.c.type,
            events.c.created_at,
            at.c.attempted_at,
            at.c.result,
            at.c.status_code,
            at.c.error,
        )
        .select_from(dl.join(events, events.c.id == dl.c.event_pk).outerjoin(at, last))
        .where(dl.c.endpoint_pk == endpoint.pk)
    )
    if after is not None:
        pk, round_ = after
        query = query.where(or_(dl.c.event_pk < pk, and_(dl.c.event_pk == pk, dl.c.round < round_)))
    if event_id is not None:
        query = query.where(events.c.event_id == event_id)
    rows = conn.execute(query.order_by(dl.c.event_pk.desc(), dl.c.round.desc()).limit(limit))
    return [
        DeliveryRow(
            event_id=r.event_id,
            event_type=r.type,
            event_at=r.created_at,
            round=int(r.round),
            state=r.state,
            attempts=int(r.attempts),
            next_attempt_at=r.due_at,
            completed_at=r.completed_at,
            last_attempt_at=r.attempted_at,
            last_result=r.result,
            last_status=r.status_code,
            last_error=r.error,
            cursor=f"{int(r.event_pk)}.{int(r.round)}",
        )
        for r in rows
    ]
