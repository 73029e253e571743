"""Issue 22's "done when" for the fallback, through the real daemon (twistd subprocess) and the
simulators: a water bill collected by account transfer; the simulated bank answers its debit
with 振替結果コード 1 (資金不足) into the daemon's watched inbox; the biller's fallback
(``gateway-admin biller set --fallback cvs,payeasy``) reissues it for the store and Pay-easy;
the customer's SMS reaches the simulated provider with the page URL; the page shows a barcode
that a real reader (rsvg-convert + zbarimg) reads; the CVS agency's link simulator pays it at a
store over mutual TLS; and no request file ever asks the bank for it again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from gateway import calendar
from gateway.app.process import DaemonProcess, admin_json, free_port, http
from gateway.infra.tls import TLSFiles
from gateway.mappers.cvs.mapper import RecordKind, ResultRecord, build_record
from gateway.mappers.zengin.mapper import parse_file
from simulators.cvs_link import start_agency_link
from simulators.sms import SmsProvider
from simulators.zengin import SimulatedBank
from tests.billing.test_mandates_api import ACCOUNT
from tests.conftest import jst_today
from tests.daemon import admin_cli, write_config
from tests.render.test_barcode_svg import _read, _render

pytestmark = pytest.mark.e2e

SMS_KEY = "e2e-sms-key-0123456789"


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s")


def setup(tmp_path: Path, url: str, sms: SmsProvider) -> tuple[Path, int, int, int, Path]:
    link = free_port()
    tls = tmp_path / "tls"
    extra = (
        "poll_interval = 0.2\n"  # [zengin]: the result inbox
        f'\n[tls]\nca = "{tls}/ca.pem"\ncertificate = "{tls}/gateway.pem"\n'
        f'key = "{tls}/gateway.key"\n'
        f'\n[cvs.link]\nlisten = "tcp:{link}:interface=127.0.0.1"\npeers = ["cvs-agency"]\n'
        f'\n[sms]\nendpoint = "{sms.url}"\napi_key = "{SMS_KEY}"\n'
        'allowed_networks = ["127.0.0.0/8"]\npoll_interval = 0.2\n'
        "\n[notices]\npoll_interval = 0.2\n"
    )
    config, api_port, metrics_port = write_config(tmp_path, url, extra=extra)
    admin_cli(config, "certs", "make", str(tls))
    admin_cli(
        config, "biller", "create", "--id", "water", "--name", "デモ市水道局", "--kana", "ｽｲﾄﾞｳ"
    )
    admin_cli(
        config,
        "biller",
        "zengin",
        "--id",
        "water",
        "--consignor-code",
        "4400012345",
        "--account",
        "0005-135-1-7777777",
    )
    made = admin_json(
        config,
        "biller",
        "set",
        "--id",
        "water",
        "--fallback",
        "cvs,payeasy",
        "--fallback-notice",
        "sms",
        "--received-notice",
        "sms",
    )
    assert made["fallback"]["ways"] == ["cvs", "payeasy"]
    return config, api_port, metrics_port, link, tls


@pytest_twisted.ensureDeferred
async def test_a_failed_debit_falls_back_to_a_store_payment_and_is_never_debited_again(
    tmp_path: Path, migrated_url: str
) -> None:
    from twisted.internet import reactor  # noqa: TID251 - the agency's link runs on it

    sms = SmsProvider(SMS_KEY).start()
    config, api_port, metrics_port, link_port, tls = setup(tmp_path, migrated_url, sms)
    key = admin_json(config, "key", "create", "--biller", "water")["key"]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    day = calendar.add_business_days(jst_today(), 3)
    daemon = DaemonProcess.start(config, api_port, metrics_port)
    agency = None
    try:
        await deferToThread(daemon.wait, "/readyz")

        def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
            status, doc, _ = http(method, daemon.api + path, body, headers)
            return status, doc

        assert call("PUT", "/v1/mandates/W0001", ACCOUNT)[0] == 201
        status, bill = call(
            "POST",
            "/v1/bills",
            {
                "bill_no": "WTR-1",
                "amount": 3520,
                "due_date": day.isoformat(),
                "channels": ["transfer"],
                "customer": {"customer_no": "W0001", "name": "山田 太郎", "phone": "09012345678"},
                "description": "水道料金",
            },
        )
        assert status == 201 and "cvs" not in bill

        # The debit, and the bank's answer: 1 資金不足, into the daemon's watched inbox.
        made = admin_json(config, "zengin", "request", "--date", day.isoformat())
        (written,) = made["files"]
        (debit,) = parse_file(Path(written["file"]).read_bytes()).debits
        bank = SimulatedBank(
            Path(written["file"]).parent,
            tmp_path / "var" / "inbox" / "zengin",
            tmp_path / "bank",
            overrides={debit.customer_number: "1"},
        )
        (result,) = bank.process_once()
        report = result.parent / "done" / f"{result.name}.report.txt"
        await deferToThread(eventually, report.exists)
        assert "failed 1 (3520 yen)" in report.read_text(encoding="utf-8")

        # The customer's SMS: the page URL.
        (message,) = await deferToThread(sms.wait_for, 1)
        assert message.to == "09012345678"
        assert message.text.startswith("【デモ市水道局】口座振替ができませんでした。¥3,520を")
        page_url = re.search(r"https?://\S+$", message.text)
        assert page_url is not None and page_url.group(0) == bill["page_url"]

        # The page shows a barcode a real reader reads, and the Pay-easy numbers.
        status, html, _ = http("GET", page_url.group(0))
        assert status == 200 and 'id="payeasy"' in html and 'id="transfer"' not in html
        svg = re.search(r"<svg.*?</svg>", html, re.DOTALL)
        assert svg is not None
        raw, _ = _read(_render(svg.group(0), tmp_path, "page"))
        barcode = raw.strip()
        _, reissued = call("GET", "/v1/bills/WTR-1")
        assert barcode == reissued["cvs"]["barcode"] and reissued["channels"] == ["cvs", "payeasy"]

        # Paid at a store: the agency's 速報 over its mutual-TLS link.
        agency = start_agency_link(
            reactor,
            f"tcp:127.0.0.1:{link_port}",
            TLSFiles(tls / "ca.pem", tls / "cvs-agency.pem", tls / "cvs-agency.key"),
            "gateway",
            retry_delay=0.2,
        )
        today = jst_today()
        record = ResultRecord(
            kind=RecordKind.PRELIMINARY,
            paid_on=today,
            paid_time=time.strftime("%H%M", time.gmtime(time.time() + 9 * 3600)),
            barcode=barcode,
            store_code="0001234",
            customer_segment="  ",
            data_date=today,
            transfer_date=None,
            accounting_date=None,
            chain_code="000010",
        )
        assert await agency.send(build_record(record)) == "00"
        _, paid = call("GET", "/v1/bills/WTR-1")
        assert paid["status"] == "paid"
        (_, receipt) = await deferToThread(sms.wait_for, 2)
        assert "¥3,520のお支払いを受け付けました" in receipt.text

        # Never debited again: neither the failed date run again, nor the next debit date, nor
        # the date the new due date falls to carries it (nor anything else: it is the only one).
        new_due = calendar.on_or_before(date.fromisoformat(reissued["due_date"]))
        for later in (day, calendar.next_business_day(day), new_due):
            again = admin_json(config, "zengin", "request", "--date", later.isoformat())
            assert again["files"] == [], later
        status, page, _ = http("GET", page_url.group(0))
        assert "お支払い済み" in page and "<svg" not in page
        _, feed = call("GET", "/v1/events?limit=100")
        kinds = [e["type"] for e in feed["data"]]
        assert kinds.index("transfer.failed") < kinds.index("bill.fallback_issued")
        assert kinds.index("bill.fallback_issued") < kinds.index("payment.preliminary")
        status, listed = call("GET", "/v1/notices?bill_no=WTR-1")
        assert [(n["kind"], n["medium"], n["status"]) for n in listed["data"]] == [
            ("fallback", "sms", "sent"),
            ("received", "sms", "sent"),
        ]
        assert SMS_KEY not in daemon.output() and "09012345678" not in daemon.output()
    finally:
        if agency is not None:
            await agency.stop()
        assert daemon.stop() == 0
        sms.stop()
