"""The center's screens of the console (issue 20) in real headless Chromium against the real
daemon (twistd subprocess), with a CVS agency connected over its link (mutual TLS) and a result
file its inbox refused.

The center's operator logs in for the first time, registers a biller on the billers screen,
suspends it on its page, and finds both in the audit log, with the user and what changed. On
the way: the search across billers finds a bill by its barcode as printed, the network screen
shows the agency's link open and the refused file with its report, and the settlements of every
biller are listed together. axe-core (vendored for the tests) finds no serious issue on any of
the center's screens, at desktop and phone widths. With ``GATEWAY_CONSOLE_SHOTS=docs/console``
the run also writes the screenshots the README shows.

Needs Playwright (PyPI) and Chromium (Debian), as tests/test_console_e2e.py.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from gateway.app.process import http
from simulators.cvs_link import AgencyLink, start_agency_link
from tests.conftest import admin
from tests.render.test_payment_page_browser import CHROMIUM_FLAGS, chromium, sync_playwright
from tests.test_console_e2e import DESKTOP, PHONE, log_in_first_time, make_bill, violations
from tests.test_console_screens_e2e import paid_last_month, settle_last_month, shoot
from tests.test_cvs_link_e2e import Site, make_site

pytestmark = pytest.mark.e2e

REASON = "料金未払いのため契約に基づき停止（12/8 承認）"


def prepare(site: Site) -> dict[str, Any]:
    """Schema, certificates, one biller with its key, the operator; nothing running yet."""
    admin(site.config, "migrate")
    admin(site.config, "certs", "make", str(site.tls))
    admin(
        site.config,
        "biller", "create", "--id", "acme", "--name", "アクメ電力株式会社", "--kana", "ｱｸﾒ",
        "--channels", "cvs,payeasy",
    )  # fmt: skip
    key = admin(site.config, "key", "create", "--biller", "acme")["key"]
    ops = admin(site.config, "user", "create", "--login", "ops", "--role", "operator")
    return {"key": key, "ops": ops["password"]}


def refused_file(inbox: Path) -> str:
    """A 確報 file the agency's inbox refuses, and the report it wrote."""
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "KAKUHO_20261208.txt").write_bytes(b"NOT A RESULT FILE\r\n")
    report = inbox / "rejected" / "KAKUHO_20261208.txt.report.txt"
    for _ in range(150):
        if report.exists():
            return report.read_text(encoding="utf-8")
        time.sleep(0.1)
    raise AssertionError("the inbox did not refuse the file")


def link_open(metrics: str) -> dict[str, Any]:
    """/readyz once it says the agency's link is open."""
    for _ in range(100):
        _, ready, _ = http("GET", metrics + "/readyz")
        if ready["checks"]["detail"].get("cvs", {}).get("default", {}).get("link") == "open":
            return dict(ready)
        time.sleep(0.1)
    raise AssertionError(f"the agency's link is not open: {ready}")


def browse(console: str, made: dict[str, Any], q: str, shots: Path) -> dict[str, Any]:
    """The whole browser session, in one thread (Playwright's sync API stays in its thread)."""
    seen: dict[str, Any] = {"csp": [], "axe": []}
    with sync_playwright()() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(locale="ja-JP", **DESKTOP)
            page = context.new_page()
            page.on(
                "console",
                lambda m: seen["csp"].append(m.text) if "Security Policy" in m.text else None,
            )
            log_in_first_time(page, console, "ops", made["ops"])

            # A new biller, from the billers screen.
            page.goto(console + "/billers", wait_until="load")
            page.fill("#biller_id", "kita-gas")
            page.fill("#name", "北ガス株式会社")
            page.fill("#kana", "キタガス")
            page.uncheck("#new-channel-transfer")
            with page.expect_navigation(wait_until="load"):
                page.click("#create")
            seen["created"] = {
                "url": page.url,
                "done": page.locator("#done").inner_text(),
                "state": page.locator("#state").inner_text(),
                "channels": page.locator("#channels").inner_text(),
                "code": page.locator("#code").inner_text(),
            }

            # Suspended on its page, with the reason.
            page.fill("#suspend-reason", REASON)
            page.check("#suspend-confirm")
            with page.expect_navigation(wait_until="load"):
                page.click("#suspend")
            seen["suspended"] = {
                "url": page.url,
                "done": page.locator("#done").inner_text(),
                "state": page.locator("#state").inner_text(),
                "resume_form": page.locator("#resume-form").count(),
            }
            shoot(page, shots, "center-biller-desktop")
            page.goto(console + "/billers", wait_until="load")
            seen["billers"] = page.locator("#billers tbody tr").all_inner_texts()
            shoot(page, shots, "center-billers-desktop")

            # The audit log, filtered by the new biller.
            page.goto(console + "/audit", wait_until="load")
            page.fill("#biller", "kita-gas")
            with page.expect_navigation(wait_until="load"):
                page.click("#filter")
            rows = page.locator("tr.audit-line")
            seen["audit"] = [
                (
                    rows.nth(n).locator(".actor").inner_text(),
                    rows.nth(n).locator(".action").inner_text(),
                )
                for n in range(rows.count())
            ]
            page.locator("tr.audit-line").first.locator("summary").click()
            seen["audit_after"] = (
                page.locator("tr.audit-line").first.locator("pre").last.inner_text()
            )
            shoot(page, shots, "center-audit-desktop")

            # The search across billers, the network, every biller's settlements.
            page.goto(console + "/search", wait_until="load")
            page.fill("#q", q)
            with page.expect_navigation(wait_until="load"):
                page.click("#search")
            seen["found"] = page.locator("a.bill-link").all_inner_texts()
            seen["found_biller"] = page.locator("td.biller").all_inner_texts()
            shoot(page, shots, "center-search-desktop")
            page.goto(console + "/network", wait_until="load")
            seen["links"] = page.locator("#links tbody tr").all_inner_texts()
            page.locator("details.rejected summary").first.click()
            seen["rejected"] = page.locator("details.rejected pre").first.inner_text()
            shoot(page, shots, "center-network-desktop")
            page.goto(console + "/settlements", wait_until="load")
            seen["settlements"] = page.locator("#settlements tbody tr").all_inner_texts()
            shoot(page, shots, "center-settlements-desktop")

            state = context.storage_state()
            screens = [
                "/billers",
                "/billers/kita-gas",
                "/billers/acme",
                "/search?q=" + q,
                "/audit",
                "/network",
                "/settlements",
                "/refund-cases",
            ]
            for size in (DESKTOP, PHONE):
                for path in screens:
                    seen["axe"] += violations(browser, console + path, state, size)
            phone = browser.new_context(locale="ja-JP", storage_state=state, **PHONE)
            small = phone.new_page()
            for path, name in (
                ("/billers", "center-billers-phone"),
                ("/billers/kita-gas", "center-biller-phone"),
                ("/network", "center-network-phone"),
                ("/audit?biller=kita-gas", "center-audit-phone"),
            ):
                small.goto(console + path, wait_until="load")
                shoot(small, shots, name)
            phone.close()
        finally:
            browser.close()
    return seen


