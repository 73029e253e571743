"""Pure PDF building blocks for Japanese documents (e-receipts, settlement statements).

Everything here draws on a ReportLab canvas or formats values; nothing reads a file, a clock or the
network, and :func:`render` hands back ``bytes``.

Fonts. Japanese text uses ReportLab's built-in CID fonts (``HeiseiKakuGo-W5``, ``HeiseiMin-W3``,
encoding ``UniJIS-UCS2-H``): no font file is needed to write the PDF, and the fonts are *not*
embedded, so the viewer supplies Japanese glyphs (every Japanese-capable viewer does). Latin text
(ASCII, Latin-1 with ``¥``, and ``…``) is drawn in a standard PDF font (Helvetica or Times)
instead, because some fallback CJK fonts have no Latin glyphs and would show amounts and numbers
as boxes. A :class:`Face` pairs the two; :func:`draw_text` splits a string into runs accordingly.

Characters that ``UniJIS-UCS2-H`` cannot express (outside the Basic Multilingual Plane, e.g. 𠮷 or
emoji) are printed as the geta mark ``〓``, as Japanese systems print unrepresentable characters;
control characters become spaces.

Determinism: :func:`render` builds the canvas with ``invariant=1`` (fixed dates and document id), so
the same input gives the same bytes.

Tables: :func:`draw_table` draws single-line rows (each cell cut with ``…`` to its column width) and
starts a new page, with the column header again, whenever the next row would cross ``bottom``.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Literal

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

from gateway.model import JST, business_date

Align = Literal["left", "right", "center"]

CID_FONTS = ("HeiseiKakuGo-W5", "HeiseiMin-W3")
ELLIPSIS = "…"
GETA = "〓"  # the conventional stand-in for a character the font cannot show

# Characters that may not begin a line (a minimal 行頭禁則): closing brackets and punctuation.
_NO_LINE_START = frozenset(
    "、。，．,.)）]］｝〕〉》」』】〙〗ー・：；？！!?"  # closing brackets, punctuation
    "ゝゞヽヾぁぃぅぇぉっゃゅょァィゥェォッャュョ"  # iteration marks, small kana
)


@dataclass(frozen=True)
class Face:
    """A typeface for mixed text: ``cjk`` for Japanese, ``latin`` for ASCII and Latin-1."""

    cjk: str
    latin: str


GOTHIC = Face("HeiseiKakuGo-W5", "Helvetica")
GOTHIC_BOLD = Face("HeiseiKakuGo-W5", "Helvetica-Bold")
MINCHO = Face("HeiseiMin-W3", "Times-Roman")


@cache
def register_fonts() -> None:
    """Register the CID fonts with ReportLab, once per process (the helpers here call it)."""
    registered = set(pdfmetrics.getRegisteredFontNames())
    for name in CID_FONTS:
        if name not in registered:
            pdfmetrics.registerFont(UnicodeCIDFont(name))


# --- values ------------------------------------------------------------------------------------


def yen(amount: int) -> str:
    """``5400`` → ``"¥5,400"``; a negative amount → ``"-¥1,200"``. Amounts are int yen."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"amount must be int yen, not {type(amount).__name__}")
    sign = "-" if amount < 0 else ""
    return f"{sign}¥{abs(amount):,}"


def jst_date(value: date | datetime) -> str:
    """``"2026年12月1日"``: a ``date`` as it is, an aware ``datetime`` as its JST business date.

    A naive ``datetime`` raises ``ValueError``.
    """
    day = business_date(value) if isinstance(value, datetime) else value
    return f"{day.year}年{day.month}月{day.day}日"


def jst_datetime(at: datetime) -> str:
    """``"2026年12月1日 08:30"`` in JST. A naive ``datetime`` raises ``ValueError``."""
    day = jst_date(at)  # refuses a naive datetime before astimezone() would guess its zone
    return f"{day} {at.astimezone(JST):%H:%M}"


# --- text --------------------------------------------------------------------------------------


