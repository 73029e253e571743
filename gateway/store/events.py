"""The events outbox: written in the same transaction as the change it describes."""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from gateway.store.copy import copy_rows
from gateway.store.schema import billers, events
from gateway.store.signals import OUTBOX, raise_signal


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    biller_id: str
    seq: int
    type: str
    created_at: datetime
    data: Mapping[str, Any]


def append_event(
    conn: Connection,
    *,
    biller_id: str,
    event_id: str,
    type: str,
    data: Mapping[str, Any],
    now: datetime,
) -> int:
    """Add one event (through :func:`append_events`); returns its per-biller ``seq``."""
    return append_events(conn, biller_id, [(event_id, type, data)], now)


def list_events(
    conn: Connection,
    biller_id: str,
    after: int,
    limit: int,
    *,
    decode: Container[str] | None = None,
) -> list[StoredEvent]:
    """The biller's events after seq ``after``, in seq order. With ``decode``, only events of
    those types have their data decoded; the others come with empty data (a reader that walks
    every event but looks into a few — the notice job — does not pay for decoding the rest)."""
    rows = conn.execute(
        select(events)
        .where(events.c.biller_id == biller_id, events.c.seq > after)
        .order_by(events.c.seq)
        .limit(limit)
    ).all()
    return [
        StoredEvent(
            r.event_id,
            r.biller_id,
            r.seq,
            r.type,
            r.created_at,
            json.loads(r.data) if decode is None or r.type in decode else {},
        )
        for r in rows
    ]


def event_json(data: Mapping[str, Any]) -> str:
    """An event's data as stored (and as the feed and webhooks send it)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def append_events(
    conn: Connection,
    biller_id: str,
    new: Sequence[tuple[str, str, Mapping[str, Any] | str]],
    now: datetime,
) -> int:
    """The one writer of the outbox: add events of one biller (event_id, type, data) with
    consecutive seqs; returns the last ``seq`` (0 when ``new`` is empty). ``type`` is an
    :class:`~gateway.model.EventType` (the ledger's ``LedgerChange.events``); ``data`` may come
    already encoded by :func:`event_json` (bulk registration keeps only that).

    One ``UPDATE ... RETURNING`` on the biller row reserves the seqs and holds the row lock
    until commit, so one biller's events commit in ``seq`` order with no gap: a reader that
    keeps the last ``seq`` it saw never misses one. Call it last in a transaction, to hold the
    lock as briefly as possible. One event is one ``INSERT``; several are one statement
    (PostgreSQL: ``COPY``).

    It raises the ``outbox`` signal (``gateway.store.signals``): once the transaction commits,
    webhook delivery in this process is woken at once, and on PostgreSQL a ``NOTIFY
    gateway_outbox`` (one per transaction) wakes the other daemons' delivery.
    """
    if len(new) == 1:
        last = _reserve_seqs(conn, biller_id, 1)
        conn.execute(events.insert().values(**_event_row(biller_id, last, now, *new[0])))
        raise_signal(conn, OUTBOX)
        return last
    return append_event_chunks(conn, biller_id, len(new), [new], now)


def append_event_chunks(
    conn: Connection,
    biller_id: str,
    count: int,
    chunks: Iterable[Sequence[tuple[str, str, Mapping[str, Any] | str]]],
    now: datetime,
) -> int:
    """:func:`append_events` of ``count`` events given a chunk at a time (bulk registration
    reads them back from a spool): the seqs of all are reserved at once, each chunk is one
    statement. ``chunks`` must hold exactly ``count`` events."""
    if not count:
        return 0
    last = _reserve_seqs(conn, biller_id, count)
    seq = last - count + 1
    for chunk in chunks:
        rows = [_event_row(biller_id, seq + i, now, *event) for i, event in enumerate(chunk)]
        seq += len(rows)
        copy_rows(conn, events, rows)  # PostgreSQL: COPY; elsewhere executemany
    if seq != last + 1:
        raise ValueError(f"{count} events announced, {seq - (last - count + 1)} given")
    raise_signal(conn, OUTBOX)
    return last


def _reserve_seqs(conn: Connection, biller_id: str, count: int) -> int:
    """The last of ``count`` new seqs of the biller's events; locks its row until the commit."""
    last = conn.execute(
        update(billers)
        .where(billers.c.biller_id == biller_id)
        .values(last_event_seq=billers.c.last_event_seq + count)
        .returning(billers.c.last_event_seq)
    ).scalar_one()
    return int(last)


def _event_row(
    biller_id: str,
    seq: int,
    now: datetime,
    event_id: str,
    type: str,
    data: Mapping[str, Any] | str,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "biller_id": biller_id,
        "seq": seq,
        "type": str(type),  # an EventType is stored as its value
        "created_at": now,
        "data": data if isinstance(data, str) else event_json(data),
    }
