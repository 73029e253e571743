"""Bills and the slips (barcodes) issued for them."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, func, or_, select, text, tuple_, update
from sqlalchemy.engine import Connection, Dialect, Row
from sqlalchemy.sql.elements import ColumnElement

from gateway.errors import Conflict
from gateway.model import (
    Bill,
    BillStatus,
    BillTerms,
    Channel,
    Customer,
    PayEasyNumbers,
    Slip,
    Tax,
)
from gateway.store import many
from gateway.store.copy import copy_rows
from gateway.store.schema import bill_slips, bills


@dataclass(frozen=True)
class NewBill:
    """What the core hands the store for a new bill (identifiers come after the insert)."""

    biller_id: str
    terms: BillTerms
    page_token: str
    fingerprint: str = ""  # terms.fingerprint(), when the caller has it already


@dataclass(frozen=True)
class Identifiers:
    slip: Slip | None
    payeasy: PayEasyNumbers | None
    cvs_bill_key: str | None = None  # the slip's bill key (gateway.mappers.cvs.barcode)


@lru_cache(maxsize=64)
def _channels(stored: str) -> frozenset[Channel]:
    """A bill's ``channels`` column (``"cvs,payeasy"``): few distinct values, parsed once."""
    return frozenset(Channel(c) for c in stored.split(",") if c)


@lru_cache(maxsize=16)
def _named_row(keys: tuple[str, ...]) -> Any:
    """A named tuple of a result's columns (:func:`lock_bills`): its attributes are read in C,
    where a ``Row``'s go through SQLAlchemy's key lookup — most of the cost of :func:`_bill`."""
    return namedtuple("NamedRow", keys, rename=True)


def _bill(row: Any) -> Bill:
    """The bill of a ``bills`` row (a ``Row``, or a :func:`_named_row` of one)."""
    slip = None
    if row.barcode is not None:
        slip = Slip(row.reissue, row.barcode, row.amount, row.due_date, bool(row.stamp))
    payeasy = None
    if row.payeasy_customer_number is not None:
        payeasy = PayEasyNumbers(
            row.payeasy_institution_code,
            row.payeasy_customer_number,
            row.payeasy_confirmation_number,
        )
    return Bill(
        biller_id=row.biller_id,
        bill_no=row.bill_no,
        amount=row.amount,
        due_date=row.due_date,
        channels=_channels(row.channels),
        customer=Customer(
            row.customer_no,
            row.customer_name,
            row.customer_kana,
            row.customer_email,
            row.customer_phone,
        ),
        tax=Tax(bool(row.taxable), row.tax_amount),
        description=row.description,
        created_at=row.created_at,
        updated_at=row.updated_at,
        status=BillStatus(row.status),
        version=row.version,
        reissue=row.reissue,
        double_paid=bool(row.double_paid),
        late=bool(row.late),
        slip=slip,
        payeasy=payeasy,
        page_token=row.page_token,
        min_amount=row.min_amount,
        max_amount=row.max_amount,
    )


def _state_values(bill: Bill) -> dict[str, Any]:
    """The columns a transition may change."""
    values: dict[str, Any] = {
        "amount": bill.amount,
        "due_date": bill.due_date,
        "status": bill.status.value,
        "version": bill.version,
        "reissue": bill.reissue,
        "double_paid": bill.double_paid,
        "late": bill.late,
        "updated_at": bill.updated_at,
        "barcode": bill.slip.barcode if bill.slip else None,
        "stamp": bill.slip.stamp if bill.slip else False,
    }
    return values


