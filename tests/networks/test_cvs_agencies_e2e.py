"""Issue 16 through the real daemon (twistd subprocess): a center connected to several agencies.

- Two agencies at once, each with its own link and inbox: "gs" holds one code for the whole
  center (``center_code``), "kessai" gives each biller its own (``--cvs-code``). Bills carry
  their agency's company code and their biller's prefix; a 速報 is taken only on its own
  agency's link (another agency's barcode is answered ``10`` and nothing is stored); a 確報 file
  is taken only from its own agency's inbox; every payment carries its agency, and a barcode of
  no bill is still attributed to the biller its prefix names.
- A CSV in the shape of a real agency's published test data (tests/fixtures/cvs/
  agency_real_shape.csv) pulled by the daemon from an HTTP server, into a center configured
  with that agency's codes: every payment attributed, voided, confirmed or flagged as the rows
  say, and nothing counted twice however often it is pulled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.web import server
from twisted.web.resource import Resource

from gateway.app.process import DaemonProcess, admin, admin_json, free_port, http
from gateway.infra.tls import TLSFiles
from gateway.mappers.cvs import barcode as barcodes
from gateway.mappers.cvs.agency import parse_agency_csv
from gateway.mappers.cvs.mapper import RecordKind, ResultRecord, build_file, build_record
from gateway.model import JST
from gateway.store import create_db_engine
from gateway.store.schema import anomalies, bills, collection_messages, payments, refund_cases
from simulators.cvs import write_file
from simulators.cvs_link import AgencyLink, start_agency_link
from tests.conftest import config_text, due

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cvs"
TIMEOUT = 30  # seconds: the bound of any one wait below

#: The single-agency [cvs] of the test configuration, which the agencies below replace.
SINGLE_CVS = '[cvs]\ncompany_code = "987654"\nceiling = 300000\n'


@dataclass
class Agency:
    """One ``[[cvs.agencies]]`` entry of a site: its keys, and its link's port and inbox."""

    id: str
    company_code: str
    keys: str  # the entry's other keys, TOML
    link: bool = True
    inbox: bool = True
    csv: str = ""  # the [cvs.agencies.csv] section's keys, if it is pulled
    link_port: int = field(default_factory=free_port)

    def toml(self, root: Path) -> str:
        text = f'[[cvs.agencies]]\nid = "{self.id}"\ncompany_code = "{self.company_code}"\n'
        text += self.keys
        if self.link:
            text += (
                f'\n[cvs.agencies.link]\nlisten = "tcp:{self.link_port}:interface=127.0.0.1"\n'
                'peers = ["cvs-agency"]\n'
            )
        if self.inbox:
            text += (
                f'\n[cvs.agencies.files]\ninbox = "{root / ("inbox-" + self.id)}"\n'
                "poll_interval = 0.2\n"
            )
        if self.csv:
            text += f"\n[cvs.agencies.csv]\n{self.csv}"
        return text + "\n"


@dataclass
class Site:
    """One configured center (config, certificates, ports, agencies), started as needed."""

    root: Path
    config: Path
    database_url: str
    api_port: int
    metrics_port: int
    tls: Path
    agencies: dict[str, Agency]

    def start(self) -> DaemonProcess:
        return DaemonProcess.start(self.config, self.api_port, self.metrics_port)

    def inbox(self, agency: str) -> Path:
        return self.root / f"inbox-{agency}"

    def agency_tls(self) -> TLSFiles:
        """The development agency certificate (``gateway-admin certs make`` makes only this
        one): every agency's link lets it in, each link takes only its own agency's codes."""
        return TLSFiles(
            self.tls / "ca.pem", self.tls / "cvs-agency.pem", self.tls / "cvs-agency.key"
        )

    def link(self, agency: str) -> AgencyLink:
        from twisted.internet import reactor  # noqa: TID251

        return start_agency_link(
            reactor,
            f"tcp:127.0.0.1:{self.agencies[agency].link_port}",
            self.agency_tls(),
            "gateway",
            retry_delay=0.2,
        )


