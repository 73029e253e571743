"""The store of payer numbers (migration 0016): the migration matches the schema, one number
per customer of a biller, numbers unique per 収納機関番号."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from gateway.model import JST, Channel
from gateway.store import create_db_engine
from gateway.store.billers import create_biller
from gateway.store.migrate import alembic_config, current_revision, migrate
from gateway.store.payer_numbers import (
    get_payer_number,
    insert_payer_number,
    payer_by_number,
    revoke_payer_number,
)
from gateway.store.schema import metadata
from gateway.store.schema_payer import payer_numbers

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
    mine = ("payer_numbers", "min_amount", "max_amount", "customer_no_due_date", "revoked")
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


def test_a_revoked_number_is_kept_found_by_nothing_and_never_given_again(engine: Engine) -> None:
    def make(customer_no: str, number: str):  # type: ignore[no-untyped-def]
        with engine.begin() as conn:
            return insert_payer_number(
                conn, "acme", customer_no, "58191", "1234", NOW, lambda serial: number
            )

    first, _ = make("C1", "111111111111111111")
    later = NOW.replace(hour=11)
    with engine.begin() as conn:
        assert revoke_payer_number(conn, "acme", "C9", later, "key:k1") is None  # never had one
        revoked, done = revoke_payer_number(conn, "acme", "C1", later, "key:k1")  # type: ignore[misc]
    assert done and revoked.payer_id == first.payer_id
    assert (revoked.revoked_at, revoked.revoked_by) == (later, "key:k1")
    with engine.connect() as conn:
        assert get_payer_number(conn, "acme", "C1") is None
        assert payer_by_number(conn, "58191", "111111111111111111") is None
    with engine.begin() as conn:  # again: the same revoked number, unchanged
        again = revoke_payer_number(conn, "acme", "C1", NOW.replace(hour=12), "key:k2")
    assert again == (revoked, False)

    # A new number for the customer is a new row; the revoked digits stay taken.
    with pytest.raises(IntegrityError):
        make("C1", "111111111111111111")
    second, created = make("C1", "222222222222222222")
    assert created and second.payer_id != first.payer_id and second.revoked_at is None
    third, created = make("C1", "333333333333333333")
    assert not created and third == second  # one live number per customer
    with engine.connect() as conn:
        assert get_payer_number(conn, "acme", "C1") == second
        found = payer_by_number(conn, "58191", "222222222222222222")
        assert found is not None and found[0] == second


def test_the_migration_down_keeps_the_live_numbers_only(engine: Engine) -> None:
    with engine.begin() as conn:
        for customer_no, number in (("C1", "1" * 18), ("C2", "2" * 18)):
            insert_payer_number(
                conn, "acme", customer_no, "58191", "1234", NOW, lambda _, n=number: n
            )
        revoke_payer_number(conn, "acme", "C1", NOW, "key:k1")
        insert_payer_number(conn, "acme", "C1", "58191", "1234", NOW, lambda _: "3" * 18)
        command.downgrade(alembic_config(conn), "0019")
        assert current_revision(conn) == "0019"
        # One number per customer again: the revoked one could not stay beside C1's new one.
        rows = conn.execute(
            select(payer_numbers.c.customer_no, payer_numbers.c.customer_number).order_by(
                payer_numbers.c.customer_no
            )
        ).all()
        assert [tuple(r) for r in rows] == [("C1", "3" * 18), ("C2", "2" * 18)]
    assert migrate(engine)[1] is not None
    with engine.connect() as conn:
        assert (current_revision(conn) or "") >= "0020"
        found = get_payer_number(conn, "acme", "C1")
        assert found is not None and found.customer_number == "3" * 18
