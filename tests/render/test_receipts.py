"""Electronic receipts and the PDF helpers, checked with real PDF tools.

The PDFs are read back with Poppler: ``pdftoppm`` renders them (the page count and size, and the
pixels of the margins), ``pdftotext`` gives back their text (``-layout``) and word boxes
(``-bbox``), ``pdfinfo`` counts pages. Debian packages: ``poppler-utils`` for the tools and
``poppler-data`` for the CMaps that map the Japanese CID fonts back to Unicode. A missing tool
fails the test (it is not skipped).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import struct
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from gateway.model import JST, Channel
from gateway.networks.registry import REGISTRY
from gateway.render.pdf import (
    ELLIPSIS,
    GOTHIC,
    Column,
    draw_table,
    draw_text,
    jst_date,
    jst_datetime,
    render,
    text_width,
    wrap,
    yen,
)
from gateway.render.receipts import MARGIN, STAMP_NOTE, Receipt, render_receipt

POPPLER_UTILS = "poppler-utils"
POPPLER_DATA = "poppler-data"
DPI = 100
A5_PIXELS = (583, 827)  # 148 x 210 mm at 100 dpi, as pdftoppm rounds it

RECEIPT = Receipt(
    receipt_no="R-2026-000123",
    issued_at=datetime(2026, 12, 1, 9, 0, tzinfo=JST),
    biller_name="株式会社みなと電力",
    customer_name="山田 太郎",
    bill_no="INV-2026-000123",
    description="12月分 利用料",
    amount=5400,
    tax_amount=490,
    method="コンビニエンスストア",
    # 08:30 JST on 1 December: the business date differs from the UTC date.
    paid_at=datetime.fromisoformat("2026-11-30T23:30:00+00:00"),
    place="ファミリーマート 店舗コード 012345",
)


# --- the tools ---------------------------------------------------------------------------------


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not found: install the Debian package {POPPLER_UTILS} "
            f"(apt-get install {POPPLER_UTILS} {POPPLER_DATA})"
        )
    return path


def run(*args: str | Path) -> str:
    done = subprocess.run(
        [tool(str(args[0])), *map(str, args[1:])], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"{args[0]} failed: {done.stderr.decode(errors='replace')}"
    return done.stdout.decode()


def write(tmp_path: Path, pdf: bytes, name: str = "doc.pdf") -> Path:
    assert pdf.startswith(b"%PDF-")
    path = tmp_path / name
    path.write_bytes(pdf)
    return path


def text_of(path: Path, *, page: int | None = None) -> str:
    pages = ["-f", str(page), "-l", str(page)] if page else []
    text = run("pdftotext", "-layout", *pages, path, "-")
    if not re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text):
        pytest.fail(
            "pdftotext gave back no Japanese text: it needs the CMaps of the Debian package "
            f"{POPPLER_DATA} (check `dpkg -l {POPPLER_DATA}` and /usr/share/poppler/cMap). "
            f"Text was: {text!r}"
        )
    return text


def page_count(path: Path) -> int:
    found = re.search(r"^Pages:\s+(\d+)$", run("pdfinfo", path), re.MULTILINE)
    assert found, "pdfinfo printed no page count"
    return int(found.group(1))


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def gray_pixels(tmp_path: Path, pdf: Path) -> tuple[int, int, bytes]:
    """The first page rendered by pdftoppm as 8-bit grey (a binary PGM, read without Pillow)."""
    prefix = tmp_path / "gray"
    run("pdftoppm", "-gray", "-r", str(DPI), "-f", "1", "-l", "1", "-singlefile", pdf, prefix)
    data = prefix.with_suffix(".pgm").read_bytes()
    header = re.match(rb"P5\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    assert header and header.group(3) == b"255", "unexpected PGM header"
    width, height = int(header.group(1)), int(header.group(2))
    pixels = data[header.end() :]
    assert len(pixels) == width * height
    return width, height, pixels


def ink_outside(width: int, height: int, pixels: bytes, margin: int) -> list[tuple[int, int]]:
    """Dark pixels within ``margin`` pixels of any edge."""
    dark: list[tuple[int, int]] = []
    edges = [*range(margin), *range(width - margin, width)]
    for y in range(height):
        row = pixels[y * width : (y + 1) * width]
        xs = range(width) if y < margin or y >= height - margin else edges
        dark.extend((x, y) for x in xs if row[x] < 160)
    return dark


def words(path: Path) -> list[tuple[float, float, float, float, str]]:
    """Every word pdftotext finds, with its box in points: (x_min, y_min, x_max, y_max, text)."""
    html = run("pdftotext", "-bbox", path, "-")
    pattern = (
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>'
    )
    return [
        (float(a), float(b), float(c), float(d), text)
        for a, b, c, d, text in re.findall(pattern, html)
    ]


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


# --- the receipt -------------------------------------------------------------------------------


def test_receipt_renders_one_a5_page(tmp_path: Path) -> None:
    pdf = write(tmp_path, render_receipt(RECEIPT))
    run("pdftoppm", "-png", "-r", str(DPI), pdf, tmp_path / "page")
    images = sorted(tmp_path.glob("page*.png"))
    assert len(images) == 1, images
    width, height = png_size(images[0])
    assert abs(width - A5_PIXELS[0]) <= 1 and abs(height - A5_PIXELS[1]) <= 1, (width, height)
    assert page_count(pdf) == 1


def test_receipt_text_reads_back(tmp_path: Path) -> None:
    text = text_of(write(tmp_path, render_receipt(RECEIPT)))
    flat = squash(text)

    assert "領収書" in text and "（電子領収書）" in text
    assert re.search(r"山田 太郎\s*様", text)
    assert "¥5,400-" in text
    assert re.search(r"但し\s+12月分 利用料", text)
    assert re.search(r"内消費税等\s+¥490", text)
    assert re.search(r"支払方法\s+コンビニエンスストア", text)
    assert re.search(r"支払場所\s+ファミリーマート 店舗コード 012345", text)
    assert re.search(r"請求番号\s+INV-2026-000123", text)
    assert re.search(r"領収書番号\s+R-2026-000123", text)
    assert re.search(r"発行日\s+2026年12月1日", text)
    assert "上記の金額を正に領収いたしました。" in text
    assert re.search(r"収納者\s+株式会社みなと電力", flat)
    assert STAMP_NOTE in text
    assert "電子領収書のため収入印紙の貼付は不要です" in text


def test_paid_date_is_the_jst_business_date(tmp_path: Path) -> None:
    text = text_of(write(tmp_path, render_receipt(RECEIPT)))
    assert re.search(r"支払日\s+2026年12月1日", text)
    assert "2026年11月30日" not in text

    # 23:30 JST on the 30th stays on the 30th.
    evening = dataclasses.replace(RECEIPT, paid_at=datetime(2026, 11, 30, 14, 30, tzinfo=UTC))
    text = text_of(write(tmp_path, render_receipt(evening), "evening.pdf"))
    assert re.search(r"支払日\s+2026年11月30日", text)


@pytest.mark.parametrize(
    ("channel", "place", "wording", "absent"),
    [
        (
            Channel.CVS,
            "ローソン 店舗コード 123456",
            "コンビニエンスストア",
            ("Pay-easy", "口座振替"),
        ),
        (Channel.PAYEASY, "みずほ銀行", "Pay-easy（ペイジー）", ("コンビニ", "口座振替")),
        (Channel.TRANSFER, "三菱UFJ銀行", "口座振替", ("コンビニ", "Pay-easy", "ペイジー")),
    ],
)
def test_each_channel_names_its_method(
    tmp_path: Path, channel: Channel, place: str, wording: str, absent: tuple[str, ...]
) -> None:
    """The 支払方法 is the wording of the channel's network (gateway.networks.registry)."""
    method = REGISTRY.descriptions()[channel].wording
    receipt = dataclasses.replace(RECEIPT, method=method, place=place)
    text = text_of(write(tmp_path, render_receipt(receipt)))
    assert re.search(rf"支払方法\s+{re.escape(wording)}", text)
    assert re.search(rf"支払場所\s+{re.escape(place)}", text)
    for other in absent:
        assert other not in text, f"{other} printed on a {channel} receipt"


