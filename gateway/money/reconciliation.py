"""The networks' money reconciled: bank statements imported, deposits matched to the remittances
the ledger expects, differences kept as items for finance (docs/settlement.md, "Reconciliation";
the rules: gateway.recon_model).

* :func:`import_statement` — one statement file, whole or not at all: parsed (every bad line
  named), checked against ``[reconciliation] account``, stored with its deposits (a deposit an
  earlier statement brought is not added again; the same file again changes nothing), and the
  days it covers reconciled, in one transaction with its audit line.
* :func:`reconcile_days` — the expected remittances of the transfer dates [first, last] from the
  ledger, the deposits of those days, :func:`gateway.recon_model.reconcile`, and the items made
  what the money calls for now (an item whose money matched later is closed as ``matched``).
* :class:`ReconciliationJob` — every ``[reconciliation] interval`` seconds (and at start) the last
  ``lookback_days`` are reconciled again (a late 確報 or 閉局 changes what is expected), and the
  gauges of open items are set for the alert (GatewayReconciliationItemOpen).

* :func:`resolve_reconciliation_item` — finance resolves an open item with a note (audited).

``gateway-admin recon import|show|resolve``, ``GET /v1/admin/reconciliation`` and ``POST
/v1/admin/reconciliation/items/{item_id}/resolve`` use them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy.engine import Connection
from twisted.application.internet import TimerService
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway import ids
from gateway.calendar import add_business_days, previous_business_day
from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.config import Config
from gateway.errors import Conflict, FieldError, FileErrors, InvalidRequest, NotFound
from gateway.infra.jobs import logged_run, timer
from gateway.mappers.bank_statement import LineError, parse_statement
from gateway.recon_model import (
    NOTE_MAX,
    Deposit,
    Item,
    ItemKind,
    ItemStatus,
    Reconciliation,
    Remittance,
    expected_remittances,
    normalize_name,
    reconcile,
)
from gateway.store import Store
from gateway.store.audit import record
from gateway.store.reconciliation import (
    collected,
    coverage,
    deposits_between,
    list_items,
    lock_item,
    lock_reconciliation,
    open_items,
    resolve_item,
    save_statement,
    statements_of,
    sync_items,
)
from gateway.views import iso

log = Logger()

OPEN_ITEMS = Gauge(
    "gateway_reconciliation_open_items",
    "Reconciliation items not yet resolved (difference, missing, unexpected), by kind.",
    ["kind"],
)
OPEN_ITEM_AGE = Gauge(
    "gateway_reconciliation_open_max_age_seconds",
    "Age (since it was opened) of the oldest reconciliation item not yet resolved; 0 when none.",
)
RUN_FAILURES = Counter(
    "gateway_reconciliation_run_failures_total", "Reconciliation runs that failed (logged)."
)
for _kind in ItemKind:
    OPEN_ITEMS.labels(_kind.value)


def reconcile_days(
    conn: Connection,
    config: Config,
    first: date,
    last: date,
    now: datetime,
    new_id: Callable[[str], str] = ids.new_id,
) -> Reconciliation:
    """Reconcile the transfer dates [first, last] and make their items what the money says.

    A remittance may come up to ``[reconciliation] late_days`` bank business days late: the
    ledger and the deposits of that many days more on each side are read too, so that a late
    remittance and the deposit that paid it meet whichever of their days is asked; the items of
    the days within ``late_days`` of [first, last] are synced (a day further out is not seen
    with all its neighbours). The result is of those days; ``of_days(first, last)`` narrows it.
    """
    lock_reconciliation(conn)
    recon = config.reconciliation
    n = recon.late_days
    near = (_back(first, n), add_business_days(last, n)) if n else (first, last)
    far = (_back(near[0], n), add_business_days(near[1], n)) if n else near
    got = collected(
        conn,
        far[0],
        far[1],
        default_agency=config.cvs.default_agency if config.cvs is not None else None,
        payeasy_days=recon.payeasy_days,
        transfer_days=recon.transfer_days,
    )
    expected = expected_remittances(got, recon.remitters)
    result = reconcile(
        expected,
        deposits_between(conn, far[0], far[1]),
        recon.remitters,
        coverage(conn, far[0], far[1]),
        late_until=(lambda day: add_business_days(day, n)) if n else None,
    ).of_days(*near)
    sync_items(conn, result.items, near[0], near[1], now, new_id)
    return result


def _back(day: date, n: int) -> date:
    """``n`` bank business days before ``day`` (``day`` itself if a business day, n = 0)."""
    for _ in range(n):
        day = previous_business_day(day)
    return day


def import_statement(
    conn: Connection,
    config: Config,
    data: bytes,
    file_name: str,
    now: datetime,
    actor: str,
    new_id: Callable[[str], str] = ids.new_id,
) -> dict[str, Any]:
    """Import one statement file (see the module docstring); :class:`FileErrors` refuses it
    whole, naming every bad line and field."""
    recon = config.reconciliation
    statement = parse_statement(data, years=recon.statement_years, source=file_name)
    if recon.account and statement.account and statement.account != recon.account:
        why = f"the statement is of {statement.account}, not reconciliation.account"
        raise FileErrors(file_name, [LineError("statement", 1, "account_number", "", why)])
    stored, created = save_statement(
        conn, statement, file_name, hashlib.sha256(data).hexdigest(), now
    )
    result = reconcile_days(conn, config, statement.first_day, statement.last_day, now, new_id)
    days = result.of_days(statement.first_day, statement.last_day)
    summary = {
        "file": file_name,
        "statement_id": stored.statement_id,
        "format": stored.format,
        "already_imported": not created,
        "first_day": stored.first_day.isoformat(),
        "last_day": stored.last_day.isoformat(),
        "deposits": stored.deposits,
        "new_deposits": stored.new_deposits,
        "remittances": _states(days),
        "open_items": len(days.open_items),
    }
    if created:
        record(
            conn, actor, "statement.import", f"statement:{stored.statement_id}", now, after=summary
        )
    return summary


def resolve_reconciliation_item(
    conn: Connection, item_id: str, note: str, actor: str, now: datetime
) -> Item:
    """Finance resolves an open item, saying what was done: the one writer of
    ``gateway-admin recon resolve`` and ``POST /v1/admin/reconciliation/items/{item_id}/resolve``,
    audited (``reconciliation_item.resolve``) in the same transaction.

    :class:`InvalidRequest` (field ``note``) for a blank or too long note, :class:`NotFound` for
    an unknown item, :class:`Conflict` (field ``item_id``) for an item already resolved — by
    finance, or ``matched`` by the money (a note given twice is not two resolutions).
    """
    note = note.strip()
    if not 1 <= len(note) <= NOTE_MAX or any(ord(c) < 32 or ord(c) == 127 for c in note):
        why = f"say what was done, 1 to {NOTE_MAX} characters without control characters"
        raise InvalidRequest([FieldError("note", why)])
    found = lock_item(conn, item_id)
    if found is None:
        raise NotFound(f"reconciliation item {item_id}")
    if found.status is not ItemStatus.OPEN:
        when = iso(found.resolved_at) if found.resolved_at else "?"
        raise Conflict(
            f"reconciliation item {item_id} was already resolved at {when} ({found.resolution})",
            field="item_id",
        )
    done = resolve_item(conn, item_id, note, now)
    assert done is not None, "locked above"
    record(
        conn,
        actor,
        "reconciliation_item.resolve",
        f"reconciliation_item:{item_id}",
        now,
        before={"status": found.status.value, "kind": found.kind.value, "amount": found.amount},
        after={"status": done.status.value, "note": note},
    )
    return done


def _states(result: Reconciliation) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in result.remittances:
        counts[row.state.value] = counts.get(row.state.value, 0) + 1
    return counts


def day_view(
    conn: Connection,
    config: Config,
    day: date,
    now: datetime,
    new_id: Callable[[str], str] = ids.new_id,
) -> dict[str, Any]:
    """A transfer date reconciled now: what each network owed and sent, the deposits of the
    day and what each matched, the day's items, the statements that cover it."""
    around = reconcile_days(conn, config, day, day, now, new_id)
    result = around.of_days(day, day)
    names = {normalize_name(r.name): r for r in config.reconciliation.remitters}
    matched: dict[int, Remittance] = {}
    for row in around.remittances:  # a deposit of the day may have paid an earlier day, late
        for deposit_id in row.deposit_ids:
            matched[deposit_id] = row
    deposits = deposits_between(conn, day, day)
    return {
        "date": day.isoformat(),
        "statements": [
            {
                "statement_id": s.statement_id,
                "file": s.file_name,
                "format": s.format,
                "first_day": s.first_day.isoformat(),
                "last_day": s.last_day.isoformat(),
                "imported_at": iso(s.imported_at),
            }
            for s in statements_of(conn, day)
        ],
        "remittances": [remittance_json(r) for r in result.remittances],
        "deposits": [deposit_json(d, matched.get(d.deposit_id or 0), names) for d in deposits],
        "items": [item_json(i) for i in list_items(conn, day=day)],
        "matched": all(r.state.value in ("matched", "waiting", "late") for r in result.remittances)
        and not result.unexpected,
    }


