"""Printed slips through the real service (make_service) and gateway-admin: a bulk
registration's slips and a filter's, read back with zbarimg (each barcode is its bill's) and
pdftotext (names, amounts, Pay-easy numbers); only payable bills are printed; a set of more than
``limit`` is printed a file at a time, each naming the next; who may print what."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest_twisted
import treq

from gateway import calendar
from gateway.app.admin.commands import main as admin_main
from gateway.model import JST
from gateway.networks.zengin import prepare_requests
from gateway.store import create_db_engine
from tests.billing.test_chain_rules_api import pay
from tests.billing.test_mandates_api import ACCOUNT
from tests.conftest import Biller, Running, admin, due, jst_today
from tests.render.test_receipts import page_count, squash, text_of, write
from tests.render.test_slips import scan

# bill_no, amount, due in days, channels, customer_no, name
ROWS = [
    ("SLIP-0", 5_400, 10, "cvs;payeasy", "K100", "山田 太郎"),
    ("SLIP-1", 6_000, 10, "cvs;payeasy", "K101", "佐藤 花子"),  # cancelled below
    ("SLIP-2", 7_000, 20, "cvs;payeasy", "K102", "鈴木 一郎"),  # paid below
    ("SLIP-3", 8_100, 20, "cvs;payeasy", "K103", "高橋 次郎"),
    ("SLIP-4", 9_200, 40, "cvs", "K104", "田中 三郎"),
    ("SLIP-5", 10_300, 40, "payeasy", "K105", "伊藤 四郎"),  # Pay-easy only: no barcode
    ("SLIP-6", 11_400, 40, "transfer", "K106", "渡辺 五郎"),  # debited: nothing to print
    ("SLIP-7", 12_500, 50, "cvs;payeasy", "K100", "山田 太郎"),
]
PRINTED = ["SLIP-0", "SLIP-3", "SLIP-4", "SLIP-5", "SLIP-7"]


async def pdf_of(gateway: Running, who: Biller, path: str) -> tuple[int, bytes, Any]:
    resp = await treq.get(gateway.api + path, headers={"Authorization": f"Bearer {who.key}"})
    return resp.code, await resp.content(), resp.headers


def link_next(headers: Any) -> str | None:
    """The path and query of the ``Link: <…>; rel="next"`` header, if any."""
    values = headers.getRawHeaders("link") or []
    for value in values:
        found = re.fullmatch(r'<([^>]+)>; rel="next"', value)
        if found:
            return found.group(1)
    return None


def printed(text: str) -> list[str]:
    """The bill numbers printed on slips, in order."""
    return re.findall(r"請求番号\s+([A-Z]+-\d+)", text)


async def register(gateway: Running, who: Biller) -> tuple[str, dict[str, dict[str, Any]]]:
    lines = ["bill_no,amount,due_date,channels,customer_no,name"]
    lines += [f"{b},{a},{due(d)},{c},{k},{n}" for b, a, d, c, k, n in ROWS]
    status, summary, _ = await gateway.request(
        "POST",
        "/v1/bills/batch",
        who,
        raw=("\r\n".join(lines) + "\r\n").encode(),
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    assert status == 201, summary
    bills = {}
    for bill_no, *_ in ROWS:
        status, bill, _ = await gateway.request("GET", f"/v1/bills/{bill_no}", who)
        bills[bill_no] = bill
    status, _, _ = await gateway.request("POST", "/v1/bills/SLIP-1/cancel", who)
    assert status == 200
    pay(gateway, bills["SLIP-2"]["cvs"]["barcode"], "000010", datetime.now(JST), confirm=False)
    return summary["batch_id"], bills


@pytest_twisted.ensureDeferred
async def test_a_batchs_slips_scan_back_to_its_payable_bills(
    gateway: Running, tmp_path: Path
) -> None:
    power = gateway.onboard("power")
    batch_id, bills = await register(gateway, power)

    status, pdf, headers = await pdf_of(gateway, power, f"/v1/bills/batch/{batch_id}/slips.pdf")
    assert status == 200
    assert headers.getRawHeaders("content-type") == ["application/pdf"]
    assert headers.getRawHeaders("content-disposition") == [
        f'inline; filename="slips-{batch_id}.pdf"'
    ]
    assert link_next(headers) is None
    path = write(tmp_path, pdf, "batch.pdf")
    assert page_count(path) == 2  # five slips, three to a page
    scanned = [data for page in scan(path) for data, _ in page]
    with_cvs = [b for b in PRINTED if "cvs" in bills[b]]
    assert sorted(scanned) == sorted(bills[b]["cvs"]["barcode"] for b in with_cvs)
    text = squash(text_of(path))
    assert printed(text) == PRINTED  # the file's row order; cancelled, paid, debited: not
    for bill_no in PRINTED:
        bill = bills[bill_no]
        assert f"¥{bill['amount']:,}" in text and bill["customer"]["name"] + " 様" in text
        if "payeasy" in bill:
            numbers = bill["payeasy"]
            assert numbers["customer_number"] in text
            assert numbers["confirmation_number"] in text
    assert "power 株式会社" in text and "SLIP-6" not in text

    # The operator prints the same file.
    out = tmp_path / "cli.pdf"
    made = admin(
        gateway.config_path, "slips", "--biller", "power", "--batch", batch_id, "--output", str(out)
    )
    assert made == {"file": str(out), "slips": 5, "bytes": len(pdf), "next_cursor": None}
    assert out.read_bytes() == pdf


@pytest_twisted.ensureDeferred
async def test_more_slips_than_a_file_holds_come_a_file_at_a_time(
    gateway: Running, tmp_path: Path
) -> None:
    power = gateway.onboard("power")
    batch_id, _ = await register(gateway, power)
    seen: list[str] = []
    path: str | None = f"/v1/bills/batch/{batch_id}/slips.pdf?limit=2"
    files = 0
    while path is not None:
        status, pdf, headers = await pdf_of(gateway, power, path)
        assert status == 200
        files += 1
        on_file = printed(squash(text_of(write(tmp_path, pdf, f"part-{files}.pdf"))))
        assert 1 <= len(on_file) <= 2
        seen += on_file
        path = link_next(headers)
        if path is not None:
            query = parse_qs(urlsplit(path).query)
            assert query["limit"] == ["2"] and len(query["cursor"]) == 1
    assert files == 3 and seen == PRINTED

    # The operator follows next_cursor the same way.
    out = tmp_path / "first.pdf"
    made = admin(
        gateway.config_path,
        "slips",
        "--biller",
        "power",
        "--batch",
        batch_id,
        "--limit",
        "3",
        "--output",
        str(out),
    )
    assert made["slips"] == 3 and made["next_cursor"] is not None
    rest = admin(
        gateway.config_path,
        "slips",
        "--biller",
        "power",
        "--batch",
        batch_id,
        "--cursor",
        made["next_cursor"],
        "--output",
        str(tmp_path / "rest.pdf"),
    )
    assert rest["slips"] == 2 and rest["next_cursor"] is None


@pytest_twisted.ensureDeferred
async def test_a_filter_prints_the_bills_it_names(gateway: Running, tmp_path: Path) -> None:
    power = gateway.onboard("power")
    await register(gateway, power)
    span = f"due_from={due(15)}&due_to={due(45)}"
    status, pdf, headers = await pdf_of(gateway, power, f"/v1/bills/slips.pdf?status=open&{span}")
    assert status == 200
    assert headers.getRawHeaders("content-disposition") == ['inline; filename="slips-bills.pdf"']
    assert printed(squash(text_of(write(tmp_path, pdf, "span.pdf")))) == [
        "SLIP-3",
        "SLIP-4",
        "SLIP-5",
    ]
    status, pdf, _ = await pdf_of(gateway, power, "/v1/bills/slips.pdf?customer_no=K100")
    assert status == 200
    assert printed(squash(text_of(write(tmp_path, pdf, "k100.pdf")))) == ["SLIP-0", "SLIP-7"]
    status, pdf, _ = await pdf_of(gateway, power, "/v1/bills/slips.pdf")
    assert printed(squash(text_of(write(tmp_path, pdf, "all.pdf")))) == PRINTED

    out = tmp_path / "cli.pdf"
    made = admin(gateway.config_path, "slips", "--biller", "power", "--due-from", due(45),
                 "--output", str(out))  # fmt: skip
    assert made["slips"] == 1 and printed(squash(text_of(out))) == ["SLIP-7"]


@pytest_twisted.ensureDeferred
async def test_who_may_print_what(gateway: Running, tmp_path: Path) -> None:
    power = gateway.onboard("power")
    other = gateway.onboard("other")
    batch_id, _ = await register(gateway, power)
    operator = Biller("op", "", admin(gateway.config_path, "key", "create", "--admin")["key"])

    async def problem(who: Biller, path: str) -> tuple[int, list[str]]:
        status, body, _ = await gateway.request("GET", path, who)
        assert isinstance(body, dict), body
        return status, [e["field"] for e in body.get("errors", [])]

    batch = f"/v1/bills/batch/{batch_id}/slips.pdf"
    assert (await problem(operator, batch))[0] == 403  # an admin key has no bills
    assert (await problem(operator, "/v1/bills/slips.pdf"))[0] == 403
    assert (await problem(other, batch))[0] == 404  # another biller's batch: unknown
    assert (await problem(power, "/v1/bills/batch/bat_nope/slips.pdf"))[0] == 404
    assert await problem(power, "/v1/bills/slips.pdf?due_from=tomorrow") == (400, ["due_from"])
    assert await problem(power, "/v1/bills/slips.pdf?status=paid") == (400, ["status"])
    assert await problem(power, "/v1/bills/slips.pdf?limit=101") == (400, ["limit"])
    assert await problem(power, f"{batch}?cursor=x") == (400, ["cursor"])
    backwards = f"/v1/bills/slips.pdf?due_from={due(20)}&due_to={due(10)}"
    assert await problem(power, backwards) == (422, ["due_to"])
    status, _ = await problem(power, f"/v1/bills/slips.pdf?due_from={due(300)}")
    assert status == 404  # nothing payable there
    assert (await problem(other, "/v1/bills/slips.pdf"))[0] == 404  # it has no bills

    # The command line names the flag, and prints nothing for another biller's batch.
    out = str(tmp_path / "x.pdf")
    args = ["-c", str(gateway.config_path), "slips", "--biller"]
    assert admin_main([*args, "other", "--batch", batch_id, "--output", out]) == 1
    assert admin_main([*args, "power", "--due-from", "soon", "--output", out]) == 1
    assert admin_main([*args, "power", "--batch", batch_id, "--due-to", due(5),
                       "--output", out]) == 1  # fmt: skip
    assert not Path(out).exists()


@pytest_twisted.ensureDeferred
async def test_a_bill_being_debited_gets_no_slip(gateway: Running, tmp_path: Path) -> None:
    """Never collect and debit a bill at once: once a request file asks the bank to debit a
    bill, its slip is not printed (until the result comes back and the bill is still open)."""
    power = gateway.onboard("power")
    admin(gateway.config_path, "biller", "zengin", "--id", "power",
          "--consignor-code", "1234567890", "--account", "0001-001-1-1234567")  # fmt: skip
    day = calendar.add_business_days(jst_today(), 3)
    status, _, _ = await gateway.request("PUT", "/v1/mandates/K200", power, ACCOUNT)
    assert status == 201
    for bill_no, channels in (("DEBIT-1", ["cvs", "transfer"]), ("STORE-1", ["cvs"])):
        body = {
            "bill_no": bill_no,
            "amount": 4_000,
            "due_date": day.isoformat(),
            "channels": channels,
            "customer": {"customer_no": "K200", "name": "山田 太郎"},
        }
        assert (await gateway.request("POST", "/v1/bills", power, body))[0] == 201
    query = f"/v1/bills/slips.pdf?due_from={day}&due_to={day}"
    status, pdf, _ = await pdf_of(gateway, power, query)
    assert status == 200, pdf
    assert printed(squash(text_of(write(tmp_path, pdf, "before.pdf")))) == ["DEBIT-1", "STORE-1"]

    engine = create_db_engine(gateway.config.database.url, 1)
    with engine.begin() as conn:  # what `gateway-admin zengin request` records first
        (request,) = prepare_requests(conn, day, datetime.now(JST))
    engine.dispose()
    assert request.records == 1
    status, pdf, _ = await pdf_of(gateway, power, query)
    assert status == 200
    assert printed(squash(text_of(write(tmp_path, pdf, "after.pdf")))) == ["STORE-1"]
