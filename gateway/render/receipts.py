"""Electronic receipts (電子領収書): one A5 page per payment, rendered to PDF bytes.

Pure: :func:`render_receipt` takes a :class:`Receipt` and returns the PDF; it reads no clock and
does no I/O. Dates are printed as JST business dates (a payment at 2026-11-30T23:30Z was made on
2026年12月1日). A receipt without a customer name is made out to 上様, as paper receipts are.

Long text is never drawn past the margins: the 但し line (the description, or the bill number when
there is none) wraps onto a second line and is then cut with ``…``; names, the place and the numbers
are cut with ``…`` to the width they have.

The receipt states that no revenue stamp is needed: stamp duty applies to paper documents, not to
one sent electronically.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reportlab.lib.pagesizes import A5
from reportlab.pdfgen.canvas import Canvas

from gateway.render.pdf import (
    GOTHIC,
    GOTHIC_BOLD,
    Column,
    TableStyle,
    draw_table,
    draw_text,
    fit_lines,
    jst_date,
    render,
    text_width,
    truncate,
    yen,
)

STAMP_NOTE = "電子領収書のため収入印紙の貼付は不要です。"
ACKNOWLEDGEMENT = "上記の金額を正に領収いたしました。"
NAMELESS = "上様"
DESCRIPTION_LINES = 2  # the 但し text wraps to this many lines, then is cut with "…"

PAGE_WIDTH, PAGE_HEIGHT = A5
MARGIN = 36.0
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN


@dataclass(frozen=True)
class Receipt:
    """What one electronic receipt says. Money is int yen; timestamps are aware."""

    receipt_no: str
    issued_at: datetime
    biller_name: str
    customer_name: str | None
    bill_no: str
    description: str | None
    amount: int
    tax_amount: int  # 内消費税等, included in amount; 0 if none
    method: str  # how it was paid (支払方法), as the payment's network words it
    paid_at: datetime
    place: str  # where it was paid (支払場所): store chain and store code, or the bank's name

    def __post_init__(self) -> None:
        for name in ("issued_at", "paid_at"):
            value = getattr(self, name)
            if not isinstance(value, datetime) or value.utcoffset() is None:
                raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
        for name in ("amount", "tax_amount"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be int yen, got {value!r}")
        if self.amount < 1:
            raise ValueError(f"amount must be at least 1 yen, got {self.amount}")
        if not 0 <= self.tax_amount <= self.amount:
            raise ValueError(f"tax_amount must be between 0 and amount, got {self.tax_amount}")
        for name in ("receipt_no", "biller_name", "bill_no", "method"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must not be empty")


def render_receipt(receipt: Receipt) -> bytes:
    """The receipt as a one-page A5 PDF (the same receipt always gives the same bytes)."""

    def draw(canvas: Canvas) -> None:
        _draw_receipt(canvas, receipt)

    return render(A5, draw, title=f"領収書 {receipt.receipt_no}", subject="電子領収書")


def _draw_receipt(canvas: Canvas, r: Receipt) -> None:
    left, right = MARGIN, PAGE_WIDTH - MARGIN
    center = PAGE_WIDTH / 2
    half = CONTENT_WIDTH / 2

    # Receipt number and date of issue, top right.
    for y, label, value in (
        (PAGE_HEIGHT - 46, "領収書番号", r.receipt_no),
        (PAGE_HEIGHT - 59, "発行日", jst_date(r.issued_at)),
    ):
        text = truncate(f"{label}　{value}", GOTHIC, 8.5, half)
        draw_text(canvas, right, y, text, GOTHIC, 8.5, "right")

    # Title.
    draw_text(canvas, center, PAGE_HEIGHT - 95, "領収書", GOTHIC_BOLD, 24, "center")
    draw_text(canvas, center, PAGE_HEIGHT - 113, "（電子領収書）", GOTHIC, 10, "center")

    # Made out to.
    suffix = "　様"
    name_y = PAGE_HEIGHT - 155
    if r.customer_name and r.customer_name.strip():
        room = CONTENT_WIDTH * 0.7 - text_width(suffix, GOTHIC, 14)
        addressee = truncate(r.customer_name.strip(), GOTHIC, 14, room) + suffix
    else:
        addressee = NAMELESS
    draw_text(canvas, left, name_y, addressee, GOTHIC, 14)
    canvas.setLineWidth(0.8)
    canvas.line(left, name_y - 5, left + CONTENT_WIDTH * 0.7, name_y - 5)

    # The amount, in a box.
    box_top, box_height = PAGE_HEIGHT - 180, 44.0
    canvas.setLineWidth(1.2)
    canvas.rect(left, box_top - box_height, CONTENT_WIDTH, box_height)
    draw_text(canvas, left + 10, box_top - 27, "金額", GOTHIC, 11)
    amount = truncate(f"{yen(r.amount)}-", GOTHIC_BOLD, 24, CONTENT_WIDTH - 80)
    draw_text(canvas, center + 20, box_top - 31, amount, GOTHIC_BOLD, 24, "center")

    # 但し: what was paid for.
    y = box_top - box_height - 22
    label = "但し　"
    indent = text_width(label, GOTHIC, 10.5)
    purpose = r.description if r.description and r.description.strip() else r.bill_no
    draw_text(canvas, left, y, label, GOTHIC, 10.5)
    for line in fit_lines(purpose, GOTHIC, 10.5, CONTENT_WIDTH - indent, DESCRIPTION_LINES):
        draw_text(canvas, left + indent, y, line, GOTHIC, 10.5)
        y -= 15
    draw_text(canvas, left, y - 4, f"内消費税等　{yen(r.tax_amount)}", GOTHIC, 10)

    # How, where and when it was paid.
    label_width = 80.0
    draw_table(
        canvas,
        [
            ("支払方法", r.method),
            ("支払場所", r.place),
            ("支払日", jst_date(r.paid_at)),
            ("請求番号", r.bill_no),
        ],
        columns=[Column("", label_width), Column("", CONTENT_WIDTH - label_width)],
        x=left,
        top=y - 22,
        bottom=150,
        style=TableStyle(size=9.5, row_height=19, header=False),
    )

    # The acknowledgement and who received the money.
    draw_text(canvas, left, 132, ACKNOWLEDGEMENT, GOTHIC, 10)
    draw_text(canvas, center, 104, "収納者", GOTHIC, 8.5)
    for i, line in enumerate(fit_lines(r.biller_name, GOTHIC, 12, half, 2)):
        draw_text(canvas, center, 88 - 15 * i, line, GOTHIC, 12)

    # The stamp note.
    canvas.setLineWidth(0.25)
    canvas.line(left, 50, right, 50)
    draw_text(canvas, center, 38, STAMP_NOTE, GOTHIC, 8, "center")