def test_no_description_names_the_bill_and_no_name_is_jousama(tmp_path: Path) -> None:
    receipt = dataclasses.replace(RECEIPT, description=None, customer_name=None, tax_amount=0)
    text = text_of(write(tmp_path, render_receipt(receipt)))
    assert re.search(r"但し\s+INV-2026-000123", text)
    assert "上様" in text and "山田" not in text
    assert re.search(r"内消費税等\s+¥0", text)


def test_long_text_wraps_then_is_cut_inside_the_margins(tmp_path: Path) -> None:
    # Chosen behaviour: the 但し text wraps onto a second line, then ends in "…"; long names are
    # cut with "…". Nothing is drawn past the margins, and the page stays one page.
    description = "電気料金（従量電灯B）2026年12月分 " * 12 + "END-OF-DESCRIPTION"
    receipt = dataclasses.replace(
        RECEIPT,
        description=description,
        customer_name="寿限無寿限無五劫の擦り切れ海砂利水魚の水行末雲来末風来末" * 3,
        biller_name="株式会社みなと電力サービス・ホールディングス関東支社" * 3,
        place="ファミリーマート 東京都千代田区丸の内一丁目店 店舗コード 012345" * 3,
        receipt_no="R-" + "9" * 120,
    )
    pdf = write(tmp_path, render_receipt(receipt))
    assert page_count(pdf) == 1

    text = text_of(pdf)
    assert "END-OF-DESCRIPTION" not in text
    purpose = re.search(r"但し\s+(.+)\n\s+(.+)\n", text)
    assert purpose, text
    assert purpose.group(1).startswith("電気料金（従量電灯B）2026年12月分")
    assert purpose.group(2).rstrip().endswith(ELLIPSIS)
    assert text.count(ELLIPSIS) >= 4  # description, customer, biller, place, receipt number

    page_width = 419.5276
    for x_min, _, x_max, _, word in words(pdf):
        assert x_min >= MARGIN - 0.5 and x_max <= page_width - MARGIN + 0.5, (word, x_min, x_max)

    width, height, pixels = gray_pixels(tmp_path, pdf)
    margin_px = int(MARGIN / 72 * DPI) - 3
    assert ink_outside(width, height, pixels, margin_px) == []
    assert sum(1 for p in pixels if p < 160) > 2000  # and the page is not blank