def clean(text: str) -> str:
    """``text`` as the CID fonts can print it: controls → space, beyond the BMP → ``〓``."""
    out = []
    for ch in text:
        if ord(ch) > 0xFFFF:
            out.append(GETA)
        elif unicodedata.category(ch) == "Cc":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _is_latin(ch: str) -> bool:
    code = ord(ch)
    return 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF or ch == ELLIPSIS


def runs(text: str, face: Face) -> list[tuple[str, str]]:
    """``text`` split into ``(font name, piece)`` runs of one font each."""
    out: list[tuple[str, str]] = []
    for ch in clean(text):
        font = face.latin if _is_latin(ch) else face.cjk
        if out and out[-1][0] == font:
            out[-1] = (font, out[-1][1] + ch)
        else:
            out.append((font, ch))
    return out


def text_width(text: str, face: Face, size: float) -> float:
    """The width of ``text`` in points, as :func:`draw_text` draws it."""
    register_fonts()
    return float(sum(pdfmetrics.stringWidth(piece, font, size) for font, piece in runs(text, face)))


def draw_text(
    canvas: Canvas,
    x: float,
    y: float,
    text: str,
    face: Face,
    size: float,
    align: Align = "left",
) -> float:
    """Draw ``text`` with its baseline at ``y``; ``x`` is its left, right or centre edge.

    Returns the width drawn.
    """
    width = text_width(text, face, size)
    if align == "right":
        x -= width
    elif align == "center":
        x -= width / 2
    for font, piece in runs(text, face):
        canvas.setFont(font, size)
        canvas.drawString(x, y, piece)
        x += pdfmetrics.stringWidth(piece, font, size)
    return width


def truncate(text: str, face: Face, size: float, width: float) -> str:
    """``text`` if it fits ``width``, else its longest prefix that fits with ``…`` appended."""
    text = clean(text)
    if text_width(text, face, size) <= width:
        return text
    cut = len(text)
    while cut > 0 and text_width(text[:cut].rstrip() + ELLIPSIS, face, size) > width:
        cut -= 1
    return text[:cut].rstrip() + ELLIPSIS if cut else ""


def wrap(text: str, face: Face, size: float, width: float) -> list[str]:
    """Break ``text`` into lines no wider than ``width``.

    Japanese breaks between any two characters; a run of ASCII non-space characters (a word, a
    bill number) is kept whole when the line holds a space to break at; a closing bracket or
    punctuation mark is not left at the start of a line (it takes the previous character with
    it). Newlines are kept.
    """
    lines: list[str] = []
    for paragraph in text.replace("\r\n", "\n").split("\n"):
        lines.extend(_wrap_paragraph(clean(paragraph), face, size, width))
    return lines


def _wrap_paragraph(text: str, face: Face, size: float, width: float) -> list[str]:
    lines: list[str] = []
    line = ""
    for ch in text:
        if not line or text_width(line + ch, face, size) <= width:
            line += ch
            continue
        head, tail = _break(line, ch)
        lines.append(head.rstrip())
        line = (tail + ch).lstrip()
    if line or not lines:
        lines.append(line.rstrip())
    return lines


def _break(line: str, nxt: str) -> tuple[str, str]:
    """Where to end ``line`` when ``nxt`` no longer fits: ``(kept, carried to the next line)``."""
    if _in_latin_word(nxt) and _in_latin_word(line[-1]):
        space = line.rfind(" ")
        if space > 0:
            return line[: space + 1], line[space + 1 :]
    if nxt in _NO_LINE_START and len(line) > 1:
        return line[:-1], line[-1]
    return line, ""


def _in_latin_word(ch: str) -> bool:
    return ch.isascii() and ch.isprintable() and not ch.isspace()


def fit_lines(text: str, face: Face, size: float, width: float, max_lines: int) -> list[str]:
    """:func:`wrap`, keeping at most ``max_lines``: the rest is run into the last line, which is
    cut with ``…`` where it no longer fits."""
    lines = wrap(text, face, size, width)
    while len(lines) > 1 and not lines[-1]:
        lines.pop()  # trailing newlines are not text to lose
    if len(lines) <= max_lines:
        return lines
    kept = lines[:max_lines]
    kept[-1] = truncate(kept[-1] + "".join(lines[max_lines:]), face, size, width)
    return kept


