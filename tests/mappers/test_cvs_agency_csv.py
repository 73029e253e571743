"""The agency CSV (spec/cvs.md §6): rows, the error block, the same event keys as the records."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import FileErrors, RecordError
from gateway.mappers.cvs.barcode import Barcode
from gateway.mappers.cvs.mapper import (
    AgencyError,
    AgencyRow,
    agency_lines,
    agency_row_to_canonical,
    build_agency_csv,
    build_agency_error,
    parse_agency_csv,
    parse_file,
    to_canonical,
)
from gateway.model import JST, Channel, MessageKind

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cvs"
CSV = (FIXTURES / "agency.csv").read_bytes()
LINES = CSV.split(b"\r\n")[:-1]
VECTOR = (FIXTURES / "result_file.txt").read_bytes()
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text("utf-8"))[
    "result_file.txt"
]
RECEIVED = datetime(2026, 12, 4, 6, 0, tzinfo=JST)
B3 = "91987654000030000000000000777026123100120001"


def csv_of(*rows: str) -> bytes:
    return b"".join(line + b"\r\n" for line in (LINES[0], *(r.encode("cp932") for r in rows)))


# --- the sample ------------------------------------------------------------------------------


def test_sample_rows() -> None:
    rows = parse_agency_csv(CSV, source="agency.csv")
    assert [r.kind for r in rows] == ["01", "01", "02", "03", "12", "22"]
    assert rows[0] == AgencyRow(
        kind="01",
        paid_on=date(2026, 12, 1),
        paid_time="1030",
        barcode="91987654000010000000000001234026121500054004",
        stamp=False,
        amount=5400,
        chain_code="020",
        chain_name="ローソン",
        store_code="110002",
        transfer_date=None,
        data_date=date(2026, 12, 2),
    )
    assert rows[1].stamp is True and rows[1].amount == 300_000
    assert rows[2].transfer_date == date(2026, 12, 15)
    assert (rows[4].paid_time, rows[4].amount, rows[4].transfer_date) == (
        "0000",
        12_000,
        date(2026, 12, 9),
    )
    assert rows[5].amount == 11_000  # the corrected amount, not the barcode's 12000


def test_sample_rebuilds_byte_for_byte() -> None:
    assert build_agency_csv(parse_agency_csv(CSV)) == CSV


def test_rows_have_the_event_keys_of_the_120_byte_records() -> None:
    rows = parse_agency_csv(CSV)[:4]
    records = parse_file(VECTOR).records
    assert [r.event_key for r in rows] == [r.event_key for r in records]
    assert {r.event_key for r in rows} == {"".join(p["event_key"]) for p in EXPECTED["payments"]}


def test_rows_and_records_give_the_same_payment() -> None:
    rows = parse_agency_csv(CSV)[:4]
    result = parse_file(VECTOR)
    for row, rec, raw in zip(rows, result.records, result.raw_records, strict=True):
        from_csv = agency_row_to_canonical(
            row, raw=b"row", source="poll:agency", received_at=RECEIVED
        )
        from_file = to_canonical(rec, raw=raw, source="file:x:2", received_at=RECEIVED)
        for name in (
            "channel",
            "kind",
            "event_key",
            "amount",
            "paid_at",
            "bill_key",
            "slip_reissue",
            "transfer_date",
            "store",
        ):
            assert getattr(from_csv, name) == getattr(from_file, name), name


def test_canonical_post_office_transfer_and_its_correction() -> None:
    rows = parse_agency_csv(CSV)
    transfer, correction = (
        agency_row_to_canonical(row, raw=line, source="poll:agency", received_at=RECEIVED)
        for row, line in zip(rows[4:], LINES[5:], strict=True)
    )
    assert transfer.channel is Channel.CVS
    assert transfer.kind is MessageKind.CONFIRMATION
    assert transfer.amount == 12_000
    assert transfer.transfer_date == date(2026, 12, 9)
    assert transfer.paid_at == datetime(2026, 12, 2, 0, 0, tzinfo=JST)
    assert transfer.store == "000910-0000000"
    assert transfer.bill_key == B3[2:29]
    assert transfer.raw == LINES[5]
    assert "correction" not in transfer.detail
    assert correction.kind is MessageKind.CORRECTION  # kept for an operator, not applied
    assert correction.amount == 11_000
    assert correction.detail["record_kind"] == "22"
    assert (
        correction.event_key
        == transfer.event_key
        == B3 + "20261202" + "0000" + "000910" + "0000000"
    )


def test_canonical_kinds() -> None:
    kinds = [
        agency_row_to_canonical(r, raw=b"", source="", received_at=RECEIVED).kind
        for r in parse_agency_csv(CSV)
    ]
    assert kinds == [
        "preliminary",
        "preliminary",
        "confirmation",
        "void",
        "confirmation",
        "correction",
    ]


# --- the error block -------------------------------------------------------------------------


def test_error_block_sample() -> None:
    with pytest.raises(AgencyError) as info:
        parse_agency_csv((FIXTURES / "agency_error.csv").read_bytes())
    error = info.value
    assert error.message == "認証に失敗しました。ユーザIDまたはパスワードが正しくありません。"
    assert error.at == datetime(2026, 12, 2, 9, 15, 30, tzinfo=JST)
    assert (error.status, error.code) == ("認証エラー", "E0101")


def test_error_block_round_trip() -> None:
    at = datetime(2026, 12, 2, 0, 15, 30, tzinfo=UTC)
    body = build_agency_error("期間の指定が正しくありません", at, "パラメータエラー", "E0203")
    assert body.decode("cp932").splitlines()[2] == "日時：2026/12/02 09:15:30"
    with pytest.raises(AgencyError) as info:
        parse_agency_csv(body)
    assert info.value.message == "期間の指定が正しくありません"
    assert info.value.at == at
    assert (info.value.status, info.value.code) == ("パラメータエラー", "E0203")
    with pytest.raises(ValueError):
        build_agency_error("x", datetime(2026, 12, 2), "y", "z")


def test_a_malformed_error_block_is_still_an_agency_error() -> None:
    with pytest.raises(AgencyError) as info:
        parse_agency_csv("error:\r\nシステムエラー\r\n日時：昨日\r\n".encode("cp932"))
    assert info.value.message == "システムエラー"
    assert info.value.at == "日時：昨日"
    assert (info.value.status, info.value.code) == ("", "")


# --- refusals --------------------------------------------------------------------------------


def test_invalid_sample_names_every_line_and_field() -> None:
    with pytest.raises(FileErrors) as info:
        parse_agency_csv(
            (FIXTURES / "invalid_agency.csv").read_bytes(), source="invalid_agency.csv"
        )
    assert info.value.source == "invalid_agency.csv"
    assert [(e.record, e.field) for e in info.value.errors] == [
        (2, "amount"),
        (3, "paid_on"),
        (3, "transfer_date"),
        (4, "barcode"),
        (5, "row"),
        (6, "kind"),
    ]


ROW_01 = LINES[1].decode("cp932")


@pytest.mark.parametrize(
    ("column", "value", "field"),
    [
        (2, "2400", "paid_time"),
        (3, "EAN" + ROW_01.split(",")[3][3:-1] + "5", "barcode"),
        (4, "000001", "user_field_1"),
        (5, "00000012341", "user_field_2"),
        (6, "1", "stamp"),
        (6, "2", "stamp"),
        (7, "5,400", "row"),
        (7, "５４００", "amount"),
        (8, "20", "chain_code"),
        (10, "01100020", "store_code"),
        (10, "", "store_code"),
        (11, "20261215", "transfer_date"),
        (12, "2026122", "data_date"),
    ],
)
def test_a_bad_cell_is_named(column: int, value: str, field: str) -> None:
    cells = ROW_01.split(",")
    cells[column] = value
    with pytest.raises(FileErrors) as info:
        parse_agency_csv(csv_of(",".join(cells)))
    assert field in {e.field for e in info.value.errors}
    assert {e.record for e in info.value.errors} == {2}


def test_a_post_office_row_has_time_0000_and_a_transfer_date() -> None:
    cells = LINES[5].decode("cp932").split(",")
    with pytest.raises(FileErrors) as info:
        parse_agency_csv(csv_of(",".join([*cells[:2], "1200", *cells[3:11], "0", cells[12]])))
    assert [e.field for e in info.value.errors] == ["paid_time", "transfer_date"]


def test_only_a_22_may_disagree_with_the_barcode_amount() -> None:
    cells = LINES[5].decode("cp932").split(",")
    cells[7] = "11000"
    with pytest.raises(FileErrors) as info:
        parse_agency_csv(csv_of(",".join(cells)))
    assert [e.field for e in info.value.errors] == ["amount"]
    cells[0] = "22"
    assert parse_agency_csv(csv_of(",".join(cells)))[0].amount == 11_000


def test_agency_lines_are_the_rows_raw_text() -> None:
    body = CSV.replace(b"\r\n02,", b"\r\n\r\n02,")  # a blank line 4 is left out
    rows = parse_agency_csv(body)
    lines = agency_lines(body)
    assert [no for no, _ in lines] == [2, 3, 5, 6, 7, 8]
    assert [raw for _, raw in lines] == LINES[1:]
    assert len(rows) == len(lines)


def test_a_carriage_return_inside_a_row_is_refused() -> None:
    body = CSV.replace("ローソン".encode("cp932"), "ロー\rソン".encode("cp932"), 1)
    with pytest.raises(FileErrors) as info:
        parse_agency_csv(body)
    assert [(e.record, e.field) for e in info.value.errors] == [(2, "row")]


def test_header_only_and_missing_header() -> None:
    assert parse_agency_csv(LINES[0] + b"\r\n") == []
    assert parse_agency_csv(CSV + b"\r\n") == parse_agency_csv(CSV)  # a blank last line
    for body in (b"", b"\r\n".join(LINES[1:]) + b"\r\n"):
        with pytest.raises(FileErrors) as info:
            parse_agency_csv(body)
        assert (info.value.errors[0].record, info.value.errors[0].field) == (1, "header")


def test_not_shift_jis() -> None:
    with pytest.raises(FileErrors) as info:
        parse_agency_csv(
            LINES[0]
            + b"\r\n"
            + LINES[1].replace("ローソン".encode("cp932"), b"\x81\x7f\xfc")
            + b"\r\n"
        )
    assert [(e.record, e.field) for e in info.value.errors] == [(2, "row")]


def test_build_refuses_a_row_it_could_not_parse() -> None:
    row = parse_agency_csv(CSV)[0]
    for change in (
        {"amount": 5401},
        {"chain_name": "☃"},
        {"chain_code": "20"},
        {"paid_time": "1060"},
    ):
        with pytest.raises(RecordError) as info:
            build_agency_csv([dataclasses.replace(row, **change)])  # type: ignore[arg-type]
        assert info.value.record == 2


# --- properties ------------------------------------------------------------------------------


def digit_strings(low: int, high: int | None = None) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=low, max_size=low if high is None else high)


barcodes = st.builds(
    Barcode,
    company_code=digit_strings(6),
    free_field=digit_strings(21),
    reissue=st.integers(0, 9),
    due=st.none() | st.dates(date(2000, 1, 1), date(2099, 12, 31)),
    stamp=st.booleans(),
    amount=st.integers(0, 999_999),
)
names = st.text("ローソンセブン-イレブンﾌｧﾐﾘｰﾏｰﾄ郵便局ゆうちょ銀行 ・,\"'ABC123", max_size=20)


@st.composite
def agency_rows(draw: st.DrawFn) -> AgencyRow:
    kind = draw(st.sampled_from(["01", "02", "03", "12", "22"]))
    code = draw(barcodes)
    post_office = kind in ("12", "22")
    return AgencyRow(
        kind=kind,
        paid_on=draw(st.dates(date(1000, 1, 1))),
        paid_time="0000"
        if post_office
        else f"{draw(st.integers(0, 23)):02d}{draw(st.integers(0, 59)):02d}",
        barcode=code.digits,
        stamp=code.stamp,
        amount=draw(st.integers(0, 10**9)) if kind == "22" else code.amount,
        chain_code=draw(digit_strings(3)),
        chain_name=draw(names),
        store_code=draw(digit_strings(1, 7)),
        transfer_date=draw(st.dates(date(1000, 1, 1))) if kind in ("02", "12", "22") else None,
        data_date=draw(st.dates(date(1000, 1, 1))),
    )


@given(st.lists(agency_rows(), max_size=5))
def test_build_then_parse(rows: list[AgencyRow]) -> None:
    body = build_agency_csv(rows)
    assert parse_agency_csv(body) == rows
    assert build_agency_csv(parse_agency_csv(body)) == body


@given(agency_rows())
def test_a_row_and_its_record_agree_on_the_key(row: AgencyRow) -> None:
    event = agency_row_to_canonical(row, raw=b"", source="", received_at=RECEIVED)
    assert event.event_key == row.barcode + row.paid_on.strftime("%Y%m%d").zfill(
        8
    ) + row.paid_time + (row.chain_code.zfill(6) + row.store_code.zfill(7))
    assert event.paid_at.utcoffset() == timedelta(hours=9)


@given(
    st.binary(max_size=400)
    | st.just(b"error:\r\n").flatmap(
        lambda head: st.binary(max_size=80).map(lambda tail: head + tail)
    )
)
def test_parse_raises_nothing_but_file_errors_or_agency_error(body: bytes) -> None:
    try:
        parse_agency_csv(body)
    except FileErrors as exc:
        assert all(isinstance(e, RecordError) for e in exc.errors)
    except AgencyError:
        pass


@given(st.integers(0, len(CSV)), st.binary(max_size=4), st.integers(0, 3))
def test_parse_of_a_damaged_sample(offset: int, new: bytes, dropped: int) -> None:
    body = CSV[:offset] + new + CSV[offset + dropped :]
    try:
        rows = parse_agency_csv(body)
    except (FileErrors, AgencyError):
        return
    assert parse_agency_csv(build_agency_csv(rows)) == rows
