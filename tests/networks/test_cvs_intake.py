"""CVS result files into the ledger: the shared vector, by hand, twice, in overlapping halves,
and through the watched inbox of the running service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import insert, select
from twisted.internet.task import deferLater

from gateway.config import load_config
from gateway.mappers.cvs import barcode
from gateway.mappers.cvs.mapper import build_file, parse_file
from gateway.model import JST
from gateway.store import create_db_engine
from gateway.store.schema import anomalies, bill_slips, bills, collection_messages, payments
from tests.conftest import Running, admin, config_text, onboard

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cvs"
VECTOR = FIXTURES / "result_file.txt"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())["result_file.txt"]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=JST)


def seed_vector_bills(url: str) -> None:
    """The vector's barcodes belong to billers 00001 and 00002, bills with serials 1234 and 7:
    store exactly those bills (row id = serial), with the slips the barcodes describe."""
    engine = create_db_engine(url, 1)
    with engine.begin() as conn:
        for payment in EXPECTED["payments"]:
            code = barcode.parse(payment["barcode"])
            biller = {"00001": "acme", "00002": "beta"}[code.free_field[:5]]
            serial = int(code.free_field[5:])
            conn.execute(
                insert(bills).values(
                    id=serial,
                    biller_id=biller,
                    bill_no=f"V-{serial}",
                    amount=code.amount,
                    due_date=code.due,
                    channels="cvs",
                    taxable=False,
                    tax_amount=0,
                    status="open",
                    version=1,
                    reissue=code.reissue,
                    double_paid=False,
                    late=False,
                    barcode=code.digits,
                    cvs_bill_key=code.bill_key,
                    stamp=code.stamp,
                    page_token=f"tok-{serial}",
                    fingerprint="f",
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
            conn.execute(
                insert(bill_slips).values(
                    bill_id=serial,
                    reissue=code.reissue,
                    barcode=code.digits,
                    amount=code.amount,
                    due_date=code.due,
                    stamp=code.stamp,
                    issued_at=NOW,
                )
            )
    engine.dispose()


def ledger(url: str) -> dict[str, Any]:
    engine = create_db_engine(url, 1)
    with engine.connect() as conn:
        pays = {r.event_key: (r.status, r.transfer_date) for r in conn.execute(select(payments))}
        states = {r.bill_no: r.status for r in conn.execute(select(bills))}
        messages = len(conn.execute(select(collection_messages)).all())
        odd = [r.kind for r in conn.execute(select(anomalies))]
    engine.dispose()
    return {"payments": pays, "bills": states, "messages": messages, "anomalies": odd}


def expected_payments() -> dict[str, tuple[str, date | None]]:
    return {
        "".join(p["event_key"]): (
            p["final_status"],
            date.fromisoformat(p["transfer_date"]) if "transfer_date" in p else None,
        )
        for p in EXPECTED["payments"]
    }


@pytest.fixture
def configured(tmp_path: Path, migrated_url: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(migrated_url), encoding="utf-8")
    onboard(path, "acme", "cvs")
    onboard(path, "beta", "cvs")
    seed_vector_bills(migrated_url)
    return path


def test_the_vector_file_gives_what_expected_json_says(configured: Path, migrated_url: str) -> None:
    result = admin(configured, "import", "cvs", str(VECTOR))
    assert result["records"] == EXPECTED["data_records"] == 4
    assert result["outcomes"] == {"applied": 4}
    state = ledger(migrated_url)
    assert state["payments"] == expected_payments()
    assert state["bills"] == {"V-1234": "confirmed", "V-7": "open"}
    assert state["anomalies"] == []

    again = admin(configured, "import", "cvs", str(VECTOR))
    assert again["outcomes"] == {"duplicate": 4}
    assert ledger(migrated_url) == state


def test_two_overlapping_halves_give_the_same_ledger(
    configured: Path, migrated_url: str, tmp_path: Path
) -> None:
    parsed = parse_file(VECTOR.read_bytes())
    first = build_file(
        parsed.file_date, parsed.company_code, parsed.agency_name, parsed.records[:3]
    )
    second = build_file(
        parsed.file_date,
        parsed.company_code,
        parsed.agency_name,
        parsed.records[1:],
        separator=b"",
        eof=True,
    )
    (tmp_path / "a.txt").write_bytes(first)
    (tmp_path / "b.txt").write_bytes(second)
    assert admin(configured, "import", "cvs", str(tmp_path / "a.txt"))["outcomes"] == {"applied": 3}
    assert admin(configured, "import", "cvs", str(tmp_path / "b.txt"))["outcomes"] == {
        "duplicate": 2,
        "applied": 1,
    }
    state = ledger(migrated_url)
    assert state["payments"] == expected_payments()
    assert state["messages"] == 4


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("invalid_*.txt")))
def test_an_invalid_file_is_refused_whole(configured: Path, migrated_url: str, name: str) -> None:
    from gateway.app.admin.commands import main

    assert main(["-c", str(configured), "import", "cvs", str(FIXTURES / name)]) == 1
    assert ledger(migrated_url)["messages"] == 0


@pytest_twisted.async_yield_fixture
async def watching(tmp_path: Path, migrated_url: str) -> AsyncIterator[Running]:
    from twisted.internet import reactor  # noqa: TID251

    from gateway.app.service import make_service

    path = tmp_path / "gateway.toml"
    path.write_text(
        config_text(migrated_url, extra='[cvs.files]\ninbox = "inbox"\npoll_interval = 0.1\n'),
        encoding="utf-8",
    )
    onboard(path, "acme", "cvs")
    onboard(path, "beta", "cvs")
    seed_vector_bills(migrated_url)
    config = load_config(path)
    top = make_service(config, reactor)
    top.startService()
    api = await top.getServiceNamed("api").listening  # type: ignore[attr-defined]
    try:
        yield Running(config, path, f"http://127.0.0.1:{api.getHost().port}", "")
    finally:
        await top.stopService()


async def settle(inbox: Path, name: str) -> Path:
    from twisted.internet import reactor  # noqa: TID251

    for _ in range(100):
        for folder in ("done", "rejected"):
            if (inbox / folder / name).exists():
                return inbox / folder
        await deferLater(reactor, 0.05)
    raise AssertionError(f"{name} was not taken from the inbox")


@pytest_twisted.ensureDeferred
async def test_the_inbox_applies_files_and_sets_refused_ones_aside(watching: Running) -> None:
    inbox = watching.config.source.parent / "inbox"  # type: ignore[union-attr]
    url = watching.config.database.url
    (inbox / "bad.txt").write_bytes((FIXTURES / "invalid_trailer_sum.txt").read_bytes())
    assert (await settle(inbox, "bad.txt")).name == "rejected"
    report = (inbox / "rejected" / "bad.txt.report.txt").read_text()
    assert "nothing of this file was applied" in report and "trailer" in report
    assert ledger(url)["messages"] == 0

    (inbox / ".upload.part").write_bytes(VECTOR.read_bytes())
    (inbox / ".upload.part").rename(inbox / "kakuho-20261202.txt")
    assert (await settle(inbox, "kakuho-20261202.txt")).name == "done"
    assert (
        "applied: 4 message(s)" in (inbox / "done" / "kakuho-20261202.txt.report.txt").read_text()
    )
    assert ledger(url)["payments"] == expected_payments()

    (inbox / "kakuho-20261202.txt").write_bytes(VECTOR.read_bytes())  # the same file again
    assert (await settle(inbox, "kakuho-20261202.txt.1")).name == "done"
    assert "duplicate 4" in (inbox / "done" / "kakuho-20261202.txt.1.report.txt").read_text()
    assert ledger(url)["messages"] == 4


@pytest_twisted.ensureDeferred
async def test_agency_csv_and_result_file_name_the_same_payments(
    configured: Path, migrated_url: str
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    from gateway.billing.bills import bill_json
    from gateway.ingest import Ingest
    from gateway.networks.cvs import CvsNetwork
    from gateway.networks.issuer import Issuer
    from gateway.networks.registry import REGISTRY
    from gateway.store import Store

    config = load_config(configured)
    assert config.cvs is not None
    store = Store.from_url(migrated_url, reactor, 2)
    store.start()
    try:
        ingest = Ingest(
            store,
            reactor,
            lambda b: bill_json(b, config.api.public_url, Issuer(config)),
            REGISTRY.finders(config),
        )
        network = CvsNetwork(config.cvs.agency(None), None, ingest, reactor)
        result = await network.apply_agency_csv((FIXTURES / "agency.csv").read_bytes(), "poll:test")
        # the four payments of the vector, a post-office transfer (12) for an unknown bill of
        # an unknown biller, and its correction (22), kept for an operator
        assert result.accepted, result.report
        assert "applied 4" in result.report and "unknown_bill 1" in result.report
        assert "anomaly 1" in result.report
        refused = await network.apply_agency_csv(
            (FIXTURES / "agency_error.csv").read_bytes(), "poll:test"
        )
        assert not refused.accepted and "E0101" in refused.report
    finally:
        store.stop()
    state = ledger(migrated_url)
    post_office = {k: v for k, v in state["payments"].items() if k not in expected_payments()}
    assert {k: v for k, v in state["payments"].items() if k in expected_payments()} == (
        expected_payments()
    )
    assert list(post_office.values()) == [("confirmed", date(2026, 12, 9))]
    assert state["anomalies"] == ["amount_correction"]
    assert admin(configured, "import", "cvs", str(VECTOR))["outcomes"] == {"duplicate": 4}


@pytest_twisted.ensureDeferred
async def test_the_daemon_polls_the_agency_csv_into_the_ledger(
    tmp_path: Path, migrated_url: str
) -> None:
    """[cvs.agency] wired into make_service: the service polls the simulated agency's CSV
    endpoint and the payments it lists land in the ledger, once, however often it polls."""
    from twisted.internet import reactor  # noqa: TID251

    from gateway.app.service import make_service
    from simulators.cvs import Agency, Scenario, Slip, serve_agency_csv

    path = tmp_path / "gateway.toml"
    path.write_text(config_text(migrated_url), encoding="utf-8")
    onboard(path, "acme", "cvs")
    onboard(path, "beta", "cvs")
    seed_vector_bills(migrated_url)
    agency = Agency(
        Scenario(seed=1, void_probability=0, double_probability=0, clock_factor=0), reactor
    )
    agency.pay([Slip(p["barcode"]) for p in EXPECTED["payments"]])
    port = await serve_agency_csv(reactor, "tcp:0:interface=127.0.0.1", agency, "GW", "pw")
    url = f"http://127.0.0.1:{port.getHost().port}/csv"
    path.write_text(
        config_text(
            migrated_url,
            extra=(
                f'[cvs.agency]\nurl = "{url}"\nuser_id = "GW"\npassword = "pw"\ninterval = 0.2\n'
            ),
        ),
        encoding="utf-8",
    )
    top = make_service(load_config(path), reactor)
    top.startService()
    try:
        for _ in range(100):
            if sum(1 for r in agency.csv_requests if r.ok) >= 3:
                break
            await deferLater(reactor, 0.05)
    finally:
        await top.stopService()
        await port.stopListening()
    assert sum(1 for r in agency.csv_requests if r.ok) >= 3  # polled again and again
    state = ledger(migrated_url)
    assert sorted(state["payments"]) == sorted(agency.payments)
    assert {status for status, _ in state["payments"].values()} == {"pending"}
    assert state["messages"] == len(agency.payments)  # re-polled rows changed nothing
