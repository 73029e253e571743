"""Payouts in the store: billers' payout accounts (versioned), payout files and their items, and
the settlements' payout states (gateway.money.payouts has the rules; docs/settlement.md).

The account number and holder name arrive here sealed (``v1:…``) and leave sealed: the store
never holds them in clear and never logs them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, func, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql.expression import ColumnElement

from gateway.errors import Conflict
from gateway.fee_model import PayoutState, PayoutStatus
from gateway.model import BankAccount
from gateway.store.schema import (
    billers,
    payout_accounts,
    payout_files,
    payout_items,
    settlements,
)

_IN_CHUNK = 1000  # values per IN (...) list
PAYOUT_LOCK = 0x50_41_59_4F_55_54  # "PAYOUT": the advisory lock of lock_payout_requests


# --- accounts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredAccount:
    """One version of a biller's payout account, as stored (number and holder sealed)."""

    account_id: int
    biller_id: str
    effective_from: date
    bank_code: str
    bank_name: str
    branch_code: str
    branch_name: str
    account_type: str
    sealed_number: str
    number_hint: str  # the last 3 digits
    sealed_holder: str
    created_at: datetime
    purged: bool = False

    @property
    def masked(self) -> BankAccount:
        """The account with its number masked (``****567``)."""
        return BankAccount(
            self.bank_code,
            self.bank_name,
            self.branch_code,
            self.branch_name,
            self.account_type,
            "****" + self.number_hint,
        )


def _account(row: Row) -> StoredAccount:
    return StoredAccount(
        account_id=int(row.id),
        biller_id=row.biller_id,
        effective_from=row.effective_from,
        bank_code=row.bank_code,
        bank_name=row.bank_name,
        branch_code=row.branch_code,
        branch_name=row.branch_name,
        account_type=row.account_type,
        sealed_number=row.account_number,
        number_hint=row.number_hint,
        sealed_holder=row.holder_kana,
        created_at=row.created_at,
        purged=row.purge_id is not None,
    )


def account_versions(conn: Connection, biller_id: str) -> list[StoredAccount]:
    """The biller's payout account versions, oldest first."""
    rows = conn.execute(
        select(payout_accounts)
        .where(payout_accounts.c.biller_id == biller_id)
        .order_by(payout_accounts.c.effective_from)
    )
    return [_account(r) for r in rows]


def accounts_in_force(
    conn: Connection, biller_ids: Iterable[str], day: date
) -> dict[str, StoredAccount]:
    """Each biller's account version in force on ``day`` (the latest from on or before it)."""
    ids = sorted(set(biller_ids))
    found: dict[str, StoredAccount] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        rows = conn.execute(
            select(payout_accounts)
            .where(
                payout_accounts.c.biller_id.in_(ids[start : start + _IN_CHUNK]),
                payout_accounts.c.effective_from <= day,
            )
            .order_by(payout_accounts.c.biller_id, payout_accounts.c.effective_from)
        )
        for r in rows:
            found[r.biller_id] = _account(r)  # the later version wins
    return found


def accounts_by_ids(conn: Connection, ids: Iterable[int]) -> dict[int, StoredAccount]:
    wanted = sorted(set(ids))
    found: dict[int, StoredAccount] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        rows = conn.execute(
            select(payout_accounts).where(
                payout_accounts.c.id.in_(wanted[start : start + _IN_CHUNK])
            )
        )
        found.update({int(r.id): _account(r) for r in rows})
    return found


