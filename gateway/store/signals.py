"""After-commit signals: a transaction says what kind of row it wrote; once it has committed,
the :class:`~gateway.store.Store` tells the listeners of that topic in this process, and on
PostgreSQL a ``NOTIFY`` in the same transaction tells the other daemons on the database.

Rules:

- A topic is raised at most once per transaction (:func:`raise_signal` answers the payload to
  notify with the first time, ``None`` after), so a transaction that writes many events sends
  one ``NOTIFY`` and wakes each listener once.
- A signal is a hint, never the record: nothing is lost when one is missed (a rolled-back or
  unknown commit, a listening connection that was down), because every listener also polls.
  Listeners read what is new from the tables themselves.
- The ``NOTIFY`` payload is the writing Store's token (``""`` outside a Store transaction, e.g.
  ``gateway-admin``), so a daemon's listening connection skips its own notifications: the Store
  has told its listeners already, without a round trip.
- The channel of a topic is ``gateway_<topic>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.engine import Connection

OUTBOX: Final = "outbox"  # events were appended to the outbox (gateway.store.events)

_KEY: Final = "gateway.signals"  # in Connection.info, for the length of one Store transaction


def channel(topic: str) -> str:
    """The PostgreSQL ``LISTEN``/``NOTIFY`` channel of a topic."""
    return f"gateway_{topic}"


@dataclass
class Raised:
    """The topics one Store transaction has raised, and the Store's token."""

    token: str
    topics: set[str] = field(default_factory=set)
    info: dict[Any, Any] = field(default_factory=dict, repr=False)  # the connection's

    def close(self) -> None:
        """Stop collecting (the Store, before the connection goes back to the pool). Safe on a
        connection that was lost meanwhile: the dict is the one taken at the start."""
        self.info.pop(_KEY, None)


def open_signals(conn: Connection, token: str) -> Raised:
    """Start collecting this transaction's signals (the Store, at the start of a transaction)."""
    raised = Raised(token, info=conn.info)
    conn.info[_KEY] = raised
    return raised


def raise_signal(conn: Connection, topic: str) -> str | None:
    """Mark ``topic`` as written by this transaction; on PostgreSQL ``NOTIFY`` its channel the
    first time (delivered by the server at commit, and not at all on a rollback). Returns the
    payload notified (the Store's token), or ``None`` when the topic was raised already."""
    raised: Raised | None = conn.info.get(_KEY)
    if raised is not None:
        if topic in raised.topics:
            return None
        raised.topics.add(topic)
    payload = "" if raised is None else raised.token
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": channel(topic), "payload": payload},
        )
    return payload
