"""Payouts in the daemon: the scheduled job, the returns inbox's handler and what the admin API
asks (the rules are gateway.money.payouts's; docs/settlement.md, "Payouts").

The job ticks every minute on the injected clock (and at start): it writes the payout files left
pending (a crash between a file and its commit), marks ``paid_out`` what has reached its
transfer date and, with ``[payouts] at``, requests the file of today once per bank business day
at or after that JST time. A daemon that restarts the same day requests it again: a file for a
date already done carries only what was not carried, usually nothing.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from prometheus_client import Counter
from sqlalchemy.engine import Connection
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway import calendar, ids
from gateway.billing.mandates import UnknownBank, bank_names
from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.config.payouts import PayoutsConfig
from gateway.errors import ConfigError, FieldError, FileErrors, InvalidRequest
from gateway.infra.jobs import logged_run, timer
from gateway.infra.secretbox import SecretBox
from gateway.mappers.zengin.payouts import parse_payout_file
from gateway.model import JST
from gateway.money.payouts import (
    PayoutError,
    Prepared,
    account_json,
    apply_returns,
    check_transfer_date,
    file_json,
    mark_paid_out,
    parse_account_body,
    prepare_payout,
    returns_report,
    set_account,
    write_pending,
)
from gateway.money.settlement import settlement_json
from gateway.store import Store
from gateway.store.audit import record
from gateway.store.billers import get_biller
from gateway.store.payouts import PayoutFileRow, account_versions, list_payout_files

log = Logger()

RUN_FAILURES = Counter(
    "gateway_payout_run_failures_total", "Scheduled payout runs that failed (logged)."
)


def _render(settlement: Any) -> dict[str, Any]:
    return settlement_json(settlement, lines=False)


class PayoutService:
    """The daemon's payouts: files out, returns in, and the operator's API."""

    def __init__(
        self, config: PayoutsConfig, store: Store, clock: IReactorTime, box: SecretBox
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.box = box
        self.last_scheduled: date | None = None

    # --- files ---------------------------------------------------------------------------------

    async def request(self, transfer_date: date, actor: str | None = None) -> dict[str, Any]:
        """The payout file of ``transfer_date`` recorded and written (and any left pending);
        an operator's request (``actor``) is written to the audit log with the file."""
        try:
            check_transfer_date(transfer_date, clock_today(self.clock))
        except PayoutError as e:
            raise InvalidRequest([FieldError("transfer_date", str(e))]) from None
        now = clock_now(self.clock)

        def txn(conn: Connection) -> Prepared:
            prepared = prepare_payout(conn, self.config, transfer_date, now, ids.new_id, _render)
            if actor is not None and prepared.file is not None:
                target = f"payout_file:{prepared.file.file_name}"
                record(conn, actor, "payout.request", target, now, after=prepared.as_json())
            return prepared

        prepared = await self.store.run_interaction("payouts.request", txn)
        written = await self.write_pending()
        await self.paid_out()  # a file for today is paid today
        return {
            "transfer_date": transfer_date.isoformat(),
            **prepared.as_json(),
            "written": [file_json(f) for f in written],
        }

    def write_pending(self) -> Deferred[list[PayoutFileRow]]:
        return self.store.run_interaction(
            "payouts.write", write_pending, self.config, self.box, clock_now(self.clock)
        )

    def paid_out(self) -> Deferred[int]:
        """``paid_out``: the settlements of written files whose transfer date has come."""
        return self.store.run_interaction(
            "payouts.paid_out",
            mark_paid_out,
            clock_today(self.clock),
            clock_now(self.clock),
            ids.new_id,
            _render,
        )

    async def scheduled(self) -> None:
        await self.write_pending()
        await self.paid_out()
        at = self.config.at
        local = clock_now(self.clock).astimezone(JST)
        today = local.date()
        if at is None or self.last_scheduled == today or local.time() < at:
            return
        if not calendar.is_business_day(today):
            return
        self.last_scheduled = today
        made = await self.request(today)
        log.info(
            "payouts: scheduled run for 取組日 {day}: {records} transfer(s)",
            day=today.isoformat(),
            records=0 if made["file"] is None else made["file"]["records"],
        )

    def tick(self) -> Deferred[None]:
        d, _ = logged_run(self.scheduled(), RUN_FAILURES, "payouts: a scheduled run", None)
        return d

    def timer(self) -> TimerService:
        return timer("payouts", 60, self.tick, self.clock)

    def apply_file(self, name: str, data: bytes) -> Deferred[tuple[bool, str]]:
        """A 振込不能 file from the inbox, all records or none: (accepted, report)."""
        try:
            parsed = parse_payout_file(data, source=name)
        except FileErrors as e:
            return succeed((False, e.report()))

        def txn(conn: Connection) -> tuple[bool, str]:
            try:
                summary = apply_returns(
                    conn, self.config, parsed, name, clock_now(self.clock), ids.new_id, _render
                )
            except FileErrors as e:
                return False, e.report()
            return True, returns_report(summary)

        return self.store.run_interaction("payouts.returns", txn)

    async def files(self, transfer_date: date | None) -> dict[str, Any]:
        found = await self.store.run_interaction("payouts.files", list_payout_files, transfer_date)
        return {"data": [file_json(f) for f in found]}

    # --- accounts ------------------------------------------------------------------------------

    async def accounts(self, biller_id: str) -> dict[str, Any]:
        def txn(conn: Connection) -> list[Any]:
            get_biller(conn, biller_id)
            return account_versions(conn, biller_id)

        versions = await self.store.run_interaction("payouts.accounts", txn)
        return {"biller_id": biller_id, "accounts": [account_json(v, self.box) for v in versions]}

    async def put_account(
        self, actor: str, biller_id: str, effective_from: date, body: object
    ) -> tuple[int, dict[str, Any]]:
        terms = parse_account_body(body, check_bank_master=self.config.check_bank_master)
        now = clock_now(self.clock)

        def txn(conn: Connection) -> tuple[int, dict[str, Any]]:
            stored, created = set_account(
                conn, self.box, biller_id, terms, effective_from, clock_today(self.clock), now
            )
            doc = account_json(stored)  # without the holder: the audit log keeps no name
            record(
                conn,
                actor,
                "payout_account.put",
                f"biller:{biller_id}",
                now,
                biller_id=biller_id,
                after=doc,
            )
            return (201 if created else 200), account_json(stored, self.box)

        return await self.store.run_interaction("payouts.put_account", txn)


def checked(config: PayoutsConfig) -> PayoutsConfig:
    """The configuration, its own account checked against the bank master now (so that a bad
    one stops the daemon before it listens, not at the first file)."""
    try:
        bank_names(config.bank_code, config.branch_code, check=config.check_bank_master)
    except UnknownBank as e:
        raise ConfigError("payouts.account", str(e)) from None
    return config