def make_site(root: Path, database_url: str, agencies: list[Agency], default_agency: str) -> Site:
    """A center with ``agencies`` (``[cvs] default_agency``), migrated, with certificates."""
    root.mkdir(parents=True, exist_ok=True)
    api, metrics, tls = free_port(), free_port(), root / "tls"
    text = config_text(
        database_url,
        api=f"tcp:{api}:interface=127.0.0.1",
        metrics=f"tcp:{metrics}:interface=127.0.0.1",
        public_url=f"http://127.0.0.1:{api}",
        extra=f'[tls]\nca = "{tls}/ca.pem"\ncertificate = "{tls}/gateway.pem"\n'
        f'key = "{tls}/gateway.key"\n',
    )
    assert SINGLE_CVS in text, "tests.conftest.config_text changed its [cvs]"
    cvs = f'[cvs]\ndefault_agency = "{default_agency}"\n\n'
    cvs += "".join(agency.toml(root) for agency in agencies)
    path = root / "gateway.toml"
    path.write_text(text.replace(SINGLE_CVS, cvs), encoding="utf-8")
    admin(path, "migrate")
    admin(path, "certs", "make", str(tls))
    return Site(root, path, database_url, api, metrics, tls, {a.id: a for a in agencies})


def create_biller(site: Site, biller_id: str, *options: str) -> tuple[dict[str, Any], str]:
    """``gateway-admin biller create`` (cvs only) with ``options``; its output and an API key."""
    made = admin_json(
        site.config,
        "biller",
        "create",
        "--id",
        biller_id,
        "--name",
        f"{biller_id} 株式会社",
        "--kana",
        "ﾃｽﾄ",
        "--channels",
        "cvs",
        *options,
    )
    key = admin_json(site.config, "key", "create", "--biller", biller_id)["key"]
    return made, key


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def create_bill(daemon: DaemonProcess, key: str, body: dict[str, Any]) -> dict[str, Any]:
    status, bill, _ = http("POST", daemon.api + "/v1/bills", body, auth(key))
    assert status == 201, bill
    return dict(bill)


def record(
    code: str,
    kind: RecordKind = RecordKind.PRELIMINARY,
    *,
    store: str = "0000001",
    paid_on: date | None = None,
    transfer: date | None = None,
) -> ResultRecord:
    day = paid_on or datetime.now(JST).date()
    return ResultRecord(
        kind=kind,
        paid_on=day,
        paid_time="1030",
        barcode=code,
        store_code=store,
        customer_segment="  ",
        data_date=transfer or day,
        transfer_date=transfer,
        accounting_date=None,
        chain_code="000010",
    )


def unissued(company_code: str, prefix: str, amount: int) -> str:
    """A barcode of the biller whose prefix this is, for a serial no bill was issued with."""
    serial = "9" * (21 - len(prefix))
    return barcodes.build(
        company_code=company_code,
        free_field=prefix + serial,
        reissue=0,
        due=None,
        stamp=False,
        amount=amount,
    ).digits


def stored(database_url: str) -> dict[str, dict[str, Any]]:
    """Every payment by event key: biller, bill, agency, status, amount."""
    engine = create_db_engine(database_url, 1)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    payments.c.event_key,
                    payments.c.biller_id,
                    bills.c.bill_no,
                    payments.c.agency,
                    payments.c.status,
                    payments.c.amount,
                ).select_from(payments.outerjoin(bills, payments.c.bill_id == bills.c.id))
            ).all()
    finally:
        engine.dispose()
    return {r.event_key: dict(r._mapping) for r in rows}


def table_rows(database_url: str, table: Any) -> list[dict[str, Any]]:
    engine = create_db_engine(database_url, 1)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(table))]
    finally:
        engine.dispose()


async def settled(inbox: Path, name: str) -> tuple[str, str]:
    """Wait until the daemon has moved ``name`` out of ``inbox``: (done|rejected, report)."""
    from twisted.internet import reactor  # noqa: TID251

    for _ in range(TIMEOUT * 10):
        for where in ("done", "rejected"):
            report = inbox / where / (name + ".report.txt")
            if report.exists():
                return where, report.read_text(encoding="utf-8")
        await deferLater(reactor, 0.1)
    raise AssertionError(f"{name} was not taken from {inbox}")


