"""Printed payment slips (払込票): three to an A4 page, for billers who still mail paper.

Pure: :func:`render_slips` takes :class:`PrintedSlip` values and returns the PDF; it reads no
clock and does no I/O. The same slips always give the same bytes.

Each slip is a third of the page (cut along the dashed lines) and shows:

- the biller (収納企業), the customer (お客様: the name with 様, and the biller's customer number
  as 顧客番号, never to be confused with Pay-easy's お客様番号) and the bill number;
- the amount (with its tax, for a taxable bill) and the due date (お支払期限, or 期限なし);
- the GS1-128 barcode, the symbol the payment page draws
  (:func:`gateway.render.barcode_svg.code128_gs1_modules`: Start C, FNC1, the 22 digit pairs,
  the mod-103 check, Stop), here as filled bars of 0.3 mm per module with quiet zones of ten
  modules, and its human-readable line under it; a slip of a bill without the CVS channel says
  so instead;
- the Pay-easy numbers (収納機関番号, お客様番号, 確認番号) when the bill has them;
- the chains that take the slip (お取扱いコンビニ) when the biller accepts only some
  (gateway.chain_rules);
- that the barcode and the numbers cannot be used after the due date.

Long names are cut with ``…`` to the width they have; a long description wraps to one more
line and is then cut. At most :data:`MAX_SLIPS` slips go into one file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from gateway.model import PayEasyNumbers
from gateway.render.barcode_svg import code128_gs1_modules
from gateway.render.pdf import (
    GOTHIC,
    GOTHIC_BOLD,
    Face,
    draw_text,
    fit_lines,
    jst_date,
    render,
    text_width,
    truncate,
    yen,
)

SLIPS_PER_PAGE = 3
MAX_SLIPS = 100  # slips in one file: a print run of the seeds' sheets
PAGE_WIDTH, PAGE_HEIGHT = A4
SLIP_HEIGHT = PAGE_HEIGHT / SLIPS_PER_PAGE
MARGIN = 28.0
MODULE = 0.85  # points per barcode module: 0.3 mm
QUIET = 10  # modules of white on each side of the bars (Code 128 asks for 10)
BAR_HEIGHT = 42.0  # points: 14.8 mm
MONO = Face("Courier", "Courier")
NUMBERS = Face("HeiseiKakuGo-W5", "Helvetica-Bold")
EXPIRY_NOTE = "お支払期限を過ぎると、このバーコード・番号ではお支払いいただけません。"
NO_CVS = "この払込票はコンビニエンスストアではお支払いいただけません。"


@dataclass(frozen=True)
class PrintedSlip:
    """What one printed slip says. Money is int yen."""

    biller_name: str
    bill_no: str
    customer_name: str | None
    customer_no: str | None
    amount: int
    tax_amount: int  # included in amount; 0 when none
    due_date: date | None  # None: 期限なし
    description: str | None
    barcode: str | None  # the current slip's 44 digits; None without the cvs channel
    human_readable: str | None
    payeasy: PayEasyNumbers | None
    chains: tuple[str, ...] = ()  # the names of the chains that take it; empty: not limited
    # (min, max) for a bill whose amount the payer chooses (amount 0, Pay-easy only): the slip
    # prints the range; None for a bill of a set amount.
    amount_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for name in ("amount", "tax_amount"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be int yen, got {value!r}")
        if self.amount_range is not None:
            low, high = self.amount_range
            if self.amount != 0 or self.tax_amount != 0 or not 1 <= low <= high:
                raise ValueError(f"amount range {low}..{high} is not a payer-chosen bill's")
            if self.barcode is not None:
                raise ValueError(f"bill {self.bill_no}: a barcode carries one set amount")
        elif self.amount < 1 or not 0 <= self.tax_amount < self.amount:
            raise ValueError(f"amount {self.amount} with tax {self.tax_amount} is not a bill's")
        if self.barcode is None and self.payeasy is None:
            raise ValueError(f"bill {self.bill_no} has neither a barcode nor Pay-easy numbers")
        if self.barcode is not None:
            code128_gs1_modules(self.barcode)  # ValueError for anything but digit pairs


def render_slips(slips: Sequence[PrintedSlip], *, title: str = "払込票") -> bytes:
    """The slips as an A4 PDF, :data:`SLIPS_PER_PAGE` to a page, in their order.
    ``ValueError`` for none, or for more than :data:`MAX_SLIPS`."""
    if not slips:
        raise ValueError("no slip to print")
    if len(slips) > MAX_SLIPS:
        raise ValueError(f"{len(slips)} slips: at most {MAX_SLIPS} in one file")

    def draw(canvas: Canvas) -> None:
        for n, slip in enumerate(slips):
            place = n % SLIPS_PER_PAGE
            if n and place == 0:
                canvas.showPage()
            top = PAGE_HEIGHT - place * SLIP_HEIGHT
            _draw_slip(canvas, slip, top)
            last_on_page = place == SLIPS_PER_PAGE - 1 or n == len(slips) - 1
            if not last_on_page:
                _cut_line(canvas, top - SLIP_HEIGHT)

    return render(A4, draw, title=title, subject="払込票")


def _cut_line(canvas: Canvas, y: float) -> None:
    canvas.saveState()
    canvas.setLineWidth(0.4)
    canvas.setDash(3, 3)
    canvas.line(12, y, PAGE_WIDTH - 12, y)
    canvas.restoreState()
    draw_text(canvas, PAGE_WIDTH - 14, y + 3, "切り取り線", GOTHIC, 6, "right")


def _draw_slip(canvas: Canvas, s: PrintedSlip, top: float) -> None:
    left, right = MARGIN, PAGE_WIDTH - MARGIN
    width = right - left

    # Title and bill number.
    draw_text(canvas, left, top - 30, "払込票", GOTHIC_BOLD, 15)
    number = truncate(f"請求番号　{s.bill_no}", GOTHIC, 9, width / 2)
    draw_text(canvas, right, top - 28, number, GOTHIC, 9, "right")

    # Who collects, who pays.
    label = "収納企業　"
    draw_text(canvas, left, top - 50, label, GOTHIC, 9)
    room = width * 0.62 - text_width(label, GOTHIC, 9)
    draw_text(canvas, left + text_width(label, GOTHIC, 9), top - 50,
              truncate(s.biller_name, GOTHIC, 10.5, room), GOTHIC, 10.5)  # fmt: skip
    name = s.customer_name.strip() if s.customer_name and s.customer_name.strip() else None
    addressee = truncate(name, GOTHIC, 12, width * 0.55) + "　様" if name else "お客様"
    draw_text(canvas, left, top - 70, addressee, GOTHIC, 12)
    if s.customer_no:
        shown = truncate(f"顧客番号　{s.customer_no}", GOTHIC, 9, width * 0.4)
        draw_text(canvas, right, top - 70, shown, GOTHIC, 9, "right")

    # The amount and the due date, in a box.
    box_top, box_height = top - 80, 40.0
    canvas.setLineWidth(1.0)
    canvas.rect(left, box_top - box_height, width, box_height)
    draw_text(canvas, left + 8, box_top - 25, "ご請求金額", GOTHIC, 10)
    asked = yen(s.amount) if s.amount_range is None else "〜".join(map(yen, s.amount_range))
    draw_text(canvas, left + 80, box_top - 28, asked, GOTHIC_BOLD, 20)
    if s.tax_amount:
        after = left + 86 + text_width(asked, GOTHIC_BOLD, 20)
        draw_text(canvas, after, box_top - 27, f"（うち消費税等 {yen(s.tax_amount)}）", GOTHIC, 8)
    due = jst_date(s.due_date) if s.due_date else "期限なし"
    draw_text(canvas, right - 8, box_top - 16, "お支払期限", GOTHIC, 8.5, "right")
    draw_text(canvas, right - 8, box_top - 32, due, GOTHIC_BOLD, 12, "right")

    # What it is for.
    y = box_top - box_height - 13
    if s.description and s.description.strip():
        for line in fit_lines(f"内容　{s.description.strip()}", GOTHIC, 8.5, width, 2):
            draw_text(canvas, left, y, line, GOTHIC, 8.5)
            y -= 11

    # The convenience-store barcode, left; the Pay-easy numbers, right.
    section_top = top - 150
    split = left + (QUIET * 2 + 288) * MODULE + 14  # 288 modules: the 44-digit symbol
    _draw_barcode(canvas, s, left, section_top, split - left - 14)
    if s.payeasy is not None:
        _draw_payeasy(canvas, s.payeasy, split, section_top, right - split)

    draw_text(canvas, left, top - SLIP_HEIGHT + 14, EXPIRY_NOTE, GOTHIC, 7.5)


def _draw_barcode(canvas: Canvas, s: PrintedSlip, x: float, top: float, width: float) -> None:
    draw_text(canvas, x, top, "コンビニエンスストアでのお支払い", GOTHIC_BOLD, 9)
    if s.barcode is None:
        draw_text(canvas, x, top - 20, truncate(NO_CVS, GOTHIC, 8, width), GOTHIC, 8)
        return
    bars_top = top - 8
    canvas.saveState()
    canvas.setFillColorRGB(0, 0, 0)
    at = x + QUIET * MODULE
    for index, modules in enumerate(code128_gs1_modules(s.barcode)):
        if index % 2 == 0:  # bar, space, bar, …: the spaces are the white paper
            canvas.rect(at, bars_top - BAR_HEIGHT, modules * MODULE, BAR_HEIGHT, stroke=0, fill=1)
        at += modules * MODULE
    canvas.restoreState()
    symbol_width = (at - x) + QUIET * MODULE
    text = s.human_readable or s.barcode
    size = 7.0
    while size > 4 and text_width(text, MONO, size) > symbol_width:
        size -= 0.5
    draw_text(canvas, x + symbol_width / 2, bars_top - BAR_HEIGHT - 9, text, MONO, size, "center")
    if s.chains:
        shown = truncate("お取扱いコンビニ：" + "、".join(s.chains), GOTHIC, 7.5, width)
        draw_text(canvas, x, bars_top - BAR_HEIGHT - 22, shown, GOTHIC, 7.5)


def _draw_payeasy(
    canvas: Canvas, numbers: PayEasyNumbers, x: float, top: float, width: float
) -> None:
    draw_text(canvas, x, top, "ペイジー（Pay-easy）でのお支払い", GOTHIC_BOLD, 9)
    rows = (
        ("収納機関番号", numbers.institution_code),
        ("お客様番号", numbers.customer_number),
        ("確認番号", numbers.confirmation_number),
    )
    canvas.setLineWidth(0.6)
    row_height = 16.0
    box_top = top - 8
    canvas.rect(x, box_top - row_height * len(rows), width, row_height * len(rows))
    label_width = 68.0
    for i, (label, value) in enumerate(rows):
        y = box_top - row_height * (i + 1)
        if i:
            canvas.line(x, y + row_height, x + width, y + row_height)
        draw_text(canvas, x + 5, y + 5, label, GOTHIC, 8)
        shown = truncate(value, NUMBERS, 11, width - label_width - 8)
        draw_text(canvas, x + label_width, y + 4.5, shown, NUMBERS, 11)
    note = "ATM・ネットバンキングで上記の番号を入力してください。"
    draw_text(canvas, x, box_top - row_height * len(rows) - 11,
              truncate(note, GOTHIC, 7, width), GOTHIC, 7)  # fmt: skip
