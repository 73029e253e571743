"""Settlement statements (精算明細書) as CSV and PDF bytes, rendered from stored values.

Pure: every function takes the values of :mod:`gateway.fee_model` and returns ``bytes``;
nothing reads a clock, a file or the network. Money is int yen; timestamps are aware and printed
in JST.

* :func:`statement_csv` — the statement for people: a few header rows, a blank row, then one row
  per line and a 合計 row, with Japanese column names. Amounts are plain signed integers (no ¥, no
  thousands separators) so a spreadsheet sums them; the lines add up to the payout.
* :func:`payments_csv` — the payments a settlement paid out, for the biller's systems: English
  column names, channel codes (``cvs``, ``payeasy``, ``transfer``), ISO 8601 timestamps in JST
  (``2026-12-01T08:30:00+09:00``), ``stamped`` as 1/0, values verbatim but for formula
  escaping (below). It consumes its rows
  once, encoding each as it comes, so a generator from the store is fine.
* :func:`daily_report_csv` — collections per JST business day, channel and chain (日別収納実績).
* :func:`statement_pdf` — the A4 statement, paginated, the same bytes for the same input.

Encodings of the CSVs: ``"utf-8"`` is written with a BOM (Excel needs it to read UTF-8), and
``"shift_jis"`` with Microsoft's code page 932, the Shift_JIS that Japanese Windows and Excel use
(it has ①, ～, Ⅱ, 髙 that plain Shift_JIS lacks). A character CP932 cannot hold (𠮷, emoji) is
written as the geta mark ``〓``; ``¥`` and ``—`` become their full-width forms first. Lines end
with CRLF. In every CSV a text cell that a spreadsheet would run as a formula (it begins with
``= + - @``, a tab or a CR: a bill_no, a store's name, a biller's name) gets a leading ``'``
(:mod:`gateway.mappers.csv_cells`); amounts are int cells, so ``-1200`` stays a number.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from gateway.fee_model import DailyCollection, LineKind, PayoutState, SettledPayment, Settlement
from gateway.mappers.csv_cells import cells
from gateway.mappers.zengin.payouts import return_meaning
from gateway.mappers.zengin.records import ACCOUNT_TYPES
from gateway.model import JST
from gateway.money.fees import CHANNEL_NAMES
from gateway.render.pdf import (
    GETA,
    GOTHIC,
    GOTHIC_BOLD,
    Column,
    TableStyle,
    draw_table,
    draw_text,
    jst_date,
    render,
    text_width,
    truncate,
    yen,
)

ENCODINGS = ("utf-8", "shift_jis")
KIND_NAMES: dict[LineKind, str] = {
    LineKind.COLLECTION: "収納金",
    LineKind.PAYMENT_FEE: "収納手数料",
    LineKind.UNCOLLECTED_FEE: "未収納手数料",
    LineKind.SETTLEMENT_FEE: "精算手数料",
    LineKind.INITIAL_FEE: "初期費用",
    LineKind.MONTHLY_FEE: "月額基本料",
    LineKind.BILL_FEE: "請求発行手数料",
    LineKind.NOTICE_FEE: "通知手数料",
    LineKind.TAX: "消費税",
    LineKind.STAMP_DUTY: "印紙税相当額",
    LineKind.REFUND: "返金",
    LineKind.CARRIED_IN: "前回繰越",
    LineKind.CARRIED_OUT: "次回繰越",
    LineKind.RETURNED_PAYOUT: "振込不能分",
}
STATEMENT_COLUMNS = ("No", "区分", "チャネル", "摘要", "数量", "単価", "金額")
PAYMENT_COLUMNS = (
    "payment_id",
    "bill_no",
    "channel",
    "amount",
    "paid_at",
    "confirmed_at",
    "stamped",
    "place",
)
DAILY_COLUMNS = ("日付", "チャネル", "チェーン/金融機関", "件数", "金額", "確報件数", "確報金額")
TITLE = "精算明細書"
HONORIFIC = "　御中"
FOOTNOTE = "この明細書の金額はすべて円単位です。明細の合計は支払金額と一致します。"

# Characters CP932 lacks but has a full-width twin of (its Shift_JIS table maps them so).
_CP932_TWINS = str.maketrans({"¥": "￥", "\u2014": "\u2015", "\u00a6": "\uffe4"})


# --- CSV -------------------------------------------------------------------------------------


def statement_csv(s: Settlement, biller_name: str, encoding: str) -> bytes:
    """The statement as CSV: header rows, a blank row, the lines and a 合計 row (the payout)."""
    codec = _codec(encoding)
    period = f"{s.period_start.isoformat()}〜{s.period_end.isoformat()}"
    rows: list[Sequence[object]] = [
        ("精算番号", s.settlement_id),
        ("請求者", biller_name),
        ("請求者ID", s.biller_id),
        ("対象期間", period),
        ("支払予定日", s.payout_date.isoformat()),
        ("支払金額", s.totals.payout),
        (),
        STATEMENT_COLUMNS,
    ]
    for number, line in enumerate(s.lines, start=1):
        rows.append(
            (
                number,
                KIND_NAMES[line.kind],
                CHANNEL_NAMES[line.channel] if line.channel is not None else "",
                line.description,
                line.quantity,
                "" if line.unit_amount is None else line.unit_amount,
                line.amount,
            )
        )
    rows.append(("", "合計", "", "", "", "", s.totals.payout))
    return _csv(rows, codec)


def payments_csv(rows: Iterable[SettledPayment], encoding: str) -> bytes:
    """The payments of a settlement, one row each, for machines (see the module docstring)."""
    codec = _codec(encoding)

    def records() -> Iterator[Sequence[object]]:
        yield PAYMENT_COLUMNS
        for p in rows:
            yield (
                p.payment_id,
                p.bill_no or "",
                p.channel.value,
                p.amount,
                _iso_jst(p.paid_at),
                _iso_jst(p.confirmed_at),
                1 if p.stamped else 0,
                p.place or "",
            )

    return _csv(records(), codec)


def daily_report_csv(rows: Iterable[DailyCollection], encoding: str) -> bytes:
    """Collections per JST day, channel and chain; 確報 columns count the confirmed payments."""
    codec = _codec(encoding)

    def records() -> Iterator[Sequence[object]]:
        yield DAILY_COLUMNS
        for d in rows:
            yield (
                d.day.isoformat(),
                CHANNEL_NAMES[d.channel],
                d.chain,
                d.count,
                d.amount,
                d.confirmed_count,
                d.confirmed_amount,
            )

    return _csv(records(), codec)


def _codec(encoding: str) -> str:
    if encoding == "utf-8":
        return "utf-8"
    if encoding == "shift_jis":
        return "cp932"
    raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}")


def _csv(rows: Iterable[Sequence[object]], codec: str) -> bytes:
    """Rows as CSV (CRLF), each encoded as it is written; UTF-8 starts with one BOM."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # the default dialect: "excel", lines end with "\r\n"
    out = [codecs.BOM_UTF8] if codec == "utf-8" else []
    for row in rows:
        writer.writerow(cells(row))  # text a spreadsheet would run is kept as text
        out.append(_encode(buffer.getvalue(), codec))
        buffer.seek(0)
        buffer.truncate()
    return b"".join(out)


