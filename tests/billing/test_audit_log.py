"""The audit log (issue 19, part 6): every operator action that changes something is written
with who acted (an admin key, a ``gateway-admin`` user), what it did, on what, and what changed
(before and after) — fee plans over the admin API and the command line, settlements run by
hand, keys, a biller's bank contract, request files, files applied by hand and schema upgrades —
through the real service in this process and ``gateway-admin``. A biller's key reads neither
the audit log nor another biller's data. (The daemon's own scheduled runs: test_audit_jobs.py.)
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest_twisted

from gateway.billing.actors import cli_actor
from gateway.mappers.cvs.mapper import RecordKind, ResultRecord, build_file
from gateway.model import JST
from simulators.zengin import SimulatedBank
from tests.billing.test_support_desk import operator
from tests.conftest import Running, admin, config_text, jst_today
from tests.money.test_settlement_api import MONTH, PLAN, TODAY, at, new_bill, pay
from tests.networks.test_zengin_transfer import (
    bill,
    consignor,
    debit_day,
    mandate,
    read_request,
    run_admin,
)
from tests.test_api import bill_body


def audit(config_path: Path, *args: str) -> list[dict[str, Any]]:
    """The audit log as ``gateway-admin audit list`` prints it, newest first."""
    lines: list[dict[str, Any]] = admin(config_path, "audit", "list", "--limit", "1000", *args)[
        "data"
    ]
    return lines


def admin_key_id(gateway: Running) -> str:
    [key_id] = [
        k["key_id"] for k in admin(gateway.config_path, "key", "list")["keys"] if k["admin"]
    ]
    return str(key_id)


@pytest_twisted.ensureDeferred
async def test_fee_plans_settlements_and_keys_are_audited_with_who_and_what(
    gateway: Running, tmp_path: Path
) -> None:
    op = operator(gateway)
    by_key, by_cli = f"key:{admin_key_id(gateway)}", cli_actor()
    school, other = gateway.onboard("school"), gateway.onboard("other")

    # A fee plan over the admin API: added, the same again (nothing), changed.
    path = f"/v1/billers/school/fee-plans/{MONTH}"
    assert (await gateway.request("PUT", path, op, PLAN))[0] == 201
    assert (await gateway.request("PUT", path, op, PLAN))[0] == 200
    assert (await gateway.request("PUT", path, op, {**PLAN, "settlement_fee": 600}))[0] == 200
    assert (await gateway.request("PUT", path, school, PLAN))[0] == 403  # not the biller's
    lines = audit(gateway.config_path, "--action", "fee_plan.put")
    assert [(a["actor"], a["target"], a["biller_id"]) for a in lines] == [
        (by_key, "biller:school", "school")
    ] * 2
    changed, added = lines
    assert added["before"] is None and added["after"]["settlement_fee"] == 500
    assert added["after"]["effective_from"] == MONTH.isoformat()
    assert changed["before"]["settlement_fee"] == 500
    assert changed["after"]["settlement_fee"] == 600
    assert changed["before"]["channels"] == changed["after"]["channels"]
    assert changed["after"]["channels"]["cvs"]["per_payment"] == 60

    # ... and on the command line: a version from this month on.
    plan = tmp_path / "plan.json"
    this_month = TODAY.replace(day=1)
    plan.write_text(json.dumps({**PLAN, "effective_from": this_month.isoformat()}))
    admin(gateway.config_path, "contract", "set", "--biller", "school", "--plan", str(plan))
    admin(gateway.config_path, "contract", "set", "--biller", "school", "--plan", str(plan))
    [newest, *_] = lines = audit(gateway.config_path, "--action", "fee_plan.put")
    assert len(lines) == 3  # the same file twice: one change
    assert newest["actor"] == by_cli and newest["before"] is None
    assert newest["after"]["effective_from"] == this_month.isoformat()

    # A settlement run by hand: the settlement it made, by whom.
    paid = await new_bill(gateway, school, "S-1", 5_400)
    pay(gateway, paid["cvs"]["barcode"], at(5), at(8))
    [made] = admin(gateway.config_path, "settle")["created"]
    assert admin(gateway.config_path, "settle")["created"] == []  # nothing more: no line
    [line] = audit(gateway.config_path, "--action", "settlement.run")
    assert line["actor"] == by_cli and line["biller_id"] == "school"
    assert line["target"] == f"settlement:{made['settlement_id']}"
    assert line["before"] is None
    assert line["after"]["payout"] == made["payout"] and line["after"]["payments_count"] == 1

    # Keys: created, rotated and revoked on the command line, each by whom and which.
    rotated = admin(gateway.config_path, "key", "rotate", "--biller", "other", "--grace", "1h")
    revoked = admin(gateway.config_path, "key", "revoke", rotated["key_id"])
    lines = audit(gateway.config_path, "--biller", "other")
    assert [(a["action"], a["actor"], a["target"]) for a in lines] == [
        ("key.revoke", by_cli, f"key:{rotated['key_id']}"),
        ("key.rotate", by_cli, "biller:other"),
        ("key.create", by_cli, f"key:{lines[2]['after']['key_id']}"),
        ("biller.create", by_cli, "biller:other"),
    ]
    assert lines[0]["after"]["key_id"] == revoked["revoked"][0]["key_id"]
    assert lines[1]["after"]["key_id"] == rotated["key_id"]
    [old] = lines[1]["after"]["old_keys"]
    assert old["key_id"] == lines[2]["after"]["key_id"]

    # The same log over the admin API; never a key or a hash in it.
    status, page, _ = await gateway.request("GET", "/v1/support/audit?limit=100", op)
    assert status == 200 and page["data"] == audit(gateway.config_path)
    text = json.dumps(page)
    assert "gw_" not in text and rotated["key"] not in text and school.key not in text

    # A biller's key reads neither the log nor another biller's contract or settlement.
    for who in (school, other):
        assert (await gateway.request("GET", "/v1/support/audit", who))[0] == 403
        assert (await gateway.request("GET", "/v1/billers/school/fee-plans", who))[0] == 403
    sid = made["settlement_id"]
    assert (await gateway.request("GET", f"/v1/settlements/{sid}", other))[0] == 404
    assert (await gateway.request("GET", "/v1/settlements", other))[1]["data"] == []
    assert (await gateway.request("GET", f"/v1/settlements/{sid}", school))[0] == 200


@pytest_twisted.ensureDeferred
async def test_a_bank_contract_request_files_and_files_applied_by_hand_are_audited(
    gateway: Running, tmp_path: Path
) -> None:
    by_cli = cli_actor()
    acme = gateway.onboard("acme")

    # The biller's own account for account transfers: set, changed, the same again.
    consignor(gateway, acme, account="0001-001-1-3141592")
    consignor(gateway, acme, account="0001-001-1-2718281")
    consignor(gateway, acme, account="0001-001-1-2718281")
    changed, added = audit(gateway.config_path, "--action", "consignor.set")
    assert added["actor"] == changed["actor"] == by_cli
    assert added["target"] == changed["target"] == "biller:acme"
    assert added["before"] is None and added["after"]["account_number"] == "****592"
    assert changed["before"]["account_number"] == "****592"
    assert changed["after"]["account_number"] == "****281"

    # A request file written by hand, and the bank's answer applied by hand.
    day = debit_day()
    await mandate(gateway, acme, "C1")
    await bill(gateway, acme, "B-1", "C1", 5_400, day)
    written = await run_admin(gateway.config_path, "zengin", "request", "--date", str(day))
    [request] = written["files"]
    [line] = audit(gateway.config_path, "--action", "zengin.request")
    assert (line["actor"], line["target"], line["biller_id"]) == (by_cli, "biller:acme", "acme")
    assert line["after"] == request and (request["records"], request["total"]) == (1, 5_400)
    [debit] = read_request(request["file"]).debits
    outbox = Path(request["file"]).parent
    bank = SimulatedBank(
        outbox, tmp_path / "bank-out", tmp_path / "bank", overrides={debit.customer_number: "0"}
    )
    [result] = bank.process_once()
    summary = await run_admin(gateway.config_path, "import", "zengin-result", str(result))
    [line] = audit(gateway.config_path, "--action", "import.zengin_result")
    assert (line["actor"], line["target"]) == (by_cli, f"file:{result.name}")
    assert line["biller_id"] == "acme" and line["after"]["file"] == result.name
    assert line["after"]["debited"] == summary["debited"] == {"count": 1, "total": 5_400}

    # A 速報 file applied by hand: which file, what it did.
    status, slip, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("K-1"))
    assert status == 201, slip
    today = jst_today()
    record = ResultRecord(
        kind=RecordKind.PRELIMINARY,
        paid_on=today,
        paid_time="0930",
        barcode=slip["cvs"]["barcode"],
        store_code="0001234",
        customer_segment="  ",
        data_date=today,
        transfer_date=None,
        accounting_date=None,
        chain_code="000010",
    )
    file = tmp_path / "sokuho-1.dat"
    file.write_bytes(build_file(today, "987654", "ｼﾕｳﾉｳﾀﾞｲｺｳ", [record]))
    admin(gateway.config_path, "import", "cvs", str(file))
    [line] = audit(gateway.config_path, "--action", "import.cvs")
    assert (line["actor"], line["target"]) == (by_cli, "file:sokuho-1.dat")
    assert line["after"] == {"file": "sokuho-1.dat", "records": 1, "outcomes": {"applied": 1}}
    _, shown, _ = await gateway.request("GET", "/v1/bills/K-1", acme)
    assert shown["status"] == "paid"

    # Never an account number, nor a record's content.
    text = json.dumps(audit(gateway.config_path))
    assert "3141592" not in text and "2718281" not in text
    assert slip["cvs"]["barcode"] not in text


def test_a_schema_upgrade_is_audited_and_a_current_schema_writes_nothing(
    tmp_path: Path, database_url: str
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(database_url), encoding="utf-8")
    before = datetime.now(JST) - timedelta(seconds=5)
    done = admin(config, "migrate")
    assert done["from"] is None and done["to"]
    assert admin(config, "migrate") == {"from": done["to"], "to": done["to"]}
    [line] = audit(config)
    assert (line["actor"], line["action"]) == (cli_actor(), "schema.migrate")
    assert line["target"] == f"schema:{done['to']}" and line["biller_id"] is None
    assert line["before"] == {"revision": None} and line["after"] == {"revision": done["to"]}
    assert datetime.fromisoformat(line["at"]) >= before
