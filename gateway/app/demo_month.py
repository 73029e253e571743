"""``gateway-demo``'s last step: the month it collected in, closed, paid out and reconciled.

The demo collects for real, on the wall clock, for a couple of minutes; the month it collects in
closes only at its end. This step runs the month's close on the demo's own clock (a
:class:`twisted.internet.task.Clock`, the injected clock the daemon's jobs take), moved to what
would happen then, with the code the daemon's jobs and ``gateway-admin`` run — in this process,
on the demo's database, the daemon still up:

1. on the first day of the next month at 00:05 JST, the water utility's contract and every
   biller's payout account (``contract set``, ``biller payout-account``), then the settlement
   run (the daemon's settlement job, ``gateway-admin settle``): the month's settlements;
2. on their payout date at 09:00, the 総合振込 file (the payout job, ``gateway-admin payout
   request``) into ``[payouts] outbox``; the simulated bank (simulators.zengin_payouts) takes it
   and pays each transfer; the settlements are paid out;
3. the center's bank statement of those days (simulators.bank_statement): what each CVS agency
   remitted by its simulator's own account, less its fees (kessai's first remittance a bank day
   late, planted), what the bank of 口座振替 credited by its result files, and the payouts;
4. its import and reconciliation (``gateway-admin recon import``, ``recon show``): every
   remittance matched to the yen, the late one one ``late`` item resolved as it came — and the
   real ``gateway-admin recon open`` says 0 open items.

Pay-easy's 消込 of the demo's day wait for that day's 閉局 (``[mpn] close_at``, 23:50): not
confirmed within the demo, they are neither settled nor expected from the MPN center yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from twisted.internet import task

from gateway import ids
from gateway.app.demo_data import (
    CVS_REMITTERS,
    DEMO_PLAN,
    PAYOUT_ACCOUNTS,
    TRANSFER_REMITTER,
)
from gateway.app.process import admin_json
from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.config import load_config
from gateway.infra.secretbox import SecretBox
from gateway.mappers.zengin.payouts import parse_payout_file
from gateway.model import JST, Channel, PaymentStatus
from gateway.money.fees import parse_plan
from gateway.money.payout_service import checked
from gateway.money.payouts import (
    account_json,
    mark_paid_out,
    parse_account_spec,
    prepare_payout,
    set_account,
    write_pending,
)
from gateway.money.reconciliation import day_view, import_statement
from gateway.money.settlement import JOB_ACTOR, put_fee_plan, settle_audited, settlement_json
from gateway.recon_model import ItemKind
from gateway.store import create_db_engine
from gateway.store.audit import record
from gateway.store.reconciliation import list_items
from gateway.store.schema import payments
from gateway.store.settlements import billers_with_plans
from simulators.bank_statement import (
    Fees,
    Remittance,
    delayed,
    statement_file,
    summary_remittances,
    transfer_remittances,
)
from simulators.zengin_payouts import PayoutBank

ACTOR = "cli:gateway-demo"  # the operator's steps, in the audit log
WITHDRAWAL = "ｿｳｺﾞｳﾌﾘｺﾐ"  # how the bank's statement names the payouts it debited


def _render(settlement: Any) -> dict[str, Any]:
    return settlement_json(settlement, lines=False)


def close_month(
    say: Callable[[str], None],
    workdir: Path,
    config_path: Path,
    cvs_runs: Sequence[tuple[str, Mapping[str, Any]]],
) -> int:
    """Run the month's close (see the module docstring); the open items the real ``gateway-admin
    recon open`` counts at the end. ``cvs_runs``: each ``python -m simulators.cvs`` run's agency
    and JSON summary."""
    config = load_config(config_path)
    assert config.payouts is not None and config.secret_key is not None, "the demo's config"
    payouts, box = checked(config.payouts), SecretBox(config.secret_key)
    engine = create_db_engine(config.database.url, 1)
    wall_today = datetime.now(JST).date()
    month = wall_today.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    clock = task.Clock()

    def move_to(day: date, at: time) -> datetime:
        when = datetime.combine(day, at, JST).timestamp()
        clock.advance(max(0.0, when - clock.seconds()))
        return clock_now(clock)

    now = move_to(next_month, time(0, 5))
    today = clock_today(clock)
    say(
        f"\n== the month closed, on the demo's clock: {now.astimezone(JST):%Y-%m-%d %H:%M} JST "
        "(the code of the daemon's jobs and gateway-admin, in this process)"
    )
    try:
        with engine.begin() as conn:
            plan = parse_plan(DEMO_PLAN, month)
            put_fee_plan(conn, ACTOR, "demo-water", plan, now)
            say(
                f"$ gateway-admin contract set --biller demo-water --plan plan.json  (from {month})"
            )
            for biller, (spec, holder) in PAYOUT_ACCOUNTS.items():
                terms = parse_account_spec(spec, holder, check_bank_master=True)
                stored, _ = set_account(conn, box, biller, terms, today, today, now)
                shown = account_json(stored)
                record(conn, ACTOR, "payout_account.put", f"biller:{biller}", now,
                       biller_id=biller, after=shown)  # fmt: skip
                say(
                    f"$ gateway-admin biller payout-account --id {biller} --account {spec} "
                    f"--holder {holder}  -> {shown['bank_name']} {shown['branch_name']} "
                    f"{shown['account_type_name']} {shown['account_number']}"
                )
            pending_payeasy = conn.execute(
                select(func.count()).where(
                    payments.c.channel == Channel.PAYEASY.value,
                    payments.c.status == PaymentStatus.PENDING.value,
                )
            ).scalar_one()
        made = settle(engine, today, now)
        say(f"$ gateway-admin settle  (the settlement job, as of {today})")
        for s in made:
            t = s.totals
            say(
                f"  {s.biller_id} {s.period_start}..{s.period_end}: ¥{t.collected:,} collected "
                f"({t.payments_count} payment(s)), fees and tax ¥{t.fees + t.tax + t.stamp_duty:,}"
                f", payout ¥{t.payout:,} on {s.payout_date}"
            )
        say(
            f"  (Pay-easy: {pending_payeasy} 消込 of the demo's day wait for its 閉局 at 23:50: "
            "settled and remitted once confirmed)"
        )

        paid: list[Remittance] = []
        for day in sorted({s.payout_date for s in made if s.totals.payout > 0}):
            paid += pay_out(say, engine, payouts, box, workdir, day, move_to(day, time(9, 0)))

        deposits, first = remittances(cvs_runs, workdir, wall_today)
        statement = bank_statement(say, workdir, first, deposits, paid)
        move_to(max(r.day for r in [*deposits, *paid]) + timedelta(days=1), time(9, 0))
        reconcile(say, engine, config, statement, clock_now(clock), deposits)
    finally:
        engine.dispose()
    found = admin_json(config_path, "recon", "open")
    count = int(found["count"])
    say(
        f"$ gateway-admin recon open  -> {count} open item(s)"
        + (": the month reconciles to zero" if count == 0 else "")
    )
    return count


def settle(engine: Any, today: date, now: datetime) -> list[Any]:
    """Every closed period of every contract, as the settlement job settles them."""
    with engine.connect() as conn:
        billers = billers_with_plans(conn)
    made = []
    for biller in billers:
        while True:
            with engine.begin() as conn:
                settlement = settle_audited(conn, JOB_ACTOR, biller, today, now)
            if settlement is None:
                break
            made.append(settlement)
    return made


def pay_out(
    say: Callable[[str], None],
    engine: Any,
    payouts: Any,
    box: SecretBox,
    workdir: Path,
    day: date,
    now: datetime,
) -> list[Remittance]:
    """The payout file of ``day`` (the payout job at [payouts] at), the simulated bank's answer,
    the settlements paid out; what the bank debited the center's account."""
    with engine.begin() as conn:
        prepared = prepare_payout(conn, payouts, day, now, ids.new_id, _render)
    with engine.begin() as conn:
        write_pending(conn, payouts, box, now)
    assert prepared.file is not None, "the settlements were due on their payout date"
    name = prepared.file.file_name
    say(f"$ gateway-admin payout request --date {day}  (the payout job at 09:00)")
    say(
        f"  {name}: {prepared.file.records} transfer(s), ¥{prepared.file.total:,}, 総合振込 from "
        f"the center's account into outbox/payouts/"
    )
    for t in parse_payout_file((payouts.outbox / name).read_bytes()).transfers:
        say(
            f"    {t.bank_code} {t.bank_name.strip()} {t.branch_code} ****{t.account_number[-3:]}"
            f" {t.payee_name.strip():<20} ¥{t.amount:>9,}  顧客コード {t.customer_code1}"
            f" {t.customer_code2}"
        )
    bank = PayoutBank(payouts.outbox, payouts.inbox, workdir / "bank", mix={"0": 100}, today=day)
    returned = bank.process_once()
    answered = bank.record(name)
    say("$ python -m simulators.zengin_payouts --once  (the center's bank pays each transfer)")
    credited = [e for e in answered if e.paid]
    say(
        f"  bank: {len(credited)} paid (¥{sum(e.amount for e in credited):,}), "
        f"{len(answered) - len(credited)} returned ({len(returned)} 振込不能 file(s))"
    )
    with engine.begin() as conn:
        moved = mark_paid_out(conn, day, now, ids.new_id, _render)
    say(f"  {moved} settlement(s) paid_out on {day} (settlement.paid_out)")
    return [Remittance(day, e.amount, WITHDRAWAL) for e in credited]