async def acks(link: AgencyLink, records: list[ResultRecord]) -> list[str]:
    """Send ``records`` on ``link``; their final acks, in order."""
    from twisted.internet import reactor  # noqa: TID251

    sent = [link.send(build_record(r)) for r in records]
    done: Deferred[list[tuple[bool, str]]] = DeferredList(
        sent, fireOnOneErrback=True, consumeErrors=True
    )
    done.addTimeout(TIMEOUT, reactor)
    return [result for _, result in await done]


# --- two agencies at once -------------------------------------------------------------------

GS = "gs"
KESSAI = "kessai"


def two_agencies(root: Path, database_url: str) -> Site:
    return make_site(
        root,
        database_url,
        [
            Agency(GS, "929023", 'assigned_by = "agency"\ncenter_code = "25207"\n'),
            Agency(KESSAI, "987654", 'assigned_by = "agency"\n'),
        ],
        default_agency=GS,
    )


@pytest_twisted.ensureDeferred
async def test_two_agencies_each_take_only_their_own_barcodes(
    tmp_path: Path, database_url: str
) -> None:
    """gs (one code for the center) and kessai (a code per biller) side by side: each biller's
    bills carry its agency's company code and its prefix; gs's 速報 is taken on gs's link (00,
    stored as gs's) and refused on kessai's (10, nothing stored); gs's 確報 file is refused in
    kessai's inbox, naming each line's company code, and taken in gs's; a barcode of no bill is
    attributed to the biller its prefix names, on either agency."""
    site = await deferToThread(two_agencies, tmp_path, database_url)
    gas, gas_key = await deferToThread(create_biller, site, "gas", "--cvs-agency", GS)
    water, water_key = await deferToThread(create_biller, site, "water")  # the default: gs
    school, school_key = await deferToThread(
        create_biller, site, "school", "--cvs-agency", KESSAI, "--cvs-code", "31415"
    )
    assert gas["cvs"] == {"agency": GS, "company_code": "929023", "prefix": "25207" + gas["code"]}
    assert water["cvs"] == {
        "agency": GS,
        "company_code": "929023",
        "prefix": "25207" + water["code"],
    }
    assert school["cvs"] == {"agency": KESSAI, "company_code": "987654", "prefix": "31415"}
    assert len({gas["cvs"]["prefix"], water["cvs"]["prefix"]}) == 2

    daemon = site.start()
    links: list[AgencyLink] = []
    try:
        await deferToThread(daemon.wait, "/readyz")
        issued: dict[str, list[dict[str, Any]]] = {}
        for made, key in ((gas, gas_key), (water, water_key), (school, school_key)):
            issued[made["biller_id"]] = [
                await deferToThread(
                    create_bill,
                    daemon,
                    key,
                    {
                        "bill_no": f"{made['biller_id']}-{n}",
                        "amount": 1000 + n,
                        "due_date": due(30),
                        "channels": ["cvs"],
                    },
                )
                for n in range(3)
            ]
        for made in (gas, water, school):
            for bill in issued[made["biller_id"]]:
                code = bill["cvs"]["barcode"]
                assert code[2:8] == made["cvs"]["company_code"], bill
                assert code[8:29].startswith(made["cvs"]["prefix"]), bill
                assert barcodes.parse(code).amount == bill["amount"]
        gas_codes = [b["cvs"]["barcode"] for b in issued["gas"]]
        school_codes = [b["cvs"]["barcode"] for b in issued["school"]]

        gs_link, kessai_link = site.link(GS), site.link(KESSAI)
        links += [gs_link, kessai_link]
        # gs's barcodes on kessai's link: refused for good, nothing stored
        foreign = [record(gas_codes[0], store="0000009"), record(gas_codes[1], store="0000009")]
        assert await acks(kessai_link, foreign) == ["10", "10"]
        assert await deferToThread(stored, database_url) == {}
        # each on its own link: stored as that agency's
        lost_gas = unissued("929023", gas["cvs"]["prefix"], 2500)
        lost_school = unissued("987654", school["cvs"]["prefix"], 3500)
        gs_records = [record(gas_codes[0]), record(issued["water"][0]["cvs"]["barcode"])]
        gs_records.append(record(lost_gas))
        kessai_records = [record(school_codes[0]), record(lost_school)]
        assert await acks(gs_link, gs_records) == ["00"] * 3
        assert await acks(kessai_link, kessai_records) == ["00"] * 2
        # a kessai barcode on gs's link is refused the same way
        assert await acks(gs_link, [record(school_codes[1], store="0000009")]) == ["10"]
        log = daemon.output()  # each refusal names the link's agency and the code it carried
        assert log.count("cvs link of agency kessai: record refused") == 2, log
        assert log.count("cvs link of agency gs: record refused") == 1, log
        assert "'929023'" in log and "'987654'" in log

        got = await deferToThread(stored, database_url)
        assert {k: (p["biller_id"], p["bill_no"], p["agency"]) for k, p in got.items()} == {
            gs_records[0].event_key: ("gas", "gas-0", GS),
            gs_records[1].event_key: ("water", "water-0", GS),
            gs_records[2].event_key: ("gas", None, GS),  # no bill: attributed by its prefix
            kessai_records[0].event_key: ("school", "school-0", KESSAI),
            kessai_records[1].event_key: ("school", None, KESSAI),
        }
        assert {p["status"] for p in got.values()} == {"pending"}
        cases = await deferToThread(table_rows, database_url, refund_cases)
        assert sorted((c["biller_id"], c["reason"]) for c in cases) == [
            ("gas", "unknown_bill"),
            ("school", "unknown_bill"),
        ]

        # gs's 確報 (the 速報 above, and a bill paid without one) into kessai's inbox: refused
        today = datetime.now(JST).date()
        confirmations = [
            record(gas_codes[0], RecordKind.CONFIRMATION, transfer=today),
            record(gas_codes[2], RecordKind.CONFIRMATION, transfer=today),
        ]
        data = build_file(today, "929023", "ｼﾞｰｴｽ", confirmations)
        write_file(site.inbox(KESSAI), "gs-kakuho.dat", data)
        where, report = await settled(site.inbox(KESSAI), "gs-kakuho.dat")
        assert where == "rejected", report
        for line in (1, 2, 3):  # the header and both records, each with the code it carries
            assert f"record {line}, field company_code" in report, report
        assert "'929023'" in report and "kessai" in report, report
        assert await deferToThread(stored, database_url) == got  # nothing of it applied
        # the same file in gs's own inbox: taken
        write_file(site.inbox(GS), "gs-kakuho.dat", data)
        where, report = await settled(site.inbox(GS), "gs-kakuho.dat")
        assert where == "done", report
        after = await deferToThread(stored, database_url)
        assert after[confirmations[0].event_key]["status"] == "confirmed"
        assert after[confirmations[1].event_key] | {"status": None} == {
            "event_key": confirmations[1].event_key,
            "biller_id": "gas",
            "bill_no": "gas-2",
            "agency": GS,
            "status": None,
            "amount": 1002,
        }
        assert after[confirmations[1].event_key]["status"] == "confirmed"
        assert len(after) == len(got) + 1

        # what the bills' owner sees over the API
        status, listed, _ = await deferToThread(
            http, "GET", daemon.api + "/v1/bills?limit=100", None, auth(gas_key)
        )
        assert status == 200
        assert {b["bill_no"]: b["status"] for b in listed["data"]} == {
            "gas-0": "confirmed",
            "gas-1": "open",
            "gas-2": "confirmed",
        }
    finally:
        for link in links:
            await link.stop()
        await deferToThread(daemon.stop)
    messages = table_rows(database_url, collection_messages)
    assert len(messages) == 7  # 3 + 2 速報, 2 確報: none of the refused ones
    assert table_rows(database_url, anomalies) == []


