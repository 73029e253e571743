"""Zengin 口座振替 files, 種別コード 91 (spec/zengin.md), against the shared vectors."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import FileErrors, RecordError
from gateway.mappers.fields import ZENGIN_CHARS, record_size
from gateway.mappers.zengin.mapper import (
    RESULT_CODES,
    Debit,
    MandateAction,
    ZenginHeader,
    ZenginTrailer,
    build_file,
    infer_debit_date,
    mandate_action,
    parse_file,
    result_meaning,
    to_zengin_text,
)
from gateway.mappers.zengin.records import BY_TYPE

FIXTURES = Path(__file__).parent.parent / "fixtures" / "zengin"
REQUEST = (FIXTURES / "request_91.txt").read_bytes()
RESULT = (FIXTURES / "result_91.txt").read_bytes()
NOSEP = (FIXTURES / "result_91_noseparator.txt").read_bytes()

HEADER = ZenginHeader(
    biller_code="0000012345",
    biller_name="ｶ)ｻﾝﾌﾟﾙｼﾖｳｼﾞ",
    debit_mmdd="0527",
    bank_code="0001",
    bank_name="ﾐｽﾞﾎ",
    branch_code="001",
    branch_name="ﾄｳｷﾖｳｴｲｷﾞﾖｳﾌﾞ",
    account_type="1",
    account_number="1234567",
)
DEBITS = (
    Debit("0005", "ﾐﾂﾋﾞｼUFJ", "135", "ﾏﾙﾉｳﾁ", "1", "7654321", "ﾔﾏﾀﾞ ﾀﾛｳ", 5_500, "1", "0" * 19 + "1"),
    Debit(
        "0009", "ﾐﾂｲｽﾐﾄﾓ", "227", "ｼﾝｼﾞﾕｸ", "1", "1111111", "ｽｽﾞｷ ﾊﾅｺ", 12_000, "0", "0" * 19 + "2"
    ),
    Debit(
        "9900", "ﾕｳﾁﾖ", "018", "ｾﾞﾛｲﾁﾊﾁ", "1", "0123456", "ｶ)ﾐﾄﾞﾘｼﾖｳｶｲ", 300_000, "0", "0" * 19 + "3"
    ),
)
RESULTS = tuple(dataclasses.replace(d, result_code=c) for d, c in zip(DEBITS, "012", strict=True))

# (record number, field) of errors each invalid vector must be refused with (README.md).
INVALID = {
    "invalid_short_record.txt": {(2, "record"), (3, "count")},
    "invalid_small_kana.txt": {(1, "biller_name")},
    "invalid_trailer_sum.txt": {(5, "total")},
}


def test_every_schema_is_120_bytes() -> None:
    assert [record_size(s) for s in BY_TYPE.values()] == [120, 120, 120, 120]


# --- the vectors -----------------------------------------------------------------------------


def test_request_parses_to_its_values_and_rebuilds_byte_for_byte() -> None:
    request = parse_file(REQUEST, source="request_91.txt")
    assert request.header == HEADER
    assert request.debits == DEBITS
    assert request.trailer == ZenginTrailer(count=3, total=317_500)
    assert not request.is_result
    assert build_file(request.header, request.debits) == REQUEST
    assert build_file(HEADER, DEBITS) == REQUEST


def test_result_totals_agree_with_its_debits_and_rebuild_byte_for_byte() -> None:
    result = parse_file(RESULT, source="result_91.txt")
    assert result.is_result
    assert result.header == HEADER
    assert result.debits == RESULTS
    assert result.trailer == ZenginTrailer(3, 317_500, 1, 5_500, 2, 312_000)
    assert [d.result_code for d in result.debits] == ["0", "1", "2"]
    debited = [d.amount for d in result.debits if d.debited]
    failed = [d.amount for d in result.debits if not d.debited]
    assert (len(debited), sum(debited)) == (1, 5_500)
    assert (len(failed), sum(failed)) == (2, 312_000)
    assert build_file(result.header, result.debits, results=True) == RESULT


def test_result_without_separator_and_with_eof_gives_the_same_values() -> None:
    assert NOSEP.endswith(b"\x1a") and b"\r\n" not in NOSEP
    assert parse_file(NOSEP) == parse_file(RESULT)
    assert build_file(HEADER, RESULTS, results=True, separator=b"", eof=True) == NOSEP


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_vectors_are_refused_whole_naming_record_and_field(name: str) -> None:
    with pytest.raises(FileErrors) as info:
        parse_file((FIXTURES / name).read_bytes(), source=name)
    assert info.value.source == name
    assert {(e.record, e.field) for e in info.value.errors} == INVALID[name]
    assert all(e.network == "zengin" for e in info.value.errors)


def test_the_errors_say_what_is_wrong() -> None:
    with pytest.raises(FileErrors) as info:
        parse_file((FIXTURES / "invalid_short_record.txt").read_bytes())
    assert "119" in info.value.errors[0].reason
    with pytest.raises(FileErrors) as info:
        parse_file((FIXTURES / "invalid_small_kana.txt").read_bytes())
    assert "ｮ" in info.value.errors[0].value
    with pytest.raises(FileErrors) as info:
        parse_file((FIXTURES / "invalid_trailer_sum.txt").read_bytes())
    (error,) = info.value.errors
    assert error.value == "317600" and "317500" in error.reason


# --- hand-made changes to the vectors --------------------------------------------------------


def _records(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")[:-1]


def _file(records: list[bytes]) -> bytes:
    return b"".join(r + b"\r\n" for r in records)


def _with(record: bytes, offset: int, new: bytes) -> bytes:
    return record[:offset] + new + record[offset + len(new) :]


def _refusal(records: list[bytes]) -> set[tuple[int, str]]:
    with pytest.raises(FileErrors) as info:
        parse_file(_file(records))
    return {(e.record, e.field) for e in info.value.errors}


@pytest.mark.parametrize(
    ("record", "offset", "new", "field"),
    [
        (0, 1, b"21", "kind_code"),
        (0, 3, b"1", "code_division"),
        (0, 54, b"1332", "debit_mmdd"),
        (0, 95, b"3", "account_type"),
        (1, 1, b"00A5", "bank_code"),
        (1, 42, b"4", "account_type"),
        (1, 50, "ﾔﾏﾀﾞ ﾀﾛｯ".encode("cp932"), "holder_name"),
        (1, 50, "山".encode("cp932"), "holder_name"),
        (1, 80, b"000000550X", "amount"),
        (1, 90, b"3", "new_code"),
        (1, 111, b"0X", "filler_2"),
        (4, 19, b"00000A", "debited_count"),
    ],
)
def test_a_bad_field_is_named(record: int, offset: int, new: bytes, field: str) -> None:
    records = _records(RESULT)
    records[record] = _with(records[record], offset, new)
    assert (record + 1, field) in _refusal(records)


def test_every_trailer_figure_is_checked() -> None:
    records = _records(RESULT)
    records[4] = _with(records[4], 1, b"000004000000317501000002000000005501000001000000311999")
    assert _refusal(records) == {
        (5, "count"),
        (5, "total"),
        (5, "debited_count"),
        (5, "debited_total"),
        (5, "failed_count"),
        (5, "failed_total"),
    }


def test_a_request_carries_result_code_zero() -> None:
    records = _records(REQUEST)
    records[2] = _with(records[2], 111, b"1")
    assert _refusal(records) == {(3, "result_code")}


def test_order_and_unknown_types_are_refused() -> None:
    records = _records(REQUEST)
    after_trailer = [records[0], records[1], records[2], records[4], records[3], records[5]]
    assert _refusal(after_trailer) == {(5, "record_type")}
    assert (3, "record_type") in _refusal([*records[:2], b"5" + records[2][1:], *records[3:]])
    assert _refusal(records[:5]) == {(6, "record_type")}
    assert (1, "record_type") in _refusal(records[1:])
    with pytest.raises(FileErrors):
        parse_file(b"")


def test_several_errors_are_all_reported() -> None:
    records = _records(REQUEST)
    records[1] = _with(records[1], 42, b"5")
    records[3] = _with(records[3], 50, "ｧ".encode("cp932"))
    records[4] = _with(records[4], 1, b"000002")
    assert _refusal(records) == {(2, "account_type"), (4, "holder_name"), (5, "count")}


# --- writing ---------------------------------------------------------------------------------


def test_build_converts_names_to_half_width_kana() -> None:
    debit = dataclasses.replace(DEBITS[0], holder_name="ヤマダ　タロウ", bank_name="ﾐﾂﾋﾞｼufj")
    assert parse_file(build_file(HEADER, [debit])).debits == (DEBITS[0],)
    assert to_zengin_text("キョウコ ガッコー") == "ｷﾖｳｺ ｶﾞﾂｺ-"
    assert to_zengin_text("ｼｮｳｼﾞ") == "ｼﾖｳｼﾞ"
    assert to_zengin_text("ぱんだ") == "ﾊﾟﾝﾀﾞ"


def test_build_refuses_what_it_cannot_write_naming_the_field() -> None:
    cases = [
        (HEADER, dataclasses.replace(DEBITS[0], holder_name="山田"), (2, "holder_name")),
        (HEADER, dataclasses.replace(DEBITS[0], account_type="3"), (2, "account_type")),
        (HEADER, dataclasses.replace(DEBITS[0], amount=10**10), (2, "amount")),
        (HEADER, dataclasses.replace(DEBITS[0], result_code="1"), (2, "result_code")),
        (dataclasses.replace(HEADER, debit_mmdd="0230"), DEBITS[0], (1, "debit_mmdd")),
        (dataclasses.replace(HEADER, biller_name="ｱ" * 41), DEBITS[0], (1, "biller_name")),
    ]
    for header, debit, where in cases:
        with pytest.raises(RecordError) as info:
            build_file(header, [debit])
        assert (info.value.record, info.value.field) == where


# --- result codes and dates ------------------------------------------------------------------


def test_result_codes_and_what_they_do_to_the_mandate() -> None:
    assert set(RESULT_CODES) >= {"0", "1", "2", "3", "4", "8", "9", "E", "N"}
    assert [mandate_action(c) for c in "0123489EN"] == [
        MandateAction.KEEP,
        MandateAction.KEEP,
        MandateAction.INVALID,
        MandateAction.SUSPENDED,
        MandateAction.INVALID,
        MandateAction.KEEP,
        MandateAction.KEEP,
        MandateAction.KEEP,
        MandateAction.KEEP,
    ]
    assert "資金不足" in result_meaning("1")
    assert "unknown" in result_meaning("Z")  # an unknown code is kept, never a crash
    records = _records(RESULT)
    records[2] = _with(records[2], 111, b"Z")
    records[4] = _with(records[4], 19, b"000001000000005500000002000000312000")
    parsed = parse_file(_file(records))
    assert parsed.debits[1].result_code == "Z" and not parsed.debits[1].debited


def test_the_debit_date_takes_its_year_from_the_file_date() -> None:
    assert HEADER.debit_date(date(2026, 5, 10)) == date(2026, 5, 27)
    assert infer_debit_date("0527", date(2026, 6, 3)) == date(2026, 5, 27)
    assert infer_debit_date("0105", date(2026, 12, 20)) == date(2027, 1, 5)
    assert infer_debit_date("1227", date(2027, 1, 4)) == date(2026, 12, 27)
    assert infer_debit_date("0229", date(2027, 3, 1)) == date(2028, 2, 29)
    with pytest.raises(ValueError):
        infer_debit_date("1301", date(2026, 1, 1))


# --- properties ------------------------------------------------------------------------------


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=n, max_size=n)


def _names(n: int) -> st.SearchStrategy[str]:
    return st.text(sorted(ZENGIN_CHARS), max_size=n).map(lambda s: s.rstrip(" "))


debits = st.builds(
    Debit,
    bank_code=_digits(4),
    bank_name=_names(15),
    branch_code=_digits(3),
    branch_name=_names(15),
    account_type=st.sampled_from("129"),
    account_number=_digits(7),
    holder_name=_names(30),
    amount=st.integers(0, 10**10 - 1),
    new_code=st.sampled_from("012"),
    customer_number=_names(20),
    result_code=st.sampled_from("01234589EN"),
)
headers = st.builds(
    ZenginHeader,
    biller_code=_digits(10),
    biller_name=_names(40),
    debit_mmdd=st.dates(date(2000, 1, 1), date(2000, 12, 31)).map(lambda d: d.strftime("%m%d")),
    bank_code=_digits(4),
    bank_name=_names(15),
    branch_code=_digits(3),
    branch_name=_names(15),
    account_type=st.sampled_from("129"),
    account_number=_digits(7),
)


@given(headers, st.lists(debits, max_size=6), st.sampled_from([b"\r\n", b""]), st.booleans())
def test_build_then_parse_a_result_file(
    header: ZenginHeader, items: list[Debit], separator: bytes, eof: bool
) -> None:
    data = build_file(header, items, results=True, separator=separator, eof=eof)
    parsed = parse_file(data)
    assert parsed.header == header
    assert list(parsed.debits) == items
    assert parsed.trailer.count == len(items)
    assert parsed.trailer.total == sum(d.amount for d in items)
    assert build_file(header, parsed.debits, results=True, separator=separator, eof=eof) == data


@given(headers, st.lists(debits.map(lambda d: dataclasses.replace(d, result_code="0"))))
def test_build_then_parse_a_request(header: ZenginHeader, items: list[Debit]) -> None:
    parsed = parse_file(build_file(header, items))
    assert (parsed.header, list(parsed.debits), parsed.is_result) == (header, items, False)


@given(
    st.binary(max_size=800)
    | st.integers(0, len(RESULT) - 1).flatmap(
        lambda i: st.binary(max_size=3).map(lambda b: RESULT[:i] + b + RESULT[i + len(b) :])
    )
)
def test_parse_file_raises_nothing_but_file_errors(data: bytes) -> None:
    try:
        parse_file(data)
    except FileErrors as exc:
        assert exc.errors and all(isinstance(e, RecordError) for e in exc.errors)
