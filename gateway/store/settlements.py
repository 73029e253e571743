"""The store side of contracts and settlements: fee plans, and the steps of a settlement run
(:func:`gateway.money.settlement.settle_next`, one transaction per biller and period) — lock the
biller, insert the settlement row once, claim its payments and refunds, count them, save the
lines and totals — and what is read of settlements afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, literal, or_, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql.expression import ColumnElement

from gateway.errors import Conflict
from gateway.fee_model import (
    ChannelRates,
    Contract,
    Cycle,
    DailyCollection,
    FeePlan,
    Line,
    LineKind,
    NoticeKind,
    Rounding,
    SettledPayment,
    Settlement,
    Tally,
    Totals,
    jst_midnight,
    notices_document,
    rates_document,
)
from gateway.model import Channel, PaymentStatus
from gateway.store.dialect import dialect_insert
from gateway.store.payouts import payout_statuses
from gateway.store.schema import (
    billers,
    bills,
    fee_plans,
    payments,
    refund_cases,
    settlement_lines,
    settlements,
)

LIVE = (PaymentStatus.PENDING.value, PaymentStatus.CONFIRMED.value)


# --- fee plans ---------------------------------------------------------------------------------


def _plan(row: Row[Any]) -> FeePlan:
    rates = {
        Channel(k): ChannelRates(v["per_payment"], v["per_uncollected"], v["stamp_charge"])
        for k, v in json.loads(row.rates).items()
    }
    return FeePlan(
        effective_from=row.effective_from,
        cycle=Cycle(row.cycle),
        payout_days=row.payout_days,
        settlement_fee=row.settlement_fee,
        tax_rate=row.tax_rate,
        tax_rounding=Rounding(row.tax_rounding),
        rates=rates,
        plan_id=row.id,
        initial_fee=row.initial_fee,
        monthly_fee=row.monthly_fee,
        waive_idle_months=bool(row.waive_idle_months),
        per_bill=row.per_bill,
        notice_rates={NoticeKind(k): int(v) for k, v in json.loads(row.notice_rates).items()},
    )


def list_plans(conn: Connection, biller_id: str) -> list[FeePlan]:
    rows = conn.execute(
        select(fee_plans)
        .where(fee_plans.c.biller_id == biller_id)
        .order_by(fee_plans.c.effective_from)
    )
    return [_plan(r) for r in rows]


def contract_of(conn: Connection, biller_id: str) -> Contract | None:
    plans = list_plans(conn, biller_id)
    return Contract(tuple(plans)) if plans else None


def settled_through(conn: Connection, biller_id: str) -> date | None:
    """The last day of the biller's latest settlement (None: never settled)."""
    found = conn.execute(
        select(func.max(settlements.c.period_end)).where(settlements.c.biller_id == biller_id)
    ).scalar()
    return found if isinstance(found, date) else None


def save_plan(
    conn: Connection, biller_id: str, plan: FeePlan, now: datetime
) -> tuple[FeePlan, bool]:
    """Store a plan version; (stored plan, created). The same plan again changes nothing; a
    plan for a date a settlement already covers is refused: settled periods stay as settled."""
    rates = json.dumps(
        {ch.value: rates_document(plan.rate(ch)) for ch in Channel if ch in plan.rates},
        sort_keys=True,
    )
    values = {
        "cycle": plan.cycle.value,
        "payout_days": plan.payout_days,
        "settlement_fee": plan.settlement_fee,
        "tax_rate": plan.tax_rate,
        "tax_rounding": plan.tax_rounding.value,
        "rates": rates,
        "initial_fee": plan.initial_fee,
        "monthly_fee": plan.monthly_fee,
        "waive_idle_months": plan.waive_idle_months,
        "per_bill": plan.per_bill,
        "notice_rates": json.dumps(notices_document(plan.notice_rates), sort_keys=True),
    }
    # The biller row lock orders plan changes with settlement runs of the same biller.
    locked = conn.execute(
        select(billers.c.biller_id).where(billers.c.biller_id == biller_id).with_for_update()
    ).scalar()
    if locked is None:
        raise Conflict(f"biller {biller_id} does not exist", field="biller_id")
    existing = conn.execute(
        select(fee_plans).where(
            fee_plans.c.biller_id == biller_id, fee_plans.c.effective_from == plan.effective_from
        )
    ).first()
    if existing is not None and all(getattr(existing, k) == v for k, v in values.items()):
        return _plan(existing), False
    through = settled_through(conn, biller_id)
    if through is not None and plan.effective_from <= through:
        raise Conflict(
            f"settlements of {biller_id} cover up to {through}: a plan change can take effect "
            f"from {through + timedelta(days=1)} on",
            field="effective_from",
        )
    if existing is not None:
        conn.execute(update(fee_plans).where(fee_plans.c.id == existing.id).values(**values))
        plan_id = existing.id
    else:
        plan_id = conn.execute(
            fee_plans.insert()
            .values(
                biller_id=biller_id,
                effective_from=plan.effective_from,
                created_at=now,
                **values,
            )
            .returning(fee_plans.c.id)
        ).scalar_one()
    row = conn.execute(select(fee_plans).where(fee_plans.c.id == plan_id)).one()
    return _plan(row), existing is None


