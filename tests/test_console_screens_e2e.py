"""The billers' screens of the console (issue 20) in real headless Chromium against the real
daemon (twistd subprocess), with a bill paid twice over the CVS link (mutual TLS).

A biller's clerk reissues a bill on its page and cancels it; uploads a CSV file of 4,000 bills,
watches the progress bar move (htmx, under the console's CSP) until the result file appears,
and downloads it; downloads last month's statement PDF and reads it back with pdftotext. The
center's support desk resolves the refund case the double payment opened. axe-core (vendored
for the tests) finds no serious issue on any of the new screens, at desktop and phone widths.
With ``GATEWAY_CONSOLE_SHOTS=docs/console`` the run also writes the screenshots the README
shows.

Needs Playwright (PyPI), Chromium and poppler-utils (Debian), as tests/test_console_e2e.py.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from gateway.app.process import http
from gateway.billing.bills import bill_json
from gateway.config import load_config
from gateway.ingest import Ingest, Received
from gateway.model import JST, MessageKind
from gateway.networks.issuer import Issuer
from gateway.networks.registry import REGISTRY
from gateway.store import create_db_engine
from simulators.cvs_link import AgencyLink, start_agency_link
from tests.billing.test_bulk_api import csv_text, line
from tests.conftest import admin, due
from tests.helpers import cvs_event
from tests.money.test_settlement_api import PLAN
from tests.render.test_payment_page_browser import CHROMIUM_FLAGS, chromium, sync_playwright
from tests.render.test_receipts import text_of
from tests.test_console_e2e import DESKTOP, PHONE, log_in_first_time, make_bill, violations
from tests.test_cvs_link_e2e import Site, make_site, records_for

pytestmark = pytest.mark.e2e

BULK_ROWS = 4000
LAST_MONTH = (datetime.now(JST).date().replace(day=1) - timedelta(days=1)).replace(day=1)


def prepare(site: Site, tmp_path: Path) -> dict[str, Any]:
    """Schema, certificates, the biller with its key, the users; nothing running yet."""
    admin(site.config, "migrate")
    admin(site.config, "certs", "make", str(site.tls))
    admin(
        site.config,
        "biller", "create", "--id", "acme", "--name", "アクメ電力株式会社", "--kana", "ｱｸﾒ",
        "--channels", "cvs,payeasy",
    )  # fmt: skip
    key = admin(site.config, "key", "create", "--biller", "acme")["key"]
    clerk = admin(
        site.config, "user", "create", "--login", "clerk", "--role", "biller_staff", "--biller",
        "acme",
    )  # fmt: skip
    desk = admin(site.config, "user", "create", "--login", "desk", "--role", "support")
    return {"key": key, "clerk": clerk["password"], "desk": desk["password"]}


def paid_last_month(config: Path, barcode: str, day: int) -> None:
    """A store payment on ``day`` of last month, its 速報 and 確報 (through the ingest core, as
    the network would have delivered them then)."""
    loaded = load_config(config)
    ingest = Ingest(
        None,
        None,
        partial(bill_json, public_url=loaded.api.public_url, issuer=Issuer(loaded)),
        REGISTRY.finders(loaded),
    )
    paid_at = datetime(LAST_MONTH.year, LAST_MONTH.month, day, 12, tzinfo=JST)
    engine = create_db_engine(loaded.database.url, 1)
    for kind, at in (
        (MessageKind.PRELIMINARY, paid_at),
        (MessageKind.CONFIRMATION, paid_at + timedelta(days=3)),
    ):
        event = cvs_event(barcode, kind, paid_at, transfer_date=paid_at.date() + timedelta(10))
        with engine.begin() as conn:
            assert ingest.apply(conn, Received(event), at, at.date()) == "applied"
    engine.dispose()


def settle_last_month(site: Site, tmp_path: Path, api: str, key: str) -> dict[str, Any]:
    """acme's fee plan from last month, then its settlement (made by gateway-admin settle, or
    by the daemon's own job if it came first), as the API shows it."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN), encoding="utf-8")
    admin(
        site.config, "contract", "set", "--biller", "acme", "--plan", str(plan),
        "--effective-from", LAST_MONTH.isoformat(),
    )  # fmt: skip
    admin(site.config, "settle")
    headers = {"Authorization": f"Bearer {key}"}
    status, page, _ = http("GET", api + "/v1/settlements", None, headers)
    assert status == 200 and len(page["data"]) == 1, page
    return dict(page["data"][0])