def new_bill_columns(new: NewBill, fingerprint: str, now: datetime) -> dict[str, Any]:
    """Every column of a new bill but its id and identifiers: both insert paths write these."""
    terms = new.terms
    return {
        "biller_id": new.biller_id,
        "bill_no": terms.bill_no,
        "amount": terms.amount,
        "due_date": terms.due_date,
        "channels": ",".join(sorted(terms.channels)),
        "customer_no": terms.customer.customer_no,
        "customer_name": terms.customer.name,
        "customer_kana": terms.customer.kana,
        "customer_email": terms.customer.email,
        "customer_phone": terms.customer.phone,
        "taxable": terms.tax.taxable,
        "tax_amount": terms.tax.tax_amount,
        "description": terms.description,
        "min_amount": terms.min_amount,
        "max_amount": terms.max_amount,
        "status": BillStatus.OPEN.value,
        "version": 1,
        "reissue": 0,
        "double_paid": False,
        "late": False,
        "stamp": False,
        "page_token": new.page_token,
        "fingerprint": fingerprint,
        "created_at": now,
        "updated_at": now,
    }


def identifier_columns(ids: Identifiers) -> dict[str, Any]:
    """The columns a bill's identifiers set (after the insert that gives its serial)."""
    values: dict[str, Any] = {}
    if ids.slip is not None:
        assert ids.cvs_bill_key is not None, "a slip comes with its bill key"
        values.update(
            barcode=ids.slip.barcode,
            cvs_bill_key=ids.cvs_bill_key,
            stamp=ids.slip.stamp,
        )
    if ids.payeasy is not None:
        values.update(
            payeasy_institution_code=ids.payeasy.institution_code,
            payeasy_customer_number=ids.payeasy.customer_number,
            payeasy_confirmation_number=ids.payeasy.confirmation_number,
        )
    return values


def insert_bill(
    conn: Connection, new: NewBill, now: datetime, identify: Callable[[int], Identifiers]
) -> tuple[Bill, bool]:
    """Store a new bill, or find the one with the same ``bill_no``.

    Returns ``(bill, created)``. The same ``bill_no`` with a different fingerprint is a
    :class:`Conflict`. ``identify(serial)`` derives the barcode and Pay-easy numbers from the
    bill's serial (its row id), which is known only after the insert.
    """
    terms = new.terms
    fingerprint = new.fingerprint or terms.fingerprint()
    columns = new_bill_columns(new, fingerprint, now)
    names = tuple(columns)
    statement = _insert_bill_returning_id(conn.dialect, names)
    # The driver's own execute (gateway.store.many: the SQL written once per set of columns,
    # each value through its column type's bind processor), not a statement built and its
    # cache key computed by SQLAlchemy per bill: that was a third of a creation's store time.
    serial = conn.exec_driver_sql(
        statement.sql, statement.bind(tuple(columns[n] for n in names))
    ).scalar()
    if serial is None:
        row = conn.execute(
            select(bills).where(
                bills.c.biller_id == new.biller_id, bills.c.bill_no == terms.bill_no
            )
        ).one()
        if row.fingerprint != fingerprint:
            raise Conflict(
                f"bill {terms.bill_no} already exists with different fields", field="bill_no"
            )
        return _bill(row), False
    ids = identify(int(serial))
    values = identifier_columns(ids)
    if ids.slip is not None:
        insert_slip(conn, int(serial), ids.slip, now)
    if values:  # write the identifiers and read the row back in one statement
        row = conn.execute(
            update(bills).where(bills.c.id == serial).values(**values).returning(bills)
        ).one()
    else:
        row = conn.execute(select(bills).where(bills.c.id == serial)).one()
    return _bill(row), True


@lru_cache(maxsize=64)
def _insert_bill_returning_id(dialect: Dialect, names: tuple[str, ...]) -> many.Many:
    """``INSERT INTO bills (names) VALUES (…) ON CONFLICT (biller_id, bill_no) DO NOTHING
    RETURNING id``."""
    plain = many.insert(dialect, bills, names)
    quote = dialect.identifier_preparer.quote
    sql = (
        f"{plain.sql} ON CONFLICT ({quote('biller_id')}, {quote('bill_no')}) DO NOTHING"
        f" RETURNING {quote('id')}"
    )
    return many.Many(sql, plain.processors, plain.width)


_SLIP_COLUMNS = ("bill_id", "reissue", "barcode", "amount", "due_date", "stamp", "issued_at")