def billers_with_plans(conn: Connection) -> list[str]:
    return list(
        conn.execute(
            select(fee_plans.c.biller_id).distinct().order_by(fee_plans.c.biller_id)
        ).scalars()
    )


# --- settlement runs ---------------------------------------------------------------------------


def _plan_case(contract: Contract, column: Any) -> ColumnElement[int]:
    """The index of the plan in force when ``column`` (a timestamp) happened."""
    whens = [(column >= at, index) for index, at in contract.boundaries()]
    if not whens:
        return literal(0)
    return case(*whens, else_=0)


def stamped_receipt(stamp_digit: int) -> ColumnElement[int]:
    """1 for a payment whose store receipt was stamped, else 0: as its biller's chain rules
    judged it when it arrived (``payments.stamped``, gateway.networks.cvs.CvsBills.judge), or,
    for a CVS payment not judged (made before migration 0017), by the 印紙フラグ at
    ``stamp_digit`` of its event key."""
    c = payments.c
    by_flag = and_(c.channel == Channel.CVS.value, func.substr(c.event_key, stamp_digit, 1) == "1")
    return case(
        (c.stamped.is_not(None), case((c.stamped, 1), else_=0)),
        (by_flag, 1),
        else_=0,
    )


def tally(
    conn: Connection,
    contract: Contract,
    biller_id: str,
    settlement_id: str,
    start: date,
    end: date,
    due_before: date,
    stamp_digit: int,
) -> Tally:
    """What the settlement claimed, by channel and plan in force: payments (count, sum) and
    those whose receipt was stamped (:func:`stamped_receipt`: the chain that took the payment
    decides), bills due in the period (before ``due_before``) without a live payment, and the
    refunds deducted."""
    c = payments.c
    plan = _plan_case(contract, c.confirmed_at).label("plan")
    stamped = stamped_receipt(stamp_digit)
    collected: dict[tuple[Channel, int], tuple[int, int]] = {}
    stamps: dict[tuple[Channel, int], int] = {}
    rows = conn.execute(
        select(c.channel, plan, func.count(), func.sum(c.amount), func.sum(stamped))
        .where(c.settlement_id == settlement_id)
        .group_by(c.channel, plan)
    )
    for channel, index, count, total, stamp_count in rows:
        collected[(Channel(channel), int(index))] = (int(count), int(total))
        if stamp_count:
            stamps[(Channel(channel), int(index))] = int(stamp_count)
    live = exists().where(payments.c.bill_id == bills.c.id, payments.c.status.in_(LIVE))
    uncollected: dict[tuple[Channel, int], int] = {}
    for channels, due, count in conn.execute(
        select(bills.c.channels, bills.c.due_date, func.count())
        .where(
            bills.c.biller_id == biller_id,
            bills.c.due_date >= start,
            bills.c.due_date <= end,
            bills.c.due_date < due_before,
            ~live,
        )
        .group_by(bills.c.channels, bills.c.due_date)
    ):
        index = contract.plan_index(due)
        for name in channels.split(","):
            if name:
                key = (Channel(name), index)
                uncollected[key] = uncollected.get(key, 0) + int(count)
    refund = conn.execute(
        select(func.count(), func.coalesce(func.sum(refund_cases.c.amount), 0)).where(
            refund_cases.c.settlement_id == settlement_id
        )
    ).one()
    return Tally(collected, stamps, uncollected, (int(refund[0]), int(refund[1])))


def lock_biller(conn: Connection, biller_id: str) -> None:
    """The biller's row, locked (PostgreSQL): a second run of the same biller waits here and then
    sees this one's settlement; a plan change (save_plan) waits too, so that no plan can take
    effect inside a period while it is being settled."""
    conn.execute(
        select(billers.c.biller_id).where(billers.c.biller_id == biller_id).with_for_update()
    )


def last_settlement(conn: Connection, biller_id: str) -> tuple[date, int] | None:
    """(period end, carried out) of the biller's latest settlement; None before the first."""
    row = conn.execute(
        select(settlements.c.period_end, settlements.c.carried_out)
        .where(settlements.c.biller_id == biller_id)
        .order_by(settlements.c.period_end.desc())
        .limit(1)
    ).first()
    return None if row is None else (row.period_end, int(row.carried_out))


