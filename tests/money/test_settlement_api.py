"""Contracts, settlements, statements and reports through the real service and gateway-admin.

Payments are back-dated into last month (through the ingest core, as the networks deliver them),
so that last month is a closed period whatever day the suite runs.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest_twisted
import treq

from gateway.billing.bills import bill_json
from gateway.ingest import Ingest, Received
from gateway.model import JST, CollectionEvent, MessageKind
from gateway.networks.issuer import Issuer
from gateway.networks.registry import REGISTRY
from gateway.store import create_db_engine
from gateway.store.mpn import record_day_close
from tests.conftest import Biller, Running, admin, due
from tests.helpers import cvs_event
from tests.render.test_receipts import text_of, write

TODAY = datetime.now(JST).date()
MONTH = (TODAY.replace(day=1) - timedelta(days=1)).replace(day=1)  # last month's first day
PLAN = {
    "cycle": "monthly",
    "payout_days": 3,
    "settlement_fee": 500,
    "tax_rate": 10,
    "tax_rounding": "floor",
    "channels": {
        "cvs": {"per_payment": 60, "per_uncollected": 10, "stamp_charge": 200},
        "payeasy": {"per_payment": 80},
    },
}


def at(day: int, hour: int = 12) -> datetime:
    return datetime(MONTH.year, MONTH.month, day, hour, tzinfo=JST)


def admin_key(gateway: Running) -> Biller:
    made = admin(gateway.config_path, "key", "create", "--admin")
    return Biller("operator", "", made["key"])


async def new_bill(gateway: Running, who: Biller, bill_no: str, amount: int) -> dict[str, Any]:
    body = {
        "bill_no": bill_no,
        "amount": amount,
        "due_date": due(20),
        "channels": ["cvs"],
        "customer": {"customer_no": "C-" + bill_no, "name": "山田 太郎"},
    }
    status, bill, _ = await gateway.request("POST", "/v1/bills", who, body)
    assert status == 201, bill
    return bill


def pay(gateway: Running, barcode: str, paid_at: datetime, confirmed_at: datetime | None) -> None:
    """A store payment's 速報 and, when ``confirmed_at`` is given, its 確報."""
    config = gateway.config
    ingest = Ingest(
        None,
        None,
        partial(bill_json, public_url=config.api.public_url, issuer=Issuer(config)),
        REGISTRY.finders(config),
    )

    def event(kind: MessageKind) -> CollectionEvent:
        return cvs_event(barcode, kind, paid_at, transfer_date=paid_at.date() + timedelta(days=10))

    engine = create_db_engine(config.database.url, 1)
    with engine.begin() as conn:
        ingest.apply(conn, Received(event(MessageKind.PRELIMINARY)), paid_at, paid_at.date())
    if confirmed_at is not None:
        with engine.begin() as conn:
            ingest.apply(
                conn, Received(event(MessageKind.CONFIRMATION)), confirmed_at, confirmed_at.date()
            )
    engine.dispose()


