"""Printed slips against the real daemon (twistd subprocess): a biller registers a CSV file of
bills, prints their slips (``GET /v1/bills/batch/{batch_id}/slips.pdf``), and every barcode in
the PDF, scanned by zbarimg from the rendered pages, is the barcode the gateway issued for the
bill on that slip (the batch's result file says which); pdftotext finds each bill's amount,
customer and Pay-easy numbers. A bill cancelled in between is left out of the next print;
``gateway-admin slips`` prints the same file as the API."""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.request
from pathlib import Path

import pytest

from gateway.app.process import DaemonProcess, admin_json
from tests.conftest import due
from tests.daemon import admin_cli, write_config
from tests.render.test_receipts import squash, text_of
from tests.render.test_slips import scan

pytestmark = pytest.mark.e2e


def call(
    method: str, url: str, key: str, body: bytes | None = None, ctype: str | None = None
) -> tuple[int, bytes, dict[str, str]]:
    headers = {"Authorization": f"Bearer {key}"}
    if ctype:
        headers["Content-Type"] = ctype
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_a_batchs_printed_slips_scan_back_to_the_barcodes_issued(
    tmp_path: Path, migrated_url: str
) -> None:
    config, api_port, metrics_port = write_config(tmp_path, migrated_url)
    admin_cli(config, "biller", "create", "--id", "water", "--name", "みなと水道局",
              "--kana", "ﾐﾅﾄｽｲﾄﾞｳ", "--channels", "cvs,payeasy")  # fmt: skip
    key = admin_json(config, "key", "create", "--biller", "water")["key"]
    names = ["山田 太郎", "佐藤 花子", "鈴木 一郎", "高橋 次郎", "田中 三郎"]
    names += ["伊藤 四郎", "渡辺 五郎"]
    rows = ["bill_no,amount,due_date,channels,customer_no,name,description"]
    rows += [
        f"W-{n:03d},{3_000 + 111 * n},{due(14 + n)},cvs;payeasy,M{n:04d},{name},12月分 水道料金"
        for n, name in enumerate(names)
    ]
    daemon = DaemonProcess.start(config, api_port, metrics_port)
    try:
        daemon.wait("/readyz")
        status, body, _ = call(
            "POST",
            daemon.api + "/v1/bills/batch",
            key,
            ("\r\n".join(rows) + "\r\n").encode(),
            "text/csv; charset=utf-8",
        )
        assert status == 201, body
        batch_id = json.loads(body)["batch_id"]
        status, body, _ = call("GET", f"{daemon.api}/v1/bills/batch/{batch_id}/result.csv", key)
        assert status == 200
        issued = {r["bill_no"]: r for r in csv.DictReader(io.StringIO(body.decode("utf-8-sig")))}
        assert len(issued) == len(names)

        status, pdf, headers = call("GET", f"{daemon.api}/v1/bills/batch/{batch_id}/slips.pdf", key)
        assert status == 200 and headers["Content-Type"] == "application/pdf"
        path = tmp_path / "slips.pdf"
        path.write_bytes(pdf)
        pages = scan(path)
        assert [len(p) for p in pages] == [3, 3, 1]
        assert sorted(d for page in pages for d, _ in page) == sorted(
            r["barcode"] for r in issued.values()
        )
        assert {m for page in pages for _, m in page} == {"GS1"}
        # Each slip: the bill on it, and its own barcode's human-readable line next to it.
        text = squash(text_of(path))
        on_slips = re.findall(r"請求番号\s+(W-\d{3})", text)
        assert on_slips == sorted(issued)
        for bill_no, row in issued.items():
            n = int(bill_no[2:])
            assert row["barcode_text"] in text and f"¥{int(row['amount']):,}" in text
            assert f"{names[n]} 様" in text and f"M{n:04d}" in text
            assert row["payeasy_customer_number"] in text
            assert row["payeasy_confirmation_number"] in text
        assert text.count("みなと水道局") == len(names)

        # The operator's copy is the same file.
        out = tmp_path / "cli.pdf"
        made = admin_json(config, "slips", "--biller", "water", "--batch", batch_id,
                          "--output", str(out))  # fmt: skip
        assert made["slips"] == len(names) and out.read_bytes() == pdf

        # W-003 is cancelled: its slip is not printed again.
        status, body, _ = call("POST", f"{daemon.api}/v1/bills/W-003/cancel", key)
        assert status == 200, body
        status, pdf, _ = call("GET", f"{daemon.api}/v1/bills/batch/{batch_id}/slips.pdf", key)
        assert status == 200
        again = tmp_path / "again.pdf"
        again.write_bytes(pdf)
        scanned = sorted(d for page in scan(again) for d, _ in page)
        assert scanned == sorted(r["barcode"] for b, r in issued.items() if b != "W-003")
    finally:
        daemon.stop()
