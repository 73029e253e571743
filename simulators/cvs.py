"""The CVS collection agency, simulated (spec/cvs.md): it pays bills at convenience stores and
payment apps, reports them over the 速報 link, voids some, writes 確報 result files into the
gateway's inbox and answers the agency CSV over HTTP.

Everything random comes from the :class:`Scenario`'s seed: the same seed and the same slips give
the same payments, records and files. :meth:`Agency.expected` is the agency's own ledger, for a
test to hold against what the gateway shows (``GET /v1/payments``, the bills' ``double_paid``).

As a command (``python -m simulators.cvs --help``) it reads open bills from the merchant API,
pays them over the link, waits for every ack, voids some, writes the 確報 file into the inbox and
prints a JSON summary.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import random
import re
import time as wall
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from gateway.mappers.cvs import barcode as barcodes
from gateway.mappers.cvs.agency import AgencyRow, build_agency_csv, build_agency_error
from gateway.mappers.cvs.mapper import (
    RecordKind,
    ResultRecord,
    build_file,
    build_record,
    chain_name,
)
from gateway.mappers.cvs.records import make_event_key, paid_at
from gateway.model import JST
from simulators._command import run_command

#: spec/cvs.md §5, zero-padded to 6 digits: stores, then the barcode-reading payment apps.
STORE_CHAINS = ("000010", "000020", "000030", "000050", "000080", "000760", "000730")
APP_CHAINS = ("000820", "000800", "000780", "000750", "000810", "000530")
CHAIN_CODES = STORE_CHAINS + APP_CHAINS
APP_STORE = "0000000"  # a payment app has no store
SEGMENTS = ("  ", "01", "02", "10", "20")  # POS customer segments; kept, never interpreted
_YYYYMMDD = re.compile(r"[0-9]{8}")


class Fate(StrEnum):
    PENDING = "pending"  # 速報 only
    CONFIRMED = "confirmed"  # a 確報 was written
    VOIDED = "voided"  # a 速報取消 was sent


@dataclass(frozen=True)
class Slip:
    """A barcode to pay; ``second`` is another slip of the same bill (e.g. the reissued one),
    used when the scenario pays the bill twice; ``bill_no`` is carried through for reports."""

    barcode: str
    second: str | None = None
    bill_no: str | None = None

    def __post_init__(self) -> None:
        for code in (self.barcode, self.second):
            if code is not None:
                barcodes.parse(code, ceiling=barcodes.MAX_AMOUNT)  # RecordError if not a barcode
        if self.second is not None and self.second[2:29] != self.bill_key:
            raise ValueError("the second slip is for another bill (digits 3-29 differ)")

    @property
    def bill_key(self) -> str:
        """Company code + free field (barcode digits 3-29)."""
        return self.barcode[2:29]


@dataclass(frozen=True)
class Payment:
    """One payment the agency made, and its fate so far."""

    event_key: str
    barcode: str
    amount: int
    chain: str  # 6 digits
    store: str  # 7 digits
    paid_at: datetime  # JST, whole minutes
    customer_segment: str
    bill_no: str | None = None
    second: bool = False  # the second payment of its bill
    fate: Fate = Fate.PENDING
    transfer_date: date | None = None  # set with its first 確報 (= that file's date)

    @property
    def bill_key(self) -> str:
        return self.barcode[2:29]

    @property
    def paid_on(self) -> date:
        return self.paid_at.date()

    @property
    def paid_time(self) -> str:
        return self.paid_at.strftime("%H%M")

    def record(self, kind: RecordKind) -> ResultRecord:
        """The 120-byte record of ``kind`` for this payment (a 02 needs the transfer date)."""
        confirmation = kind is RecordKind.CONFIRMATION
        if confirmation and self.transfer_date is None:
            raise ValueError(f"payment {self.event_key} has no transfer date for a 確報")
        transfer = self.transfer_date if confirmation else None
        fields = (self.paid_on, self.paid_time, self.barcode, self.store, self.customer_segment)
        return ResultRecord(kind, *fields, transfer or self.paid_on, transfer, None, self.chain)


@dataclass(frozen=True)
class Scenario:
    """What the agency does; everything random follows ``seed``.

    ``clock_factor`` is the accelerated clock: simulated seconds per real second. ``stream``
    waits the gap between two payments divided by it, the command waits
    ``confirmation_delay_days`` divided by it; 0 means never wait. A payment made on day D is
    confirmed in the file dated D + ``confirmation_delay_days`` (also its transfer date). Each
    record of an earlier file is repeated in the next one with ``overlap_probability``.
    """

    seed: int = 0
    void_probability: float = 0.1
    double_probability: float = 0.1
    chains: tuple[str, ...] = CHAIN_CODES
    confirmation_delay_days: int = 2
    clock_factor: float = 86_400.0
    overlap_probability: float = 0.0
    start: datetime | None = None  # first payment after this; None: 09:00 JST on the clock's day
    company_code: str | None = None  # the file header's; None: that of the first barcode
    agency_name: str = "ｼﾕｳﾉｳﾀﾞｲｺｳ"

    def __post_init__(self) -> None:
        for name in ("void_probability", "double_probability", "overlap_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if not self.chains or any(not re.fullmatch(r"[0-9]{6}", c) for c in self.chains):
            raise ValueError("chains must be 6-digit chain codes (spec/cvs.md §5), at least one")
        if self.confirmation_delay_days < 0 or self.clock_factor < 0:
            raise ValueError("confirmation_delay_days and clock_factor must not be negative")
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")

    def chance(self, what: str, key: str) -> float:
        """A reproducible number in [0, 1) for a decision about ``key``, from the seed alone."""
        return random.Random(f"{self.seed}/{what}/{key}").random()

    def pays_twice(self, bill_key: str) -> bool:
        """Whether the bill is paid twice (known before paying, so a caller can reissue it)."""
        return self.chance("double", bill_key) < self.double_probability


class ExpectedPayment(NamedTuple):
    status: str  # pending, confirmed, voided
    amount: int


@dataclass(frozen=True)
class Expected:
    """The agency's ledger: every payment by event key, and the bills with two live payments."""

    payments: Mapping[str, ExpectedPayment]
    double_paid: frozenset[str]  # bill keys
    double_paid_bills: frozenset[str]  # their bill_no, where known

    def api_rows(self) -> list[tuple[str, str, str, int, str]]:
        """(paid_at, chain, store, amount, status) of every payment, sorted: what
        :func:`api_rows` reads from ``GET /v1/payments``."""
        rows = []
        for key, (status, amount) in self.payments.items():  # the key holds when and where
            at = datetime.strptime(key[44:56], "%Y%m%d%H%M").replace(tzinfo=JST)
            rows.append((at.isoformat(timespec="seconds"), key[56:62], key[62:], amount, status))
        return sorted(rows)


