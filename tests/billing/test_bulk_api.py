"""POST /v1/bills/batch and its result file, against the real service (SQLite, or PostgreSQL)."""

from __future__ import annotations

import codecs
import csv
import io
from datetime import datetime
from typing import Any

import pytest
import pytest_twisted
import treq
from sqlalchemy import func, select

from gateway.mappers.bills_csv import RESULT_COLUMNS
from gateway.mappers.cvs import barcode
from gateway.mappers.mpn.numbers import permute_digits, valid_customer_number
from gateway.store import create_db_engine
from gateway.store.schema import (
    bill_batch_items,
    bill_batches,
    bill_slips,
    bills,
    events,
    idempotency_keys,
)
from tests.conftest import Biller, Running, due

HEADER = "bill_no,amount,due_date,channels,customer_no,name,kana,email,phone,description"


def no_page_url(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "page_url"}


def line(bill_no: str, **over: Any) -> str:
    cells = {
        "bill_no": bill_no,
        "amount": "5400",
        "due_date": due(30),
        "channels": "cvs;payeasy;transfer",
        "customer_no": "C0001",
        "name": "山田 太郎",
        "kana": "ﾔﾏﾀﾞ ﾀﾛｳ",
        "email": "taro@example.jp",
        "phone": "09012345678",
        "description": "12月分 利用料",
    }
    cells.update(over)
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells[c] for c in HEADER.split(","))
    return out.getvalue()


def csv_text(*lines: str, header: str = HEADER) -> str:
    return "\r\n".join([header, *lines]) + "\r\n"


def count(url: str, table: Any) -> int:
    engine = create_db_engine(url, 1)
    with engine.connect() as conn:
        n = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    engine.dispose()
    return n


def fields(problem: dict[str, Any]) -> list[str]:
    return [e["field"] for e in problem.get("errors", [])]


async def post_csv(
    gateway: Running,
    who: Biller,
    data: bytes,
    content_type: str = "text/csv",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, Any]:
    h = {"Content-Type": content_type, **(headers or {})}
    return await gateway.request("POST", "/v1/bills/batch", who, raw=data, headers=h)


async def fetch(gateway: Running, who: Biller, path: str) -> tuple[int, bytes, Any]:
    resp = await treq.get(gateway.api + path, headers={"Authorization": f"Bearer {who.key}"})
    return resp.code, await resp.content(), resp.headers


def parse_result(data: bytes, encoding: str) -> list[dict[str, str]]:
    if encoding == "utf-8":
        assert data.startswith(codecs.BOM_UTF8)
        text = data[3:].decode("utf-8")
    else:
        assert not data.startswith(codecs.BOM_UTF8)
        text = data.decode("cp932")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == RESULT_COLUMNS
    return list(reader)


async def assert_result_matches_bills(
    gateway: Running, who: Biller, result_url: str, expected_rows: dict[str, int]
) -> None:
    """Both charsets of the result file parse, and every row is the bill GET shows."""
    path = result_url.removeprefix("http://127.0.0.1:8080")
    for charset in ("utf-8", "shift_jis"):
        status, data, headers = await fetch(
            gateway, who, path + ("" if charset == "utf-8" else "?charset=shift_jis")
        )
        assert status == 200, data
        ctype = headers.getRawHeaders("content-type")[0].lower()
        assert ctype == f"text/csv; charset={charset}"
        rows = parse_result(data, charset)
        assert {r["bill_no"]: int(r["row"]) for r in rows} == expected_rows
        assert [int(r["row"]) for r in rows] == sorted(expected_rows.values())
        for r in rows:
            status, bill, _ = await gateway.request("GET", f"/v1/bills/{r['bill_no']}", who)
            assert status == 200
            assert r["status"] == bill["status"]
            amount = int(r["amount"]) if r["amount"] else None  # None: the payer chooses
            assert amount == bill["amount"] and r["due_date"] == bill["due_date"]
            assert r["barcode"] == bill.get("cvs", {}).get("barcode", "")
            assert r["barcode_text"] == bill.get("cvs", {}).get("human_readable", "")
            pe = bill.get("payeasy", {})
            assert r["payeasy_institution_code"] == pe.get("institution_code", "")
            assert r["payeasy_customer_number"] == pe.get("customer_number", "")
            assert r["payeasy_confirmation_number"] == pe.get("confirmation_number", "")
            assert r["page_url"] == bill["page_url"]