def _encode(text: str, codec: str) -> bytes:
    """``text`` in ``codec``, every character it cannot hold written as ``〓``: never raises."""
    if codec == "cp932":
        text = text.translate(_CP932_TWINS)
    try:
        return text.encode(codec)
    except UnicodeEncodeError:
        return b"".join(_encode_char(ch, codec) for ch in text)


def _encode_char(ch: str, codec: str) -> bytes:
    try:
        return ch.encode(codec)
    except UnicodeEncodeError:  # a CP932 gap, or a lone surrogate in UTF-8
        return GETA.encode(codec)


def _iso_jst(at: datetime) -> str:
    if at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: timestamps must be timezone-aware")
    return at.astimezone(JST).isoformat(timespec="seconds")


# --- PDF -------------------------------------------------------------------------------------

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 50.0
LEFT, RIGHT = MARGIN, PAGE_WIDTH - MARGIN
CONTENT_WIDTH = RIGHT - LEFT
BODY_TOP = PAGE_HEIGHT - 78  # where a table goes on after a page break
BODY_BOTTOM = 64.0  # above the footer
TOTALS_COLUMNS = (Column("", 170), Column("", 110, "right"))
LINE_COLUMNS = (
    Column("No", 28, "right"),
    Column("摘要", 267),
    Column("数量", 50, "right"),
    Column("単価", 70, "right"),
    Column("金額", 80, "right"),
)
DAILY_PDF_COLUMNS = (
    Column("日付", 100),
    Column("チャネル", 85),
    Column("チェーン/金融機関", 150),
    Column("件数", 60, "right"),
    Column("金額", 100, "right"),
)
TABLE = TableStyle(size=9, row_height=16)


