"""Payments and refund cases through the merchant API."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest_twisted

from gateway.config import CvsAgency, CvsConfig
from gateway.ingest import Ingest, Received
from gateway.model import JST, Channel, CollectionEvent, MessageKind
from gateway.networks.cvs import CvsBills
from gateway.store import create_db_engine
from tests.conftest import Running
from tests.test_api import bill_body

NOW = datetime.now(JST).replace(microsecond=0)


def pay(
    running: Running, barcode: str, kind: MessageKind, store: str = "0110002", minutes: int = 0
) -> str:
    """What the CVS network would deliver: one message applied through the ingest core."""
    return pay_at_store(running.config.database.url, barcode, kind, store, minutes)


def pay_at_store(
    database_url: str,
    barcode: str,
    kind: MessageKind = MessageKind.PRELIMINARY,
    store: str = "0110002",
    minutes: int = 0,
) -> str:
    """One CVS message for ``barcode`` applied to the ledger in ``database_url``."""
    at = NOW + timedelta(minutes=minutes)
    key = f"{barcode}{at:%Y%m%d%H%M}000020{store}"
    event = CollectionEvent(
        channel=Channel.CVS,
        kind=kind,
        event_key=key,
        amount=int(barcode[37:43]),
        paid_at=at,
        received_at=NOW,
        source="test",
        raw=key.encode(),
        bill_key=barcode[2:29],
        slip_reissue=int(barcode[29]),
        transfer_date=NOW.date() if kind.value == "confirmation" else None,
        store=f"000020-{store}",
    )
    engine = create_db_engine(database_url, 1)
    ingest = Ingest(
        None,
        None,
        lambda b: {"bill_no": b.bill_no},
        [CvsBills(CvsConfig((CvsAgency("default", "987654"),), "default"))],
    )
    with engine.begin() as conn:
        outcome = ingest.apply(conn, Received(event), at, at.date())
    engine.dispose()
    return outcome


@pytest_twisted.ensureDeferred
async def test_payments_and_refund_cases_are_readable(gateway: Running) -> None:
    acme, rival = gateway.onboard("acme"), gateway.onboard("rival")
    _, bill, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("P-1"))
    code = bill["cvs"]["barcode"]
    assert pay(gateway, code, MessageKind.PRELIMINARY) == "applied"
    assert pay(gateway, code, MessageKind.PRELIMINARY, store="0999999", minutes=3) == "applied"

    status, bill_now, _ = await gateway.request("GET", "/v1/bills/P-1", acme)
    assert bill_now["status"] == "paid" and bill_now["double_paid"] is True
    status, listed, _ = await gateway.request("GET", "/v1/bills/P-1/payments", acme)
    assert status == 200 and len(listed["data"]) == 2
    first = listed["data"][0]
    assert first["status"] == "pending" and first["amount"] == 5400
    assert first["store"] == {"chain": "000020", "store_code": "0110002"}

    status, page1, _ = await gateway.request("GET", "/v1/payments?limit=1", acme)
    assert status == 200 and len(page1["data"]) == 1 and page1["next_cursor"]
    status, page2, _ = await gateway.request(
        "GET", f"/v1/payments?limit=1&cursor={page1['next_cursor']}", acme
    )
    assert [p["payment_id"] for p in page1["data"] + page2["data"]] == [
        p["payment_id"] for p in listed["data"]
    ]
    assert page2["next_cursor"] is None
    _, confirmed, _ = await gateway.request("GET", "/v1/payments?status=confirmed", acme)
    assert confirmed["data"] == []

    status, cases, _ = await gateway.request("GET", "/v1/refund-cases?status=open", acme)
    (case,) = cases["data"]
    assert case["reason"] == "double_payment" and case["bill_no"] == "P-1"
    assert case["payment_id"] == listed["data"][1]["payment_id"]

    # isolation: the rival sees nothing and cannot resolve
    _, theirs, _ = await gateway.request("GET", "/v1/refund-cases", rival)
    assert theirs["data"] == []
    status, _, _ = await gateway.request(
        "POST", f"/v1/refund-cases/{case['case_id']}/resolve", rival, {"resolution": "refunded"}
    )
    assert status == 404
    assert (await gateway.request("GET", "/v1/bills/P-1/payments", rival))[0] == 404

    status, resolved, _ = await gateway.request(
        "POST",
        f"/v1/refund-cases/{case['case_id']}/resolve",
        acme,
        {"resolution": "refunded", "note": "振込で返金済み"},
    )
    assert status == 200 and resolved["status"] == "resolved"
    again = await gateway.request(
        "POST",
        f"/v1/refund-cases/{case['case_id']}/resolve",
        acme,
        {"resolution": "refunded", "note": "振込で返金済み"},
    )
    assert again[0] == 200
    other = await gateway.request(
        "POST", f"/v1/refund-cases/{case['case_id']}/resolve", acme, {"resolution": "no_refund"}
    )
    assert other[0] == 409
    bad = await gateway.request(
        "POST", f"/v1/refund-cases/{case['case_id']}/resolve", acme, {"resolution": "maybe"}
    )
    assert bad[0] == 422 and bad[1]["errors"][0]["field"] == "resolution"

    _, feed, _ = await gateway.request("GET", "/v1/events", acme)
    types = [e["type"] for e in feed["data"]]
    assert types == [
        "bill.created",
        "payment.preliminary",
        "payment.preliminary",
        "bill.double_paid",
        "refund_case.opened",
    ]
    assert feed["data"][1]["data"]["payment"]["status"] == "pending"
    assert feed["data"][4]["data"]["refund_case"]["reason"] == "double_payment"
