"""One seed: the database, the daemon's lives, the peers, the workload, the drain, the checks.

:func:`run_seed` is the whole of it: a fresh database (a copy of a migrated SQLite file, or a
database made from a migrated template on the PostgreSQL server), the configuration, the
billers and their contracts, then :class:`World` runs the seed's days on the shared clock and
hands the settled world to :mod:`simulators.world.invariants`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import random
import secrets
import shutil
import time as wall
import tomllib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine, make_url
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway import calendar, ids
from gateway.billing.mandates import bank_names
from gateway.config import Config
from gateway.config.parse import parse_config
from gateway.errors import Conflict, GatewayError, InvalidRequest, NotFound
from gateway.fee_model import ChannelRates, Cycle, FeePlan, Rounding
from gateway.infra.secretbox import SecretBox
from gateway.mappers.cvs.mapper import parse_file as parse_cvs_file
from gateway.mappers.zengin.mapper import parse_file as parse_zengin_file
from gateway.mappers.zengin.mapper import to_canonical as zengin_events
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
from gateway.protocols.inbox import FileResult
from gateway.store import create_db_engine
from gateway.store.billers import create_biller
from gateway.store.migrate import migrate
from gateway.store.schema import collection_messages
from gateway.store.settlements import save_plan
from gateway.store.webhooks import create_endpoint
from gateway.store.zengin import insert_mandate, save_consignor
from simulators.world.daemon import Daemon
from simulators.world.faults import Crash, DatabaseFaults, FaultPlan, Injected, draw_plan
from simulators.world.networks import CvsAgency, MpnCenter, Receivers, ZenginBank
from simulators.world.runtime import Process, Sim
from simulators.world.trace import Trace

COMPANY_CODE = "987654"
KINDS = {"01": "preliminary", "02": "confirmation", "03": "void"}
SECRET_KEY = base64.b64encode(b"simulation-secret-key-32-bytes!!").decode()
CUSTOMERS = ("C1", "C2", "C3", "C4")  # with a mandate; C5 has none
BILLERS = ("acme", "beta")


def config_text(workdir: Path, database_url: str) -> str:
    return f"""
[database]
url = "{database_url}"
pool_size = 4
migrate_on_start = false

[api]
listen = "tcp:0:interface=127.0.0.1"
public_url = "https://pay.example.jp"

[metrics]
listen = "tcp:0:interface=127.0.0.1"

[secrets]
key = "{SECRET_KEY}"

[bills]
expiry_interval = 1800

[cvs]
company_code = "{COMPANY_CODE}"
ceiling = 300000

[cvs.files]
inbox = "{workdir / "inbox" / "cvs"}"
poll_interval = 10

[mpn]
institution_code = "58191"
number_key = "5e1f0c2a9b7d4e6f8a3c1b2d0e9f7a6c"
close_at = "23:50"

[zengin]
outbox = "{workdir / "outbox" / "zengin"}"
inbox = "{workdir / "inbox" / "zengin"}"
poll_interval = 10
request_at = "09:05"
lead_days = 3

[webhooks]
poll_interval = 60
backoff_base = 5
backoff_cap = 120
max_age_hours = 720
timeout = 10