def insert_settlement(
    conn: Connection,
    settlement_id: str,
    biller_id: str,
    period: tuple[date, date],
    plan: FeePlan,
    payout: date,
    now: datetime,
) -> bool:
    """The settlement's row, its totals zero, ``ON CONFLICT DO NOTHING`` on (biller, period
    start); False when another run has made it."""
    start, end = period
    created = conn.execute(
        dialect_insert(conn, settlements)
        .values(
            settlement_id=settlement_id,
            biller_id=biller_id,
            period_start=start,
            period_end=end,
            cycle=plan.cycle.value,
            payout_date=payout,
            plan_id=plan.plan_id,
            payments_count=0,
            collected=0,
            fees=0,
            tax=0,
            stamp_count=0,
            stamp_duty=0,
            refunds=0,
            carried_in=0,
            carried_out=0,
            payout=0,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["biller_id", "period_start"])
        .returning(settlements.c.settlement_id)
    ).scalar()
    return created is not None


def claim_for_settlement(
    conn: Connection, biller_id: str, settlement_id: str, until: datetime
) -> None:
    """The biller's confirmed payments and ``refunded`` refund cases that no settlement has
    taken, confirmed (resolved) before ``until``, claimed by the settlement: one
    ``settlement_id`` each, so each is paid out (deducted) once."""
    conn.execute(
        update(payments)
        .where(
            payments.c.biller_id == biller_id,
            payments.c.settlement_id.is_(None),
            payments.c.status == PaymentStatus.CONFIRMED.value,
            payments.c.confirmed_at < until,
        )
        .values(settlement_id=settlement_id)
    )
    conn.execute(
        update(refund_cases)
        .where(
            refund_cases.c.biller_id == biller_id,
            refund_cases.c.settlement_id.is_(None),
            refund_cases.c.resolution == "refunded",
            refund_cases.c.resolved_at < until,
        )
        .values(settlement_id=settlement_id)
    )


def save_settlement(
    conn: Connection, settlement_id: str, lines: Sequence[Line], totals: Totals
) -> None:
    """The settlement's lines and totals."""
    if lines:
        conn.execute(
            settlement_lines.insert(),
            [
                {
                    "settlement_id": settlement_id,
                    "line_no": no,
                    "kind": line.kind.value,
                    "channel": line.channel.value if line.channel else None,
                    "description": line.description,
                    "quantity": line.quantity,
                    "unit_amount": line.unit_amount,
                    "amount": line.amount,
                }
                for no, line in enumerate(lines, 1)
            ],
        )
    conn.execute(
        update(settlements)
        .where(settlements.c.settlement_id == settlement_id)
        .values(**vars(totals))
    )


# --- reading settlements -------------------------------------------------------------------


def _settlement(row: Row[Any], lines: tuple[Line, ...]) -> Settlement:
    totals = Totals(**{k: int(getattr(row, k)) for k in Totals.__dataclass_fields__})
    return Settlement(
        row.settlement_id,
        row.biller_id,
        row.period_start,
        row.period_end,
        Cycle(row.cycle),
        row.payout_date,
        totals,
        lines,
        row.created_at,
    )


def _lines(conn: Connection, settlement_id: str) -> tuple[Line, ...]:
    rows = conn.execute(
        select(settlement_lines)
        .where(settlement_lines.c.settlement_id == settlement_id)
        .order_by(settlement_lines.c.line_no)
    )
    return tuple(
        Line(
            LineKind(r.kind),
            r.description,
            int(r.quantity),
            None if r.unit_amount is None else int(r.unit_amount),
            int(r.amount),
            Channel(r.channel) if r.channel else None,
        )
        for r in rows
    )


def _with_payouts(conn: Connection, found: list[Settlement]) -> list[Settlement]:
    """The settlements with their payout status (gateway.store.payouts)."""
    statuses = payout_statuses(conn, [s.settlement_id for s in found])
    return [
        replace(s, payout_status=statuses[s.settlement_id]) if s.settlement_id in statuses else s
        for s in found
    ]


def get_settlement(conn: Connection, biller_id: str, settlement_id: str) -> Settlement | None:
    row = conn.execute(
        select(settlements).where(
            settlements.c.biller_id == biller_id, settlements.c.settlement_id == settlement_id
        )
    ).first()
    if row is None:
        return None
    return _with_payouts(conn, [_settlement(row, _lines(conn, settlement_id))])[0]


