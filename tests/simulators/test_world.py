"""The deterministic simulation (simulators.world): a fixed sample of seeds breaks no invariant,
a few random ones (printed, to replay), a seed replays exactly, and deliberately broken copies
of the gateway are caught within the sample. Then the regressions the simulation found, each
named after the seed that found it.

The sample runs on SQLite; with GATEWAY_TEST_DATABASE_URL set, a smaller one runs on that
PostgreSQL server too. SIM_SAMPLE=N changes the size of the SQLite sample.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway import ledger
from gateway.ledger import apply_message
from gateway.model import JST, BillStatus, Channel, MessageKind, PaymentStatus
from gateway.store.bills import get_bill, save_bill
from gateway.store.schema import refund_cases
from simulators.world.__main__ import Outcome, replay_command, run_many
from simulators.world.world import Databases, run_seed
from tests.conftest import DB_ENV, on_postgres
from tests.test_ingest import NOW, World
from tests.test_ingest import world as world  # the ingest tests' fixture, reused
from tests.test_ledger import NOW as LEDGER_NOW
from tests.test_ledger import TODAY, Ids, make_bill, message, payment, slip

SAMPLE = range(int(os.environ.get("SIM_SAMPLE", "200")))  # the CI sample, SQLite
PG_SAMPLE = range(1000, 1030)
JOBS = 2


def _workdir() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def _args(tmp_path: Path, url: str | None = None, mutant: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(
        database_url=url, jobs=JOBS, traces=tmp_path / "traces", mutant=mutant
    )


def run(
    seeds: range | list[int], args: argparse.Namespace, stop_at_first: bool = False
) -> list[Outcome]:
    broken = []
    runs = run_many(list(seeds), args, _workdir())
    try:
        for outcome in runs:
            if outcome.breaks:
                broken.append(outcome)
                print(f"seed {outcome.seed}: {outcome.breaks[0]}")
                print(f"  replay: {replay_command(outcome.seed, args)}")
                if stop_at_first:
                    break
    finally:
        runs.close()  # type: ignore[attr-defined]
    return broken


def explain(broken: list[Outcome], args: argparse.Namespace) -> str:
    return "\n".join(
        f"seed {o.seed}: {'; '.join(o.breaks[:3])}\n  {replay_command(o.seed, args)}\n"
        f"  trace: {o.trace_file}"
        for o in broken
    )


def test_the_ci_sample_breaks_no_invariant(tmp_path: Path) -> None:
    args = _args(tmp_path)
    broken = run(SAMPLE, args)
    assert not broken, explain(broken, args)


def test_a_few_random_seeds_break_no_invariant(tmp_path: Path) -> None:
    seeds = random.SystemRandom().sample(range(100_000, 10_000_000), 4)
    print(f"random seeds: {seeds}")
    args = _args(tmp_path)
    broken = run(seeds, args)
    assert not broken, explain(broken, args)


@pytest.mark.skipif(not on_postgres(), reason=f"{DB_ENV} is not set")
def test_a_sample_on_postgresql_breaks_no_invariant(tmp_path: Path) -> None:
    args = _args(tmp_path, os.environ[DB_ENV])
    broken = run(PG_SAMPLE, args)
    assert not broken, explain(broken, args)


def test_a_seed_replays_exactly(tmp_path: Path) -> None:
    databases = Databases(tmp_path, None)
    first = run_seed(7, databases, tmp_path, keep_trace=True)
    again = run_seed(7, databases, tmp_path, keep_trace=True)
    assert first.trace.lines == again.trace.lines
    assert len(first.trace.lines) > 50
    assert (first.injected, first.stats, first.breaks) == (again.injected, again.stats, [])


@pytest.mark.parametrize(
    ("mutant", "caught_by"),
    [
        ("ack-before-commit", "is stored, it is not"),
        ("settle-twice", "point at it"),
        ("dedup-without-constraint", "stored 2 times"),
        ("debit-paid-bills", "after payment"),
    ],
)
def test_a_broken_copy_is_caught_within_the_sample(
    tmp_path: Path, mutant: str, caught_by: str
) -> None:
    """The gateway with acks before the commit, a settlement that can claim a payment twice,
    a dedup that looks instead of relying on the store's unique constraint, or a debit run
    that takes bills already paid at a store: some seed of the CI sample breaks, and says
    how."""
    args = _args(tmp_path, mutant=mutant)
    broken = run(SAMPLE, args, stop_at_first=True)
    assert broken, f"the {mutant} mutant went through {len(SAMPLE)} seeds unnoticed"
    assert any(caught_by in b for b in broken[0].breaks), broken[0].breaks


# --- regressions found by the simulation ---------------------------------------------------------


def test_seed_3564_a_debit_chosen_before_a_store_payment_committed_is_not_a_break(
    tmp_path: Path,
) -> None:
    """Seed 3564: the Zengin request run and a CVS CSV were queued at the same instant and the
    request ran first, so it rightly chose bills the CSV then paid (the customer is refunded
    through a double-payment case). The request's created_at (read when it was queued) is later
    than the payments' receipt time; the invariant judges by commit order instead."""
    outcome = run_seed(3564, Databases(tmp_path, None), tmp_path, keep_trace=True)
    assert outcome.breaks == []
    written = [line for line in outcome.trace.lines if "zengin: request" in line]
    applied = [line for line in outcome.trace.lines if "CSV agency-csv:20271130" in line]
    assert written and applied
    assert outcome.stats["double_paid_bills"] >= 3  # the bills the debit and the store both paid


