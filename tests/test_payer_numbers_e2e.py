"""Reusable payer numbers and payer-chosen amounts against the real daemon (twistd subprocess)
and the simulated MPN center over mutual TLS (issue 22, part 2):

- a customer's lasting お客様番号 pays three months of bills in order, then answers ``1002``;
  a number whose customer has no bill answers ``1001``; its card is a PDF that shows it;
- a bill whose amount the payer chooses is paid within its range and refused ``1004`` outside
  it, through the payer number and through the bill's own number; CVS cannot carry it.
"""

from __future__ import annotations

import subprocess
import urllib.request
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import maybeDeferred
from twisted.internet.threads import deferToThread

from gateway.app.process import http
from gateway.mappers.mpn.mapper import (
    Inquiry,
    InquiryAnswer,
    Key,
    Message,
    PaymentChannel,
    PaymentNotice,
)
from gateway.model import JST
from simulators.mpn import bill_key
from simulators.mpn_link import MpnCenterFactory
from tests.conftest import due
from tests.test_mpn_e2e import TIMEOUT, Site, get_all, make_site, started

pytestmark = pytest.mark.e2e


def post_bill(site: Site, body: dict[str, Any]) -> dict[str, Any]:
    status, bill, _ = http("POST", site.api + "/v1/bills", body, site.auth)
    assert status == 201, bill
    return bill


def payer_number(site: Site, customer_no: str) -> tuple[Key, dict[str, Any]]:
    path = f"{site.api}/v1/customers/{customer_no}/payer-number"
    status, made, _ = http("PUT", path, None, site.auth)
    assert status == 201, made
    return Key(made["institution_code"], made["customer_number"], made["confirmation_number"]), made


def bill_of(site: Site, bill_no: str) -> dict[str, Any]:
    status, bill, _ = http("GET", f"{site.api}/v1/bills/{bill_no}", None, site.auth)
    assert status == 200, bill
    return bill


