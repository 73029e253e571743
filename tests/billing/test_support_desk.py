"""The support desk (issue 19, part 6) through the real service and ``gateway-admin``: a bill
found across billers by any identifier, its whole story, refund cases of every biller, billers
changed and suspended, and the audit log of every operator action. A biller's key gets 403
on every support route and still sees only its own data."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest_twisted

from gateway.app.admin.commands import main as admin_main
from gateway.model import MessageKind
from tests.billing.test_payments_api import pay
from tests.conftest import Biller, Running, admin
from tests.test_api import bill_body


def operator(gateway: Running) -> Biller:
    made = admin(gateway.config_path, "key", "create", "--admin")
    return Biller("operator", "", made["key"])


def admin_fails(config_path: Path, *args: str) -> str:
    """Run a gateway-admin command that must fail; its one-line reason."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = admin_main(["-c", str(config_path), *args])
    assert rc == 1, f"gateway-admin {' '.join(args)} did not fail"
    return err.getvalue()


async def double_paid(gateway: Running, who: Biller, bill_no: str) -> dict[str, Any]:
    """A bill paid twice at two stores: its second payment opens a refund case."""
    _, bill, _ = await gateway.request("POST", "/v1/bills", who, bill_body(bill_no))
    code = bill["cvs"]["barcode"]
    assert pay(gateway, code, MessageKind.PRELIMINARY) == "applied"
    assert pay(gateway, code, MessageKind.PRELIMINARY, store="0999999", minutes=3) == "applied"
    return bill


@pytest_twisted.ensureDeferred
async def test_a_bill_is_found_by_any_identifier_and_its_story_told(gateway: Running) -> None:
    op = operator(gateway)
    acme, rival = gateway.onboard("acme"), gateway.onboard("rival")
    bill = await double_paid(gateway, acme, "P-1")
    body = bill_body("P-1")
    body["customer"] = {**body.get("customer", {}), "customer_no": "C-42"}
    status, other, _ = await gateway.request("POST", "/v1/bills", rival, body)
    assert status == 201, other

    async def find(q: str) -> list[tuple[str, str, list[str]]]:
        status, doc, _ = await gateway.request("GET", f"/v1/support/bills?q={q}", op)
        assert status == 200, doc
        return [(d["biller_id"], d["bill"]["bill_no"], d["matched"]) for d in doc["data"]]

    code = bill["cvs"]["barcode"]
    assert await find("P-1") == [("rival", "P-1", ["bill_no"]), ("acme", "P-1", ["bill_no"])]
    assert await find(code) == [("acme", "P-1", ["barcode"])]
    assert await find(code[2:29]) == [("acme", "P-1", ["cvs_bill_key"])]
    number = bill["payeasy"]["customer_number"]
    assert await find(number) == [("acme", "P-1", ["payeasy_customer_number"])]
    assert await find("C-42") == [("rival", "P-1", ["customer_no"])]
    assert await find("000020-0999999") == [("acme", "P-1", ["payment_store"])]
    assert await find("000020") == [("acme", "P-1", ["payment_store"])]  # the chain
    assert await find("nothing-here") == []
    # the same through the command line
    found = admin(gateway.config_path, "bill", "find", code)
    assert [(d["biller_id"], d["matched"]) for d in found["data"]] == [("acme", ["barcode"])]

    status, story, _ = await gateway.request("GET", "/v1/support/bills/acme/P-1", op)
    assert status == 200, story
    assert story["bill"]["status"] == "paid" and story["bill"]["double_paid"] is True
    assert "page_url" not in story["bill"]  # the page token is a secret
    assert [s["barcode"] for s in story["slips"]] == [code]
    assert len(story["payments"]) == 2
    first = story["payments"][0]
    assert first["store"] == "000020-0110002" and first["amount"] == 5400
    [message] = first["messages"]
    assert message["kind"] == "preliminary" and message["outcome"] == "applied"
    assert message["raw"] == first["event_key"] and message["raw_encoding"] == "cp932"
    assert story["events"][0]["type"] == "bill.created"
    assert any(e["type"].startswith("payment.") for e in story["events"])
    [case] = story["refund_cases"]
    assert case["biller_id"] == "acme" and case["status"] == "open"
    assert story["webhook_deliveries"] == [] and story["transfer_requests"] == []
    shown = admin(gateway.config_path, "bill", "show", "--biller", "acme", "--bill", "P-1")
    assert shown == story
    text = json.dumps(story)
    assert "gw_" not in text and "secret" not in text

    status, doc, _ = await gateway.request("GET", "/v1/support/bills/acme/NOPE", op)
    assert status == 404, doc

    # a biller's key: 403 on every support route, and still only its own bills
    for path in (
        "/v1/support/bills?q=P-1",
        "/v1/support/bills/acme/P-1",
        "/v1/support/refund-cases",
        "/v1/support/audit",
        "/v1/support/keys",
    ):
        status, doc, _ = await gateway.request("GET", path, acme)
        assert status == 403, (path, doc)
    status, doc, _ = await gateway.request("GET", "/v1/refund-cases", rival)
    assert (status, doc) == (200, {"data": []})
    status, doc, _ = await gateway.request("GET", "/v1/bills/P-1/payments", rival)
    assert status == 200 and doc["data"] == []


