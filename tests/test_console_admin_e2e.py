"""A biller's administration in the console (issue 20) in real headless Chromium against the real
daemon (twistd subprocess), with a real webhook receiver on 127.0.0.1.

A biller_admin logs in for the first time, registers a webhook endpoint (the signing secret it
reads on the page is the one the receiver verifies the deliveries with), follows a bill's event
into the endpoint's delivery log and redelivers it; creates an API key (shown once, with its
warning), uses it against the API, revokes it (after the confirmation box) and sees the API
refuse it; creates a user whose one-time password is shown once. axe-core finds no serious
issue on the new screens at desktop and phone widths. With ``GATEWAY_CONSOLE_SHOTS=docs/console``
the run also writes the screenshots the README shows.

Needs Playwright (PyPI), Chromium and a Japanese font (Debian), as tests/test_console_e2e.py.
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
from tests.conftest import admin
from tests.render.test_payment_page_browser import CHROMIUM_FLAGS, chromium, sync_playwright
from tests.test_console_e2e import DESKTOP, PHONE, log_in_first_time, make_bill, violations
from tests.test_cvs_link_e2e import Site, make_site
from tests.webhooks.test_webhooks import Receiver

pytestmark = pytest.mark.e2e


def prepare(site: Site) -> dict[str, Any]:
    """Schema, certificates, the biller with a key (for its bills), its admin; nothing running."""
    admin(site.config, "migrate")
    admin(site.config, "certs", "make", str(site.tls))
    admin(
        site.config,
        "biller", "create", "--id", "acme", "--name", "アクメ電力株式会社", "--kana", "ｱｸﾒ",
        "--channels", "cvs,payeasy",
    )  # fmt: skip
    key = admin(site.config, "key", "create", "--biller", "acme", "--name", "請求システム")["key"]
    boss = admin(
        site.config, "user", "create", "--login", "acme-admin", "--role", "biller_admin",
        "--biller", "acme",
    )  # fmt: skip
    return {"key": key, "boss": boss["password"]}


def until(page: Any, url: str, check: str, timeout: float = 60.0) -> None:
    """Reload ``url`` until the selector ``check`` is on it."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(url, wait_until="load")
        if page.locator(check).count():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{check} never appeared on {url}")
        time.sleep(0.3)