[settlement]
interval = 3600
"""


def load(text: str, base: Path) -> Config:
    return parse_config(tomllib.loads(text), base)


# --- the database -------------------------------------------------------------------------------


class Databases:
    """Where each seed's database comes from: a migrated SQLite file copied, or a database
    made from a migrated template on the PostgreSQL server (and dropped afterwards)."""

    def __init__(self, base: Path, server_url: str | None) -> None:
        self.base = base
        self.server_url = server_url
        self.template: str | None = None
        self._server: Any = None
        self._engine: Engine | None = None
        self._url: str | None = None

    @property
    def backend(self) -> str:
        return "postgresql" if self.server_url else "sqlite"

    def _template(self) -> str:
        if self.template is not None:
            return self.template
        if self.server_url is None:
            path = self.base / f"template-{os.getpid()}.sqlite3"
            if not path.exists():
                engine = create_db_engine(f"sqlite:///{path}", 1)
                migrate(engine)
                engine.dispose()
            self.template = str(path)
        else:
            name = f"simtpl_{os.getpid()}_{secrets.token_hex(3)}"
            self._server = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
            with self._server.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            url = make_url(self.server_url).set(database=name).render_as_string(hide_password=False)
            engine = create_db_engine(url, 1)
            migrate(engine)
            engine.dispose()
            self.template = name
        return self.template

    def _engine_for(self, url: str) -> Engine:
        """One engine per worker and database name, for its cache of compiled statements
        (each seed's database has the same name); its connections are closed between seeds
        and at every crash."""
        if self._engine is None or self._url != url:
            if self._engine is not None:
                self._engine.dispose()
            self._engine, self._url = create_db_engine(url, 4), url
        return self._engine

    @contextlib.contextmanager
    def database(self, seed: int, workdir: Path) -> Iterator[tuple[str, Engine]]:
        template = self._template()
        if self._engine is not None:
            self._engine.dispose()
        if self.server_url is None:
            path = self.base / "seed.sqlite3"
            for suffix in ("", "-wal", "-shm", "-journal"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            shutil.copyfile(template, path)
            url = f"sqlite:///{path}"
            try:
                yield url, self._engine_for(url)
            finally:
                self._engine_for(url).dispose()
            return
        name = f"sim_{os.getpid()}"
        with self._server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        url = make_url(self.server_url).set(database=name).render_as_string(hide_password=False)
        try:
            yield url, self._engine_for(url)
        finally:
            self._engine_for(url).dispose()
            with self._server.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._server is not None and self.template is not None:
            with self._server.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
            self._server.dispose()
        self._server = None


# --- determinism --------------------------------------------------------------------------------


@contextlib.contextmanager
def seeded_randomness(seed: int) -> Iterator[random.Random]:
    """Every random identifier the gateway draws (ids, page and event ids, secrets) from the
    seed, so that a seed replays exactly; restored afterwards."""
    rng = random.Random(f"secrets/{seed}")
    names = ("token_bytes", "token_hex", "token_urlsafe", "randbelow")
    saved = {name: getattr(secrets, name) for name in names}

    def token_bytes(n: int | None = 32) -> bytes:
        return rng.randbytes(32 if n is None else n)

    def token_hex(n: int | None = 32) -> str:
        return token_bytes(n).hex()

    def token_urlsafe(n: int | None = 32) -> str:
        return base64.urlsafe_b64encode(token_bytes(n)).rstrip(b"=").decode("ascii")

    secrets.token_bytes = token_bytes  # type: ignore[assignment]
    secrets.token_hex = token_hex  # type: ignore[assignment]
    secrets.token_urlsafe = token_urlsafe  # type: ignore[assignment]
    secrets.randbelow = lambda n: rng.randrange(n)  # type: ignore[assignment]
    ids.new_id._pool, ids.new_id._at = b"", 0
    try:
        yield rng
    finally:
        for name, value in saved.items():
            setattr(secrets, name, value)
        ids.new_id._pool, ids.new_id._at = b"", 0


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


# --- the world ----------------------------------------------------------------------------------


@dataclass
class Result:
    seed: int
    backend: str
    breaks: list[str]
    injected: Counter[str]
    stats: Counter[str]
    seconds: float
    trace: Trace
    plan: str


class World:
    """The seed's world on one clock; :meth:`run` plays it and returns the settled world."""

    def __init__(
        self, seed: int, workdir: Path, database_url: str, engine: Engine, *, keep_trace: bool
    ) -> None:
        self.seed = seed
        self.workdir = workdir
        self.database_url = database_url
        self.engine = engine
        self.sqlite = database_url.startswith("sqlite")
        self.plan: FaultPlan = draw_plan(seed, sqlite=self.sqlite)
        start = self.plan.start.timestamp()
        self.trace = Trace(start, keep=keep_trace)
        self.sim = Sim(start, self.trace)
        self.trace.clock = self.sim.seconds
        self.rng = random.Random(f"workload/{seed}")
        self.injected = Injected()
        self.stats: Counter[str] = Counter()
        self.config = load(config_text(workdir, database_url), workdir)
        self.db_faults = DatabaseFaults(
            self.plan,
            random.Random(f"db/{seed}"),
            self.injected,
            self.log,
            sqlite=self.sqlite,
        )
        self.daemon: Daemon | None = None
        self.life = 0
        self.job_counts: Counter[str] = Counter()
        self.crashes_left: list[Crash] = [c for c in self.plan.crashes if c.at is None]
        self.calm = False
        self.billers: dict[str, BillerSide] = {}
        self.restart_call: Any = None
        assert self.config.cvs is not None and self.config.zengin is not None
        files = self.config.cvs.agency(None).files
        assert files is not None
        self.cvs_inbox = files.inbox
        self.agency = CvsAgency(self, COMPANY_CODE, files.inbox)
        self.center = MpnCenter(self)
        self.bank = ZenginBank(
            self, self.config.zengin.outbox, self.config.zengin.inbox, workdir / "bank"
        )
        self.receivers = Receivers(self)
        self.reader = engine  # the checks read on connections of their own
        self.ack_breaks: list[str] = []  # told "stored" when it was not (found at that moment)

    def log(self, who: str, what: str) -> None:
        self.trace(who, what)

    def told_stored(self, who: str, messages: Sequence[tuple[str, str, str]]) -> None:
        """A network was just told that these messages (channel, kind, event key) are stored:
        they must be in the database now, committed (read on a connection of our own)."""
        if not messages:
            return
        c = collection_messages.c
        with self.reader.connect() as conn:
            found = set(
                conn.execute(
                    select(c.channel, c.kind, c.event_key).where(
                        c.event_key.in_(sorted({key for _, _, key in messages}))
                    )
                ).all()
            )
        for message in messages:
            if tuple(message) not in found:
                what = f"{who}: told {message[0]} {message[1]} {message[2]} is stored, it is not"
                self.ack_breaks.append(what)
                self.log("check", f"BREAK (at the ack) {what}")

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

    # -- the daemon's lives --------------------------------------------------------------------

    def start_daemon(self) -> None:
        self.restart_call = None
        if self.daemon is not None and self.daemon.alive:
            return
        self.life += 1
        process = Process(self.sim, self.life, random.Random(f"process/{self.seed}/{self.life}"))
        self.daemon = Daemon(
            self.config,
            process,
            self.db_faults,
            hook=self._job_hook,
            poster=self.receivers,
            engine=self.engine,
            randbelow=random.Random(f"issuer/{self.seed}/{self.life}").randrange,
            on_file=self.file_applied,
        )
        self.daemon.center_link = self.center
        self.stats["lives"] += 1
        self.log(f"gateway#{self.life}", "started from the database")
        self.agency.redial()

    def file_applied(self, network: str, name: str, data: bytes, result: FileResult) -> None:
        """The inbox has a file's result: an accepted file's records must all be stored."""
        self.log(f"gateway#{self.life}", f"{network} file {name}: {result.report[:160]}")
        if not result.accepted:
            return
        now = datetime.fromtimestamp(self.sim.seconds(), JST)
        if network == "cvs":
            parsed = parse_cvs_file(data, source=name)
            messages = [("cvs", "confirmation", r.event_key) for r in parsed.records]
        else:
            result_file = parse_zengin_file(data, source=name)
            debit_date = result_file.header.debit_date(now.date())
            events = zengin_events(result_file, debit_date=debit_date, name=name, received_at=now)
            messages = [(e.channel.value, e.kind.value, e.event_key) for e in events]
        self.told_stored(f"{network} file {name} accepted", messages)

    def crash(self, why: str) -> None:
        daemon = self.daemon
        if daemon is None or not daemon.alive:
            return
        self.injected["process.crash"] += 1
        self.log("fault", f"process.crash of gateway#{daemon.life}: {why}")
        daemon.kill()
        self.agency.gateway_died()
        self.restart_call = self.sim.call_later(self.rng.uniform(1.0, 120.0), self.start_daemon)

    def _job_hook(self, desc: str, stage: str) -> bool:
        """Asked by the store's pool around every job: a crash here? the link cut here?"""
        if stage == "before":
            for prefix in {desc[:i] for i in range(len(desc) + 1)}:
                self.job_counts[prefix] += 1
        if self.calm:
            return False
        for crash in list(self.crashes_left):
            if (
                crash.stage == stage
                and desc.startswith(crash.desc)
                and self.job_counts[crash.desc] >= crash.nth
            ):
                self.crashes_left.remove(crash)
                self.crash(f"{stage} the {desc} job #{self.job_counts[crash.desc]}")
                return True
        if (
            stage == "after"
            and desc == "cvs.link.commit"
            and self.rng.random() < self.plan.cut_after_commit
        ):
            self.injected["net.cut_after_commit"] += 1
            self.log("fault", "net.cut_after_commit: the link breaks before the acks go out")
            self.agency.cut("cut after commit")
        return False

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
        """Schedule the day's traffic (09:00-09:35 JST)."""
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
            when = base + timedelta(seconds=self.rng.uniform(120, 960))
            _, action = self.rng.choices(actions, weights)[0]
            self.at(when, action)
        for minute in range(17):
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
            until = morning + timedelta(minutes=20)
            self.sim.run_until(until.timestamp())
            evening = datetime.combine(day, datetime.min.time(), tzinfo=JST) + timedelta(
                hours=23, minutes=47
            )
            self.sim.jump(evening.timestamp() - self.sim.seconds())  # the day passes
            self.sim.run_until((evening + timedelta(minutes=6)).timestamp())  # 閉局 at 23:50

    # -- the end: calm, drained ----------------------------------------------------------------

    def calm_down(self) -> None:
        self.calm = True
        self.db_faults.enabled = False
        self.agency.calm = self.center.calm = self.receivers.calm = True
        if self.agency.wire is not None:
            self.agency.wire.cut_mid_frame = 0.0
        if self.daemon is None or not self.daemon.alive:
            if self.restart_call is not None and self.restart_call.active():
                self.restart_call.cancel()
            self.start_daemon()
        self.log("world", "calm: no more faults; everyone finishes what they started")

    def unsettled(self) -> str | None:
        """What someone is still doing (None: everyone is done)."""
        daemon = self.daemon
        if daemon is None or not daemon.alive:
            return "the gateway is down"
        if self.agency.client.unacked:
            return f"{self.agency.client.unacked} 速報 unacked"
        if any(p.is_file() for p in self.cvs_inbox.iterdir()):
            return "確報 files wait in the inbox"
        assert self.config.zengin is not None
        if any(p.is_file() for p in self.config.zengin.inbox.iterdir()):
            return "transfer results wait in the inbox"
        if self.bank.bank.pending() or self.bank.bank.waiting():
            return "the bank has requests to answer"
        for p in self.center.payments.values():
            if not (p.answered or p.refused):
                return f"消込 {p.key} unanswered"
            if p.cancel_asked and p.answered and not p.cancelled and not p.cancel_refused:
                return f"取消 {p.key} unanswered"
        return None

    def drain(self) -> None:
        self.calm_down()
        now = datetime.fromtimestamp(self.sim.seconds(), JST)
        morning = datetime.combine(
            now.date() + timedelta(days=1), datetime.min.time(), tzinfo=JST
        ) + timedelta(hours=9)
        self.sim.jump(morning.timestamp() - self.sim.seconds())
        today = morning.date()
        # the last CSV poll covers every day: what the link or a file missed comes now
        self.at(morning + timedelta(minutes=1), self._last_poll, self.plan.start.date(), today)
        deadline = morning + timedelta(hours=4)
        step = morning + timedelta(minutes=5)
        self.sim.run_until(step.timestamp())
        while step < deadline and self.unsettled() is not None:
            step += timedelta(minutes=5)
            self.sim.run_until(step.timestamp())
        why = self.unsettled()
        if why is not None:
            self.log("world", f"not settled after 4 hours of calm: {why}")
            self.stats["unsettled"] += 1
        # webhook retries (backoff at most 2 minutes when calm) finish
        step += timedelta(minutes=5)
        self.sim.run_until(step.timestamp())
        # weeks pass: the settlement timer settles every period that closes meanwhile (each
        # landing fires it once), and the webhooks of what it made go out
        for days in (6, 11, 19):
            self.sim.jump(days * 86400.0)
            step += timedelta(days=days, minutes=4)
            self.log("world", f"{days} days later")
            self.sim.run_until(step.timestamp())

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

    def run(self) -> None:
        self.setup()
        self.start_daemon()
        self.bank_work()
        self.run_days()
        self.drain()


@contextlib.contextmanager
def gateway_logs(world: World) -> Iterator[None]:
    """The gateway's own log lines (twisted.logger) go into the trace, under the life that
    wrote them."""

    @implementer(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        if not world.trace.keep:
            return
        text = (formatEvent(event) or "").split("\n", 1)[0]
        failure = event.get("log_failure")
        if failure is not None:
            first = (str(failure.value).splitlines() or [""])[0][:160]
            text += f" [{type(failure.value).__name__}: {first}]"
        world.log(f"gateway#{world.life}", "log: " + text[:300])

    globalLogPublisher.addObserver(observe)
    try:
        yield
    finally:
        globalLogPublisher.removeObserver(observe)


def run_seed(
    seed: int,
    databases: Databases,
    base: Path,
    *,
    keep_trace: bool = False,
    mutant: str | None = None,
) -> Result:
    """Run one seed from a fresh database; its breaks (invariants that failed) and figures.
    ``mutant``: the seed's database is changed as that mutant needs (its code is patched by
    the caller, simulators.world.mutations)."""
    from simulators.world.invariants import check_world
    from simulators.world.mutations import DATABASE_CHANGES

    started = wall.perf_counter()
    workdir = base / f"seed-{seed}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    breaks: list[str] = []
    world: World | None = None
    try:
        with seeded_randomness(seed), databases.database(seed, workdir) as (url, engine):
            if mutant in DATABASE_CHANGES:
                DATABASE_CHANGES[mutant](url)
            world = World(seed, workdir, url, engine, keep_trace=keep_trace)
            try:
                with gateway_logs(world):
                    world.run()
            except Exception as e:  # the simulation itself must not fail: a break
                import traceback

                breaks.append(f"the run raised {type(e).__name__}: {e}")
                world.log("world", traceback.format_exc())
            if world.daemon is not None and world.daemon.alive:
                world.daemon.kill()
            world.db_faults.detach(engine)
            breaks += world.ack_breaks[:20]
            if not breaks:
                breaks += check_world(world)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert world is not None
    for b in breaks:
        world.log("check", f"BREAK: {b}")
    return Result(
        seed,
        databases.backend,
        breaks,
        world.injected,
        world.stats,
        wall.perf_counter() - started,
        world.trace,
        world.plan.summary(),
    )
