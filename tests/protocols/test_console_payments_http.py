"""The console's payments list and CSV export over HTTP, through the real service (in this
process): filters and pages, a biller's user who sees and exports only its own biller's
payments whatever the query says, a center user who sees every biller's, the export in UTF-8
and Shift_JIS, and its audit line."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
import pytest_twisted

from gateway.model import MessageKind
from tests.billing.test_payments_api import pay
from tests.conftest import Running
from tests.protocols.test_console_bulk_http import raw_get
from tests.protocols.test_console_http import audit, logged_in
from tests.test_api import bill_body


async def billed(gateway: Running, who: Any, bill_no: str, customer_no: str) -> dict[str, Any]:
    body = bill_body(bill_no)
    body["customer"] = {"customer_no": customer_no, "name": "山田 太郎"}
    status, bill, _ = await gateway.request("POST", "/v1/bills", who, body)
    assert status == 201, bill
    return dict(bill)


def listed(page: str) -> list[str]:
    """The bill numbers of the payments shown, top to bottom."""
    return re.findall(r'<td data-label="請求番号">(?:<a [^>]*>)?([^<]+)', page)


def exported(data: bytes, codec: str = "utf-8-sig") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode(codec))))


@pytest_twisted.ensureDeferred
async def test_a_clerk_sees_and_exports_its_own_payments_only(
    gateway: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme, beta = gateway.onboard("acme"), gateway.onboard("beta")
    a1 = await billed(gateway, acme, "A-1", "C-1")
    a2 = await billed(gateway, acme, "A-2", "C-2")
    a3 = await billed(gateway, acme, "A-3", "C-3")
    b1 = await billed(gateway, beta, "B-1", "C-1")
    assert pay(gateway, a1["cvs"]["barcode"], MessageKind.PRELIMINARY, minutes=1) == "applied"
    assert pay(gateway, a1["cvs"]["barcode"], MessageKind.CONFIRMATION, minutes=1) == "applied"
    assert pay(gateway, a2["cvs"]["barcode"], MessageKind.PRELIMINARY, minutes=2) == "applied"
    assert pay(gateway, a2["cvs"]["barcode"], MessageKind.VOID, minutes=2) == "applied"
    assert pay(gateway, a3["cvs"]["barcode"], MessageKind.PRELIMINARY, minutes=3) == "applied"
    assert pay(gateway, b1["cvs"]["barcode"], MessageKind.PRELIMINARY, minutes=4) == "applied"

    clerk = await logged_in(gateway, "clerk", "biller_staff", "acme")
    status, page, _ = await clerk.get("/console/payments")
    assert status == 200 and listed(page) == ["A-3", "A-2", "A-1"]  # newest first
    assert "B-1" not in page and 'name="biller"' not in page
    _, page, _ = await clerk.get("/console/payments?biller=beta")  # not the clerk's to ask
    assert listed(page) == ["A-3", "A-2", "A-1"]
    _, page, _ = await clerk.get("/console/payments?status=voided")
    assert listed(page) == ["A-2"] and "取消" in page
    _, page, _ = await clerk.get("/console/payments?status=confirmed&channel=cvs")
    assert listed(page) == ["A-1"]
    _, page, _ = await clerk.get("/console/payments?q=C-1")  # a customer number
    assert listed(page) == ["A-1"]
    _, page, _ = await clerk.get("/console/payments?channel=payeasy")
    assert listed(page) == [] and 'id="empty"' in page
    status, page, _ = await clerk.get("/console/payments?paid_from=tomorrow&status=lost")
    assert status == 400
    assert "日付は YYYY-MM-DD で入力してください" in page and "状態を一覧から選んでください" in page

    monkeypatch.setattr("gateway.billing.console_payments.PAGE", 2)
    _, page, _ = await clerk.get("/console/payments")
    assert listed(page) == ["A-3", "A-2"]
    following = re.search(r'id="next" href="([^"]+)"', page)
    assert following
    _, page, _ = await clerk.get(following.group(1).replace("&amp;", "&"))
    assert listed(page) == ["A-1"] and 'id="next"' not in page
    monkeypatch.undo()

    # The export: every payment the filters match, the clerk's biller's only.
    status, data, headers = await raw_get(clerk, "/console/payments.csv?biller=beta")
    assert status == 200
    assert headers.getRawHeaders("content-type") == ["text/csv; charset=utf-8"]
    assert "attachment" in headers.getRawHeaders("content-disposition")[0]
    rows = exported(data)
    assert [(r["bill_no"], r["biller_id"], r["status"]) for r in rows] == [
        ("A-3", "acme", "pending"),
        ("A-2", "acme", "voided"),
        ("A-1", "acme", "confirmed"),
    ]
    assert rows[2]["customer_no"] == "C-1" and rows[2]["amount"] == "5400"
    assert rows[2]["paid_at"].endswith("+09:00") and rows[2]["confirmed_at"]
    _, data, _ = await raw_get(clerk, "/console/payments.csv?q=C-1&encoding=shift_jis")
    assert [r["bill_no"] for r in exported(data, "cp932")] == ["A-1"]
    status, page, _ = await clerk.get("/console/payments.csv?encoding=ebcdic")
    assert status == 400

    lines = audit(gateway, "--action", "payments.export")
    assert [(x["actor"], x["biller_id"], x["after"]["rows"]) for x in lines] == [
        ("user:clerk", "acme", 1),
        ("user:clerk", "acme", 3),
    ]
    assert lines[0]["after"]["filters"] == {"biller": "acme", "q": "****"}  # not the number

    # The center sees every biller's, and one biller's when it asks.
    desk = await logged_in(gateway, "desk", "support", None)
    _, page, _ = await desk.get("/console/payments")
    assert listed(page) == ["B-1", "A-3", "A-2", "A-1"] and "beta 株式会社" in page
    _, data, _ = await raw_get(desk, "/console/payments.csv?biller=beta")
    assert [r["bill_no"] for r in exported(data)] == ["B-1"]
    finance = await logged_in(gateway, "books", "finance", None)
    _, page, _ = await finance.get("/console/payments?q=C-1")
    assert listed(page) == ["B-1", "A-1"]
    assert 'class="bill-link"' not in page  # finance opens no bill
