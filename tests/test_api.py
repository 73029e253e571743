"""The merchant API against the real service on a real socket (SQLite, or PostgreSQL)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import pytest_twisted
import treq
from sqlalchemy import select
from twisted.internet.defer import DeferredList, ensureDeferred

from gateway.mappers.cvs import barcode
from gateway.mappers.mpn.numbers import valid_customer_number
from gateway.store import create_db_engine
from gateway.store.schema import bill_slips, bills, idempotency_keys
from tests.conftest import Running, due


def bill_body(bill_no: str = "INV-2026-000123", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "bill_no": bill_no,
        "amount": 5400,
        "due_date": due(30),
        "channels": ["cvs", "payeasy", "transfer"],
        "customer": {
            "customer_no": "C0001",
            "name": "山田 太郎",
            "kana": "ﾔﾏﾀﾞ ﾀﾛｳ",
            "email": "taro@example.jp",
            "phone": "09012345678",
        },
        "tax": {"taxable": True, "tax_amount": 490},
        "description": "12月分 利用料",
    }
    body.update(over)
    return body


def fields(problem: dict[str, Any]) -> set[str]:
    return {e["field"] for e in problem.get("errors", [])}


def rows(url: str, table: Any) -> list[Any]:
    engine = create_db_engine(url, 1)
    with engine.connect() as conn:
        result = conn.execute(select(table)).all()
    engine.dispose()
    return result


@pytest_twisted.ensureDeferred
async def test_create_bill_issues_barcode_payeasy_numbers_and_page(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    status, bill, _ = await gateway.request("POST", "/v1/bills", acme, bill_body())
    assert status == 201, bill
    assert bill["status"] == "open" and bill["version"] == 1 and bill["reissue"] == 0
    assert bill["amount"] == 5400 and bill["due_date"] == due(30)

    code = barcode.parse(bill["cvs"]["barcode"])
    assert code.company_code == "987654"
    assert code.free_field.startswith(acme.code)  # biller code, then the bill serial
    assert code.amount == 5400 and code.reissue == 0 and not code.stamp
    assert code.due is not None and code.due.isoformat() == due(30)
    assert bill["cvs"]["human_readable"] == code.human_readable()

    pe = bill["payeasy"]
    assert pe["institution_code"] == "58191"
    assert valid_customer_number(pe["customer_number"])
    assert pe["customer_number"].startswith(acme.code)
    assert re.fullmatch(r"[0-9]{6}", pe["confirmation_number"])

    token = bill["page_url"].removeprefix("http://127.0.0.1:8080/p/")
    assert token != bill["page_url"] and len(token) >= 22  # >= 128 random bits, base64url

    status, again, _ = await gateway.request("GET", "/v1/bills/INV-2026-000123", acme)
    assert status == 200 and again == bill


@pytest.mark.parametrize(
    ("amount", "tax", "stamp"),
    [
        (55_000, {"taxable": True, "tax_amount": 5_000}, True),  # 50,000 tax-exclusive
        (54_999, {"taxable": True, "tax_amount": 5_000}, False),
        (50_000, {"taxable": False}, True),
        (49_999, {"taxable": False}, False),
    ],
)
@pytest_twisted.ensureDeferred
async def test_stamp_flag_follows_the_tax_exclusive_amount(
    gateway: Running, amount: int, tax: dict[str, Any], stamp: bool
) -> None:
    acme = gateway.onboard("acme")
    status, bill, _ = await gateway.request(
        "POST", "/v1/bills", acme, bill_body(amount=amount, tax=tax)
    )
    assert status == 201, bill
    assert bill["cvs"]["stamp"] is stamp
    assert barcode.parse(bill["cvs"]["barcode"]).stamp is stamp


@pytest.mark.parametrize(
    ("change", "status", "bad_fields"),
    [
        ({"amount": "5400"}, 400, {"amount"}),
        ({"amount": True}, 400, {"amount"}),
        ({"amount": 0}, 422, {"amount"}),
        ({"amount": 300_001}, 422, {"amount"}),  # the CVS ceiling
        ({"due_date": "2020-01-01"}, 422, {"due_date"}),
        ({"due_date": "2026-02-30"}, 422, {"due_date"}),
        ({"due_date": "tomorrow"}, 422, {"due_date"}),
        ({"channels": []}, 422, {"channels"}),
        ({"channels": ["cvs", "bitcoin"]}, 422, {"channels[1]"}),
        ({"channels": ["cvs", "cvs"]}, 422, {"channels[1]"}),
        ({"bill_no": "has space"}, 422, {"bill_no"}),
        ({"bill_no": "x" * 65}, 422, {"bill_no"}),
        ({"surprise": 1}, 400, {"surprise"}),
        ({"customer": {"email": "not-an-address"}}, 422, {"customer.email"}),
        ({"customer": {"phone": "+81-90"}}, 422, {"customer.phone"}),
        ({"customer": {"customer_no": "C1", "nickname": "x"}}, 400, {"customer.nickname"}),
        ({"tax": {"taxable": False, "tax_amount": 10}}, 422, {"tax.tax_amount"}),
        ({"tax": {"taxable": True, "tax_amount": 6000}}, 422, {"tax.tax_amount"}),
        ({"tax": {"tax_amount": 10}}, 400, {"tax.taxable"}),
        ({"description": "x" * 201}, 422, {"description"}),
    ],
)
@pytest_twisted.ensureDeferred
async def test_bad_fields_are_named_and_nothing_is_stored(
    gateway: Running, change: dict[str, Any], status: int, bad_fields: set[str]
) -> None:
    acme = gateway.onboard("acme")
    got, problem, headers = await gateway.request(
        "POST", "/v1/bills", acme, bill_body(**change), headers={"Idempotency-Key": "bad-1"}
    )
    assert got == status, problem
    assert headers.getRawHeaders("content-type")[0].startswith("application/problem+json")
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert bad_fields <= fields(problem)
    assert rows(gateway.config.database.url, bills) == []
    assert rows(gateway.config.database.url, idempotency_keys) == []  # nothing kept either


@pytest_twisted.ensureDeferred
async def test_every_bad_field_is_reported_at_once(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    status, problem, _ = await gateway.request(
        "POST",
        "/v1/bills",
        acme,
        {"bill_no": "ok-1", "amount": -5, "due_date": "2020-01-01", "channels": ["fax"]},
    )
    assert status == 422
    assert fields(problem) == {"amount", "due_date", "channels[0]"}


@pytest_twisted.ensureDeferred
async def test_transfer_needs_a_customer_no(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    status, problem, _ = await gateway.request(
        "POST", "/v1/bills", acme, bill_body(customer={"name": "山田"})
    )
    assert status == 422 and fields(problem) == {"customer.customer_no"}


@pytest_twisted.ensureDeferred
async def test_channel_the_biller_does_not_have_is_refused(gateway: Running) -> None:
    shop = gateway.onboard("shop", channels="cvs")
    status, problem, _ = await gateway.request("POST", "/v1/bills", shop, bill_body())
    assert status == 422 and fields(problem) == {"channels"}
    status, bill, _ = await gateway.request("POST", "/v1/bills", shop, bill_body(channels=["cvs"]))
    assert status == 201 and "payeasy" not in bill and "cvs" in bill


@pytest_twisted.ensureDeferred
async def test_payeasy_only_bill_may_exceed_the_cvs_ceiling(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    status, bill, _ = await gateway.request(
        "POST", "/v1/bills", acme, bill_body(amount=500_000, channels=["payeasy"])
    )
    assert status == 201, bill
    assert "cvs" not in bill and bill["payeasy"]["customer_number"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("POST", "/v1/bills", {"raw": b"{not json"}, 400),
        ("POST", "/v1/bills", {"raw": b"[1, 2]"}, 400),
        ("POST", "/v1/bills", {"raw": b'{"amount": NaN}'}, 400),
        ("POST", "/v1/bills", {"raw": b"\xff\xfe"}, 400),
        ("POST", "/v1/bills", {"raw": b"", "headers": {}}, 400),
        ("POST", "/v1/bills", {"raw": b"{}", "headers": {"Content-Type": "text/plain"}}, 415),
        ("POST", "/v1/bills", {"raw": b"{" + b" " * (1024 * 1024) + b"}"}, 413),
        ("GET", "/v1/nothing-here", {}, 404),
        ("DELETE", "/v1/bills", {}, 405),
        ("POST", "/v1/bills", {"raw": b"{}", "headers": {"Idempotency-Key": "x" * 256}}, 400),
    ],
)
@pytest_twisted.ensureDeferred
async def test_error_responses_are_problem_json(
    gateway: Running, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    acme = gateway.onboard("acme")
    got, problem, headers = await gateway.request(method, path, acme, **kwargs)
    assert got == status, problem
    assert headers.getRawHeaders("content-type")[0].startswith("application/problem+json")
    assert problem["status"] == status


@pytest_twisted.ensureDeferred
async def test_authentication_is_required(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    status, _problem, headers = await gateway.request("GET", "/v1/bills")
    assert status == 401 and headers.getRawHeaders("www-authenticate")
    status, _, _ = await gateway.request(
        "GET", "/v1/bills", headers={"Authorization": "Bearer gw_wrong"}
    )
    assert status == 401
    status, _, _ = await gateway.request(
        "GET", "/v1/bills", headers={"Authorization": "Basic " + acme.key}
    )
    assert status == 401
    status, doc, _ = await gateway.request("GET", "/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")


@pytest_twisted.ensureDeferred
async def test_idempotency_replay_and_conflict(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    key = {"Idempotency-Key": "order-77"}
    s1, first, h1 = await gateway.request("POST", "/v1/bills", acme, bill_body(), headers=key)
    s2, second, h2 = await gateway.request("POST", "/v1/bills", acme, bill_body(), headers=key)
    assert (s1, s2) == (201, 201)
    assert first == second
    assert h1.getRawHeaders("idempotent-replayed") is None
    assert h2.getRawHeaders("idempotent-replayed") == ["true"]
    s3, problem, _ = await gateway.request(
        "POST", "/v1/bills", acme, bill_body(amount=9999), headers=key
    )
    assert s3 == 409 and "Idempotency-Key" in fields(problem)
    # Keys are per biller: another biller's identical key is a different request.
    other = gateway.onboard("other")
    s4, _, h4 = await gateway.request("POST", "/v1/bills", other, bill_body(), headers=key)
    assert s4 == 201 and h4.getRawHeaders("idempotent-replayed") is None
    assert len(rows(gateway.config.database.url, bills)) == 2


@pytest_twisted.ensureDeferred
async def test_concurrent_requests_with_one_key_have_one_effect(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    headers = dict(acme.headers, **{"Idempotency-Key": "same-key"})
    body = json.dumps(bill_body()).encode()

    async def post() -> tuple[int, Any]:
        resp = await treq.post(gateway.api + "/v1/bills", data=body, headers=headers)
        return resp.code, json.loads(await resp.content())

    results = await DeferredList(
        [ensureDeferred(post()) for _ in range(8)], fireOnOneErrback=True, consumeErrors=True
    )
    answers = [r for _, r in results]
    assert {code for code, _ in answers} == {201}
    assert all(doc == answers[0][1] for _, doc in answers)
    assert len(rows(gateway.config.database.url, bills)) == 1
    _, feed, _ = await gateway.request("GET", "/v1/events?after=0", acme)
    assert [e["type"] for e in feed["data"]] == ["bill.created"]


@pytest_twisted.ensureDeferred
async def test_same_bill_no_identical_is_200_different_is_409(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    s1, created, _ = await gateway.request("POST", "/v1/bills", acme, bill_body())
    s2, existing, _ = await gateway.request("POST", "/v1/bills", acme, bill_body())
    s3, problem, _ = await gateway.request("POST", "/v1/bills", acme, bill_body(amount=6000))
    assert (s1, s2, s3) == (201, 200, 409)
    assert existing == created
    assert fields(problem) == {"bill_no"}


@pytest_twisted.ensureDeferred
async def test_billers_are_isolated(gateway: Running) -> None:
    acme, rival = gateway.onboard("acme"), gateway.onboard("rival")
    await gateway.request("POST", "/v1/bills", acme, bill_body("SECRET-1"))
    unknown = await gateway.request("GET", "/v1/bills/NO-SUCH", rival)
    foreign = await gateway.request("GET", "/v1/bills/SECRET-1", rival)
    assert foreign[0] == unknown[0] == 404
    assert foreign[1]["detail"].replace("SECRET-1", "X") == unknown[1]["detail"].replace(
        "NO-SUCH", "X"
    )
    for action in ("cancel", "reissue"):
        status, _, _ = await gateway.request("POST", f"/v1/bills/SECRET-1/{action}", rival, {})
        assert status == 404
    _, page, _ = await gateway.request("GET", "/v1/bills", rival)
    assert page["data"] == []
    _, feed, _ = await gateway.request("GET", "/v1/events", rival)
    assert feed["data"] == []
    # rival may use the same bill_no for its own bill.
    status, _, _ = await gateway.request("POST", "/v1/bills", rival, bill_body("SECRET-1"))
    assert status == 201
    _, mine, _ = await gateway.request("GET", "/v1/bills/SECRET-1", acme)
    assert mine["version"] == 1 and mine["status"] == "open"


@pytest_twisted.ensureDeferred
async def test_cancel(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    await gateway.request("POST", "/v1/bills", acme, bill_body())
    status, bill, _ = await gateway.request("POST", "/v1/bills/INV-2026-000123/cancel", acme)
    assert status == 200 and bill["status"] == "cancelled" and bill["version"] == 2
    status, again, _ = await gateway.request("POST", "/v1/bills/INV-2026-000123/cancel", acme)
    assert status == 200 and again["version"] == 2  # nothing changed the second time
    status, _problem, _ = await gateway.request(
        "POST", "/v1/bills/INV-2026-000123/reissue", acme, {"amount": 6000}
    )
    assert status == 409
    _, feed, _ = await gateway.request("GET", "/v1/events", acme)
    assert [e["type"] for e in feed["data"]] == ["bill.created", "bill.cancelled"]
    assert feed["data"][1]["data"]["bill"]["version"] == 2


@pytest_twisted.ensureDeferred
async def test_reissue_keeps_the_bill_key_and_both_slips(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    _, first, _ = await gateway.request("POST", "/v1/bills", acme, bill_body())
    status, bill, _ = await gateway.request(
        "POST", "/v1/bills/INV-2026-000123/reissue", acme, {"amount": 56_000, "due_date": due(60)}
    )
    assert status == 200, bill
    old, new = barcode.parse(first["cvs"]["barcode"]), barcode.parse(bill["cvs"]["barcode"])
    assert new.bill_key == old.bill_key
    assert (new.reissue, new.amount, new.stamp) == (1, 56_000, True)
    assert new.due is not None and new.due.isoformat() == due(60)
    assert bill["reissue"] == 1 and bill["version"] == 2 and bill["amount"] == 56_000
    assert bill["payeasy"] == first["payeasy"]
    slips = sorted(rows(gateway.config.database.url, bill_slips), key=lambda r: r.reissue)
    assert [(s.reissue, s.barcode, s.amount) for s in slips] == [
        (0, old.digits, 5400),
        (1, new.digits, 56_000),
    ]
    status, problem, _ = await gateway.request(
        "POST", "/v1/bills/INV-2026-000123/reissue", acme, {"due_date": "2020-01-01"}
    )
    assert status == 422 and fields(problem) == {"due_date"}
    status, problem, _ = await gateway.request(
        "POST", "/v1/bills/INV-2026-000123/reissue", acme, {"amount": 400_000}
    )
    assert status == 422 and fields(problem) == {"amount"}


@pytest_twisted.ensureDeferred
async def test_list_pages_and_filters(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    for i in range(5):
        await gateway.request("POST", "/v1/bills", acme, bill_body(f"B-{i}"))
    await gateway.request("POST", "/v1/bills/B-3/cancel", acme)
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        status, page, _ = await gateway.request(
            "GET", f"/v1/bills?limit=2{'&cursor=' + cursor if cursor else ''}", acme
        )
        assert status == 200
        pages += 1
        seen += [b["bill_no"] for b in page["data"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == [f"B-{i}" for i in range(5)] and pages == 3
    _, cancelled, _ = await gateway.request("GET", "/v1/bills?status=cancelled", acme)
    assert [b["bill_no"] for b in cancelled["data"]] == ["B-3"]
    for query, field in (
        ("status=gone", "status"),
        ("cursor=%21%21", "cursor"),
        ("limit=0", "limit"),
        ("updated_since=yesterday", "updated_since"),
        ("updated_since=2026-01-01T00:00:00", "updated_since"),
    ):
        status, problem, _ = await gateway.request("GET", f"/v1/bills?{query}", acme)
        assert status == 400 and fields(problem) == {field}, query
    _, recent, _ = await gateway.request(
        "GET", "/v1/bills?updated_since=2999-01-01T00:00:00%2B09:00", acme
    )
    assert recent["data"] == []


@pytest_twisted.ensureDeferred
async def test_events_feed_is_gap_free_in_seq_order(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    for i in range(4):
        await gateway.request("POST", "/v1/bills", acme, bill_body(f"E-{i}"))
    await gateway.request("POST", "/v1/bills/E-0/cancel", acme)
    _, page1, _ = await gateway.request("GET", "/v1/events?after=0&limit=3", acme)
    _, page2, _ = await gateway.request(
        "GET", f"/v1/events?after={page1['next_after']}&limit=3", acme
    )
    events = page1["data"] + page2["data"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert [e["type"] for e in events] == ["bill.created"] * 4 + ["bill.cancelled"]
    assert all(e["id"].startswith("evt_") for e in events)
    assert events[0]["data"]["bill"]["bill_no"] == "E-0"
    _, done, _ = await gateway.request("GET", "/v1/events?after=5", acme)
    assert done["data"] == [] and done["next_after"] == 5


@pytest_twisted.ensureDeferred
async def test_health_readiness_and_metrics(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    await gateway.request("POST", "/v1/bills", acme, bill_body())
    await gateway.request("GET", "/v1/bills/NOPE", acme)
    ready = await treq.get(gateway.metrics + "/readyz")
    assert ready.code == 200 and json.loads(await ready.content())["ready"] is True
    health = await treq.get(gateway.metrics + "/healthz")
    assert health.code == 200
    await health.content()
    text = (await (await treq.get(gateway.metrics + "/metrics")).content()).decode()
    assert re.search(
        r'gateway_http_requests_total\{method="POST",route="/v1/bills",'
        r'status="201"\} [1-9]',
        text,
    )
    assert re.search(
        r'gateway_http_requests_total\{method="GET",route="/v1/bills/\{bill_no\}",'
        r'status="404"\} [1-9]',
        text,
    )
    assert 'gateway_http_request_duration_seconds_bucket{le="0.001",method="POST"' in text
    assert re.search(
        r'gateway_store_interaction_duration_seconds_count\{desc="bills.create"\} '
        r"[1-9]",
        text,
    )
    assert acme.key not in text and "INV-2026-000123" not in text  # no secrets, no bill data
