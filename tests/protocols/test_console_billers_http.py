"""The center's billers in the console over HTTP, through the real service (in this process): an
operator creates a biller, changes its channels, suspends and resumes it, sets its 委託者 data;
finance sets a fee plan; support only reads; a biller's user finds none of it; a form without
its CSRF token changes nothing; and every change is in the audit log with the console user. In
a real browser: tests/test_console_center_e2e.py."""

from __future__ import annotations

import re

import pytest_twisted

from tests.conftest import Running
from tests.protocols.test_console_http import audit, csrf_of, location, logged_in

NEW = {
    "biller_id": "kita-gas",
    "name": "北ガス株式会社",
    "kana": "キタガス",  # full-width: sent half-width
    "channel_cvs": "1",
    "channel_payeasy": "1",
}


def billers_on(page: str) -> list[str]:
    return re.findall(r'<tr id="biller-([a-z0-9_\-]+)">', page)


@pytest_twisted.ensureDeferred
async def test_an_operator_creates_changes_suspends_and_resumes_a_biller(
    gateway: Running,
) -> None:
    gateway.onboard("acme")
    ops = await logged_in(gateway, "ops", "operator", None)
    status, page, _ = await ops.get("/console/billers")
    assert status == 200 and billers_on(page) == ["acme"]
    assert "収納企業の登録" in page and "利用中" in page
    csrf = csrf_of(page)

    status, page, _ = await ops.post(
        "/console/billers", {**NEW, "csrf_token": csrf, "biller_id": "Kita Gas", "kana": "北"}
    )
    assert status == 422
    assert "収納企業ID：" in page and "名称（カナ）：" in page
    assert 'value="北ガス株式会社"' in page  # what was typed stays
    status, _, headers = await ops.post("/console/billers", {**NEW, "csrf_token": csrf})
    assert status == 303 and location(headers) == "/console/billers/kita-gas?done=created"
    status, page, _ = await ops.get(location(headers))
    assert status == 200 and "収納企業を登録しました" in page
    assert "北ガス株式会社" in page and "ｷﾀｶﾞｽ" in page and "利用中" in page
    status, page, _ = await ops.post("/console/billers", {**NEW, "csrf_token": csrf})
    assert status == 409 and "収納企業ID：" in page  # the id is taken

    _, listing, _ = await ops.get("/console/billers")
    assert billers_on(listing) == ["acme", "kita-gas"]
    row = listing[listing.index('id="biller-kita-gas"') :]
    row = row[: row.index("</tr>")]
    assert "コンビニ・ペイジー" in row and "利用中" in row

    base = "/console/billers/kita-gas"
    status, page, _ = await ops.post(base + "/channels", {"csrf_token": csrf})
    assert status == 422 and "支払方法：" in page  # none ticked
    fields = {"csrf_token": csrf, "channel_cvs": "1", "channel_transfer": "1"}
    status, _, headers = await ops.post(base + "/channels", fields)
    assert status == 303 and location(headers) == base + "?done=channels"
    _, page, _ = await ops.get(base)
    assert re.search(r'id="channels">コンビニ・口座振替<', page)

    status, _, _ = await ops.post(base + "/suspend", {"reason": "未払い"})
    assert status == 403  # without its CSRF token: nothing done
    _, page, _ = await ops.get(base)
    assert 'id="suspend-form"' in page and "停止中" not in page
    reason = "契約解除の申し出（12/8）"
    status, _, headers = await ops.post(base + "/suspend", {"csrf_token": csrf, "reason": reason})
    assert status == 303 and location(headers) == base + "?done=suspended"
    _, page, _ = await ops.get(location(headers))
    assert "停止中" in page and 'id="resume-form"' in page and 'id="suspend-form"' not in page
    status, _, _ = await ops.post(base + "/resume", {"csrf_token": csrf})
    assert status == 303
    _, page, _ = await ops.get(base)
    assert "停止中" not in page and 'id="suspend-form"' in page

    lines = audit(gateway, "--biller", "kita-gas")
    assert [(x["action"], x["actor"]) for x in reversed(lines)] == [
        ("biller.create", "user:ops"),
        ("biller.update", "user:ops"),
        ("biller.suspend", "user:ops"),
        ("biller.resume", "user:ops"),
    ]
    create, update, suspend, _ = reversed(lines)
    assert create["after"]["name"] == "北ガス株式会社" and create["after"]["kana"] == "ｷﾀｶﾞｽ"
    assert update["before"] == {"channels": ["cvs", "payeasy"]}
    assert update["after"] == {"channels": ["cvs", "transfer"]}
    assert suspend["after"]["reason"] == reason and suspend["before"]["suspended_at"] is None


