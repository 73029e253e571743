"""Payouts against the real daemon (twistd subprocess) and the simulated bank:

bills paid last month (the ledger's own ingest, at last month's times) → the daemon settles the
closed month → ``POST /v1/admin/payouts`` → the daemon writes the 総合振込 file → the simulated
bank reads it, pays one biller and returns the other's transfer (振込不能) into the daemon's
watched payout inbox → the returned settlement is ``payout_returned``, the biller's next
settlement (``GET /v1/settlements/upcoming``: the run's own code, nothing stored) carries the
amount as 前回振込不能分, its statement PDF says so, and the biller's account is held until it
is corrected. Every amount the bank read equals the settlement's payout. No account number or
holder's name reaches the daemon's log.
"""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway import calendar
from gateway.app.process import DaemonProcess, admin_json, http
from gateway.config import load_config
from gateway.ingest import Ingest
from gateway.mappers.zengin.payouts import customer_code, parse_payout_file
from gateway.model import JST
from gateway.networks.issuer import Issuer
from gateway.networks.registry import REGISTRY
from gateway.store import create_db_engine
from simulators.zengin_payouts import PayoutBank
from tests.conftest import jst_today
from tests.daemon import admin_cli, write_config
from tests.money.test_settlement import World
from tests.render.test_receipts import text_of
from tests.render.test_receipts import write as write_pdf

pytestmark = pytest.mark.e2e

PAYOUTS = """
[payouts]
consignor_code = "1234567890"
consignor_name = "ｷﾖｳﾄﾞｳｼﾕｳﾉｳｾﾝﾀ-"
account = "0001-001-1-1234567"
outbox = "var/outbox/payouts"
inbox = "var/inbox/payouts"
poll_interval = 0.2
"""
ACCOUNTS = {"acme": ("0005-135-1-7654321", "ｶ)ｱｸﾒ"), "beta": ("0009-227-1-0001234", "ﾍﾞ-ﾀｼﾖｳｼﾞ")}