@pytest_twisted.ensureDeferred
async def test_a_biller_reads_its_settlement_and_statements(
    gateway: Running, tmp_path: Path
) -> None:
    school = gateway.onboard("school")
    other = gateway.onboard("other")
    operator = admin_key(gateway)
    path = f"/v1/billers/school/fee-plans/{MONTH}"

    status, plan, _ = await gateway.request("PUT", path, operator, PLAN)
    assert status == 201, plan
    assert plan["effective_from"] == MONTH.isoformat()
    assert plan["channels"]["cvs"] == {
        "per_payment": 60,
        "per_uncollected": 10,
        "stamp_charge": 200,
    }
    assert (await gateway.request("PUT", path, operator, PLAN))[0] == 200  # the same again
    status, problem, _ = await gateway.request("PUT", path, school, PLAN)
    assert status == 403  # a biller cannot set its own fees
    status, problem, _ = await gateway.request(
        "PUT", path, operator, {**PLAN, "cycle": "weekly", "payout_days": 99}
    )
    assert status == 422 and {e["field"] for e in problem["errors"]} == {"cycle", "payout_days"}
    status, mine, _ = await gateway.request("GET", "/v1/fee-plans", school)
    assert status == 200 and [p["effective_from"] for p in mine["plans"]] == [MONTH.isoformat()]

    small = await new_bill(gateway, school, "S-1", 5_400)
    large = await new_bill(gateway, school, "S-2", 80_000)
    pending = await new_bill(gateway, school, "S-3", 1_000)
    assert large["cvs"]["stamp"] is True
    pay(gateway, small["cvs"]["barcode"], at(5), at(8))
    pay(gateway, large["cvs"]["barcode"], at(6, 9), at(9))
    pay(gateway, pending["cvs"]["barcode"], at(7), None)

    made = admin(gateway.config_path, "settle")
    assert [(s["biller_id"], s["payout"]) for s in made["created"]] == [
        ("school", 85_400 - 120 - 500 - 62 - 200)
    ]
    assert admin(gateway.config_path, "settle")["created"] == []  # idempotent

    status, page, _ = await gateway.request("GET", "/v1/settlements", school)
    assert status == 200 and len(page["data"]) == 1 and page["next_cursor"] is None
    summary = page["data"][0]
    assert summary["period"] == {
        "start": MONTH.isoformat(),
        "end": (TODAY.replace(day=1) - timedelta(days=1)).isoformat(),
    }
    sid = summary["settlement_id"]
    status, settlement, _ = await gateway.request("GET", f"/v1/settlements/{sid}", school)
    assert status == 200
    assert sum(line["amount"] for line in settlement["lines"]) == settlement["payout"] == 84_518
    assert settlement["payments_count"] == 2 and settlement["stamp_duty"] == 200
    assert (await gateway.request("GET", f"/v1/settlements/{sid}", other))[0] == 404
    assert (await gateway.request("GET", "/v1/settlements", other))[1]["data"] == []
    assert (await gateway.request("GET", "/v1/settlements/stl_nope", school))[0] == 404

    status, problem, _ = await gateway.request(
        "GET", f"/v1/settlements/{sid}/statement.csv?encoding=latin-1", school
    )
    assert status == 400 and problem["errors"][0]["field"] == "encoding"

    response = await treq.get(
        gateway.api + f"/v1/settlements/{sid}/statement.csv?encoding=shift_jis",
        headers=school.headers,
    )
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["text/csv; charset=shift_jis"]
    rows = list(csv.reader(io.StringIO((await response.content()).decode("cp932"))))
    total_row = [r for r in rows if len(r) > 1 and r[1] == "合計"]
    assert total_row and total_row[0][-1] == "84518"
    response = await treq.get(gateway.api + f"/v1/settlements/{sid}/payments.csv", school.headers)
    detail = (await response.content()).decode("utf-8-sig")
    amounts = [int(r["amount"]) for r in csv.DictReader(io.StringIO(detail))]
    assert sorted(amounts) == [5_400, 80_000]
    response = await treq.get(gateway.api + f"/v1/settlements/{sid}/statement.pdf", school.headers)
    pdf = await response.content()
    assert response.code == 200 and pdf.startswith(b"%PDF")
    text = text_of(write(tmp_path, pdf))
    assert "精算明細書" in text and "¥84,518" in text and "school 株式会社" in text

    status, feed, _ = await gateway.request("GET", "/v1/events?limit=200", school)
    created = [e for e in feed["data"] if e["type"] == "settlement.created"]
    assert [e["data"]["settlement"]["settlement_id"] for e in created] == [sid]

    first, last = MONTH.isoformat(), summary["period"]["end"]
    status, report, _ = await gateway.request(
        "GET", f"/v1/reports/daily-collections?from={first}&to={last}", school
    )
    assert status == 200
    assert [
        (r["date"], r["channel"], r["chain"], r["count"], r["amount"]) for r in report["data"]
    ] == [
        (at(5).date().isoformat(), "cvs", "000020", 1, 5_400),
        (at(6).date().isoformat(), "cvs", "000020", 1, 80_000),
        (at(7).date().isoformat(), "cvs", "000020", 1, 1_000),
    ]
    assert [r["confirmed_amount"] for r in report["data"]] == [5_400, 80_000, 0]
    status, problem, _ = await gateway.request(
        "GET", f"/v1/reports/daily-collections?from={last}&to={first}", school
    )
    assert status == 422 and problem["errors"][0]["field"] == "to"

    status, upcoming, _ = await gateway.request("GET", "/v1/settlements/upcoming", school)
    assert status == 200 and upcoming["preview"] is True and upcoming["settlement_id"] is None
    assert upcoming["period"]["start"] == TODAY.replace(day=1).isoformat()
    assert upcoming["collected"] == 0  # S-3's 速報 alone is not paid out
    assert sum(line["amount"] for line in upcoming["lines"]) == upcoming["payout"]
    assert (await gateway.request("GET", "/v1/settlements/upcoming", other))[0] == 404
    assert len((await gateway.request("GET", "/v1/settlements", school))[1]["data"]) == 1

    out = tmp_path / "statement.pdf"
    written = admin(
        gateway.config_path,
        "statement",
        "--settlement",
        sid,
        "--format",
        "pdf",
        "--output",
        str(out),
    )
    assert written["bytes"] == out.stat().st_size > 1000
    shown = admin(gateway.config_path, "contract", "show", "--biller", "school")
    assert shown["settled_through"] == summary["period"]["end"]


@pytest_twisted.ensureDeferred
async def test_the_mpn_day_close_is_shown_next_to_the_ledger(gateway: Running) -> None:
    operator = admin_key(gateway)
    school = gateway.onboard("school")
    day = TODAY - timedelta(days=2)
    engine = create_db_engine(gateway.config.database.url, 1)
    with engine.begin() as conn:
        # The center counted a 消込 the ledger never received.
        record_day_close(conn, day, (0, 0, 0, 0), (1, 5_400, 0, 0), datetime.now(JST))
        record_day_close(
            conn, day - timedelta(days=1), (0, 0, 0, 0), (0, 0, 0, 0), datetime.now(JST)
        )
    engine.dispose()
    query = f"/v1/mpn/day-closes?from={day - timedelta(days=7)}&to={day}"
    assert (await gateway.request("GET", query, school))[0] == 403
    status, doc, _ = await gateway.request("GET", query, operator)
    assert status == 200
    assert [(d["business_date"], d["mismatch"]) for d in doc["data"]] == [
        ((day - timedelta(days=1)).isoformat(), False),
        (day.isoformat(), True),
    ]
    assert doc["data"][1]["center"]["payments_sum"] == 5_400
    assert doc["data"][1]["ledger"]["payments_sum"] == 0
    shown = admin(
        gateway.config_path, "mpn", "days", "--from", str(day - timedelta(days=7)), "--to", str(day)
    )
    assert shown["mismatches"] == 1


