"""The account-transfer loop against the real daemon (twistd subprocess):

bills with mandates (merchant API) → ``gateway-admin zengin request`` → the simulated bank's
result file dropped into the daemon's watched inbox → the ledger, checked against the bank's
own record. A bill paid at a store before the debit date is not in the request.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gateway import calendar
from gateway.app.process import DaemonProcess, admin_json, http
from gateway.mappers.zengin.mapper import parse_file
from simulators.zengin import SimulatedBank
from tests.billing.test_mandates_api import ACCOUNT
from tests.billing.test_payments_api import pay_at_store
from tests.conftest import jst_today
from tests.daemon import admin_cli, write_config
from tests.test_api import bill_body

pytestmark = pytest.mark.e2e


def wait_for(path: Path, timeout: float = 20) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path
        time.sleep(0.1)
    raise AssertionError(f"{path} did not appear in {timeout}s")


def test_bills_with_mandates_are_debited_and_come_back_through_the_inbox(
    tmp_path: Path, migrated_url: str
) -> None:
    config, api_port, metrics_port = write_config(
        tmp_path, migrated_url, extra="poll_interval = 0.2\n"
    )
    admin_cli(config, "biller", "create", "--id", "acme", "--name", "ACME", "--kana", "ｱｸﾒ")
    admin_cli(
        config,
        "biller",
        "zengin",
        "--id",
        "acme",
        "--consignor-code",
        "1234567890",
        "--account",
        "0001-001-1-1234567",
    )
    key = admin_json(config, "key", "create", "--biller", "acme")["key"]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    day = calendar.add_business_days(jst_today(), 3)

    daemon = DaemonProcess.start(config, api_port, metrics_port)
    try:
        daemon.wait("/readyz")

        def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
            status, doc, _ = http(method, daemon.api + path, body, headers)
            return status, doc

        amounts = {f"C{n}": 1000 * n for n in range(1, 9)}
        for customer_no, amount in amounts.items():
            assert call("PUT", f"/v1/mandates/{customer_no}", ACCOUNT)[0] == 201
            body = bill_body(f"B-{customer_no}", amount=amount, due_date=day.isoformat())
            body["customer"] = {**body["customer"], "customer_no": customer_no}
            assert call("POST", "/v1/bills", body)[0] == 201
        # C8 pays at a store before the debit date: the bank is never asked for it.
        _, store_paid = call("GET", "/v1/bills/B-C8")
        assert pay_at_store(migrated_url, store_paid["cvs"]["barcode"]) == "applied"

        made = admin_json(config, "zengin", "request", "--date", day.isoformat())
        (written,) = made["files"]
        request = parse_file(Path(written["file"]).read_bytes())
        assert len(request.debits) == 7
        assert 8000 not in [d.amount for d in request.debits]

        bank = SimulatedBank(
            Path(written["file"]).parent,
            tmp_path / "var" / "inbox" / "zengin",
            tmp_path / "bank",
            mix={"0": 70, "1": 20, "3": 10},
            seed=7,
        )
        (result,) = bank.process_once()
        report = wait_for(result.parent / "done" / f"{result.name}.report.txt")
        assert report.read_text(encoding="utf-8").startswith("applied: 7 result(s)")

        totals = bank.totals()
        assert totals.count == 7
        _, page = call("GET", "/v1/payments?channel=transfer&limit=100")
        confirmed = [p for p in page["data"] if p["status"] == "confirmed"]
        assert len(confirmed) == totals.debited_count
        assert sum(p["amount"] for p in confirmed) == totals.debited_total
        debited = {e.amount for e in bank.record() if e.debited}
        for customer_no, amount in amounts.items():
            _, b = call("GET", f"/v1/bills/B-{customer_no}")
            if customer_no == "C8":
                assert b["status"] == "paid"  # by the store, and nothing else
            elif amount in debited:
                assert b["status"] == "confirmed"
            else:
                assert b["status"] == "open"
        _, feed = call("GET", "/v1/events?limit=500")
        failed = [e for e in feed["data"] if e["type"] == "transfer.failed"]
        assert len(failed) == totals.failed_count

        _, metrics, _ = http("GET", daemon.metrics + "/metrics")
        assert 'gateway_inbox_files_total{network="zengin",result="done"} 1.0' in metrics
        assert "gateway_zengin_results_total" in metrics
        assert ACCOUNT["account_number"] not in daemon.output()
    finally:
        assert daemon.stop() == 0