def api_rows(data: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str, int, str]]:
    """The CVS payments of ``GET /v1/payments`` ``data``, shaped as :meth:`Expected.api_rows`."""
    return sorted(
        (p["paid_at"], p["store"]["chain"], p["store"]["store_code"], p["amount"], p["status"])
        for p in data
        if p.get("channel") == "cvs"
    )


@dataclass(frozen=True)
class CsvRequest:
    """One request to the agency CSV endpoint; ``ok`` is false when it got the error block."""

    from_date: str | None
    to_date: str | None
    ok: bool


class Sender(Protocol):
    """What :meth:`Agency.stream` needs of a link (an :class:`~simulators.cvs_link.AgencyLink`)."""

    def send(self, record: bytes) -> Deferred[str]: ...


def write_file(inbox: Path, name: str, data: bytes) -> Path:
    """Write ``inbox/name`` atomically: ``name.part`` first (the inbox skips it), then rename."""
    inbox.mkdir(parents=True, exist_ok=True)
    target, part = inbox / name, inbox / (name + ".part")
    with open(part, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, target)
    return target


class Agency:
    """The agency's side of every CVS message: payments, voids, 確報 files, the CSV rows."""

    def __init__(self, scenario: Scenario | None = None, clock: IReactorTime | None = None) -> None:
        self.scenario = scenario if scenario is not None else Scenario()
        self.clock = clock
        self.rng = random.Random(self.scenario.seed)
        self.payments: dict[str, Payment] = {}  # by event key, in the order made
        self.events: dict[tuple[str, str], ResultRecord] = {}  # (種別, event key), as produced
        self.files: list[list[str]] = []  # the event keys each 確報 file confirmed first
        self.refused: list[ResultRecord] = []  # records the gateway answered 10
        self.csv_requests: list[CsvRequest] = []
        start = self.scenario.start
        if start is None:
            today = datetime.fromtimestamp(self.now(), JST).date()
            start = datetime.combine(today, time(9, 0), tzinfo=JST)
        self._cursor = start.astimezone(JST).replace(second=0, microsecond=0)

    def now(self) -> float:
        return self.clock.seconds() if self.clock is not None else wall.time()

    # --- payments -----------------------------------------------------------------------------

    def pay(self, slips: Iterable[Slip]) -> list[ResultRecord]:
        """Pay every slip once, some bills twice; the 01 records in time order, to stream."""
        made: list[Payment] = []
        for slip in slips:
            self._cursor += timedelta(minutes=self.rng.randint(1, 90))
            first = self._payment(slip.barcode, slip, self._cursor, None)
            made.append(first)
            if self.scenario.pays_twice(slip.bill_key):  # with the second slip, or elsewhere
                later = self._cursor + timedelta(minutes=self.rng.randint(10, 2 * 24 * 60))
                made.append(self._payment(slip.second or slip.barcode, slip, later, first))
        made.sort(key=lambda p: (p.paid_at, p.event_key))
        records = [p.record(RecordKind.PRELIMINARY) for p in made]
        for rec in records:
            self.events[(RecordKind.PRELIMINARY.value, rec.event_key)] = rec
        return records

    def _payment(self, code: str, slip: Slip, at: datetime, first: Payment | None) -> Payment:
        """A payment of ``code``; the second of its bill when ``first`` is given."""
        for _ in range(20):  # the second payment: at another store than the first, if possible
            chain = self.rng.choice(self.scenario.chains)
            store = APP_STORE if chain in APP_CHAINS else f"{self.rng.randrange(1, 10**7):07d}"
            if first is None or (chain, store) != (first.chain, first.store):
                break
        segment = self.rng.choice(SEGMENTS)
        key = make_event_key(code, at.date(), at.strftime("%H%M"), chain, store)
        while key in self.payments:  # the same barcode, store and minute: a minute later
            at += timedelta(minutes=1)
            key = make_event_key(code, at.date(), at.strftime("%H%M"), chain, store)
        amount = barcodes.parse(code, ceiling=barcodes.MAX_AMOUNT).amount
        payment = Payment(key, code, amount, chain, store, at, segment, slip.bill_no, bool(first))
        self.payments[key] = payment
        return payment

    @property
    def paid_twice(self) -> frozenset[str]:
        """Bill keys with two or more payments (whatever happened to them since)."""
        seen = Counter(p.bill_key for p in self.payments.values())
        return frozenset(k for k, n in seen.items() if n >= 2)

    def last_paid_on(self) -> date:
        return max((p.paid_on for p in self.payments.values()), default=self._cursor.date())

    # --- the link -----------------------------------------------------------------------------

    def stream(
        self, link: Sender, records: Sequence[ResultRecord], *, timeout: float | None = None
    ) -> Deferred[dict[str, int]]:
        """Send every record over ``link`` (paced by the accelerated clock) and wait for every
        ack; fires with the count of each result. A record answered 10 goes to ``refused``."""
        return Deferred.fromCoroutine(self._stream(link, list(records), timeout))

    async def _stream(
        self, link: Sender, records: list[ResultRecord], timeout: float | None
    ) -> dict[str, int]:
        factor, previous = self.scenario.clock_factor, None
        acks: list[Deferred[str]] = []
        for rec in records:
            at = paid_at(rec.paid_on, rec.paid_time)
            if previous is not None and self.clock is not None and factor > 0 and at > previous:
                await deferLater(self.clock, (at - previous).total_seconds() / factor)
            previous = at if previous is None else max(previous, at)
            acks.append(link.send(build_record(rec)))
        everything: Deferred[list[str]] = gatherResults(acks, consumeErrors=True)
        if timeout is not None:  # give up waiting; the link keeps the records to resend
            if self.clock is None:
                raise ValueError("a timeout needs the agency's clock")
            waiting: Deferred[list[str]] = Deferred()
            everything.chainDeferred(waiting)
            everything = waiting.addTimeout(timeout, self.clock)
        results = await everything
        self.refused += [rec for rec, r in zip(records, results, strict=True) if r == "10"]
        return dict(Counter(results))

    def choose_voids(self) -> list[Payment]:
        """The pending payments the scenario voids (each with ``void_probability``)."""
        p = self.scenario.void_probability
        pending = [x for x in self.payments.values() if x.fate is Fate.PENDING]
        return [x for x in pending if self.rng.random() < p]

    def void_records(self, payments: Iterable[Payment]) -> list[ResultRecord]:
        """Void ``payments`` (pending ones; a voided one is skipped): their 03 records."""
        records = []
        for payment in payments:
            current = self.payments[payment.event_key]
            if current.fate is Fate.CONFIRMED:
                raise ValueError(f"{current.event_key} is confirmed: a 速報取消 is an anomaly")
            if current.fate is Fate.VOIDED:
                continue
            self.payments[current.event_key] = replace(current, fate=Fate.VOIDED)
            rec = current.record(RecordKind.VOID)
            self.events[(RecordKind.VOID.value, rec.event_key)] = rec
            records.append(rec)
        return records

    def void(
        self,
        link: Sender,
        payments: Iterable[Payment] | None = None,
        *,
        timeout: float | None = None,
    ) -> Deferred[list[Payment]]:
        """Send the 03 records of ``payments`` (default: :meth:`choose_voids`), wait for every
        ack; fires with the voided payments."""
        records = self.void_records(self.choose_voids() if payments is None else payments)
        d = self.stream(link, records, timeout=timeout)
        return d.addCallback(lambda _: [self.payments[r.event_key] for r in records])

    # --- result files -------------------------------------------------------------------------

    def confirmation_file(self, day: date) -> bytes:
        """The 確報 file of the payments made up to ``day`` and neither voided nor confirmed
        yet, dated ``day`` + the confirmation delay; with the scenario's overlap, records of
        earlier files again (the same bytes)."""
        file_date = day + timedelta(days=self.scenario.confirmation_delay_days)
        overlap = self.scenario.overlap_probability
        repeated = [
            p
            for p in self.payments.values()
            if p.fate is Fate.CONFIRMED and overlap > 0 and self.rng.random() < overlap
        ]
        new = []
        for p in list(self.payments.values()):
            if p.fate is Fate.PENDING and p.paid_on <= day:
                confirmed = replace(p, fate=Fate.CONFIRMED, transfer_date=file_date)
                self.payments[p.event_key] = confirmed
                rec = confirmed.record(RecordKind.CONFIRMATION)
                self.events[(RecordKind.CONFIRMATION.value, rec.event_key)] = rec
                new.append(confirmed)
        self.files.append([p.event_key for p in new])
        ordered = sorted([*repeated, *new], key=lambda p: (p.paid_at, p.event_key))
        first = next(iter(self.payments.values()), None)
        company = self.scenario.company_code or (first.barcode[2:8] if first else "000000")
        records = [p.record(RecordKind.CONFIRMATION) for p in ordered]
        return build_file(file_date, company, self.scenario.agency_name, records)

    write_file = staticmethod(write_file)

    # --- what the gateway should show ---------------------------------------------------------

    def expected(self) -> Expected:
        """Every payment's status and amount by event key; the bills with two live payments."""
        live = Counter(p.bill_key for p in self.payments.values() if p.fate is not Fate.VOIDED)
        double = frozenset(k for k, n in live.items() if n >= 2)
        return Expected(
            {k: ExpectedPayment(p.fate.value, p.amount) for k, p in self.payments.items()},
            double,
            frozenset(
                p.bill_no for p in self.payments.values() if p.bill_key in double and p.bill_no
            ),
        )

    # --- the agency CSV -----------------------------------------------------------------------

    def agency_rows(self, start: date | None = None, end: date | None = None) -> list[AgencyRow]:
        """A row per 01/02/03 produced, whose 収納日 is in ``start``..``end`` (inclusive)."""
        rows = []
        for rec in self.events.values():
            if rec.paid_on < (start or rec.paid_on) or rec.paid_on > (end or rec.paid_on):
                continue
            rows.append(
                AgencyRow(
                    kind=rec.kind.value,
                    paid_on=rec.paid_on,
                    paid_time=rec.paid_time,
                    barcode=rec.barcode,
                    stamp=rec.barcode[36] == "1",
                    amount=int(rec.barcode[37:43]),
                    chain_code=rec.chain_code[-3:],
                    chain_name=chain_name(rec.chain_code) or "",
                    store_code=rec.store_code,
                    transfer_date=rec.transfer_date,
                    data_date=rec.data_date,
                )
            )
        return rows