# --- the real shape of an agency's published test CSV -----------------------------------------

REAL_SHAPE = FIXTURES / "agency_real_shape.csv"
CSV_USER, CSV_PASSWORD = "CENTER01", "csv-test-password"
#: The bills of the fixture's client, in the order they are created (serials 1, 2, 3, ...):
#: (bill_no, amount). The fixture also pays serial 99, which no bill was issued with.
REAL_BILLS = [
    ("R-0001", 1_000),
    ("R-0002", 2_160),
    ("R-0003", 54_000),  # a revenue stamp
    ("R-0004", 3_300),
    ("R-0005", 5_500),
    ("R-0006", 800),
    ("R-0007", 4_400),
]


class FixedCsv(Resource):
    """The agency's CSV endpoint, answering every POST with the same bytes once ``open`` (503
    before: the center's bills are not issued yet); a wrong user or password gets 403."""

    isLeaf = True

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body
        self.open = False
        self.windows: list[tuple[str, str]] = []  # (FROM_DATE, TO_DATE) of every CSV served

    def render_POST(self, request: server.Request) -> bytes:
        args: dict[bytes, list[bytes]] = request.args or {}
        form = {k.decode(): v[0].decode() for k, v in args.items()}
        if not self.open:
            request.setResponseCode(503)
            return b"not yet"
        if (form.get("USER_ID"), form.get("PW")) != (CSV_USER, CSV_PASSWORD):
            request.setResponseCode(403)
            return b"forbidden"
        self.windows.append((form.get("FROM_DATE", ""), form.get("TO_DATE", "")))
        request.setHeader(b"content-type", b"text/csv; charset=Shift_JIS")
        return self.body


