"""The console's bill actions over HTTP, through the real service (in this process): reissue and
cancel on a bill's page and the new-bill form, with their CSRF tokens and one-time form ids,
who may do which (support reissues but does not cancel; finance neither; a biller's user only
its own biller's bills), the API's refusals in the console's words, and the audit line of each
change with the console user. In a real browser: tests/test_console_screens_e2e.py."""

from __future__ import annotations

import re
from typing import Any

import pytest_twisted

from gateway.model import MessageKind
from tests.billing.test_payments_api import pay
from tests.conftest import Running, due
from tests.protocols.test_console_http import Client, audit, csrf_of, location, logged_in
from tests.test_api import bill_body


def form_id_of(page: str, form: str) -> str:
    """The one-time form id of the form ``form`` (its id attribute) on ``page``."""
    found = re.search(rf'id="{form}".*?name="form_id" value="([^"]+)"', page, re.S)
    assert found, f"no form {form} on the page"
    return found.group(1)


async def bill_form(client: Client, path: str, form: str) -> dict[str, str]:
    status, page, _ = await client.get(path)
    assert status == 200, (path, status)
    return {"csrf_token": csrf_of(page), "form_id": form_id_of(page, form)}


async def api_bill(gateway: Running, who: Any, bill_no: str) -> dict[str, Any]:
    status, bill, _ = await gateway.request("GET", f"/v1/bills/{bill_no}", who)
    assert status == 200, bill
    return dict(bill)


@pytest_twisted.ensureDeferred
async def test_a_clerk_reissues_and_cancels_a_bill(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    _, made, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("INV-1"))
    clerk = await logged_in(gateway, "clerk", "biller_staff", "acme")
    path = "/console/bills/acme/INV-1"

    _, page, _ = await clerk.get(path)
    assert 'id="reissue-form"' in page and 'id="cancel-form"' in page
    assert made["page_url"] in page  # the payment page's link, to copy

    # Without the CSRF token: refused, nothing reissued.
    sent = await bill_form(clerk, path, "reissue-form")
    status, _, _ = await clerk.post(path + "/reissue", {"form_id": sent["form_id"]})
    assert status == 403
    assert (await api_bill(gateway, acme, "INV-1"))["reissue"] == 0

    # A bad amount and a past due date: the page again, naming both.
    status, page, _ = await clerk.post(
        path + "/reissue", {**sent, "amount": "5千円", "due_date": "2000-01-01"}
    )
    assert status == 422 and "金額：半角数字で入力してください" in page
    status, page, _ = await clerk.post(path + "/reissue", {**sent, "due_date": "2000-01-01"})
    assert status == 422 and "支払期限：" in page and "is in the past" in page

    new_due = due(40)
    fields = {**(await bill_form(clerk, path, "reissue-form")), "amount": "６,０００"}
    fields["due_date"] = new_due
    status, _, headers = await clerk.post(path + "/reissue", fields)
    assert status == 303 and location(headers) == path + "?done=reissued"
    again, _, headers = await clerk.post(path + "/reissue", fields)  # a double click
    assert again == 303
    bill = await api_bill(gateway, acme, "INV-1")
    assert (bill["reissue"], bill["amount"], bill["due_date"]) == (1, 6000, new_due)
    assert bill["cvs"]["barcode"] != made["cvs"]["barcode"]
    _, page, _ = await clerk.get(path + "?done=reissued")
    assert "請求を再発行しました" in page and "¥6,000" in page and "1 回" in page
    entries = re.findall(
        r'<span class="what">([^<]+)</span>\s*<span class="detail">\s*([^<]+?)\s*</span>', page
    )
    assert ("請求を発行", f"¥5,400・期限 {made['due_date']}") in entries
    assert ("再発行", f"1 回目・¥6,000・期限 {new_due}") in entries
    assert bill["cvs"]["human_readable"] in page

    fields = {**(await bill_form(clerk, path, "cancel-form")), "confirm": "1"}
    status, _, headers = await clerk.post(path + "/cancel", fields)
    assert status == 303 and location(headers) == path + "?done=cancelled"
    assert (await api_bill(gateway, acme, "INV-1"))["status"] == "cancelled"
    _, page, _ = await clerk.get(path)
    assert "取消済" in page
    assert 'id="reissue-form"' not in page and 'id="cancel-form"' not in page

    lines = audit(gateway, "--target", "bill:acme/INV-1")
    assert [(line["action"], line["actor"]) for line in lines] == [
        ("bill.cancel", "user:clerk"),
        ("bill.reissue", "user:clerk"),
    ]
    reissued = lines[1]
    assert reissued["before"]["amount"] == 5400 and reissued["after"]["amount"] == 6000
    assert reissued["after"]["due_date"] == new_due and reissued["after"]["reissue"] == 1
    assert lines[0]["after"]["status"] == "cancelled" and lines[0]["biller_id"] == "acme"
    assert "山田" not in str(lines)  # never the customer's data