def remittances(
    cvs_runs: Sequence[tuple[str, Mapping[str, Any]]], workdir: Path, on: date
) -> tuple[list[Remittance], date]:
    """What the networks remitted into the center's account: each CVS agency by its simulator's
    account, less its fees (kessai's first remittance one bank day late), and the bank of
    口座振替 by the result files it sent; and the first day they were due."""
    out: list[Remittance] = []
    for agency, (name, per_item, per_remittance) in CVS_REMITTERS.items():
        runs = [summary["remitted"] for a, summary in cvs_runs if a == agency]
        out += summary_remittances(runs, name, Fees(per_item, per_remittance))
    results = sorted((workdir / "bank" / "sent").iterdir())
    out += transfer_remittances(results, TRANSFER_REMITTER[1], on=on, days=0)
    first = min(r.day for r in out)
    late = [r for r in out if r.name == CVS_REMITTERS["kessai"][0]]
    if late:
        out = delayed(out, late[0].name, late[0].day, days=1)
    return sorted(out, key=lambda r: (r.day, r.name)), first


def bank_statement(
    say: Callable[[str], None],
    workdir: Path,
    first: date,
    deposits: Sequence[Remittance],
    withdrawals: Sequence[Remittance],
) -> Path:
    """The 入出金取引明細 of the days [first, the last deposit or payout], written."""
    last = max(r.day for r in [*deposits, *withdrawals])
    path = statement_file(
        workdir / "bank" / "statements",
        f"NYUSHUKKIN_{first:%Y%m%d}_{last:%Y%m%d}.txt",
        deposits,
        first_day=first,
        last_day=last,
        withdrawals=withdrawals,
    )
    say(
        f"  the center's bank writes its statement (入出金取引明細, simulators.bank_statement): "
        f"{path.name}"
    )
    for r in deposits:
        say(f"    {r.day} 入金 ¥{r.amount:>9,}  {r.name}")
    for r in withdrawals:
        say(f"    {r.day} 出金 ¥{r.amount:>9,}  {r.name}")
    return path