def _csv_date(text: str) -> date:
    if not _YYYYMMDD.fullmatch(text):
        raise ValueError(text)
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


class AgencyCsvResource(Resource):
    """POST ``USER_ID``, ``PW`` and optionally ``FROM_DATE`` + ``TO_DATE``: the CSV of spec §6,
    or its 4-line error block; every request is logged in ``agency.csv_requests``."""

    isLeaf = True

    def __init__(self, agency: Agency, user_id: str, password: str) -> None:
        super().__init__()
        self.agency = agency
        self.user_id = user_id
        self.password = password

    def render_POST(self, request: Request) -> bytes:
        args: dict[bytes, list[bytes]] = request.args or {}

        def form(name: str) -> str | None:
            values = args.get(name.encode("ascii"))
            return values[0].decode("utf-8", "replace") if values else None

        user, password = form("USER_ID") or "", form("PW") or ""
        start, end = form("FROM_DATE"), form("TO_DATE")
        log = self.agency.csv_requests
        request.setHeader(b"content-type", b"text/csv; charset=Shift_JIS")
        ok_user = hmac.compare_digest(user.encode(), self.user_id.encode())
        if not (ok_user and hmac.compare_digest(password.encode(), self.password.encode())):
            log.append(CsvRequest(start, end, False))
            return self._error("ログインに失敗しました", "認証エラー", "E101")
        try:
            if (start is None) != (end is None):
                raise ValueError("one date without the other")
            window = (_csv_date(start), _csv_date(end)) if start and end else (None, None)
            if window[0] and window[1] and window[0] > window[1]:
                raise ValueError("FROM_DATE after TO_DATE")
        except ValueError:
            log.append(CsvRequest(start, end, False))
            return self._error("日付の指定に誤りがあります", "パラメータエラー", "E201")
        log.append(CsvRequest(start, end, True))
        return build_agency_csv(self.agency.agency_rows(*window))

    def _error(self, message: str, status: str, code: str) -> bytes:
        at = datetime.fromtimestamp(self.agency.now(), JST)
        return build_agency_error(message, at, status, code)