@pytest_twisted.ensureDeferred
async def test_consignor_data_and_fee_plans(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    ops = await logged_in(gateway, "ops", "operator", None)
    base = "/console/billers/acme"
    status, page, _ = await ops.get(base)
    assert status == 200 and "委託者情報は登録されていません" in page
    csrf = csrf_of(page)
    consignor = {
        "csrf_token": csrf,
        "consignor_code": "12345",
        "bank_code": "0005",
        "branch_code": "135",
        "account_type": "1",
        "account_number": "1234567",
    }
    status, page, _ = await ops.post(base + "/consignor", consignor)
    assert status == 422 and "委託者コード：" in page
    consignor["consignor_code"] = "1234567890"
    status, _, headers = await ops.post(base + "/consignor", consignor)
    assert status == 303 and location(headers) == base + "?done=consignor"
    _, page, _ = await ops.get(base)
    assert 'id="consignor-code">1234567890<' in page and "****567" in page
    assert "1234567<" not in page  # the account number is masked

    finance = await logged_in(gateway, "books", "finance", None)
    status, page, _ = await finance.get(base)
    assert status == 200 and 'id="plan-form"' in page
    assert 'id="suspend-form"' not in page and 'id="consignor-form"' not in page
    csrf = csrf_of(page)
    plan = {
        "csrf_token": csrf,
        "effective_from": "2026-01-01",
        "cycle": "monthly",
        "payout_days": "5",
        "settlement_fee": "440",
        "tax_rate": "10",
        "tax_rounding": "floor",
        "rate_cvs": "1",
        "cvs_per_payment": "６０",  # full-width digits are read
        "cvs_per_uncollected": "",
        "cvs_stamp_charge": "200",
        "rate_payeasy": "1",
        "payeasy_per_payment": "abc",
        "monthly_fee": "3,000",
    }
    status, page, _ = await finance.post(base + "/fee-plans", plan)
    assert status == 422 and "ペイジー：収納1件：" in page
    status, _, headers = await finance.post(
        base + "/fee-plans", {**plan, "payeasy_per_payment": "45"}
    )
    assert status == 303 and location(headers) == base + "?done=fee_plan"
    _, page, _ = await finance.get(location(headers))
    assert "手数料プランを保存しました" in page and "2026-01-01" in page
    assert "コンビニ：収納 ¥60／未収 ¥0／印紙 ¥200" in page and "月額 ¥3,000" in page
    _, plans, _ = await gateway.request("GET", "/v1/fee-plans", acme)
    (stored,) = plans["plans"]
    assert stored["channels"]["payeasy"]["per_payment"] == 45 and stored["monthly_fee"] == 3000
    status, _, _ = await finance.post(base + "/suspend", {"csrf_token": csrf})
    assert status == 404  # finance does not suspend

    lines = audit(gateway, "--biller", "acme")
    assert [(x["action"], x["actor"]) for x in reversed(lines)][-2:] == [
        ("consignor.set", "user:ops"),
        ("fee_plan.put", "user:books"),
    ]
    assert lines[1]["after"]["account_number"] == "****567"


@pytest_twisted.ensureDeferred
async def test_who_may_not(gateway: Running) -> None:
    gateway.onboard("acme")
    desk = await logged_in(gateway, "desk", "support", None)
    status, page, _ = await desk.get("/console/billers/acme")
    assert status == 200 and "acme 株式会社" in page
    for form_id in ("suspend-form", "channels-form", "consignor-form", "plan-form"):
        assert f'id="{form_id}"' not in page
    status, page, _ = await desk.get("/console/billers")
    assert billers_on(page) == ["acme"] and 'id="new-biller"' not in page
    csrf = csrf_of(page)
    for path in ("/suspend", "/channels", "/consignor", "/fee-plans"):
        status, _, _ = await desk.post("/console/billers/acme" + path, {"csrf_token": csrf})
        assert status == 404, path
    status, _, _ = await desk.post("/console/billers", {**NEW, "csrf_token": csrf})
    assert status == 404

    for role in ("biller_admin", "biller_staff"):
        clerk = await logged_in(gateway, role.replace("_", "-"), role, "acme")
        _, home, _ = await clerk.get("/console/")
        assert "/console/billers" not in home
        csrf = csrf_of(home)
        for path in ("/console/billers", "/console/billers/acme"):
            status, _, _ = await clerk.get(path)
            assert status == 404, (role, path)
        status, _, _ = await clerk.post("/console/billers/acme/suspend", {"csrf_token": csrf})
        assert status == 404
    assert not [
        x
        for x in audit(gateway)
        if x["actor"].startswith("user:")
        and x["action"].startswith(("biller.", "fee_plan", "consignor"))
    ]
