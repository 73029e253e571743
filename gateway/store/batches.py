"""Bulk registrations (bill batches) and the bills each row of a file created or found."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from gateway.model import Bill
from gateway.store.bills import _bill
from gateway.store.copy import copy_rows
from gateway.store.schema import bill_batch_items, bill_batches, bills


@dataclass(frozen=True, slots=True)  # (a 100,000-row file keeps one per row until its commit)
class BatchItem:
    row: int  # the file's row (the header is row 1)
    bill_id: int
    created: bool  # False: an identical bill with that bill_no existed already


@dataclass(frozen=True)
class Batch:
    batch_id: str
    biller_id: str
    source: str
    encoding: str
    rows: int
    created: int
    existing: int
    created_at: datetime


def insert_batch(conn: Connection, batch: Batch, items: Sequence[BatchItem]) -> None:
    conn.execute(
        bill_batches.insert().values(
            batch_id=batch.batch_id,
            biller_id=batch.biller_id,
            source=batch.source[:300],
            encoding=batch.encoding,
            row_count=batch.rows,
            created_count=batch.created,
            existing_count=batch.existing,
            created_at=batch.created_at,
        )
    )
    copy_rows(
        conn,
        bill_batch_items,
        [
            {
                "batch_id": batch.batch_id,
                "row_no": item.row,
                "bill_id": item.bill_id,
                "created": item.created,
            }
            for item in items
        ],
    )


def get_batch(conn: Connection, biller_id: str, batch_id: str) -> Batch | None:
    """The batch, if it is this biller's (another biller's looks exactly like an unknown one)."""
    row = conn.execute(
        select(bill_batches).where(
            bill_batches.c.batch_id == batch_id, bill_batches.c.biller_id == biller_id
        )
    ).first()
    if row is None:
        return None
    return Batch(
        row.batch_id,
        row.biller_id,
        row.source,
        row.encoding,
        row.row_count,
        row.created_count,
        row.existing_count,
        row.created_at,
    )


def batch_bills(
    conn: Connection, biller_id: str, batch_id: str
) -> tuple[Batch, list[tuple[BatchItem, Bill]]] | None:
    """The batch and, in the file's row order, each row's bill as it is now."""
    batch = get_batch(conn, biller_id, batch_id)
    if batch is None:
        return None
    return batch, batch_bills_page(conn, batch_id, 0, None)


def batch_bills_page(
    conn: Connection, batch_id: str, after_row: int, limit: int | None
) -> list[tuple[BatchItem, Bill]]:
    """Of a batch (the caller found it is the biller's: :func:`get_batch`), the rows after
    ``after_row`` in the file's order, at most ``limit``, each with its bill as it is now."""
    query = (
        select(bill_batch_items.c.row_no, bill_batch_items.c.created, bills)
        .join(bills, bills.c.id == bill_batch_items.c.bill_id)
        .where(bill_batch_items.c.batch_id == batch_id, bill_batch_items.c.row_no > after_row)
        .order_by(bill_batch_items.c.row_no)
    )
    if limit is not None:
        query = query.limit(limit)
    return [(BatchItem(r.row_no, r.id, bool(r.created)), _bill(r)) for r in conn.execute(query)]
