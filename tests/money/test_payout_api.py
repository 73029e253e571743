"""The operator's payout routes through the real service (make_service, in this process):
payout accounts set and read back masked, refused naming their field; a biller's key refused;
payout files requested and listed; without ``[payouts]``, 404."""

from __future__ import annotations

from datetime import timedelta

import pytest
import pytest_twisted

from gateway import calendar
from tests.conftest import Running, jst_today
from tests.money.test_settlement_api import admin_key
from tests.test_payouts_e2e import PAYOUTS

ACCOUNT = {
    "bank_code": "0005",
    "branch_code": "135",
    "account_type": "1",
    "account_number": "7654321",
    "holder_kana": "カ）アクメ",
}


@pytest.fixture
def gateway_extra() -> str:
    return PAYOUTS


@pytest_twisted.ensureDeferred
async def test_payout_accounts_through_the_admin_api(gateway: Running) -> None:
    operator = admin_key(gateway)
    acme = gateway.onboard("acme", "cvs")
    today = jst_today()
    path = f"/v1/billers/acme/payout-accounts/{today}"

    status, made, _ = await gateway.request("PUT", path, operator, ACCOUNT)
    assert status == 201, made
    assert made["account_number"] == "****321" and made["holder_kana"] == "ｶ)ｱｸﾒ"
    assert (made["bank_name"], made["branch_name"]) == ("ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ", "ｼﾌﾞﾔ")
    status, again, _ = await gateway.request("PUT", path, operator, ACCOUNT)
    assert status == 200 and again == made
    status, listed, _ = await gateway.request("GET", "/v1/billers/acme/payout-accounts", operator)
    assert status == 200 and listed["accounts"] == [made]

    status, bad, _ = await gateway.request(
        "PUT", path, operator, {**ACCOUNT, "branch_code": "999", "holder_kana": "東京"}
    )
    assert status == 422
    assert sorted(e["field"] for e in bad["errors"]) == ["branch_code", "holder_kana"]
    yesterday = f"/v1/billers/acme/payout-accounts/{today - timedelta(days=1)}"
    status, past, _ = await gateway.request("PUT", yesterday, operator, ACCOUNT)
    assert status == 422 and past["errors"][0]["field"] == "effective_from"
    nobody = f"/v1/billers/nobody/payout-accounts/{today}"
    assert (await gateway.request("PUT", nobody, operator, ACCOUNT))[0] == 404
    assert (await gateway.request("GET", "/v1/billers/acme/payout-accounts", acme))[0] == 403

    day = calendar.add_business_days(today, 1)
    status, none, _ = await gateway.request(
        "POST", "/v1/admin/payouts", operator, {"transfer_date": str(day)}
    )
    assert status == 200 and none["file"] is None  # nothing settled yet
    status, bad_day, _ = await gateway.request(
        "POST", "/v1/admin/payouts", operator, {"transfer_date": str(today - timedelta(days=1))}
    )
    assert status == 422 and bad_day["errors"][0]["field"] == "transfer_date"
    status, files, _ = await gateway.request("GET", "/v1/admin/payouts", operator)
    assert status == 200 and files == {"data": []}


@pytest.mark.parametrize("gateway_extra", [""])  # no [payouts]
@pytest_twisted.ensureDeferred
async def test_without_the_payouts_section_the_routes_are_not_found(gateway: Running) -> None:
    operator = admin_key(gateway)
    gateway.onboard("acme", "cvs")
    for method, path, body in [
        ("GET", "/v1/billers/acme/payout-accounts", None),
        ("PUT", f"/v1/billers/acme/payout-accounts/{jst_today()}", ACCOUNT),
        ("POST", "/v1/admin/payouts", {"transfer_date": str(jst_today())}),
        ("GET", "/v1/admin/payouts", None),
    ]:
        status, problem, _ = await gateway.request(method, path, operator, body)
        assert status == 404 and "[payouts]" in problem["detail"], (path, problem)