@pytest.mark.parametrize(
    ("codec", "content_type"),
    [
        ("utf-8", "text/csv"),
        ("utf-8-sig", "text/csv"),  # with a BOM, as Excel saves "CSV UTF-8"
        ("cp932", "text/csv"),  # Shift_JIS, detected
        ("cp932", "text/csv; charset=Shift_JIS"),
        ("utf-8", 'text/csv; charset="utf-8"'),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_file_registers_every_bill_with_identifiers_and_events(
    gateway: Running, codec: str, content_type: str
) -> None:
    acme = gateway.onboard("acme")
    text = csv_text(
        line("INV-1"),
        line("INV-2", amount="55000", channels="cvs", name="髙橋 﨑子"),  # CP932 extensions
        line("INV-3", channels="payeasy transfer", customer_no="C0003", email="", phone=""),
    )
    status, summary, _ = await post_csv(gateway, acme, text.encode(codec), content_type)
    assert status == 201, summary
    assert summary["rows"] == 3 and summary["created"] == 3 and summary["existing"] == 0
    assert summary["result_url"] == (
        f"http://127.0.0.1:8080/v1/bills/batch/{summary['batch_id']}/result.csv"
    )

    docs = {}
    for bill_no in ("INV-1", "INV-2", "INV-3"):
        status, docs[bill_no], _ = await gateway.request("GET", f"/v1/bills/{bill_no}", acme)
        assert status == 200
    one, two, three = docs["INV-1"], docs["INV-2"], docs["INV-3"]
    assert one["customer"] == {
        "customer_no": "C0001",
        "name": "山田 太郎",
        "kana": "ﾔﾏﾀﾞ ﾀﾛｳ",
        "email": "taro@example.jp",
        "phone": "09012345678",
    }
    assert one["description"] == "12月分 利用料" and two["customer"]["name"] == "髙橋 﨑子"
    for doc in (one, two):
        code = barcode.parse(doc["cvs"]["barcode"])
        assert code.company_code == "987654" and code.free_field.startswith(acme.code)
        assert code.amount == doc["amount"] and code.due is not None
        assert code.due.isoformat() == due(30) and code.reissue == 0
        assert doc["cvs"]["human_readable"] == code.human_readable()
    assert two["cvs"]["stamp"] is True and "payeasy" not in two  # 55,000 yen, not taxable
    assert "cvs" not in three and three["channels"] == ["payeasy", "transfer"]
    for doc in (one, three):
        assert doc["payeasy"]["institution_code"] == "58191"
        assert valid_customer_number(doc["payeasy"]["customer_number"])
        assert doc["payeasy"]["customer_number"].startswith(acme.code)

    status, feed, _ = await gateway.request("GET", "/v1/events", acme)
    created = [e for e in feed["data"] if e["type"] == "bill.created"]
    # Events carry the bill without its page URL (events are stored; the database keeps no token)
    assert [e["data"]["bill"] for e in created] == [no_page_url(d) for d in (one, two, three)]
    assert [e["seq"] for e in feed["data"]] == [1, 2, 3]
    url = gateway.config.database.url
    assert count(url, bill_slips) == 2 and count(url, bill_batch_items) == 3
    await assert_result_matches_bills(
        gateway, acme, summary["result_url"], {"INV-1": 2, "INV-2": 3, "INV-3": 4}
    )


@pytest_twisted.ensureDeferred
async def test_columns_in_any_order_with_tax_columns_and_spreadsheet_habits(
    gateway: Running,
) -> None:
    acme = gateway.onboard("acme")
    text = (
        "Amount,Bill_No,Channels,Due_Date,Taxable,Tax_Amount,customer_no\r\n"
        f"55000,T-1,CVS,{due(30).replace('-', '/')},TRUE,5000,\r\n"  # 2026/12/15, Excel's date
        f" 49999 ,T-2,cvs; payeasy,{due(30)},,,\r\n"
        ",,,,,,\r\n"  # an empty row, as spreadsheets leave them: skipped
        f"54999,T-3,cvs,{due(30)},1,5000,C9\r\n"
    )
    status, summary, _ = await post_csv(gateway, acme, text.encode())
    assert status == 201, summary
    assert summary["rows"] == 3
    _, t1, _ = await gateway.request("GET", "/v1/bills/T-1", acme)
    _, t3, _ = await gateway.request("GET", "/v1/bills/T-3", acme)
    assert t1["tax"] == {"taxable": True, "tax_amount": 5000} and t1["cvs"]["stamp"] is True
    assert t1["due_date"] == due(30)
    assert t3["cvs"]["stamp"] is False and t3["customer"] == {"customer_no": "C9"}
    await assert_result_matches_bills(
        gateway, acme, summary["result_url"], {"T-1": 2, "T-2": 3, "T-3": 5}
    )


@pytest_twisted.ensureDeferred
async def test_bad_rows_are_all_named_and_nothing_is_stored(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    text = csv_text(
        line("OK-1"),
        line("BAD-1", amount="0", email="not-an-address"),  # row 3
        line("OK-2"),
        line("BAD-2", due_date="2020-01-01", channels="cvs;bitcoin"),  # row 5
        line("BAD-3", amount="5,400", customer_no="", channels="transfer"),  # row 6
        line("BAD 4", amount="300001", channels="cvs"),  # row 7
        "TOO,FEW",  # row 8
    )
    status, problem, headers = await post_csv(
        gateway, acme, text.encode(), headers={"Idempotency-Key": "file-1"}
    )
    assert status == 422, problem
    assert headers.getRawHeaders("content-type")[0].startswith("application/problem+json")
    assert fields(problem) == [
        "row 3: amount",
        "row 3: email",
        "row 5: due_date",
        "row 5: channels",
        "row 6: amount",
        "row 6: customer_no",
        "row 7: bill_no",
        "row 7: amount",
        "row 8: row",
    ]
    messages = {e["field"]: e["message"] for e in problem["errors"]}
    assert "bitcoin" in messages["row 5: channels"]
    assert "300000" in messages["row 7: amount"]
    assert messages["row 8: row"] == "the row has 2 cells; the header has 10"
    assert problem["detail"] == "9 error(s) in 5 row(s); nothing of the file was stored"
    url = gateway.config.database.url
    for table in (bills, bill_slips, events, bill_batches, bill_batch_items, idempotency_keys):
        assert count(url, table) == 0, table.name


PAYER_HEADER = "bill_no,amount,min_amount,max_amount,due_date,channels,customer_no"


@pytest_twisted.ensureDeferred
async def test_a_file_registers_bills_whose_amount_the_payer_chooses(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    text = csv_text(
        f"G-1,,1000,50000,{due(30)},payeasy,C1",  # the payer chooses: an empty amount, bounds
        f"G-2,5400,,,{due(30)},cvs;payeasy,C2",  # a set amount, the bounds left empty
        header=PAYER_HEADER,
    )
    status, summary, _ = await post_csv(gateway, acme, text.encode())
    assert status == 201, summary
    _, chosen, _ = await gateway.request("GET", "/v1/bills/G-1", acme)
    assert (chosen["amount"], chosen["min_amount"], chosen["max_amount"]) == (None, 1000, 50000)
    assert chosen["channels"] == ["payeasy"] and len(chosen["payeasy"]["customer_number"]) == 16
    _, fixed, _ = await gateway.request("GET", "/v1/bills/G-2", acme)
    assert fixed["amount"] == 5400 and "min_amount" not in fixed
    # The result file leaves the amount of G-1 empty, as GET shows it null.
    await assert_result_matches_bills(gateway, acme, summary["result_url"], {"G-1": 2, "G-2": 3})
    # The bill of the file is the bill POST /v1/bills makes of the same terms.
    body = {
        "bill_no": "J-1",
        "amount": None,
        "min_amount": 1000,
        "max_amount": 50000,
        "due_date": due(30),
        "channels": ["payeasy"],
        "customer": {"customer_no": "C1"},
    }
    status, single, _ = await gateway.request("POST", "/v1/bills", acme, body)
    assert status == 201
    differ = ("bill_no", "page_url", "created_at", "updated_at", "payeasy")
    assert {k: v for k, v in chosen.items() if k not in differ} == {
        k: v for k, v in single.items() if k not in differ
    }


@pytest_twisted.ensureDeferred
async def test_a_payer_range_in_a_file_is_checked_as_the_api_checks_it(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    cases = [
        # (row's amount, min_amount, max_amount, channels), its body's fields
        (("", "1000", "", "payeasy"), {"amount": None, "min_amount": 1000}),
        (("", "5000", "1000", "payeasy"), {"amount": None, "min_amount": 5000, "max_amount": 1000}),
        (("5400", "1000", "", "payeasy"), {"amount": 5400, "min_amount": 1000}),
        (
            ("", "1000", "50000", "cvs;payeasy"),
            {"amount": None, "min_amount": 1000, "max_amount": 50000},
        ),
        (("", "0", "1,000", "payeasy"), {"amount": None, "min_amount": 0, "max_amount": "1,000"}),
        (("", "", "", "payeasy"), {}),
    ]
    rows = []
    for n, ((amount, low, high, channels), _) in enumerate(cases, 2):
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(
            [f"R-{n}", amount, low, high, due(30), channels, "C1"]  # "1,000" quoted
        )
        rows.append(out.getvalue())
    status, problem, _ = await post_csv(
        gateway, acme, csv_text(*rows, header=PAYER_HEADER).encode()
    )
    assert status == 422, problem
    got = [(e["field"], e["message"]) for e in problem["errors"]]
    # What POST /v1/bills says of each row's terms, row by row: the same words, the same field.
    expected = []
    for n, (cells, fields_of) in enumerate(cases, 2):
        body = {"bill_no": f"R-{n}", "due_date": due(30), "customer": {"customer_no": "C1"}}
        body.update(fields_of)
        body["channels"] = cells[3].split(";")
        status, refused, _ = await gateway.request("POST", "/v1/bills", acme, body)
        assert status in (400, 422), refused  # 400 for a malformed field, 422 for the rules
        expected += [
            (f"row {n}: {e['field'].split('[')[0]}", e["message"]) for e in refused["errors"]
        ]
    assert sorted(got) == sorted(expected)
    assert got[:4] == [
        ("row 2: max_amount", "is required when amount is null (the payer chooses the amount)"),
        ("row 3: max_amount", "must be at least min_amount (5000)"),
        ("row 4: min_amount", "is only for an amount the payer chooses (with amount null)"),
        (
            "row 5: channels",
            "cvs cannot carry a bill whose amount the payer chooses (amount null): a barcode"
            " carries one set amount; use payeasy",
        ),
    ]
    assert [f for f, _ in got[4:]] == ["row 6: min_amount", "row 6: max_amount", "row 7: amount"]
    assert count(gateway.config.database.url, bills) == 0


@pytest_twisted.ensureDeferred
async def test_a_bill_no_twice_in_the_file_is_refused(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    text = csv_text(line("A-1"), line("A-2"), line("A-1"), line("A-2", amount="x"), line("A-1"))
    status, problem, _ = await post_csv(gateway, acme, text.encode())
    assert status == 422
    assert [(e["field"], e["message"]) for e in problem["errors"]] == [
        ("row 4: bill_no", "A-1 is also on row 2"),
        ("row 5: bill_no", "A-2 is also on row 3"),
        ("row 6: bill_no", "A-1 is also on row 2"),
    ]
    assert count(gateway.config.database.url, bills) == 0


@pytest_twisted.ensureDeferred
async def test_existing_bill_nos_identical_are_counted_different_are_refused(
    gateway: Running,
) -> None:
    acme = gateway.onboard("acme")
    status, first, _ = await post_csv(gateway, acme, csv_text(line("E-1"), line("E-2")).encode())
    assert status == 201
    _, before, _ = await gateway.request("GET", "/v1/bills/E-1", acme)

    status, problem, _ = await post_csv(
        gateway, acme, csv_text(line("E-1"), line("E-3"), line("E-2", amount="5401")).encode()
    )
    assert status == 422
    assert fields(problem) == ["row 4: bill_no"]
    assert "other fields" in problem["errors"][0]["message"]
    assert count(gateway.config.database.url, bills) == 2

    status, again, _ = await post_csv(
        gateway, acme, csv_text(line("E-3"), line("E-1"), line("E-2")).encode()
    )
    assert status == 201, again
    assert (again["rows"], again["created"], again["existing"]) == (3, 1, 2)
    assert again["batch_id"] != first["batch_id"]
    _, after, _ = await gateway.request("GET", "/v1/bills/E-1", acme)
    assert after == before  # untouched
    status, feed, _ = await gateway.request("GET", "/v1/events", acme)
    assert [e["data"]["bill"]["bill_no"] for e in feed["data"]] == ["E-1", "E-2", "E-3"]
    await assert_result_matches_bills(
        gateway, acme, again["result_url"], {"E-3": 2, "E-1": 3, "E-2": 4}
    )
    status, data, _ = await fetch(
        gateway, acme, again["result_url"].removeprefix("http://127.0.0.1:8080")
    )
    assert [r["result"] for r in parse_result(data, "utf-8")] == ["created", "existing", "existing"]


@pytest_twisted.ensureDeferred
async def test_a_channel_the_biller_does_not_have_names_the_row(gateway: Running) -> None:
    shop = gateway.onboard("shop", channels="cvs")
    text = csv_text(line("S-1", channels="cvs"), line("S-2", channels="cvs;payeasy"))
    status, problem, _ = await post_csv(gateway, shop, text.encode())
    assert status == 422 and fields(problem) == ["row 3: channels"]
    assert "does not collect through payeasy" in problem["errors"][0]["message"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", ["row 1: header"]),
        (b"\r\n\r\n", ["row 1: header"]),
        (b"\xef\xbb\xbf", ["row 1: header"]),
        (HEADER.encode() + b"\r\n", ["row 2: row"]),
        (
            b"bill_no,due_date,channels,nickname\r\nX,2030-01-01,cvs,Taro\r\n",
            ["row 1: amount", "row 1: nickname"],
        ),
        (b"INV-1,5400,2030-01-01,cvs\r\n", None),  # no header row at all
        (b"bill_no,amount,due_date,channels\r\nA,1,2030-01-01,cvs\r\nB\x85@", ["row 3: encoding"]),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_file_without_a_usable_header_is_refused_naming_the_column(
    gateway: Running, data: bytes, expected: list[str] | None
) -> None:
    acme = gateway.onboard("acme")
    status, problem, _ = await post_csv(gateway, acme, data)
    assert status == 422, problem
    if expected is not None:
        assert fields(problem) == expected
    else:
        assert {"row 1: bill_no", "row 1: amount", "row 1: due_date", "row 1: channels"} <= set(
            fields(problem)
        )
    assert count(gateway.config.database.url, bill_batches) == 0


@pytest_twisted.ensureDeferred
async def test_more_than_100000_rows_are_refused_with_the_limit(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    row = f",5400,{due(30)},cvs,,,,,,\r\n"
    data = (HEADER + "\r\n" + "".join(f"N{i}{row}" for i in range(100_001))).encode()
    status, problem, _ = await post_csv(gateway, acme, data)
    assert status == 413, problem
    assert problem["errors"] == [
        {
            "field": "body",
            "message": "the file has 100,001 bill rows; at most 100,000 in one file: split it",
        }
    ]
    assert count(gateway.config.database.url, bills) == 0


@pytest.mark.parametrize(
    ("content_type", "status"),
    [("application/json", 415), ("text/plain", 415), ("text/csv; charset=latin1", 415)],
)
@pytest_twisted.ensureDeferred
async def test_other_media_types_and_charsets_are_refused(
    gateway: Running, content_type: str, status: int
) -> None:
    acme = gateway.onboard("acme")
    got, problem, _ = await post_csv(gateway, acme, csv_text(line("X-1")).encode(), content_type)
    assert got == status, problem
    assert count(gateway.config.database.url, bills) == 0


@pytest_twisted.ensureDeferred
async def test_a_declared_charset_is_obeyed(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    data = csv_text(line("J-1")).encode("cp932")
    status, problem, _ = await post_csv(gateway, acme, data, "text/csv; charset=utf-8")
    assert status == 422 and fields(problem) == ["row 2: encoding"]
    assert "utf-8" in problem["errors"][0]["message"]


@pytest_twisted.ensureDeferred
async def test_idempotent_replay_covers_the_file_bytes(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    data = csv_text(line("K-1"), line("K-2")).encode()
    key = {"Idempotency-Key": "upload-2026-12"}
    s1, first, h1 = await post_csv(gateway, acme, data, headers=key)
    s2, second, h2 = await post_csv(gateway, acme, data, headers=key)
    assert (s1, s2) == (201, 201) and first == second
    assert h1.getRawHeaders("idempotent-replayed") is None
    assert h2.getRawHeaders("idempotent-replayed") == ["true"]
    s3, problem, _ = await post_csv(
        gateway, acme, data + line("K-3").encode() + b"\r\n", headers=key
    )
    assert s3 == 409 and fields(problem) == ["Idempotency-Key"]
    url = gateway.config.database.url
    assert count(url, bills) == 2 and count(url, bill_batches) == 1 and count(url, events) == 2


@pytest_twisted.ensureDeferred
async def test_the_result_file_is_the_billers_own(gateway: Running) -> None:
    acme, other = gateway.onboard("acme"), gateway.onboard("other")
    _, summary, _ = await post_csv(gateway, acme, csv_text(line("P-1")).encode())
    path = summary["result_url"].removeprefix("http://127.0.0.1:8080")
    for who, where, expected in [
        (other, path, 404),
        (acme, "/v1/bills/batch/bat_" + "0" * 24 + "/result.csv", 404),
        (acme, "/v1/bills/batch/nonsense/result.csv", 404),
        (acme, path + "?charset=latin1", 400),
        (acme, path, 200),
    ]:
        status, _, _ = await fetch(gateway, who, where)
        assert status == expected, where


@pytest_twisted.ensureDeferred
async def test_a_bill_from_a_file_is_the_bill_post_v1_bills_makes(gateway: Running) -> None:
    """Same terms, two paths: the documents differ only where two bills always differ.

    Those are the bill number, the page, the serial-derived numbers and the times: the
    service runs on the wall clock, so the two bills may be made in different seconds.
    """
    acme = gateway.onboard("acme")
    terms = {
        "amount": 55000,
        "due_date": due(30),
        "channels": ["cvs", "payeasy", "transfer"],
        "customer": {"customer_no": "C7", "name": "山田 太郎", "phone": "0312345678"},
        "tax": {"taxable": True, "tax_amount": 5000},
        "description": "12月分",
    }
    status, single, _ = await gateway.request(
        "POST", "/v1/bills", acme, {"bill_no": "ONE-1", **terms}
    )
    assert status == 201
    text = (
        "bill_no,amount,due_date,channels,customer_no,name,phone,taxable,tax_amount,description\r\n"
        f"FILE-1,55000,{due(30)},cvs;payeasy;transfer,C7,山田 太郎,0312345678,true,5000,12月分\r\n"
    )
    status, _, _ = await post_csv(gateway, acme, text.encode("cp932"))
    assert status == 201
    _, batch, _ = await gateway.request("GET", "/v1/bills/FILE-1", acme)

    def serial_free(doc: dict[str, Any]) -> dict[str, Any]:
        always_differ = ("bill_no", "page_url", "created_at", "updated_at")
        out = {k: v for k, v in doc.items() if k not in always_differ}
        code = barcode.parse(doc["cvs"]["barcode"])
        out["cvs"] = {
            "fields": (code.company_code, code.reissue, code.due, code.stamp, code.amount),
            "biller": code.free_field[:5],
            "stamp": doc["cvs"]["stamp"],
        }
        pe = dict(doc["payeasy"])
        assert valid_customer_number(pe.pop("customer_number"))
        assert len(pe.pop("confirmation_number")) == 6
        out["payeasy"] = pe
        return out

    assert serial_free(batch) == serial_free(single)
    for doc in (single, batch):
        assert doc["updated_at"] == doc["created_at"]
    made = [datetime.fromisoformat(doc["created_at"]) for doc in (single, batch)]
    assert made[0] <= made[1] and all(m.utcoffset() is not None for m in made)
    one, other = barcode.parse(single["cvs"]["barcode"]), barcode.parse(batch["cvs"]["barcode"])
    assert int(other.free_field[5:]) == int(one.free_field[5:]) + 1  # the next serial
    # The お客様番号 carries the same serial, under the mpn.number_key permutation.
    assert gateway.config.mpn is not None
    key = gateway.config.mpn.number_key
    for doc, code in ((batch, other), (single, one)):
        serial = int(code.free_field[-10:])
        assert doc["payeasy"]["customer_number"][5:15] == f"{permute_digits(serial, 10, key):010d}"
    _, feed, _ = await gateway.request("GET", "/v1/events", acme)
    assert [e["data"]["bill"] for e in feed["data"]] == [no_page_url(single), no_page_url(batch)]


@pytest_twisted.ensureDeferred
async def test_the_batch_path_is_its_own_resource(gateway: Running) -> None:
    """/v1/bills/batch is matched before /v1/bills/{bill_no}, as OpenAPI matches paths."""
    acme = gateway.onboard("acme")
    status, problem, headers = await gateway.request("GET", "/v1/bills/batch", acme)
    assert status == 405 and headers.getRawHeaders("allow") == ["POST"], problem
    status, _, _ = await gateway.request(
        "POST",
        "/v1/bills",
        acme,
        {"bill_no": "batch", "amount": 100, "due_date": due(30), "channels": ["cvs"]},
    )
    assert status == 201
    status, page, _ = await gateway.request("GET", "/v1/bills", acme)
    assert [b["bill_no"] for b in page["data"]] == ["batch"]
    status, _, _ = await gateway.request("POST", "/v1/bills/batch/cancel", acme)
    assert status == 200  # its other routes are its own