def remittance_json(r: Remittance) -> dict[str, Any]:
    return {
        "network": r.network.value,
        "agency": r.agency,
        "transfer_date": r.transfer_date.isoformat(),
        "count": r.count,
        "gross": r.gross,
        "fees": r.fees,
        "expected": r.expected,
        "received": r.received,
        "difference": r.difference,
        "state": r.state.value,
        "received_on": r.received_on.isoformat() if r.received_on else None,
    }


def deposit_json(d: Deposit, matched: Remittance | None, names: dict[str, Any]) -> dict[str, Any]:
    remitter = names.get(normalize_name(d.remitter_name))
    return {
        "deposit_id": d.deposit_id,
        "value_date": d.value_date.isoformat(),
        "amount": d.amount,
        "remitter_name": d.remitter_name,
        "reference": d.reference,
        "remitter": None
        if remitter is None
        else {"network": remitter.network.value, "agency": remitter.agency},
        "matched": None
        if matched is None
        else {
            "network": matched.network.value,
            "agency": matched.agency,
            "transfer_date": matched.transfer_date.isoformat(),
        },
    }


def item_json(i: Item) -> dict[str, Any]:
    return {
        "item_id": i.item_id,
        "kind": i.kind.value,
        "network": i.network.value if i.network else None,
        "agency": i.agency,
        "transfer_date": i.transfer_date.isoformat(),
        "expected": i.expected,
        "received": i.received,
        "amount": i.amount,
        "deposit_id": i.deposit_id,
        "status": i.status.value,
        "opened_at": iso(i.opened_at),
        "resolved_at": iso(i.resolved_at) if i.resolved_at else None,
        "resolution": i.resolution,
    }


