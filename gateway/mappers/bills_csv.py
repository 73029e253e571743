"""Bulk bill files (spec/merchant-api.md, "Bulk registration"): CSV bytes ⇄ rows.

A file is UTF-8 (with or without a BOM) or Shift_JIS (read as CP932, the Windows superset that
Excel writes); a ``charset`` the sender names is obeyed, otherwise valid UTF-8 wins. The first
row names the columns (any order, any case); then one bill per row. Rows are numbered as a
spreadsheet shows them: the header is row 1. A row whose cells are all empty is skipped.

This module only reads and writes the file: each row becomes the same JSON-like document
``POST /v1/bills`` takes, and the rules are the API's (gateway.billing.bills.parse_bill_request).
A bill whose amount the payer chooses (``amount: null`` with ``min_amount`` and ``max_amount``)
is a row with an empty ``amount`` cell and a bound in ``min_amount`` or ``max_amount``: both
columns are optional, so files written before them are read as they were.

Pure: bytes in, frozen values or :class:`~gateway.errors.FileErrors` out (every problem that
stops the file from being read at all: its encoding, its header).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from gateway.errors import FileErrors, RecordError
from gateway.mappers import csv_cells

NETWORK = "bills"  # RecordError.network of this file kind

# The columns of a bill row, in the order the documentation and the result file list them.
COLUMNS = (
    "bill_no",
    "amount",
    "min_amount",
    "max_amount",
    "due_date",
    "channels",
    "customer_no",
    "name",
    "kana",
    "email",
    "phone",
    "description",
    "taxable",
    "tax_amount",
)
REQUIRED = ("bill_no", "amount", "due_date", "channels")
PAYER_RANGE = ("min_amount", "max_amount")  # with an empty amount: the payer chooses it
CUSTOMER = ("customer_no", "name", "kana", "email", "phone")

# What the sender may name in ``charset=``, and the codec that reads it.
UTF8, SHIFT_JIS = "utf-8", "shift_jis"
_CHARSETS = {
    "utf-8": UTF8,
    "utf8": UTF8,
    "shift_jis": SHIFT_JIS,
    "shift-jis": SHIFT_JIS,
    "sjis": SHIFT_JIS,
    "x-sjis": SHIFT_JIS,
    "cp932": SHIFT_JIS,
    "windows-31j": SHIFT_JIS,
    "ms932": SHIFT_JIS,
}
_CODEC = {UTF8: "utf-8-sig", SHIFT_JIS: "cp932"}
_BLOCK = 1 << 20  # bytes read at a time to find a file's encoding

CHANNEL_SEPARATORS = re.compile(r"[;\s]+")  # "cvs;payeasy", "cvs payeasy", "cvs; payeasy"
_DIGITS = re.compile(r"[0-9]+")
_SLASH_DATE = re.compile(r"([0-9]{4})/([0-9]{1,2})/([0-9]{1,2})")
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def charset_name(charset: str) -> str | None:
    """``utf-8`` or ``shift_jis`` for a ``charset`` parameter the gateway reads, else None."""
    return _CHARSETS.get(charset.strip().strip('"').lower())


@dataclass(frozen=True)
class CsvRow:
    row: int  # as a spreadsheet numbers it: the header is row 1
    cells: dict[str, str]  # column -> trimmed cell, non-empty cells only
    problem: str | None = None  # the row cannot be read as a bill (its number of cells)


@dataclass(frozen=True)
class BillFile:
    encoding: str  # UTF8 or SHIFT_JIS, as read
    columns: tuple[str, ...]  # the header's columns, in the file's order
    rows: tuple[CsvRow, ...]


def _error(row: int, column: str, value: str, reason: str) -> RecordError:
    return RecordError(NETWORK, row, column, value, reason)


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def decode(data: bytes, charset: str | None, source: str = "file") -> tuple[str, str]:
    """``(text, encoding)``. ``charset`` (a name :func:`charset_name` knows) is obeyed; without
    it the file is UTF-8 when it decodes as UTF-8, else Shift_JIS (CP932)."""
    encoding = charset_name(charset) if charset else None
    if charset and encoding is None:
        raise ValueError(f"charset {charset!r} is not utf-8 or shift_jis")
    tried = [encoding] if encoding else [UTF8, SHIFT_JIS]
    for name in tried:
        try:
            return data.decode(_CODEC[name]), name
        except UnicodeDecodeError as e:
            failure = e
    what = f"is not valid {encoding}" if encoding else "is neither UTF-8 nor Shift_JIS (CP932)"
    bad = data[failure.start : failure.start + 2]
    row = _line_of(data, failure.start)
    raise FileErrors(
        source,
        [
            _error(
                row, "encoding", bad.hex(), f"the file {what}: byte 0x{bad[:1].hex()} on line {row}"
            )
        ],
    )


def read_bill_file(data: bytes, charset: str | None = None, source: str = "file") -> BillFile:
    """Decode and split a bulk file. Raises :class:`FileErrors` when it has no usable header,
    :class:`ValueError` for a ``charset`` the gateway does not read."""
    opened = open_bill_file(io.BytesIO(data), charset, source)
    return BillFile(opened.encoding, opened.columns, tuple(opened.rows))


@dataclass(frozen=True)
class BillRows:
    """A bulk file opened for reading row by row (:func:`open_bill_file`)."""

    encoding: str  # UTF8 or SHIFT_JIS, as read
    columns: tuple[str, ...]  # the header's columns, in the file's order
    rows: Iterator[CsvRow]  # read as they are asked for; FileErrors for a record not CSV


def sniff_encoding(stream: IO[bytes], charset: str | None, source: str = "file") -> str:
    """The file's encoding (as :func:`decode` chooses it), read block by block from the start of
    ``stream`` without holding its text. Raises as :func:`decode` does."""
    encoding = charset_name(charset) if charset else None
    if charset and encoding is None:
        raise ValueError(f"charset {charset!r} is not utf-8 or shift_jis")
    for name in [encoding] if encoding else [UTF8, SHIFT_JIS]:
        stream.seek(0)
        decoder = codecs.getincrementaldecoder(_CODEC[name])()
        try:
            while block := stream.read(_BLOCK):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return name
    stream.seek(0)
    decode(stream.read(), charset, source)  # refused: the error as a whole-file decode names it
    raise AssertionError("a file that decodes block by block decodes whole")  # pragma: no cover


def open_bill_file(stream: IO[bytes], charset: str | None = None, source: str = "file") -> BillRows:
    """:func:`read_bill_file` of a seekable binary file, its rows read as they are iterated (one
    block of text at a time): a large file is never held whole, as bytes, text or rows. The
    encoding is found first (one pass over the file), then the header read; both raise as
    :func:`read_bill_file` does, a record not readable as CSV raises :class:`FileErrors` when
    its row is reached. Reading again needs another call (the stream is read from its start)."""
    encoding = sniff_encoding(stream, charset, source)
    stream.seek(0)
    text = io.TextIOWrapper(stream, _CODEC[encoding], newline="")
    records = csv.reader(text)
    try:
        header = next(records, None)
        while header is not None and not any(c.strip() for c in header):
            header = None  # a file of blank lines is an empty file
        if header is None:
            raise FileErrors(
                source,
                [
                    _error(
                        1,
                        "header",
                        "",
                        "the file is empty: row 1 must name the columns, at least "
                        + ",".join(REQUIRED),
                    )
                ],
            )
        columns = _header(header, source)
    except csv.Error as e:
        text.detach()
        raise FileErrors(source, [_csv_error(records.line_num, e)]) from None
    except BaseException:
        text.detach()
        raise
    return BillRows(encoding, columns, _read_rows(text, records, columns, source))


def _csv_error(line: int, e: csv.Error) -> RecordError:
    return _error(line, "row", "", f"not readable as CSV: {e}")


def _read_rows(
    text: io.TextIOWrapper, records: Any, columns: tuple[str, ...], source: str
) -> Iterator[CsvRow]:
    try:
        yield from _rows(records, columns)
    except csv.Error as e:
        raise FileErrors(source, [_csv_error(records.line_num, e)]) from None
    finally:
        text.detach()  # the caller's stream stays open


def _header(cells: Sequence[str], source: str) -> tuple[str, ...]:
    names = tuple(c.strip().lower() for c in cells)
    errors = []
    for i, name in enumerate(names):
        if not name:
            if any(names[i + 1 :]):
                errors.append(_error(1, f"column {i + 1}", "", "the header cell is empty"))
        elif name not in COLUMNS:
            known = ", ".join(COLUMNS)
            errors.append(_error(1, name, name, f"unknown column; the columns are {known}"))
        elif name in names[:i]:
            errors.append(_error(1, name, name, "the column is named twice"))
    for name in REQUIRED:
        if name not in names:
            errors.append(_error(1, name, "", "the header row has no such column (required)"))
    if errors:
        raise FileErrors(source, errors)
    while names and not names[-1]:
        names = names[:-1]  # empty cells after the last column
    return names


def _rows(records: Iterable[list[str]], columns: tuple[str, ...]) -> Iterator[CsvRow]:
    width = len(columns)
    for row_no, cells in enumerate(records, 2):
        trimmed = [c.strip() for c in cells]
        if not any(trimmed):
            continue
        problem = None
        if len(trimmed) < width or any(trimmed[width:]):
            used = len(trimmed) - next(i for i, c in enumerate(reversed(trimmed)) if c)
            problem = f"the row has {used} cells; the header has {width}"
        values = {name: cell for name, cell in zip(columns, trimmed, strict=False) if cell}
        yield CsvRow(row_no, values, problem)


def bill_document(cells: dict[str, str]) -> dict[str, Any]:
    """A row as the JSON document of ``POST /v1/bills``: digits become numbers, ``channels``
    a list (split on ``;`` or spaces), ``YYYY/M/D`` dates ``YYYY-MM-DD``, ``true``/``false``
    (or ``1``/``0``) booleans. Anything else is passed on as text, for the API's rules to name.
    An empty ``amount`` with a ``min_amount`` or ``max_amount`` is ``amount: null`` (the payer
    chooses it); a bound beside an amount is passed on, for the API's rules to refuse."""
    doc: dict[str, Any] = {}
    for key in ("bill_no", "description"):
        if key in cells:
            doc[key] = cells[key]
    if "amount" in cells:
        doc["amount"] = _number(cells["amount"])
    bounds = {key: _number(cells[key]) for key in PAYER_RANGE if key in cells}
    if bounds and "amount" not in cells:
        doc["amount"] = None
    doc.update(bounds)
    if "due_date" in cells:
        due = cells["due_date"]
        m = _SLASH_DATE.fullmatch(due)
        doc["due_date"] = f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}" if m else due
    if "channels" in cells:
        doc["channels"] = [c for c in CHANNEL_SEPARATORS.split(cells["channels"].lower()) if c]
    customer = {key: cells[key] for key in CUSTOMER if key in cells}
    if customer:
        doc["customer"] = customer
    tax: dict[str, Any] = {}
    if "taxable" in cells:
        flag = cells["taxable"].lower()
        tax["taxable"] = True if flag in _TRUE else False if flag in _FALSE else cells["taxable"]
    if "tax_amount" in cells:
        tax["tax_amount"] = _number(cells["tax_amount"])
    if tax:
        doc["tax"] = tax
    return doc