@pytest_twisted.ensureDeferred
async def test_the_centers_screens_in_chromium(tmp_path: Path, database_url: str) -> None:
    from twisted.internet import reactor  # noqa: TID251 - the link lives on the test's reactor

    site = make_site(tmp_path, database_url)
    made = await deferToThread(prepare, site)
    daemon = site.start()
    link: AgencyLink | None = None
    shots = tmp_path / "shots"
    shots.mkdir()
    try:
        await deferToThread(daemon.wait, "/readyz")
        key = made["key"]
        bill = make_bill(daemon.api, key, "INV-1", "C-1001")
        old = make_bill(daemon.api, key, "OLD-1", "C-901")
        await deferToThread(paid_last_month, site.config, old["cvs"]["barcode"], 5)
        settlement = await deferToThread(settle_last_month, site, tmp_path, daemon.api, key)
        link = start_agency_link(
            reactor,
            f"tcp:127.0.0.1:{site.link_port}",
            site.agency_tls(),
            "gateway",
            retry_delay=0.2,
            heartbeat_interval=5,
        )
        ready = await deferToThread(link_open, daemon.metrics)
        report = await deferToThread(refused_file, tmp_path / "inbox")
        seen = await deferToThread(
            browse, daemon.api + "/console", made, bill["cvs"]["human_readable"], shots
        )
        audit = await deferToThread(
            admin, site.config, "audit", "list", "--biller", "kita-gas", "--limit", "50"
        )
        shown = await deferToThread(admin, site.config, "biller", "show", "--id", "kita-gas")
    finally:
        if link is not None:
            await link.stop()
        await deferToThread(daemon.stop)

    console = daemon.api + "/console"
    # The biller, created and then suspended, by the operator's forms.
    created = seen["created"]
    assert created["url"] == console + "/billers/kita-gas?done=created"
    assert "収納企業を登録しました" in created["done"] and created["state"] == "利用中"
    assert created["channels"] == "コンビニ・ペイジー" and created["code"] == shown["code"]
    assert seen["suspended"]["url"] == console + "/billers/kita-gas?done=suspended"
    assert "停止しました" in seen["suspended"]["done"] and seen["suspended"]["state"] == "停止中"
    assert seen["suspended"]["resume_form"] == 1
    assert shown["suspended_at"] is not None and shown["kana"] == "ｷﾀｶﾞｽ"
    assert any("北ガス株式会社" in row and "停止中" in row for row in seen["billers"])

    # Both in the audit log, with the user and what changed, newest first.
    assert seen["audit"] == [("user:ops", "biller.suspend"), ("user:ops", "biller.create")]
    assert REASON in seen["audit_after"] and "suspended_at" in seen["audit_after"]
    assert [(x["actor"], x["action"]) for x in audit["data"]] == seen["audit"]
    assert audit["data"][0]["after"]["reason"] == REASON

    # The search, the network and the settlements of every biller.
    assert seen["found"] == ["INV-1"] and seen["found_biller"] == ["アクメ電力株式会社（acme）"]
    assert ready["checks"]["detail"]["cvs"]["default"]["link"] == "open"
    (link_row,) = seen["links"]
    assert "コンビニ速報（default）" in link_row and "接続中" in link_row
    assert seen["rejected"].strip() == report.strip()
    (row,) = seen["settlements"]
    assert "アクメ電力株式会社" in row and f"¥{settlement['payout']:,}" in row

    assert seen["csp"] == []  # nothing the console loads or runs was refused by its CSP
    assert seen["axe"] == [], json.dumps(seen["axe"], ensure_ascii=False, indent=1)
    for shot in shots.iterdir():
        assert shot.stat().st_size > 10_000, shot
    keep = os.environ.get("GATEWAY_CONSOLE_SHOTS")
    if keep:  # regenerate the README's screenshots
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, Path(keep) / shot.name)
