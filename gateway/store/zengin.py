"""Account transfer in the store: consignors, mandates, request files and their items."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, select, update
from sqlalchemy.engine import Connection, Row

from gateway.model import BankAccount, BillStatus, Consignor, Mandate, MandateStatus
from gateway.store.schema import (
    bills,
    mandates,
    zengin_consignors,
    zengin_request_items,
    zengin_requests,
)

ACCOUNT_COLUMNS = (
    "bank_code",
    "bank_name",
    "branch_code",
    "branch_name",
    "account_type",
    "account_number",
)


def _account(row: Row) -> BankAccount:
    return BankAccount(*(getattr(row, name) for name in ACCOUNT_COLUMNS))


def _account_values(account: BankAccount) -> dict[str, str]:
    return {name: getattr(account, name) for name in ACCOUNT_COLUMNS}


# --- consignors ------------------------------------------------------------------------------


def _consignor(row: Row) -> Consignor:
    return Consignor(row.biller_id, row.consignor_code, row.consignor_name, _account(row))


def get_consignor(
    conn: Connection, biller_id: str, *, for_update: bool = False
) -> Consignor | None:
    stmt = select(zengin_consignors).where(zengin_consignors.c.biller_id == biller_id)
    row = conn.execute(stmt.with_for_update() if for_update else stmt).first()
    return None if row is None else _consignor(row)


def list_consignors(conn: Connection) -> list[Consignor]:
    rows = conn.execute(select(zengin_consignors).order_by(zengin_consignors.c.biller_id))
    return [_consignor(r) for r in rows]


def consignors_by_codes(conn: Connection, codes: Iterable[str]) -> dict[str, str]:
    """委託者コード → biller id, for the codes that are ours."""
    codes = sorted(set(codes))
    if not codes:
        return {}
    rows = conn.execute(
        select(zengin_consignors.c.consignor_code, zengin_consignors.c.biller_id).where(
            zengin_consignors.c.consignor_code.in_(codes)
        )
    )
    return {r.consignor_code: r.biller_id for r in rows}


def save_consignor(conn: Connection, consignor: Consignor, now: datetime) -> None:
    """Insert or replace a biller's consignor contract (the code is unique in the schema)."""
    values = {
        "consignor_code": consignor.code,
        "consignor_name": consignor.name,
        **_account_values(consignor.account),
        "updated_at": now,
    }
    changed = conn.execute(
        update(zengin_consignors)
        .where(zengin_consignors.c.biller_id == consignor.biller_id)
        .values(**values)
    ).rowcount
    if not changed:
        conn.execute(zengin_consignors.insert().values(biller_id=consignor.biller_id, **values))


# --- mandates --------------------------------------------------------------------------------