def publish(counts: dict[str, int], oldest: datetime | None, now: datetime) -> None:
    """Set the gauges of open items as of ``now``."""
    for kind in ItemKind:
        OPEN_ITEMS.labels(kind.value).set(counts.get(kind.value, 0))
    age = 0.0 if oldest is None else (now - oldest.astimezone(UTC)).total_seconds()
    OPEN_ITEM_AGE.set(max(0.0, age))


class ReconciliationJob:
    """Reconciles the last ``lookback_days`` through the store and sets the gauges."""

    def __init__(self, store: Store, clock: IReactorTime, config: Config) -> None:
        self.store = store
        self.clock = clock
        self.config = config

    async def run(self) -> tuple[dict[str, int], datetime | None]:
        today = clock_today(self.clock)
        first = today - timedelta(days=self.config.reconciliation.lookback_days)

        def txn(conn: Connection) -> tuple[dict[str, int], datetime | None]:
            reconcile_days(conn, self.config, first, today, clock_now(self.clock))
            return open_items(conn)

        counts, oldest = await self.store.run_interaction("reconciliation.run", txn)
        publish(counts, oldest, clock_now(self.clock))
        return counts, oldest

    def tick(self) -> object:
        """One scheduled run; a failure is logged and counted (the timer must keep going)."""
        d, _ = logged_run(self.run(), RUN_FAILURES, "The reconciliation run", ({}, None))
        return d


def reconciliation_service(job: ReconciliationJob, clock: IReactorTime) -> TimerService:
    return timer("reconciliation", job.config.reconciliation.interval, job.tick, clock)


class ReconciliationApi:
    """What ``GET /v1/admin/reconciliation`` answers (an admin key: finance)."""

    def __init__(self, store: Store, clock: IReactorTime, config: Config) -> None:
        self.store = store
        self.clock = clock
        self.config = config

    async def day(self, day: date) -> dict[str, Any]:
        if not date(2000, 1, 1) <= day <= date(2099, 12, 31):
            raise InvalidRequest(
                [FieldError("date", "must be a day from 2000-01-01 to 2099-12-31")]
            )
        return await self.store.run_interaction(
            "reconciliation.day", day_view, self.config, day, clock_now(self.clock)
        )

    async def open(self) -> dict[str, Any]:
        items = await self.store.run_interaction(
            "reconciliation.open", lambda conn: list_items(conn, status=ItemStatus.OPEN)
        )
        return {"items": [item_json(i) for i in items]}

    async def resolve(self, item_id: str, note: str, actor: str) -> dict[str, Any]:
        """``POST /v1/admin/reconciliation/items/{item_id}/resolve``
        (:func:`resolve_reconciliation_item`)."""
        item = await self.store.run_interaction(
            "reconciliation.resolve",
            resolve_reconciliation_item,
            item_id,
            note,
            actor,
            clock_now(self.clock),
        )
        return item_json(item)