def statement_pdf(s: Settlement, biller_name: str, daily: Sequence[DailyCollection] = ()) -> bytes:
    """The statement as an A4 PDF: heading, payout, totals, lines, then 日別収納実績 if given."""

    def draw(canvas: Canvas) -> None:
        _Statement(canvas, s, biller_name).draw(daily)

    return render(A4, draw, title=f"{TITLE} {s.settlement_id}", subject=TITLE)


class _Statement:
    def __init__(self, canvas: Canvas, s: Settlement, biller_name: str) -> None:
        self.canvas, self.s = canvas, s
        room = CONTENT_WIDTH * 0.6 - text_width(HONORIFIC, GOTHIC, 14)
        self.addressee = truncate(biller_name.strip(), GOTHIC, 14, room)

    def draw(self, daily: Sequence[DailyCollection]) -> None:
        self.footer()
        y = self.heading()
        y = self.payout_box(y - 18)
        y = self.section(y - 26, "集計")
        y = self.table(y, self.totals_rows(), TOTALS_COLUMNS, header=False)
        y = self.section(y - 24, "明細")
        y = self.table(y, self.line_rows(), LINE_COLUMNS)
        if daily:
            y = self.section(y - 24, "日別収納実績")
            self.table(y, _daily_rows(daily), DAILY_PDF_COLUMNS)

    def heading(self) -> float:
        c, s = self.canvas, self.s
        draw_text(c, PAGE_WIDTH / 2, PAGE_HEIGHT - 78, TITLE, GOTHIC_BOLD, 20, "center")
        number = truncate(f"精算番号　{s.settlement_id}", GOTHIC, 9, CONTENT_WIDTH * 0.35)
        draw_text(c, RIGHT, PAGE_HEIGHT - 112, number, GOTHIC, 9, "right")
        created = f"作成日　{jst_date(s.created_at)}"
        draw_text(c, RIGHT, PAGE_HEIGHT - 125, created, GOTHIC, 9, "right")
        name_y = PAGE_HEIGHT - 125
        draw_text(c, LEFT, name_y, self.addressee + HONORIFIC, GOTHIC, 14)
        c.setLineWidth(0.8)
        c.line(LEFT, name_y - 5, LEFT + CONTENT_WIDTH * 0.6, name_y - 5)
        draw_text(c, LEFT, name_y - 26, "下記のとおり精算いたします。", GOTHIC, 10)
        period = f"{jst_date(s.period_start)} 〜 {jst_date(s.period_end)}"
        rows = [("対象期間", period), ("支払予定日", jst_date(s.payout_date))]
        rows.append(("振込状況", payout_text(s)))
        columns = (Column("", 90), Column("", CONTENT_WIDTH - 90))
        return self.table(name_y - 42, rows, columns, header=False)

    def payout_box(self, top: float) -> float:
        c, height = self.canvas, 44.0
        c.setLineWidth(1.2)
        c.rect(LEFT, top - height, CONTENT_WIDTH, height)
        draw_text(c, LEFT + 14, top - 27, "支払金額", GOTHIC_BOLD, 12)
        draw_text(c, RIGHT - 16, top - 31, yen(self.s.totals.payout), GOTHIC_BOLD, 22, "right")
        return top - height

    def totals_rows(self) -> list[tuple[str, str]]:
        t = self.s.totals
        stamps = f"（{t.stamp_count:,}件）" if t.stamp_duty else ""
        return [
            (f"収納金合計（{t.payments_count:,}件）", yen(t.collected)),
            ("手数料（税抜）", yen(-t.fees)),
            ("消費税", yen(-t.tax)),
            (f"印紙税相当額{stamps}", yen(-t.stamp_duty)),
            ("返金", yen(-t.refunds)),
            ("前回繰越", yen(-t.carried_in)),
            ("次回繰越", yen(t.carried_out)),
            *([("前回振込不能分", yen(t.returned_in))] if t.returned_in else []),
            ("支払金額", yen(t.payout)),
        ]

    def line_rows(self) -> Iterator[tuple[str, ...]]:
        for number, line in enumerate(self.s.lines, start=1):
            unit = "" if line.unit_amount is None else yen(line.unit_amount)
            yield (str(number), line.description, f"{line.quantity:,}", unit, yen(line.amount))
        yield ("", "合計", "", "", yen(self.s.totals.payout))

    def section(self, y: float, title: str) -> float:
        """A section title at ``y`` (on a new page if its table would not start here)."""
        if y - 6 - 3 * TABLE.row_height < BODY_BOTTOM:
            y = self.new_page(self.canvas, show=True)
        draw_text(self.canvas, LEFT, y, title, GOTHIC_BOLD, 11)
        return y - 6

    def table(
        self,
        top: float,
        rows: Iterable[Sequence[str]],
        columns: Sequence[Column],
        header: bool = True,
    ) -> float:
        style = TableStyle(size=TABLE.size, row_height=TABLE.row_height, header=header)
        return draw_table(
            self.canvas,
            rows,
            columns=columns,
            x=LEFT,
            top=top,
            bottom=BODY_BOTTOM,
            style=style,
            new_page=self.new_page,
        )

    def new_page(self, canvas: Canvas, show: bool = False) -> float:
        """The next page's furniture (draw_table has already finished the previous page)."""
        if show:
            canvas.showPage()
        self.footer()
        title = f"{TITLE}（続き）　{self.addressee}{HONORIFIC}"
        draw_text(canvas, LEFT, PAGE_HEIGHT - 50, title, GOTHIC, 10)
        number = truncate(f"精算番号　{self.s.settlement_id}", GOTHIC, 9, CONTENT_WIDTH * 0.3)
        draw_text(canvas, RIGHT, PAGE_HEIGHT - 50, number, GOTHIC, 9, "right")
        canvas.setLineWidth(0.5)
        canvas.line(LEFT, PAGE_HEIGHT - 57, RIGHT, PAGE_HEIGHT - 57)
        return BODY_TOP

    def footer(self) -> None:
        c = self.canvas
        c.setLineWidth(0.25)
        c.line(LEFT, 46, RIGHT, 46)
        draw_text(c, LEFT, 34, FOOTNOTE, GOTHIC, 7.5)
        draw_text(c, RIGHT, 34, f"{c.getPageNumber()} ページ", GOTHIC, 7.5, "right")