def _mandate(row: Row) -> Mandate:
    return Mandate(
        biller_id=row.biller_id,
        customer_no=row.customer_no,
        account=_account(row),
        holder_kana=row.holder_kana,
        status=MandateStatus(row.status),
        status_reason=row.status_reason,
        new_code=row.new_code,
        requested=bool(row.requested),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _mandate_values(m: Mandate) -> dict[str, Any]:
    return {
        **_account_values(m.account),
        "holder_kana": m.holder_kana,
        "status": m.status.value,
        "status_reason": m.status_reason,
        "new_code": m.new_code,
        "requested": m.requested,
        "version": m.version,
        "updated_at": m.updated_at,
    }


def get_mandate(
    conn: Connection, biller_id: str, customer_no: str, *, for_update: bool = False
) -> tuple[int, Mandate] | None:
    stmt = select(mandates).where(
        mandates.c.biller_id == biller_id, mandates.c.customer_no == customer_no
    )
    row = conn.execute(stmt.with_for_update() if for_update else stmt).first()
    return None if row is None else (row.id, _mandate(row))


def insert_mandate(conn: Connection, mandate: Mandate) -> int:
    return int(
        conn.execute(
            mandates.insert()
            .values(
                biller_id=mandate.biller_id,
                customer_no=mandate.customer_no,
                created_at=mandate.created_at,
                **_mandate_values(mandate),
            )
            .returning(mandates.c.id)
        ).scalar_one()
    )


def update_mandate(
    conn: Connection, mandate_id: int, mandate: Mandate, registered_again: bool = False
) -> None:
    """Store a mandate's new state. ``registered_again``: the biller gave it an account again,
    so a past retention purge (``purge_id``) no longer describes it."""
    values = _mandate_values(mandate)
    if registered_again:
        values["purge_id"] = None
    conn.execute(update(mandates).where(mandates.c.id == mandate_id).values(**values))


def mandates_by_ids(conn: Connection, ids: Iterable[int]) -> dict[int, Mandate]:
    ids = sorted(set(ids))
    found: dict[int, Mandate] = {}
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        rows = conn.execute(select(mandates).where(mandates.c.id.in_(chunk)).with_for_update())
        found.update({r.id: _mandate(r) for r in rows})
    return found


# --- request files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """A bill to debit, with the mandate it is debited under."""

    bill_id: int
    amount: int
    mandate_id: int
    mandate: Mandate


@dataclass(frozen=True)
class Item:
    """One data record of a request file, as written."""

    request_id: int
    record_no: int
    bill_id: int
    mandate_id: int
    consignor_code: str
    debit_date: date
    customer_number: str
    account: BankAccount
    holder_kana: str
    amount: int
    new_code: str
    result_code: str | None = None


@dataclass(frozen=True)
class Request:
    request_id: int
    biller_id: str
    consignor_code: str
    debit_date: date
    file_name: str
    records: int
    total: int
    status: str


def due_for_debit(
    conn: Connection, biller_id: str, first_due: date, last_due: date, debit_date: date
) -> list[Due]:
    """The biller's open bills with the transfer channel, due in [first_due, last_due], whose
    customer has an active mandate, and that no request for ``debit_date`` carries yet."""
    already = exists().where(
        zengin_request_items.c.bill_id == bills.c.id,
        zengin_request_items.c.debit_date == debit_date,
    )
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
            bills.c.status == BillStatus.OPEN.value,
            bills.c.channels.like("%transfer%"),
            bills.c.due_date >= first_due,
            bills.c.due_date <= last_due,
            mandates.c.status == MandateStatus.ACTIVE.value,
            ~already,
        )
        .order_by(bills.c.id)
    )
    return [Due(r.bill_id, r.amount, r.id, _mandate(r)) for r in rows]


def insert_request(
    conn: Connection,
    *,
    biller_id: str,
    consignor_code: str,
    debit_date: date,
    records: int,
    total: int,
    now: datetime,
) -> tuple[int, str]:
    """A pending request and its file name (委託者コード, 引落日 and the request's id)."""
    request_id = int(
        conn.execute(
            zengin_requests.insert()
            .values(
                biller_id=biller_id,
                consignor_code=consignor_code,
                debit_date=debit_date,
                records=records,
                total=total,
                status="pending",
                created_at=now,
            )
            .returning(zengin_requests.c.id)
        ).scalar_one()
    )
    name = f"ZENGIN91_{consignor_code}_{debit_date:%Y%m%d}_{request_id:08d}.txt"
    conn.execute(
        update(zengin_requests).where(zengin_requests.c.id == request_id).values(file_name=name)
    )
    return request_id, name


def insert_items(conn: Connection, items: Sequence[Item]) -> None:
    if items:
        conn.execute(
            zengin_request_items.insert(),
            [
                {
                    "request_id": i.request_id,
                    "record_no": i.record_no,
                    "bill_id": i.bill_id,
                    "mandate_id": i.mandate_id,
                    "consignor_code": i.consignor_code,
                    "debit_date": i.debit_date,
                    "customer_number": i.customer_number,
                    **_account_values(i.account),
                    "holder_kana": i.holder_kana,
                    "amount": i.amount,
                    "new_code": i.new_code,
                }
                for i in items
            ],
        )


def mark_mandates_requested(conn: Connection, ids: Iterable[int], now: datetime) -> None:
    """The bank has now been sent these mandates: their next debits carry 新規コード 0."""
    ids = sorted(set(ids))
    for start in range(0, len(ids), 10_000):  # bounded parameter lists on both backends
        conn.execute(
            update(mandates)
            .where(mandates.c.id.in_(ids[start : start + 10_000]))
            .values(new_code="0", requested=True, updated_at=now)
        )