def test_seed_4_a_void_of_the_paying_payment_leaves_one_double_payment_case_fewer(
    world: World,
) -> None:
    """Seed 4: a bill paid three times, then the first (paying) payment voided. The two left
    both had double-payment cases: the biller was told to refund both, though one of them now
    pays the bill. The void closes the case of the first one left."""
    code = world.bill("B-1").slip.barcode  # type: ignore[union-attr]
    stores = ("0110001", "0110002", "0110003")
    paid = [
        world.message(code, MessageKind.PRELIMINARY, store=s, at=NOW + timedelta(minutes=n))
        for n, s in enumerate(stores)
    ]
    world.apply(*paid)
    assert sorted(c.status for c in world.rows(refund_cases)) == ["open", "open"]
    world.apply(world.message(code, MessageKind.VOID, store=stores[0], at=NOW))
    cases = {c.payment_id: c for c in world.rows(refund_cases)}
    assert sorted(c.status for c in cases.values()) == ["open", "resolved"]
    (closed,) = [c for c in cases.values() if c.status == "resolved"]
    assert closed.resolution == "voided_by_network" and "now pays the bill" in closed.note
    bill = world.current("B-1")
    assert bill.double_paid and bill.status.value == "paid"


def test_seed_38_a_voided_double_payment_keeps_no_open_case(world: World) -> None:
    """Seed 38 (found running the ack-before-commit mutant; the code at fault was the real
    one): paid three times, then the third payment voided. Its money went back to the payer,
    yet its double-payment case stayed open (two payments were still live): the biller would
    have refunded it a second time."""
    code = world.bill("B-1").slip.barcode  # type: ignore[union-attr]
    stores = ("0110001", "0110002", "0110003")
    world.apply(
        *[
            world.message(code, MessageKind.PRELIMINARY, store=s, at=NOW + timedelta(minutes=n))
            for n, s in enumerate(stores)
        ]
    )
    world.apply(
        world.message(code, MessageKind.VOID, store=stores[2], at=NOW + timedelta(minutes=2))
    )
    cases = world.rows(refund_cases)
    assert sorted((c.status, c.resolution or "") for c in cases) == [
        ("open", ""),
        ("resolved", "voided_by_network"),
    ]
    assert world.current("B-1").double_paid


def test_seed_9_a_voided_payment_of_a_cancelled_bill_keeps_no_open_case(world: World) -> None:
    """Seed 9: a bill cancelled, then paid at a store (a paid_after_cancel refund case), then
    the store voided the payment. The case stayed open: the biller would have refunded money
    the store had already given back."""
    code = world.bill("B-1").slip.barcode  # type: ignore[union-attr]
    with world.engine.begin() as conn:
        found = get_bill(conn, "acme", "B-1", for_update=True)
        assert found is not None
        bill_id, bill = found
        cancelled = ledger.cancel_bill(bill, now=NOW.astimezone(JST))
        assert cancelled.bill is not None
        save_bill(conn, bill_id, bill, cancelled.bill)
    world.apply(world.message(code, MessageKind.PRELIMINARY))
    (case,) = world.rows(refund_cases)
    assert (case.reason, case.status) == ("paid_after_cancel", "open")
    world.apply(world.message(code, MessageKind.VOID))
    (case,) = world.rows(refund_cases)
    assert (case.status, case.resolution) == ("resolved", "voided_by_network")
    with world.engine.connect() as conn:
        assert (
            conn.execute(select(refund_cases.c.note))
            .scalar_one()
            .endswith("its money went back to the payer")
        )


def test_seed_71_a_payment_waiting_for_its_refund_does_not_pay_the_bill() -> None:
    """Seed 71: a bill of 30,000 yen with a transfer debit in flight, reissued at 31,000 yen.
    The bank debited the 30,000 asked before the reissue: an amount_mismatch refund case. The
    customer then paid the first slip (30,000) at a store. The ledger took the refunded debit
    for a payment of the bill (its amount is one the bill once asked for), so the store payment
    became a double payment: both would have been refunded, the bill left unpaid. A payment
    with a refund case other than a double payment never pays the bill."""
    slips = [slip(0, 30000), slip(1, 31000)]
    bill = make_bill(amount=31000, reissue=1, slip=slips[1], status=BillStatus.OPEN)
    debit = payment("pay_debit", "transfer-key", status=PaymentStatus.CONFIRMED, amount=30000)
    debit = dataclasses.replace(debit, channel=Channel.TRANSFER)
    at_the_store = message(MessageKind.PRELIMINARY, "k-store", amount=30000, slip_reissue=0)
    outcome = apply_message(
        bill,
        [debit],
        at_the_store,
        biller_id=None,
        slips=slips,
        today=TODAY,
        now=LEDGER_NOW,
        new_id=Ids(),
        refunded={"pay_debit"},
    )
    assert outcome.refund_cases == ()
    assert outcome.bill is not None
    assert (outcome.bill.status, outcome.bill.double_paid) == (BillStatus.PAID, False)
    assert ledger.paying(outcome.bill, [debit, *outcome.payments], slips, {"pay_debit"}) == list(
        outcome.payments
    )