def serve_agency_csv(
    reactor: Any, description: str, agency: Agency, user_id: str, password: str
) -> Deferred[IListeningPort]:
    """Serve ``agency``'s CSV on ``description`` (e.g. ``tcp:0:interface=127.0.0.1``)."""
    site = Site(AgencyCsvResource(agency, user_id, password))
    d: Deferred[IListeningPort] = serverFromString(reactor, description).listen(site)
    return d


# --- the command ------------------------------------------------------------------------------


async def _json(
    reactor: Any, method: str, url: str, key: str, body: Any = None, timeout: float = 30.0
) -> Any:
    import treq
    from twisted.web.client import HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=False)
    headers: dict[str | bytes, str | bytes] = {"Authorization": f"Bearer {key}"}
    extra = {} if body is None else {"json": body}
    response = await treq.request(
        method, url, headers=headers, reactor=reactor, timeout=timeout, pool=pool, **extra
    )
    content = await response.content()
    if response.code >= 300:
        raise RuntimeError(f"{method} {url}: HTTP {response.code}: {content[:200]!r}")
    return json.loads(content)


async def _open_bills(reactor: Any, api: str, key: str, limit: int) -> list[dict[str, Any]]:
    bills: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(bills) < limit:
        url = f"{api}/v1/bills?status=open&limit=100" + (f"&cursor={cursor}" if cursor else "")
        page = await _json(reactor, "GET", url, key)
        bills += [b for b in page["data"] if b.get("cvs", {}).get("barcode")]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return bills[:limit]


