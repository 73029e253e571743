"""Bill creations committed in groups (issue 18): what one group of
:meth:`gateway.billing.bills.BillService.create` shares.

Every creation that arrives while a group's transaction runs goes into the next group
(:class:`gateway.store.group.GroupCommitter`), each in its own savepoint: a refused one rolls
back alone. The group reads each biller once, and writes the outbox events of all its new bills
at its end (:meth:`Creations.finish`): one ``UPDATE`` of each biller's row for the seqs and one
statement for the events, so the biller row is locked only from there to the commit, and
groups running at once on PostgreSQL overlap up to that point. A creation's event is kept for
the group only once its savepoint is released: a creation refused after its bill was inserted
leaves no event behind. The events of a group are stamped with the newest request time of its
creations (a bill's own ``created_at`` is its request's): a few milliseconds apart at most.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from datetime import datetime

from prometheus_client import Histogram
from sqlalchemy.engine import Connection

from gateway.model import Biller, EventType, StoredResponse
from gateway.store import Store
from gateway.store.billers import ensure_active, get_biller
from gateway.store.events import append_events
from gateway.store.group import GroupCommitter

__all__ = ["CREATE_GROUP_SIZE", "MAX_CREATE_GROUP", "CreateWork", "Creations"]

MAX_CREATE_GROUP = 100  # bill creations committed together at most (each in its savepoint)
# Groups at once on PostgreSQL: a group's time there is mostly round trips, and the store has
# database.pool_size connections; the rest stay free for the other requests.
MAX_CONCURRENT_GROUPS = 4

CREATE_GROUP_SIZE = Histogram(
    "gateway_bills_create_group_size",
    "Bill creations (API and console) committed together in one transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100),
)

# One bill creation: its whole transaction's work, run in its savepoint of a group.
CreateWork = Callable[[Connection], StoredResponse]
Event = tuple[str, str, str]  # (event_id, type, data encoded) as append_events takes them


class _Group:
    """One group's state, in the thread that runs its transaction."""

    def __init__(self, transaction: object) -> None:
        self.transaction = transaction
        self.billers: dict[str, Biller] = {}
        self.events: dict[str, list[Event]] = {}  # by biller, in the order of the items
        self.item: list[tuple[str, Event]] = []  # the running item's, kept if it succeeds
        self.now: datetime | None = None  # the newest request time of the group's events


class Creations:
    def __init__(self, store: Store) -> None:
        self._local = threading.local()
        concurrency = 1 if store.dialect == "sqlite" else MAX_CONCURRENT_GROUPS
        self.committer: GroupCommitter[CreateWork, StoredResponse] = GroupCommitter(
            store,
            "bills.create",
            max_group=MAX_CREATE_GROUP,
            apply_one=self._apply_one,
            observe=CREATE_GROUP_SIZE.observe,
            finish=self.finish,
            concurrency=concurrency,
        )

    def _group(self, conn: Connection) -> _Group:
        """This transaction's group: a group run again (a retry) is a new transaction and
        starts afresh."""
        transaction = conn.get_transaction()
        group: _Group | None = getattr(self._local, "group", None)
        if group is None or group.transaction is not transaction:
            group = self._local.group = _Group(transaction)
        return group

    def _apply_one(self, conn: Connection, work: CreateWork) -> StoredResponse:
        group = self._group(conn)
        group.item = []
        response = work(conn)  # raising, its events are dropped with its savepoint
        for biller_id, event in group.item:
            group.events.setdefault(biller_id, []).append(event)
        group.item = []
        return response

    def biller(self, conn: Connection, biller_id: str) -> Biller:
        """The biller to issue a bill for, read once per group: the row the group's first
        item read holds for the rest of its transaction."""
        billers = self._group(conn).billers
        biller = billers.get(biller_id)
        if biller is None:
            biller = billers[biller_id] = get_biller(conn, biller_id)
        return ensure_active(biller)  # none for a suspended biller

    def created(self, conn: Connection, biller_id: str, data: str, now: datetime) -> None:
        """The ``bill.created`` event of a new bill (``data`` encoded), written at the group's
        end if its creation succeeds."""
        group = self._group(conn)
        event = ("evt_" + secrets.token_hex(12), EventType.BILL_CREATED.value, data)
        group.item.append((biller_id, event))
        group.now = now if group.now is None else max(group.now, now)

    def finish(self, conn: Connection) -> None:
        """The group's events, biller by biller in a fixed order (two groups at once on
        PostgreSQL lock their billers' rows in the same order: no deadlock)."""
        group = self._group(conn)
        self._local.group = None
        for biller_id in sorted(group.events):
            assert group.now is not None
            append_events(conn, biller_id, group.events[biller_id], group.now)