def _number(cell: str) -> int | str:
    # (Python refuses to convert more than 4300 digits; such a cell stays text, and is refused.)
    return int(cell) if len(cell) <= 4000 and _DIGITS.fullmatch(cell) else cell


# --- files the gateway writes ----------------------------------------------------------------

RESULT_COLUMNS = (
    "row",
    "bill_no",
    "result",
    "status",
    "amount",
    "due_date",
    "barcode",
    "barcode_text",
    "payeasy_institution_code",
    "payeasy_customer_number",
    "payeasy_confirmation_number",
    "page_url",
)
ERROR_COLUMNS = ("row", "column", "message")


def write_csv(header: Sequence[str], rows: Iterable[Sequence[object]], encoding: str) -> bytes:
    """CRLF lines; UTF-8 with a BOM (Excel then reads it as UTF-8), or Shift_JIS (CP932) with
    what it cannot encode replaced by ``?``. A text cell a spreadsheet would run as a formula
    (a bill_no ``=HYPERLINK(...)``, or a message quoting it) gets a leading ``'``
    (:mod:`gateway.mappers.csv_cells`); int cells (row numbers, amounts) are written as they are.
    A large file may be written in parts: this with no rows, then :func:`csv_lines` of each."""
    head = csv_lines([header], encoding) + csv_lines(rows, encoding)
    return codecs.BOM_UTF8 + head if encoding != SHIFT_JIS else head


def csv_lines(rows: Iterable[Sequence[object]], encoding: str) -> bytes:
    """Rows of a file :func:`write_csv` writes, after its header (no BOM)."""
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerows(csv_cells.cells(row) for row in rows)
    if encoding == SHIFT_JIS:
        return out.getvalue().encode("cp932", errors="replace")
    return out.getvalue().encode("utf-8")
