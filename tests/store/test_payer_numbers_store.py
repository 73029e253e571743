"""The store of payer numbers (migration 0016): the migration matches the schema, one number
per customer of a biller, numbers unique per 収納機関番号."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from gateway.model import JST, Channel
from gateway.store import create_db_engine
from gateway.store.billers import create_biller
from gateway.store.payer_numbers import get_payer_number, insert_payer_number
from gateway.store.schema import metadata

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=JST)


@pytest.fixture
def engine(migrated_url: str):  # type: ignore[no-untyped-def]
    engine = create_db_engine(migrated_url, 2)
    with engine.begin() as conn:
        for biller_id in ("acme", "beta"):
            create_biller(
                conn,
                biller_id=biller_id,
                name=biller_id,
                kana="ｱｸﾒ",
                channels=frozenset({Channel.PAYEASY}),
                payeasy_institution_code=None,
                now=NOW,
            )
    yield engine
    engine.dispose()


def test_the_migration_matches_the_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    mine = ("payer_numbers", "min_amount", "max_amount", "customer_no_due_date")
    assert [d for d in diff if any(name in repr(d) for name in mine)] == []


def test_one_number_per_customer_of_a_biller(engine: Engine) -> None:
    def make(biller_id: str, customer_no: str, number: str):  # type: ignore[no-untyped-def]
        with engine.begin() as conn:
            return insert_payer_number(
                conn, biller_id, customer_no, "58191", "1234", NOW, lambda serial: number
            )

    first, created = make("acme", "C1", "111111111111111111")
    assert created and first.customer_number == "111111111111111111"
    again, created = make("acme", "C1", "222222222222222222")
    assert not created and again == first  # the one the customer has; nothing new
    other, created = make("beta", "C1", "333333333333333333")
    assert created and other.payer_id != first.payer_id  # another biller's customer C1
    with pytest.raises(IntegrityError):  # one お客様番号 per 収納機関番号
        make("acme", "C2", "111111111111111111")
    with engine.connect() as conn:
        assert get_payer_number(conn, "acme", "C2") is None
        assert get_payer_number(conn, "acme", "C1") == first
