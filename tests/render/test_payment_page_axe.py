"""The payment page in headless Chromium checked by axe-core (tests/vendor/axe-core), as the
console's screens are (tests/test_console_e2e.py): no serious or critical issue on a payable page
that names the chains its slip can be paid at, on a phone and on a desktop, nor once it is paid.

Needs what tests/render/test_payment_page_browser.py needs (playwright, Debian's chromium).
"""

from __future__ import annotations

import json
from typing import Any

import pytest_twisted
from twisted.internet.threads import deferToThread

from gateway.model import MessageKind
from tests.billing.test_payments_api import pay_at_store
from tests.conftest import Running, admin
from tests.render.test_payment_page_browser import CHROMIUM_FLAGS, chromium, sync_playwright
from tests.test_api import bill_body
from tests.test_console_e2e import DESKTOP, PHONE, violations


def check_pages(url: str, database_url: str, barcode: str) -> dict[str, Any]:
    seen: dict[str, Any] = {"axe": []}
    start = sync_playwright()
    with start() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(locale="ja-JP", **PHONE)
            page = context.new_page()
            page.goto(url, wait_until="load")
            seen["chains"] = page.locator("#chains").inner_text()
            seen["chains_visible"] = page.locator("#chains").is_visible()
            context.close()
            for size in (PHONE, DESKTOP):
                seen["axe"] += violations(browser, url, None, size)
            seen["paid"] = pay_at_store(database_url, barcode, MessageKind.PRELIMINARY)
            seen["axe"] += violations(browser, url, None, PHONE)
        finally:
            browser.close()
    return seen


@pytest_twisted.ensureDeferred
async def test_a_page_naming_its_chains_passes_axe(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    admin(gateway.config_path, "biller", "set", "--id", "acme", "--chains", "010,020,820")
    status, bill, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("AXE-1"))
    assert status == 201, bill
    url = gateway.api + "/p/" + bill["page_url"].rsplit("/p/", 1)[1]

    seen = await deferToThread(
        check_pages, url, gateway.config.database.url, bill["cvs"]["barcode"]
    )

    assert seen["chains"] == "お支払いいただけるコンビニ：セブン-イレブン、ローソン"
    assert seen["chains_visible"] is True
    assert seen["paid"] == "applied"
    assert seen["axe"] == [], json.dumps(seen["axe"], ensure_ascii=False, indent=1)