def insert_slip(conn: Connection, bill_id: int, slip: Slip, now: datetime) -> None:
    statement = many.insert(conn.dialect, bill_slips, _SLIP_COLUMNS)
    values = (bill_id, slip.reissue, slip.barcode, slip.amount, slip.due_date, slip.stamp, now)
    conn.exec_driver_sql(statement.sql, statement.bind(values))


# Bill numbers per IN list: well under SQLite's 32,766 and PostgreSQL's 65,535 parameters.
_LOOKUP_CHUNK = 5000
# The columns identifier_columns may set, as a bill without that identifier has them.
_NO_IDENTIFIERS: dict[str, Any] = {
    "barcode": None,
    "cvs_bill_key": None,
    "payeasy_institution_code": None,
    "payeasy_customer_number": None,
    "payeasy_confirmation_number": None,
}


def find_bills(
    conn: Connection, biller_id: str, bill_nos: Sequence[str]
) -> dict[str, tuple[int, str]]:
    """``bill_no -> (serial, fingerprint)`` of those of ``bill_nos`` the biller has."""
    found: dict[str, tuple[int, str]] = {}
    for start in range(0, len(bill_nos), _LOOKUP_CHUNK):
        chunk = bill_nos[start : start + _LOOKUP_CHUNK]
        rows = conn.execute(
            select(bills.c.id, bills.c.bill_no, bills.c.fingerprint).where(
                bills.c.biller_id == biller_id, bills.c.bill_no.in_(chunk)
            )
        )
        for r in rows:
            found[r.bill_no] = (int(r.id), r.fingerprint)
    return found


def _reserve_serials(conn: Connection, count: int) -> list[int]:
    """``count`` new bill ids, ascending: the ids the rows would get one INSERT at a time.

    PostgreSQL: from the ``bills.id`` sequence (which concurrent single inserts share).
    SQLite: after the highest id, as SQLite assigns them; the store's transactions begin
    IMMEDIATE, so no other writer can take them before this transaction commits.
    """
    if conn.dialect.name == "postgresql":
        serials = conn.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('bills', 'id')) FROM generate_series(1, :n)"
            ),
            {"n": count},
        ).scalars()
        return sorted(int(s) for s in serials)
    first = int(conn.execute(select(func.coalesce(func.max(bills.c.id), 0))).scalar_one()) + 1
    return list(range(first, first + count))


def insert_bills(
    conn: Connection,
    news: Sequence[NewBill],
    now: datetime,
    identify: Callable[[int, BillTerms], Identifiers],
) -> list[tuple[int, Bill] | None]:
    """Store many new bills of one biller, set-based: the rows :func:`insert_bill` would store
    one by one, byte for byte, in a few statements whatever their number.

    The serials are reserved first, so each row is inserted once with its identifiers
    (``identify(serial, terms)``): one ``INSERT ... ON CONFLICT DO NOTHING`` executed for all
    the bills, one for their slips. Returns, in the order of ``news``,
    ``(serial, bill)`` for each bill stored, or None where that ``bill_no`` exists already
    (the caller looked before, so: stored by a concurrent transaction since); the caller decides
    whether that is a replay or a conflict. Events are the caller's.
    """
    if not news:
        return []
    serials = _reserve_serials(conn, len(news))
    stored_at = now.astimezone(UTC)  # as a bill read back from the store has it
    rows: list[dict[str, Any]] = []
    bills_made: list[tuple[int, Bill]] = []
    for new, serial in zip(news, serials, strict=True):
        terms = new.terms
        ids = identify(serial, terms)
        row = new_bill_columns(new, new.fingerprint or terms.fingerprint(), now)
        row.update(_NO_IDENTIFIERS)
        row.update(identifier_columns(ids))
        row["id"] = serial
        rows.append(row)
        bill = Bill(
            biller_id=new.biller_id,
            bill_no=terms.bill_no,
            amount=terms.amount,
            due_date=terms.due_date,
            channels=terms.channels,
            customer=terms.customer,
            tax=terms.tax,
            description=terms.description,
            created_at=stored_at,
            updated_at=stored_at,
            slip=ids.slip,
            payeasy=ids.payeasy,
            page_token=new.page_token,
            min_amount=terms.min_amount,
            max_amount=terms.max_amount,
        )
        bills_made.append((serial, bill))
    if not _copied(conn, rows):
        # One prepared INSERT for every row, the driver's executemany (gateway.store.many: no
        # statement compiled nor row processed by SQLAlchemy per call), then which of the
        # reserved serials made it: no other insert can have taken one.
        names = tuple(rows[0])
        plain = many.insert(conn.dialect, bills, names)
        quote = conn.dialect.identifier_preparer.quote
        skip = f" ON CONFLICT ({quote('biller_id')}, {quote('bill_no')}) DO NOTHING"
        statement = many.Many(plain.sql + skip, plain.processors, plain.width)
        many.run_many(conn, statement, [tuple(row[n] for n in names) for row in rows])
    inserted = set(
        conn.execute(
            select(bills.c.id).where(bills.c.id >= serials[0], bills.c.id <= serials[-1])
        ).scalars()
    ).intersection(serials)
    slips = [
        {
            "bill_id": serial,
            "reissue": bill.slip.reissue,
            "barcode": bill.slip.barcode,
            "amount": bill.slip.amount,
            "due_date": bill.slip.due_date,
            "stamp": bill.slip.stamp,
            "issued_at": now,
        }
        for serial, bill in bills_made
        if bill.slip is not None and serial in inserted
    ]
    copy_rows(conn, bill_slips, slips)
    return [(serial, bill) if serial in inserted else None for serial, bill in bills_made]