def shoot(page: Any, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def browse(
    console: str, api: str, made: dict[str, Any], receiver: Receiver, shots: Path
) -> dict[str, Any]:
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
            log_in_first_time(page, console, "acme-admin", made["boss"])

            # A webhook endpoint; its secret, shown once, is what the receiver checks with.
            page.goto(console + "/webhooks", wait_until="load")
            page.fill("#url", receiver.base + "/acme")
            with page.expect_navigation(wait_until="load"):
                page.click("#create-endpoint")
            secret = page.locator("#secret").input_value()
            receiver.secrets["/acme"] = secret
            seen["secret"] = secret
            seen["endpoint_id"] = endpoint_id = page.locator("#created-id").inner_text()
            seen["endpoints"] = page.locator("a.endpoint-link").all_inner_texts()

            # A bill: its event is delivered; the delivery log shows it; it is sent again.
            make_bill(api, made["key"], "INV-1", "C-1001")
            log = f"{console}/webhooks/acme/{endpoint_id}"
            until(page, log, "tr.delivery .status-delivery-succeeded")
            first = page.locator("tr.delivery").first
            seen["delivered"] = (
                first.locator(".delivery-state").inner_text(),
                first.locator(".attempts").inner_text(),
                first.locator(".last-status").inner_text().split("\n")[0],
            )
            with page.expect_navigation(wait_until="load"):
                first.locator("button.redeliver").click()
            seen["redeliver_url"] = page.url
            seen["redeliver_done"] = page.locator("#done").inner_text()
            until(page, page.url, "tr.delivery[id$='-1'] .status-delivery-succeeded")
            seen["log"] = [
                (
                    row.get_attribute("id"),
                    row.locator(".delivery-state").inner_text(),
                    row.locator(".last-status").inner_text().split("\n")[0],
                )
                for row in page.locator("tr.delivery").all()
            ]
            shoot(page, shots, "webhook-desktop")
            page.goto(console + "/webhooks", wait_until="load")
            shoot(page, shots, "webhooks-desktop")

            # An API key: shown once with its warning; it works until it is revoked.
            page.goto(console + "/api-keys", wait_until="load")
            page.fill("#key-name", "会計システム（本番）")
            with page.expect_navigation(wait_until="load"):
                page.click("#create-key")
            key = page.locator("#new-key").input_value()
            seen["key_warning"] = page.locator("#key-warning").inner_text()
            seen["key_prefix_shown"] = (
                key[:7] + "…" in page.locator(".key-prefix").all_inner_texts()
            )
            shoot(page, shots, "api-keys-desktop")
            headers = {"Authorization": f"Bearer {key}"}
            seen["with_key"] = http("GET", api + "/v1/bills", None, headers)[0]
            page.goto(console + "/api-keys", wait_until="load")
            row = page.locator("tr", has=page.locator(".key-name", has_text="会計システム（本番）"))
            seen["last_used"] = row.locator(".key-used").inner_text()
            seen["key_on_list"] = key in page.content()
            row.locator("input[name=confirm]").check()
            with page.expect_navigation(wait_until="load"):
                row.locator("button.revoke").click()
            seen["revoked_done"] = page.locator("#done").inner_text()
            seen["revoked_state"] = row.locator(".key-state").inner_text()
            seen["after_revoke"] = http("GET", api + "/v1/bills", None, headers)[0]

            # A user, with its one-time password.
            page.goto(console + "/users", wait_until="load")
            page.fill("#new-login", "acme-suzuki")
            with page.expect_navigation(wait_until="load"):
                page.click("#create-user")
            seen["one_time"] = page.locator("#one-time-password").input_value()
            seen["users"] = page.locator("#users tbody tr").count()
            shoot(page, shots, "users-desktop")

            state = context.storage_state()
            screens = ["/webhooks", f"/webhooks/acme/{endpoint_id}", "/api-keys", "/users"]
            for size in (DESKTOP, PHONE):
                for path in screens:
                    seen["axe"] += violations(browser, console + path, state, size)
            phone = browser.new_context(locale="ja-JP", storage_state=state, **PHONE)
            small = phone.new_page()
            small.goto(log, wait_until="load")
            shoot(small, shots, "webhook-phone")
            small.goto(console + "/api-keys", wait_until="load")
            shoot(small, shots, "api-keys-phone")
            phone.close()
        finally:
            browser.close()
    return seen


@pytest_twisted.ensureDeferred
async def test_a_billers_administration_in_chromium(tmp_path: Path, database_url: str) -> None:
    site = make_site(tmp_path, database_url)
    made = await deferToThread(prepare, site)
    receiver = Receiver()
    receiver.start()
    daemon = site.start()
    shots = tmp_path / "shots"
    shots.mkdir()
    try:
        await deferToThread(daemon.wait, "/readyz")
        seen = await deferToThread(
            browse, daemon.api + "/console", daemon.api, made, receiver, shots
        )
        audit = await deferToThread(admin, site.config, "audit", "list", "--biller", "acme")
        users = await deferToThread(admin, site.config, "user", "list", "--biller", "acme")
    finally:
        await deferToThread(daemon.stop)
        await receiver.stop()

    console = daemon.api + "/console"
    endpoint_id = seen["endpoint_id"]

    # The endpoint: its secret signs what the receiver got, the first time and the redelivery.
    assert seen["secret"].startswith("whsec_") and seen["endpoints"] == [receiver.base + "/acme"]
    arrivals = receiver.at("/acme")
    assert len(arrivals) == 2 and arrivals[0].event_id == arrivals[1].event_id
    assert [a.verified for a in arrivals] == ["ok", "ok"]
    assert json.loads(arrivals[0].body)["type"] == "bill.created"
    assert seen["delivered"] == ("配信済", "1", "HTTP 200")
    event = arrivals[0].event_id
    assert (
        seen["redeliver_url"]
        == f"{console}/webhooks/acme/{endpoint_id}?event={event}&done=redelivered"
    )
    assert "再送の配信待ちに入れました" in seen["redeliver_done"]
    assert seen["log"] == [
        (f"delivery-{event}-1", "配信済", "HTTP 200"),
        (f"delivery-{event}-0", "配信済", "HTTP 200"),
    ]

    # The key: shown once, worked, revoked, refused.
    assert "このキーは今回だけ表示されます" in seen["key_warning"]
    assert seen["key_prefix_shown"] and seen["key_on_list"] is False
    assert seen["with_key"] == 200 and seen["last_used"] != "未使用"
    assert "を無効にしました" in seen["revoked_done"] and seen["revoked_state"].startswith("無効")
    assert seen["after_revoke"] == 401

    # The user: its one-time password, to be changed at the first login.
    assert len(seen["one_time"]) == 20 and seen["users"] == 2
    (suzuki,) = [u for u in users["users"] if u["login"] == "acme-suzuki"]
    assert (suzuki["role"], suzuki["must_change_password"]) == ("biller_staff", True)

    actions = {(line["action"], line["actor"]) for line in audit["data"]}
    assert {
        ("webhook_endpoint.create", "user:acme-admin"),
        ("event.redeliver", "user:acme-admin"),
        ("key.create", "user:acme-admin"),
        ("key.revoke", "user:acme-admin"),
        ("console_user.create", "user:acme-admin"),
    } <= actions
    text = json.dumps(audit)
    assert seen["secret"] not in text and seen["one_time"] not in text

    assert seen["csp"] == []  # nothing the console loads or runs was refused by its CSP
    assert seen["axe"] == [], json.dumps(seen["axe"], ensure_ascii=False, indent=1)
    for shot in shots.iterdir():
        assert shot.stat().st_size > 10_000, shot
    keep = os.environ.get("GATEWAY_CONSOLE_SHOTS")
    if keep:  # regenerate the README's screenshots
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, Path(keep) / shot.name)
