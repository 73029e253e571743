"""The payment page in a real browser: headless Chromium, driven by Playwright.

A customer opens the page on a phone: the biller, the amount, the barcode and the Pay-easy
numbers are there, and the barcode in the screenshot is one a store's scanner reads (zbarimg).
Then the simulator pays the bill at a store (a 速報 through the ingest) and, when the page's
3-minute refresh comes (the browser's clock is driven by ``page.clock``), the page says
お支払い済み and the barcode is gone.

Needs the PyPI package ``playwright`` (its bundled driver only; no browser is downloaded) and the
Debian package ``chromium`` (``/usr/bin/chromium``); zbarimg is Debian's ``zbar-tools``. A missing
one fails the test, naming the package.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from gateway.model import MessageKind
from tests.billing.test_payments_api import pay_at_store
from tests.conftest import Running
from tests.test_api import bill_body

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True}
REFRESH_MS = 180_000


def chromium() -> str:
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if path is None:
        pytest.fail(
            "chromium not found: install the Debian package chromium (apt-get install chromium)"
        )
    return path


def sync_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        pytest.fail("the PyPI package playwright is not installed (pip install playwright)")
    return start


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def zbar(png: Path) -> str:
    zbarimg = shutil.which("zbarimg")
    if zbarimg is None:
        pytest.fail("zbarimg not found: install the Debian package zbar-tools")
    done = subprocess.run(
        [zbarimg, "-q", "--raw", str(png)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"zbarimg read no barcode in {png}"
    return done.stdout.strip()


def customer_pays_after_the_page_is_open(
    url: str, database_url: str, bill: dict[str, Any], shots: Path
) -> dict[str, Any]:
    """The whole browser session, in one thread (Playwright's sync API stays in its thread)."""
    seen: dict[str, Any] = {}
    start = sync_playwright()
    executable = chromium()
    with start() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(locale="ja-JP", **PHONE)
            page = context.new_page()
            page.clock.install()  # the page's timers run on a clock the test drives
            response = page.goto(url, wait_until="load")
            assert response is not None
            seen["status"] = response.status
            seen["headers"] = response.headers
            seen["biller"] = page.locator("#biller").inner_text()
            seen["amount"] = page.locator("#amount").inner_text()
            seen["state"] = page.locator("#state").inner_text()
            seen["barcode_visible"] = page.locator("#cvs svg").is_visible()
            box = page.locator("#cvs svg").bounding_box()
            seen["barcode_box"] = box
            seen["barcode_text"] = page.locator("#barcode-text").inner_text()
            seen["numbers"] = {
                name: page.locator(f"#{name}").inner_text()
                for name in ("institution-code", "customer-number", "confirmation-number")
            }
            seen["before"] = shots / "payable.png"
            page.screenshot(path=str(seen["before"]), full_page=True)

            # The simulator pays the bill at a store: a 速報 through the ingest.
            seen["paid"] = pay_at_store(
                database_url, bill["cvs"]["barcode"], MessageKind.PRELIMINARY
            )

            page.clock.run_for(REFRESH_MS - 10_000)  # not yet: the page still offers the barcode
            seen["state_before_refresh"] = page.locator("#state").inner_text()
            with page.expect_navigation(wait_until="load"):
                page.clock.run_for(10_000)  # the 3-minute refresh reloads the page
            seen["state_after"] = page.locator("#state").inner_text()
            seen["svg_after"] = page.locator("svg").count()
            seen["payeasy_after"] = page.locator("#payeasy").count()
            seen["text_after"] = page.locator("body").inner_text()
            seen["after"] = shots / "paid.png"
            page.screenshot(path=str(seen["after"]), full_page=True)
        finally:
            browser.close()
    return seen


@pytest_twisted.ensureDeferred
async def test_the_page_in_chromium_shows_the_bill_then_paid_after_the_refresh(
    gateway: Running, tmp_path: Path
) -> None:
    acme = gateway.onboard("acme")
    status, bill, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("WEB-1"))
    assert status == 201, bill
    url = gateway.api + "/p/" + bill["page_url"].rsplit("/p/", 1)[1]

    seen = await deferToThread(
        customer_pays_after_the_page_is_open, url, gateway.config.database.url, bill, tmp_path
    )

    assert seen["status"] == 200
    assert seen["headers"]["referrer-policy"] == "no-referrer"
    assert seen["biller"] == "acme 株式会社"
    assert seen["amount"] == "¥5,400"
    assert seen["state"] == "お支払いいただけます"
    assert seen["barcode_visible"] is True
    assert seen["barcode_box"]["width"] >= 300  # fills the phone's width, in CSS pixels
    assert seen["barcode_text"] == bill["cvs"]["human_readable"]
    assert seen["numbers"] == {
        "institution-code": bill["payeasy"]["institution_code"],
        "customer-number": bill["payeasy"]["customer_number"],
        "confirmation-number": bill["payeasy"]["confirmation_number"],
    }
    width, height = png_size(seen["before"])
    assert width == 390 * 3 and height >= 844 * 3 - 3, (width, height)
    assert seen["before"].stat().st_size > 20_000  # a real picture, not a blank page
    assert zbar(seen["before"]) == bill["cvs"]["barcode"]  # a store's scanner reads the screen

    assert seen["paid"] == "applied"
    assert seen["state_before_refresh"] == "お支払いいただけます"
    assert seen["state_after"] == "お支払い済み"
    assert seen["svg_after"] == 0 and seen["payeasy_after"] == 0
    assert bill["payeasy"]["confirmation_number"] not in seen["text_after"]
    assert png_size(seen["after"])[0] == 390 * 3
    done = subprocess.run(
        [shutil.which("zbarimg") or "zbarimg", "-q", "--raw", str(seen["after"])],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode != 0 and not done.stdout  # nothing left to scan

    _, doc, _ = await gateway.request("GET", "/v1/bills/WEB-1", acme)
    assert doc["status"] == "paid"
