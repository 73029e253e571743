"""insert_bills (the set-based path of bulk registration) stores exactly what insert_bill (one
bill at a time, as POST /v1/bills does) stores: same rows byte for byte, same slips, same Bill."""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine, make_url

from gateway.billing.bills import bill_json, parse_bill_request
from gateway.config import load_config
from gateway.model import JST, BillTerms, Channel
from gateway.networks.issuer import Issuer
from gateway.store import create_db_engine
from gateway.store.billers import create_biller, get_biller
from gateway.store.bills import NewBill, _bill, insert_bill, insert_bills
from gateway.store.migrate import migrate
from gateway.store.schema import bill_slips, bills
from tests.conftest import DB_ENV, config_text

NOW = datetime(2026, 11, 23, 15, 0, 1, 123456, tzinfo=JST)
TODAY = date(2026, 11, 23)


@pytest.fixture
def twin_url(tmp_path: Path) -> Iterator[str]:
    """A second, migrated database on the same backend as ``migrated_url``."""
    base = os.environ.get(DB_ENV)
    if not base:
        url = f"sqlite:///{tmp_path}/twin.sqlite3"
        engine = create_db_engine(url, 1)
        migrate(engine)
        engine.dispose()
        yield url
        return
    name = "gwtwin_" + secrets.token_hex(6)
    server = create_engine(base, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(base).set(database=name).render_as_string(hide_password=False)
        engine = create_db_engine(url, 1)
        migrate(engine)
        engine.dispose()
        yield url
    finally:
        with server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()


def body(bill_no: str, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "bill_no": bill_no,
        "amount": 5400,
        "due_date": (TODAY + timedelta(days=30)).isoformat(),
        "channels": ["cvs", "payeasy", "transfer"],
        "customer": {"customer_no": "C1", "name": "山田 太郎", "email": "t@example.jp"},
    }
    doc.update(over)
    return doc


BODIES = [
    body("A-1"),
    body("A-2", amount=55_000, channels=["cvs"], tax={"taxable": True, "tax_amount": 5000}),
    body("A-3", amount=500_000, channels=["payeasy"], customer={"kana": "ﾃｽﾄ"}),
    body("A-4", channels=["transfer"], description="12月分"),
    body("A-5", amount=50_000, channels=["cvs", "payeasy"], customer=None),
]


def terms_of(docs: list[dict[str, Any]], issuer: Issuer) -> list[BillTerms]:
    clean = [{k: v for k, v in d.items() if v is not None} for d in docs]
    return [
        parse_bill_request(d, limits=issuer.channel_limits(), today=TODAY, max_due_days=365)
        for d in clean
    ]


def setup(url: str, tmp_path: Path) -> tuple[Engine, Issuer]:
    path = tmp_path / f"gateway-{secrets.token_hex(3)}.toml"
    path.write_text(config_text(url), encoding="utf-8")
    counter = itertools.count(1)
    issuer = Issuer(load_config(path), randbelow=lambda n: (next(counter) * 7919) % n)
    engine = create_db_engine(url, 1)
    with engine.begin() as conn:
        create_biller(
            conn,
            biller_id="acme",
            name="Acme",
            kana="ｱｸﾒ",
            channels=frozenset(Channel),
            payeasy_institution_code=None,
            now=NOW,
        )
    return engine, issuer


def dump(engine: Engine) -> tuple[list[Any], list[Any]]:
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(bills).order_by(bills.c.id))]
        slips = [tuple(r) for r in conn.execute(select(bill_slips).order_by(bill_slips.c.bill_id))]
    return rows, slips


def test_the_set_based_path_stores_what_the_one_bill_path_stores(
    migrated_url: str, twin_url: str, tmp_path: Path
) -> None:
    single, single_issuer = setup(migrated_url, tmp_path)
    batch, batch_issuer = setup(twin_url, tmp_path)
    tokens = [f"token-{i:02d}-{'x' * 20}" for i in range(len(BODIES) + 2)]
    try:
        for engine, issuer in ((single, single_issuer), (batch, batch_issuer)):
            # Bills already there: the new serials continue after them.
            with engine.begin() as conn:
                biller = get_biller(conn, "acme")
                for i, terms in enumerate(terms_of([body("OLD-1"), body("OLD-2")], issuer)):
                    insert_bill(
                        conn,
                        NewBill("acme", terms, tokens[i]),
                        NOW,
                        lambda s, t=terms, i=issuer, b=biller: i.identify(b, s, t, TODAY),
                    )
        one_by_one = []
        with single.begin() as conn:
            biller = get_biller(conn, "acme")
            for i, terms in enumerate(terms_of(BODIES, single_issuer), 2):
                bill, created = insert_bill(
                    conn,
                    NewBill("acme", terms, tokens[i]),
                    NOW,
                    lambda s, t=terms: single_issuer.identify(biller, s, t, TODAY),
                )
                assert created
                one_by_one.append(bill)
        with batch.begin() as conn:
            biller = get_biller(conn, "acme")
            news = [
                NewBill("acme", terms, tokens[i])
                for i, terms in enumerate(terms_of(BODIES, batch_issuer), 2)
            ]
            stored = insert_bills(
                conn, news, NOW, lambda s, t: batch_issuer.identify(biller, s, t, TODAY)
            )
        assert all(s is not None for s in stored)
        set_based = [s[1] for s in stored if s is not None]

        single_rows, single_slips = dump(single)
        batch_rows, batch_slips = dump(batch)
        assert len(single_rows) == len(BODIES) + 2 and len(single_slips) == 5
        assert batch_rows == single_rows
        assert batch_slips == single_slips
        assert set_based == one_by_one
        assert [s[0] for s in stored if s is not None] == [3, 4, 5, 6, 7]
        for a, b in zip(set_based, one_by_one, strict=True):
            assert bill_json(a, "https://x", batch_issuer) == bill_json(
                b, "https://x", batch_issuer
            )
        # And the Bill handed back is the one read back from the store.
        with batch.connect() as conn:
            read_back = [_bill(r) for r in conn.execute(select(bills).where(bills.c.id > 2))]
        assert read_back == set_based
        assert all(b.created_at.tzinfo == UTC for b in set_based)
    finally:
        single.dispose()
        batch.dispose()


def test_a_bill_no_stored_meanwhile_is_left_to_the_caller(
    migrated_url: str, tmp_path: Path
) -> None:
    engine, issuer = setup(migrated_url, tmp_path)
    try:
        terms = terms_of([body("R-1"), body("R-2"), body("R-3")], issuer)
        with engine.begin() as conn:
            biller = get_biller(conn, "acme")

            def identify(s: int, t: BillTerms) -> Any:
                return issuer.identify(biller, s, t, TODAY)

            insert_bill(
                conn, NewBill("acme", terms[1], "tok-first"), NOW, lambda s: identify(s, terms[1])
            )
            stored = insert_bills(
                conn, [NewBill("acme", t, f"tok-{i}") for i, t in enumerate(terms)], NOW, identify
            )
        assert stored[1] is None
        assert stored[0] is not None and stored[2] is not None
        with engine.connect() as conn:
            rows = conn.execute(select(bills).order_by(bills.c.id)).all()
            slips = conn.execute(select(bill_slips)).all()
        assert [(r.bill_no, r.page_token) for r in rows] == [
            ("R-2", "tok-first"),
            ("R-1", "tok-0"),
            ("R-3", "tok-2"),
        ]
        assert len(slips) == 3  # none for the bill that was not inserted
    finally:
        engine.dispose()
