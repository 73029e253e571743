"""The operator's biller API (issue 16) through the real service: ``POST /v1/billers``,
``GET /v1/billers`` and ``GET /v1/billers/{biller_id}``, with the two agencies of
tests/billing/test_agency_bills.py (``gs`` holds one code for the center, ``kessai`` gives each
biller its own)."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted

from gateway.mappers.cvs import barcode
from tests.billing.test_agency_bills import agency_config
from tests.conftest import Biller, Running, admin, due


@pytest.fixture
def gateway_config(migrated_url: str) -> str:
    """The service of the ``gateway`` fixture runs with the two agencies."""
    return agency_config(migrated_url)


def operator(gateway: Running) -> Biller:
    return Biller("operator", "", admin(gateway.config_path, "key", "create", "--admin")["key"])


def application(biller_id: str, **more: Any) -> dict[str, Any]:
    return {
        "biller_id": biller_id,
        "name": f"{biller_id} 株式会社",
        "kana": "ﾃｽﾄ",
        "channels": ["cvs", "payeasy"],
        **more,
    }


def fields(doc: dict[str, Any]) -> dict[str, str]:
    return {e["field"]: e["message"] for e in doc["errors"]}


@pytest_twisted.ensureDeferred
async def test_the_operator_puts_billers_under_each_agency(gateway: Running) -> None:
    op = operator(gateway)
    status, gas, _ = await gateway.request("POST", "/v1/billers", op, application("gas"))
    assert status == 201, gas
    assert gas["biller_id"] == "gas"
    assert gas["channels"] == ["cvs", "payeasy"]
    assert gas["payeasy_institution_code"] == "58191"  # the gateway's, none of its own
    # under the default agency, which holds one code for the center: the biller's own follows
    assert gas["cvs"] == {"agency": "gs", "company_code": "929023", "prefix": "25207" + gas["code"]}

    body = application("water", cvs_agency="kessai", cvs_code="31415")
    status, water, _ = await gateway.request("POST", "/v1/billers", op, body)
    assert status == 201, water
    assert water["cvs"] == {"agency": "kessai", "company_code": "987654", "prefix": "31415"}
    assert int(water["code"]) == int(gas["code"]) + 1

    # without the cvs channel, no agency
    body = application("bank", channels=["payeasy"], payeasy_institution_code="12345")
    status, bank, _ = await gateway.request("POST", "/v1/billers", op, body)
    assert status == 201, bank
    assert "cvs" not in bank and bank["payeasy_institution_code"] == "12345"

    # read back, one and all (in the order of their codes), as they were created
    status, doc, _ = await gateway.request("GET", "/v1/billers/water", op)
    assert (status, doc) == (200, water)
    status, doc, _ = await gateway.request("GET", "/v1/billers", op)
    assert status == 200
    assert doc == {"data": [gas, water, bank], "next_cursor": None}
    status, first, _ = await gateway.request("GET", "/v1/billers?limit=2", op)
    assert [b["biller_id"] for b in first["data"]] == ["gas", "water"]
    path = f"/v1/billers?limit=2&cursor={first['next_cursor']}"
    status, rest, _ = await gateway.request("GET", path, op)
    assert (status, rest) == (200, {"data": [bank], "next_cursor": None})

    # and the biller made through the API issues its agency's slips
    key = admin(gateway.config_path, "key", "create", "--biller", "water")["key"]
    bill = {"bill_no": "W-1", "amount": 5400, "due_date": due(10), "channels": ["cvs"]}
    status, doc, _ = await gateway.request("POST", "/v1/bills", Biller("water", "", key), bill)
    assert status == 201, doc
    code = barcode.parse(doc["cvs"]["barcode"])
    assert code.company_code == "987654"
    assert barcode.split_free_field(code.free_field)[0] == "31415"


@pytest_twisted.ensureDeferred
async def test_a_refused_application_names_every_field(gateway: Running) -> None:
    op = operator(gateway)

    async def refused(body: Any, status: int) -> dict[str, str]:
        got, doc, _ = await gateway.request("POST", "/v1/billers", op, body)
        assert got == status, doc
        assert doc["status"] == status
        return fields(doc)

    said = await refused(application("a", cvs_agency="kessai"), 422)
    assert said == {
        "cvs_code": "is required: agency kessai assigns each biller its own 5-digit code"
    }
    said = await refused(application("a", cvs_code="12345"), 422)
    assert said == {
        "cvs_code": "is not taken: agency gs holds one code (25207) for the whole center"
    }
    said = await refused(application("a", cvs_agency="nope"), 422)
    assert said == {"cvs_agency": "'nope' is not an agency (gs, kessai)"}
    said = await refused(application("a", cvs_agency="kessai", cvs_code="1234x"), 422)
    assert said == {"cvs_code": "'1234x' is not 5 digits"}
    said = await refused(application("a", channels=["payeasy"], cvs_agency="gs"), 422)
    assert said == {"cvs_agency": "is only for a biller with the cvs channel"}

    # every field at once, named as the body names them (biller_id, not the command's --id)
    body = {
        "biller_id": "Not An Id",
        "name": "x" * 101,
        "kana": "kana",
        "channels": ["cvs", "cash", "cvs"],
        "payeasy_institution_code": "1",
        "cvs_code": "123",
    }
    said = await refused(body, 422)
    assert set(said) == {
        "biller_id",
        "name",
        "kana",
        "channels[1]",
        "channels[2]",
        "payeasy_institution_code",
        "cvs_code",
    }
    assert said["biller_id"].endswith("must be 1-32 of a-z, 0-9, '_' or '-'")
    assert said["channels[1]"] == "'cash' is not one of cvs, payeasy, transfer"
    assert said["channels[2]"] == "cvs is listed twice"
    said = await refused(application("a", channels=[]), 422)
    assert said == {"channels": "must name at least one channel"}
    said = await refused(application("a", name="A\x01B"), 422)
    assert said == {"name": "must not contain control characters"}

    # malformed: a wrong type, a missing or an unknown field (400)
    said = await refused({"biller_id": 7, "name": "A", "kana": "ｱ", "channels": "cvs"}, 400)
    assert said == {"biller_id": "must be a string", "channels": "must be an array of strings"}
    said = await refused({"name": "A", "kana": "ｱ", "channels": ["cvs"], "code": "00001"}, 400)
    assert said == {"biller_id": "is required", "code": "unknown field"}
    said = await refused(["not", "an", "object"], 400)
    assert said["body"] == "must be a JSON object"

    # nothing of it was stored
    status, doc, _ = await gateway.request("GET", "/v1/billers", op)
    assert (status, doc) == (200, {"data": [], "next_cursor": None})


@pytest_twisted.ensureDeferred
async def test_a_taken_id_or_agency_code_is_a_conflict(gateway: Running) -> None:
    op = operator(gateway)
    body = application("a", cvs_agency="kessai", cvs_code="11111")
    status, made, _ = await gateway.request("POST", "/v1/billers", op, body)
    assert status == 201, made

    status, doc, _ = await gateway.request("POST", "/v1/billers", op, application("a"))
    assert status == 409
    assert doc["errors"] == [{"field": "biller_id", "message": "biller a already exists"}]
    body = application("b", cvs_agency="kessai", cvs_code="11111")
    status, doc, _ = await gateway.request("POST", "/v1/billers", op, body)
    assert status == 409
    assert doc["errors"] == [
        {"field": "cvs_code", "message": "agency kessai's code 11111 is biller a's"}
    ]
    status, doc, _ = await gateway.request("GET", "/v1/billers/b", op)
    assert status == 404
    assert doc["detail"] == "biller b not found"
    status, doc, _ = await gateway.request("GET", "/v1/billers", op)
    assert [b["biller_id"] for b in doc["data"]] == ["a"]


@pytest_twisted.ensureDeferred
async def test_an_idempotency_key_replays_the_first_answer(gateway: Running) -> None:
    op = operator(gateway)
    once = {"Idempotency-Key": "onboard-gas-1"}
    body = application("gas")
    status, first, _ = await gateway.request("POST", "/v1/billers", op, body, once)
    assert status == 201, first
    status, again, headers = await gateway.request("POST", "/v1/billers", op, body, once)
    assert (status, again) == (201, first)
    assert headers.getRawHeaders("idempotent-replayed") == ["true"]

    # the same key for another biller is 409; without a key, the retry is told the id is taken
    other = application("oil")
    status, doc, _ = await gateway.request("POST", "/v1/billers", op, other, once)
    assert status == 409
    assert doc["errors"][0]["field"] == "Idempotency-Key"
    status, doc, _ = await gateway.request("POST", "/v1/billers", op, body)
    assert status == 409
    assert doc["errors"] == [{"field": "biller_id", "message": "biller gas already exists"}]


@pytest_twisted.ensureDeferred
async def test_billers_are_the_operators_only(gateway: Running) -> None:
    op = operator(gateway)
    status, _, _ = await gateway.request("POST", "/v1/billers", op, application("gas"))
    assert status == 201
    key = admin(gateway.config_path, "key", "create", "--biller", "gas")["key"]
    gas = Biller("gas", "", key)
    for method, path, body in (
        ("POST", "/v1/billers", application("oil")),
        ("GET", "/v1/billers", None),
        ("GET", "/v1/billers/gas", None),  # not even its own
    ):
        status, doc, _ = await gateway.request(method, path, gas, body)
        assert status == 403, (method, path, doc)
        assert doc["detail"] == "this is the operator's: use an admin API key"
    status, _, _ = await gateway.request("GET", "/v1/billers")
    assert status == 401
    status, doc, _ = await gateway.request("GET", "/v1/billers", op)
    assert [b["biller_id"] for b in doc["data"]] == ["gas"]  # oil was not created


@pytest_twisted.ensureDeferred
async def test_bad_paths_and_queries(gateway: Running) -> None:
    op = operator(gateway)
    status, doc, _ = await gateway.request("GET", "/v1/billers/nobody", op)
    assert (status, doc["detail"]) == (404, "biller nobody not found")
    status, doc, _ = await gateway.request("GET", "/v1/billers/Not%20An%20Id", op)
    assert status == 404
    for query, field in (("limit=0", "limit"), ("limit=x", "limit"), ("cursor=abc", "cursor")):
        status, doc, _ = await gateway.request("GET", f"/v1/billers?{query}", op)
        assert status == 400, query
        assert [e["field"] for e in doc["errors"]] == [field]
    status, doc, _ = await gateway.request(
        "POST", "/v1/billers", op, raw=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert status == 415