def bulk_file(tmp_path: Path) -> Path:
    path = tmp_path / "12月分請求.csv"
    lines = (
        line(f"BULK-{n:05d}", customer_no=f"K{n:05d}", channels="cvs;payeasy")
        for n in range(BULK_ROWS)
    )
    path.write_bytes(csv_text(*lines).encode("utf-8"))
    return path


#: Installed on the upload's page: every value the progress bar shows, and a mark that the page
#: was not reloaded (htmx swaps the bar in).
WATCH_PROGRESS = """() => {
  window.seenProgress = [];
  window.samePage = true;
  const record = () => {
    const bar = document.querySelector('#bar');
    if (bar) window.seenProgress.push(Number(bar.getAttribute('value')));
  };
  record();
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true});
}"""


def shoot(page: Any, shots: Path, name: str, full_page: bool = True) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=full_page)


def browse(
    console: str, made: dict[str, Any], case_id: str, tmp_path: Path, shots: Path
) -> dict[str, Any]:
    """The whole browser session, in one thread (Playwright's sync API stays in its thread)."""
    seen: dict[str, Any] = {"csp": [], "axe": []}
    with sync_playwright()() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(locale="ja-JP", accept_downloads=True, **DESKTOP)
            page = context.new_page()
            page.on(
                "console",
                lambda m: seen["csp"].append(m.text) if "Security Policy" in m.text else None,
            )
            log_in_first_time(page, console, "clerk", made["clerk"])

            # Reissue, then cancel, on the bill's page.
            bill_url = console + "/bills/acme/INV-1"
            page.goto(bill_url, wait_until="load")
            seen["barcode_before"] = page.locator("#barcode").inner_text()
            page.fill("#reissue-amount", "6,500")
            page.fill("#reissue-due", due(45))
            with page.expect_navigation(wait_until="load"):
                page.click("#reissue")
            seen["reissued"] = {
                "url": page.url,
                "done": page.locator("#done").inner_text(),
                "amount": page.locator("#amount").inner_text(),
                "barcode": page.locator("#barcode").inner_text(),
                "timeline": page.locator("#timeline .what").all_inner_texts(),
            }
            shoot(page, shots, "bill-desktop")
            page.check("#cancel-confirm")
            with page.expect_navigation(wait_until="load"):
                page.click("#cancel")
            seen["cancelled"] = {
                "done": page.locator("#done").inner_text(),
                "status": page.locator("#status").inner_text(),
                "forms": page.locator("#reissue-form, #cancel-form").count(),
            }

            # A file of 4,000 bills: the progress bar, then the result file.
            page.goto(console + "/bulk", wait_until="load")
            page.set_input_files("#file", str(bulk_file(tmp_path)))
            with page.expect_navigation(wait_until="load"):
                page.click("#upload")
            seen["job_url"] = page.url
            page.evaluate(WATCH_PROGRESS)
            page.wait_for_selector("#result, #errors", timeout=300_000)
            seen["progress"] = page.evaluate("window.seenProgress")
            assert page.locator("#errors").count() == 0, page.locator("#errors").inner_text()
            seen["progress_same_page"] = page.evaluate("window.samePage === true")
            seen["bulk_summary"] = page.locator("#summary").inner_text()
            shoot(page, shots, "bulk-desktop")
            with page.expect_download() as download:
                page.click("#result")
            seen["result_name"] = download.value.suggested_filename
            seen["result"] = Path(download.value.path()).read_bytes()

            # Last month's statement, as a PDF.
            page.goto(console + "/settlements", wait_until="load")
            shoot(page, shots, "settlements-desktop")
            with page.expect_download() as download:
                page.click("a.statement-pdf")
            statement = tmp_path / "statement.pdf"
            download.value.save_as(statement)
            seen["statement_name"] = download.value.suggested_filename
            seen["statement"] = text_of(statement)

            page.goto(console + "/payments", wait_until="load")
            shoot(page, shots, "payments-desktop")
            page.goto(console + "/bills", wait_until="load")
            shoot(page, shots, "bills-desktop", full_page=False)
            page.goto(console + "/dashboard", wait_until="load")
            shoot(page, shots, "dashboard-desktop")
            seen["chart_bars"] = page.locator("#chart-svg rect.bar").count()

            state = context.storage_state()
            clerk_pages = [
                "/dashboard",
                "/bills/new",
                "/bulk",
                seen["job_url"].removeprefix(console),
                "/payments",
                "/settlements",
                "/bills/acme/INV-3",  # an open bill: its reissue and cancel forms
            ]
            for size in (DESKTOP, PHONE):
                for path in clerk_pages:
                    seen["axe"] += violations(browser, console + path, state, size)
            phone = browser.new_context(locale="ja-JP", storage_state=state, **PHONE)
            small = phone.new_page()
            small.goto(console + "/dashboard", wait_until="load")
            shoot(small, shots, "dashboard-phone")
            small.goto(console + "/bills/acme/INV-3", wait_until="load")
            shoot(small, shots, "bill-phone")
            small.goto(console + "/bills", wait_until="load")
            shoot(small, shots, "bills-phone", full_page=False)
            phone.close()

            # The center's support desk resolves the double payment's refund case.
            center = browser.new_context(locale="ja-JP", **DESKTOP)
            desk = center.new_page()
            log_in_first_time(desk, console, "desk", made["desk"])
            desk_state = center.storage_state()
            for size in (DESKTOP, PHONE):
                for path in ("/refund-cases", "/dashboard", "/payments"):
                    seen["axe"] += violations(browser, console + path, desk_state, size)
            desk.goto(console + "/refund-cases", wait_until="load")
            shoot(desk, shots, "refund-cases-desktop")
            case = desk.locator(f"#case-{case_id}")
            seen["case_reason"] = case.locator("h2").inner_text()
            case.get_by_label("返金済").check()
            case.get_by_label("対応の内容（必須）").fill("12/8 お客様の口座へ返金しました")
            with desk.expect_navigation(wait_until="load"):
                case.locator("button.resolve").click()
            seen["resolved_done"] = desk.locator("#done").inner_text()
            seen["open_after"] = desk.locator("section.case").count()
            desk.goto(console + "/refund-cases?status=resolved", wait_until="load")
            resolved = desk.locator(f"#case-{case_id}")
            seen["resolved"] = (
                resolved.locator(".resolution").inner_text(),
                resolved.locator(".case-note").inner_text(),
            )
            center.close()
        finally:
            browser.close()
    return seen