def _copied(conn: Connection, rows: Sequence[dict[str, Any]]) -> bool:
    """PostgreSQL: the rows by COPY, in a savepoint; False (nothing stored) when a bill_no was
    stored meanwhile by a concurrent transaction, which COPY cannot skip."""
    if conn.dialect.name != "postgresql":
        return False
    from psycopg.errors import UniqueViolation

    try:
        with conn.begin_nested():
            copy_rows(conn, bills, rows)
    except UniqueViolation:
        return False
    return True


def get_bill(
    conn: Connection, biller_id: str, bill_no: str, *, for_update: bool = False
) -> tuple[int, Bill] | None:
    """The bill and its serial, or None. ``for_update`` locks the row on PostgreSQL."""
    stmt = select(bills).where(bills.c.biller_id == biller_id, bills.c.bill_no == bill_no)
    if for_update:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    return None if row is None else (row.id, _bill(row))


def save_bill(conn: Connection, bill_id: int, before: Bill, after: Bill) -> None:
    """Write a new version of a bill, refusing a lost update (optimistic check on version)."""
    result = conn.execute(
        update(bills)
        .where(bills.c.id == bill_id, bills.c.version == before.version)
        .values(**_state_values(after))
    )
    if result.rowcount != 1:
        raise Conflict(f"bill {before.bill_no} was changed concurrently; try again")


def list_bills(
    conn: Connection,
    biller_id: str,
    *,
    status: BillStatus | None,
    updated_since: datetime | None,
    after_id: int,
    limit: int,
) -> list[tuple[int, Bill]]:
    conditions = [bills.c.biller_id == biller_id, bills.c.id > after_id]
    if status is not None:
        conditions.append(bills.c.status == status.value)
    if updated_since is not None:
        conditions.append(bills.c.updated_at >= updated_since)
    rows = conn.execute(
        select(bills).where(and_(*conditions)).order_by(bills.c.id).limit(limit)
    ).all()
    return [(r.id, _bill(r)) for r in rows]


def find_by_payeasy(
    conn: Connection, institution_code: str, customer_number: str
) -> tuple[int, Bill] | None:
    row = conn.execute(
        select(bills).where(
            bills.c.payeasy_institution_code == institution_code,
            bills.c.payeasy_customer_number == customer_number,
        )
    ).first()
    return None if row is None else (row.id, _bill(row))