def test_characters_the_font_cannot_show_become_geta(tmp_path: Path) -> None:
    receipt = dataclasses.replace(RECEIPT, customer_name="𠮷田 花子\t", description="利用料😀")
    text = text_of(write(tmp_path, render_receipt(receipt)))
    assert re.search(r"〓田 花子\s*様", text)
    assert re.search(r"但し\s+利用料〓", text)


def test_same_receipt_same_bytes() -> None:
    first = render_receipt(RECEIPT)
    assert render_receipt(dataclasses.replace(RECEIPT)) == first
    assert render_receipt(dataclasses.replace(RECEIPT, amount=5401)) != first


def test_same_bytes_in_another_process() -> None:
    script = (
        "import sys, gateway.render.pdf as p, tests.render.test_receipts as t; "
        "assert p.text_width('あA', p.GOTHIC, 10) > 10, 'measuring before any render'; "
        "sys.stdout.buffer.write(t.render_receipt(t.RECEIPT))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "TZ": "America/New_York"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        check=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.stdout == render_receipt(RECEIPT)


@pytest.mark.parametrize("field", ["issued_at", "paid_at"])
def test_naive_datetimes_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(RECEIPT, **{field: datetime(2026, 12, 1, 8, 30)})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": 0},
        {"amount": 5400.0},
        {"tax_amount": -1},
        {"tax_amount": 5401},
        {"receipt_no": " "},
        {"method": " "},
    ],
)
def test_impossible_receipts_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(RECEIPT, **changes)  # type: ignore[arg-type]


# --- the helpers -------------------------------------------------------------------------------


def test_yen() -> None:
    assert yen(5400) == "¥5,400"
    assert yen(0) == "¥0"
    assert yen(300_000) == "¥300,000"
    assert yen(12_345_678) == "¥12,345,678"
    assert yen(-1200) == "-¥1,200"
    for wrong in (5400.0, True):
        with pytest.raises(TypeError):
            yen(wrong)  # type: ignore[arg-type]


def test_jst_dates() -> None:
    assert jst_date(date(2026, 11, 23)) == "2026年11月23日"
    assert jst_date(datetime(2026, 11, 30, 15, 0, tzinfo=UTC)) == "2026年12月1日"
    assert jst_date(datetime(2026, 11, 30, 14, 59, tzinfo=UTC)) == "2026年11月30日"
    later = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    assert jst_datetime(later) == "2026年12月1日 08:30"
    assert jst_datetime(later.astimezone(timezone(timedelta(hours=-5)))) == "2026年12月1日 08:30"
    for naive in (datetime(2026, 12, 1), datetime(2026, 12, 1, 8, 30)):
        with pytest.raises(ValueError):
            jst_date(naive)
        with pytest.raises(ValueError):
            jst_datetime(naive)