def test_contract_set_names_the_bad_field_and_settle_refuses_the_future(
    tmp_path: Path, migrated_url: str
) -> None:
    from gateway.app.admin.commands import main
    from tests.conftest import config_text, onboard

    config = tmp_path / "gateway.toml"
    config.write_text(config_text(migrated_url), encoding="utf-8")
    onboard(config, "acme")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({**PLAN, "effective_from": "2026-11-01", "tax_rounding": "up"}))
    assert (
        main(["-c", str(config), "contract", "set", "--biller", "acme", "--plan", str(plan)]) == 1
    )
    plan.write_text(json.dumps({**PLAN, "effective_from": "2026-11-01"}))
    made = admin(config, "contract", "set", "--biller", "acme", "--plan", str(plan))
    assert made["created"] is True and made["plan"]["cycle"] == "monthly"
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    assert main(["-c", str(config), "settle", "--date", tomorrow]) == 1


@pytest_twisted.ensureDeferred
async def test_the_job_settles_each_period_once_it_closes_on_the_injected_clock(
    gateway: Running,
) -> None:
    from twisted.internet import (
        reactor,  # noqa: TID251 - the store's threads need the reactor
        task,
    )

    from gateway.money.settlement import SETTLEMENTS_CREATED, SettlementJob, settlement_service
    from gateway.store import Store

    school = gateway.onboard("school")
    status, _, _ = await gateway.request(
        "PUT", f"/v1/billers/school/fee-plans/{MONTH}", admin_key(gateway), PLAN
    )
    assert status == 201
    bill = await new_bill(gateway, school, "J-1", 3_000)
    pay(gateway, bill["cvs"]["barcode"], at(3), at(4))
    clock = task.Clock()
    clock.advance(datetime.combine(TODAY, datetime.min.time(), JST).timestamp() + 9 * 3600)
    store = Store.from_url(gateway.config.database.url, reactor, 2)
    store.start()
    job = SettlementJob(store, clock)
    service = settlement_service(job, 3600, clock)
    before = SETTLEMENTS_CREATED._value.get()
    service.startService()  # a run at once: last month has closed
    try:
        first = job.running
        assert first is not None
        assert [s.totals.collected for s in (await first).settlements] == [3_000]
        await task.deferLater(reactor, 0, lambda: None)  # the timer reschedules itself
        clock.advance(3600)
        second = job.running
        assert second is not first and second is not None
        assert (await second).settlements == ()
        await task.deferLater(reactor, 0, lambda: None)
        next_month = (TODAY.replace(day=28) + timedelta(days=4)).replace(day=1)
        clock.advance((next_month - TODAY).days * 86400)
        third = job.running
        assert third is not second and third is not None
        (made,) = (await third).settlements
        assert made.period_start == TODAY.replace(day=1)
    finally:
        await service.stopService()
        store.stop()
    assert SETTLEMENTS_CREATED._value.get() == before + 2
    status, page, _ = await gateway.request("GET", "/v1/settlements", school)
    assert [s["collected"] for s in page["data"]] == [3_000, 0]


@pytest_twisted.ensureDeferred
async def test_a_biller_whose_settlement_fails_does_not_hold_up_the_others(
    gateway: Running,
) -> None:
    from sqlalchemy import update
    from twisted.internet import reactor  # noqa: TID251 - the store's threads need the reactor

    from gateway.money.settlement import RUN_FAILURES, SettlementJob
    from gateway.store import Store
    from gateway.store.schema import fee_plans

    operator = admin_key(gateway)
    for biller_id in ("aaa", "bbb", "ccc"):
        gateway.onboard(biller_id)
        status, _, _ = await gateway.request(
            "PUT", f"/v1/billers/{biller_id}/fee-plans/{MONTH}", operator, PLAN
        )
        assert status == 201
    engine = create_db_engine(gateway.config.database.url, 1)
    with engine.begin() as conn:  # a plan the store cannot read back
        conn.execute(update(fee_plans).where(fee_plans.c.biller_id == "bbb").values(rates="{"))
    engine.dispose()
    store = Store.from_url(gateway.config.database.url, reactor, 3)
    store.start()
    failures = RUN_FAILURES._value.get()
    try:
        report = await SettlementJob(store, reactor, workers=2).run()
    finally:
        store.stop()
    assert sorted(s.biller_id for s in report.settlements) == ["aaa", "ccc"]
    assert RUN_FAILURES._value.get() == failures + 1