def card_text(site: Site, url: str, folder: Path) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {site.key}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.headers["Content-Type"] == "application/pdf"
        (folder / "card.pdf").write_bytes(resp.read())
    run = subprocess.run(
        ["pdftotext", "-layout", str(folder / "card.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout


async def inquire(factory: MpnCenterFactory, key: Key) -> Message:
    from twisted.internet import reactor  # noqa: TID251

    return await factory.request("1100", Inquiry(key)).addTimeout(TIMEOUT, reactor)


async def pay(factory: MpnCenterFactory, key: Key, amount: int) -> Message:
    from twisted.internet import reactor  # noqa: TID251

    paid_at = datetime.now(JST).replace(microsecond=0)
    notice = PaymentNotice(key, amount, paid_at, "0005", PaymentChannel.INTERNET)
    return await factory.request("1200", notice).addTimeout(TIMEOUT, reactor)


@pytest_twisted.ensureDeferred
async def test_a_reusable_number_pays_three_months_of_bills_in_order(
    tmp_path: Path, database_url: str
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    site = await deferToThread(make_site, tmp_path, database_url)
    factory = MpnCenterFactory(reactor, deadline=5.0)
    port, daemon = await started(site, factory)
    answers: list[tuple[str, int, date | None, str]] = []
    codes: dict[str, str] = {}
    paid_so_far: list[list[str]] = []  # the paid bills after each 消込
    try:
        customer = {"customer_no": "C0001", "name": "山田 太郎"}
        months = [
            ("2027-03", 5600, due(75)),
            ("2027-01", 5400, due(15)),
            ("2027-02", 5500, due(45)),
        ]
        for bill_no, amount, day in months:  # registered out of order: paid by due date
            body = {"bill_no": bill_no, "amount": amount, "due_date": day,
                    "channels": ["cvs", "payeasy"], "customer": customer}  # fmt: skip
            await deferToThread(post_bill, site, body)
        other = {"bill_no": "OTHER", "amount": 999, "due_date": due(5),
                 "channels": ["payeasy"], "customer": {"customer_no": "C0002"}}  # fmt: skip
        await deferToThread(post_bill, site, other)
        key, made = await deferToThread(payer_number, site, "C0001")
        nobody, _ = await deferToThread(payer_number, site, "C0009")
        text = await deferToThread(card_text, site, made["card_url"], tmp_path)

        for _ in months:
            answer = await inquire(factory, key)
            shown = answer.body
            assert answer.header.response_code == "0000" and isinstance(shown, InquiryAnswer)
            answers.append(
                (answer.header.response_code, shown.amount, shown.due_date, shown.biller_name)
            )
            paid = await pay(factory, key, shown.amount)
            assert paid.header.response_code == "0000"
            listed = await deferToThread(get_all, site, "/v1/bills?status=paid")
            paid_so_far.append(sorted(b["bill_no"] for b in listed))
        codes["all paid"] = (await inquire(factory, key)).header.response_code
        codes["pay again"] = (await pay(factory, key, 5400)).header.response_code
        codes["no bill"] = (await inquire(factory, nobody)).header.response_code
        payments = await deferToThread(get_all, site, "/v1/payments?channel=payeasy")
        bills = {
            b: await deferToThread(bill_of, site, b)
            for b in ("2027-01", "2027-02", "2027-03", "OTHER")
        }
    finally:
        await deferToThread(daemon.stop)
        await maybeDeferred(port.stopListening)

    in_order = sorted(months, key=lambda m: m[2])
    assert answers == [
        ("0000", amount, date.fromisoformat(day), "ｱｸﾒ") for _, amount, day in in_order
    ]
    assert codes == {"all paid": "1002", "pay again": "1002", "no bill": "1001"}
    assert paid_so_far == [["2027-01"], ["2027-01", "2027-02"], ["2027-01", "2027-02", "2027-03"]]
    assert {p["bill_no"]: p["amount"] for p in payments} == {m[0]: m[1] for m in months}
    assert all(p["status"] == "pending" for p in payments)
    assert [bills[b]["status"] for b in ("2027-01", "2027-02", "2027-03")] == ["paid"] * 3
    assert not any(bills[b]["double_paid"] for b in bills)
    assert bills["OTHER"]["status"] == "open"  # another customer's bill: never answered
    assert made["customer_number"] in text and made["confirmation_number"] in text
    assert "山田 太郎" in text


@pytest_twisted.ensureDeferred
async def test_an_amount_the_payer_chooses_within_and_outside_its_range(
    tmp_path: Path, database_url: str
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    site = await deferToThread(make_site, tmp_path, database_url)
    factory = MpnCenterFactory(reactor, deadline=5.0)
    port, daemon = await started(site, factory)
    seen: dict[str, Any] = {}
    try:
        gift = {"bill_no": "GIFT-1", "amount": None, "min_amount": 1000, "max_amount": 50000,
                "due_date": due(30), "channels": ["payeasy"],
                "customer": {"customer_no": "D0001"}}  # fmt: skip
        seen["bill"] = await deferToThread(post_bill, site, gift)
        at_store = {**gift, "bill_no": "GIFT-CVS", "channels": ["cvs", "payeasy"]}
        status, problem, _ = await deferToThread(
            http, "POST", site.api + "/v1/bills", at_store, site.auth
        )
        seen["cvs"] = (status, [e["field"] for e in problem["errors"]])
        key, _ = await deferToThread(payer_number, site, "D0001")

        answer = await inquire(factory, key)
        assert isinstance(answer.body, InquiryAnswer)
        seen["asked"] = (answer.header.response_code, answer.body.amount)
        seen["too much"] = (await pay(factory, key, 50001)).header.response_code
        seen["too little"] = (await pay(factory, key, 999)).header.response_code
        seen["within"] = (await pay(factory, key, 3000)).header.response_code
        seen["after"] = (await inquire(factory, key)).header.response_code

        other_gift = {**gift, "bill_no": "DEPOSIT-1", "customer": {"customer_no": "D0002"}}
        deposit = await deferToThread(post_bill, site, other_gift)
        own = bill_key(deposit)  # the bill's own numbers
        seen["own asked"] = (await inquire(factory, own)).body.amount  # type: ignore[union-attr]
        seen["own outside"] = (await pay(factory, own, 60000)).header.response_code
        seen["own within"] = (await pay(factory, own, 50000)).header.response_code
        payments = await deferToThread(get_all, site, "/v1/payments?channel=payeasy")
        seen["GIFT-1"] = await deferToThread(bill_of, site, "GIFT-1")
    finally:
        await deferToThread(daemon.stop)
        await maybeDeferred(port.stopListening)

    assert (seen["bill"]["amount"], seen["bill"]["min_amount"], seen["bill"]["max_amount"]) == (
        None,
        1000,
        50000,
    )
    assert seen["cvs"] == (422, ["channels"])
    assert seen["asked"] == ("0000", 0)  # the payer enters the amount
    assert (seen["too much"], seen["too little"], seen["within"]) == ("1004", "1004", "0000")
    assert seen["after"] == "1002"
    assert (seen["own asked"], seen["own outside"], seen["own within"]) == (0, "1004", "0000")
    assert sorted((p["bill_no"], p["amount"]) for p in payments) == [
        ("DEPOSIT-1", 50000),
        ("GIFT-1", 3000),
    ]
    assert seen["GIFT-1"]["status"] == "paid" and seen["GIFT-1"]["amount"] is None


@pytest_twisted.ensureDeferred
async def test_a_revoked_number_stops_answering_and_the_next_one_is_new(
    tmp_path: Path, database_url: str
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    site = await deferToThread(make_site, tmp_path, database_url)
    factory = MpnCenterFactory(reactor, deadline=5.0)
    port, daemon = await started(site, factory)
    seen: dict[str, Any] = {}
    try:
        body = {"bill_no": "2027-01", "amount": 5400, "due_date": due(15),
                "channels": ["payeasy"], "customer": {"customer_no": "C0001"}}  # fmt: skip
        await deferToThread(post_bill, site, body)
        old, made = await deferToThread(payer_number, site, "C0001")
        seen["before"] = (await inquire(factory, old)).header.response_code
        path = f"{site.api}/v1/customers/C0001/payer-number"
        seen["revoke"] = await deferToThread(http, "DELETE", path, None, site.auth)
        seen["old asked"] = (await inquire(factory, old)).header.response_code
        seen["old paid"] = (await pay(factory, old, 5400)).header.response_code
        seen["bill"] = (await deferToThread(bill_of, site, "2027-01"))["status"]
        new, fresh = await deferToThread(payer_number, site, "C0001")
        answer = await inquire(factory, new)
        assert isinstance(answer.body, InquiryAnswer)
        seen["new asked"] = (answer.header.response_code, answer.body.amount)
        seen["new paid"] = (await pay(factory, new, 5400)).header.response_code
        seen["after"] = (await deferToThread(bill_of, site, "2027-01"))["status"]
    finally:
        await deferToThread(daemon.stop)
        await maybeDeferred(port.stopListening)

    assert seen["before"] == "0000"
    status, revoked, _ = seen["revoke"]
    assert status == 200 and revoked["customer_number"] == made["customer_number"]
    assert revoked["revoked_at"] is not None and revoked["revoked_by"].startswith("key:")
    # The revoked number is refused as an unknown one (spec/mpn.md: 1001), pays nothing.
    assert (seen["old asked"], seen["old paid"], seen["bill"]) == ("1001", "1001", "open")
    assert fresh["customer_number"] != made["customer_number"]
    assert seen["new asked"] == ("0000", 5400)
    assert (seen["new paid"], seen["after"]) == ("0000", "paid")
