"""The console (issue 20) in real headless Chromium against the real daemon (twistd subprocess),
with a 速報 arriving over the CVS link (mutual TLS) while a bill's page is open.

A biller's clerk logs in with the one-time password ``gateway-admin user create`` printed,
changes it, finds a bill by each identifier a customer reads out (bill number, customer number,
the 44-digit barcode, its human-readable line, the Pay-easy お客様番号), opens it, and sees its
timeline gain the 速報 without a reload (htmx under the console's CSP). A form sent without its
CSRF token is refused. Another biller's bill is not found by URL nor by search, while a center
user finds both. When the operator disables the clerk, the open page goes to the login form by
itself. axe-core (tests/vendor/axe-core) finds no serious issue on the login, bills and bill
screens, at desktop and phone widths.

Needs Playwright (PyPI) and Chromium (Debian), as tests/render/test_payment_page_browser.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import blockingCallFromThread, deferToThread

from gateway.app.process import http
from simulators.cvs_link import AgencyLink, start_agency_link
from tests.conftest import admin, due
from tests.render.test_payment_page_browser import CHROMIUM_FLAGS, chromium, sync_playwright
from tests.test_cvs_link_e2e import Site, make_site, records_for

pytestmark = pytest.mark.e2e

AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text(encoding="utf-8")
AXE_RUN = """async () => {
  const result = await axe.run(document, {runOnly: {type: 'tag',
    values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)}));
}"""
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
NEW_PASSWORD = "correct-horse-battery-staple"


def prepare(site: Site) -> dict[str, Any]:
    """Schema, certificates, two billers with a key each, the users; nothing running yet."""
    admin(site.config, "migrate")
    admin(site.config, "certs", "make", str(site.tls))
    keys = {}
    for biller in ("acme", "beta"):
        admin(
            site.config,
            "biller",
            "create",
            "--id",
            biller,
            "--name",
            f"{biller} 株式会社",
            "--kana",
            "ﾃｽﾄ",
            "--channels",
            "cvs,payeasy",
        )
        keys[biller] = admin(site.config, "key", "create", "--biller", biller)["key"]
    clerk = admin(
        site.config, "user", "create", "--login", "clerk", "--role", "biller_staff", "--biller",
        "acme",
    )  # fmt: skip
    desk = admin(site.config, "user", "create", "--login", "desk", "--role", "support")
    return {"keys": keys, "clerk": clerk["password"], "desk": desk["password"]}


def make_bill(api: str, key: str, bill_no: str, customer_no: str) -> dict[str, Any]:
    body = {
        "bill_no": bill_no,
        "amount": 5400,
        "due_date": due(30),
        "channels": ["cvs", "payeasy"],
        "customer": {"customer_no": customer_no, "name": "山田 太郎"},
    }
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    status, bill, _ = http("POST", api + "/v1/bills", body, headers)
    assert status == 201, bill
    return dict(bill)


def violations(browser: Any, url: str, state: Any, size: dict[str, Any]) -> list[dict[str, Any]]:
    """axe's serious and critical violations on ``url``, in a context that lets the test inject
    axe (the console's CSP would refuse an inline script, as it should)."""
    context = browser.new_context(locale="ja-JP", bypass_csp=True, storage_state=state, **size)
    try:
        page = context.new_page()
        page.goto(url, wait_until="load")
        page.add_script_tag(content=AXE)
        found: list[dict[str, Any]] = page.evaluate(AXE_RUN)
        return [{"url": url, **v} for v in found if v["impact"] in ("serious", "critical")]
    finally:
        context.close()


def log_in_first_time(page: Any, console: str, login: str, password: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    page.goto(console + "/", wait_until="load")
    seen["redirected_to"] = page.url
    page.fill("#login", login)
    page.fill("#password", password)
    with page.expect_navigation(wait_until="load"):
        page.click("#submit")
    seen["after_login"] = page.url
    seen["first_time"] = page.locator("#first-time").inner_text()
    page.fill("#current_password", password)
    page.fill("#new_password", NEW_PASSWORD)
    page.fill("#confirm_password", NEW_PASSWORD)
    with page.expect_navigation(wait_until="load"):
        page.click("#change")
    seen["after_change"] = page.url
    seen["notice"] = page.locator("#notice").inner_text()
    return seen


def search(page: Any, console: str, q: str) -> tuple[list[str], str]:
    """The bills ``q`` finds (their links) and what the first one matched by."""
    page.goto(console + "/bills", wait_until="load")
    page.fill("#q", q)
    with page.expect_navigation(wait_until="load"):
        page.click("#search")
    links = [a.get_attribute("href") or "" for a in page.locator("a.bill-link").all()]
    matched = page.locator(".matched").first.inner_text() if links else ""
    return links, matched


def timeline(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#timeline .what").all_inner_texts()]


def browse(
    console: str,
    passwords: dict[str, str],
    bills: dict[str, dict[str, Any]],
    link: AgencyLink,
    config: Path,
    shots: Path,
) -> dict[str, Any]:
    """The whole browser session, in one thread (Playwright's sync API stays in its thread)."""
    from twisted.internet import reactor  # noqa: TID251 - the link lives on the test's reactor

    seen: dict[str, Any] = {"csp": [], "axe": []}
    mine, theirs = bills["acme"], bills["beta"]
    with sync_playwright()() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(locale="ja-JP", **DESKTOP)
            page = context.new_page()
            page.on(
                "console",
                lambda m: seen["csp"].append(m.text) if "Security Policy" in m.text else None,
            )
            seen["axe"] += violations(browser, console + "/login", None, DESKTOP)
            seen["axe"] += violations(browser, console + "/login", None, PHONE)
            seen["clerk"] = log_in_first_time(page, console, "clerk", passwords["clerk"])

            # A bill found by each identifier; another biller's by none.
            seen["search"] = {
                name: search(page, console, q)
                for name, q in {
                    "bill_no": mine["bill_no"],
                    "customer_no": mine["customer"]["customer_no"],
                    "barcode": mine["cvs"]["barcode"],
                    "human_readable": mine["cvs"]["human_readable"],
                    "payeasy": mine["payeasy"]["customer_number"],
                }.items()
            }
            seen["search_theirs"] = {
                q: search(page, console, q)[0]
                for q in (
                    theirs["bill_no"],
                    theirs["customer"]["customer_no"],
                    theirs["cvs"]["barcode"],
                    theirs["payeasy"]["customer_number"],
                )
            }
            response = page.goto(console + "/bills?biller=beta", wait_until="load")
            seen["list_biller_beta"] = [
                a.get_attribute("href") for a in page.locator("a.bill-link").all()
            ]
            response = page.goto(f"{console}/bills/beta/{theirs['bill_no']}", wait_until="load")
            assert response is not None
            seen["theirs_by_url"] = (response.status, page.locator("h1").inner_text())

            state = context.storage_state()
            bills_url = f"{console}/bills?q={mine['customer']['customer_no']}"
            bill_url = f"{console}/bills/acme/{mine['bill_no']}"
            for size in (DESKTOP, PHONE):
                seen["axe"] += violations(browser, bills_url, state, size)
                seen["axe"] += violations(browser, bill_url, state, size)
            page.goto(bills_url, wait_until="load")
            page.screenshot(path=str(shots / "bills-desktop.png"), full_page=True)

            # The bill's page; a 速報 arrives over the link; htmx brings it into the timeline.
            with page.expect_navigation(wait_until="load"):
                page.click("a.bill-link")
            seen["bill_url"] = page.url
            seen["bill_amount"] = page.locator("#amount").inner_text()
            seen["timeline_before"] = timeline(page)
            page.evaluate("window.stillTheSamePage = true")
            seen["ack"] = blockingCallFromThread(
                reactor, link.send, records_for([mine["cvs"]["barcode"]], 1)[0]
            )
            page.wait_for_selector("#timeline .entry-cvs-preliminary", timeout=60_000)
            seen["timeline_after"] = timeline(page)
            seen["no_reload"] = page.evaluate("window.stillTheSamePage === true")
            page.screenshot(path=str(shots / "bill-desktop.png"), full_page=True)

            # A form without its CSRF token: refused, nothing done.
            page.evaluate(
                "document.querySelector('form[action$=\"/logout\"] input[name=csrf_token]')"
                ".remove()"
            )
            with page.expect_navigation(wait_until="load") as refused:
                page.click("#logout")
            seen["no_csrf"] = (refused.value.status, page.locator("h1").inner_text())
            response = page.goto(bill_url, wait_until="load")
            assert response is not None
            seen["after_no_csrf"] = (response.status, page.url)

            # The center's support desk sees every biller's bills.
            center = browser.new_context(locale="ja-JP", **PHONE)
            desk = center.new_page()
            seen["desk"] = log_in_first_time(desk, console, "desk", passwords["desk"])
            seen["desk_finds"] = search(desk, console, theirs["customer"]["customer_no"])[0]
            desk.screenshot(path=str(shots / "bills-phone.png"), full_page=True)
            center.close()

            # Disabled while the bill's page is open: the next poll sends it to the login form.
            seen["disabled"] = admin(config, "user", "disable", "--login", "clerk")
            page.wait_for_url("**/console/login", timeout=60_000)
            seen["after_disable"] = page.url
            response = page.goto(console + "/bills", wait_until="load")
            seen["bills_after_disable"] = page.url
        finally:
            browser.close()
    return seen


@pytest_twisted.ensureDeferred
async def test_the_console_in_chromium(tmp_path: Path, database_url: str) -> None:
    from twisted.internet import reactor  # noqa: TID251

    site = make_site(tmp_path, database_url)
    made = await deferToThread(prepare, site)
    daemon = site.start()
    link: AgencyLink | None = None
    try:
        await deferToThread(daemon.wait, "/readyz")
        bills = {
            "acme": make_bill(daemon.api, made["keys"]["acme"], "INV-1", "C-1001"),
            "beta": make_bill(daemon.api, made["keys"]["beta"], "BETA-1", "C-2002"),
        }
        link = start_agency_link(
            reactor,
            f"tcp:127.0.0.1:{site.link_port}",
            site.agency_tls(),
            "gateway",
            retry_delay=0.2,
            heartbeat_interval=5,
        )
        seen = await deferToThread(
            browse, daemon.api + "/console", made, bills, link, site.config, tmp_path
        )
    finally:
        if link is not None:
            await link.stop()
        await deferToThread(daemon.stop)

    console = daemon.api + "/console"
    for who in ("clerk", "desk"):
        first = seen[who]
        assert first["redirected_to"] == console + "/login"
        assert first["after_login"] == console + "/password"
        assert "初回ログイン" in first["first_time"]
        assert first["after_change"] == console + "/?changed=1"
        assert first["notice"] == "パスワードを変更しました。"

    link_to_mine = "/console/bills/acme/INV-1"
    assert seen["search"] == {
        "bill_no": ([link_to_mine], "一致：請求番号"),
        "customer_no": ([link_to_mine], "一致：お客様コード"),
        "barcode": ([link_to_mine], "一致：バーコード"),
        "human_readable": ([link_to_mine], "一致：バーコード"),
        "payeasy": ([link_to_mine], "一致：お客様番号（ペイジー）"),
    }
    assert all(found == [] for found in seen["search_theirs"].values()), seen["search_theirs"]
    assert seen["list_biller_beta"] == [link_to_mine]  # ?biller= of another: its own still
    assert seen["theirs_by_url"] == (404, "見つかりません")
    assert seen["desk_finds"] == ["/console/bills/beta/BETA-1"]

    assert seen["bill_url"] == daemon.api + link_to_mine
    assert seen["bill_amount"] == "¥5,400"
    assert "請求を発行" in seen["timeline_before"]
    assert "速報（コンビニ）" not in seen["timeline_before"]
    assert seen["ack"] == "00"
    assert "速報（コンビニ）" in seen["timeline_after"]
    assert seen["no_reload"] is True  # htmx swapped the timeline in, under the CSP
    assert seen["csp"] == []  # nothing the console loads or runs was refused by its CSP

    assert seen["no_csrf"] == (403, "送信できませんでした")
    assert seen["after_no_csrf"] == (200, daemon.api + link_to_mine)  # still logged in

    assert seen["disabled"]["sessions_ended"] == 1
    assert seen["after_disable"] == console + "/login"
    assert seen["bills_after_disable"] == console + "/login"

    assert seen["axe"] == [], json.dumps(seen["axe"], ensure_ascii=False, indent=1)
    for shot in ("bills-desktop.png", "bill-desktop.png", "bills-phone.png"):
        assert (tmp_path / shot).stat().st_size > 10_000
