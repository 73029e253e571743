"""The center's bank statement read (gateway.mappers.bank_statement): Zengin 入出金取引明細 and
振込入金通知 files and CSV exports; every bad line refused with its line number and field, the
file as a whole."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import FileErrors, RecordError
from gateway.mappers.bank_statement import (
    WAREKI,
    WESTERN,
    build_zengin,
    era_date,
    era_text,
    parse_statement,
)

ACCOUNT = ("0005", "ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ", "135", "ﾏﾙﾉｳﾁ", "1", "7654321")
DEPOSITS = [
    (date(2026, 12, 3), 12_345, "ｶ)ｺﾝﾋﾞﾆｼﾕｳﾉｳ"),
    (date(2026, 12, 3), 12_345, "ｶ)ｺﾝﾋﾞﾆｼﾕｳﾉｳ"),
    (date(2026, 12, 4), 6_030, "ﾏﾙﾁﾍﾟｲﾒﾝﾄ"),
]


def zengin(**over: object) -> bytes:
    values: dict[str, object] = {
        "account": ACCOUNT,
        "account_name": "ｼﾕｳﾉｳｾﾝﾀ-",
        "first_day": date(2026, 12, 1),
        "last_day": date(2026, 12, 4),
        "created": date(2026, 12, 4),
        "deposits": DEPOSITS,
        "withdrawals": [(date(2026, 12, 2), 880, "ﾌﾘｺﾐﾃｽｳﾘﾖｳ")],
    }
    values.update(over)
    return build_zengin(**values)  # type: ignore[arg-type]


def errors_of(data: bytes, **kw: str) -> list[tuple[int, str]]:
    with pytest.raises(FileErrors) as caught:
        parse_statement(data, **kw)
    return [(e.record, e.field) for e in caught.value.errors]


def test_a_zengin_statement_reads_back_its_deposits_in_reiwa_dates() -> None:
    data = zengin()
    lines = data.split(b"\r\n")
    assert all(len(line) == 200 for line in lines[:-1]) and lines[-1] == b""
    assert lines[0][10:16] == b"081201"  # 勘定日(自) 令和8年12月1日
    got = parse_statement(data)
    assert got.format == "zengin-03" and got.account == "0005-135-1-7654321"
    assert (got.first_day, got.last_day, got.withdrawals) == (
        date(2026, 12, 1),
        date(2026, 12, 4),
        1,
    )
    assert [(d.value_date, d.amount, d.remitter_name, d.rank) for d in got.deposits] == [
        (date(2026, 12, 3), 12_345, "ｶ)ｺﾝﾋﾞﾆｼﾕｳﾉｳ", 0),
        (date(2026, 12, 3), 12_345, "ｶ)ｺﾝﾋﾞﾆｼﾕｳﾉｳ", 1),  # the same again: its own deposit
        (date(2026, 12, 4), 6_030, "ﾏﾙﾁﾍﾟｲﾒﾝﾄ", 0),
    ]
    assert [d.line for d in got.deposits] == [3, 4, 5]  # the withdrawal of the 2nd is line 2
    # Back to back, with an EOF mark, or in Western years: the same statement.
    flat = zengin(separator=b"") + b"\x1a"
    assert parse_statement(flat).deposits == got.deposits
    western = zengin(years=WESTERN)
    assert parse_statement(western, years=WESTERN).deposits == got.deposits


def test_every_bad_line_of_a_zengin_file_is_named_with_its_field() -> None:
    lines = zengin().split(b"\r\n")
    lines[2] = lines[2][:21] + b"3" + lines[2][22:]  # 入払区分 3
    lines[3] = lines[3][:9] + b"081332" + lines[3][15:]  # 勘定日 13月32日
    lines[4] = lines[4][:30] + b"x" + lines[4][31:]  # 取引金額 with a letter
    got = errors_of(b"\r\n".join(lines))
    assert got == [(3, "direction"), (4, "value_date"), (5, "amount")]


def test_a_zengin_file_whose_trailer_or_order_is_wrong_is_refused() -> None:
    lines = zengin().split(b"\r\n")
    trailer = lines[5]
    assert trailer[:1] == b"8"
    lines[5] = trailer[:1] + b"000009" + trailer[7:]  # 入金件数 9, not 3
    assert errors_of(b"\r\n".join(lines)) == [(6, "deposit_count")]
    no_end = b"\r\n".join(zengin().split(b"\r\n")[:-2]) + b"\r\n"
    assert errors_of(no_end) == [(7, "record_type")]
    short = zengin().replace(b"\r\n2", b"\r\n2 ", 1)
    assert (2, "record") in errors_of(short)


def test_dates_before_reiwa_or_outside_the_statement_are_refused() -> None:
    assert era_date("081203", WAREKI) == date(2026, 12, 3)
    assert era_date("261203", WESTERN) == date(2026, 12, 3)
    assert era_text(date(2026, 12, 3), WAREKI) == "081203"
    for bad in ("010430", "000101", "08123", "081131"):
        with pytest.raises(ValueError):
            era_date(bad, WAREKI)
    outside = zengin(last_day=date(2026, 12, 3))
    assert errors_of(outside) == [(5, "value_date")]


def test_a_csv_export_reads_as_the_same_deposits() -> None:
    text = (
        "勘定日,入払区分,金額,振込依頼人名,照会番号,残高\n"
        "2026/12/02,出金,880,ﾌﾘｺﾐﾃｽｳﾘﾖｳ,1,100\n"
        '2026/12/03,入金,"12,345",ｶ)ｺﾝﾋﾞﾆｼﾕｳﾉｳ,2,\n'
        "2026-12-03,1,12345円,ｶ)ｺﾝﾋﾞﾆｼﾕｳﾉｳ,3,\n"
        "\n"
        "20261204,入金,6030,マルチペイメント,4,\n"
    )
    for encoding in ("utf-8-sig", "cp932"):
        got = parse_statement(text.encode(encoding))
        assert got.format == "csv" and got.account is None and got.withdrawals == 1
        assert (got.first_day, got.last_day) == (date(2026, 12, 2), date(2026, 12, 4))
        zen = parse_statement(zengin())
        # Full-width kana or half-width: the same remitter, the same deposit identity.
        assert [d.key for d in got.deposits] == [d.key for d in zen.deposits]
        assert [d.line for d in got.deposits] == [3, 4, 6]
    two_columns = "取引日,入金金額,出金金額,摘要\n2026/12/03,500,,ﾔﾏﾀﾞ ﾀﾛｳ\n2026/12/03,,100,ﾃｽｳﾘﾖｳ\n"
    got = parse_statement(two_columns.encode())
    assert [(d.amount, d.remitter_name) for d in got.deposits] == [(500, "ﾔﾏﾀﾞ ﾀﾛｳ")]


def test_every_bad_csv_line_is_named_and_nothing_is_read() -> None:
    text = (
        "勘定日,入払区分,金額,振込依頼人名\n"
        "2026/12/03,入金,1000,ｶ)ｺﾝﾋﾞﾆ\n"
        "2026/13/03,入金,1000,ｶ)ｺﾝﾋﾞﾆ\n"
        "2026/12/04,預入,1000,ｶ)ｺﾝﾋﾞﾆ\n"
        "2026/12/04,入金,-5,ｶ)ｺﾝﾋﾞﾆ\n"
        "2026/12/04,入金,1000,\n"
    )
    with pytest.raises(FileErrors) as caught:
        parse_statement(text.encode())
    assert [(e.record, e.field) for e in caught.value.errors] == [
        (3, "勘定日"),
        (4, "入払区分"),
        (5, "金額"),
        (6, "振込依頼人名"),
    ]
    assert "line 3, field 勘定日" in caught.value.one_line()
    assert errors_of("日付,摘要\n2026/12/03,x\n".encode()) == [(1, "金額")]
    assert errors_of("勘定日,入払区分,金額,振込依頼人名\n".encode()) == [(2, "row")]
    assert errors_of(b"\x82\xa0,\x81\x20\n") == [(1, "encoding")]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_a_statement_of_any_bytes_raises_nothing_but_file_errors(data: bytes) -> None:
    try:
        parse_statement(data)
    except FileErrors as e:
        assert e.errors and all(isinstance(x, RecordError) for x in e.errors)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 199), st.binary(min_size=1, max_size=1))
def test_a_zengin_statement_with_any_byte_changed_raises_nothing_but_file_errors(
    at: int, byte: bytes
) -> None:
    data = bytearray(zengin())
    data[202 + at] = byte[0]  # a byte of the first data record
    try:
        parse_statement(bytes(data))
    except FileErrors as e:
        assert all(x.record >= 1 for x in e.errors)
