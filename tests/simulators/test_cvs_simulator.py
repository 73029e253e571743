"""simulators.cvs: the CVS agency's payments, voids, 確報 files, ledger, CSV endpoint and command,
checked against the gateway's own mappers (no daemon)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.web.client import HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from gateway.infra.tls import TLSFiles, make_certs
from gateway.mappers.cvs import barcode
from gateway.mappers.cvs.agency import AgencyError, agency_row_to_canonical, parse_agency_csv
from gateway.mappers.cvs.mapper import (
    RecordKind,
    ResultRecord,
    build_record,
    parse_file,
    parse_record,
    split_records,
    to_canonical,
)
from gateway.mappers.cvs.records import paid_at
from gateway.model import JST
from gateway.protocols.cvs import CvsLinkFactory, listen_cvs_link
from simulators.cvs import (
    APP_CHAINS,
    APP_STORE,
    Agency,
    CsvRequest,
    Fate,
    Scenario,
    Slip,
    api_rows,
    parser,
    run,
    serve_agency_csv,
    write_file,
)

TIMEOUT = 10  # seconds; no network wait may be longer
COMPANY = "987654"
START = datetime(2026, 11, 23, 9, 0, tzinfo=JST)
RECEIVED = datetime(2026, 12, 10, 6, 0, tzinfo=JST)


def code(n: int, *, reissue: int = 0, amount: int | None = None) -> str:
    return barcode.build(
        company_code=COMPANY,
        free_field=barcode.free_field_for("00001", n),
        reissue=reissue,
        due=date(2026, 12, 31),
        stamp=n % 7 == 0,
        amount=1000 + n if amount is None else amount,
    ).digits


def slips(n: int, first: int = 1) -> list[Slip]:
    return [Slip(code(i), bill_no=f"INV-{i:04d}") for i in range(first, first + n)]


def scenario(**changes: Any) -> Scenario:
    settings: dict[str, Any] = {"seed": 7, "start": START, "clock_factor": 0.0}
    return Scenario(**{**settings, **changes})


class FakeLink:
    """Answers every record with ``answer(record)`` at once, or keeps the Deferreds."""

    def __init__(self, answer: Callable[[bytes], str] | None = lambda _: "00") -> None:
        self.answer = answer
        self.sent: list[bytes] = []
        self.waiting: list[defer.Deferred[str]] = []

    def send(self, record: bytes) -> defer.Deferred[str]:
        self.sent.append(record)
        if self.answer is not None:
            return defer.succeed(self.answer(record))
        d: defer.Deferred[str] = defer.Deferred()
        self.waiting.append(d)
        return d


def result(d: defer.Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert len(out) == 1, "the Deferred has not fired"
    return out[0]


# --- payments ----------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_payments() -> None:
    one, two, other = Agency(scenario()), Agency(scenario()), Agency(scenario(seed=8))
    records = [build_record(r) for r in one.pay(slips(30))]

    assert records == [build_record(r) for r in two.pay(slips(30))]
    assert one.payments == two.payments
    assert one.choose_voids() == two.choose_voids()
    day = one.last_paid_on()
    assert one.confirmation_file(day) == two.confirmation_file(day)
    assert [build_record(r) for r in other.pay(slips(30))] != records


def test_payments_are_valid_01_records_in_time_order() -> None:
    agency = Agency(scenario(double_probability=0.3))
    records = agency.pay(slips(40))

    assert all(r.kind is RecordKind.PRELIMINARY for r in records)
    assert [parse_record(build_record(r)) for r in records] == records
    times = [paid_at(r.paid_on, r.paid_time) for r in records]
    assert times == sorted(times) and times[0] > START
    assert len({r.event_key for r in records}) == len(records) == len(agency.payments)
    for p in agency.payments.values():
        assert p.chain in agency.scenario.chains
        assert (p.store == APP_STORE) == (p.chain in APP_CHAINS)
        assert p.amount == int(p.barcode[37:43]) and p.fate is Fate.PENDING


def test_pay_marks_double_payments() -> None:
    given = [
        Slip(code(n), code(n, reissue=1, amount=2000 + n) if n % 2 else None, f"INV-{n}")
        for n in range(1, 21)
    ]
    agency = Agency(scenario(double_probability=1.0))
    records = agency.pay(given)

    assert len(records) == 40
    assert agency.paid_twice == {s.bill_key for s in given}
    for slip in given:
        first, second = sorted(
            (p for p in agency.payments.values() if p.bill_key == slip.bill_key),
            key=lambda p: p.second,
        )
        assert (first.second, second.second) == (False, True)
        assert first.barcode == slip.barcode and second.paid_at > first.paid_at
        if slip.second is not None:
            assert second.barcode == slip.second and second.amount == 2000 + int(
                slip.barcode[24:29]
            )
        else:
            assert second.barcode == slip.barcode
            assert (second.chain, second.store) != (first.chain, first.store)

    none = Agency(scenario(double_probability=0.0))
    assert len(none.pay(given)) == len(given) and not none.paid_twice
    some = Agency(scenario(double_probability=0.3))
    some.pay(given)
    chosen = {s.bill_key for s in given if some.scenario.pays_twice(s.bill_key)}
    assert some.paid_twice == chosen and 0 < len(chosen) < len(given)


def test_a_second_slip_must_be_of_the_same_bill() -> None:
    with pytest.raises(ValueError):
        Slip(code(1), code(2, reissue=1))
    with pytest.raises(ValueError):
        Scenario(void_probability=1.5)


# --- voids and 確報 files ---------------------------------------------------------------------


def trailer(data: bytes) -> tuple[int, int]:
    raw = split_records(data)[-2]
    assert raw[:1] == b"8"
    return int(raw[1:7]), int(raw[7:19])


def test_the_confirmation_file_holds_exactly_the_payments_not_voided() -> None:
    agency = Agency(scenario(void_probability=0.3, double_probability=0.2))
    agency.pay(slips(40))
    voided = agency.void_records(agency.choose_voids())
    assert voided and all(r.kind is RecordKind.VOID for r in voided)
    day = agency.last_paid_on()

    data = agency.confirmation_file(day)

    parsed = parse_file(data, source="kakuho")
    live = [p for p in agency.payments.values() if p.event_key not in {r.event_key for r in voided}]
    assert {r.event_key for r in parsed.records} == {p.event_key for p in live}
    assert len(parsed.records) == len(live)
    assert all(r.kind is RecordKind.CONFIRMATION for r in parsed.records)
    assert {r.transfer_date for r in parsed.records} == {day + timedelta(days=2)}
    assert parsed.file_date == day + timedelta(days=2) and parsed.company_code == COMPANY
    assert trailer(data) == (len(live), sum(p.amount for p in live))
    assert data.endswith(b"\r\n") and all(len(r) == 120 for r in split_records(data))
    assert {p.fate for p in live} == {Fate.CONFIRMED}


def test_a_file_confirms_only_payments_made_up_to_its_day() -> None:
    agency = Agency(scenario(void_probability=0.0, double_probability=0.0))
    agency.pay(slips(60))
    days = sorted({p.paid_on for p in agency.payments.values()})
    assert len(days) >= 2

    first = parse_file(agency.confirmation_file(days[0]))
    rest = parse_file(agency.confirmation_file(days[-1]))

    assert {r.paid_on for r in first.records} == {days[0]}
    assert {r.event_key for r in first.records} | {r.event_key for r in rest.records} == set(
        agency.payments
    )
    assert not {r.event_key for r in first.records} & {r.event_key for r in rest.records}


@pytest.mark.parametrize("overlap", [0.0, 1.0])
def test_overlapping_files_repeat_records(overlap: float) -> None:
    agency = Agency(scenario(double_probability=0.0, overlap_probability=overlap))
    agency.pay(slips(10))
    one = parse_file(agency.confirmation_file(agency.last_paid_on()))
    agency.pay(slips(10, first=11))
    two = parse_file(agency.confirmation_file(agency.last_paid_on()))

    repeated = set(one.raw_records) & set(two.raw_records)
    assert len(one.records) == 10
    if overlap:
        assert repeated == set(one.raw_records) and len(two.records) == 20
    else:
        assert not repeated and len(two.records) == 10
    assert [len(f) for f in agency.files] == [10, 10]
    assert Counter(p.status for p in agency.expected().payments.values()) == {"confirmed": 20}


def test_a_confirmed_payment_cannot_be_voided() -> None:
    agency = Agency(scenario(double_probability=0.0))
    agency.pay(slips(3))
    agency.confirmation_file(agency.last_paid_on())
    with pytest.raises(ValueError):
        agency.void_records(list(agency.payments.values())[:1])
    assert agency.choose_voids() == []


# --- the link ----------------------------------------------------------------------------------


def test_stream_paces_by_the_accelerated_clock_and_waits_for_every_ack() -> None:
    clock = task.Clock()
    agency = Agency(scenario(clock_factor=60.0, double_probability=0.0), clock)
    records = agency.pay(slips(3))
    link = FakeLink(answer=None)

    d = agency.stream(link, records, timeout=TIMEOUT)

    assert link.sent == [build_record(records[0])]
    for n in (1, 2):
        gap = datetime.strptime(records[n].paid_time, "%H%M") - datetime.strptime(
            records[n - 1].paid_time, "%H%M"
        )
        clock.advance(gap.total_seconds() / 60 - 0.001)  # a simulated minute is a real second
        assert len(link.sent) == n
        clock.advance(0.001)
        assert link.sent[n] == build_record(records[n])
    link.waiting[2].callback("00")
    link.waiting[1].callback("10")
    assert not d.called
    link.waiting[0].callback("00")

    assert result(d) == {"00": 2, "10": 1}
    assert agency.refused == [records[1]]


def test_stream_gives_up_after_its_timeout() -> None:
    clock = task.Clock()
    agency = Agency(scenario(double_probability=0.0), clock)
    d = agency.stream(FakeLink(answer=None), agency.pay(slips(2)), timeout=5)
    clock.advance(5)
    assert isinstance(result(d).value, defer.TimeoutError)


def test_void_sends_03_records_for_the_chosen_payments() -> None:
    agency = Agency(scenario(void_probability=0.5, double_probability=0.0))
    agency.pay(slips(20))
    link = FakeLink()

    voided = result(agency.void(link))

    assert voided and [p.fate for p in voided] == [Fate.VOIDED] * len(voided)
    assert [parse_record(r).event_key for r in link.sent] == [p.event_key for p in voided]
    assert {parse_record(r).kind for r in link.sent} == {RecordKind.VOID}
    assert result(agency.void(link, voided)) == []  # already voided: nothing sent again
    assert len(link.sent) == len(voided)


# --- the agency's ledger -------------------------------------------------------------------------


def test_expected_is_what_was_sent() -> None:
    agency = Agency(scenario(void_probability=0.3, double_probability=0.5))
    link = FakeLink()
    records = agency.pay(slips(30))
    result(agency.stream(link, records))
    result(agency.void(link))
    days = sorted({r.paid_on for r in records})
    kakuho = parse_file(agency.confirmation_file(days[-2]))

    voided = {parse_record(r).event_key for r in link.sent if r[1:3] == b"03"}
    confirmed = {r.event_key for r in kakuho.records}
    expected = agency.expected()

    assert voided and confirmed and not voided & confirmed
    assert set(expected.payments) == {r.event_key for r in records}
    for rec in records:
        status = (
            "voided"
            if rec.event_key in voided
            else "confirmed"
            if rec.event_key in confirmed
            else "pending"
        )
        assert expected.payments[rec.event_key] == (status, int(rec.barcode[37:43]))
    live = Counter(r.barcode[2:29] for r in records if r.event_key not in voided)
    assert expected.double_paid == {k for k, n in live.items() if n >= 2}
    assert expected.double_paid <= agency.paid_twice
    numbers = {p.bill_key: p.bill_no for p in agency.payments.values()}
    assert expected.double_paid_bills == {numbers[k] for k in expected.double_paid}

    api = [  # what GET /v1/payments shows for these payments
        {
            "channel": "cvs",
            "status": expected.payments[r.event_key].status,
            "amount": int(r.barcode[37:43]),
            "paid_at": f"{r.paid_on:%Y-%m-%d}T{r.paid_time[:2]}:{r.paid_time[2:]}:00+09:00",
            "store": {"chain": r.chain_code, "store_code": r.store_code},
        }
        for r in records
    ]
    assert api_rows(api) == expected.api_rows()


def test_write_file_renames_a_part_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    renames: list[tuple[str, str]] = []
    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        renames.append((Path(src).name, Path(dst).name))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    inbox = tmp_path / "inbox" / "cvs"

    path = write_file(inbox, "KAKUHO.dat", b"data")

    assert path == inbox / "KAKUHO.dat" and path.read_bytes() == b"data"
    assert renames == [("KAKUHO.dat.part", "KAKUHO.dat")]
    assert [p.name for p in inbox.iterdir()] == ["KAKUHO.dat"]


# --- the agency CSV endpoint -------------------------------------------------------------------


def port_of(port: IListeningPort) -> int:
    host = port.getHost()
    assert isinstance(host, IPv4Address)
    return host.port


async def post(port: IListeningPort, form: dict[str, str]) -> bytes:
    from twisted.internet import reactor  # noqa: TID251 - tests drive the real reactor

    pool = HTTPConnectionPool(reactor, persistent=False)
    url = f"http://127.0.0.1:{port_of(port)}/csv"
    response = await treq.post(url, data=form, pool=pool).addTimeout(TIMEOUT, reactor)
    assert response.code == 200
    body: bytes = await response.content().addTimeout(TIMEOUT, reactor)
    return body


def canonical_keys(records: list[ResultRecord]) -> set[tuple[str, str]]:
    return {
        (
            rec.kind.value,
            to_canonical(rec, raw=build_record(rec), source="t", received_at=RECEIVED).event_key,
        )
        for rec in records
    }


@pytest_twisted.ensureDeferred
async def test_the_csv_endpoint_answers_the_rows_of_the_window() -> None:
    from twisted.internet import reactor  # noqa: TID251

    agency = Agency(scenario(void_probability=0.3, double_probability=0.3))
    records = agency.pay(slips(60))
    voids = agency.void_records(agency.choose_voids())
    days = sorted({r.paid_on for r in records})
    assert len(days) >= 3
    kakuho = parse_file(agency.confirmation_file(days[1]))
    port = await serve_agency_csv(
        reactor, "tcp:0:interface=127.0.0.1", agency, "USER01", "SECRET"
    ).addTimeout(TIMEOUT, reactor)
    try:
        window = {"FROM_DATE": f"{days[1]:%Y%m%d}", "TO_DATE": f"{days[-2]:%Y%m%d}"}
        body = await post(port, {"USER_ID": "USER01", "PW": "SECRET", **window})
        everything = await post(port, {"USER_ID": "USER01", "PW": "SECRET"})
    finally:
        await defer.maybeDeferred(port.stopListening)

    rows = parse_agency_csv(body, source="poll")
    got = {
        (
            row.kind,
            agency_row_to_canonical(row, raw=b"", source="t", received_at=RECEIVED).event_key,
        )
        for row in rows
    }
    sent = [*records, *voids, *kakuho.records]  # the 120-byte records of the same events
    in_window = [r for r in sent if days[1] <= r.paid_on <= days[-2]]
    assert got == canonical_keys(in_window) and len(rows) == len(in_window)
    assert {row.kind for row in rows} == {"01", "02", "03"}
    assert body.decode("cp932").startswith("種別,収納日") and b"\r\n" in body
    assert len(parse_agency_csv(everything)) == len(sent)
    assert agency.csv_requests == [
        CsvRequest(window["FROM_DATE"], window["TO_DATE"], True),
        CsvRequest(None, None, True),
    ]


@pytest_twisted.ensureDeferred
async def test_the_csv_endpoint_answers_the_error_block() -> None:
    from twisted.internet import reactor  # noqa: TID251

    agency = Agency(scenario())
    agency.pay(slips(3))
    port = await serve_agency_csv(
        reactor, "tcp:0:interface=127.0.0.1", agency, "USER01", "SECRET"
    ).addTimeout(TIMEOUT, reactor)
    try:
        wrong = await post(port, {"USER_ID": "USER01", "PW": "WRONG"})
        bad_date = await post(
            port, {"USER_ID": "USER01", "PW": "SECRET", "FROM_DATE": "2026-11-01", "TO_DATE": "x"}
        )
        one_date = await post(port, {"USER_ID": "USER01", "PW": "SECRET", "FROM_DATE": "20261101"})
    finally:
        await defer.maybeDeferred(port.stopListening)

    assert wrong.startswith(b"error:\r\n") and len(wrong.split(b"\r\n")) == 5
    with pytest.raises(AgencyError) as refused:
        parse_agency_csv(wrong)
    assert refused.value.code == "E101" and isinstance(refused.value.at, datetime)
    for body in (bad_date, one_date):
        with pytest.raises(AgencyError) as failed:
            parse_agency_csv(body)
        assert failed.value.code == "E201"
    assert [r.ok for r in agency.csv_requests] == [False, False, False]


# --- the command -------------------------------------------------------------------------------


def test_the_command_has_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "simulators.cvs", "--help"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert out.returncode == 0, out.stderr
    for option in ("--api", "--key", "--link", "--tls-dir", "--inbox", "--seed", "--bills"):
        assert option in out.stdout


class FakeApi(Resource):
    """GET /v1/bills (two bills a page) and POST /v1/bills/{bill_no}/reissue."""

    isLeaf = True

    def __init__(self, count: int) -> None:
        super().__init__()
        self.bills: list[dict[str, Any]] = [
            {"bill_no": f"INV-{n}", "status": "open", "amount": 1000 + n, "reissue": 0}
            | {"cvs": {"barcode": code(n)}}
            for n in range(1, count + 1)
        ]
        self.reissued: list[str] = []
        self.keys: set[str | None] = set()

    def render_GET(self, request: Request) -> bytes:
        self.keys.add((request.getHeader("authorization") or "").removeprefix("Bearer "))
        args = request.args or {}
        start = int(args.get(b"cursor", [b"0"])[0])
        page = self.bills[start : start + 2]
        cursor = str(start + 2) if start + 2 < len(self.bills) else None
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"data": page, "next_cursor": cursor}).encode()

    def render_POST(self, request: Request) -> bytes:
        bill_no = request.path.decode().split("/")[3]
        body = json.loads(request.content.read()) if request.content else {}
        bill = next(b for b in self.bills if b["bill_no"] == bill_no)
        bill["reissue"] += 1
        n = int(bill_no[4:])
        bill["cvs"] = {"barcode": code(n, reissue=bill["reissue"], amount=body["amount"])}
        self.reissued.append(bill_no)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(bill).encode()


async def until(predicate: Callable[[], bool], what: str) -> None:
    from twisted.internet import reactor  # noqa: TID251

    deadline = reactor.seconds() + TIMEOUT
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await task.deferLater(reactor, 0.02)


@pytest_twisted.ensureDeferred
async def test_the_command_pays_voids_and_writes_the_confirmation_file(tmp_path: Path) -> None:
    from twisted.internet import reactor  # noqa: TID251

    certs = make_certs(tmp_path / "tls", now=datetime.now(UTC))
    submitted: list[bytes] = []

    def submit(record: bytes, source: str) -> defer.Deferred[str]:
        submitted.append(record)
        return defer.succeed("00")

    api = FakeApi(7)
    files = TLSFiles(certs["ca"], certs["gateway"], certs["gateway_key"])
    link = await listen_cvs_link(
        reactor, "tcp:0:interface=127.0.0.1", files, submit, 60.0, peers=["cvs-agency"]
    )
    site = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(Site(api))
    factory = link.factory.wrappedFactory  # type: ignore[attr-defined]
    assert isinstance(factory, CvsLinkFactory)
    try:
        options = {
            "--api": f"http://127.0.0.1:{port_of(site)}",
            "--key": "KEY1",
            "--link": f"tcp:127.0.0.1:{port_of(link)}",
            "--tls-dir": str(tmp_path / "tls"),
            "--inbox": str(tmp_path / "inbox"),
            "--seed": "3",
            "--bills": "5",
            "--speed": "0",
            "--double": "0.5",
            "--void": "0.3",
            "--timeout": str(TIMEOUT),
        }
        args = parser().parse_args([word for pair in options.items() for word in pair])
        summary = await defer.Deferred.fromCoroutine(run(reactor, args)).addTimeout(
            TIMEOUT, reactor
        )
        await until(lambda: factory.connections == 0, "the link to close")
    finally:
        await defer.maybeDeferred(link.stopListening)
        await defer.maybeDeferred(site.stopListening)

    kinds = Counter(r[1:3] for r in submitted)
    assert api.keys == {"KEY1"}
    assert summary["bills"] == 5 and summary["paid"] == kinds[b"01"] >= 5
    assert summary["voided"] == kinds[b"03"] and summary["refused"] == 0
    assert summary["reissued"] == len(api.reissued)
    path = Path(summary["file"])
    assert path.parent == tmp_path / "inbox" and not list(path.parent.glob("*.part"))
    kakuho = parse_file(path.read_bytes())
    assert len(kakuho.records) == summary["confirmed"] == summary["paid"] - summary["voided"]
    voided = {parse_record(r).event_key for r in submitted if r[1:3] == b"03"}
    paid = {parse_record(r).event_key for r in submitted if r[1:3] == b"01"}
    assert {r.event_key for r in kakuho.records} == paid - voided
