"""Chain rules through the real service (make_service) and gateway-admin: set by the operator
(``PATCH /v1/billers/{id}``, ``gateway-admin biller set``), a due date too far ahead refused
at creation, in a bulk file and at reissue, a payment at a chain the biller does not accept
recorded and flagged, and a settlement whose stamp charges follow the chain that took each
payment. Payments go through the ingest core, back-dated into last month (as
tests/money/test_settlement_api.py does), so that last month is a closed period."""

from __future__ import annotations

import contextlib
import csv
import io
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest_twisted
import treq

from gateway.app.admin.commands import main as admin_main
from gateway.billing.bills import bill_json
from gateway.ingest import Ingest, Received
from gateway.model import JST, CollectionEvent, MessageKind
from gateway.networks.issuer import Issuer
from gateway.networks.registry import REGISTRY
from gateway.store import create_db_engine
from tests.conftest import Biller, Running, admin, due
from tests.helpers import cvs_event

TODAY = datetime.now(JST).date()
MONTH = (TODAY.replace(day=1) - timedelta(days=1)).replace(day=1)  # last month's first day
PLAN = {
    "cycle": "monthly",
    "payout_days": 3,
    "settlement_fee": 0,
    "tax_rate": 10,
    "tax_rounding": "floor",
    "channels": {"cvs": {"per_payment": 0, "per_uncollected": 0, "stamp_charge": 200}},
}


def at(day: int, hour: int = 12) -> datetime:
    return datetime(MONTH.year, MONTH.month, day, hour, tzinfo=JST)


def operator(gateway: Running) -> Biller:
    return Biller("operator", "", admin(gateway.config_path, "key", "create", "--admin")["key"])


async def new_bill(
    gateway: Running, who: Biller, bill_no: str, amount: int, tax: int = 0, days: int = 20
) -> tuple[int, Any]:
    body: dict[str, Any] = {
        "bill_no": bill_no,
        "amount": amount,
        "due_date": due(days),
        "channels": ["cvs"],
        "customer": {"customer_no": "C-" + bill_no, "name": "山田 太郎"},
    }
    if tax:
        body["tax"] = {"taxable": True, "tax_amount": tax}
    status, bill, _ = await gateway.request("POST", "/v1/bills", who, body)
    return status, bill


def pay(gateway: Running, barcode: str, chain: str, paid_at: datetime, confirm: bool) -> None:
    """A store payment at ``chain``: its 速報 and, with ``confirm``, its 確報 the next day."""
    config = gateway.config
    render = partial(bill_json, public_url=config.api.public_url, issuer=Issuer(config))
    ingest = Ingest(None, None, render, REGISTRY.finders(config))

    def event(kind: MessageKind) -> CollectionEvent:
        return cvs_event(
            barcode, kind, paid_at, chain=chain, transfer_date=paid_at.date() + timedelta(10)
        )

    engine = create_db_engine(config.database.url, 1)
    with engine.begin() as conn:
        ingest.apply(conn, Received(event(MessageKind.PRELIMINARY)), paid_at, paid_at.date())
    if confirm:
        later = paid_at + timedelta(days=1)
        with engine.begin() as conn:
            ingest.apply(conn, Received(event(MessageKind.CONFIRMATION)), later, later.date())
    engine.dispose()