def list_settlements(
    conn: Connection, biller_id: str, after: date | None, limit: int
) -> list[Settlement]:
    """The biller's settlements by period, oldest first, after the period starting ``after``;
    without their lines (``GET /v1/settlements/{id}`` has them)."""
    stmt = select(settlements).where(settlements.c.biller_id == biller_id)
    if after is not None:
        stmt = stmt.where(settlements.c.period_start > after)
    rows = conn.execute(stmt.order_by(settlements.c.period_start).limit(limit))
    return _with_payouts(conn, [_settlement(r, ()) for r in rows])


def list_all_settlements(
    conn: Connection, before: tuple[date, str] | None, limit: int
) -> list[Settlement]:
    """Every biller's settlements, the latest payout date first (then by id, descending),
    after ``before`` (the payout date and id of the previous page's last); without lines."""
    c = settlements.c
    stmt = select(settlements)
    if before is not None:
        day, settlement_id = before
        stmt = stmt.where(
            or_(c.payout_date < day, and_(c.payout_date == day, c.settlement_id < settlement_id))
        )
    rows = conn.execute(stmt.order_by(c.payout_date.desc(), c.settlement_id.desc()).limit(limit))
    return _with_payouts(conn, [_settlement(r, ()) for r in rows])


def settled_payments(
    conn: Connection, settlement_id: str, batch: int = 5000, *, stamp_digit: int
) -> Iterator[SettledPayment]:
    """Every payment a settlement paid out, in confirmation order, read a batch at a time
    (``stamp_digit`` as for :func:`settle_next`)."""
    c = payments.c
    stamped = stamped_receipt(stamp_digit)
    last: tuple[datetime, str] | None = None
    while True:
        stmt = (
            select(
                c.payment_id,
                bills.c.bill_no,
                c.channel,
                c.amount,
                c.paid_at,
                c.confirmed_at,
                stamped.label("stamped"),
                c.store,
            )
            .select_from(payments.outerjoin(bills, bills.c.id == c.bill_id))
            .where(c.settlement_id == settlement_id)
            .order_by(c.confirmed_at, c.payment_id)
            .limit(batch)
        )
        if last is not None:
            stmt = stmt.where(
                (c.confirmed_at > last[0]) | and_(c.confirmed_at == last[0], c.payment_id > last[1])
            )
        rows = conn.execute(stmt).all()
        for r in rows:
            yield SettledPayment(
                r.payment_id,
                r.bill_no,
                Channel(r.channel),
                int(r.amount),
                r.paid_at,
                r.confirmed_at,
                bool(r.stamped),
                r.store,
            )
        if len(rows) < batch:
            return
        last = (rows[-1].confirmed_at, rows[-1].payment_id)


# --- the per-day collection report -------------------------------------------------------


def jst_day(conn: Connection, column: Any) -> ColumnElement[Any]:
    """A UTC timestamp column as its JST date, in SQL: what the report groups by."""
    if conn.dialect.name == "postgresql":
        return func.date(func.timezone("Asia/Tokyo", column))
    return func.date(column, "+9 hours")


def daily_collections(
    conn: Connection, biller_id: str, first: date, last: date
) -> list[DailyCollection]:
    """Live payments made on each JST day of [first, last], by channel and chain (the CVS
    chain code, the bank of a Pay-easy payment or transfer)."""
    c = payments.c
    day = jst_day(conn, c.paid_at).label("day")
    if conn.dialect.name == "postgresql":
        chain = func.coalesce(func.split_part(c.store, "-", 1), "").label("chain")
    else:
        dash = func.instr(c.store, "-")
        chain = case(
            (dash > 0, func.substr(c.store, 1, dash - 1)), else_=func.coalesce(c.store, "")
        ).label("chain")
    confirmed = case((c.status == PaymentStatus.CONFIRMED.value, 1), else_=0)
    rows = conn.execute(
        select(
            day,
            c.channel,
            chain,
            func.count(),
            func.sum(c.amount),
            func.sum(confirmed),
            func.sum(confirmed * c.amount),
        )
        .where(
            c.biller_id == biller_id,
            c.status.in_(LIVE),
            c.paid_at >= jst_midnight(first),
            c.paid_at < jst_midnight(last + timedelta(days=1)),
        )
        .group_by(day, c.channel, chain)
        .order_by(day, c.channel, chain)
    )
    return [
        DailyCollection(
            day if isinstance(day, date) else date.fromisoformat(str(day)),
            Channel(channel),
            chain_code or "",
            int(count),
            int(total),
            int(confirmed_count),
            int(confirmed_total),
        )
        for day, channel, chain_code, count, total, confirmed_count, confirmed_total in rows
    ]


def settlement_biller(conn: Connection, settlement_id: str) -> str | None:
    """Whose settlement this is (the operator's commands name settlements by id alone)."""
    found = conn.execute(
        select(settlements.c.biller_id).where(settlements.c.settlement_id == settlement_id)
    ).scalar()
    return None if found is None else str(found)