def save_account_version(
    conn: Connection,
    biller_id: str,
    effective_from: date,
    account: BankAccount,
    sealed_number: str,
    sealed_holder: str,
    now: datetime,
) -> tuple[StoredAccount, bool]:
    """Store the version in force from ``effective_from`` (``account.account_number`` is only
    read for its last 3 digits); (stored version, created). A version a payout file has used
    is never changed: the date of one answers :class:`Conflict`, and a correction takes a
    later date."""
    locked = conn.execute(  # one change of a biller's accounts at a time
        select(billers.c.biller_id).where(billers.c.biller_id == biller_id).with_for_update()
    ).scalar()
    if locked is None:
        raise Conflict(f"biller {biller_id} does not exist", field="biller_id")
    values = {
        "bank_code": account.bank_code,
        "bank_name": account.bank_name,
        "branch_code": account.branch_code,
        "branch_name": account.branch_name,
        "account_type": account.account_type,
        "account_number": sealed_number,
        "number_hint": account.account_number[-3:],
        "holder_kana": sealed_holder,
        "purge_id": None,
    }
    existing = conn.execute(
        select(payout_accounts.c.id).where(
            payout_accounts.c.biller_id == biller_id,
            payout_accounts.c.effective_from == effective_from,
        )
    ).scalar()
    if existing is not None:
        used = conn.execute(
            select(func.count()).where(payout_items.c.account_id == existing)
        ).scalar_one()
        if used:
            raise Conflict(
                f"the payout account of {biller_id} from {effective_from} has been used by a "
                "payout file: give the corrected account a later date",
                field="effective_from",
            )
        conn.execute(
            update(payout_accounts)
            .where(payout_accounts.c.id == existing)
            .values(**values, created_at=now)
        )
        account_id = int(existing)
    else:
        account_id = int(
            conn.execute(
                payout_accounts.insert()
                .values(
                    biller_id=biller_id, effective_from=effective_from, created_at=now, **values
                )
                .returning(payout_accounts.c.id)
            ).scalar_one()
        )
    row = conn.execute(select(payout_accounts).where(payout_accounts.c.id == account_id)).one()
    return _account(row), existing is None


# --- choosing what a payout file carries ---------------------------------------------------------


@dataclass(frozen=True)
class Payable:
    """A settlement that a payout file may carry."""

    settlement_id: str
    biller_id: str
    biller_code: str
    period_start: date
    payout_date: date
    payout: int


def lock_payout_requests(conn: Connection) -> None:
    """One payout request at a time across daemons (PostgreSQL: a transaction-level advisory
    lock; SQLite has one writer): two requests never take the same file sequence, and the
    second one sees what the first carried."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PAYOUT_LOCK})")


def lock_payable(conn: Connection, transfer_date: date) -> list[Payable]:
    """Settlements in no payout file (``settled``) with a payout above zero due on or before
    ``transfer_date``, by biller and period, locked (``FOR UPDATE``): a second request for the
    same date waits, then finds them taken."""
    s = settlements.c
    rows = conn.execute(
        select(
            s.settlement_id, s.biller_id, billers.c.code, s.period_start, s.payout_date, s.payout
        )
        .select_from(settlements.join(billers, billers.c.biller_id == s.biller_id))
        .where(
            s.payout_state == PayoutState.SETTLED.value,
            s.payout > 0,
            s.payout_date <= transfer_date,
        )
        .order_by(s.biller_id, s.period_start)
        .with_for_update(of=settlements)
    )
    return [
        Payable(r.settlement_id, r.biller_id, r.code, r.period_start, r.payout_date, int(r.payout))
        for r in rows
    ]


def returned_accounts(conn: Connection, account_ids: Iterable[int]) -> set[int]:
    """The account versions that a payout was returned from (振込不能): the biller is held
    until a corrected version is in force."""
    ids = sorted(set(account_ids))
    found: set[int] = set()
    for start in range(0, len(ids), _IN_CHUNK):
        found |= {
            int(i)
            for i in conn.execute(
                select(payout_items.c.account_id)
                .where(
                    payout_items.c.account_id.in_(ids[start : start + _IN_CHUNK]),
                    payout_items.c.return_code.is_not(None),
                )
                .distinct()
            ).scalars()
        }
    return found


# --- payout files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutFileRow:
    file_id: int
    transfer_date: date
    sequence: int
    file_name: str
    requester_code: str
    records: int
    total: int
    status: str  # pending, written
    created_at: datetime
    written_at: datetime | None


@dataclass(frozen=True)
class PayoutItem:
    """One data record of a payout file, with its settlement's state."""

    file_id: int
    record_no: int
    settlement_id: str
    biller_id: str
    account_id: int
    customer_code: str
    amount: int
    return_code: str | None = None
    state: PayoutState | None = None  # the settlement's, when read with it
    transfer_date: date | None = None  # the file's, when read with it


