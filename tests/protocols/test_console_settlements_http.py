"""The console's settlements and statement downloads over HTTP, through the real service (in
this process): a biller's user reads its own settlements and downloads the statement PDF (read
back with pdftotext), its CSV in UTF-8 and Shift_JIS and the payments CSV; another biller's user
gets none of them by URL; finance sees every biller's or chooses one; support has no such
screen; each download is in the audit log. Payments are back-dated into last month, as in
tests/money/test_settlement_api.py, so that last month is a closed period."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest_twisted

from tests.conftest import Running, admin
from tests.money.test_settlement_api import PLAN, admin_key, at, new_bill, pay
from tests.protocols.test_console_bulk_http import raw_get
from tests.protocols.test_console_http import audit, logged_in
from tests.render.test_receipts import text_of, write


@pytest_twisted.ensureDeferred
async def test_statements_from_the_console(gateway: Running, tmp_path: Path) -> None:
    school = gateway.onboard("school")
    gateway.onboard("other")
    operator = admin_key(gateway)
    month = at(1).date().isoformat()
    status, _, _ = await gateway.request(
        "PUT", f"/v1/billers/school/fee-plans/{month}", operator, PLAN
    )
    assert status == 201
    small = await new_bill(gateway, school, "S-1", 5_400)
    large = await new_bill(gateway, school, "S-2", 80_000)
    pay(gateway, small["cvs"]["barcode"], at(5), at(8))
    pay(gateway, large["cvs"]["barcode"], at(6, 9), at(9))
    (made,) = admin(gateway.config_path, "settle")["created"]
    settlement_id, payout = made["settlement_id"], made["payout"]
    assert payout == 85_400 - 120 - 500 - 62 - 200

    clerk = await logged_in(gateway, "clerk", "biller_staff", "school")
    status, page, _ = await clerk.get("/console/settlements")
    assert status == 200 and f'id="settlement-{settlement_id}"' in page
    assert f"¥{payout:,}" in page and 'name="biller"' not in page
    base = f"/console/settlements/{settlement_id}"

    status, pdf, headers = await raw_get(clerk, base + "/statement.pdf")
    assert status == 200 and headers.getRawHeaders("content-type") == ["application/pdf"]
    assert headers.getRawHeaders("content-disposition") == [
        f'attachment; filename="{settlement_id}.pdf"'
    ]
    text = text_of(write(tmp_path, pdf))
    assert "精算明細書" in text and "school 株式会社" in text
    assert re.search(rf"支払金額\s+¥{payout:,}", text)

    _, data, headers = await raw_get(clerk, base + "/statement.csv?encoding=shift_jis")
    assert headers.getRawHeaders("content-type") == ["text/csv; charset=shift_jis"]
    assert "合計" in data.decode("cp932")
    _, data, _ = await raw_get(clerk, base + "/statement.csv")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["精算番号", settlement_id]
    assert rows[-1][1] == "合計" and int(rows[-1][-1]) == payout
    _, data, _ = await raw_get(clerk, base + "/payments.csv")
    paid = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert sorted(r["bill_no"] for r in paid) == ["S-1", "S-2"]

    # Another biller's clerk: not by URL, whatever biller it names.
    other = await logged_in(gateway, "other-clerk", "biller_staff", "other")
    _, page, _ = await other.get("/console/settlements")
    assert settlement_id not in page and 'id="empty"' in page
    for path in (base + "/statement.pdf", base + "/statement.pdf?biller=school"):
        status, data, _ = await raw_get(other, path)
        assert status == 404 and not data.startswith(b"%PDF"), path

    # Finance sees every biller's settlements, or chooses one; support has no such screen.
    books = await logged_in(gateway, "books", "finance", None)
    status, page, _ = await books.get("/console/settlements")
    assert status == 200 and 'name="biller"' in page and "すべての収納企業" in page
    row = page[page.index(f'id="settlement-{settlement_id}"') :]
    row = row[: row.index("</tr>")]
    assert "school 株式会社" in row and f"¥{payout:,}" in row
    assert f"{base}/statement.pdf?biller=school" in row
    assert page.count('<tr id="settlement-') == 1  # other has none
    _, page, _ = await books.get("/console/settlements?biller=school")
    assert f'id="settlement-{settlement_id}"' in page
    assert f"{base}/statement.pdf?biller=school" in page
    status, pdf, _ = await raw_get(books, base + "/statement.pdf?biller=school")
    assert status == 200 and pdf.startswith(b"%PDF-")
    assert (await raw_get(books, base + "/statement.pdf?biller=other"))[0] == 404
    assert (await books.get("/console/settlements?biller=nobody"))[0] == 404
    desk = await logged_in(gateway, "desk", "support", None)
    assert (await desk.get("/console/settlements"))[0] == 404
    assert (await raw_get(desk, base + "/statement.pdf?biller=school"))[0] == 404

    lines = audit(gateway, "--action", "settlement.download")
    assert [(x["actor"], x["after"]["kind"]) for x in lines] == [
        ("user:books", "pdf"),
        ("user:clerk", "payments"),
        ("user:clerk", "csv"),
        ("user:clerk", "csv"),
        ("user:clerk", "pdf"),
    ]
    assert {x["target"] for x in lines} == {f"settlement:{settlement_id}"}
    assert {x["biller_id"] for x in lines} == {"school"}