@pytest_twisted.ensureDeferred
async def test_refund_cases_of_every_biller_are_listed_and_resolved(gateway: Running) -> None:
    op = operator(gateway)
    acme, rival = gateway.onboard("acme"), gateway.onboard("rival")
    await double_paid(gateway, acme, "A-1")
    await double_paid(gateway, rival, "R-1")

    status, doc, _ = await gateway.request("GET", "/v1/support/refund-cases?status=open", op)
    assert status == 200, doc
    # both opened the same minute: in the order of their ids then
    assert sorted((c["biller_id"], c["bill_no"]) for c in doc["data"]) == [
        ("acme", "A-1"),
        ("rival", "R-1"),
    ]
    status, page, _ = await gateway.request("GET", "/v1/support/refund-cases?limit=1", op)
    assert len(page["data"]) == 1 and page["next_cursor"]
    path = f"/v1/support/refund-cases?limit=1&cursor={page['next_cursor']}"
    status, rest, _ = await gateway.request("GET", path, op)
    assert page["data"] + rest["data"] == doc["data"] and rest["next_cursor"] is None
    path = "/v1/support/refund-cases?biller_id=rival"
    status, only, _ = await gateway.request("GET", path, op)
    [rival_case] = only["data"]
    [acme_case] = [c for c in doc["data"] if c["biller_id"] == "acme"]

    body = {"resolution": "refunded", "note": "returned at the counter"}
    path = f"/v1/support/refund-cases/{acme_case['case_id']}/resolve"
    status, resolved, _ = await gateway.request("POST", path, op, body)
    assert status == 200, resolved
    assert (resolved["status"], resolved["resolution"]) == ("resolved", "refunded")
    status, again, _ = await gateway.request("POST", path, op, body)
    assert (status, again) == (200, resolved)  # the same again: nothing changes
    status, doc, _ = await gateway.request("POST", path, op, {"resolution": "no_refund"})
    assert status == 409, doc
    status, doc, _ = await gateway.request("POST", path, op, {"resolution": "maybe"})
    assert status == 422, doc
    # the biller sees its case resolved; the other biller's key cannot resolve it
    status, doc, _ = await gateway.request("GET", "/v1/refund-cases", acme)
    assert doc["data"][0]["resolution"] == "refunded"
    status, doc, _ = await gateway.request("POST", path, rival, body)
    assert status == 403

    done = admin(
        gateway.config_path,
        "refund",
        "resolve",
        rival_case["case_id"],
        "--resolution",
        "no_refund",
        "--note",
        "the customer keeps it as credit",
    )
    assert done["resolution"] == "no_refund"
    listed = admin(gateway.config_path, "refund", "list", "--status", "open")
    assert listed["data"] == []

    log = admin(gateway.config_path, "audit", "list", "--action", "refund_case.resolve")
    assert [(a["target"], a["actor"].split(":")[0]) for a in log["data"]] == [
        (f"refund_case:{rival_case['case_id']}", "cli"),
        (f"refund_case:{acme_case['case_id']}", "key"),
    ]
    assert log["data"][1]["actor"] == f"key:{_key_id(gateway, op)}"
    assert log["data"][1]["before"]["status"] == "open"
    assert log["data"][1]["after"]["note"] == "returned at the counter"


def _key_id(gateway: Running, who: Biller) -> str:
    keys = admin(gateway.config_path, "key", "list")["keys"]
    admins = [k["key_id"] for k in keys if k["admin"]]
    assert len(admins) == 1
    return str(admins[0])