def payout_text(s: Settlement) -> str:
    """Where the payout stands, as the statement says it (振込状況): not requested yet, in a
    payout file for its date, paid to the account (masked), or returned by the bank and taken
    again by a later settlement."""
    status = s.payout_status
    day = "" if status.transfer_date is None else jst_date(status.transfer_date)
    account = status.account
    where = (
        ""
        if account is None
        else f" {account.bank_name} {account.branch_name} "
        f"{ACCOUNT_TYPES.get(account.account_type, '')} {account.masked_number}"
    )
    if status.state is PayoutState.PAYOUT_REQUESTED:
        return f"振込依頼済（振込日 {day}{where}）"
    if status.state is PayoutState.PAID_OUT:
        return f"振込済（{day}{where}）"
    if status.state is PayoutState.PAYOUT_RETURNED:
        reason = return_meaning(status.return_code or "").split(" (")[0]
        after = "次回の精算で再振込"
        if status.carried_into is not None:
            after = f"{status.carried_into} で再振込"
        return f"振込不能（{reason}）・{after}"
    return "振込なし（支払金額 0円）" if s.totals.payout == 0 else "振込依頼前"


def _daily_rows(daily: Iterable[DailyCollection]) -> Iterator[tuple[str, ...]]:
    for d in daily:
        yield (
            jst_date(d.day),
            CHANNEL_NAMES[d.channel],
            d.chain,
            f"{d.count:,}",
            yen(d.amount),
        )
