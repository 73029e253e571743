"""Mandates through the merchant API: register, read (masked), change, revoke."""

from __future__ import annotations

from typing import Any

import pytest_twisted

from tests.conftest import Running

ACCOUNT: dict[str, Any] = {
    "bank_code": "0005",
    "branch_code": "135",
    "account_type": "1",
    "account_number": "7654321",
    "holder_kana": "ﾔﾏﾀﾞ ﾀﾛｳ",
}


@pytest_twisted.ensureDeferred
async def test_register_read_change_revoke(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    status, made, _ = await gateway.request("PUT", "/v1/mandates/C0001", acme, ACCOUNT)
    assert status == 201
    assert made["account_number"] == "****321"  # never the whole number
    assert made["bank_name"] == "ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ" and made["branch_name"] == "ｼﾌﾞﾔ"
    assert made["status"] == "active" and made["next_new_code"] == "1"
    assert made["version"] == 1

    status, read, _ = await gateway.request("GET", "/v1/mandates/C0001", acme)
    assert status == 200 and read == made

    status, again, _ = await gateway.request("PUT", "/v1/mandates/C0001", acme, ACCOUNT)
    assert status == 200 and again["version"] == 1  # identical: nothing changed

    moved = {**ACCOUNT, "branch_code": "001", "account_number": "12345"}
    status, changed, _ = await gateway.request("PUT", "/v1/mandates/C0001", acme, moved)
    assert status == 200 and changed["version"] == 2
    assert changed["branch_code"] == "001" and changed["account_number"] == "****345"
    # Never sent to a bank yet: its next debit is still the first one.
    assert changed["next_new_code"] == "1"

    status, revoked, _ = await gateway.request("DELETE", "/v1/mandates/C0001", acme)
    assert status == 200 and revoked["status"] == "revoked" and revoked["version"] == 3
    status, twice, _ = await gateway.request("DELETE", "/v1/mandates/C0001", acme)
    assert status == 200 and twice["version"] == 3

    # Registering again re-activates it.
    status, back, _ = await gateway.request("PUT", "/v1/mandates/C0001", acme, ACCOUNT)
    assert status == 200 and back["status"] == "active" and back["version"] == 4


@pytest_twisted.ensureDeferred
async def test_names_are_converted_to_zengin_kana(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    body = {**ACCOUNT, "holder_kana": "ショウジ　キョウコ"}  # full-width, small kana
    status, made, _ = await gateway.request("PUT", "/v1/mandates/C1", acme, body)
    assert status == 201 and made["holder_kana"] == "ｼﾖｳｼﾞ ｷﾖｳｺ"
    body = {**ACCOUNT, "holder_kana": "ｶ)ﾔﾏﾀﾞｼｮｳｼﾞ"}
    status, made, _ = await gateway.request("PUT", "/v1/mandates/C2", acme, body)
    assert status == 201 and made["holder_kana"] == "ｶ)ﾔﾏﾀﾞｼﾖｳｼﾞ"


@pytest_twisted.ensureDeferred
async def test_what_cannot_be_written_is_refused_naming_the_field(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    cases = [
        ({"holder_kana": "山田 太郎"}, "holder_kana", "'山'"),
        ({"holder_kana": "ｱ" * 31}, "holder_kana", "at most 30"),
        ({"bank_code": "9998"}, "bank_code", "Zengin master"),
        ({"branch_code": "998"}, "branch_code", "not a branch of bank 0005"),
        ({"account_type": "3"}, "account_type", "1 (普通)"),
        ({"account_number": "12345678"}, "account_number", "1 to 7 digits"),
    ]
    for change, field, words in cases:
        status, problem, _ = await gateway.request(
            "PUT", "/v1/mandates/C9", acme, {**ACCOUNT, **change}
        )
        assert status == 422, (change, problem)
        (error,) = problem["errors"]
        assert error["field"] == field and words in error["message"], problem
    status, problem, _ = await gateway.request(
        "PUT", "/v1/mandates/C9", acme, {**ACCOUNT, "account_number": 7654321, "extra": 1}
    )
    assert status == 400
    assert {e["field"] for e in problem["errors"]} == {"account_number", "extra"}
    status, _, _ = await gateway.request("GET", "/v1/mandates/C9", acme)
    assert status == 404  # nothing was stored by the refused requests


@pytest_twisted.ensureDeferred
async def test_a_biller_sees_only_its_own_mandates(gateway: Running) -> None:
    acme, rival = gateway.onboard("acme"), gateway.onboard("rival")
    await gateway.request("PUT", "/v1/mandates/C0001", acme, ACCOUNT)
    for method in ("GET", "DELETE"):
        status, problem, _ = await gateway.request(method, "/v1/mandates/C0001", rival)
        assert status == 404 and problem["status"] == 404
    status, mine, _ = await gateway.request("GET", "/v1/mandates/C0001", acme)
    assert status == 200 and mine["status"] == "active"


@pytest_twisted.ensureDeferred
async def test_a_biller_without_the_transfer_channel_has_no_mandates(gateway: Running) -> None:
    shop = gateway.onboard("shop", channels="cvs")
    status, problem, _ = await gateway.request("PUT", "/v1/mandates/C1", shop, ACCOUNT)
    assert status == 422
    assert problem["errors"][0]["message"] == "account transfer is not enabled for this biller"