def metric(daemon: DaemonProcess, name: str, **labels: str) -> float:
    """The sum of the daemon's /metrics samples ``name`` whose labels include ``labels``."""
    status, text, _ = http("GET", daemon.metrics + "/metrics")
    assert status == 200
    return sum(
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def api_payments(daemon: DaemonProcess, key: str) -> list[dict[str, Any]]:
    status, page, _ = http("GET", daemon.api + "/v1/payments?limit=100", None, auth(key))
    assert status == 200 and page["next_cursor"] is None, page
    return list(page["data"])


@pytest_twisted.ensureDeferred
async def test_a_real_shape_agency_csv_pulled_into_a_center_with_its_codes(
    tmp_path: Path, database_url: str
) -> None:
    """The agency's published test data has its maker code 929023, the code 25207 it assigned
    to its client, 16 digits of the client's own and 999999 (no deadline). A center configured
    with that agency (a code per biller, slips without a deadline) issues exactly those
    barcodes to the client created with --cvs-code 25207, pulls the CSV over HTTP several times,
    and finds every payment attributed to the client (the unissued serial too), voided where a
    03 follows, confirmed where a 02 follows or a post-office 12 says so, the post office's 22
    recorded as an amount_correction anomaly that changes nothing, each row stored once."""
    from twisted.internet import reactor  # noqa: TID251

    data = REAL_SHAPE.read_bytes()
    rows = parse_agency_csv(data)
    assert {r.barcode[2:8] for r in rows} == {"929023"}
    assert {r.barcode[8:13] for r in rows} == {"25207"}
    assert {r.barcode[30:36] for r in rows} == {"999999"}
    assert {r.kind for r in rows} == {"01", "02", "03", "12", "22"}
    assert {r.chain_code for r in rows} >= {"910", "911"}
    serial = {r.barcode: int(r.barcode[13:29]) for r in rows}

    resource = FixedCsv(data)
    endpoint = serverFromString(reactor, "tcp:0:interface=127.0.0.1")
    port = await endpoint.listen(server.Site(resource))
    csv = (
        f'url = "http://127.0.0.1:{port.getHost().port}/payments"\n'
        f'user_id = "{CSV_USER}"\npassword = "{CSV_PASSWORD}"\n'
        "interval = 0.3\nmax_backoff = 0.6\nlookback_days = 40\n"
    )
    agency = Agency(
        GS,
        "929023",
        'assigned_by = "agency"\nno_deadline = true\n',
        link=False,
        inbox=False,
        csv=csv,
    )
    daemon = None
    try:
        site = await deferToThread(make_site, tmp_path, database_url, [agency], GS)
        client, key = await deferToThread(
            create_biller, site, "client", "--cvs-agency", GS, "--cvs-code", "25207"
        )
        assert client["cvs"] == {"agency": GS, "company_code": "929023", "prefix": "25207"}
        daemon = site.start()
        await deferToThread(daemon.wait, "/readyz")
        issued = [
            await deferToThread(
                create_bill, daemon, key, {"bill_no": no, "amount": amount, "channels": ["cvs"]}
            )
            for no, amount in REAL_BILLS
        ]
        assert [b["due_date"] for b in issued] == [None] * len(REAL_BILLS)
        by_serial = {n: code for code, n in serial.items()}
        assert [b["cvs"]["barcode"] for b in issued] == [
            by_serial[n] for n in range(1, len(REAL_BILLS) + 1)
        ], "the center does not issue the agency's barcodes (serials 1, 2, 3, ...?)"
        bill_of = {b["cvs"]["barcode"]: b["bill_no"] for b in issued}

        resource.open = True
        for _ in range(TIMEOUT * 10):
            ok = await deferToThread(metric, daemon, "gateway_cvs_agency_polls_total", result="ok")
            if ok >= 3:
                break
            await deferLater(reactor, 0.1)
        else:
            raise AssertionError(f"fewer than 3 polls applied:\n{daemon.output()}")
        assert (
            await deferToThread(metric, daemon, "gateway_cvs_agency_polls_total", result="refused")
            == 0
        )
        seen = await deferToThread(api_payments, daemon, key)
        status, listed, _ = await deferToThread(
            http, "GET", daemon.api + "/v1/bills?limit=100", None, auth(key)
        )
        assert status == 200
        duplicates = await deferToThread(
            metric, daemon, "gateway_ingest_messages_total", channel="cvs", outcome="duplicate"
        )
        log = daemon.output()
    finally:
        if daemon is not None:
            await deferToThread(daemon.stop)
        await port.stopListening()
    assert len(resource.windows) >= 3
    assert all(re.fullmatch(r"[0-9]{8}", d) for w in resource.windows for d in w), resource.windows
    assert CSV_PASSWORD not in log

    got = stored(database_url)
    expected_status = {
        "R-0001": "confirmed",  # 01, then 02
        "R-0002": "voided",  # 01, then 03
        "R-0003": "pending",  # 01 only
        "R-0004": "confirmed",  # post-office 12 (and its 22)
        "R-0005": "confirmed",  # post-office 12 at the other post-office code
        "R-0006": "confirmed",  # 02 without a 01
        "R-0007": "confirmed",  # 01, then 02 (a payment app)
        None: "pending",  # serial 99: no bill, still the client's
    }
    keys = {r.event_key: r for r in rows}
    assert set(got) == set(keys)  # one payment per payment, whatever the rows and polls
    assert {
        (bill_of.get(keys[k].barcode), p["bill_no"], p["status"], p["biller_id"], p["agency"])
        for k, p in got.items()
    } == {(no, no, status, "client", GS) for no, status in expected_status.items()}
    assert {serial[keys[k].barcode] for k, p in got.items() if p["bill_no"] is None} == {99}
    post_office = next(r for r in rows if r.kind == "12" and r.chain_code == "910")
    assert got[post_office.event_key]["amount"] == 3_300  # the 22's 3,000 is not applied

    found = table_rows(database_url, anomalies)
    assert [(a["kind"], a["event_key"]) for a in found] == [
        ("amount_correction", post_office.event_key)
    ]
    assert "3000 yen" in found[0]["detail"]
    assert len(table_rows(database_url, collection_messages)) == len(rows)  # each row once
    assert duplicates >= 2 * len(rows)  # the second and third polls brought every row again
    cases = table_rows(database_url, refund_cases)
    assert [(c["biller_id"], c["reason"], c["amount"]) for c in cases] == [
        ("client", "unknown_bill", 1_200)
    ]

    # what the client sees: its bills (the voided one open again: it has no deadline to pass),
    # its payments where they were made, the post office's transfer date
    assert {b["bill_no"]: b["status"] for b in listed["data"]} == {
        "R-0001": "confirmed",
        "R-0002": "open",
        "R-0003": "paid",
        "R-0004": "confirmed",
        "R-0005": "confirmed",
        "R-0006": "confirmed",
        "R-0007": "confirmed",
    }
    assert sorted((p["bill_no"] or "", p["status"]) for p in seen) == sorted(
        (no or "", status) for no, status in expected_status.items()
    )
    assert {p["agency"] for p in seen} == {"gs"}  # the API says whose money each one is
    paid_at_post_office = [p for p in seen if p["store"]["chain"] == "000910"]
    assert [(p["bill_no"], p["transfer_date"]) for p in paid_at_post_office] == [
        ("R-0004", "2026-11-10")
    ]