def reconcile(
    say: Callable[[str], None],
    engine: Any,
    config: Any,
    statement: Path,
    now: datetime,
    deposits: Sequence[Remittance],
) -> None:
    with engine.begin() as conn:
        summary = import_statement(conn, config, statement.read_bytes(), statement.name, now, ACTOR)
    states = ", ".join(f"{n} {state}" for state, n in sorted(summary["remittances"].items()))
    say(f"$ gateway-admin recon import {statement.name}")
    say(
        f"  {summary['deposits']} deposit(s) ({summary['new_deposits']} new) for "
        f"{summary['first_day']}..{summary['last_day']}: remittances {states}; "
        f"{summary['open_items']} open item(s)"
    )
    days = sorted({r.day for r in deposits} | _late_days(engine))
    for day in days:
        with engine.begin() as conn:
            view = day_view(conn, config, day, now)
        for row in view["remittances"]:
            came = f" (came {row['received_on']})" if row["received_on"] else ""
            say(
                f"  recon show --date {day}: {row['network']:<8} {row['agency']:<10} "
                f"{row['count']} payment(s) ¥{row['gross']:,} − fees ¥{row['fees']:,} = "
                f"¥{row['expected']:,}; received ¥{row['received']:,}: {row['state']}{came}"
            )
        for item in view["items"]:
            say(
                f"    item {item['item_id']} ({item['kind']}, {item['status']}): "
                f"{item['resolution']}"
            )


def _late_days(engine: Any) -> set[date]:
    with engine.connect() as conn:
        return {i.transfer_date for i in list_items(conn) if i.kind is ItemKind.LATE}
