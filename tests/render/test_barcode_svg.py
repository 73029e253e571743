"""GS1-128 as SVG (gateway/render/barcode_svg.py): Code 128 tables by hand, then a real reader.

The reader test renders each SVG with ``rsvg-convert`` (Debian librsvg2-bin) and decodes the PNG
with ``zbarimg`` (Debian zbar-tools). What zbarimg 0.23 reports for our symbols:

* ``zbarimg --raw -q`` prints the data alone, ``9191…`` + newline: no ``]C1`` symbology
  identifier and no GS (0x1D) character, since FNC1 in first position is not data and AI 91 is
  the only (last) element string.
* ``zbarimg --xml`` prints ``<symbol type='CODE-128' … modifiers='GS1'>``: the leading FNC1 is
  visible only as the ``GS1`` modifier. A plain Code 128 symbol of the same digits has no such
  modifier (checked below), so that assertion is what proves the FNC1 is there.

zbarimg does not read these symbols at 1 px per module (the SVG itself is fine: rendered at
zoom 2 it decodes); the tests use the default 2 px.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from gateway.mappers.cvs.barcode import parse
from gateway.render import barcode_svg as module
from gateway.render.barcode_svg import (
    FNC1,
    START_C,
    STOP,
    barcode_svg,
    check_symbol,
    code128_gs1_modules,
    gs1_128_symbol_values,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cvs"
VALID: list[dict[str, Any]] = json.loads((FIXTURES / "barcodes.json").read_text("utf-8"))["valid"]
SVG = "{http://www.w3.org/2000/svg}"
ZBAR = "{http://zbar.sourceforge.net/2008/barcode}"
GUIDELINE_1 = "91912345012345678901234567890101033101230003"


# --- Code 128 symbol values and widths, from the tables by hand ---------------------------------


def test_shortest_symbol_by_hand() -> None:
    # "91": Start C (105), FNC1 (102), 91, check = (105 + 1*102 + 2*91) mod 103 = 389 mod 103
    # = 389 - 3*103 = 80, Stop (106).
    assert (START_C, FNC1, STOP) == (105, 102, 106)
    assert gs1_128_symbol_values("91") == [105, 102, 91, 80, 106]
    # ISO/IEC 15417 Table 1: 105 = 211232, 102 = 411131, 91 = 412121, 80 = 111242,
    # Stop = 2331112 (with the termination bar).
    assert code128_gs1_modules("91") == [
        *(2, 1, 1, 2, 3, 2),
        *(4, 1, 1, 1, 3, 1),
        *(4, 1, 2, 1, 2, 1),
        *(1, 1, 1, 2, 4, 2),
        *(2, 3, 3, 1, 1, 1, 2),
    ]


def test_guideline_vector_by_hand() -> None:
    pairs = [91, 91, 23, 45, 1, 23, 45, 67, 89, 1, 23, 45, 67, 89, 1, 1, 3, 31, 1, 23, 0, 3]
    weighted = (
        105
        + 1 * 102
        + 2 * 91 + 3 * 91 + 4 * 23 + 5 * 45 + 6 * 1 + 7 * 23 + 8 * 45 + 9 * 67 + 10 * 89
        + 11 * 1 + 12 * 23 + 13 * 45 + 14 * 67 + 15 * 89 + 16 * 1 + 17 * 1 + 18 * 3 + 19 * 31
        + 20 * 1 + 21 * 23 + 22 * 0 + 23 * 3
    )  # fmt: skip
    assert weighted == 7392
    assert 7392 - 71 * 103 == 79
    assert gs1_128_symbol_values(GUIDELINE_1) == [105, 102, *pairs, 79, 106]
    assert check_symbol([105, 102, *pairs]) == 79


def test_44_digits_make_288_modules() -> None:
    # Start + FNC1 + 22 pairs + check = 25 symbols of 11 modules, Stop 13.
    for vector in VALID:
        widths = code128_gs1_modules(vector["barcode"])
        assert sum(widths) == 25 * 11 + 13 == 288
        assert len(widths) == 25 * 6 + 7
        assert set(widths) <= {1, 2, 3, 4}


@pytest.mark.parametrize(
    ("digits", "problem"),
    [
        ("919", "even number of digits, got 3 digits"),
        (GUIDELINE_1[:43], "even number of digits, got 43 digits"),
        ("", "must not be empty"),
        ("91 1", "ASCII digits 0-9 only"),
        ("9A", "ASCII digits 0-9 only"),
        ("９１", "ASCII digits 0-9 only"),
        ("91\n", "ASCII digits 0-9 only"),
        ("9" * 50, "at most 48 data characters, got 50"),
    ],
)
def test_refuses_what_code_set_c_cannot_carry(digits: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        code128_gs1_modules(digits)
    with pytest.raises(ValueError, match=re.escape(problem)):
        barcode_svg(digits)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"module_width": 0}, "module_width must be a positive"),
        ({"module_width": float("nan")}, "module_width must be a positive"),
        ({"height": -1}, "height must be a positive"),
        ({"quiet_zone": -1}, "quiet_zone must be 0 or more"),
        ({"human_readable": "a\x00b"}, "control character"),
    ],
)
def test_refuses_bad_geometry_and_text(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        barcode_svg(GUIDELINE_1, **kwargs)


# --- The SVG document ---------------------------------------------------------------------------


def _bars(root: ET.Element) -> list[ET.Element]:
    group = root.find(f"{SVG}g")
    assert group is not None
    return group.findall(f"{SVG}rect")


def test_svg_geometry_matches_the_modules() -> None:
    widths = code128_gs1_modules(GUIDELINE_1)
    root = ET.fromstring(barcode_svg(GUIDELINE_1, module_width=2, height=80, quiet_zone=10))
    assert root.tag == f"{SVG}svg"
    assert root.get("width") == str((288 + 20) * 2) == "616"
    assert root.get("height") == "80"
    assert root.get("viewBox") == "0 0 616 80"
    background = root.find(f"{SVG}rect")
    assert background is not None
    assert (background.get("width"), background.get("height")) == ("616", "80")
    assert background.get("fill") == "#ffffff"
    bars = _bars(root)
    assert [float(b.get("width", "")) for b in bars] == [2.0 * w for w in widths[::2]]
    assert float(bars[0].get("x", "")) == 20.0  # the left quiet zone: 10 modules of 2
    right_edge = float(bars[-1].get("x", "")) + float(bars[-1].get("width", ""))
    assert right_edge == 616 - 20
    assert {b.get("height") for b in bars} == {"80"}
    assert root.find(f"{SVG}text") is None


def test_svg_accessibility_and_text() -> None:
    text = parse(GUIDELINE_1).human_readable()
    root = ET.fromstring(barcode_svg(GUIDELINE_1, human_readable=text))
    assert root.get("role") == "img"
    assert root.get("aria-label") == f"GS1-128 barcode {text}"
    line = root.find(f"{SVG}text")
    assert line is not None
    assert line.text == text
    assert line.get("font-family") == "monospace"
    assert float(line.get("y", "")) > 80 and float(root.get("height", "")) > 80
    plain = ET.fromstring(barcode_svg(GUIDELINE_1))
    assert plain.get("aria-label") == f"GS1-128 barcode {GUIDELINE_1}"


def test_svg_escapes_the_text() -> None:
    text = "<b>&\"'</b>"
    root = ET.fromstring(barcode_svg("91", human_readable=text))
    line = root.find(f"{SVG}text")
    assert line is not None and line.text == text
    assert root.get("aria-label") == f"GS1-128 barcode {text}"


@pytest.mark.parametrize("vector", VALID, ids=[v["name"] for v in VALID])
def test_svg_is_standalone(vector: dict[str, Any]) -> None:
    svg = barcode_svg(vector["barcode"], human_readable=parse(vector["barcode"]).human_readable())
    ET.fromstring(svg)  # well-formed
    assert re.findall(r"https?://[^\"'\s>]*", svg, re.IGNORECASE) == ["http://www.w3.org/2000/svg"]
    for external in ("href", "<image", "<style", "url(", "@import", "<script"):
        assert external not in svg


# --- A real reader: rsvg-convert + zbarimg ------------------------------------------------------


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: install the Debian package {package}")
    return path


def _render(svg: str, tmp_path: Path, name: str) -> Path:
    rsvg = _tool("rsvg-convert", "librsvg2-bin")
    svg_file, png_file = tmp_path / f"{name}.svg", tmp_path / f"{name}.png"
    svg_file.write_text(svg, "utf-8")
    subprocess.run([rsvg, "-o", str(png_file), str(svg_file)], check=True, timeout=30)
    return png_file


def _zbar(png: Path, *args: str) -> str:
    zbarimg = _tool("zbarimg", "zbar-tools")
    result = subprocess.run(
        [zbarimg, "-q", *args, str(png)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, f"zbarimg read nothing (exit {result.returncode})"
    return result.stdout


def _read(png: Path) -> tuple[str, list[tuple[str | None, str | None]]]:
    """The raw data zbarimg prints, and (type, modifiers) of every symbol it found."""
    raw = _zbar(png, "--raw")
    root = ET.fromstring(_zbar(png, "--xml"))
    symbols = [(s.get("type"), s.get("modifiers")) for s in root.iter(f"{ZBAR}symbol")]
    return raw, symbols


@pytest.mark.parametrize("human", [False, True], ids=["bars", "with-text"])
@pytest.mark.parametrize("vector", VALID, ids=[v["name"] for v in VALID])
def test_zbarimg_reads_every_fixture(vector: dict[str, Any], human: bool, tmp_path: Path) -> None:
    digits = vector["barcode"]
    text = parse(digits).human_readable() if human else None
    raw, symbols = _read(_render(barcode_svg(digits, human_readable=text), tmp_path, "b"))
    assert raw == digits + "\n"
    assert symbols == [("CODE-128", "GS1")]


def test_zbarimg_reads_every_code_set_c_value(tmp_path: Path) -> None:
    # The fixtures use only some of the 100 pair values: read all of them, 20 pairs a symbol.
    every_pair = "".join(f"{v:02d}" for v in range(100))
    for start in range(0, 200, 40):
        digits = every_pair[start : start + 40]
        raw, symbols = _read(_render(barcode_svg(digits), tmp_path, f"all{start}"))
        assert raw == digits + "\n"
        assert symbols == [("CODE-128", "GS1")]


def test_zbarimg_reads_a_wider_module(tmp_path: Path) -> None:
    svg = barcode_svg(GUIDELINE_1, module_width=3, height=60, quiet_zone=12)
    raw, symbols = _read(_render(svg, tmp_path, "wide"))
    assert raw == GUIDELINE_1 + "\n"
    assert symbols == [("CODE-128", "GS1")]


def test_without_fnc1_zbarimg_reports_no_gs1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: the GS1 modifier asserted above really comes from our FNC1."""

    def plain_code128(digits: str) -> list[int]:
        values = [START_C] + [int(digits[i : i + 2]) for i in range(0, len(digits), 2)]
        return [*values, check_symbol(values), STOP]

    monkeypatch.setattr(module, "gs1_128_symbol_values", plain_code128)
    raw, symbols = _read(_render(barcode_svg(GUIDELINE_1), tmp_path, "plain"))
    assert raw == GUIDELINE_1 + "\n"
    assert symbols == [("CODE-128", None)]
