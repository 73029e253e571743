"""Bulk bill files: decoding, the header, rows as API documents, the files the gateway writes."""

from __future__ import annotations

import codecs
import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import FileErrors
from gateway.mappers.bills_csv import (
    COLUMNS,
    RESULT_COLUMNS,
    SHIFT_JIS,
    UTF8,
    bill_document,
    charset_name,
    decode,
    read_bill_file,
    write_csv,
)

HEADER = "bill_no,amount,due_date,channels,customer_no,name,kana,email,phone,description"
ROW = "INV-1,5400,2026-12-15,cvs;payeasy,C0001,山田 太郎,ﾔﾏﾀﾞ ﾀﾛｳ,t@example.jp,09012345678,12月分"
TEXT = f"{HEADER}\r\n{ROW}\r\n"


@pytest.mark.parametrize(
    ("data", "charset", "encoding"),
    [
        (TEXT.encode("utf-8"), None, UTF8),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), None, UTF8),
        (TEXT.encode("cp932"), None, SHIFT_JIS),
        (TEXT.encode("cp932"), "Shift_JIS", SHIFT_JIS),
        (TEXT.encode("cp932"), "windows-31j", SHIFT_JIS),
        (TEXT.encode("utf-8"), "UTF-8", UTF8),
        (HEADER.encode("ascii"), "shift_jis", SHIFT_JIS),  # ASCII: what the sender says
    ],
)
def test_encodings(data: bytes, charset: str | None, encoding: str) -> None:
    text, found = decode(data, charset)
    assert found == encoding and text.lstrip("\ufeff") == text
    assert text.startswith(HEADER)


def test_a_declared_charset_is_obeyed_and_an_unknown_one_refused() -> None:
    with pytest.raises(FileErrors) as e:
        decode(TEXT.encode("cp932"), "utf-8")
    (error,) = e.value.errors
    assert error.record == 2 and error.field == "encoding"
    assert "is not valid utf-8" in error.reason
    with pytest.raises(ValueError, match="latin1"):
        decode(b"x", "latin1")
    assert charset_name('"SJIS"') == SHIFT_JIS and charset_name("ebcdic") is None


def test_rows_are_numbered_as_a_spreadsheet_numbers_them() -> None:
    text = (
        " Bill_No ,AMOUNT,due_date,channels,\r\n"  # header: trimmed, any case, a trailing comma
        "A,1,2026-12-15,cvs,\r\n"
        "\r\n"  # row 3: blank, skipped
        '"B",2,2026-12-15,"cvs payeasy",\r\n'
        ",,,,\r\n"  # row 5: every cell empty, skipped
        "C,3,2026-12-15\r\n"  # row 6: too few cells
        "D,4,2026-12-15,cvs,,extra\r\n"  # row 7: too many
    )
    f = read_bill_file(text.encode())
    assert f.columns == ("bill_no", "amount", "due_date", "channels")
    assert [(r.row, r.cells.get("bill_no"), r.problem) for r in f.rows] == [
        (2, "A", None),
        (4, "B", None),
        (6, "C", "the row has 3 cells; the header has 4"),
        (7, "D", "the row has 6 cells; the header has 4"),
    ]
    assert f.rows[1].cells == {
        "bill_no": "B",
        "amount": "2",
        "due_date": "2026-12-15",
        "channels": "cvs payeasy",
    }


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        ("", [(1, "header")]),
        ("bill_no,amount,due_date\r\n", [(1, "channels")]),
        ("bill_no,amount,due_date,channels,amount\r\n", [(1, "amount")]),
        ("bill_no,,amount,due_date,channels\r\n", [(1, "column 2")]),
        ("bill_no,amount,due_date,channels,zip\r\n", [(1, "zip")]),
    ],
)
def test_header_errors_name_the_column(text: str, errors: list[tuple[int, str]]) -> None:
    with pytest.raises(FileErrors) as e:
        read_bill_file(text.encode())
    assert [(x.record, x.field) for x in e.value.errors] == errors


def test_a_row_becomes_the_api_document() -> None:
    assert bill_document(
        {
            "bill_no": "A",
            "amount": "5400",
            "due_date": "2026/1/5",
            "channels": "CVS; payeasy  transfer",
            "customer_no": "C1",
            "email": "a@b.jp",
            "taxable": "TRUE",
            "tax_amount": "490",
            "description": "説明",
        }
    ) == {
        "bill_no": "A",
        "amount": 5400,
        "due_date": "2026-01-05",
        "channels": ["cvs", "payeasy", "transfer"],
        "customer": {"customer_no": "C1", "email": "a@b.jp"},
        "tax": {"taxable": True, "tax_amount": 490},
        "description": "説明",
    }
    # What is not a number, a date or a flag is passed on as text for the API's rules to name.
    assert bill_document({"amount": "5,400", "taxable": "maybe", "due_date": "12/15"}) == {
        "amount": "5,400",
        "due_date": "12/15",
        "tax": {"taxable": "maybe"},
    }
    assert bill_document({"taxable": "0"}) == {"tax": {"taxable": False}}
    assert bill_document({"amount": "9" * 5000})["amount"] == "9" * 5000