# --- tables ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A table column: header ``title``, ``width`` in points, alignment and an optional face."""

    title: str
    width: float
    align: Align = "left"
    face: Face | None = None


@dataclass(frozen=True)
class TableStyle:
    """How :func:`draw_table` draws: fonts, size and row height in points, header and rules."""

    face: Face = GOTHIC
    size: float = 9.0
    header_face: Face = GOTHIC_BOLD
    row_height: float = 15.0
    padding: float = 4.0
    header: bool = True  # draw the column titles (again on every page)
    rules: bool = True  # a thin line under every row


def draw_table(
    canvas: Canvas,
    rows: Iterable[Sequence[str]],
    *,
    columns: Sequence[Column],
    x: float,
    top: float,
    bottom: float,
    style: TableStyle = TableStyle(),  # frozen: sharing it is safe
    new_page: Callable[[Canvas], float] | None = None,
) -> float:
    """Draw ``rows`` from ``top`` downwards and return the y just below the last row.

    When the next row would go below ``bottom`` the page is finished (``canvas.showPage()``),
    ``new_page(canvas)`` draws the next page's own furniture and returns where the table goes on
    (``top`` again without it), and the header is repeated. Each cell is one line, cut with ``…``
    to its column's width. A row with a different number of cells than ``columns`` is a
    ``ValueError``, as is a ``top``/``bottom`` too close to hold a header and one row.
    """
    if not columns:
        raise ValueError("a table needs at least one column")
    table_width = sum(c.width for c in columns)
    header_height = style.row_height if style.header else 0.0
    if top - bottom < header_height + style.row_height:
        raise ValueError("the space between top and bottom cannot hold a row")

    def rule(y: float, weight: float) -> None:
        canvas.setLineWidth(weight)
        canvas.line(x, y, x + table_width, y)

    def draw_row(y: float, cells: Sequence[str], header: bool) -> float:
        baseline = y - style.row_height + (style.row_height - style.size) / 2 + style.size * 0.15
        left = x
        for column, cell in zip(columns, cells, strict=True):
            face = style.header_face if header else (column.face or style.face)
            inner = column.width - 2 * style.padding
            shown = truncate(cell, face, style.size, inner)
            if column.align == "right":
                at = left + column.width - style.padding
            elif column.align == "center":
                at = left + column.width / 2
            else:
                at = left + style.padding
            draw_text(canvas, at, baseline, shown, face, style.size, column.align)
            left += column.width
        y -= style.row_height
        if header:
            rule(y, 0.8)
        elif style.rules:
            rule(y, 0.25)
        return y

    def start(y: float) -> float:
        if style.header:
            rule(y, 0.8)
            y = draw_row(y, [c.title for c in columns], header=True)
        return y

    y = start(top)
    for number, cells in enumerate(rows, start=1):
        if len(cells) != len(columns):
            raise ValueError(f"row {number} has {len(cells)} cells for {len(columns)} columns")
        if y - style.row_height < bottom:
            canvas.showPage()
            page_top = new_page(canvas) if new_page is not None else top
            if page_top - bottom < header_height + style.row_height:
                raise ValueError("new_page left no room for a row above bottom")
            y = start(page_top)
        y = draw_row(y, cells, header=False)
    return y


# --- documents ---------------------------------------------------------------------------------


def render(
    pagesize: tuple[float, float],
    draw: Callable[[Canvas], None],
    *,
    title: str,
    subject: str = "",
) -> bytes:
    """Run ``draw`` on a fresh canvas and return the PDF's bytes.

    ``draw`` calls ``canvas.showPage()`` only *between* pages; the last page is finished here.
    The canvas is ``invariant``: the same drawing gives the same bytes.
    """
    register_fonts()
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=pagesize, invariant=1, pageCompression=1)
    canvas.setTitle(title)
    canvas.setSubject(subject)
    canvas.setAuthor("")
    canvas.setCreator("collection-gateway")
    draw(canvas)
    canvas.save()
    return buffer.getvalue()