@pytest_twisted.ensureDeferred
async def test_the_operator_sets_chain_rules_and_a_bad_change_names_its_fields(
    gateway: Running,
) -> None:
    gas = gateway.onboard("gas")
    op = operator(gateway)
    status, doc, _ = await gateway.request("GET", "/v1/billers/gas", op)
    assert doc["chain_rules"] == {"accepted": None, "max_due_days": {}, "stamp_all": []}

    rules = {"accepted": ["010", "20"], "max_due_days": {"010": 60}, "stamp_all": ["000020"]}
    status, doc, _ = await gateway.request("PATCH", "/v1/billers/gas", op, {"chain_rules": rules})
    assert status == 200, doc
    assert doc["chain_rules"] == {
        "accepted": ["010", "020"],
        "max_due_days": {"010": 60},
        "stamp_all": ["020"],
    }
    assert (await gateway.request("PATCH", "/v1/billers/gas", gas, {"chain_rules": {}}))[0] == 403
    bad = {"chain_rules": {"accepted": ["abc"], "max_due_days": {"010": 0}, "stamp": []}}
    status, problem, _ = await gateway.request("PATCH", "/v1/billers/gas", op, bad)
    assert status == 400  # an unknown field: malformed, with every error named
    assert {e["field"] for e in problem["errors"]} == {
        "chain_rules.accepted[0]",
        "chain_rules.max_due_days.010",
        "chain_rules.stamp",
    }
    status, problem, _ = await gateway.request(
        "PATCH", "/v1/billers/gas", op, {"chain_rules": {"accepted": ["010", "10"]}}
    )
    assert status == 422 and problem["errors"][0]["field"] == "chain_rules.accepted[1]"

    # gateway-admin biller set changes only the parts it is given, audited as the CLI's.
    shown = admin(gateway.config_path, "biller", "set", "--id", "gas", "--chains", "all")
    assert shown["chain_rules"] == {
        "accepted": None,
        "max_due_days": {"010": 60},
        "stamp_all": ["020"],
    }
    shown = admin(
        gateway.config_path,
        "biller",
        "set",
        "--id",
        "gas",
        "--chain-due-days",
        "030=45,10=60",
        "--stamp-chains",
        "none",
    )
    assert shown["chain_rules"]["max_due_days"] == {"010": 60, "030": 45}
    assert shown["chain_rules"]["stamp_all"] == []
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = admin_main(["-c", str(gateway.config_path), "biller", "set", "--id", "gas"])
        assert rc == 1
        rc = admin_main(
            ["-c", str(gateway.config_path), "biller", "set", "--id", "gas", "--chains", "7-11"]
        )
        assert rc == 1
    lines = err.getvalue().splitlines()
    assert "give at least one of --chains" in lines[0]
    assert lines[1].startswith("gateway-admin: --chains: chain_rules.accepted[0]:")
    audit = admin(gateway.config_path, "audit", "list", "--target", "biller:gas")
    changes = [e for e in audit["data"] if e["action"] == "biller.update"]
    assert len(changes) == 3
    assert changes[0]["actor"].startswith("cli:")
    assert changes[0]["before"]["chain_rules"]["stamp_all"] == ["020"]
    assert changes[0]["after"]["chain_rules"]["stamp_all"] == []