def test_an_empty_amount_with_bounds_is_an_amount_the_payer_chooses() -> None:
    assert bill_document({"min_amount": "1000", "max_amount": "50000"}) == {
        "amount": None,
        "min_amount": 1000,
        "max_amount": 50000,
    }
    # One bound only: still the payer's amount, so the API's rules name the missing one.
    assert bill_document({"max_amount": "50,000"}) == {"amount": None, "max_amount": "50,000"}
    # Beside an amount, a bound is passed on for the API's rules to refuse.
    assert bill_document({"amount": "5400", "min_amount": "1"}) == {
        "amount": 5400,
        "min_amount": 1,
    }
    # Neither: an empty amount is an amount left out, as before the bounds existed.
    assert bill_document({"bill_no": "A"}) == {"bill_no": "A"}


@pytest.mark.parametrize("encoding", [UTF8, SHIFT_JIS])
def test_written_files_read_back(encoding: str) -> None:
    rows = [[2, "INV-1", "created", None, "髙橋"], [3, 'say "hi"', "existing", "", "a,b"]]
    data = write_csv(RESULT_COLUMNS[:5], rows, encoding)
    assert data.startswith(codecs.BOM_UTF8) == (encoding == UTF8)
    text = data.decode("utf-8-sig" if encoding == UTF8 else "cp932")
    assert text.endswith("\r\n")
    back = list(csv.reader(io.StringIO(text, newline="")))
    assert back == [
        list(RESULT_COLUMNS[:5]),
        ["2", "INV-1", "created", "", "髙橋"],
        ["3", 'say "hi"', "existing", "", "a,b"],
    ]


@pytest.mark.parametrize("encoding", [UTF8, SHIFT_JIS])
def test_written_files_keep_formulas_as_text(encoding: str) -> None:
    """Every text cell that begins with = + - @, a tab or a CR gets a leading ' (issue 14,
    finding 13); int cells (row numbers, amounts) are numbers and are written as they are."""
    link = '=HYPERLINK("https://evil.example/","x")'
    rows = [[2, link, "+1", -1200, "@SUM(A1)"], [3, "-5", "\tx", 0, "\rcmd|' /C calc'!A0"]]
    text = write_csv(RESULT_COLUMNS[:5], rows, encoding)
    back = list(csv.reader(io.StringIO(text.decode("utf-8-sig" if encoding == UTF8 else "cp932"))))
    assert back[1:] == [
        ["2", "'" + link, "'+1", "-1200", "'@SUM(A1)"],
        ["3", "'-5", "'\tx", "0", "'\rcmd|' /C calc'!A0"],
    ]


@given(st.binary(max_size=300), st.sampled_from([None, "utf-8", "shift_jis"]))
def test_any_bytes_are_a_file_or_file_errors(data: bytes, charset: str | None) -> None:
    try:
        f = read_bill_file(data, charset)
    except FileErrors:
        return
    assert set(f.columns) <= set(COLUMNS)
    for row in f.rows:
        assert row.row >= 2 and set(row.cells) <= set(f.columns)
        bill_document(row.cells)


@given(
    st.lists(st.sampled_from(["A,1,2026-12-15,cvs", "", ",,,", '"x\r\ny",1,,', "B"]), max_size=8)
)
def test_row_numbers_count_every_record(lines: list[str]) -> None:
    text = "bill_no,amount,due_date,channels\r\n" + "\r\n".join(lines) + "\r\n"
    f = read_bill_file(text.encode())
    numbers = [r.row for r in f.rows]
    assert numbers == sorted(set(numbers)) and all(2 <= n <= len(lines) + 1 for n in numbers)


@pytest.mark.parametrize("block", [1, 2, 3, 5, 7, 64])
@pytest.mark.parametrize(
    ("data", "charset"),
    [
        (codecs.BOM_UTF8 + TEXT.encode(), None),  # a BOM, then characters of 3 bytes
        (TEXT.encode("cp932"), None),  # Shift_JIS, found after UTF-8 fails
        (TEXT.encode("cp932"), "shift_jis"),
        (TEXT.encode() + b"X,1,2026-12-15,cvs,\xff\r\n", None),  # neither: refused
        (TEXT.encode() + b"X,1,2026-12-15,cvs,\x82\r\n", "utf-8"),  # not the named charset
        (TEXT.encode() + b'X,"a"b,\r\n"unterminated,\r\n', None),  # quotes cut over lines
    ],
)
def test_a_file_read_as_a_stream_reads_as_a_whole_decode_does(
    monkeypatch: pytest.MonkeyPatch, block: int, data: bytes, charset: str | None
) -> None:
    """The encoding is found block by block (issue 18: a large file is never held as text):
    a character cut by a block's end, a BOM, a bad byte late in the file, give what decoding
    the whole file gives."""
    from gateway.mappers import bills_csv

    def whole() -> object:
        try:
            text, encoding = decode(data, charset)
            rows = list(csv.reader(io.StringIO(text, newline="")))
            return encoding, len(rows)
        except FileErrors as e:
            return [(x.record, x.field, x.value, x.reason) for x in e.errors]

    monkeypatch.setattr(bills_csv, "_BLOCK", block)
    try:
        opened = bills_csv.open_bill_file(io.BytesIO(data), charset)
        got: object = (opened.encoding, 1 + len(list(opened.rows)))
    except FileErrors as e:
        got = [(x.record, x.field, x.value, x.reason) for x in e.errors]
    assert got == whole()