@dataclass(frozen=True)
class BillMatch:
    """How one network's messages name bills, for :func:`lock_bills`: the rows to lock, and the
    lookup keys (``(namespace, key)``) a locked row answers to."""

    condition: ColumnElement[bool]
    keys_of: Callable[[Row[Any]], Sequence[tuple[str, str]]]


def lock_bills(
    conn: Connection, matches: Sequence[BillMatch]
) -> dict[tuple[str, str], tuple[int, Bill]]:
    """The bills messages name, locked in id order in one statement (so two daemons locking
    overlapping sets cannot deadlock), by each lookup key a match gives a locked row."""
    if not matches:
        return {}
    rows = conn.execute(
        select(bills)
        .where(or_(*(m.condition for m in matches)))
        .order_by(bills.c.id)
        .with_for_update()
    )
    named = _named_row(tuple(rows.keys()))._make
    found: dict[tuple[str, str], tuple[int, Bill]] = {}
    for r in rows:
        bill = (r.id, _bill(named(r)))
        for match in matches:
            for key in match.keys_of(r):
                found[key] = bill
    return found


def match_cvs_keys(namespace: str, keys: Sequence[str]) -> BillMatch:
    """Bills by CVS bill key (company code + free field) → ``(namespace, key)``."""

    def keys_of(r: Row[Any]) -> Sequence[tuple[str, str]]:
        return [(namespace, r.cvs_bill_key)] if r.cvs_bill_key is not None else []

    return BillMatch(bills.c.cvs_bill_key.in_(sorted(set(keys))), keys_of)


def match_payeasy_numbers(namespace: str, keys: Sequence[tuple[str, str]]) -> BillMatch:
    """Bills by Pay-easy (収納機関番号, お客様番号) → ``(namespace, "institution:number")``."""

    def keys_of(r: Row[Any]) -> Sequence[tuple[str, str]]:
        if r.payeasy_customer_number is None:
            return []
        return [(namespace, f"{r.payeasy_institution_code}:{r.payeasy_customer_number}")]

    condition = tuple_(bills.c.payeasy_institution_code, bills.c.payeasy_customer_number).in_(
        sorted(set(keys))
    )
    return BillMatch(condition, keys_of)


def match_bill_ids(namespace: str, bill_ids: Mapping[str, int]) -> BillMatch:
    """Bills by id, for keys a network resolved itself (key → bill id) → ``(namespace, key)``."""
    by_id: dict[int, list[str]] = {}
    for key, bill_id in bill_ids.items():
        by_id.setdefault(bill_id, []).append(key)

    def keys_of(r: Row[Any]) -> Sequence[tuple[str, str]]:
        return [(namespace, key) for key in by_id.get(r.id, [])]

    return BillMatch(bills.c.id.in_(sorted(by_id)), keys_of)


def slips_of_bills(conn: Connection, bill_ids: Sequence[int]) -> dict[int, list[Slip]]:
    found: dict[int, list[Slip]] = {bill_id: [] for bill_id in bill_ids}
    if bill_ids:
        c = bill_slips.c
        rows = conn.execute(
            select(c.bill_id, c.reissue, c.barcode, c.amount, c.due_date, c.stamp)
            .where(c.bill_id.in_(list(bill_ids)))
            .order_by(c.bill_id, c.reissue)
        )
        for bill_id, reissue, barcode, amount, due_date, stamp in rows:
            found[bill_id].append(Slip(reissue, barcode, amount, due_date, bool(stamp)))
    return found


def update_bills(conn: Connection, changed: Sequence[tuple[int, Bill]]) -> None:
    """Write new versions of bills the caller holds locked."""
    if changed:
        names = tuple(_state_values(changed[0][1]))
        statement = many.update(conn.dialect, bills, names, ("id",))
        many.run_many(
            conn,
            statement,
            [(*_state_values(bill).values(), bill_id) for bill_id, bill in changed],
        )


def is_purged(conn: Connection, bill_id: int) -> bool:
    """Whether the retention job removed the bill's customer data (``bills.purge_id``)."""
    found = conn.execute(select(bills.c.purge_id).where(bills.c.id == bill_id)).scalar()
    return found is not None
