"""Settlements: the scheduled run, and what billers and the operator read of them.

The job (:class:`SettlementJob`) runs every ``[settlement] interval`` seconds on the injected
clock and once at start. For each biller with a contract it settles every period that has
closed (its last JST day is before today), oldest first, one transaction each
(:func:`settle_next`), so a daemon that was down for a month catches up period by period.
Running it again, or on several daemons at once, creates nothing twice.

A settlement run is one transaction per biller and period (:func:`settle_next`, with the
store's ``gateway.store.settlements`` functions):

1. the biller's row is locked (PostgreSQL), so runs of one biller and its plan changes take
   turns; the settlement row is inserted ``ON CONFLICT DO NOTHING`` on (biller, period start):
   a second run, or a second daemon on the same PostgreSQL, settles nothing twice;
2. the biller's confirmed payments that no settlement has taken, confirmed before the period's
   end, are claimed by one ``UPDATE … SET settlement_id`` — a payment has one settlement_id, so
   it is paid out once, and a payment confirmed after its period closed is claimed by the next;
3. refund cases resolved ``refunded`` are claimed the same way and deducted;
4. bills due in the period that never got a live payment are counted (uncollected slips);
5. :func:`gateway.money.fees.settle` makes the lines; they, the totals and a ``settlement.created``
   event are written in the same transaction.

Statements (CSV, PDF) are rendered on the reactor's thread pool, never on the reactor thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from prometheus_client import Counter
from sqlalchemy.engine import Connection
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from gateway import ids
from gateway.billing.actors import system_actor
from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.errors import FieldError, InvalidRequest, NotFound, Refusal
from gateway.fee_model import (
    DailyCollection,
    FeePlan,
    PayoutStatus,
    Settlement,
    Tally,
    jst_midnight,
)
from gateway.infra.jobs import logged_run, timer
from gateway.mappers.cvs.barcode import STAMP_DIGIT
from gateway.mappers.zengin.payouts import return_meaning
from gateway.model import EventType, Principal
from gateway.money import statements
from gateway.money.fees import parse_plan, payout_date, settle
from gateway.store import Store
from gateway.store.audit import record
from gateway.store.billers import get_biller
from gateway.store.events import append_event
from gateway.store.mpn import day_close_report
from gateway.store.notice_charges import whole_fee_tally
from gateway.store.payouts import claim_returned
from gateway.store.settlements import (
    billers_with_plans,
    claim_for_settlement,
    contract_of,
    daily_collections,
    get_settlement,
    insert_settlement,
    last_settlement,
    list_plans,
    list_settlements,
    lock_biller,
    save_plan,
    save_settlement,
    settled_payments,
    settled_through,
    tally,
)
from gateway.views import iso

T = TypeVar("T")
log = Logger()

SETTLEMENTS_CREATED = Counter(
    "gateway_settlement_created_total", "Settlements created by settlement runs."
)
SETTLED_PAYMENTS = Counter(
    "gateway_settlement_payments_total", "Confirmed payments paid out by a settlement."
)
RUN_FAILURES = Counter(
    "gateway_settlement_run_failures_total", "Settlement runs that failed (logged)."
)
ENCODINGS = ("utf-8", "shift_jis")
MAX_REPORT_DAYS = 366
EARLIEST, LATEST = date(2000, 1, 1), date(2099, 12, 31)  # report and day-close dates


def settlement_json(s: Settlement, *, lines: bool = True) -> dict[str, Any]:
    t = s.totals
    doc: dict[str, Any] = {
        "settlement_id": s.settlement_id,
        "period": {"start": s.period_start.isoformat(), "end": s.period_end.isoformat()},
        "cycle": s.cycle.value,
        "payout_date": s.payout_date.isoformat(),
        "payments_count": t.payments_count,
        "collected": t.collected,
        "fees": t.fees,
        "tax": t.tax,
        "stamp_count": t.stamp_count,
        "stamp_duty": t.stamp_duty,
        "refunds": t.refunds,
        "carried_in": t.carried_in,
        "carried_out": t.carried_out,
        "returned_in": t.returned_in,
        "payout": t.payout,
        "created_at": iso(s.created_at),
        **payout_status_json(s.payout_status),
    }
    if lines:
        doc["lines"] = [
            {
                "line_no": no,
                "kind": line.kind.value,
                "channel": line.channel.value if line.channel else None,
                "description": line.description,
                "quantity": line.quantity,
                "unit_amount": line.unit_amount,
                "amount": line.amount,
            }
            for no, line in enumerate(s.lines, 1)
        ]
    return doc


def payout_status_json(status: PayoutStatus) -> dict[str, Any]:
    """Where the settlement's payout stands (docs/settlement.md, "Payouts"): ``payout_state``
    and, once it is in a payout file, ``payout_transfer`` (the account's number masked)."""
    transfer = None
    if status.transfer_date is not None:
        account = status.account
        transfer = {
            "transfer_date": status.transfer_date.isoformat(),
            "file": status.file_name,
            "account": None
            if account is None
            else {
                "bank_code": account.bank_code,
                "bank_name": account.bank_name,
                "branch_code": account.branch_code,
                "branch_name": account.branch_name,
                "account_type": account.account_type,
                "account_number": account.masked_number,
            },
            "return_code": status.return_code,
            "return_reason": None
            if status.return_code is None
            else return_meaning(status.return_code),
            "carried_into": status.carried_into,
        }
    return {"payout_state": status.state.value, "payout_transfer": transfer}


def settle_next(
    conn: Connection,
    biller_id: str,
    today: date,
    now: datetime,
    new_id: Callable[[str], str],
    render: Callable[[Settlement], Mapping[str, Any]],
    due_before: date | None = None,
) -> Settlement | None:
    """Settle the biller's oldest closed, unsettled period (one that ended before ``today``);
    None when there is none, or when another run holds or has made it. ``due_before`` (the
    preview's): only bills due before it count as uncollected."""
    # The biller row first: see gateway.store.settlements.lock_biller.
    lock_biller(conn, biller_id)
    contract = contract_of(conn, biller_id)
    if contract is None:
        return None
    previous = last_settlement(conn, biller_id)
    start, end = contract.period_after(previous[0] if previous else None)
    if end >= today:
        return None
    closing = contract.plan_on(end)
    settlement_id = new_id("stl")
    payout = payout_date(closing, end)
    if not insert_settlement(conn, settlement_id, biller_id, (start, end), closing, payout, now):
        return None
    claim_for_settlement(conn, biller_id, settlement_id, jst_midnight(end + timedelta(days=1)))
    counted = tally(
        conn,
        contract,
        biller_id,
        settlement_id,
        start,
        end,
        min(today, due_before or today),
        STAMP_DIGIT,
    )
    carried_in = previous[1] if previous else 0
    counted = Tally(
        counted.collected, counted.stamped, counted.uncollected, counted.refunds, carried_in
    )
    counted = whole_fee_tally(
        conn, contract, biller_id, settlement_id, (start, end), counted, first=previous is None
    )
    # Payouts the bank returned (振込不能) that no settlement has taken yet: paid again here.
    counted = dataclasses.replace(counted, returned=claim_returned(conn, biller_id, settlement_id))
    lines, totals = settle(contract, (start, end), counted)
    save_settlement(conn, settlement_id, lines, totals)
    settlement = Settlement(
        settlement_id,
        biller_id,
        start,
        end,
        closing.cycle,
        payout,
        totals,
        tuple(lines),
        now,
    )
    append_event(
        conn,
        biller_id=biller_id,
        event_id=new_id("evt"),
        type=EventType.SETTLEMENT_CREATED,
        data={"settlement": render(settlement)},
        now=now,
    )
    return settlement


def preview_next(
    conn: Connection,
    biller_id: str,
    today: date,
    now: datetime,
    new_id: Callable[[str], str],
    render: Callable[[Settlement], Mapping[str, Any]],
) -> Settlement | None:
    """The biller's next settlement as it would be if its period closed now: the run's own code
    in a savepoint that is rolled back, so the preview and the real run cannot disagree on how
    they count. Bills not yet due are not counted as uncollected. None without a contract."""
    contract = contract_of(conn, biller_id)
    if contract is None:
        return None
    _, end = contract.period_after(settled_through(conn, biller_id))
    savepoint = conn.begin_nested()
    try:
        return settle_next(
            conn, biller_id, end + timedelta(days=1), now, new_id, render, due_before=today
        )
    finally:
        savepoint.rollback()


def settle_audited(
    conn: Connection, actor: str, biller_id: str, today: date, now: datetime
) -> Settlement | None:
    """:func:`settle_next`, and the settlement it made written to the audit log in its own
    transaction (``settlement.run``, target ``settlement:<id>``, ``after`` its totals) as
    ``actor``: the job's ``system:settlement``, or the ``gateway-admin settle`` user."""
    settlement = settle_next(conn, biller_id, today, now, ids.new_id, settlement_json)
    if settlement is not None:
        record(
            conn,
            actor,
            "settlement.run",
            f"settlement:{settlement.settlement_id}",
            now,
            biller_id=biller_id,
            after=settlement_json(settlement, lines=False),
        )
    return settlement


JOB_ACTOR = system_actor("settlement")  # the scheduled run, in the audit log


def _settle_one(conn: Connection, biller_id: str, today: date, now: Any) -> Settlement | None:
    return settle_audited(conn, JOB_ACTOR, biller_id, today, now)


@dataclass(frozen=True)
class RunReport:
    settlements: tuple[Settlement, ...]


class SettlementJob:
    """Settles closed periods through the store. Billers are settled ``workers`` at a time (one
    on SQLite, which has one writer): each settlement is its own transaction, and a biller whose
    settlement fails is logged and counted while the others go on."""

    def __init__(
        self, store: Store, clock: IReactorTime, max_per_run: int = 10_000, workers: int = 2
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_per_run = max_per_run
        self.workers = 1 if store.dialect == "sqlite" else max(1, workers)
        self.running: Deferred[RunReport] | None = None

    async def run(self, biller_id: str | None = None, today: date | None = None) -> RunReport:
        """Settle every closed period of every biller with a contract (or of one biller).
        ``today`` (JST) defaults to the clock's."""
        day = today or clock_today(self.clock)
        billers = (
            [biller_id]
            if biller_id
            else await self.store.run_interaction("settlement.billers", billers_with_plans)
        )
        made: list[Settlement] = []

        async def settle_biller(biller: str) -> None:
            try:
                while len(made) < self.max_per_run:
                    settlement = await self.store.run_interaction(
                        "settlement.settle", _settle_one, biller, day, clock_now(self.clock)
                    )
                    if settlement is None:
                        return
                    made.append(settlement)
                    SETTLEMENTS_CREATED.inc()
                    SETTLED_PAYMENTS.inc(settlement.totals.payments_count)
            except Exception:
                RUN_FAILURES.inc()
                log.failure("Settling {biller} failed; the next run tries again", biller=biller)

        queue = iter(billers)

        async def worker() -> None:
            for biller in queue:  # shared: each biller is taken by one worker
                await settle_biller(biller)

        await gatherResults(
            [Deferred.fromCoroutine(worker()) for _ in range(self.workers)], consumeErrors=True
        )
        if made:
            log.info("Created {count} settlement(s)", count=len(made))
        return RunReport(tuple(made))

    def tick(self) -> Deferred[RunReport]:
        """One scheduled run; a failure is logged and counted (the timer must keep going)."""
        d, self.running = logged_run(self.run(), RUN_FAILURES, "The settlement run", RunReport(()))
        return d


def settlement_service(job: SettlementJob, interval: float, clock: IReactorTime) -> TimerService:
    """Runs ``job`` now and then every ``interval`` seconds on ``clock``."""
    return timer("settlement", interval, job.tick, clock)


def encoding_of(raw: str | None) -> str:
    """A CSV encoding parameter: ``utf-8`` (the default; written with a BOM) or ``shift_jis``."""
    value = raw or "utf-8"
    if value not in ENCODINGS:
        raise InvalidRequest(
            [FieldError("encoding", f"must be one of {', '.join(ENCODINGS)}")], Refusal.MALFORMED
        )
    return value


def put_fee_plan(
    conn: Connection, actor: str, biller_id: str, plan: FeePlan, now: datetime
) -> tuple[FeePlan, bool]:
    """Store a fee plan version (the admin API's ``PUT``, ``gateway-admin contract set``):
    (stored plan, created), as ``save_plan`` — the same plan again changes nothing, a date a
    settlement covers is :class:`Conflict`. A change is written to the audit log in the same
    transaction as ``actor``: ``fee_plan.put``, target ``biller:<id>``, ``before`` the version of
    that date it replaced (None: a new one), ``after`` the stored one."""
    get_biller(conn, biller_id)  # NotFound for an unknown biller
    before = next(
        (p for p in list_plans(conn, biller_id) if p.effective_from == plan.effective_from), None
    )
    stored, created = save_plan(conn, biller_id, plan, now)
    if before is None or before.document() != stored.document():
        record(
            conn,
            actor,
            "fee_plan.put",
            f"biller:{biller_id}",
            now,
            biller_id=biller_id,
            before=None if before is None else before.document(),
            after=stored.document(),
        )
    return stored, created


class SettlementApi:
    """What the merchant API and the operator's API answer about contracts and settlements."""

    def __init__(self, store: Store, clock: IReactorTime) -> None:
        self.store = store
        self.clock = clock

    # contracts

    async def plans(self, biller_id: str) -> dict[str, Any]:
        def txn(conn: Connection) -> list[FeePlan]:
            get_biller(conn, biller_id)  # NotFound for an unknown biller
            return list_plans(conn, biller_id)

        found = await self.store.run_interaction("fee_plans.list", txn)
        return {"biller_id": biller_id, "plans": [p.document() for p in found]}

    async def put_plan(
        self, actor: str, biller_id: str, day: date, body: object
    ) -> tuple[int, dict[str, Any]]:
        plan = parse_plan(body, effective_from=day)
        stored, created = await self.store.run_interaction(
            "fee_plans.save", put_fee_plan, actor, biller_id, plan, clock_now(self.clock)
        )
        return (201 if created else 200), stored.document()

    # settlements

    async def page(self, principal: Principal, cursor: str | None, limit: int) -> dict[str, Any]:
        after = None
        if cursor is not None:
            try:
                after = date.fromisoformat(cursor)
            except ValueError:
                raise InvalidRequest(
                    [FieldError("cursor", "is not a cursor this API returned")], Refusal.MALFORMED
                ) from None
        rows = await self.store.run_interaction(
            "settlements.list", list_settlements, principal.biller_id or "", after, limit + 1
        )
        page = rows[:limit]
        return {
            "data": [settlement_json(s, lines=False) for s in page],
            "next_cursor": page[-1].period_start.isoformat() if len(rows) > limit else None,
        }

    async def preview(self, principal: Principal) -> dict[str, Any]:
        """The next settlement as it stands now (nothing is stored): ``settlement_id`` null."""
        found = await self.store.run_interaction(
            "settlements.preview",
            preview_next,
            principal.biller_id or "",
            clock_today(self.clock),
            clock_now(self.clock),
            ids.new_id,
            settlement_json,
        )
        if found is None:
            raise NotFound("a contract (fee plan) for this biller")
        return {**settlement_json(found), "settlement_id": None, "preview": True}

    async def get(self, principal: Principal, settlement_id: str) -> Settlement:
        found = await self.store.run_interaction(
            "settlements.get", get_settlement, principal.biller_id or "", settlement_id
        )
        if found is None:
            raise NotFound(f"settlement {settlement_id}")
        return found

    async def statement(
        self, principal: Principal, settlement_id: str, kind: str, encoding: str | None
    ) -> tuple[str, str, bytes]:
        """(file name, content type, bytes) of a statement: ``csv``, ``pdf`` or
        ``payments`` (the CSV of every payment paid out)."""

        enc = encoding_of(encoding) if kind != "pdf" else "utf-8"
        settlement = await self.get(principal, settlement_id)
        biller_id = principal.biller_id or ""
        name = f"{settlement_id}"
        ctype = "text/csv; charset=" + ("utf-8" if enc == "utf-8" else "shift_jis")
        if kind == "payments":

            def rows(conn: Connection) -> bytes:
                return statements.payments_csv(
                    settled_payments(conn, settlement_id, stamp_digit=STAMP_DIGIT), enc
                )

            body = await self.store.run_interaction("settlements.payments", rows)
            return f"{name}-payments.csv", ctype, body

        def biller_name(conn: Connection) -> tuple[str, list[Any]]:
            daily = daily_collections(
                conn, biller_id, settlement.period_start, settlement.period_end
            )
            return get_biller(conn, biller_id).name, daily

        title, daily = await self.store.run_interaction("settlements.statement", biller_name)
        if kind == "pdf":
            pdf = await self._in_thread(lambda: statements.statement_pdf(settlement, title, daily))
            return f"{name}.pdf", "application/pdf", pdf
        return f"{name}.csv", ctype, statements.statement_csv(settlement, title, enc)

    async def daily(self, principal: Principal, first: date, last: date) -> list[DailyCollection]:
        _report_range(first, last)
        if last - first > timedelta(days=MAX_REPORT_DAYS):
            raise InvalidRequest([FieldError("to", f"at most {MAX_REPORT_DAYS} days after from")])
        return await self.store.run_interaction(
            "reports.daily", daily_collections, principal.biller_id or "", first, last
        )

    async def day_closes(self, first: date, last: date) -> list[dict[str, Any]]:
        """The MPN 閉局 of each business day next to the ledger's own totals (operator)."""
        _report_range(first, last)
        return await self.store.run_interaction("mpn.day_closes", day_close_report, first, last)

    def _in_thread(self, fn: Callable[[], T]) -> Deferred[T]:
        reactor: Any = self.clock
        if IReactorThreads.providedBy(reactor):
            return deferToThreadPool(reactor, reactor.getThreadPool(), fn)
        d: Deferred[T] = Deferred()
        d.callback(fn())
        return d


def day_close_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """An MPN 閉局 beside the ledger (``GET /v1/mpn/day-closes``, the console's network
    screen): each side's counts and sums, and whether the center's differ from the ledger's."""

    def counters(values: Any) -> dict[str, int] | None:
        if values is None:
            return None
        count, total, cancels, cancelled = values
        return {
            "payments_count": count,
            "payments_sum": total,
            "cancels_count": cancels,
            "cancels_sum": cancelled,
        }

    closed_at = row["closed_at"]
    assert isinstance(closed_at, datetime)
    return {
        "business_date": row["business_date"].isoformat(),
        "closed_at": iso(closed_at),
        "center": counters(row["center"]),
        "at_close": counters(row["at_close"]),
        "ledger": counters(row["ledger"]),
        "mismatch": row["mismatch"],
    }


def _report_range(first: date, last: date) -> None:
    errors = [
        FieldError(name, f"must be a day from {EARLIEST} to {LATEST}")
        for name, day in (("from", first), ("to", last))
        if not EARLIEST <= day <= LATEST
    ]
    if not errors and last < first:
        errors.append(FieldError("to", "must not be before from"))
    if errors:
        raise InvalidRequest(errors)


def daily_json(row: Any) -> Mapping[str, Any]:
    return {
        "date": row.day.isoformat(),
        "channel": row.channel.value,
        "chain": row.chain,
        "count": row.count,
        "amount": row.amount,
        "confirmed_count": row.confirmed_count,
        "confirmed_amount": row.confirmed_amount,
    }
