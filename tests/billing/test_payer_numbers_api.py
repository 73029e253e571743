"""Reusable payer numbers and payer-chosen amounts through the merchant API: the number given
once and kept, its card, another biller's view, and the bill JSON's rules with the errors that
name each field."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq

from gateway.mappers.mpn import numbers
from tests.conftest import Running, admin, due

PUBLIC = "http://127.0.0.1:8080"  # the test configuration's public_url
DONATION: dict[str, Any] = {
    "bill_no": "GIFT-1",
    "amount": None,
    "min_amount": 1000,
    "max_amount": 50000,
    "due_date": due(30),
    "channels": ["payeasy"],
    "customer": {"customer_no": "C0001"},
}


def fields(problem: dict[str, Any]) -> dict[str, str]:
    return {e["field"]: e["message"] for e in problem["errors"]}


@pytest_twisted.ensureDeferred
async def test_a_customer_gets_one_lasting_number(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    path = "/v1/customers/C0001/payer-number"
    status, problem, _ = await gateway.request("GET", path, acme)
    assert status == 404 and problem["detail"] == "payer number of customer C0001 not found"
    status, made, _ = await gateway.request("PUT", path, acme)
    assert status == 201
    number = made["customer_number"]
    assert numbers.is_payer_number(number) and number[:5] == acme.code
    assert made["institution_code"] == "58191" and len(made["confirmation_number"]) == 6
    assert made["next_bill_no"] is None
    assert made["card_url"].endswith(path + "/card.pdf")

    bill = {"bill_no": "B-1", "amount": 5400, "due_date": due(20), "channels": ["payeasy"],
            "customer": {"customer_no": "C0001"}}  # fmt: skip
    status, _, _ = await gateway.request("POST", "/v1/bills", acme, bill)
    assert status == 201
    status, again, _ = await gateway.request("PUT", path, acme, {})
    assert status == 200 and again["customer_number"] == number  # never changes
    assert again["confirmation_number"] == made["confirmation_number"]
    assert again["next_bill_no"] == "B-1"
    status, read, _ = await gateway.request("GET", path, acme)
    assert status == 200 and read == again

    status, other, _ = await gateway.request("PUT", "/v1/customers/C0002/payer-number", acme)
    assert status == 201 and other["customer_number"] != number

    beta = gateway.onboard("beta")
    status, _, _ = await gateway.request("GET", path, beta)
    assert status == 404  # another biller's customer: not found, as an unknown one
    status, body, _ = await gateway.request("PUT", path, acme, {"renew": True})
    assert status == 400 and fields(body) == {"renew": "unknown field"}


@pytest_twisted.ensureDeferred
async def test_a_revoked_number_is_gone_and_the_next_one_is_new(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    path = "/v1/customers/C0001/payer-number"
    status, problem, _ = await gateway.request("DELETE", path, acme)
    assert status == 404 and problem["detail"] == "payer number of customer C0001 not found"
    _, made, _ = await gateway.request("PUT", path, acme)
    assert made["revoked_at"] is None and made["revoked_by"] is None

    status, revoked, _ = await gateway.request("DELETE", path, acme)
    assert status == 200, revoked
    (key,) = admin(gateway.config_path, "key", "list", "--biller", "acme")["keys"]
    assert revoked["revoked_by"] == f"key:{key['key_id']}"  # who: the biller's key, by its id
    assert revoked["revoked_at"] >= made["created_at"] and revoked["revoked_at"].endswith("+09:00")
    assert revoked["customer_number"] == made["customer_number"]
    assert revoked["card_url"] is None and revoked["next_bill_no"] is None
    for gone in (path, path + "/card.pdf"):
        assert (await gateway.request("GET", gone, acme))[0] == 404
    status, again, _ = await gateway.request("DELETE", path, acme)
    assert status == 200 and again == revoked  # again: nothing changes

    status, fresh, _ = await gateway.request("PUT", path, acme)
    assert status == 201  # a new number, not the revoked one
    assert fresh["customer_number"] != made["customer_number"]
    assert numbers.is_payer_number(fresh["customer_number"]) and fresh["revoked_at"] is None
    status, read, _ = await gateway.request("GET", path, acme)
    assert status == 200 and read == fresh
    # Another biller cannot revoke it: not found, as an unknown customer.
    beta = gateway.onboard("beta")
    assert (await gateway.request("DELETE", path, beta))[0] == 404
    assert (await gateway.request("GET", path, acme))[1] == fresh


@pytest_twisted.ensureDeferred
async def test_a_biller_without_payeasy_gets_no_number(gateway: Running) -> None:
    shop = gateway.onboard("shop", channels="cvs")
    status, body, _ = await gateway.request("PUT", "/v1/customers/C1/payer-number", shop)
    assert status == 422
    assert fields(body) == {"customer_no": "Pay-easy is not enabled for this biller"}


@pytest_twisted.ensureDeferred
async def test_the_card_shows_the_numbers(gateway: Running, tmp_path: Path) -> None:
    acme = gateway.onboard("acme")
    bill = {"bill_no": "B-1", "amount": 5400, "due_date": due(20), "channels": ["payeasy"],
            "customer": {"customer_no": "C0001", "name": "山田 太郎"}}  # fmt: skip
    await gateway.request("POST", "/v1/bills", acme, bill)
    _, made, _ = await gateway.request("PUT", "/v1/customers/C0001/payer-number", acme)
    auth: dict[bytes | str, bytes | str] = {"Authorization": f"Bearer {acme.key}"}
    resp = await treq.get(made["card_url"].replace(PUBLIC, gateway.api), headers=auth)
    assert resp.code == 200
    assert resp.headers.getRawHeaders("content-type") == ["application/pdf"]
    pdf = await resp.content()
    (tmp_path / "card.pdf").write_bytes(pdf)
    text = subprocess.run(
        ["pdftotext", "-layout", str(tmp_path / "card.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for shown in (made["customer_number"], made["confirmation_number"], "58191", "山田 太郎"):
        assert shown in text
    assert "acme 株式会社" in text and "お客様番号" in text and "確認番号" in text
    status, _, _ = await gateway.request("GET", "/v1/customers/C9/payer-number/card.pdf", acme)
    assert status == 404


@pytest_twisted.ensureDeferred
async def test_a_bill_whose_amount_the_payer_chooses(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    status, made, _ = await gateway.request("POST", "/v1/bills", acme, DONATION)
    assert status == 201, made
    assert (made["amount"], made["min_amount"], made["max_amount"]) == (None, 1000, 50000)
    assert made["channels"] == ["payeasy"] and "cvs" not in made
    status, again, _ = await gateway.request("POST", "/v1/bills", acme, DONATION)
    assert status == 200 and again["bill_no"] == "GIFT-1"  # identical: the bill
    wider = {**DONATION, "max_amount": 60000}
    status, _, _ = await gateway.request("POST", "/v1/bills", acme, wider)
    assert status == 409  # the same bill_no with other fields

    status, body, _ = await gateway.request(
        "POST", "/v1/bills/GIFT-1/reissue", acme, {"amount": 3000}
    )
    assert status == 422 and list(fields(body)) == ["amount"]
    later = due(60)
    status, reissued, _ = await gateway.request(
        "POST", "/v1/bills/GIFT-1/reissue", acme, {"due_date": later}
    )
    assert status == 200 and reissued["due_date"] == later and reissued["amount"] is None

    page = await treq.get(made["page_url"].replace(PUBLIC, gateway.api))
    html = (await page.content()).decode()
    assert "¥1,000〜¥50,000" in html and "お支払い時にお決めください" in html
    # A bill of a set amount shows neither.
    fixed = {"bill_no": "B-1", "amount": 5400, "due_date": due(20), "channels": ["payeasy"]}
    status, plain, _ = await gateway.request("POST", "/v1/bills", acme, fixed)
    assert status == 201 and "min_amount" not in plain and plain["amount"] == 5400


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        (
            {"min_amount": None, "max_amount": None},
            {
                "min_amount": "is required when amount is null (the payer chooses the amount)",
                "max_amount": "is required when amount is null (the payer chooses the amount)",
            },
        ),
        (
            {"min_amount": 5000, "max_amount": 4000},
            {"max_amount": "must be at least min_amount (5000)"},
        ),
        (
            {"channels": ["cvs", "payeasy"]},
            {
                "channels": "cvs cannot carry a bill whose amount the payer chooses (amount null):"
                " a barcode carries one set amount; use payeasy"
            },
        ),
        (
            {"channels": ["payeasy", "transfer"]},
            {
                "channels": "transfer cannot carry a bill whose amount the payer chooses (amount"
                " null): a debit is for a set amount; use payeasy"
            },
        ),
        (
            {"tax": {"taxable": True, "tax_amount": 100}},
            {"tax.tax_amount": "must be 0 when the payer chooses the amount (amount null)"},
        ),
        (
            {"max_amount": 9_999_999_999},
            {"max_amount": "must not exceed 9999999 yen for channels payeasy"},
        ),
        (
            {"amount": 5400},
            {
                "min_amount": "is only for an amount the payer chooses (with amount null)",
                "max_amount": "is only for an amount the payer chooses (with amount null)",
            },
        ),
    ],
)
@pytest_twisted.ensureDeferred
async def test_the_bill_json_is_checked_naming_each_field(
    gateway: Running, changes: dict[str, Any], errors: dict[str, str]
) -> None:
    acme = gateway.onboard("acme")
    body = {k: v for k, v in {**DONATION, **changes}.items() if v is not None or k == "amount"}
    if "amount" in changes and changes["amount"] is not None:
        body["amount"] = changes["amount"]
    status, problem, _ = await gateway.request("POST", "/v1/bills", acme, body)
    assert status == 422, problem
    assert fields(problem) == errors
    status, page, _ = await gateway.request("GET", "/v1/bills", acme)
    assert page["data"] == []  # nothing stored
