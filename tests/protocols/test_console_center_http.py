"""The center's desk in the console over HTTP, through the real service (in this process): the
search across billers by each identifier a caller reads out, linked to the bill's page; the
audit log filtered by user, biller, action and day, and paged; and who may open them (a
biller's user finds neither). In a real browser: tests/test_console_center_e2e.py."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest_twisted

from gateway.model import JST, MessageKind
from gateway.store import create_db_engine
from gateway.store.audit import record
from tests.billing.test_payments_api import pay
from tests.conftest import Biller, Running
from tests.protocols.test_console_http import Client, audit, logged_in
from tests.test_api import bill_body


async def make_bill(gateway: Running, who: Biller, bill_no: str, customer_no: str) -> Any:
    body = bill_body(bill_no)
    body["customer"] = {**body["customer"], "customer_no": customer_no}
    status, bill, _ = await gateway.request("POST", "/v1/bills", who, body)
    assert status == 201, bill
    return bill


def found_on(page: str) -> list[str]:
    """The bills found, as the links to their pages."""
    return re.findall(r'<a class="bill-link" href="/console/bills/([^"]+)">', page)


async def search(client: Client, q: str) -> tuple[int, str]:
    from urllib.parse import quote

    status, page, _ = await client.get("/console/search?q=" + quote(q))
    return status, page


@pytest_twisted.ensureDeferred
async def test_support_finds_a_bill_across_billers_by_each_identifier(gateway: Running) -> None:
    acme, beta = gateway.onboard("acme"), gateway.onboard("beta")
    mine = await make_bill(gateway, acme, "INV-1", "C-1001")
    await make_bill(gateway, beta, "INV-1", "K-77")  # the same bill number at another biller
    await make_bill(gateway, acme, "INV-2", "C-1002")
    assert pay(gateway, mine["cvs"]["barcode"], MessageKind.PRELIMINARY) == "applied"

    desk = await logged_in(gateway, "desk", "support", None)
    status, page = await search(desk, "INV-1")
    assert status == 200 and sorted(found_on(page)) == ["acme/INV-1", "beta/INV-1"]
    assert "acme 株式会社（acme）" in page and "beta 株式会社（beta）" in page
    barcode = mine["cvs"]["barcode"]
    payeasy = mine["payeasy"]["customer_number"]
    for q, matched in (
        ("C-1001", "お客様コード"),
        (barcode, "バーコード"),
        (mine["cvs"]["human_readable"], "バーコード"),  # as printed, with its separators
        (barcode.translate(str.maketrans("0123456789", "０１２３４５６７８９")), "バーコード"),
        (payeasy, "お客様番号（ペイジー）"),
        ("000020-0110002", "支払った店舗・銀行"),
    ):
        status, page = await search(desk, q)
        assert status == 200 and found_on(page) == ["acme/INV-1"], q
        assert matched in page, q
    status, page = await search(desk, "NOPE-9")
    assert status == 200 and "該当する請求はありません" in page
    status, page = await search(desk, "山田")
    assert status == 400 and "半角の英数字と記号" in page

    status, page, _ = await desk.get("/console/bills/beta/INV-1")  # the bill's own page
    assert status == 200 and "beta 株式会社" in page

    ops = await logged_in(gateway, "ops", "operator", None)
    assert found_on((await search(ops, "K-77"))[1]) == ["beta/INV-1"]
    finance = await logged_in(gateway, "books", "finance", None)
    assert (await search(finance, "INV-1"))[0] == 404
    clerk = await logged_in(gateway, "clerk", "biller_staff", "acme")
    assert (await search(clerk, "INV-1"))[0] == 404
    _, home, _ = await clerk.get("/console/")
    assert "/console/search" not in home and "/console/audit" not in home


@pytest_twisted.ensureDeferred
async def test_the_audit_log_filtered_and_paged(gateway: Running) -> None:
    gateway.onboard("acme")
    gateway.onboard("beta")
    # Sixty older lines of the command line, two days ago (JST).
    engine = create_db_engine(gateway.config.database.url, 1)
    old = datetime.now(JST).replace(hour=12) - timedelta(days=2)
    with engine.begin() as conn:
        for n in range(60):
            record(conn, "cli:root", "bill.purge", f"bill:acme/OLD-{n}", old, biller_id="acme")
    engine.dispose()
    ops = await logged_in(gateway, "ops", "operator", None)
    _, page, _ = await ops.get("/console/billers/beta")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    status, _, _ = await ops.post(
        "/console/billers/beta/suspend", {"csrf_token": csrf.group(1), "reason": "解約"}
    )
    assert status == 303

    status, page, _ = await ops.get("/console/audit")
    assert status == 200
    lines = re.findall(r'<tr class="audit-line" id="audit-(\d+)">', page)
    assert len(lines) == 50 and 'id="next"' in page
    first = page.index('class="mono action">biller.suspend')
    assert first < page.index('class="mono action">bill.purge')  # newest first
    assert "&#34;reason&#34;: &#34;解約&#34;" in page  # what changed, readable
    following = re.search(r'id="next" href="([^"]+)"', page)
    assert following
    _, rest, _ = await ops.get(following.group(1).replace("&amp;", "&"))
    more = re.findall(r'<tr class="audit-line" id="audit-(\d+)">', rest)
    assert more and not set(more) & set(lines)
    everything = audit(gateway, "--limit", "200")
    assert len(lines) + len(more) == len(everything)

    def shown(page: str) -> list[tuple[str, str]]:
        return re.findall(
            r'<td data-label="操作者" class="mono actor">([^<]+)</td>\s*'
            r'<td data-label="操作" class="mono action">([^<]+)</td>',
            page,
        )

    _, page, _ = await ops.get("/console/audit?user=ops")
    assert set(shown(page)) == {
        ("user:ops", "console.login"),
        ("user:ops", "console_user.password"),
        ("user:ops", "biller.suspend"),
    }
    _, page, _ = await ops.get("/console/audit?biller=beta&action=biller.suspend")
    assert shown(page) == [("user:ops", "biller.suspend")]
    today = datetime.now(JST).date()
    _, page, _ = await ops.get(f"/console/audit?from={today}&to={today}&user=cli:root")
    assert ("cli:root", "biller.create") in shown(page)
    assert ("cli:root", "bill.purge") not in shown(page)
    day = (today - timedelta(days=2)).isoformat()
    _, page, _ = await ops.get(f"/console/audit?from={day}&to={day}")
    assert len(shown(page)) == 50 and set(shown(page)) == {("cli:root", "bill.purge")}
    status, page, _ = await ops.get("/console/audit?user=%E5%B1%B1&from=2026-13-01")
    assert status == 400 and "操作者：" in page and "日付（から）：" in page

    for role in ("support", "finance"):
        center = await logged_in(gateway, role + "-1", role, None)
        assert (await center.get("/console/audit?biller=beta"))[0] == 200
    clerk = await logged_in(gateway, "clerk", "biller_admin", "acme")
    assert (await clerk.get("/console/audit"))[0] == 404
    assert (await clerk.get("/console/audit?biller=acme"))[0] == 404
