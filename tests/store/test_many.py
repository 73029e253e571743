"""gateway.store.many: rows written through the driver's executemany are the rows SQLAlchemy Core
writes — compared column by column as the database stores them (SQLite's timestamp text,
PostgreSQL's timestamptz) — and a conflict or a returning insert behaves as Core's does."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from gateway.model import Channel
from gateway.store import create_db_engine, many
from gateway.store.billers import create_biller
from gateway.store.ledger import _MESSAGE_COLUMNS
from gateway.store.schema import collection_messages, payments

JST = timezone(timedelta(hours=9))
NOW = datetime(2026, 11, 23, 15, 0, 0, 123456, tzinfo=JST)


@pytest.fixture
def engine(migrated_url: str):  # type: ignore[no-untyped-def]
    engine = create_db_engine(migrated_url, 4)
    with engine.begin() as conn:
        create_biller(
            conn,
            biller_id="acme",
            name="Acme",
            kana="ｱｸﾒ",
            channels=frozenset({Channel.CVS}),
            payeasy_institution_code=None,
            now=NOW,
        )
    yield engine
    engine.dispose()


def payment_row(n: int) -> dict[str, object]:
    return {
        "payment_id": f"pay_{n}",
        "biller_id": "acme",
        "bill_id": None,
        "channel": "cvs",
        "event_key": f"key-{n}",
        "amount": 1000 + n,
        "paid_at": NOW - timedelta(minutes=n),
        "store": f"01-{n:07d}",
        "agency": "default" if n % 2 else None,
        "chain_accepted": [True, False, None][n % 3],
        "stamped": [False, None, True][n % 3],
        "created_at": NOW,
        "status": "pending",
        "late": bool(n % 2),
        "transfer_date": date(2026, 11, 25) if n % 2 else None,
        "confirmed_at": NOW.astimezone(UTC) if n % 2 else None,
        "voided_at": None,
    }


def stored(engine: Engine, table: str, order: str) -> list[tuple[object, ...]]:
    """The rows as the database holds them, without SQLAlchemy's result processing."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {order}")]


def test_inserted_and_updated_rows_are_those_core_writes(engine: Engine) -> None:
    names = tuple(payment_row(0))
    with engine.begin() as conn:
        conn.execute(payments.insert(), [payment_row(n) for n in range(6)])
    by_core = stored(engine, "payments", "payment_id")
    with engine.begin() as conn:
        conn.execute(payments.delete())
        statement = many.insert(conn.dialect, payments, names)
        many.run_many(conn, statement, [tuple(payment_row(n).values()) for n in range(6)])
    assert stored(engine, "payments", "payment_id") == by_core

    state = ("status", "late", "confirmed_at", "transfer_date")
    later = NOW + timedelta(days=1)
    with engine.begin() as conn:
        statement = many.update(conn.dialect, payments, state, ("payment_id",))
        many.run_many(conn, statement, [("confirmed", False, later, date(2026, 12, 1), "pay_1")])
    with engine.begin() as conn:
        values = {"status": "confirmed", "late": False, "confirmed_at": later}
        values["transfer_date"] = date(2026, 12, 1)
        conn.execute(payments.delete())
        conn.execute(payments.insert(), [payment_row(n) for n in range(6)])
        conn.execute(update(payments).where(payments.c.payment_id == "pay_1").values(values))
    by_core = stored(engine, "payments", "payment_id")
    with engine.begin() as conn:
        conn.execute(payments.delete())
        statement = many.insert(conn.dialect, payments, names)
        many.run_many(conn, statement, [tuple(payment_row(n).values()) for n in range(6)])
        statement = many.update(conn.dialect, payments, state, ("payment_id",))
        many.run_many(conn, statement, [("confirmed", False, later, date(2026, 12, 1), "pay_1")])
    assert stored(engine, "payments", "payment_id") == by_core
    with engine.connect() as conn:  # and read back through Core as aware UTC
        row = conn.execute(select(payments).where(payments.c.payment_id == "pay_1")).one()
    assert row.confirmed_at == later and row.paid_at == NOW - timedelta(minutes=1)


def test_a_naive_timestamp_is_refused_as_core_refuses_it(engine: Engine) -> None:
    row = payment_row(1) | {"created_at": datetime(2026, 11, 23, 15, 0)}
    with engine.begin() as conn, pytest.raises(ValueError, match="naive"):
        many.run_many(conn, many.insert(conn.dialect, payments, tuple(row)), [tuple(row.values())])


def test_a_unique_conflict_raises_through_sqlalchemy(engine: Engine) -> None:
    names = tuple(payment_row(0))
    with engine.begin() as conn:
        statement = many.insert(conn.dialect, payments, names)
        many.run_many(conn, statement, [tuple(payment_row(1).values())])
    with engine.begin() as conn, pytest.raises(IntegrityError):
        twin = payment_row(1) | {"payment_id": "pay_twin"}  # the same (channel, event_key)
        many.run_many(conn, statement, [tuple(twin.values())])
    assert len(stored(engine, "payments", "payment_id")) == 1


def message(n: int, kind: str = "preliminary") -> tuple[object, ...]:
    return ("cvs", kind, f"key-{n}", 1000, NOW, "link:test", None, b"raw", NOW, "received")


NAMES = _MESSAGE_COLUMNS  # the columns the ledger writes a message with


def test_insert_returning_skips_conflicts_and_pages(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(many, "VALUES_PAGE", 3)  # 7 rows: three statements
    with engine.begin() as conn:
        first = many.insert_returning(
            conn,
            collection_messages,
            NAMES,
            [message(1), message(2)],
            returning=("id", "event_key"),
            on_conflict_do_nothing=True,
        )
        rows = [message(n) for n in range(7)] + [message(1, "confirmation")]
        second = many.insert_returning(
            conn,
            collection_messages,
            NAMES,
            rows,
            returning=("id", "event_key", "kind"),
            on_conflict_do_nothing=True,
        )
    assert sorted(k for _, k in first) == ["key-1", "key-2"]
    assert sorted((k, kind) for _, k, kind in second) == [
        ("key-0", "preliminary"),
        ("key-1", "confirmation"),
        ("key-3", "preliminary"),
        ("key-4", "preliminary"),
        ("key-5", "preliminary"),
        ("key-6", "preliminary"),
    ]
    with engine.connect() as conn:
        c = collection_messages.c
        ids = dict(conn.execute(select(c.event_key, c.id).where(c.kind == "preliminary")).all())
        count = conn.execute(text("SELECT count(*) FROM collection_messages")).scalar_one()
    assert count == 8
    assert {k: i for i, k in first} == {k: ids[k] for k in ("key-1", "key-2")}