def _request(row: Row) -> Request:
    return Request(
        row.id,
        row.biller_id,
        row.consignor_code,
        row.debit_date,
        row.file_name,
        row.records,
        row.total,
        row.status,
    )


def _item(row: Row) -> Item:
    return Item(
        request_id=row.request_id,
        record_no=row.record_no,
        bill_id=row.bill_id,
        mandate_id=row.mandate_id,
        consignor_code=row.consignor_code,
        debit_date=row.debit_date,
        customer_number=row.customer_number,
        account=_account(row),
        holder_kana=row.holder_kana,
        amount=row.amount,
        new_code=row.new_code,
        result_code=row.result_code,
    )


def requests_to_send(conn: Connection) -> list[Request]:
    """The requests whose file is not known to be in the outbox yet: ``pending`` (never
    staged) and ``sending`` (staged; perhaps published), locked for this transaction."""
    rows = conn.execute(
        select(zengin_requests)
        .where(zengin_requests.c.status.in_(("pending", "sending")))
        .order_by(zengin_requests.c.id)
        .with_for_update()
    )
    return [_request(r) for r in rows]


def mark_sending(conn: Connection, request_id: int) -> None:
    """The request's file is staged in the outbox (in this same transaction)."""
    conn.execute(
        update(zengin_requests)
        .where(zengin_requests.c.id == request_id, zengin_requests.c.status == "pending")
        .values(status="sending")
    )


def requests_for(conn: Connection, debit_date: date) -> list[Request]:
    rows = conn.execute(
        select(zengin_requests)
        .where(zengin_requests.c.debit_date == debit_date)
        .order_by(zengin_requests.c.id)
    )
    return [_request(r) for r in rows]


def items_of_request(conn: Connection, request_id: int) -> list[Item]:
    rows = conn.execute(
        select(zengin_request_items)
        .where(zengin_request_items.c.request_id == request_id)
        .order_by(zengin_request_items.c.record_no)
    )
    return [_item(r) for r in rows]


def mark_written(conn: Connection, request_id: int, now: datetime) -> None:
    conn.execute(
        update(zengin_requests)
        .where(
            zengin_requests.c.id == request_id,
            zengin_requests.c.status.in_(("pending", "sending")),
        )
        .values(status="written", written_at=now)
    )


# --- results ---------------------------------------------------------------------------------

ResultKey = tuple[str, date, str]  # 委託者コード, 引落日, 顧客番号


def items_by_result_keys(conn: Connection, keys: Iterable[ResultKey]) -> dict[ResultKey, Item]:
    """The request items results name. A result file is one consignor's for one debit date, so
    the keys are grouped by those two and looked up through the unique index in chunks."""
    by_file: dict[tuple[str, date], list[str]] = {}
    for consignor_code, debit_date, customer_number in set(keys):
        by_file.setdefault((consignor_code, debit_date), []).append(customer_number)
    found: dict[ResultKey, Item] = {}
    for (consignor_code, debit_date), numbers in sorted(by_file.items()):
        numbers.sort()
        for start in range(0, len(numbers), 1000):  # bounded parameter lists
            rows = conn.execute(
                select(zengin_request_items).where(
                    zengin_request_items.c.consignor_code == consignor_code,
                    zengin_request_items.c.debit_date == debit_date,
                    zengin_request_items.c.customer_number.in_(numbers[start : start + 1000]),
                )
            )
            for r in rows:
                found[(r.consignor_code, r.debit_date, r.customer_number)] = _item(r)
    return found


def set_item_results(
    conn: Connection, results: Sequence[tuple[int, int, str]], now: datetime
) -> None:
    """(request id, record no, result code) for items whose result has arrived."""
    if results:
        conn.execute(
            update(zengin_request_items)
            .where(
                zengin_request_items.c.request_id == bindparam("r_request"),
                zengin_request_items.c.record_no == bindparam("r_record"),
            )
            .values(result_code=bindparam("r_code"), result_at=now),
            [{"r_request": r, "r_record": n, "r_code": c} for r, n, c in results],
        )
