"""Settlement runs against the real store (SQLite, or PostgreSQL with GATEWAY_TEST_DATABASE_URL):
every confirmed payment paid out exactly once, the lines adding up to the payout to the yen."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from gateway import ids
from gateway.config import load_config
from gateway.errors import Conflict
from gateway.fee_model import ChannelRates, Cycle, FeePlan, LineKind, Rounding, Settlement
from gateway.ingest import Ingest, Received
from gateway.model import JST, Bill, BillTerms, Channel, CollectionEvent, Customer, MessageKind, Tax
from gateway.money.settlement import preview_next, settle_next, settlement_json
from gateway.networks.issuer import Issuer
from gateway.networks.registry import REGISTRY
from gateway.store import create_db_engine
from gateway.store.billers import create_biller, get_biller
from gateway.store.bills import Identifiers, NewBill, insert_bill
from gateway.store.events import list_events
from gateway.store.ledger import list_refund_cases, resolve_refund_case
from gateway.store.schema import payments, settlement_lines, settlements
from gateway.store.settlements import get_settlement, save_plan
from tests.conftest import check_settlements_reconcile, config_text
from tests.helpers import cvs_event

CREATED = datetime(2026, 11, 2, 9, 0, tzinfo=JST)


def at(month: int, day: int, hour: int = 12, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, 0, tzinfo=JST)


def standard_plan(effective_from: date = date(2026, 11, 1), **changes: Any) -> FeePlan:
    values: dict[str, Any] = {
        "effective_from": effective_from,
        "cycle": Cycle.MONTHLY,
        "payout_days": 3,
        "settlement_fee": 500,
        "tax_rate": 10,
        "tax_rounding": Rounding.FLOOR,
        "rates": {
            Channel.CVS: ChannelRates(60, 10, 200),
            Channel.PAYEASY: ChannelRates(80, 0, 0),
        },
    }
    values.update(changes)
    return FeePlan(**values)


@dataclass
class World:
    engine: Engine
    ingest: Ingest
    issuer: Issuer
    serial: int = 0

    def plan(self, plan: FeePlan, biller: str = "acme") -> FeePlan:
        with self.engine.begin() as conn:
            return save_plan(conn, biller, plan, CREATED)[0]

    def bill(
        self, bill_no: str, amount: int, due: date = date(2026, 12, 15), biller: str = "acme"
    ) -> Bill:
        terms = BillTerms(
            bill_no,
            amount,
            due,
            frozenset({Channel.CVS}),
            Customer("C-" + bill_no),
            Tax(),
            None,
        )
        with self.engine.begin() as conn:
            who = get_biller(conn, biller)

            def identify(serial: int) -> Identifiers:
                return self.issuer.identify(who, serial, terms, CREATED.date())

            bill, _ = insert_bill(conn, NewBill(biller, terms, "tok-" + bill_no), CREATED, identify)
        return bill

    def message(
        self, bill: Bill, kind: MessageKind, paid_at: datetime, store: str = "0110002"
    ) -> CollectionEvent:
        assert bill.slip is not None
        transfer = paid_at.date() + timedelta(days=10)
        return cvs_event(bill.slip.barcode, kind, paid_at, transfer_date=transfer, store=store)

    def apply(self, event: CollectionEvent, now: datetime) -> str:
        with self.engine.begin() as conn:
            return self.ingest.apply(conn, Received(event), now, now.date())

    def paid(self, bill: Bill, paid_at: datetime, confirmed_at: datetime | None) -> None:
        """A 速報 at ``paid_at``; a 確報 received at ``confirmed_at`` (None: not yet)."""
        self.apply(self.message(bill, MessageKind.PRELIMINARY, paid_at), paid_at)
        if confirmed_at is not None:
            self.confirm(bill, paid_at, confirmed_at)

    def confirm(self, bill: Bill, paid_at: datetime, confirmed_at: datetime) -> None:
        assert self.apply(self.message(bill, MessageKind.CONFIRMATION, paid_at), confirmed_at) in (
            "applied",
        )

    def settle(self, today: date, biller: str = "acme") -> Settlement | None:
        with self.engine.begin() as conn:
            return settle_next(
                conn,
                biller,
                today,
                datetime.combine(today, datetime.min.time(), JST),
                ids.new_id,
                settlement_json,
            )

    def settled_ids(self, settlement_id: str) -> set[str]:
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    select(payments.c.payment_id).where(payments.c.settlement_id == settlement_id)
                ).scalars()
            )

    def stored(self, settlement_id: str, biller: str = "acme") -> Settlement:
        with self.engine.connect() as conn:
            found = get_settlement(conn, biller, settlement_id)
        assert found is not None
        return found


@pytest.fixture
def world(tmp_path: Path, migrated_url: str) -> Iterator[World]:
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(migrated_url), encoding="utf-8")
    config = load_config(path)
    engine = create_db_engine(migrated_url, 4)
    with engine.begin() as conn:
        for biller_id in ("acme", "other"):
            create_biller(
                conn,
                biller_id=biller_id,
                name=f"{biller_id} 株式会社",
                kana="ｱｸﾒ",
                channels=frozenset({Channel.CVS}),
                payeasy_institution_code=None,
                now=CREATED,
            )
    ingest = Ingest(
        None, None, lambda b: {"bill_no": b.bill_no, "version": b.version}, REGISTRY.finders(config)
    )
    yield World(engine, ingest, Issuer(config))
    engine.dispose()


def test_a_month_pays_out_confirmed_payments_once_less_fees_tax_and_stamps(world: World) -> None:
    world.plan(standard_plan())
    b1 = world.bill("B-1", 5_400)
    b2 = world.bill("B-2", 60_000)  # ¥50,000 or more: the slip asks for a revenue stamp
    b3 = world.bill("B-3", 3_000)
    b4 = world.bill("B-4", 2_000)
    b5 = world.bill("B-5", 7_000)
    world.bill("B-6", 1_000, due=date(2026, 11, 20))  # due in November, never paid
    assert b2.slip is not None and b2.slip.stamp and b1.slip is not None and not b1.slip.stamp
    world.paid(b1, at(11, 5), at(11, 8))
    world.paid(b2, at(11, 18), at(11, 20))
    world.paid(b3, at(11, 25), None)  # 速報 alone: never paid out
    world.paid(b4, at(11, 10), None)
    world.apply(world.message(b4, MessageKind.VOID, at(11, 10)), at(11, 11))  # voided
    world.paid(b5, at(11, 29), at(12, 2))  # confirmed after November closed

    assert world.settle(date(2026, 11, 30)) is None  # November has not closed yet
    november = world.settle(date(2026, 12, 1))
    assert november is not None
    assert (november.period_start, november.period_end) == (date(2026, 11, 1), date(2026, 11, 30))
    assert november.payout_date == date(2026, 12, 3)  # T+3 bank days from Monday the 30th
    t = november.totals
    assert (t.payments_count, t.collected) == (2, 65_400)
    assert (t.fees, t.tax, t.stamp_count, t.stamp_duty) == (2 * 60 + 10 + 500, 63, 1, 200)
    assert t.payout == 65_400 - 630 - 63 - 200 == 64_507
    assert sum(line.amount for line in november.lines) == t.payout
    kinds = [line.kind for line in november.lines]
    assert kinds == [
        LineKind.COLLECTION,
        LineKind.PAYMENT_FEE,
        LineKind.UNCOLLECTED_FEE,
        LineKind.SETTLEMENT_FEE,
        LineKind.TAX,
        LineKind.STAMP_DUTY,
    ]
    assert world.stored(november.settlement_id) == november  # lines and totals as stored
    assert world.settle(date(2026, 12, 1)) is None  # run twice: one settlement

    world.confirm(b3, at(11, 25), at(12, 4))
    december = world.settle(date(2027, 1, 1))
    assert december is not None and december.period_start == date(2026, 12, 1)
    assert december.totals.collected == 7_000 + 3_000
    assert december.payout_date == date(2027, 1, 6)  # Dec 31 - Jan 3 closed: 4th, 5th, 6th
    assert world.settled_ids(november.settlement_id).isdisjoint(
        world.settled_ids(december.settlement_id)
    )
    with world.engine.connect() as conn:
        left = conn.execute(
            select(func.count()).where(
                payments.c.status == "confirmed", payments.c.settlement_id.is_(None)
            )
        ).scalar_one()
        voided = conn.execute(
            select(payments.c.settlement_id).where(payments.c.status == "voided")
        ).scalar_one()
        events = [e for e in list_events(conn, "acme", 0, 1000) if e.type == "settlement.created"]
    assert left == 0 and voided is None
    assert [e.data["settlement"]["payout"] for e in events] == [64_507, december.totals.payout]
    assert events[0].data["settlement"]["settlement_id"] == november.settlement_id


def test_the_suites_teardown_check_finds_a_yen_out_of_place(world: World) -> None:
    """check_settlements_reconcile, run on every test database, fails on a stored settlement
    whose lines miss its payout by one yen, or whose payments miss what it collected."""
    world.plan(standard_plan())
    world.confirm(world.bill("B-1", 5_400), at(11, 5), at(11, 8))
    november = world.settle(date(2026, 12, 1))
    assert november is not None
    url = world.engine.url.render_as_string(hide_password=False)
    fee = settlement_lines.c.kind == LineKind.PAYMENT_FEE.value
    mine = settlement_lines.c.settlement_id == november.settlement_id
    taken = payments.c.payment_id.in_(world.settled_ids(november.settlement_id))
    for change, undo in [
        (
            update(settlement_lines).where(mine, fee).values(amount=settlement_lines.c.amount + 1),
            update(settlement_lines).where(mine, fee).values(amount=settlement_lines.c.amount - 1),
        ),
        (
            update(payments).where(taken).values(settlement_id=None),
            update(payments).where(taken).values(settlement_id=november.settlement_id),
        ),
    ]:
        with world.engine.begin() as conn:
            conn.execute(change)
        with pytest.raises(AssertionError, match=november.settlement_id):
            check_settlements_reconcile(url)
        with world.engine.begin() as conn:
            conn.execute(undo)
        check_settlements_reconcile(url)


def test_a_confirmation_that_commits_after_its_period_was_settled_goes_into_the_next(
    world: World,
) -> None:
    world.plan(standard_plan())
    late = world.bill("B-1", 4_000)
    world.paid(late, at(11, 30, 22), None)
    november = world.settle(date(2026, 12, 1))
    assert november is not None and november.totals.collected == 0
    # The 確報 was stamped 23:59 on the 30th but committed after November's run.
    world.confirm(late, at(11, 30, 22), datetime(2026, 11, 30, 23, 59, tzinfo=JST))
    december = world.settle(date(2027, 1, 1))
    assert december is not None and december.totals.collected == 4_000
    assert world.settle(date(2027, 2, 1)) is not None  # January: nothing of it again
    with world.engine.connect() as conn:
        rows = conn.execute(select(settlements.c.period_start, settlements.c.collected)).all()
    assert sorted(rows) == [
        (date(2026, 11, 1), 0),
        (date(2026, 12, 1), 4_000),
        (date(2027, 1, 1), 0),
    ]


def test_a_fee_change_in_the_middle_of_a_period_applies_from_its_date(world: World) -> None:
    world.plan(standard_plan())
    world.plan(
        standard_plan(
            date(2026, 11, 16),
            settlement_fee=300,
            rates={Channel.CVS: ChannelRates(40, 10, 200)},
            tax_rounding=Rounding.CEIL,
        )
    )
    for n in range(3):
        world.paid(world.bill(f"E-{n}", 1_000), at(11, 10), at(11, 12))  # old plan: ¥60
    for n in range(2):
        world.paid(world.bill(f"L-{n}", 1_000), at(11, 10), at(11, 16, 0))  # new plan: ¥40
    november = world.settle(date(2026, 12, 1))
    assert november is not None
    fees = [
        (line.quantity, line.unit_amount)
        for line in november.lines
        if line.kind is LineKind.PAYMENT_FEE
    ]
    assert fees == [(3, 60), (2, 40)]
    assert november.totals.fees == 180 + 80 + 300  # the closing plan's settlement fee
    assert november.totals.tax == 56  # ceil(56.0)
    assert november.totals.payout == 5_000 - 560 - 56


def test_refunded_cases_are_deducted_once(world: World) -> None:
    world.plan(standard_plan())
    bill = world.bill("D-1", 5_400)
    world.paid(bill, at(11, 5), at(11, 8))
    world.apply(world.message(bill, MessageKind.PRELIMINARY, at(11, 6), store="0999999"), at(11, 6))
    world.apply(
        world.message(bill, MessageKind.CONFIRMATION, at(11, 6), store="0999999"), at(11, 9)
    )
    with world.engine.begin() as conn:
        (case,) = list_refund_cases(conn, "acme", None, 10)
        resolve_refund_case(conn, "acme", case.case_id, "refunded", "returned", at(11, 20))
    november = world.settle(date(2026, 12, 1))
    assert november is not None
    assert november.totals.collected == 10_800 and november.totals.refunds == 5_400
    refund = [line for line in november.lines if line.kind is LineKind.REFUND]
    assert [(r.quantity, r.amount) for r in refund] == [(1, -5_400)]
    december = world.settle(date(2027, 1, 1))
    assert december is not None and december.totals.refunds == 0


def test_a_shortfall_is_carried_forward_and_deducted_next_time(world: World) -> None:
    world.plan(standard_plan())
    november = world.settle(date(2026, 12, 1))  # nothing collected, the settlement fee due
    assert november is not None
    assert (november.totals.payout, november.totals.carried_out) == (0, 550)
    world.paid(world.bill("C-1", 10_000), at(12, 3), at(12, 5))
    december = world.settle(date(2027, 1, 1))
    assert december is not None
    assert december.totals.carried_in == 550
    assert december.totals.payout == 10_000 - 60 - 500 - 56 - 550


def test_every_closed_period_is_settled_in_order_after_a_long_stop(world: World) -> None:
    world.plan(standard_plan(date(2026, 9, 1), cycle=Cycle.THREE_TIMES_MONTHLY))
    made = []
    while (s := world.settle(date(2026, 12, 1))) is not None:
        made.append((s.period_start, s.period_end))
    assert len(made) == 9 and made[0] == (date(2026, 9, 1), date(2026, 9, 10))
    assert made[-1] == (date(2026, 11, 21), date(2026, 11, 30))


def test_billers_are_settled_apart(world: World) -> None:
    world.plan(standard_plan())
    world.plan(standard_plan(settlement_fee=0), biller="other")
    world.paid(world.bill("A-1", 1_000), at(11, 3), at(11, 4))
    world.paid(world.bill("O-1", 2_000, biller="other"), at(11, 3), at(11, 4))
    acme, other = world.settle(date(2026, 12, 1)), world.settle(date(2026, 12, 1), "other")
    assert acme is not None and other is not None
    assert (acme.totals.collected, other.totals.collected) == (1_000, 2_000)
    with world.engine.connect() as conn:
        assert get_settlement(conn, "other", acme.settlement_id) is None  # not another's


def test_a_plan_change_cannot_rewrite_a_settled_period(world: World) -> None:
    world.plan(standard_plan())
    assert world.settle(date(2026, 12, 1)) is not None
    with pytest.raises(Conflict, match="from 2026-12-01 on"):
        world.plan(standard_plan(date(2026, 11, 15), settlement_fee=0))
    assert world.plan(standard_plan()).settlement_fee == 500  # the same plan again: fine
    assert world.plan(standard_plan(date(2026, 12, 1), settlement_fee=0)).settlement_fee == 0


def test_two_runs_at_once_make_one_settlement_and_pay_each_payment_once(world: World) -> None:
    world.plan(standard_plan())
    for n in range(20):
        world.paid(world.bill(f"P-{n}", 1_000 + n), at(11, 5), at(11, 6))
    barrier = threading.Barrier(2)
    results: list[Settlement | None] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(world.settle(date(2026, 12, 1)))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    made = [r for r in results if r is not None]
    assert len(made) == 1
    assert made[0].totals.payments_count == 20
    with world.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(settlements)).scalar_one() == 1


def test_a_preview_counts_as_the_run_will_and_stores_nothing(world: World) -> None:
    world.plan(standard_plan())
    world.paid(world.bill("V-1", 5_400), at(11, 5), at(11, 8))
    world.bill("V-2", 1_000, due=date(2026, 11, 10))  # overdue: uncollected
    world.bill("V-3", 1_000, due=date(2026, 11, 25))  # not due yet on the 20th
    with world.engine.begin() as conn:
        preview = preview_next(
            conn,
            "acme",
            date(2026, 11, 20),
            at(11, 20),
            ids.new_id,
            settlement_json,
        )
    assert preview is not None
    assert (preview.period_start, preview.period_end) == (date(2026, 11, 1), date(2026, 11, 30))
    uncollected = [line.quantity for line in preview.lines if line.kind is LineKind.UNCOLLECTED_FEE]
    assert uncollected == [1]
    assert preview.totals.payout == 5_400 - 60 - 10 - 500 - 57
    with world.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(settlements)).scalar_one() == 0
        assert (
            conn.execute(
                select(func.count()).where(payments.c.settlement_id.is_not(None))
            ).scalar_one()
            == 0
        )
        assert [e.type for e in list_events(conn, "acme", 0, 100)] == [
            "payment.preliminary",
            "payment.confirmed",
        ]  # no settlement.created
    november = world.settle(date(2026, 12, 1))
    assert november is not None
    assert november.totals.collected == preview.totals.collected
    assert november.totals.fees == preview.totals.fees + 10  # V-3 fell due unpaid meanwhile


def test_the_migration_matches_the_schema(world: World) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from gateway.store.schema import metadata

    with world.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
