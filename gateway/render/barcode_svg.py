"""GS1-128 (Code 128 with FNC1) for the 44-digit payment barcode, drawn as a standalone SVG.

The symbol is ``Start C, FNC1, d1d2, d3d4, …, check, Stop``: every pair of digits is one code
set C symbol (value 0-99), and the check symbol is ``(105 + Σ i·value_i) mod 103`` over the
symbols after Start C, FNC1 being position 1 (ISO/IEC 15417 §4.4.2; GS1 General Specifications
§5.4). Only even-length digit strings are accepted, so no code set change is ever needed; the
44-digit barcodes of :mod:`gateway.mappers.cvs.barcode` (AI 91) are what this is for.

Pure functions: standard library only, no I/O. The SVG has no external reference (no font
file, no image, no stylesheet); its only URL is the SVG namespace.
"""

from __future__ import annotations

import math
import re
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "FNC1",
    "MAX_DATA_DIGITS",
    "START_C",
    "STOP",
    "barcode_svg",
    "check_symbol",
    "code128_gs1_modules",
    "gs1_128_symbol_values",
]

START_C = 105
FNC1 = 102
STOP = 106
MAX_DATA_DIGITS = 48  # GS1 General Specifications §5.4.1: at most 48 data characters
SVG_NS = "http://www.w3.org/2000/svg"

# Bar/space widths (in modules) of Code 128 symbol values 0-106, bar first (ISO/IEC 15417
# Table 1). Each symbol is 11 modules; Stop (106) has a seventh element, the 2-module
# termination bar, and is 13.
_PATTERNS: tuple[str, ...] = (
    "212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312", "132212",
    "221213", "221312", "231212", "112232", "122132", "122231", "113222", "123122", "123221",
    "223211", "221132", "221231", "213212", "223112", "312131", "311222", "321122", "321221",
    "312212", "322112", "322211", "212123", "212321", "232121", "111323", "131123", "131321",
    "112313", "132113", "132311", "211313", "231113", "231311", "112133", "112331", "132131",
    "113123", "113321", "133121", "313121", "211331", "231131", "213113", "213311", "213131",
    "311123", "311321", "331121", "312113", "312311", "332111", "314111", "221411", "431111",
    "111224", "111422", "121124", "121421", "141122", "141221", "112214", "112412", "122114",
    "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111", "111242",
    "121142", "121241", "114212", "124112", "124211", "411212", "421112", "421211", "212141",
    "214121", "412121", "111143", "111341", "131141", "114113", "114311", "411113", "411311",
    "113141", "114131", "311141", "411131", "211412", "211214", "211232", "2331112",
)  # fmt: skip

_DIGITS = re.compile(r"[0-9]*")
_XML_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _check_digits(digits: str) -> None:
    """Refuse what code set C cannot carry as GS1-128 data."""
    if not isinstance(digits, str) or not _DIGITS.fullmatch(digits):
        raise ValueError(f"GS1-128 data must be ASCII digits 0-9 only, got {digits!r}")
    if not digits:
        raise ValueError("GS1-128 data must not be empty")
    if len(digits) % 2:
        raise ValueError(
            f"GS1-128 code set C needs an even number of digits, got {len(digits)} digits"
        )
    if len(digits) > MAX_DATA_DIGITS:
        raise ValueError(
            f"GS1-128 carries at most {MAX_DATA_DIGITS} data characters, got {len(digits)}"
        )


def check_symbol(values: list[int]) -> int:
    """The Code 128 modulo-103 check value of ``values`` (the start symbol first): the start
    value plus every following value times its position (1, 2, …), modulo 103."""
    return (values[0] + sum(i * v for i, v in enumerate(values) if i > 0)) % 103


def gs1_128_symbol_values(digits: str) -> list[int]:
    """The symbol values of the whole GS1-128 symbol: Start C, FNC1, one value per digit pair,
    the check value and Stop. Raises ``ValueError`` on anything but 2-48 digits, evenly many."""
    _check_digits(digits)
    values = [START_C, FNC1] + [int(digits[i : i + 2]) for i in range(0, len(digits), 2)]
    return [*values, check_symbol(values), STOP]


def code128_gs1_modules(digits: str) -> list[int]:
    """Bar and space widths, in modules, of the GS1-128 symbol for ``digits``.

    The list alternates bar, space, bar, … and starts and ends with a bar; quiet zones are not
    included. Raises ``ValueError`` like :func:`gs1_128_symbol_values`.
    """
    return [int(w) for value in gs1_128_symbol_values(digits) for w in _PATTERNS[value]]


def _num(x: float) -> str:
    """A coordinate for the SVG: at most 4 decimals, no trailing zeros."""
    text = f"{x:.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _check_geometry(module_width: float, height: float, quiet_zone: int) -> None:
    for name, value in (("module_width", module_width), ("height", height)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if quiet_zone < 0:
        raise ValueError(f"quiet_zone must be 0 or more modules, got {quiet_zone}")


def _check_text(human_readable: str | None) -> None:
    if human_readable is not None and _XML_FORBIDDEN.search(human_readable):
        raise ValueError(f"human_readable has a control character: {human_readable!r}")


def _bar_rects(widths: list[int], x0: float, module_width: float, height: float) -> list[str]:
    """One ``<rect>`` per bar; spaces are the white background showing through."""
    rects: list[str] = []
    x = x0
    for index, width in enumerate(widths):
        if index % 2 == 0:
            rects.append(
                f'<rect x="{_num(x)}" y="0" width="{_num(width * module_width)}" '
                f'height="{_num(height)}"/>'
            )
        x += width * module_width
    return rects


def barcode_svg(
    digits: str,
    *,
    module_width: float = 2,
    height: float = 80,
    quiet_zone: int = 10,
    human_readable: str | None = None,
) -> str:
    """A standalone SVG document of the GS1-128 symbol for ``digits``.

    ``module_width`` is the narrowest bar in SVG user units (px), ``height`` the bars' height,
    ``quiet_zone`` the white margin on each side in modules (Code 128 asks for at least 10).
    ``human_readable``, when given, is printed centred under the bars in a generic monospace
    font, e.g. :meth:`gateway.mappers.cvs.barcode.Barcode.human_readable`. The ``aria-label``
    names the symbology and the text (or the digits). Raises ``ValueError`` on bad digits or
    geometry.
    """
    widths = code128_gs1_modules(digits)
    _check_geometry(module_width, height, quiet_zone)
    _check_text(human_readable)
    total_width = (sum(widths) + 2 * quiet_zone) * module_width
    font_size = 7 * module_width
    text_band = 0 if human_readable is None else font_size * 1.6
    total_height = height + text_band
    label = f"GS1-128 barcode {human_readable if human_readable is not None else digits}"
    w, h = _num(total_width), _num(total_height)
    lines = [
        f'<svg xmlns="{SVG_NS}" version="1.1" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'role="img" aria-label={quoteattr(label)}>',
        f'<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>',
        '<g fill="#000000" shape-rendering="crispEdges">',
        *_bar_rects(widths, quiet_zone * module_width, module_width, height),
        "</g>",
    ]
    if human_readable is not None:
        lines.append(
            f'<text x="{_num(total_width / 2)}" y="{_num(height + font_size * 1.2)}" '
            f'font-family="monospace" font-size="{_num(font_size)}" text-anchor="middle" '
            f'fill="#000000">{escape(human_readable)}</text>'
        )
    lines.append("</svg>")
    return "\n".join(lines) + "\n"
