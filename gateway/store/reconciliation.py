"""The store side of reconciliation (gateway.recon_model): what the ledger collected per network,
agency and transfer date; the bank statements and their deposits; the reconciliation items.

The ledger is read by index: CVS and transfer payments by ``(channel, transfer_date)`` (migration
0014), Pay-easy 消込 by ``(status, channel, paid_at)`` (0012) around the business days asked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Row

from gateway.calendar import add_business_days
from gateway.fee_model import jst_midnight
from gateway.model import Channel, PaymentStatus
from gateway.recon_model import (
    Collected,
    Deposit,
    Item,
    ItemKind,
    ItemStatus,
    Statement,
    StoredStatement,
    WantedItem,
)
from gateway.store.dialect import dialect_insert
from gateway.store.schema import (
    bank_deposits,
    bank_statements,
    bills,
    payments,
    reconciliation_items,
)

CONFIRMED = PaymentStatus.CONFIRMED.value
MATCHED = "matched"  # the resolution of an item whose money matched later
RECONCILIATION_LOCK = 0x52_45_43_4F_4E  # "RECON": the advisory lock of lock_reconciliation


# --- what the ledger collected -----------------------------------------------------------------


def collected(
    conn: Connection,
    first: date,
    last: date,
    *,
    default_agency: str | None,
    payeasy_days: int,
    transfer_days: int,
) -> list[Collected]:
    """Confirmed payments per network, agency and transfer date in [first, last]: CVS by the
    確報's 振込予定日 and agency (None: ``default_agency``), Pay-easy by 閉局 business day (+
    ``payeasy_days`` bank days) and 収納機関番号, transfers by debit date (+ ``transfer_days``) and
    委託者コード."""
    totals: dict[tuple[Channel, str, date], list[int]] = defaultdict(lambda: [0, 0])

    def add(channel: Channel, agency: str, day: date, count: int, amount: int) -> None:
        if first <= day <= last:
            total = totals[(channel, agency, day)]
            total[0] += count
            total[1] += amount

    p = payments.c
    for agency, day, count, amount in conn.execute(
        select(p.agency, p.transfer_date, func.count(), func.sum(p.amount))
        .where(
            p.channel == Channel.CVS.value,
            p.transfer_date >= first,
            p.transfer_date <= last,
            p.status == CONFIRMED,
        )
        .group_by(p.agency, p.transfer_date)
    ):
        add(Channel.CVS, agency or default_agency or "", day, int(count), int(amount))

    # A debit date ``transfer_days`` bank days before ``first`` is at most 3 weeks earlier.
    since = first - timedelta(days=7 + 2 * transfer_days)
    consignor = func.substr(p.event_key, 1, 10)
    for code, day, count, amount in conn.execute(
        select(consignor, p.transfer_date, func.count(), func.sum(p.amount))
        .where(
            p.channel == Channel.TRANSFER.value,
            p.transfer_date >= since,
            p.transfer_date <= last,
            p.status == CONFIRMED,
        )
        .group_by(consignor, p.transfer_date)
    ):
        add(Channel.TRANSFER, code, add_business_days(day, transfer_days), int(count), int(amount))

    since = first - timedelta(days=7 + 2 * payeasy_days)
    business = func.substr(p.event_key, 5, 8)  # center (4) + YYYYMMDD + serial (8)
    for institution, ymd, count, amount in conn.execute(
        select(bills.c.payeasy_institution_code, business, func.count(), func.sum(p.amount))
        .select_from(payments.outerjoin(bills, bills.c.id == p.bill_id))
        .where(
            p.status == CONFIRMED,
            p.channel == Channel.PAYEASY.value,
            p.paid_at >= jst_midnight(since - timedelta(days=1)),
            p.paid_at < jst_midnight(last + timedelta(days=1)),
        )
        .group_by(bills.c.payeasy_institution_code, business)
    ):
        day = date(int(ymd[:4]), int(ymd[4:6]), int(ymd[6:]))
        add(
            Channel.PAYEASY,
            institution or "",
            add_business_days(day, payeasy_days),
            int(count),
            int(amount),
        )
    return [
        Collected(channel, agency, day, count, amount)
        for (channel, agency, day), (count, amount) in sorted(totals.items())
    ]


# --- statements and deposits -------------------------------------------------------------------


def _stored(row: Row[Any]) -> StoredStatement:
    return StoredStatement(
        int(row.id),
        row.file_name,
        row.format,
        row.account,
        row.first_day,
        row.last_day,
        int(row.deposits),
        int(row.new_deposits),
        row.imported_at,
    )


def save_statement(
    conn: Connection, statement: Statement, file_name: str, sha256: str, now: datetime
) -> tuple[StoredStatement, bool]:
    """The statement and its deposits (each once, whatever statement brought it first);
    ``(stored, created)``: the same file again (its SHA-256) changes nothing."""
    found = conn.execute(select(bank_statements).where(bank_statements.c.sha256 == sha256)).first()
    if found is not None:
        return _stored(found), False
    statement_id = conn.execute(
        bank_statements.insert()
        .values(
            file_name=file_name[:200],
            sha256=sha256,
            format=statement.format,
            account=statement.account,
            first_day=statement.first_day,
            last_day=statement.last_day,
            deposits=len(statement.deposits),
            new_deposits=0,
            withdrawals=statement.withdrawals,
            imported_at=now,
        )
        .returning(bank_statements.c.id)
    ).scalar_one()
    new = 0
    for d in statement.deposits:
        made = conn.execute(
            dialect_insert(conn, bank_deposits)
            .values(
                deposit_key=d.key[:120],
                statement_id=statement_id,
                line=d.line,
                value_date=d.value_date,
                amount=d.amount,
                remitter_name=d.remitter_name[:48],
                remitter_code=d.remitter_code[:10],
                reference=d.reference[:20],
            )
            .on_conflict_do_nothing(index_elements=["deposit_key"])
            .returning(bank_deposits.c.id)
        ).scalar()
        new += made is not None
    conn.execute(
        update(bank_statements).where(bank_statements.c.id == statement_id).values(new_deposits=new)
    )
    row = conn.execute(select(bank_statements).where(bank_statements.c.id == statement_id)).one()
    return _stored(row), True


def deposits_between(conn: Connection, first: date, last: date) -> list[Deposit]:
    """The stored deposits of the days [first, last], in the order they were stored."""
    d = bank_deposits.c
    rows = conn.execute(
        select(bank_deposits)
        .where(d.value_date >= first, d.value_date <= last)
        .order_by(d.value_date, d.id)
    )
    return [
        Deposit(
            r.value_date,
            int(r.amount),
            r.remitter_name,
            int(r.line),
            0,
            r.reference,
            r.remitter_code,
            int(r.id),
        )
        for r in rows
    ]


def coverage(conn: Connection, first: date, last: date) -> list[tuple[date, date]]:
    """The days (first, last) of every imported statement that overlaps [first, last]."""
    s = bank_statements.c
    rows = conn.execute(
        select(s.first_day, s.last_day)
        .where(s.first_day <= last, s.last_day >= first)
        .order_by(s.first_day)
    )
    return [(a, b) for a, b in rows]


def statements_of(conn: Connection, day: date) -> list[StoredStatement]:
    s = bank_statements.c
    rows = conn.execute(
        select(bank_statements).where(s.first_day <= day, s.last_day >= day).order_by(s.id)
    )
    return [_stored(r) for r in rows]


# --- items ---------------------------------------------------------------------------------------


def _item(row: Row[Any]) -> Item:
    return Item(
        row.item_id,
        ItemKind(row.kind),
        Channel(row.network) if row.network else None,
        row.agency,
        row.transfer_date,
        int(row.expected),
        int(row.received),
        None if row.deposit_id is None else int(row.deposit_id),
        ItemStatus(row.status),
        row.opened_at,
        row.resolved_at,
        row.resolution,
    )


def sync_items(
    conn: Connection,
    wanted: Sequence[WantedItem],
    first: date,
    last: date,
    now: datetime,
    new_id: Callable[[str], str],
) -> tuple[int, int]:
    """Make the items of the transfer dates [first, last] what the money calls for now:
    ``(opened, closed)``. A new difference is opened; an open item whose amounts changed is
    updated; an open item no longer called for is resolved ``matched``; an item finance
    resolved stays resolved unless its amounts change (then it opens again). An item wanted
    with a ``resolution`` (``late``: the money came, a few days late) is stored resolved with
    it, and an open one (the ``missing`` it was) is resolved so; a note finance gave stays."""
    r = reconciliation_items.c
    existing = {
        row.item_key: row
        for row in conn.execute(
            select(reconciliation_items).where(r.transfer_date >= first, r.transfer_date <= last)
        )
    }
    opened = closed = 0
    keys = set()
    for w in wanted:
        keys.add(w.key)
        row = existing.get(w.key)
        settled = w.resolution is not None
        if row is None:
            conn.execute(
                reconciliation_items.insert().values(
                    item_id=new_id("rci"),
                    item_key=w.key,
                    kind=w.kind.value,
                    network=w.network.value if w.network else None,
                    agency=w.agency,
                    transfer_date=w.transfer_date,
                    expected=w.expected,
                    received=w.received,
                    deposit_id=w.deposit_id,
                    status=ItemStatus.RESOLVED.value if settled else ItemStatus.OPEN.value,
                    opened_at=now,
                    updated_at=now,
                    resolved_at=now if settled else None,
                    resolution=w.resolution,
                )
            )
            opened += not settled
            continue
        same = (row.kind, int(row.expected), int(row.received)) == (
            w.kind.value,
            w.expected,
            w.received,
        )
        if settled:
            automatic = row.resolution is None or row.resolution == MATCHED
            automatic = automatic or row.resolution.startswith(f"{ItemKind.LATE.value}:")
            if same and row.status == ItemStatus.RESOLVED.value and not automatic:
                continue  # finance's note on it stays
            if same and row.resolution == w.resolution:
                continue
            late: dict[str, Any] = {
                "kind": w.kind.value,
                "expected": w.expected,
                "received": w.received,
                "deposit_id": w.deposit_id,
                "updated_at": now,
            }
            if automatic:
                late |= {"status": ItemStatus.RESOLVED.value, "resolution": w.resolution}
                late |= {"resolved_at": now}
                closed += row.status == ItemStatus.OPEN.value
            conn.execute(update(reconciliation_items).where(r.id == row.id).values(**late))
            continue
        if same and row.resolution != MATCHED:
            continue
        values: dict[str, Any] = {
            "kind": w.kind.value,
            "expected": w.expected,
            "received": w.received,
            "updated_at": now,
        }
        if row.status != ItemStatus.OPEN.value:
            values |= {"status": ItemStatus.OPEN.value, "opened_at": now}
            values |= {"resolved_at": None, "resolution": None}
            opened += 1
        conn.execute(update(reconciliation_items).where(r.id == row.id).values(**values))
    for key, row in existing.items():
        if key not in keys and row.status == ItemStatus.OPEN.value:
            conn.execute(
                update(reconciliation_items)
                .where(r.id == row.id)
                .values(
                    status=ItemStatus.RESOLVED.value,
                    resolution=MATCHED,
                    resolved_at=now,
                    updated_at=now,
                )
            )
            closed += 1
    return opened, closed


def list_items(
    conn: Connection, *, day: date | None = None, status: ItemStatus | None = None
) -> list[Item]:
    r = reconciliation_items.c
    stmt = select(reconciliation_items)
    if day is not None:
        stmt = stmt.where(r.transfer_date == day)
    if status is not None:
        stmt = stmt.where(r.status == status.value)
    return [_item(row) for row in conn.execute(stmt.order_by(r.transfer_date, r.id))]


def lock_item(conn: Connection, item_id: str) -> Item | None:
    """The item ``item_id``, locked for the rest of the transaction (PostgreSQL: a second
    resolve waits and then sees it resolved); None for an unknown item."""
    r = reconciliation_items.c
    row = conn.execute(
        select(reconciliation_items).where(r.item_id == item_id).with_for_update()
    ).first()
    return None if row is None else _item(row)


def resolve_item(conn: Connection, item_id: str, note: str, now: datetime) -> Item | None:
    """Finance resolves an item with a note (a correction booked, a refund asked of the
    agency…); None for an unknown item."""
    r = reconciliation_items.c
    found = conn.execute(select(reconciliation_items).where(r.item_id == item_id)).first()
    if found is None:
        return None
    if found.status == ItemStatus.OPEN.value:
        conn.execute(
            update(reconciliation_items)
            .where(r.id == found.id)
            .values(
                status=ItemStatus.RESOLVED.value,
                resolution=note[:300],
                resolved_at=now,
                updated_at=now,
            )
        )
    row = conn.execute(select(reconciliation_items).where(r.id == found.id)).one()
    return _item(row)


def open_items(conn: Connection) -> tuple[dict[str, int], datetime | None]:
    """Open items per kind, and when the oldest was opened (the alert's age)."""
    r = reconciliation_items.c
    counts: dict[str, int] = {}
    oldest: datetime | None = None
    for kind, n, first in conn.execute(
        select(r.kind, func.count(), func.min(r.opened_at))
        .where(r.status == ItemStatus.OPEN.value)
        .group_by(r.kind)
    ):
        counts[kind] = int(n)
        if first is not None and (oldest is None or first < oldest):
            oldest = first
    return counts, oldest


def lock_reconciliation(conn: Connection) -> None:
    """One reconciliation at a time across daemons (PostgreSQL: a transaction-level advisory
    lock; SQLite's one writer already orders them), so two runs never open one item twice."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({RECONCILIATION_LOCK})")