def _file(row: Row) -> PayoutFileRow:
    return PayoutFileRow(
        int(row.id),
        row.transfer_date,
        int(row.sequence),
        row.file_name,
        row.requester_code,
        int(row.records),
        int(row.total),
        row.status,
        row.created_at,
        row.written_at,
    )


def next_sequence(conn: Connection, transfer_date: date) -> int:
    last = conn.execute(
        select(func.max(payout_files.c.sequence)).where(
            payout_files.c.transfer_date == transfer_date
        )
    ).scalar()
    return int(last or 0) + 1


def insert_payout_file(
    conn: Connection,
    *,
    transfer_date: date,
    sequence: int,
    file_name: str,
    requester_code: str,
    items: Sequence[PayoutItem],
    now: datetime,
) -> PayoutFileRow:
    """A pending payout file and its items (``file_id`` of the items is ignored). The unique
    ``settlement_id`` of the items is what keeps a settlement out of a second file."""
    file_id = int(
        conn.execute(
            payout_files.insert()
            .values(
                transfer_date=transfer_date,
                sequence=sequence,
                file_name=file_name,
                requester_code=requester_code,
                records=len(items),
                total=sum(i.amount for i in items),
                status="pending",
                created_at=now,
            )
            .returning(payout_files.c.id)
        ).scalar_one()
    )
    conn.execute(
        payout_items.insert(),
        [
            {
                "file_id": file_id,
                "record_no": i.record_no,
                "settlement_id": i.settlement_id,
                "biller_id": i.biller_id,
                "account_id": i.account_id,
                "customer_code": i.customer_code,
                "amount": i.amount,
            }
            for i in items
        ],
    )
    return _file(conn.execute(select(payout_files).where(payout_files.c.id == file_id)).one())


def pending_payout_files(conn: Connection) -> list[PayoutFileRow]:
    rows = conn.execute(
        select(payout_files).where(payout_files.c.status == "pending").order_by(payout_files.c.id)
    )
    return [_file(r) for r in rows]


def list_payout_files(conn: Connection, transfer_date: date | None = None) -> list[PayoutFileRow]:
    stmt = select(payout_files)
    if transfer_date is not None:
        stmt = stmt.where(payout_files.c.transfer_date == transfer_date)
    return [_file(r) for r in conn.execute(stmt.order_by(payout_files.c.id))]


def _item(row: Row) -> PayoutItem:
    state = getattr(row, "payout_state", None)
    return PayoutItem(
        int(row.file_id),
        int(row.record_no),
        row.settlement_id,
        row.biller_id,
        int(row.account_id),
        row.customer_code,
        int(row.amount),
        row.return_code,
        PayoutState(state) if state else None,
        getattr(row, "transfer_date", None),
    )


def items_of_file(conn: Connection, file_id: int) -> list[PayoutItem]:
    rows = conn.execute(
        select(payout_items)
        .where(payout_items.c.file_id == file_id)
        .order_by(payout_items.c.record_no)
    )
    return [_item(r) for r in rows]


def mark_payout_written(conn: Connection, file_id: int, now: datetime) -> None:
    conn.execute(
        update(payout_files)
        .where(payout_files.c.id == file_id, payout_files.c.status == "pending")
        .values(status="written", written_at=now)
    )


def items_by_customer_codes(conn: Connection, codes: Iterable[str]) -> dict[str, PayoutItem]:
    """The items the bank's records name (顧客コード1 + 2), with their settlement's state and
    their file's transfer date, locked (``FOR UPDATE``): a return is applied once."""
    wanted = sorted(set(codes))
    found: dict[str, PayoutItem] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        rows = conn.execute(
            select(payout_items, settlements.c.payout_state, payout_files.c.transfer_date)
            .select_from(
                payout_items.join(
                    settlements, settlements.c.settlement_id == payout_items.c.settlement_id
                ).join(payout_files, payout_files.c.id == payout_items.c.file_id)
            )
            .where(payout_items.c.customer_code.in_(wanted[start : start + _IN_CHUNK]))
            .with_for_update(of=settlements)
        )
        found.update({r.customer_code: _item(r) for r in rows})
    return found