@pytest_twisted.ensureDeferred
async def test_a_due_date_beyond_a_chains_window_is_refused_naming_due_date(
    gateway: Running,
) -> None:
    gas = gateway.onboard("gas")
    admin(
        gateway.config_path,
        "biller",
        "set",
        "--id",
        "gas",
        "--chains",
        "010,020",
        "--chain-due-days",
        "010=60,020=90,050=10",  # 050 is not accepted: its window does not bind
    )
    status, problem = await new_bill(gateway, gas, "FAR", 5_000, days=61)
    assert status == 422
    assert [e["field"] for e in problem["errors"]] == ["due_date"]
    message = problem["errors"][0]["message"]
    assert "chain 010 (セブン-イレブン) takes slips due at most 60 days" in message
    status, bill = await new_bill(gateway, gas, "NEAR", 5_000, days=60)
    assert status == 201, bill
    # A transfer-only bill has no slip: no chain is concerned.
    body = {
        "bill_no": "DEBIT",
        "amount": 5_000,
        "due_date": due(120),
        "channels": ["transfer"],
        "customer": {"customer_no": "C-1"},
    }
    assert (await gateway.request("POST", "/v1/bills", gas, body))[0] == 201

    # A bulk file: the row is named.
    rows = [
        "bill_no,amount,due_date,channels",
        f"B-1,1000,{due(30)},cvs",
        f"B-2,1000,{due(75)},cvs",
    ]
    data = ("\r\n".join(rows) + "\r\n").encode()
    status, problem, _ = await gateway.request(
        "POST",
        "/v1/bills/batch",
        gas,
        raw=data,
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    assert status == 422
    assert [e["field"] for e in problem["errors"]] == ["row 3: due_date"]

    # A reissue is a new slip: the same rule.
    status, problem, _ = await gateway.request(
        "POST", "/v1/bills/NEAR/reissue", gas, {"due_date": due(80)}
    )
    assert status == 422 and problem["errors"][0]["field"] == "due_date"
    status, bill, _ = await gateway.request(
        "POST", "/v1/bills/NEAR/reissue", gas, {"due_date": due(45)}
    )
    assert status == 200 and bill["reissue"] == 1


@pytest_twisted.ensureDeferred
async def test_a_payment_at_a_chain_not_accepted_pays_its_bill_and_is_flagged(
    gateway: Running,
) -> None:
    gas = gateway.onboard("gas")
    admin(gateway.config_path, "biller", "set", "--id", "gas", "--chains", "010,020")
    _, ok = await new_bill(gateway, gas, "OK-1", 3_000)
    _, off = await new_bill(gateway, gas, "OFF-1", 4_000)
    now = datetime.now(JST) - timedelta(minutes=5)
    pay(gateway, ok["cvs"]["barcode"], "000010", now, confirm=False)
    pay(gateway, off["cvs"]["barcode"], "000050", now, confirm=True)  # Daily Yamazaki

    status, bill, _ = await gateway.request("GET", "/v1/bills/OFF-1", gas)
    assert status == 200 and bill["status"] == "confirmed"  # the money was taken: it pays
    status, payments, _ = await gateway.request("GET", "/v1/bills/OFF-1/payments", gas)
    (p,) = payments["data"]
    assert p["chain_accepted"] is False and p["store"]["chain"] == "000050"
    assert p["status"] == "confirmed"  # the 確報 keeps the flag
    status, payments, _ = await gateway.request("GET", "/v1/bills/OK-1/payments", gas)
    assert status == 200 and payments["data"][0]["chain_accepted"] is True
    _, feed, _ = await gateway.request("GET", "/v1/events?limit=100", gas)
    flagged = [
        e["type"]
        for e in feed["data"]
        if e["data"].get("payment", {}).get("chain_accepted") is False
    ]
    assert flagged == ["payment.preliminary", "payment.confirmed"]


@pytest_twisted.ensureDeferred
async def test_the_stamp_charge_follows_the_chain_that_took_the_payment(
    gateway: Running,
) -> None:
    gas = gateway.onboard("gas")
    status, _, _ = await gateway.request(
        "PUT", f"/v1/billers/gas/fee-plans/{MONTH}", operator(gateway), PLAN
    )
    assert status == 201
    admin(gateway.config_path, "biller", "set", "--id", "gas", "--stamp-chains", "020")
    # ¥52,000 of which ¥4,727 tax: ¥47,273 before tax, so the slip asks for no stamp.
    bills = [await new_bill(gateway, gas, f"T-{n}", 52_000, tax=4_727) for n in range(3)]
    _, big = await new_bill(gateway, gas, "BIG", 60_000)  # the slip asks for a stamp
    _, small = await new_bill(gateway, gas, "SMALL", 30_000)
    assert [b["cvs"]["stamp"] for _, b in bills] == [False] * 3 and big["cvs"]["stamp"]
    pay(gateway, bills[0][1]["cvs"]["barcode"], "000020", at(3), confirm=True)  # stamps: ≥ ¥50,000
    pay(gateway, bills[1][1]["cvs"]["barcode"], "000010", at(4), confirm=True)  # the slip: no
    pay(gateway, bills[2][1]["cvs"]["barcode"], "020", at(5), confirm=True)  # 3 digits: stamps
    pay(gateway, big["cvs"]["barcode"], "000010", at(6), confirm=True)  # the slip: yes
    pay(gateway, small["cvs"]["barcode"], "000020", at(7), confirm=True)  # below: no

    (made,) = admin(gateway.config_path, "settle")["created"]
    assert made["stamp_count"] == 3 and made["stamp_duty"] == 600
    sid = made["settlement_id"]
    status, settlement, _ = await gateway.request("GET", f"/v1/settlements/{sid}", gas)
    (line,) = [x for x in settlement["lines"] if x["kind"] == "stamp_duty"]
    assert (line["quantity"], line["unit_amount"], line["amount"]) == (3, 200, -600)
    assert sum(x["amount"] for x in settlement["lines"]) == settlement["payout"]
    response = await treq.get(gateway.api + f"/v1/settlements/{sid}/payments.csv", gas.headers)
    rows = list(csv.DictReader(io.StringIO((await response.content()).decode("utf-8-sig"))))
    assert {r["bill_no"]: r["stamped"] for r in rows} == {
        "T-0": "1",
        "T-1": "0",
        "T-2": "1",
        "BIG": "1",
        "SMALL": "0",
    }
