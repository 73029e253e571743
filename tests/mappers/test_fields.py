"""The shared fixed-width field adapters (gateway/mappers/fields.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from construct import Construct, ConstructError, Struct, Terminated
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import RecordError
from gateway.mappers.fields import (
    ZENGIN_CHARS,
    FieldValueError,
    alnum,
    build_fields,
    chars,
    const,
    date8,
    digits,
    filler,
    kana,
    numeric,
    parse_fields,
    record_size,
)


def refused(field: Construct, raw: bytes) -> str:
    with pytest.raises(FieldValueError) as info:
        field.parse(raw)
    assert info.value.reason
    return str(info.value.reason)


def refused_build(field: Construct, value: object) -> str:
    with pytest.raises(FieldValueError) as info:
        field.build(value)
    return str(info.value.reason)


# --- numeric / digits ------------------------------------------------------------------------


def test_numeric() -> None:
    assert numeric(6).parse(b"000123") == 123
    assert numeric(6).build(123) == b"000123"
    assert numeric(12).build(610_800) == b"000000610800"
    assert numeric(3).build(0) == b"000"


@pytest.mark.parametrize(
    "raw", [b"12 345", b" 12345", b"-12345", b"+12345", b"1234.5", b"\xef\xbc\x99"]
)
def test_numeric_refuses_anything_but_ascii_digits(raw: bytes) -> None:
    assert "digits" in refused(numeric(len(raw)), raw)


@pytest.mark.parametrize("value", [-1, 1_000_000, True, "123", 1.0, None])
def test_numeric_refuses_to_build_what_does_not_fit(value: object) -> None:
    refused_build(numeric(6), value)


def test_digits_keeps_leading_zeros() -> None:
    assert digits(7).parse(b"0110002") == "0110002"
    assert digits(7).build("0110002") == b"0110002"
    assert "digits" in refused(digits(3), b"12a")
    refused_build(digits(3), "12")
    refused_build(digits(3), "1234")
    refused_build(digits(3), "１２３")  # full-width digits are digits to str.isdigit, not to us
    refused_build(digits(3), 123)


# --- text ------------------------------------------------------------------------------------


def test_alnum() -> None:
    assert alnum(6).parse(b"AB 1  ") == "AB 1"
    assert alnum(6).build("AB 1") == b"AB 1  "
    assert alnum(3).parse(b"   ") == ""
    refused(alnum(3), b"ab ")
    refused(alnum(3), b"A-B")
    refused_build(alnum(3), "ABCD")
    refused_build(alnum(3), "ｱ")


def test_kana_reads_and_writes_half_width_cp932() -> None:
    raw = "ｼﾕｳﾉｳﾀﾞｲｺｳ".encode("cp932").ljust(40, b" ")
    assert kana(40).parse(raw) == "ｼﾕｳﾉｳﾀﾞｲｺｳ"
    assert kana(40).build("ｼﾕｳﾉｳﾀﾞｲｺｳ") == raw
    assert kana(8).build("ABC(1)") == b"ABC(1)  "


def test_kana_refuses_what_is_not_one_byte() -> None:
    assert "half-width" in refused_build(kana(10), "カナ")  # full-width: 2 bytes each in CP932
    refused_build(kana(10), "漢字")
    refused_build(kana(10), "😀")
    refused_build(kana(2), "ｱｲｳ")  # too long
    refused(kana(4), "カナ".encode("cp932"))
    refused(kana(2), b"\x00 ")
    refused(kana(2), b"\x80 ")
    refused(kana(2), b"\xa0 ")


def test_kana_with_a_charset_refuses_small_kana() -> None:
    assert kana(4, charset=ZENGIN_CHARS).parse("ﾖｳｺ".encode("cp932") + b" ") == "ﾖｳｺ"
    assert "small kana" in refused(kana(4, charset=ZENGIN_CHARS), "ｷｮｳ".encode("cp932") + b" ")
    refused_build(kana(4, charset=ZENGIN_CHARS), "ｷｮｳ")
    refused_build(kana(4, charset=ZENGIN_CHARS), "abc")


def test_chars_keeps_the_value_as_it_is() -> None:
    assert chars(2, "0123456789 ").parse(b"  ") == "  "
    assert chars(2, "0123456789 ").parse(b"1 ") == "1 "
    assert chars(2, "0123456789 ").build("07") == b"07"
    refused(chars(2, "0123456789 "), b"A1")
    refused_build(chars(2, "0123456789 "), "1")


# --- dates, fillers, constants ---------------------------------------------------------------


def test_date8() -> None:
    assert date8().parse(b"20261215") == date(2026, 12, 15)
    assert date8().build(date(2026, 12, 15)) == b"20261215"
    assert date8().build(date(999, 1, 2)) == b"09990102"
    assert date8(zero_is_none=True).parse(b"00000000") is None
    assert date8(zero_is_none=True).build(None) == b"00000000"
    assert date8(6).parse(b"261215") == date(2026, 12, 15)
    assert date8(6).build(date(2026, 12, 15)) == b"261215"


@pytest.mark.parametrize("raw", [b"00000000", b"20261301", b"20260230", b"2026121 ", b"ABCDEFGH"])
def test_date8_refuses_what_is_not_a_calendar_date(raw: bytes) -> None:
    refused(date8(), raw)


def test_date8_refuses_to_build_what_is_not_a_date() -> None:
    refused_build(date8(), None)
    refused_build(date8(), "20261215")
    refused_build(date8(), datetime(2026, 12, 15))
    refused_build(date8(6), date(2100, 1, 1))


def test_filler_and_const() -> None:
    assert filler(3).parse(b"   ") is None
    assert filler(3).build(None) == b"   "
    assert filler(2, b"0").build(None) == b"00"
    assert "3 x b' '" in refused(filler(3), b"  x")
    assert const(b"2").parse(b"2") is None
    assert const(b"2").build(None) == b"2"
    refused(const(b"2"), b"1")


# --- whole records ---------------------------------------------------------------------------

SAMPLE = Struct(
    "record_type" / const(b"2"),
    "count" / numeric(3),
    "code" / digits(4),
    "name" / kana(6),
    "day" / date8(zero_is_none=True),
    "filler" / filler(2),
    Terminated,
)
GOOD = b"2007" + b"0042" + "ｱｲｳ".encode("cp932") + b"   " + b"20261201" + b"  "


def test_parse_fields_gives_plain_values() -> None:
    assert record_size(SAMPLE) == len(GOOD) == 24
    values, errors = parse_fields(SAMPLE, GOOD, network="x", record=3)
    assert errors == []
    assert values == {
        "record_type": None,
        "count": 7,
        "code": "0042",
        "name": "ｱｲｳ",
        "day": date(2026, 12, 1),
        "filler": None,
    }
    assert type(values) is dict
    assert build_fields(SAMPLE, values, network="x") == GOOD
    # The struct itself agrees with the field walk, and Terminated refuses what follows.
    assert SAMPLE.build(values) == GOOD
    assert SAMPLE.parse(GOOD).code == "0042"
    with pytest.raises(Exception, match="end of stream"):
        SAMPLE.parse(GOOD + b" ")


def test_parse_fields_reports_every_bad_field_with_its_record_number() -> None:
    bad = b"3" + b"0x7" + b"0042" + "カ".encode("cp932") + b"    " + b"20261399" + b"--"
    values, errors = parse_fields(SAMPLE, bad, network="zengin", record=5)
    assert [(e.network, e.record, e.field) for e in errors] == [
        ("zengin", 5, "record_type"),
        ("zengin", 5, "count"),
        ("zengin", 5, "name"),
        ("zengin", 5, "day"),
        ("zengin", 5, "filler"),
    ]
    assert values == {"code": "0042"}
    assert errors[3].value == "20261399"
    assert errors[2].value == "カ    "


def test_parse_fields_refuses_a_record_of_another_length() -> None:
    values, errors = parse_fields(SAMPLE, GOOD[:-1], network="x", record=9)
    assert values == {}
    assert [(e.record, e.field) for e in errors] == [(9, "record")]
    assert "24" in errors[0].reason and "23" in errors[0].reason


def test_build_fields_names_the_field() -> None:
    values: dict[str, Any] = {"count": 7, "code": "42", "name": "ｱ", "day": None}
    with pytest.raises(RecordError) as info:
        build_fields(SAMPLE, values, network="x", record=4)
    assert (info.value.record, info.value.field, info.value.value) == (4, "code", "42")


def test_a_record_struct_must_end_with_terminated() -> None:
    with pytest.raises(ValueError, match="Terminated"):
        record_size(Struct("a" / digits(2)))


# --- properties ------------------------------------------------------------------------------

ADAPTERS = [
    numeric(4),
    digits(4),
    alnum(4),
    kana(4),
    kana(4, charset=ZENGIN_CHARS),
    chars(4, "0123456789 "),
    date8(),
    date8(zero_is_none=True),
    date8(6),
    filler(4),
    const(b"2"),
]


@given(st.sampled_from(ADAPTERS), st.binary(min_size=0, max_size=10))
def test_adapters_raise_nothing_but_construct_errors(field: Construct, raw: bytes) -> None:
    try:
        value = field.parse(raw)
    except ConstructError:
        return
    assert field.build(value) == raw[: field.sizeof()]


@given(st.binary(min_size=0, max_size=30))
def test_parse_fields_raises_nothing(raw: bytes) -> None:
    values, errors = parse_fields(SAMPLE, raw, network="x", record=1)
    assert all(isinstance(e, RecordError) for e in errors)
    if not errors:
        assert build_fields(SAMPLE, values, network="x") == raw


@given(
    st.integers(0, 999),
    st.text("0123456789", min_size=4, max_size=4),
    st.text("ｱｲｳｴｵｶｷｸｹｺﾞﾟ ABC", max_size=6).map(str.rstrip),
    st.none() | st.dates(),
)
def test_build_then_parse_gives_the_values_back(
    count: int, code: str, name: str, day: date | None
) -> None:
    values = {"count": count, "code": code, "name": name, "day": day}
    raw = build_fields(SAMPLE, values, network="x")
    parsed, errors = parse_fields(SAMPLE, raw, network="x", record=1)
    assert errors == []
    assert parsed == {**values, "record_type": None, "filler": None}
