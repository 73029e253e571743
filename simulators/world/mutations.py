"""Deliberately broken copies of the gateway, to show that the simulation catches them.

Each mutant is a context manager that patches the real code for as long as it is entered
(``python -m simulators.world --mutant NAME``, and tests/simulators/test_world.py):

- ``ack-before-commit`` — the CVS link answers ``00`` as soon as a record is handed to the
  group committer, before its transaction has committed (a crash, or a failed commit, then
  loses a record the agency was told was stored);
- ``settle-twice`` — a settlement claims the biller's confirmed payments whether or not an
  earlier settlement already took them (a payment can be paid out twice);
- ``dedup-without-constraint`` — received messages are deduplicated by looking first
  (SELECT, then INSERT) instead of by the store's unique constraint, which the mutant's
  database does not have (:func:`prepare_database`): two copies of a message in one group,
  or in two transactions at once, are both stored;
- ``debit-paid-bills`` — the Zengin request run chooses a biller's transfer bills by due date
  and mandate alone, paid or not (a customer who paid at a store is debited as well).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from typing import Any
from unittest import mock

from sqlalchemy import and_, exists, inspect, select, tuple_, update
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred, succeed

import gateway.ingest
import gateway.money.settlement
import gateway.networks.zengin
from gateway.model import CollectionEvent, MandateStatus, PaymentStatus
from gateway.networks.cvs import CvsNetwork
from gateway.store import create_db_engine
from gateway.store import zengin as store_zengin
from gateway.store.schema import (
    bills,
    collection_messages,
    mandates,
    payments,
    refund_cases,
    zengin_request_items,
)


@contextlib.contextmanager
def ack_before_commit() -> Iterator[None]:
    original = CvsNetwork.submit

    def submit(self: CvsNetwork, record: bytes, source: str) -> Deferred[str]:
        d = original(self, record, source)
        if d.called:  # refused at once (10): that answer stays
            return d
        d.addErrback(lambda failure: None)  # its commit is no longer waited for
        return succeed("00")

    with mock.patch.object(CvsNetwork, "submit", submit):
        yield


@contextlib.contextmanager
def settle_twice() -> Iterator[None]:
    def claim_for_settlement(
        conn: Connection, biller_id: str, settlement_id: str, until: datetime
    ) -> None:
        conn.execute(
            update(payments)
            .where(
                payments.c.biller_id == biller_id,
                # the mutation: no "payments.c.settlement_id.is_(None)"
                payments.c.status == PaymentStatus.CONFIRMED.value,
                payments.c.confirmed_at < until,
            )
            .values(settlement_id=settlement_id)
        )
        conn.execute(
            update(refund_cases)
            .where(
                refund_cases.c.biller_id == biller_id,
                refund_cases.c.settlement_id.is_(None),
                refund_cases.c.resolution == "refunded",
                refund_cases.c.resolved_at < until,
            )
            .values(settlement_id=settlement_id)
        )

    with mock.patch.object(gateway.money.settlement, "claim_for_settlement", claim_for_settlement):
        yield


def _record_messages_by_looking(
    conn: Connection, received: Sequence[tuple[CollectionEvent, int | None]]
) -> dict[tuple[str, str, str], int]:
    """gateway.store.ledger.record_messages as it would be without the unique constraint:
    look for the keys first, insert what was not found."""
    if not received:
        return {}
    c = collection_messages.c
    keys = [(e.channel.value, e.kind.value, e.event_key) for e, _ in received]
    found = set(
        conn.execute(
            select(c.channel, c.kind, c.event_key).where(
                tuple_(c.channel, c.kind, c.event_key).in_(keys)
            )
        ).all()
    )
    ids: dict[tuple[str, str, str], int] = {}
    for (event, line), key in zip(received, keys, strict=True):
        if key in found:
            continue
        new_id = conn.execute(
            collection_messages.insert()
            .values(
                channel=key[0],
                kind=key[1],
                event_key=key[2],
                amount=event.amount,
                paid_at=event.paid_at,
                source=event.source[:200],
                line=line,
                raw=event.raw,
                received_at=event.received_at,
                outcome="received",
            )
            .returning(c.id)
        ).scalar_one()
        ids[key] = int(new_id)
    return ids


@contextlib.contextmanager
def dedup_without_constraint() -> Iterator[None]:
    with mock.patch.object(gateway.ingest, "record_messages", _record_messages_by_looking):
        yield


def _due_paid_or_not(
    conn: Connection, biller_id: str, first_due: date, last_due: date, debit_date: date
) -> list[store_zengin.Due]:
    """gateway.store.zengin.due_for_debit without its "bills.status == open"."""
    items = zengin_request_items.c
    already = exists().where(items.bill_id == bills.c.id, items.debit_date == debit_date)
    rows = conn.execute(
        select(bills.c.id.label("bill_id"), bills.c.amount, mandates)
        .join(
            mandates,
            and_(
                mandates.c.biller_id == bills.c.biller_id,
                mandates.c.customer_no == bills.c.customer_no,
            ),
        )
        .where(
            bills.c.biller_id == biller_id,
            # the mutation: no "bills.c.status == BillStatus.OPEN.value"
            bills.c.channels.like("%transfer%"),
            bills.c.due_date >= first_due,
            bills.c.due_date <= last_due,
            mandates.c.status == MandateStatus.ACTIVE.value,
            ~already,
        )
        .order_by(bills.c.id)
    )
    return [store_zengin.Due(r.bill_id, r.amount, r.id, store_zengin._mandate(r)) for r in rows]


@contextlib.contextmanager
def debit_paid_bills() -> Iterator[None]:
    with mock.patch.object(gateway.networks.zengin, "due_for_debit", _due_paid_or_not):
        yield


def drop_message_constraint(url: str) -> None:
    """The mutant's database: collection_messages without its unique constraint."""
    engine = create_db_engine(url, 1)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                sql = conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = 'collection_messages'"
                ).scalar_one()
                bare = re.sub(r",\s*CONSTRAINT \w+ UNIQUE \([^)]*\)", "", sql)
                assert bare != sql, "no unique constraint found"
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.exec_driver_sql(bare.replace("collection_messages", "cm_mutant", 1))
                conn.exec_driver_sql("INSERT INTO cm_mutant SELECT * FROM collection_messages")
                conn.exec_driver_sql("DROP TABLE collection_messages")
                conn.exec_driver_sql("ALTER TABLE cm_mutant RENAME TO collection_messages")
            else:
                for unique in inspect(conn).get_unique_constraints("collection_messages"):
                    conn.exec_driver_sql(
                        f'ALTER TABLE collection_messages DROP CONSTRAINT "{unique["name"]}"'
                    )
    finally:
        engine.dispose()


MUTANTS: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "ack-before-commit": ack_before_commit,
    "settle-twice": settle_twice,
    "dedup-without-constraint": dedup_without_constraint,
    "debit-paid-bills": debit_paid_bills,
}

#: What a mutant changes in each seed's database before the seed runs.
DATABASE_CHANGES: dict[str, Callable[[str], Any]] = {
    "dedup-without-constraint": drop_message_constraint,
}
