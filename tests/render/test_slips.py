"""Printed slips (gateway/render/slips.py), read back as a customer's store and a person would:
each page rendered by ``pdftoppm`` and scanned by ``zbarimg`` (every barcode decodes to its
slip's 44 digits, with the GS1 modifier of the leading FNC1), its text by ``pdftotext``. A
missing tool fails the test (Debian: zbar-tools, poppler-utils, poppler-data)."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import pytest

from gateway.mappers.cvs import barcode
from gateway.model import PayEasyNumbers
from gateway.render.slips import MAX_SLIPS, SLIPS_PER_PAGE, PrintedSlip, render_slips
from tests.render.test_receipts import page_count, run, squash, text_of, write

ZBAR = "{http://zbar.sourceforge.net/2008/barcode}"
SCAN_DPI = 300


def scan(pdf: Path) -> list[list[tuple[str, str | None]]]:
    """Per page, every symbol zbarimg finds on it: (data, modifiers), sorted (zbarimg reports
    them in no particular order)."""
    zbarimg = shutil.which("zbarimg")
    if zbarimg is None:
        pytest.fail("zbarimg is not installed: install the Debian package zbar-tools")
    prefix = pdf.with_suffix("")
    for old in pdf.parent.glob(prefix.name + "-*.png"):  # a scan of an earlier file
        old.unlink()
    run("pdftoppm", "-r", str(SCAN_DPI), "-png", pdf, prefix)
    pages = sorted(
        pdf.parent.glob(prefix.name + "-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1])
    )
    found = []
    for png in pages:
        done = subprocess.run(
            [zbarimg, "-q", "--xml", str(png)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode in (0, 4), f"zbarimg failed on {png.name}: {done.stderr}"
        symbols = []
        if done.returncode == 0:  # 4: no symbol on the page
            for s in ET.fromstring(done.stdout).iter(f"{ZBAR}symbol"):
                data = s.find(f"{ZBAR}data")
                assert data is not None and data.text is not None
                symbols.append((data.text, s.get("modifiers")))
        found.append(sorted(symbols))
    return found


def slip(n: int, *, payeasy: bool = True, cvs: bool = True, **more: object) -> PrintedSlip:
    code = barcode.build(
        company_code="987654",
        free_field=barcode.free_field_for("00001", 1000 + n),
        reissue=n % 3,
        due=date(2026, 12, 31),
        stamp=False,
        amount=5_000 + n,
    )
    fields: dict[str, object] = {
        "biller_name": "株式会社みなと電力",
        "bill_no": f"INV-{n:04d}",
        "customer_name": f"山田 太郎{n}",
        "customer_no": f"C{n:05d}",
        "amount": 5_000 + n,
        "tax_amount": 0,
        "due_date": date(2026, 12, 31),
        "description": "12月分 電気料金",
        "barcode": code.digits if cvs else None,
        "human_readable": code.human_readable() if cvs else None,
        "payeasy": PayEasyNumbers("58021", f"{9_000_000_000_000_000 + n}", f"{4000 + n}")
        if payeasy
        else None,
        **more,
    }
    return PrintedSlip(**fields)  # type: ignore[arg-type]


def test_slips_go_three_to_a_page_and_each_barcode_scans_to_its_slip(tmp_path: Path) -> None:
    slips = [slip(n) for n in range(7)]
    pdf = write(tmp_path, render_slips(slips))
    assert page_count(pdf) == 3
    pages = scan(pdf)
    decoded = [[data for data, _ in page] for page in pages]
    # Each page holds the barcodes of its three slips, in the slips' order, each once.
    assert decoded == [sorted(str(s.barcode) for s in slips[i : i + 3]) for i in (0, 3, 6)]
    assert {m for page in pages for _, m in page} == {"GS1"}  # the leading FNC1 is there


def test_a_slip_prints_who_what_how_much_and_the_pay_easy_numbers(tmp_path: Path) -> None:
    taxed = slip(1, amount=5_400, tax_amount=490, chains=("セブン-イレブン", "ローソン"))
    pdf = write(tmp_path, render_slips([slip(0), taxed, slip(2, due_date=None)]))
    text = squash(text_of(pdf))
    for s in (slip(0), taxed):
        assert s.payeasy is not None and s.human_readable is not None
        assert s.bill_no in text and s.customer_no and s.customer_no in text
        assert s.payeasy.customer_number in text and s.payeasy.confirmation_number in text
        assert s.human_readable in text
    assert text.count("株式会社みなと電力") == 3 and text.count("58021") == 3
    assert "山田 太郎0 様" in text and "¥5,000" in text
    assert "¥5,400" in text and "（うち消費税等 ¥490）" in text
    assert "2026年12月31日" in text and "期限なし" in text
    assert "お取扱いコンビニ：セブン-イレブン、ローソン" in text
    assert text.count("12月分 電気料金") == 3
    for label in ("収納機関番号", "お客様番号", "確認番号", "払込票"):
        assert text.count(label) == 3


def test_a_slip_without_a_barcode_or_without_pay_easy_says_what_it_has(tmp_path: Path) -> None:
    pdf = write(tmp_path, render_slips([slip(0, cvs=False), slip(1, payeasy=False)]))
    text = squash(text_of(pdf))
    assert "コンビニエンスストアではお支払いいただけません" in text
    assert text.count("収納機関番号") == 1 and "9000000000000000" in text
    assert [data for data, _ in scan(pdf)[0]] == [slip(1).barcode]
    with pytest.raises(ValueError, match="neither a barcode nor Pay-easy"):
        slip(2, cvs=False, payeasy=False)


def test_a_file_holds_one_to_a_hundred_slips(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no slip"):
        render_slips([])
    with pytest.raises(ValueError, match="at most 100"):
        render_slips([slip(n % 5) for n in range(MAX_SLIPS + 1)])
    full = write(tmp_path, render_slips([slip(n) for n in range(MAX_SLIPS)]))
    assert page_count(full) == -(-MAX_SLIPS // SLIPS_PER_PAGE) == 34
    assert len(re.findall(r"払込票", text_of(full))) == MAX_SLIPS
    again = render_slips([slip(n) for n in range(MAX_SLIPS)])
    assert again == full.read_bytes()  # the same slips, the same bytes


def test_a_slip_of_a_bill_whose_amount_the_payer_chooses_prints_the_range(tmp_path: Path) -> None:
    chosen = slip(0, cvs=False, amount=0, amount_range=(1_000, 50_000))
    text = squash(text_of(write(tmp_path, render_slips([chosen]))))
    assert "¥1,000〜¥50,000" in text and "¥0" not in text
    with pytest.raises(ValueError, match="one set amount"):
        slip(1, amount=0, amount_range=(1_000, 50_000))  # a barcode cannot carry a range
    with pytest.raises(ValueError, match="not a payer-chosen bill's"):
        slip(2, cvs=False, amount=0, amount_range=(5_000, 1_000))