@pytest_twisted.ensureDeferred
async def test_the_billers_screens_in_chromium(tmp_path: Path, database_url: str) -> None:
    from twisted.internet import reactor  # noqa: TID251 - the link lives on the test's reactor

    site = make_site(tmp_path, database_url)
    made = await deferToThread(prepare, site, tmp_path)
    daemon = site.start()
    link: AgencyLink | None = None
    shots = tmp_path / "shots"
    shots.mkdir()
    try:
        await deferToThread(daemon.wait, "/readyz")
        key = made["key"]
        reissued = make_bill(daemon.api, key, "INV-1", "C-1001")
        twice = make_bill(daemon.api, key, "INV-2", "C-1002")
        make_bill(daemon.api, key, "INV-3", "C-1003")
        for n, day in ((1, 5), (2, 6)):
            old = make_bill(daemon.api, key, f"OLD-{n}", f"C-90{n}")
            await deferToThread(paid_last_month, site.config, old["cvs"]["barcode"], day)
        settlement = await deferToThread(settle_last_month, site, tmp_path, daemon.api, key)

        # The same slip paid at two stores, over the link: the later payment's refund case.
        link = start_agency_link(
            reactor,
            f"tcp:127.0.0.1:{site.link_port}",
            site.agency_tls(),
            "gateway",
            retry_delay=0.2,
            heartbeat_interval=5,
        )
        acks = [await link.send(r) for r in records_for([twice["cvs"]["barcode"]], 2)]
        headers = {"Authorization": f"Bearer {key}"}
        _, cases, _ = await deferToThread(
            http, "GET", daemon.api + "/v1/refund-cases", None, headers
        )
        (case,) = cases["data"]
        seen = await deferToThread(
            browse, daemon.api + "/console", made, case["case_id"], tmp_path, shots
        )
        _, resolved, _ = await deferToThread(
            http, "GET", daemon.api + "/v1/refund-cases?status=resolved", None, headers
        )
        _, bill, _ = await deferToThread(http, "GET", daemon.api + "/v1/bills/INV-1", None, headers)
        audit = await deferToThread(
            admin, site.config, "audit", "list", "--biller", "acme", "--limit", "200"
        )
    finally:
        if link is not None:
            await link.stop()
        await deferToThread(daemon.stop)

    console = daemon.api + "/console"
    assert acks == ["00", "00"] and case["reason"] == "double_payment"

    # Reissue and cancel.
    before, after = seen["barcode_before"], seen["reissued"]
    assert after["url"] == console + "/bills/acme/INV-1?done=reissued"
    assert "再発行しました" in after["done"] and after["amount"] == "¥6,500"
    assert after["barcode"] != before == reissued["cvs"]["human_readable"]
    assert "請求を発行" in after["timeline"]
    assert "請求を取り消しました" in seen["cancelled"]["done"]
    assert seen["cancelled"]["status"] == "取消済" and seen["cancelled"]["forms"] == 0
    assert (bill["status"], bill["reissue"], bill["amount"]) == ("cancelled", 1, 6500)

    # The upload: the bar moved forward only, to 100, without a reload; the result file.
    assert re.fullmatch(re.escape(console) + r"/bulk/bat_[0-9a-f]{24}", seen["job_url"])
    progress = seen["progress"]
    assert progress and progress[-1] == 100 and progress == sorted(progress), progress
    assert seen["progress_same_page"] is True
    assert "4000" in seen["bulk_summary"].replace(",", "")
    batch_id = seen["job_url"].rsplit("/", 1)[1]
    assert seen["result_name"] == f"{batch_id}.result.csv"
    rows = list(csv.DictReader(io.StringIO(seen["result"].decode("utf-8-sig"))))
    assert len(rows) == BULK_ROWS and {r["result"] for r in rows} == {"created"}
    assert rows[0]["bill_no"] == "BULK-00000" and rows[-1]["bill_no"] == f"BULK-{BULK_ROWS - 1:05d}"
    assert all(len(r["barcode"]) == 44 and r["page_url"].startswith(daemon.api) for r in rows)

    # The statement, read back from the PDF Chromium downloaded.
    assert seen["statement_name"] == f"{settlement['settlement_id']}.pdf"
    text = seen["statement"]
    assert "精算明細書" in text and "アクメ電力株式会社" in text
    assert re.search(rf"支払金額\s+¥{settlement['payout']:,}", text), text

    # The refund case, resolved by support.
    assert "二重入金" in seen["case_reason"]
    assert f"案件 {case['case_id']} を対応済みにしました" in seen["resolved_done"]
    assert seen["open_after"] == 0
    assert seen["resolved"] == ("返金済", "12/8 お客様の口座へ返金しました")
    assert [(c["case_id"], c["resolution"]) for c in resolved["data"]] == [
        (case["case_id"], "refunded")
    ]

    # Every action in the audit log, with the console user.
    actions = {(line["action"], line["actor"]) for line in audit["data"]}
    assert {
        ("bill.reissue", "user:clerk"),
        ("bill.cancel", "user:clerk"),
        ("bills.bulk_upload", "user:clerk"),
        ("settlement.download", "user:clerk"),
        ("refund_case.resolve", "user:desk"),
    } <= actions

    assert seen["chart_bars"] >= 1
    assert seen["csp"] == []  # nothing the console loads or runs was refused by its CSP
    assert seen["axe"] == [], json.dumps(seen["axe"], ensure_ascii=False, indent=1)
    for shot in shots.iterdir():
        assert shot.stat().st_size > 10_000, shot
    keep = os.environ.get("GATEWAY_CONSOLE_SHOTS")
    if keep:  # regenerate the README's screenshots
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, Path(keep) / shot.name)