@pytest_twisted.ensureDeferred
async def test_who_may_reissue_and_cancel(gateway: Running) -> None:
    acme, beta = gateway.onboard("acme"), gateway.onboard("beta")
    await gateway.request("POST", "/v1/bills", acme, bill_body("A-1"))
    await gateway.request("POST", "/v1/bills", beta, bill_body("B-1"))
    _, paid, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("A-PAID"))
    assert pay(gateway, paid["cvs"]["barcode"], MessageKind.PRELIMINARY) == "applied"

    desk = await logged_in(gateway, "desk", "support", None)
    _, page, _ = await desk.get("/console/bills/beta/B-1")
    assert 'id="reissue-form"' in page and 'id="cancel-form"' not in page
    fields = await bill_form(desk, "/console/bills/beta/B-1", "reissue-form")
    status, _, _ = await desk.post("/console/bills/beta/B-1/cancel", fields)
    assert status == 404
    status, _, _ = await desk.post("/console/bills/beta/B-1/reissue", fields)
    assert status == 303
    assert (await api_bill(gateway, beta, "B-1"))["reissue"] == 1
    assert audit(gateway, "--target", "bill:beta/B-1")[0]["actor"] == "user:desk"

    clerk = await logged_in(gateway, "clerk", "biller_staff", "acme")
    mine = await bill_form(clerk, "/console/bills/acme/A-1", "cancel-form")
    for action in ("reissue", "cancel"):  # another biller's bill: as an unknown one
        status, page, _ = await clerk.post(f"/console/bills/beta/B-1/{action}", mine)
        assert status == 404 and "見つかりません" in page
    beta_bill = await api_bill(gateway, beta, "B-1")
    assert (beta_bill["status"], beta_bill["reissue"]) == ("open", 1)

    finance = await logged_in(gateway, "books", "finance", None)
    csrf = await finance.form_csrf("/console/")
    status, _, _ = await finance.post("/console/bills/acme/A-1/reissue", {"csrf_token": csrf})
    assert status == 404

    # A paid bill: neither form, and the service's refusal in words if sent anyway.
    _, page, _ = await clerk.get("/console/bills/acme/A-PAID")
    assert 'id="reissue-form"' not in page and 'id="cancel-form"' not in page
    status, page, _ = await clerk.post(
        "/console/bills/acme/A-PAID/cancel", {**mine, "form_id": "x" * 20}
    )
    assert status == 409 and "この請求は取り消せません" in page
    assert (await api_bill(gateway, acme, "A-PAID"))["status"] == "paid"


@pytest_twisted.ensureDeferred
async def test_the_new_bill_form(gateway: Running) -> None:
    acme = gateway.onboard("acme", "cvs,payeasy")
    gateway.onboard("beta")
    clerk = await logged_in(gateway, "clerk", "biller_staff", "acme")
    status, page, _ = await clerk.get("/console/bills/new")
    assert status == 200 and 'name="channel_cvs"' in page and 'name="channel_payeasy"' in page
    assert 'name="channel_transfer"' not in page  # acme does not collect by transfer
    assert 'name="biller"' not in page  # a biller's user registers for its own biller

    fields = {
        **(await bill_form(clerk, "/console/bills/new", "new-bill")),
        "biller": "beta",  # ignored: the clerk's biller is acme
        "bill_no": "NEW-1",
        "amount": "12,000",
        "due_date": due(20),
        "channel_cvs": "1",
        "customer_no": "C-77",
        "name": "佐藤 花子",
        "email": "hanako@example.jp",
        "taxable": "1",
        "tax_amount": "1090",
    }
    status, _, headers = await clerk.post("/console/bills/new", fields)
    assert status == 303 and location(headers) == "/console/bills/acme/NEW-1?done=created"
    bill = await api_bill(gateway, acme, "NEW-1")
    assert (bill["amount"], bill["channels"], bill["customer"]["customer_no"]) == (
        12000,
        ["cvs"],
        "C-77",
    )
    assert bill["tax"] == {"taxable": True, "tax_amount": 1090}
    status, _, headers = await clerk.post("/console/bills/new", fields)  # sent twice
    assert status == 303
    line = audit(gateway, "--target", "bill:acme/NEW-1")
    assert [(x["action"], x["actor"]) for x in line] == [("bill.create", "user:clerk")]
    assert line[0]["before"] is None and line[0]["after"]["amount"] == 12000

    # The API's refusals, each field named in Japanese; what was typed is kept.
    again = await bill_form(clerk, "/console/bills/new", "new-bill")
    bad = {**again, "bill_no": "NEW-2", "amount": "", "due_date": "2000-01-01"}
    status, page, _ = await clerk.post("/console/bills/new", bad)
    assert status == 422 and "金額：入力してください" in page and 'value="NEW-2"' in page
    bad = {**again, "bill_no": "NEW-2", "amount": "100", "due_date": "2000-01-01"}
    status, page, _ = await clerk.post("/console/bills/new", bad)
    assert status == 422 and "支払期限：" in page and "支払方法：" in page
    other = {**fields, **(await bill_form(clerk, "/console/bills/new", "new-bill"))}
    status, page, _ = await clerk.post("/console/bills/new", {**other, "amount": "13000"})
    assert status == 409 and "この請求番号は別の内容で登録済みです" in page

    # A center operator chooses the biller; support may not register bills.
    ops = await logged_in(gateway, "ops", "operator", None)
    status, page, _ = await ops.get("/console/bills/new")
    assert 'name="biller"' in page and 'value="beta"' in page
    theirs = {**fields, **(await bill_form(ops, "/console/bills/new", "new-bill"))}
    status, page, _ = await ops.post("/console/bills/new", {**theirs, "biller": ""})
    assert status == 422 and "収納企業を選んでください" in page
    status, _, headers = await ops.post("/console/bills/new", {**theirs, "biller": "beta"})
    assert status == 303 and location(headers) == "/console/bills/beta/NEW-1?done=created"
    assert audit(gateway, "--target", "bill:beta/NEW-1")[0]["actor"] == "user:ops"
    desk = await logged_in(gateway, "desk", "support", None)
    assert (await desk.get("/console/bills/new"))[0] == 404
