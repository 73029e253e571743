"""The seed's workload: what the billers, the stores, the banks' customers and the center do,
day by day, and the faults the world's schedule strikes with (the peers strike their own).

:class:`Workload` is the half of :class:`simulators.world.world.World` that acts: the billers'
setup and API calls (retried as a client would), the payments, polls and files of each day's
traffic window, and the disconnects, replays, server restarts and clock jumps of the plan.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from gateway import calendar
from gateway.billing.mandates import bank_names
from gateway.errors import Conflict, GatewayError, InvalidRequest, NotFound
from gateway.fee_model import ChannelRates, Cycle, FeePlan, Rounding
from gateway.infra.secretbox import SecretBox
from gateway.model import (
    JST,
    BankAccount,
    Channel,
    Consignor,
    IdempotencyClaim,
    Mandate,
    MandateStatus,
    Principal,
)
from gateway.store.billers import create_biller
from gateway.store.settlements import save_plan
from gateway.store.webhooks import create_endpoint
from gateway.store.zengin import insert_mandate, save_consignor
from simulators.world.daemon import Daemon
from simulators.world.faults import FaultPlan, Injected
from simulators.world.networks import CvsAgency, MpnCenter, Receivers, ZenginBank
from simulators.world.runtime import Sim
from simulators.world.setup import BILLERS, CUSTOMERS, KINDS, SECRET_KEY

# --- the billers' side --------------------------------------------------------------------------


@dataclass
class BillerSide:
    biller_id: str
    principal: Principal
    bills: dict[str, dict[str, Any]] = field(default_factory=dict)  # bill_no -> last answer
    serial: int = 0
    endpoints: list[str] = field(default_factory=list)  # urls


class Refused(Exception):
    """The gateway refused the request for good (a 4xx): the biller does not retry."""


class Workload:
    """What happens in a seed (mixed into World, which holds the state it uses)."""

    seed: int
    rng: random.Random
    sim: Sim
    plan: FaultPlan
    injected: Injected
    stats: Counter[str]
    engine: Engine
    sqlite: bool
    calm: bool
    billers: dict[str, BillerSide]
    agency: CvsAgency
    center: MpnCenter
    bank: ZenginBank
    receivers: Receivers
    daemon: Daemon | None
    reader: Engine

    def log(self, who: str, what: str) -> None:
        raise NotImplementedError

    def told_stored(self, who: str, messages: Sequence[tuple[str, str, str]]) -> None:
        raise NotImplementedError

    def crash(self, why: str) -> None:
        raise NotImplementedError

    # -- setup ---------------------------------------------------------------------------------

    def setup(self) -> None:
        """Billers, their fee plans, consignor contracts, mandates and webhook endpoints, as an
        operator and the billers made them before the seed's first day."""
        engine = self.engine
        now = self.plan.start
        box = SecretBox(base64.b64decode(SECRET_KEY))
        bank, branch = bank_names("0005", "135")
        with engine.begin() as conn:
            for n, biller_id in enumerate(BILLERS):
                create_biller(
                    conn,
                    biller_id=biller_id,
                    name=f"{biller_id} 株式会社",
                    kana="ｼﾐﾕﾚｰｼﾖﾝ",
                    channels=frozenset(Channel),
                    payeasy_institution_code=None,
                    now=now,
                )
                cycle = self.rng.choice(list(Cycle))
                save_plan(
                    conn,
                    biller_id,
                    FeePlan(
                        effective_from=now.date() - timedelta(days=self.rng.randint(6, 12)),
                        cycle=cycle,
                        payout_days=self.rng.choice((0, 3, 10)),
                        settlement_fee=self.rng.choice((0, 500)),
                        tax_rate=10,
                        tax_rounding=Rounding.FLOOR,
                        rates={
                            Channel.CVS: ChannelRates(60, 10, 200),
                            Channel.PAYEASY: ChannelRates(80, 0, 0),
                            Channel.TRANSFER: ChannelRates(100, 0, 0),
                        },
                    ),
                    now,
                )
                account = BankAccount("0005", bank, "135", branch, "1", f"{1234560 + n:07d}")
                save_consignor(conn, Consignor(biller_id, f"{1234567890 + n}", "ｼﾐﾕ", account), now)
                for i, customer in enumerate(CUSTOMERS):
                    insert_mandate(
                        conn,
                        Mandate(
                            biller_id=biller_id,
                            customer_no=customer,
                            account=BankAccount(
                                "0005", bank, "135", branch, "1", f"{7000000 + 10 * n + i:07d}"
                            ),
                            holder_kana="ﾔﾏﾀﾞ ﾀﾛｳ",
                            status=MandateStatus.ACTIVE,
                            status_reason=None,
                            new_code="1",
                            requested=False,
                            version=1,
                            created_at=now,
                            updated_at=now,
                        ),
                    )
                endpoint_id = f"we_{biller_id}_all"
                url = f"https://hooks.example.com/{biller_id}/all"
                create_endpoint(
                    conn,
                    biller_id=biller_id,
                    endpoint_id=endpoint_id,
                    url=url,
                    event_types=("*",),
                    secret=box.encrypt("whsec_sim", endpoint_id),
                    now=now,
                )
                side = BillerSide(biller_id, Principal(f"key_{biller_id}", biller_id, False))
                side.endpoints.append(url)
                self.receivers.secrets[url] = "whsec_sim"
                self.billers[biller_id] = side
                self.log("world", f"biller {biller_id}: plan {cycle.value}, endpoint {url}")

    # -- the billers' requests -----------------------------------------------------------------

    async def sleep(self, seconds: float) -> None:
        await deferLater(self.sim.clock, seconds)

    async def api(self, what: str, call: Callable[[Daemon], Awaitable[Any]], tries: int = 8) -> Any:
        """A biller's request to the live gateway, retried (after a timeout, an error) as a
        client would; :class:`Refused` when the gateway says no for good."""
        for attempt in range(1, tries + 1):
            daemon = self.daemon
            if daemon is not None and daemon.alive:
                d: Deferred[Any] = Deferred.fromCoroutine(call(daemon))  # type: ignore[arg-type]
                d.addTimeout(60, self.sim.clock)
                try:
                    return await d
                except (InvalidRequest, Conflict, NotFound) as e:
                    self.log("biller", f"{what}: refused: {e}")
                    raise Refused(str(e)) from None
                except (CancelledError, GatewayError, Exception) as e:
                    self.log("biller", f"{what}: attempt {attempt} failed: {type(e).__name__}")
            await self.sleep(self.rng.uniform(2.0, 30.0))
        self.log("biller", f"{what}: gave up")
        raise Refused("gave up")

    def claim(self, side: BillerSide, what: str, body: Any) -> IdempotencyClaim:
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return IdempotencyClaim(
            side.principal.scope, f"{what}-{self.rng.randrange(10**12)}", digest
        )

    async def create_bill(self, side: BillerSide) -> None:
        side.serial += 1
        bill_no = f"{side.biller_id}-{side.serial:04d}"
        today = datetime.fromtimestamp(self.sim.seconds(), JST).date()
        channels = self.rng.choice(
            (
                ["cvs"],
                ["cvs"],
                ["cvs", "payeasy"],
                ["cvs", "payeasy", "transfer"],
                ["payeasy"],
                ["transfer"],
                ["cvs", "transfer"],
            )
        )
        if "transfer" in channels:
            due = calendar.add_business_days(today, self.rng.choice((3, 3, 4)))
        else:
            due = today + timedelta(days=self.rng.choice((0, 1, 2, 5, 20)))
        amount = self.rng.choice((1000, 2500, 5400, 12000, 30000, 54000, 99800))
        body: dict[str, Any] = {
            "bill_no": bill_no,
            "amount": amount,
            "channels": channels,
            "customer": {"customer_no": self.rng.choice((*CUSTOMERS, "C5")), "name": "山田 太郎"},
        }
        if channels == ["cvs"] and self.rng.random() < 0.15:
            pass  # no due date: the agency does not take slips without one: refused
        else:
            body["due_date"] = due.isoformat()
        if self.rng.random() < 0.3:
            body["tax"] = {"taxable": True, "tax_amount": amount // 11}
        claim = self.claim(side, "create", body)
        try:
            answer = await self.api(
                f"create {bill_no}",
                lambda d: d.bills.create(side.principal, body, claim),
            )
        except Refused:
            return
        doc = json.loads(answer.body)
        side.bills[bill_no] = doc
        if "cvs" in doc:
            self.agency.slips.setdefault(bill_no, []).append(doc["cvs"]["barcode"])
        self.stats["bills"] += 1
        self.log(
            "biller",
            f"created {bill_no} {amount} yen {','.join(channels)} due {body.get('due_date')}",
        )

    async def cancel_bill(self, side: BillerSide) -> None:
        if not side.bills:
            return
        bill_no = self.rng.choice(sorted(side.bills))
        claim = self.claim(side, "cancel", {"bill_no": bill_no})
        try:
            answer = await self.api(
                f"cancel {bill_no}", lambda d: d.bills.cancel(side.principal, bill_no, None, claim)
            )
        except Refused:
            return
        side.bills[bill_no] = json.loads(answer.body)
        self.stats["cancels"] += 1
        self.log("biller", f"cancelled {bill_no}")

    async def reissue_bill(self, side: BillerSide) -> None:
        if not side.bills:
            return
        bill_no = self.rng.choice(sorted(side.bills))
        old = side.bills[bill_no]
        today = datetime.fromtimestamp(self.sim.seconds(), JST).date()
        body: dict[str, Any] = {"amount": int(old["amount"]) + self.rng.choice((0, 100, 1000))}
        if old.get("due_date"):
            body["due_date"] = (today + timedelta(days=self.rng.choice((1, 7)))).isoformat()
        claim = self.claim(side, f"reissue-{bill_no}", body)
        try:
            answer = await self.api(
                f"reissue {bill_no}",
                lambda d: d.bills.reissue(side.principal, bill_no, body, claim),
            )
        except Refused:
            return
        doc = json.loads(answer.body)
        side.bills[bill_no] = doc
        if "cvs" in doc:
            self.agency.slips.setdefault(bill_no, []).append(doc["cvs"]["barcode"])
        self.stats["reissues"] += 1
        self.log("biller", f"reissued {bill_no}: {doc['amount']} yen, reissue {doc['reissue']}")

    async def add_endpoint(self, side: BillerSide) -> None:
        url = f"https://hooks.example.com/{side.biller_id}/payments-{len(side.endpoints)}"
        body = {"url": url, "events": ["payment.confirmed", "bill.double_paid", "payment.voided"]}
        claim = self.claim(side, "endpoint", body)
        try:
            answer = await self.api(
                f"endpoint {url}", lambda d: d.webhook_api.create(side.principal, body, claim)
            )
        except Refused:
            return
        side.endpoints.append(url)
        self.receivers.secrets[url] = json.loads(answer.body)["secret"]
        self.log("biller", f"registered webhook endpoint {url}")

    # -- the networks' actions -----------------------------------------------------------------

    def _open_bills(self, channel: str) -> list[tuple[BillerSide, dict[str, Any]]]:
        return [
            (side, doc)
            for side in self.billers.values()
            for doc in side.bills.values()
            if channel in doc["channels"]
        ]

    def cvs_pay(self, *, again: bool = False) -> None:
        bills = [
            (s, d)
            for s, d in self._open_bills("cvs")
            if d["status"] in ("open", "expired") or again
        ]
        if not bills:
            return
        _, doc = self.rng.choice(bills)
        slips = self.agency.slips.get(doc["bill_no"], [])
        payment = self.agency.pay(slips, doc["bill_no"], old=self.rng.random() < 0.2)
        if payment is not None:
            self.stats["cvs_payments"] += 1
            doc["status"] = "paid"  # as far as the biller's copy goes: paid

    def cvs_burst(self) -> None:
        """Several payments at once (the agency batches what its stores sent together)."""
        for _ in range(self.rng.randint(2, 5)):
            self.cvs_pay(again=self.rng.random() < 0.3)

    async def mpn_pay(self) -> None:
        bills = [(s, d) for s, d in self._open_bills("payeasy") if "payeasy" in d]
        if not bills:
            return
        side, doc = self.rng.choice(bills)
        self.stats["mpn_attempts"] += 1
        await self.center.pay(doc, side.biller_id, wrong_first=self.rng.random() < 0.1)

    def csv_poll(self) -> None:
        daemon = self.daemon
        if daemon is None or not daemon.alive:
            return
        today = datetime.fromtimestamp(self.sim.seconds(), JST).date()
        start = today - timedelta(days=self.rng.choice((0, 1, 2, 3)))
        data = self.agency.csv(start, today)
        rows = self.agency.csv_rows(start, today)
        source = f"agency-csv:{start:%Y%m%d}-{today:%Y%m%d}"
        self.log("world", f"CSV poll {start}..{today}: {len(rows)} row(s)")
        d = daemon.cvs.apply_agency_csv(data, source)

        def done(result: Any) -> None:
            if result.accepted:
                self.agency.csv_accepted.update(rows)
                self.told_stored(f"CSV poll {source}", [("cvs", KINDS[k], key) for k, key in rows])
            self.log(f"gateway#{daemon.life}", f"CSV {source}: {result.report}")

        d.addCallbacks(
            done, lambda f: self.log(f"gateway#{daemon.life}", f"CSV failed: {f.getErrorMessage()}")
        )
        if not self.calm and self.rng.random() < self.plan.repoll:
            self.injected["file.csv_repolled"] += 1
            self.log("fault", "file.csv_repolled: the same window is polled again")
            self.sim.call_later(self.rng.uniform(0.001, 30.0), self.csv_poll)

    def bank_work(self) -> None:
        self.bank.work()
        self.sim.call_later(60.0, self.bank_work)

    # -- the days ------------------------------------------------------------------------------

    def spawn(self, what: str, coro: Awaitable[Any]) -> None:
        d: Deferred[Any] = Deferred.fromCoroutine(coro)  # type: ignore[arg-type]

        def failed(failure: Failure) -> None:
            self.log("world", f"{what} failed: {failure.getErrorMessage()}")
            self.stats["world_errors"] += 1

        d.addErrback(failed)

    def at(self, when: datetime, f: Callable[..., object], *a: Any) -> None:
        self.sim.call_later(when.timestamp() - self.sim.seconds(), f, *a)

    def day(self, n: int, day: date) -> None:
        """Schedule the day's traffic (09:00-09:13 JST; the window runs 08:58-09:13)."""
        base = datetime.combine(day, datetime.min.time(), tzinfo=JST) + timedelta(hours=9)
        self.log("world", f"day {n + 1}: {day} ({day:%a})")
        for side in self.billers.values():
            for _ in range(self.rng.randint(1, 4)):
                self.at(
                    base + timedelta(seconds=self.rng.uniform(0, 120)),
                    self.spawn,
                    "create",
                    self.create_bill(side),
                )
        if n > 0:
            self.at(
                base + timedelta(minutes=2), self.agency.confirmation_file, day - timedelta(days=1)
            )
        if n == 1:
            side = self.billers[BILLERS[0]]
            self.at(base + timedelta(minutes=3), self.spawn, "endpoint", self.add_endpoint(side))
        actions: list[tuple[float, Callable[[], Any]]] = [
            (6.0, lambda: self.cvs_pay()),
            (1.5, lambda: self.cvs_pay(again=True)),
            (1.5, lambda: self.cvs_burst()),
            (1.0, lambda: self.agency.void()),
            (3.0, lambda: self.spawn("mpn pay", self.mpn_pay())),
            (0.7, lambda: self.spawn("mpn cancel", self.center.cancel())),
            (
                0.6,
                lambda: self.spawn(
                    "cancel", self.cancel_bill(self.rng.choice(list(self.billers.values())))
                ),
            ),
            (
                0.6,
                lambda: self.spawn(
                    "reissue", self.reissue_bill(self.rng.choice(list(self.billers.values())))
                ),
            ),
            (1.0, lambda: self.csv_poll()),
        ]
        weights = [w for w, _ in actions]
        for _ in range(self.rng.randint(8, 20)):
            when = base + timedelta(seconds=self.rng.uniform(120, 780))
            _, action = self.rng.choices(actions, weights)[0]
            self.at(when, action)
        for minute in range(14):
            if self.rng.random() < self.plan.disconnects:
                self.at(
                    base + timedelta(minutes=minute, seconds=self.rng.uniform(0, 60)),
                    self._disconnect,
                )
            if self.rng.random() < self.plan.replay:
                self.at(
                    base + timedelta(minutes=minute, seconds=self.rng.uniform(0, 60)),
                    self._replay,
                )
            if self.rng.random() < self.plan.server_restart:
                self.at(
                    base + timedelta(minutes=minute, seconds=self.rng.uniform(0, 60)),
                    self._server_restart,
                )
            if self.rng.random() < self.plan.jump:
                self.at(
                    base + timedelta(minutes=minute, seconds=self.rng.uniform(0, 60)), self._jump
                )

    def _disconnect(self) -> None:
        if not self.calm and self.agency.wire is not None:
            self.injected["net.disconnect"] += 1
            self.log("fault", "net.disconnect: the link breaks")
            self.agency.cut("disconnect")

    def _replay(self) -> None:
        """The agency replays its log: records already acknowledged go again, as new DT."""
        if self.calm:
            return
        n = self.agency.replay(self.rng.randint(1, 6))
        if n:
            self.injected["net.replayed_records"] += n
            self.log("fault", f"net.replayed_records: the agency sends {n} acked record(s) again")

    def _server_restart(self) -> None:
        """PostgreSQL ends every session of the seed's database, as a restart would."""
        if self.calm or self.sqlite:
            return
        with self.reader.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            conn.commit()
        self.injected["db.server_restart"] += 1
        self.log("fault", f"db.server_restart: the server ends {ended} session(s)")

    def _jump(self) -> None:
        """The clock jumps: every party's timers due meanwhile fire at once, late."""
        if self.calm:
            return
        seconds = self.rng.choice((5.0, 30.0, 90.0, 400.0))
        self.injected["time.jump"] += 1
        self.log("fault", f"time.jump: the clock jumps {seconds:.0f}s")
        self.sim.jump(seconds)

    def run_days(self) -> None:
        start = self.plan.start
        days = [start.date() + timedelta(days=n) for n in range(self.plan.days)]
        for crash in self.plan.crashes:
            if crash.at is not None:
                self.sim.call_later(crash.at, self.crash, f"at +{crash.at:.0f}s")
        for n, day in enumerate(days):
            morning = datetime.combine(day, datetime.min.time(), tzinfo=JST) + timedelta(
                hours=8, minutes=58
            )
            if morning.timestamp() > self.sim.seconds():
                self.sim.jump(morning.timestamp() - self.sim.seconds())  # over the night
            self.day(n, day)
            until = morning + timedelta(minutes=15)
            self.sim.run_until(until.timestamp())
            evening = datetime.combine(day, datetime.min.time(), tzinfo=JST) + timedelta(
                hours=23, minutes=49
            )
            self.sim.jump(evening.timestamp() - self.sim.seconds())  # the day passes
            self.sim.run_until((evening + timedelta(minutes=3)).timestamp())  # 閉局 at 23:50

    def _last_poll(self, start: date, end: date) -> None:
        daemon = self.daemon
        if daemon is None or not daemon.alive:
            return
        rows = self.agency.csv_rows(start, end)
        d = daemon.cvs.apply_agency_csv(self.agency.csv(start, end), "agency-csv:all")

        def done(result: Any) -> None:
            if result.accepted:
                self.agency.csv_accepted.update(rows)
                self.told_stored("the last CSV poll", [("cvs", KINDS[k], key) for k, key in rows])
            self.log(f"gateway#{daemon.life}", f"last CSV poll: {result.report}")

        d.addCallback(done)
