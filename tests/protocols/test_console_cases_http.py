"""The console's refund cases over HTTP, through the real service (in this process): the queue
of each role (a biller's user its own biller's cases only), a case resolved by the center's
support desk as refunded or not refunded with a note, the refusals, and the audit line with the
console user. In a real browser: tests/test_console_screens_e2e.py."""

from __future__ import annotations

import re
from typing import Any

import pytest_twisted

from gateway.model import MessageKind
from tests.billing.test_payments_api import pay
from tests.conftest import Running
from tests.protocols.test_console_http import audit, csrf_of, location, logged_in
from tests.test_api import bill_body


async def paid_twice(gateway: Running, who: Any, bill_no: str) -> None:
    """The bill paid at two stores: the later payment gets a double-payment case."""
    status, bill, _ = await gateway.request("POST", "/v1/bills", who, bill_body(bill_no))
    assert status == 201, bill
    barcode = bill["cvs"]["barcode"]
    assert pay(gateway, barcode, MessageKind.PRELIMINARY, store="0110002") == "applied"
    assert pay(gateway, barcode, MessageKind.PRELIMINARY, store="0220003", minutes=5) == "applied"


def cases_on(page: str) -> list[str]:
    return re.findall(r'<section class="card case" id="case-(rc_[0-9a-f]+)"', page)


@pytest_twisted.ensureDeferred
async def test_support_resolves_a_refund_case(gateway: Running) -> None:
    acme, beta = gateway.onboard("acme"), gateway.onboard("beta")
    await paid_twice(gateway, acme, "A-1")
    await paid_twice(gateway, beta, "B-1")
    _, theirs, _ = await gateway.request("GET", "/v1/refund-cases", acme)
    (case,) = theirs["data"]
    assert case["reason"] == "double_payment" and case["status"] == "open"
    case_id = case["case_id"]

    clerk = await logged_in(gateway, "clerk", "biller_staff", "acme")
    status, page, _ = await clerk.get("/console/refund-cases?biller=beta")
    assert status == 200 and cases_on(page) == [case_id]  # its own biller's only
    assert "二重入金" in page and "resolve-form" not in page
    csrf = csrf_of(page)
    fields = {"csrf_token": csrf, "resolution": "refunded", "note": "返金しました"}
    status, _, _ = await clerk.post(f"/console/refund-cases/{case_id}/resolve", fields)
    assert status == 404  # a biller's user does not resolve cases here

    desk = await logged_in(gateway, "desk", "support", None)
    status, page, _ = await desk.get("/console/refund-cases")
    assert len(cases_on(page)) == 2 and page.count('class="stack resolve-form"') == 2
    _, page, _ = await desk.get("/console/refund-cases?biller=acme")
    assert cases_on(page) == [case_id]
    csrf = csrf_of(page)
    path = f"/console/refund-cases/{case_id}/resolve"

    status, _, _ = await desk.post(path, {"resolution": "no_refund", "note": "x"})
    assert status == 403  # without its CSRF token
    status, page, _ = await desk.post(path, {"csrf_token": csrf, "resolution": "no_refund"})
    assert status == 422 and "対応の内容：対応の内容を入力してください" in page
    status, page, _ = await desk.post(
        path, {"csrf_token": csrf, "resolution": "applied_to_bill", "note": "充当"}
    )
    assert status == 422 and "返金済か返金しないかを選んでください" in page
    note = "お客様と相談し、次回請求で調整するため返金しない"
    sent = {"csrf_token": csrf, "resolution": "no_refund", "note": note}
    status, _, headers = await desk.post(path, sent)
    assert status == 303
    assert location(headers) == f"/console/refund-cases?status=open&done={case_id}"
    status, page, _ = await desk.get(location(headers))
    assert case_id not in cases_on(page) and f"案件 {case_id} を対応済みにしました" in page
    _, page, _ = await desk.get("/console/refund-cases?status=resolved")
    assert cases_on(page) == [case_id] and "返金しない" in page and note in page

    _, resolved, _ = await gateway.request("GET", "/v1/refund-cases?status=resolved", acme)
    assert [(c["case_id"], c["resolution"], c["note"]) for c in resolved["data"]] == [
        (case_id, "no_refund", note)
    ]
    assert (await desk.post(path, sent))[0] == 303  # the same again: nothing changes
    status, page, _ = await desk.post(path, {**sent, "resolution": "refunded"})
    assert status == 409 and "この案件は対応済みです" in page

    lines = audit(gateway, "--action", "refund_case.resolve")
    assert [(x["actor"], x["target"], x["biller_id"]) for x in lines] == [
        ("user:desk", f"refund_case:{case_id}", "acme")
    ]
    assert lines[0]["before"]["status"] == "open" and lines[0]["after"]["note"] == note

    finance = await logged_in(gateway, "books", "finance", None)
    _, page, _ = await finance.get("/console/refund-cases?status=all")
    assert len(cases_on(page)) == 2 and "resolve-form" not in page
    assert 'class="bill-link"' not in page