def wait_for(path: Path, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path
        time.sleep(0.1)
    raise AssertionError(f"{path} did not appear in {timeout}s")


def last_month(today: date) -> tuple[date, date]:
    end = today.replace(day=1) - timedelta(days=1)
    return end.replace(day=1), end


def paid_last_month(config: Path, url: str, first: date) -> None:
    """Bills of acme and beta paid at a store and confirmed last month, through the ledger's
    own ingest (as the daemon's inbox would have applied them then)."""
    loaded = load_config(config)
    engine = create_db_engine(url, 1)
    ingest = Ingest(None, None, lambda b: {"bill_no": b.bill_no}, REGISTRY.finders(loaded))
    world = World(engine, ingest, Issuer(loaded))
    at = datetime.combine(first + timedelta(days=4), datetime.min.time(), JST)
    for biller, amounts in (("acme", [5_400, 60_000]), ("beta", [3_000, 12_000, 800])):
        for n, amount in enumerate(amounts):
            bill = world.bill(f"{biller}-{n}", amount, first + timedelta(days=9), biller=biller)
            world.confirm(bill, at + timedelta(hours=n), at + timedelta(days=2))
    engine.dispose()


def test_settled_paid_out_returned_and_carried_through_the_daemon_and_the_bank(
    tmp_path: Path, migrated_url: str
) -> None:
    config, api_port, metrics_port = write_config(tmp_path, migrated_url, extra=PAYOUTS)
    today = jst_today()
    first, _ = last_month(today)
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "effective_from": first.isoformat(),
                "cycle": "monthly",
                "payout_days": 1,
                "settlement_fee": 500,
                "channels": {"cvs": {"per_payment": 60}},
            }
        )
    )
    keys, codes = {}, {}
    for biller in ACCOUNTS:
        made = admin_json(
            config, "biller", "create", "--id", biller, "--name", biller, "--kana", "ｱｸﾒ",
            "--channels", "cvs",
        )  # fmt: skip
        codes[biller] = made["code"]
        keys[biller] = admin_json(config, "key", "create", "--biller", biller)["key"]
        admin_cli(config, "contract", "set", "--biller", biller, "--plan", str(plan))
        number, holder = ACCOUNTS[biller]
        account = admin_json(
            config, "biller", "payout-account", "--id", biller, "--account", number,
            "--holder", holder,
        )  # fmt: skip
        assert account["account_number"] == "****" + number[-3:]
    admin_key = admin_json(config, "key", "create", "--admin")["key"]
    paid_last_month(config, migrated_url, first)

    daemon = DaemonProcess.start(config, api_port, metrics_port)
    try:
        daemon.wait("/readyz")

        def call(who: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
            key = admin_key if who == "admin" else keys[who]
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            status, doc, _ = http(method, daemon.api + path, body, headers)
            return status, doc

        settled: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 60
        while len(settled) < 2 and time.monotonic() < deadline:
            for biller in ACCOUNTS:
                _, page = call(biller, "GET", "/v1/settlements")
                if page["data"]:
                    (settled[biller],) = page["data"]  # the daemon's start-up run
            time.sleep(0.1)
        assert set(settled) == {"acme", "beta"}, daemon.output()
        assert all(s["payout_state"] == "settled" for s in settled.values())
        day = calendar.on_or_after(
            max(today, *(date.fromisoformat(s["payout_date"]) for s in settled.values()))
        )

        status, made = call("admin", "POST", "/v1/admin/payouts", {"transfer_date": str(day)})
        assert status == 201, made
        assert made["file"]["records"] == 2 and made["skipped"] == {}
        assert made["file"]["total"] == sum(s["payout"] for s in settled.values())
        outbox = tmp_path / "var" / "outbox" / "payouts"
        name = made["file"]["file"]
        assert parse_payout_file((outbox / name).read_bytes()).trailer.count == 2

        acme_code = "".join(customer_code(codes["acme"], first))
        bank = PayoutBank(
            outbox,
            tmp_path / "var" / "inbox" / "payouts",
            tmp_path / "bank",
            mix={"0": 1},
            overrides={acme_code: "1"},  # 口座なし
            today=today,
        )
        (returns,) = bank.process_once()
        report = wait_for(returns.parent / "done" / f"{returns.name}.report.txt")
        assert report.read_text(encoding="utf-8").startswith("applied: 1 returned transfer")

        # every amount the bank read is a settlement's payout, once
        by_code = {e.customer_code: e for e in bank.record()}
        assert len(bank.record()) == 2
        for biller, s in settled.items():
            entry = by_code["".join(customer_code(codes[biller], first))]
            assert entry.amount == s["payout"] and entry.transfer_date == str(day)
        assert [e.customer_code for e in bank.returned()] == [acme_code]

        _, acme = call("acme", "GET", f"/v1/settlements/{settled['acme']['settlement_id']}")
        assert acme["payout_state"] == "payout_returned"
        transfer = acme["payout_transfer"]
        assert transfer["return_code"] == "1" and transfer["return_reason"].startswith("口座なし")
        assert transfer["account"]["account_number"] == "****321"
        _, beta = call("beta", "GET", f"/v1/settlements/{settled['beta']['settlement_id']}")
        assert beta["payout_state"] == ("paid_out" if day == today else "payout_requested")

        # the biller's next settlement takes the returned amount back
        _, upcoming = call("acme", "GET", "/v1/settlements/upcoming")
        (line,) = [x for x in upcoming["lines"] if x["kind"] == "returned_payout"]
        assert line["amount"] == settled["acme"]["payout"] == upcoming["returned_in"]
        assert upcoming["payout"] == sum(x["amount"] for x in upcoming["lines"])

        # the statement says where the payout stands
        pdf = urllib.request.urlopen(
            urllib.request.Request(
                f"{daemon.api}/v1/settlements/{settled['acme']['settlement_id']}/statement.pdf",
                headers={"Authorization": f"Bearer {keys['acme']}"},
            ),
            timeout=10,
        ).read()
        text = " ".join(text_of(write_pdf(tmp_path, pdf)).split())
        assert "振込状況 振込不能（口座なし）・次回の精算で再振込" in text

        _, feed = call("acme", "GET", "/v1/events?limit=100")
        types = [e["type"] for e in feed["data"] if e["type"].startswith("settlement.")]
        assert types[0] == "settlement.created" and types[-1] == "settlement.payout_returned"
        assert "settlement.payout_requested" in types

        # the date again: nothing is carried twice; acme is held until its account is fixed
        status, again = call("admin", "POST", "/v1/admin/payouts", {"transfer_date": str(day)})
        assert status == 200 and again["file"] is None
        status, accounts = call("admin", "GET", "/v1/billers/acme/payout-accounts")
        assert status == 200 and accounts["accounts"][0]["holder_kana"] == "ｶ)ｱｸﾒ"
        status, files = call("admin", "GET", f"/v1/admin/payouts?date={day}")
        assert [f["file"] for f in files["data"]] == [name]
        assert call("acme", "GET", "/v1/admin/payouts")[0] == 403

        _, metrics, _ = http("GET", daemon.metrics + "/metrics")
        assert "gateway_payout_files_total 1.0" in metrics
        assert 'gateway_inbox_files_total{network="payouts",result="done"} 1.0' in metrics
        output = daemon.output()
        for number, holder in ACCOUNTS.values():
            assert number[-7:] not in output and holder not in output
    finally:
        assert daemon.stop() == 0