@pytest_twisted.ensureDeferred
async def test_a_suspended_biller_is_refused_and_its_payments_still_land(gateway: Running) -> None:
    op = operator(gateway)
    acme = gateway.onboard("acme")
    _, bill, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("S-1"))

    body = {"name": "Acme 新社名", "channels": ["cvs", "payeasy"]}
    status, changed, _ = await gateway.request("PATCH", "/v1/billers/acme", op, body)
    assert status == 200, changed
    assert changed["name"] == "Acme 新社名" and changed["channels"] == ["cvs", "payeasy"]
    status, doc, _ = await gateway.request("PATCH", "/v1/billers/acme", op, {"kana": "kana"})
    assert status == 422 and doc["errors"][0]["field"] == "kana"
    status, doc, _ = await gateway.request("PATCH", "/v1/billers/acme", acme, body)
    assert status == 403

    path = "/v1/billers/acme/suspend"
    status, suspended, _ = await gateway.request("POST", path, op, {"reason": "unpaid fees"})
    assert status == 200, suspended
    assert suspended["suspended_at"] is not None
    # its key is refused (the test configuration caches no key)
    status, doc, _ = await gateway.request("GET", "/v1/bills/S-1", acme)
    assert status == 403 and "suspended" in doc["detail"]
    status, doc, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("S-2"))
    assert status == 403
    # a payment of a bill it issued still lands in the ledger
    assert pay(gateway, bill["cvs"]["barcode"], MessageKind.PRELIMINARY) == "applied"
    status, story, _ = await gateway.request("GET", "/v1/support/bills/acme/S-1", op)
    assert story["bill"]["status"] == "paid" and len(story["payments"]) == 1

    shown = admin(gateway.config_path, "biller", "show", "--id", "acme")
    assert shown["suspended_at"] == suspended["suspended_at"] and len(shown["keys"]) == 1
    resumed = admin(gateway.config_path, "biller", "resume", "--id", "acme", "--reason", "paid")
    assert resumed["suspended_at"] is None
    status, doc, _ = await gateway.request("GET", "/v1/bills/S-1", acme)
    assert status == 200, doc

    # the command line's own changes, and its refusals
    admin(gateway.config_path, "biller", "suspend", "--id", "acme")
    again = admin(gateway.config_path, "biller", "suspend", "--id", "acme")  # no change
    assert again["suspended_at"] is not None
    status, doc, _ = await gateway.request("POST", "/v1/billers/acme/resume", op)
    assert status == 200 and doc["suspended_at"] is None
    updated = admin(gateway.config_path, "biller", "update", "--id", "acme", "--kana", "ｱｸﾒ")
    assert updated["kana"] == "ｱｸﾒ"
    assert "--channels" in admin_fails(
        gateway.config_path, "biller", "update", "--id", "acme", "--channels", "cash"
    )
    listed = admin(gateway.config_path, "biller", "list")
    assert [b["biller_id"] for b in listed["billers"]] == ["acme"]

    # every operator action is in the audit log, newest first, in the order it happened
    status, log, _ = await gateway.request("GET", "/v1/support/audit?biller_id=acme", op)
    assert status == 200, log
    actions = [(a["action"], a["actor"].split(":")[0]) for a in log["data"]]
    assert actions == [
        ("biller.update", "cli"),
        ("biller.resume", "key"),
        ("biller.suspend", "cli"),
        ("biller.resume", "cli"),
        ("biller.suspend", "key"),
        ("biller.update", "key"),
        ("key.create", "cli"),
        ("biller.create", "cli"),
    ]
    first_update = log["data"][5]
    assert first_update["before"] == {
        "name": "acme 株式会社",
        "channels": ["cvs", "payeasy", "transfer"],
    }
    assert first_update["after"] == {"name": "Acme 新社名", "channels": ["cvs", "payeasy"]}
    assert log["data"][4]["after"]["reason"] == "unpaid fees"
    status, page, _ = await gateway.request("GET", "/v1/support/audit?biller_id=acme&limit=3", op)
    path = f"/v1/support/audit?biller_id=acme&limit=3&cursor={page['next_cursor']}"
    status, rest, _ = await gateway.request("GET", path, op)
    assert [a["id"] for a in page["data"] + rest["data"]] == [a["id"] for a in log["data"][:6]]
    status, doc, _ = await gateway.request("GET", "/v1/support/audit?target=biller:acme", op)
    assert len(doc["data"]) == 7  # all but the key's line
    status, keys, _ = await gateway.request("GET", "/v1/support/keys?biller_id=acme", op)
    assert [k["biller_id"] for k in keys["keys"]] == ["acme"]
    # Never the key: its first 7 characters only (gw_ and 4), to tell it by.
    assert acme.key not in json.dumps(keys) and json.dumps(keys).count("gw_") == 1
    assert keys["keys"][0]["prefix"] == acme.key[:7]


@pytest_twisted.ensureDeferred
async def test_the_operator_api_creates_billers_audited(gateway: Running) -> None:
    op = operator(gateway)
    body = {"biller_id": "gas", "name": "Gas", "kana": "ｶﾞｽ", "channels": ["payeasy"]}
    status, doc, _ = await gateway.request("POST", "/v1/billers", op, body)
    assert status == 201, doc
    assert doc["suspended_at"] is None
    [line] = admin(gateway.config_path, "audit", "list", "--target", "biller:gas")["data"]
    assert line["action"] == "biller.create" and line["actor"].startswith("key:key_")
    assert line["before"] is None and line["after"]["biller_id"] == "gas"