async def run(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The command's work; returns its summary."""
    from gateway.infra.tls import TLSFiles
    from simulators.cvs_link import start_agency_link

    api = args.api.rstrip("/")
    scenario = Scenario(
        seed=args.seed,
        void_probability=args.void,
        double_probability=args.double,
        confirmation_delay_days=args.delay,
        clock_factor=args.speed,
    )
    slips, reissued = [], 0
    for bill in await _open_bills(reactor, api, args.key, args.bills):
        code, second = bill["cvs"]["barcode"], None
        if scenario.pays_twice(code[2:29]) and scenario.chance("reissue", code[2:29]) < 0.5:
            url = f"{api}/v1/bills/{quote(bill['bill_no'], safe='')}/reissue"
            doc = await _json(reactor, "POST", url, args.key, {"amount": bill["amount"]})
            second, reissued = doc["cvs"]["barcode"], reissued + 1
        slips.append(Slip(code, second, bill["bill_no"]))
    agency = Agency(scenario, reactor)
    tls_dir = Path(args.tls_dir)
    tls = TLSFiles(tls_dir / "ca.pem", tls_dir / "cvs-agency.pem", tls_dir / "cvs-agency.key")
    link = start_agency_link(reactor, args.link, tls, args.hostname)
    try:
        acks = await agency.stream(link, agency.pay(slips), timeout=args.timeout)
        voided = await agency.void(link, timeout=args.timeout)
        if scenario.clock_factor > 0:
            await deferLater(reactor, args.delay * 86_400 / scenario.clock_factor)
        data = agency.confirmation_file(agency.last_paid_on())
        name = f"cvs-{agency.last_paid_on():%Y%m%d}-{args.seed}.dat"
        path = agency.write_file(Path(args.inbox), name, data)
    finally:
        await link.stop()
    expected = agency.expected()
    remitted: dict[str, dict[str, int]] = {}  # what the agency remits, per 振込予定日 (gross)
    for p in agency.payments.values():
        if p.fate is Fate.CONFIRMED and p.transfer_date is not None:
            day = remitted.setdefault(p.transfer_date.isoformat(), {"count": 0, "gross": 0})
            day["count"] += 1
            day["gross"] += p.amount
    return {
        "bills": len(slips),
        "paid": len(agency.payments),
        "voided": len(voided),
        "double": len(expected.double_paid),
        "reissued": reissued,
        "confirmed": len(agency.files[-1]),
        "refused": len(agency.refused),
        "acks": acks,
        "file": str(path),
        "remitted": dict(sorted(remitted.items())),
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulators.cvs",
        description="The CVS agency: pay open bills over the 速報 link, void some, write the "
        "確報 file into the inbox, print a JSON summary.",
    )
    p.add_argument("--api", required=True, help="the merchant API, e.g. http://127.0.0.1:8080")
    p.add_argument("--key", required=True, help="a biller's API key")
    p.add_argument("--link", required=True, help="the gateway's CVS link, tcp:HOST:PORT")
    p.add_argument("--tls-dir", required=True, help="ca.pem, cvs-agency.pem, cvs-agency.key")
    p.add_argument("--inbox", required=True, help="the gateway's CVS result-file inbox")
    p.add_argument("--hostname", default="gateway", help="the name in the gateway's certificate")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bills", type=int, default=10, help="how many open bills to pay")
    p.add_argument("--void", type=float, default=0.2, help="probability of a 速報取消")
    p.add_argument("--double", type=float, default=0.2, help="probability of paying twice")
    p.add_argument("--delay", type=int, default=2, help="days between a payment and its 確報")
    p.add_argument(
        "--speed", type=float, default=86_400.0, help="simulated seconds per second (0: no wait)"
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the acks")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    run_command("simulators.cvs", lambda reactor: run(reactor, args))


if __name__ == "__main__":
    main()
