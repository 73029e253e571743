"""総合振込 files (種別コード 21) and the bank's 振込不能 files, read back byte by byte
(gateway/mappers/zengin/payouts.py; the 120-byte conventions of spec/zengin.md)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import FileErrors, RecordError
from gateway.mappers.zengin.payouts import (
    PayoutHeader,
    Transfer,
    build_payout_file,
    customer_code,
    parse_customer_code,
    parse_payout_file,
    return_meaning,
)

HEADER = PayoutHeader(
    requester_code="1234567890",
    requester_name="ｷﾖｳﾄﾞｳｼﾕｳﾉｳｾﾝﾀ-",
    transfer_mmdd="1203",
    bank_code="0005",
    bank_name="ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ",
    branch_code="135",
    branch_name="ﾏﾙﾉｳﾁ",
    account_type="1",
    account_number="1234567",
)
TRANSFERS = (
    Transfer(
        "0009",
        "ﾐﾂｲｽﾐﾄﾓ",
        "227",
        "ｼﾝｼﾞｭｸ",  # a small kana: written ｼﾝｼﾞﾕｸ
        "1",
        "7654321",
        "ｶ)ﾄｳｷﾖｳｶﾞｽ",
        64_507,
        *customer_code("00001", date(2026, 11, 1)),
    ),
    Transfer(
        "0001",
        "ﾐｽﾞﾎ",
        "001",
        "ﾄｳｷﾖｳ",
        "2",
        "0000123",
        "ｽｲﾄﾞｳｷﾖｸ",
        1_200_000,
        *customer_code("00042", date(2026, 11, 16)),
    ),
)


def records(data: bytes) -> list[bytes]:
    assert data.endswith(b"\r\n")
    return data.split(b"\r\n")[:-1]


def test_a_payout_file_is_header_one_record_per_transfer_trailer_and_end_of_120_bytes() -> None:
    data = build_payout_file(HEADER, TRANSFERS)
    header, first, second, trailer, end = records(data)
    assert all(len(r) == 120 for r in (header, first, second, trailer, end))
    # header: データ区分 1, 種別コード 21, コード区分 0, 振込依頼人コード, 名, 取組日, 仕向銀行…
    assert header[0:1] == b"1" and header[1:3] == b"21" and header[3:4] == b"0"
    assert header[4:14] == b"1234567890"
    assert header[14:54].decode("cp932") == "ｷﾖｳﾄﾞｳｼﾕｳﾉｳｾﾝﾀ-".ljust(40)
    assert header[54:58] == b"1203"
    assert header[58:62] == b"0005" and header[77:80] == b"135"
    assert header[95:96] == b"1" and header[96:103] == b"1234567"
    assert header[103:] == b" " * 17
    # data: 被仕向銀行番号 (2-5), 支店 (21-23), 預金種目 (43), 口座番号 (44-50), 受取人名
    # (51-80), 振込金額 (81-90), 新規コード (91), 顧客コード1 and 2 (92-111), 振込指定区分 (112)
    assert first[0:1] == b"2" and first[1:5] == b"0009"
    assert first[20:23] == b"227" and first[23:38].decode("cp932") == "ｼﾝｼﾞﾕｸ".ljust(15)
    assert first[38:42] == b"    "
    assert first[42:43] == b"1" and first[43:50] == b"7654321"
    assert first[50:80].decode("cp932") == "ｶ)ﾄｳｷﾖｳｶﾞｽ".ljust(30)
    assert first[80:90] == b"0000064507"
    assert first[90:91] == b"0"
    assert first[91:101] == b"0000000001" and first[101:111] == b"2026110100"
    assert first[111:112] == b"7" and first[112:] == b" " * 8
    assert second[80:90] == b"0001200000" and second[42:43] == b"2"
    # trailer: 合計件数 (2-7), 合計金額 (8-19); end: 9 and spaces
    assert trailer == b"8" + b"000002" + b"000001264507" + b" " * 101
    assert end == b"9" + b" " * 119


def test_a_file_reads_back_to_what_was_written() -> None:
    for separator, eof in ((b"\r\n", False), (b"", True)):
        data = build_payout_file(HEADER, TRANSFERS, separator=separator, eof=eof)
        assert len(data) == 5 * (120 + len(separator)) + (1 if eof else 0)
        parsed = parse_payout_file(data, source="f")
        assert parsed.header == HEADER
        assert parsed.transfers[1] == TRANSFERS[1]
        assert parsed.transfers[0] == replace(TRANSFERS[0], branch_name="ｼﾝｼﾞﾕｸ")
        assert (parsed.trailer.count, parsed.trailer.total) == (2, 1_264_507)
        assert not parsed.is_returns
        assert (
            build_payout_file(parsed.header, parsed.transfers, separator=separator, eof=eof) == data
        )


def test_a_returns_file_carries_the_reason_of_every_record() -> None:
    back = [replace(TRANSFERS[1], return_code="1")]
    data = build_payout_file(HEADER, back)
    _, record, trailer, _ = records(data)
    assert record[112:114] == b" 1" and record[114:] == b" " * 6
    assert trailer[1:19] == b"000001" + b"000001200000"
    parsed = parse_payout_file(data)
    assert parsed.is_returns and parsed.transfers[0].return_code == "1"
    assert return_meaning("1").startswith("口座なし")
    assert "unknown" in return_meaning("Q")


def test_the_customer_code_names_the_settlement() -> None:
    assert customer_code("00042", date(2026, 11, 16)) == ("0000000042", "2026111600")
    assert parse_customer_code("0000000042", "2026111600") == ("00042", date(2026, 11, 16))
    assert parse_customer_code("1000000042", "2026111600") is None
    assert parse_customer_code("0000000042", "2026133100") is None


def errors_of(data: bytes) -> set[tuple[int, str]]:
    with pytest.raises(FileErrors) as caught:
        parse_payout_file(data, source="bad")
    return {(e.record, e.field) for e in caught.value.errors}


def test_a_file_whose_trailer_or_records_disagree_is_refused_naming_record_and_field() -> None:
    good = records(build_payout_file(HEADER, TRANSFERS))
    wrong_count = good[3][:1] + b"000003" + good[3][7:]
    assert errors_of(b"\r\n".join([*good[:3], wrong_count, good[4], b""])) == {(4, "count")}
    wrong_sum = good[3][:7] + b"000001264508" + good[3][19:]
    assert errors_of(b"\r\n".join([*good[:3], wrong_sum, good[4], b""])) == {(4, "total")}
    short = good[1][:119]
    assert (2, "record") in errors_of(b"\r\n".join([good[0], short, *good[2:], b""]))
    mixed = good[2][:113] + b"1" + good[2][114:]
    assert errors_of(b"\r\n".join([good[0], good[1], mixed, *good[3:], b""])) == {
        (2, "return_code")
    }
    no_end = b"\r\n".join([*good[:4], b""])
    assert (5, "record_type") in errors_of(no_end)
    bad_kind = good[0][:1] + b"91" + good[0][3:]
    assert (1, "kind_code") in errors_of(b"\r\n".join([bad_kind, *good[1:], b""]))


def test_an_account_number_never_shows_in_an_error() -> None:
    good = records(build_payout_file(HEADER, TRANSFERS))
    bad = good[1][:43] + b"76543X1" + good[1][50:]
    with pytest.raises(FileErrors) as caught:
        parse_payout_file(b"\r\n".join([good[0], bad, *good[2:], b""]))
    (error,) = caught.value.errors
    assert error.field == "account_number" and "7654" not in str(caught.value)
    with pytest.raises(RecordError) as built:
        build_payout_file(HEADER, [replace(TRANSFERS[0], account_number="76543210")])
    assert "7654321" not in str(built.value)


def test_nothing_that_cannot_be_written_is_written() -> None:
    with pytest.raises(RecordError, match="payee_name"):
        build_payout_file(HEADER, [replace(TRANSFERS[0], payee_name="東京ガス")])
    with pytest.raises(RecordError, match="amount"):
        build_payout_file(HEADER, [replace(TRANSFERS[0], amount=0)])
    with pytest.raises(RecordError, match="transfer_mmdd"):
        build_payout_file(replace(HEADER, transfer_mmdd="1332"), TRANSFERS)


@given(st.binary(max_size=700))
def test_parsing_raises_nothing_but_file_errors(data: bytes) -> None:
    try:
        parse_payout_file(data)
    except FileErrors:
        pass


@given(st.lists(st.integers(0, 4), min_size=1, max_size=8), st.binary(min_size=1, max_size=3))
def test_a_damaged_file_raises_nothing_but_file_errors(cuts: list[int], junk: bytes) -> None:
    data = bytearray(build_payout_file(HEADER, TRANSFERS))
    for cut in cuts:
        data[cut * 122 + 50 : cut * 122 + 50 + len(junk)] = junk
    try:
        parse_payout_file(bytes(data))
    except FileErrors:
        pass
