"""A group applied at once leaves exactly the ledger that applying its messages one by one
leaves: payments, bills, refund cases, anomalies, outcomes and every biller's events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine

from gateway.config import load_config
from gateway.ingest import Ingest, Received
from gateway.mappers.cvs import barcode
from gateway.model import JST, BillTerms, Channel, CollectionEvent, Customer, MessageKind, Tax
from gateway.networks.issuer import Issuer
from gateway.networks.registry import REGISTRY
from gateway.store import create_db_engine
from gateway.store.billers import create_biller, get_biller
from gateway.store.bills import Identifiers, NewBill, insert_bill
from gateway.store.schema import (
    anomalies,
    bill_slips,
    billers,
    bills,
    collection_messages,
    events,
    payments,
    refund_cases,
)
from tests.conftest import config_text

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=JST)
KINDS = [MessageKind.PRELIMINARY, MessageKind.CONFIRMATION, MessageKind.VOID]
# (bill 0-2 or 3 = a barcode of no bill, kind, store 0-1, paid 0 or 2 days after NOW)
MESSAGE = st.tuples(
    st.integers(0, 3), st.sampled_from(KINDS), st.integers(0, 1), st.sampled_from([0, 2])
)


class Ledger:
    def __init__(self, engine: Engine, issuer: Issuer) -> None:
        self.engine = engine
        self.issuer = issuer

    def reset(self) -> list[str]:
        """Empty the ledger and register bills B0 (due in 10 days), B1 (due today: paid two
        days later it is late) and B2; returns their barcodes and one of no bill."""
        with self.engine.begin() as conn:
            for table in (
                anomalies,
                refund_cases,
                payments,
                collection_messages,
                events,
                bill_slips,
                bills,
            ):
                conn.execute(delete(table))
            conn.execute(update(billers).values(last_event_seq=0))
            biller = get_biller(conn, "acme")
            codes = []
            for n, due in enumerate((10, 0, 10)):
                terms = BillTerms(
                    f"B{n}",
                    1000 + n,
                    NOW.date() + timedelta(days=due),
                    frozenset({Channel.CVS}),
                    Customer(),
                    Tax(),
                    None,
                )

                def identify(serial: int, terms: BillTerms = terms) -> Identifiers:
                    return self.issuer.identify(biller, serial, terms, NOW.date())

                bill, _ = insert_bill(conn, NewBill("acme", terms, f"t{n}"), NOW, identify)
                assert bill.slip is not None
                codes.append(bill.slip.barcode)
        ghost = barcode.build(
            company_code="987654",
            free_field=biller.code + "9" * 16,
            reissue=0,
            due=None,
            stamp=False,
            amount=777,
        ).digits
        return [*codes, ghost]

    def events_for(
        self, codes: list[str], script: list[tuple[int, MessageKind, int, int]]
    ) -> list[Received]:
        out = []
        for bill, kind, store, days in script:
            code = codes[bill]
            at = NOW + timedelta(days=days)
            key = f"{code}{at:%Y%m%d%H%M}000020{store:07d}"
            out.append(
                Received(
                    CollectionEvent(
                        channel=Channel.CVS,
                        kind=kind,
                        event_key=key,
                        amount=int(code[37:43]),
                        paid_at=at,
                        received_at=NOW,
                        source="t",
                        raw=key.encode(),
                        bill_key=code[2:29],
                        slip_reissue=0,
                        transfer_date=at.date() if kind is MessageKind.CONFIRMATION else None,
                        store=f"000020-{store:07d}",
                    )
                )
            )
        return out

    def snapshot(self, codes: list[str]) -> dict[str, Any]:
        names = {code[2:29]: f"bill{n}" for n, code in enumerate(codes)}

        def abstract(key: str) -> str:  # event keys differ between runs (serials): name them
            return f"{names[key[2:29]]}@{key[44:]}"

        with self.engine.connect() as conn:
            pays = {r.payment_id: abstract(r.event_key) for r in conn.execute(select(payments))}
            return {
                "payments": sorted(
                    (abstract(r.event_key), r.status, r.late, r.amount)
                    for r in conn.execute(select(payments))
                ),
                "bills": sorted(
                    (r.bill_no, r.status, r.version, r.double_paid, r.late)
                    for r in conn.execute(select(bills))
                ),
                "cases": sorted(
                    (pays[r.payment_id], r.reason, r.amount)
                    for r in conn.execute(select(refund_cases))
                ),
                "anomalies": sorted(
                    (abstract(r.event_key), r.kind) for r in conn.execute(select(anomalies))
                ),
                "messages": sorted(
                    (abstract(r.event_key), r.kind, r.outcome)
                    for r in conn.execute(select(collection_messages))
                ),
                "events": [
                    (r.seq, r.type) for r in conn.execute(select(events).order_by(events.c.seq))
                ],
            }


@pytest.fixture
def ledger(tmp_path: Path, migrated_url: str) -> Iterator[Ledger]:
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(migrated_url), encoding="utf-8")
    engine = create_db_engine(migrated_url, 1)
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
    yield Ledger(engine, Issuer(load_config(path)))
    engine.dispose()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(script=st.lists(MESSAGE, min_size=1, max_size=14))
def test_a_group_equals_its_messages_one_by_one(ledger: Ledger, script: list[Any]) -> None:
    ingest = Ingest(
        None,
        None,
        lambda bill: {"bill_no": bill.bill_no, "v": bill.version},
        REGISTRY.finders(ledger.issuer.config),
    )
    codes = ledger.reset()
    one_by_one = []
    for received in ledger.events_for(codes, script):
        with ledger.engine.begin() as conn:
            one_by_one.append(ingest.apply(conn, received, NOW, NOW.date()))
    expected = ledger.snapshot(codes)

    codes = ledger.reset()
    with ledger.engine.begin() as conn:
        grouped = ingest.apply_group(conn, ledger.events_for(codes, script), NOW, NOW.date())
    assert grouped == one_by_one
    assert ledger.snapshot(codes) == expected