def set_item_returned(
    conn: Connection, settlement_id: str, code: str, file_name: str, now: datetime
) -> None:
    conn.execute(
        update(payout_items)
        .where(payout_items.c.settlement_id == settlement_id, payout_items.c.return_code.is_(None))
        .values(return_code=code, returned_at=now, return_file=file_name[:200])
    )


# --- settlement states ---------------------------------------------------------------------------


def set_payout_state(
    conn: Connection,
    settlement_ids: Sequence[str],
    state: PayoutState,
    now: datetime,
    *,
    from_states: Sequence[PayoutState],
) -> list[str]:
    """Move the settlements that are in one of ``from_states`` to ``state``; the ids moved."""
    moved: list[str] = []
    ids = sorted(set(settlement_ids))
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        before = [
            str(i)
            for i in conn.execute(
                select(settlements.c.settlement_id).where(
                    settlements.c.settlement_id.in_(chunk),
                    settlements.c.payout_state.in_([s.value for s in from_states]),
                )
            ).scalars()
        ]
        if before:
            conn.execute(
                update(settlements)
                .where(
                    settlements.c.settlement_id.in_(before),
                    settlements.c.payout_state.in_([s.value for s in from_states]),
                )
                .values(payout_state=state.value, payout_state_at=now)
            )
        moved += before
    return sorted(moved)


def lock_due_paid_out(conn: Connection, today: date) -> list[tuple[str, str]]:
    """(settlement id, biller id) of settlements ``payout_requested`` whose file is written
    and whose transfer date has come, locked (``SKIP LOCKED``: another daemon's run takes the
    rest)."""
    s = settlements.c
    rows = conn.execute(
        select(s.settlement_id, s.biller_id)
        .select_from(
            settlements.join(payout_items, payout_items.c.settlement_id == s.settlement_id).join(
                payout_files, payout_files.c.id == payout_items.c.file_id
            )
        )
        .where(
            s.payout_state == PayoutState.PAYOUT_REQUESTED.value,
            payout_files.c.status == "written",
            payout_files.c.transfer_date <= today,
        )
        .order_by(s.settlement_id)
        .with_for_update(of=settlements, skip_locked=True)
    )
    return [(r.settlement_id, r.biller_id) for r in rows]


def claim_returned(conn: Connection, biller_id: str, settlement_id: str) -> tuple[int, int]:
    """Every returned payout of the biller that no settlement has taken again, taken by
    ``settlement_id`` (``carried_into``, set once); (count, sum of their payouts). The caller
    holds the biller's row lock (a settlement run)."""
    s = settlements.c
    rows = conn.execute(
        select(s.settlement_id, s.payout).where(
            s.biller_id == biller_id,
            s.payout_state == PayoutState.PAYOUT_RETURNED.value,
            s.carried_into.is_(None),
            s.settlement_id != settlement_id,
        )
    ).all()
    if not rows:
        return 0, 0
    conn.execute(
        update(settlements)
        .where(
            s.settlement_id.in_([r.settlement_id for r in rows]),
            s.carried_into.is_(None),
        )
        .values(carried_into=settlement_id)
    )
    return len(rows), sum(int(r.payout) for r in rows)


# --- reading a settlement's payout -------------------------------------------------------------