def test_wrap_fits_the_width_and_keeps_latin_words_whole() -> None:
    text = "お支払いありがとうございます。Invoice number INV-2026-000123 covers December usage."
    lines = wrap(text, GOTHIC, 10, 120)
    assert len(lines) > 2
    assert all(text_width(line, GOTHIC, 10) <= 120 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    for word in re.findall(r"[A-Za-z0-9-]+", text):
        assert any(word in line for line in lines), f"{word} split across lines: {lines}"

    # "。" may not start a line: the character before it moves down with it.
    lines = wrap("あ" * 11 + "。い", GOTHIC, 10, 110)
    assert lines == ["あ" * 10, "あ。い"]


def test_table_breaks_pages_and_repeats_its_header(tmp_path: Path) -> None:
    rows = [
        (
            f"{n:04d}",
            f"INV-2026-{n:06d}",
            f"顧客 {n} 様",
            jst_date(date(2026, 12, 1)),
            yen(n * 1000),
        )
        for n in range(1, 121)
    ]
    columns = [
        Column("No.", 40, "right"),
        Column("請求番号", 120),
        Column("お客様", 140),
        Column("支払日", 90),
        Column("金額", 90, "right"),
    ]
    _, height = A4
    top_first, top_next, bottom = height - 150, height - 72, 72.0
    ends: list[float] = []

    def next_page(canvas: Canvas) -> float:
        draw_text(canvas, 50, height - 50, "収納明細（続き）", GOTHIC, 12)
        return top_next

    def draw(canvas: Canvas) -> None:
        draw_text(canvas, 50, height - 80, "収納明細", GOTHIC, 18)
        ends.append(
            draw_table(
                canvas,
                rows,
                columns=columns,
                x=50,
                top=top_first,
                bottom=bottom,
                new_page=next_page,
            )
        )

    pdf = write(tmp_path, render(A4, draw, title="収納明細"))
    # 15 pt rows under a 15 pt header: 40 rows on the first page, 45 on each next one.
    assert page_count(pdf) == 3
    run("pdftoppm", "-png", "-r", "50", pdf, tmp_path / "table")
    assert len(list(tmp_path.glob("table*.png"))) == 3
    assert ends[0] >= bottom

    seen: list[str] = []
    for page in (1, 2, 3):
        text = text_of(pdf, page=page)
        assert re.search(r"No\.\s+請求番号\s+お客様\s+支払日\s+金額", text), f"page {page}"
        assert ("収納明細（続き）" in text) is (page > 1)
        seen += re.findall(r"INV-2026-(\d{6})", text)
    assert seen == [f"{n:06d}" for n in range(1, 121)]
    first = text_of(pdf, page=1)
    assert re.search(r"0001\s+INV-2026-000001\s+顧客 1 様\s+2026年12月1日\s+¥1,000", first)
    assert "¥120,000" in text_of(pdf, page=3)

    for _, _, _, y_max, word in words(pdf):
        assert y_max <= height - bottom + 1, word  # no row crosses the bottom edge


def test_table_refuses_rows_that_do_not_match_the_columns() -> None:
    def draw(canvas: Canvas) -> None:
        draw_table(
            canvas, [("a", "b", "c")], columns=[Column("x", 50)] * 2, x=0, top=500, bottom=50
        )

    with pytest.raises(ValueError, match="row 1"):
        render(A4, draw, title="t")


def test_table_cells_are_cut_to_their_column(tmp_path: Path) -> None:
    def draw(canvas: Canvas) -> None:
        draw_table(
            canvas,
            [("株式会社とても長い名前の収納企業グループ", "¥1")],
            columns=[Column("収納企業", 100), Column("金額", 60, "right")],
            x=50,
            top=700,
            bottom=50,
        )

    pdf = write(tmp_path, render(A4, draw, title="t"))
    found = [w for w in words(pdf) if w[4].startswith("株式会社")]
    assert found and found[0][4].endswith(ELLIPSIS)
    assert found[0][2] <= 150
