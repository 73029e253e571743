"""The printable card of a reusable payer number (お客様番号カード): one A6 landscape page.

Pure: :func:`render_card` takes a :class:`PayerCard` and returns the PDF's bytes (the same card
gives the same bytes); it reads no clock and does no I/O. The card carries the three numbers a
Pay-easy ATM or online bank asks for — 収納機関番号, お客様番号, 確認番号 — in large Latin digits,
the biller's name, whom it is for (the customer's name when the biller gave one, else 様 after
their customer number) and how to use it. Long names are cut with ``…`` to the card's width.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from reportlab.lib.pagesizes import A6, landscape
from reportlab.pdfgen.canvas import Canvas

from gateway.render.pdf import (
    GOTHIC,
    GOTHIC_BOLD,
    draw_text,
    fit_lines,
    jst_date,
    render,
    truncate,
)

TITLE = "ペイジー（Pay-easy）お客様番号カード"
HOW_TO = (
    "ペイジーマークのある銀行ATM・インターネットバンキング・モバイルバンキングで、"
    "次の3つの番号を入力してお支払いください。毎回この番号をお使いいただけます"
    "（お支払い期限の早いご請求から順に表示されます）。"
)
KEEP = "このカードは大切に保管し、番号を他人に知らせないでください。"

PAGE_WIDTH, PAGE_HEIGHT = landscape(A6)
MARGIN = 24.0
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN


@dataclass(frozen=True)
class PayerCard:
    """What one card says."""

    biller_name: str
    customer_no: str
    customer_name: str | None
    institution_code: str  # 収納機関番号
    customer_number: str  # お客様番号 (18 digits)
    confirmation_number: str  # 確認番号
    issued_on: date

    def __post_init__(self) -> None:
        for name in ("institution_code", "customer_number", "confirmation_number"):
            value = getattr(self, name)
            if not (isinstance(value, str) and value.isascii() and value.isdigit()):
                raise ValueError(f"{name} must be ASCII digits, got {value!r}")
        for name in ("biller_name", "customer_no"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must not be empty")


def render_card(card: PayerCard) -> bytes:
    """The card as a one-page A6 landscape PDF."""

    def draw(canvas: Canvas) -> None:
        _draw_card(canvas, card)

    return render(
        (PAGE_WIDTH, PAGE_HEIGHT), draw, title="お客様番号カード", subject="ペイジー お客様番号"
    )


def _draw_card(canvas: Canvas, c: PayerCard) -> None:
    left, right = MARGIN, PAGE_WIDTH - MARGIN
    top = PAGE_HEIGHT - MARGIN

    canvas.setLineWidth(0.8)
    canvas.roundRect(MARGIN / 2, MARGIN / 2, PAGE_WIDTH - MARGIN, PAGE_HEIGHT - MARGIN, 8)

    draw_text(
        canvas, left, top - 12, truncate(TITLE, GOTHIC_BOLD, 13, CONTENT_WIDTH), GOTHIC_BOLD, 13
    )
    draw_text(
        canvas, left, top - 32, truncate(c.biller_name, GOTHIC, 10, CONTENT_WIDTH), GOTHIC, 10
    )
    name = c.customer_name.strip() if c.customer_name and c.customer_name.strip() else None
    addressee = f"{name}　様" if name else f"お客様コード {c.customer_no}　様"
    draw_text(canvas, left, top - 52, truncate(addressee, GOTHIC, 11, CONTENT_WIDTH), GOTHIC, 11)

    # The three numbers, each on its own row of a box.
    rows = (
        ("収納機関番号", c.institution_code),
        ("お客様番号", c.customer_number),
        ("確認番号", c.confirmation_number),
    )
    row_height, label_width = 30.0, 86.0
    box_top = top - 64
    canvas.setLineWidth(1.0)
    canvas.rect(left, box_top - row_height * len(rows), CONTENT_WIDTH, row_height * len(rows))
    for i, (label, digits) in enumerate(rows):
        y = box_top - row_height * (i + 1)
        if i:
            canvas.setLineWidth(0.4)
            canvas.line(left, y + row_height, right, y + row_height)
        draw_text(canvas, left + 8, y + 11, label, GOTHIC, 9)
        draw_text(canvas, left + label_width, y + 9, digits, GOTHIC_BOLD, 17)

    y = box_top - row_height * len(rows) - 14
    for line in fit_lines(HOW_TO, GOTHIC, 7.5, CONTENT_WIDTH, 3):
        draw_text(canvas, left, y, line, GOTHIC, 7.5)
        y -= 10
    draw_text(canvas, left, y - 2, truncate(KEEP, GOTHIC, 7.5, CONTENT_WIDTH), GOTHIC, 7.5)
    if name:  # the customer number too, for the biller's counter
        code = truncate(f"お客様コード {c.customer_no}", GOTHIC, 7.5, CONTENT_WIDTH / 2)
        draw_text(canvas, left, MARGIN, code, GOTHIC, 7.5)
    draw_text(canvas, right, MARGIN, f"発行日 {jst_date(c.issued_on)}", GOTHIC, 7.5, "right")