def payout_statuses(conn: Connection, settlement_ids: Iterable[str]) -> dict[str, PayoutStatus]:
    """Each settlement's payout status: its state and, once in a payout file, the transfer
    (date, file, the account masked, the 振込不能事由 of a return)."""
    ids = sorted(set(settlement_ids))
    found: dict[str, PayoutStatus] = {}
    s, i, f, a = settlements.c, payout_items.c, payout_files.c, payout_accounts.c
    for start in range(0, len(ids), _IN_CHUNK):
        rows = conn.execute(
            select(
                s.settlement_id,
                s.payout_state,
                s.carried_into,
                f.transfer_date,
                f.file_name,
                i.return_code,
                a.bank_code,
                a.bank_name,
                a.branch_code,
                a.branch_name,
                a.account_type,
                a.number_hint,
            )
            .select_from(
                settlements.outerjoin(payout_items, i.settlement_id == s.settlement_id)
                .outerjoin(payout_files, f.id == i.file_id)
                .outerjoin(payout_accounts, a.id == i.account_id)
            )
            .where(s.settlement_id.in_(ids[start : start + _IN_CHUNK]))
        )
        for r in rows:
            account = None
            if r.bank_code is not None:
                account = BankAccount(
                    r.bank_code,
                    r.bank_name,
                    r.branch_code,
                    r.branch_name,
                    r.account_type,
                    "****" + r.number_hint,
                )
            found[r.settlement_id] = PayoutStatus(
                state=PayoutState(r.payout_state),
                transfer_date=r.transfer_date,
                file_name=r.file_name,
                account=account,
                return_code=r.return_code,
                carried_into=r.carried_into,
            )
    return found


def settlement_payouts(
    conn: Connection, biller_ids: Sequence[str] | None = None
) -> list[tuple[str, str, PayoutState, int]]:
    """(settlement id, biller id, state, payout) of every settlement (of ``biller_ids``), by
    biller and period: what a report of payouts lists."""
    s = settlements.c
    stmt = select(s.settlement_id, s.biller_id, s.payout_state, s.payout)
    if biller_ids is not None:
        stmt = stmt.where(s.biller_id.in_(list(biller_ids)))
    rows = conn.execute(stmt.order_by(s.biller_id, s.period_start))
    return [
        (r.settlement_id, r.biller_id, PayoutState(r.payout_state), int(r.payout)) for r in rows
    ]


def owing() -> ColumnElement[bool]:
    """A settlement that still owes its biller money: a payout above zero in no file, a
    transfer requested, or a returned one that no settlement has taken again."""
    s = settlements.c
    return (
        and_(s.payout_state == PayoutState.SETTLED.value, s.payout > 0)
        | (s.payout_state == PayoutState.PAYOUT_REQUESTED.value)
        | and_(s.payout_state == PayoutState.PAYOUT_RETURNED.value, s.carried_into.is_(None))
    )


def open_payouts(conn: Connection, biller_id: str) -> int:
    """How many of the biller's settlements still owe it money (:func:`owing`)."""
    return int(
        conn.execute(
            select(func.count()).where(settlements.c.biller_id == biller_id, owing())
        ).scalar_one()
    )


# --- retention -------------------------------------------------------------------------------

#: What a purged payout account keeps of its number and holder's name (the columns are NOT NULL).
PURGED = ""


def lock_purgeable_payout_accounts(
    conn: Connection, cutoff: datetime, after: int, limit: int
) -> list[tuple[int, str]]:
    """(id, biller_id) of up to ``limit`` payout account versions with ``id > after``, not purged,
    of billers that have ended — suspended since before ``cutoff``, and none of their
    settlements owes them money (a payout in no file yet, a transfer requested, a returned one
    no settlement has taken) — in id order, locked (``SKIP LOCKED``)."""
    a = payout_accounts.c
    stmt = (
        select(a.id, a.biller_id)
        .select_from(payout_accounts.join(billers, billers.c.biller_id == a.biller_id))
        .where(
            a.purge_id.is_(None),
            billers.c.suspended_at < cutoff,
            ~select(settlements.c.settlement_id)
            .where(settlements.c.biller_id == a.biller_id, owing())
            .exists(),
            a.id > after,
        )
        .order_by(a.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=payout_accounts)
    )
    return [(int(r.id), r.biller_id) for r in conn.execute(stmt)]


def purge_payout_accounts(conn: Connection, ids: Sequence[int], purge_id: int) -> None:
    """The sealed number and holder's name go; the bank, branch, type and last 3 digits stay
    (what a statement shows of a past transfer)."""
    conn.execute(
        update(payout_accounts)
        .where(payout_accounts.c.id.in_(list(ids)))
        .values(account_number=PURGED, holder_kana=PURGED, purge_id=purge_id)
    )
