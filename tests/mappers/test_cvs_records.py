"""CVS 120-byte result records and result files (spec/cvs.md §2, §3) against the shared vectors."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from construct import ConstructError, Struct
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import FileErrors, RecordError
from gateway.mappers.cvs.barcode import Barcode
from gateway.mappers.cvs.mapper import (
    CHAINS,
    RecordKind,
    ResultRecord,
    build_file,
    build_record,
    chain_name,
    parse_file,
    parse_record,
    to_canonical,
)
from gateway.mappers.cvs.records import BY_TYPE, DATA, END, HEADER, RECORD_LENGTH, TRAILER
from gateway.mappers.fields import build_fields, parse_fields, record_size
from gateway.model import JST, Channel, MessageKind

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cvs"
VECTOR = (FIXTURES / "result_file.txt").read_bytes()
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text("utf-8"))[
    "result_file.txt"
]
RECORDS = VECTOR.split(b"\r\n")[:-1]
RECEIVED = datetime(2026, 12, 2, 6, 0, tzinfo=JST)

# (record number, field) of every error each invalid fixture must be refused with (README.md).
INVALID = {
    "invalid_short_record.txt": {(3, "record")},
    "invalid_unknown_type.txt": {(3, "record_type")},
    "invalid_unknown_kind.txt": {(3, "kind")},
    "invalid_data_after_trailer.txt": {(6, "record_type")},
    "invalid_trailer_count.txt": {(6, "count")},
    "invalid_trailer_sum.txt": {(6, "total")},
    "invalid_bad_date.txt": {(2, "paid_on")},
    "invalid_check_digit.txt": {(4, "barcode")},
    "invalid_several.txt": {(2, "paid_on"), (4, "barcode"), (6, "count")},
}


def final_status(kinds: list[RecordKind]) -> str:
    if RecordKind.VOID in kinds:
        return "voided"
    return "confirmed" if RecordKind.CONFIRMATION in kinds else "pending"


# --- the vector file -------------------------------------------------------------------------


def test_vector_file_gives_what_expected_json_says() -> None:
    result = parse_file(VECTOR, source="result_file.txt")
    assert len(result.records) == EXPECTED["data_records"] == 4
    assert result.trailer_count == 4
    assert result.trailer_sum == EXPECTED["trailer_sum"] == 610_800
    assert (result.file_date, result.company_code) == (date(2026, 12, 2), "987654")
    assert result.agency_name == "ｼﾕｳﾉｳﾀﾞｲｺｳ"
    assert result.raw_records == tuple(RECORDS[1:5])

    by_key: dict[str, list[ResultRecord]] = defaultdict(list)
    for rec in result.records:
        by_key[rec.event_key].append(rec)
    assert set(by_key) == {"".join(p["event_key"]) for p in EXPECTED["payments"]}
    for payment in EXPECTED["payments"]:
        recs = by_key["".join(payment["event_key"])]
        assert {r.barcode for r in recs} == {payment["barcode"]}
        assert final_status([r.kind for r in recs]) == payment["final_status"]
        transfer = {r.transfer_date for r in recs if r.transfer_date}
        assert transfer == (
            {date.fromisoformat(payment["transfer_date"])} if "transfer_date" in payment else set()
        )
    first, second = (by_key["".join(p["event_key"])] for p in EXPECTED["payments"])
    assert [r.kind for r in first] == [RecordKind.PRELIMINARY, RecordKind.CONFIRMATION]
    assert [r.kind for r in second] == [RecordKind.PRELIMINARY, RecordKind.VOID]


def test_vector_first_record_fields() -> None:
    rec = parse_file(VECTOR).records[0]
    assert rec == ResultRecord(
        kind=RecordKind.PRELIMINARY,
        paid_on=date(2026, 12, 1),
        paid_time="1030",
        barcode="91987654000010000000000001234026121500054004",
        store_code="0110002",
        customer_segment="  ",
        data_date=date(2026, 12, 2),
        transfer_date=None,
        accounting_date=None,
        chain_code="000020",
    )


def test_vector_file_rebuilds_byte_for_byte() -> None:
    result = parse_file(VECTOR)
    rebuilt = build_file(result.file_date, result.company_code, result.agency_name, result.records)
    assert rebuilt == VECTOR


@pytest.mark.parametrize(
    ("separator", "eof"),
    [(b"", True), (b"", False), (b"\r\n", True)],
    ids=["none+1A", "none", "crlf+1A"],
)
def test_other_framings_parse_the_same(separator: bytes, eof: bool) -> None:
    data = b"".join(r + separator for r in RECORDS) + (b"\x1a" if eof else b"")
    assert parse_file(data) == parse_file(VECTOR)
    result = parse_file(data)
    again = build_file(
        result.file_date,
        result.company_code,
        result.agency_name,
        result.records,
        separator=separator,
        eof=eof,
    )
    assert again == data


def test_the_last_crlf_is_optional() -> None:
    assert parse_file(VECTOR.removesuffix(b"\r\n")) == parse_file(VECTOR)


def test_vector_events() -> None:
    events = parse_file(VECTOR).events(name="result_file.txt", received_at=RECEIVED)
    assert [e.kind for e in events] == [
        MessageKind.PRELIMINARY,
        MessageKind.PRELIMINARY,
        MessageKind.CONFIRMATION,
        MessageKind.VOID,
    ]
    assert [e.source for e in events] == [f"file:result_file.txt:{n}" for n in (2, 3, 4, 5)]
    assert [e.amount for e in events] == [5400, 300_000, 5400, 300_000]
    assert [e.raw for e in events] == RECORDS[1:5]
    confirmation = events[2]
    assert confirmation.channel is Channel.CVS
    assert (
        confirmation.event_key
        == events[0].event_key
        == "".join(EXPECTED["payments"][0]["event_key"])
    )
    assert confirmation.bill_key == "987654000010000000000001234"
    assert confirmation.slip_reissue == 0
    assert confirmation.paid_at == datetime(2026, 12, 1, 10, 30, tzinfo=JST)
    assert confirmation.paid_at.utcoffset() == timedelta(hours=9)
    assert confirmation.transfer_date == date(2026, 12, 15)
    assert confirmation.store == "000020-0110002"
    assert confirmation.received_at == RECEIVED
    assert confirmation.detail == {
        "record_kind": "02",
        "chain_code": "000020",
        "store_code": "0110002",
        "data_date": "2026-12-02",
        "customer_segment": "  ",
    }
    assert events[3].store == "000010-0220417"
    assert events[3].paid_at == datetime(2026, 12, 1, 19, 45, tzinfo=JST)


def test_chain_names() -> None:
    assert CHAINS["000020"] == "ローソン"
    assert chain_name("010") == chain_name("000010") == "セブン-イレブン"
    assert chain_name("999") is None


# --- each record type ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema", [HEADER, DATA, TRAILER, END], ids=["header", "data", "trailer", "end"]
)
def test_every_schema_is_120_bytes_and_ends_with_terminated(schema: Struct) -> None:
    assert record_size(schema) == RECORD_LENGTH == 120
    raw = next(r for r in RECORDS if BY_TYPE[r[:1]] is schema)
    with pytest.raises(ConstructError):
        schema.parse(raw + b" ")


@pytest.mark.parametrize("number", range(1, 8))
def test_every_record_of_the_vector_round_trips(number: int) -> None:
    raw = RECORDS[number - 1]
    schema = BY_TYPE[raw[:1]]
    values, errors = parse_fields(schema, raw, network="cvs", record=number)
    assert errors == []
    assert build_fields(schema, values, network="cvs") == raw
    # The construct struct itself reads and writes the same bytes.
    parsed = schema.parse(raw)
    assert {k: v for k, v in parsed.items() if not k.startswith("_")} == values
    assert schema.build(values) == raw


def test_trailer_and_end_values() -> None:
    assert parse_fields(TRAILER, RECORDS[5], network="cvs", record=6)[0] == {
        "record_type": None,
        "count": 4,
        "total": 610_800,
        "filler": None,
    }
    assert parse_fields(END, RECORDS[6], network="cvs", record=7) == (
        {"record_type": None, "filler": None},
        [],
    )


@pytest.mark.parametrize("raw", RECORDS[1:5], ids=["01", "01b", "02", "03"])
def test_data_records_round_trip(raw: bytes) -> None:
    rec = parse_record(raw, record_no=2)
    assert build_record(rec) == raw
    assert parse_record(build_record(rec)) == rec


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_files_are_refused_whole(name: str) -> None:
    with pytest.raises(FileErrors) as info:
        parse_file((FIXTURES / name).read_bytes(), source=name)
    assert info.value.source == name
    assert {(e.record, e.field) for e in info.value.errors} == INVALID[name]
    assert all(e.network == "cvs" and e.reason for e in info.value.errors)


def test_a_short_record_is_named_with_its_length() -> None:
    with pytest.raises(FileErrors) as info:
        parse_file((FIXTURES / "invalid_short_record.txt").read_bytes())
    assert "119" in info.value.errors[0].reason


def test_unseparated_file_with_a_short_record() -> None:
    data = b"".join(RECORDS[:2]) + RECORDS[2][:119] + b"".join(RECORDS[3:])
    with pytest.raises(FileErrors) as info:
        parse_file(data)
    # Back to back, the records after the short one are shifted: the file is refused, and its
    # last record (7) comes out one byte short.
    assert (3, "filler_2") in {(e.record, e.field) for e in info.value.errors}
    assert any(
        e.record == 7 and e.field == "record" and "119" in e.reason for e in info.value.errors
    )


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([], {(1, "record")}),
        (RECORDS[1:], {(1, "record_type")}),
        (RECORDS[:5] + RECORDS[6:], {(6, "record_type")}),
        (RECORDS[:6], {(7, "record_type")}),
        # The trailer counts every data record of the file, even one out of place.
        ([*RECORDS, RECORDS[1]], {(8, "record_type"), (6, "count"), (6, "total")}),
        (RECORDS[:1] + RECORDS, {(2, "record_type")}),
        (RECORDS[:6] + RECORDS[5:], {(7, "record_type")}),
    ],
    ids=["empty", "no-header", "no-trailer", "no-end", "after-end", "two-headers", "two-trailers"],
)
def test_record_order(records: list[bytes], expected: set[tuple[int, str]]) -> None:
    with pytest.raises(FileErrors) as info:
        parse_file(b"".join(r + b"\r\n" for r in records))
    assert {(e.record, e.field) for e in info.value.errors} == expected


def _with(raw: bytes, offset: int, new: bytes) -> bytes:
    return raw[:offset] + new + raw[offset + len(new) :]


@pytest.mark.parametrize(
    ("offset", "new", "field"),
    [
        (0, b"1", "record_type"),
        (1, b"04", "kind"),
        (3, b"20260230", "paid_on"),
        (11, b"2400", "paid_time"),
        (11, b"1260", "paid_time"),
        (15, b"2", "barcode_kind"),
        (16, b"92", "barcode"),
        (59, b"5", "barcode"),
        (60, b"000", "filler_1"),
        (63, b"011000A", "store_code"),
        (70, b"A1", "customer_segment"),
        (80, b"20261215", "transfer_date"),  # an 01 with a transfer date
        (88, b"2026131 ", "accounting_date"),
        (96, b"00002 ", "chain_code"),
        (119, b"X", "filler_2"),
    ],
)
def test_parse_record_names_the_field(offset: int, new: bytes, field: str) -> None:
    with pytest.raises(RecordError) as info:
        parse_record(_with(RECORDS[1], offset, new), record_no=12)
    assert (info.value.network, info.value.record, info.value.field) == ("cvs", 12, field)


def test_a_confirmation_must_carry_its_transfer_date() -> None:
    with pytest.raises(RecordError) as info:
        parse_record(_with(RECORDS[3], 80, b"00000000"), record_no=4)
    assert (info.value.record, info.value.field) == (4, "transfer_date")


def test_a_bad_barcode_says_why() -> None:
    with pytest.raises(RecordError) as info:
        parse_record(_with(RECORDS[1], 59, b"5"))
    assert info.value.field == "barcode"
    assert "check" in info.value.reason


def test_the_ceiling_is_the_contract_s() -> None:
    assert parse_record(RECORDS[2]).barcode.endswith("3000000")
    with pytest.raises(RecordError) as info:
        parse_record(RECORDS[2], ceiling=299_999)
    assert info.value.field == "barcode"
    with pytest.raises(FileErrors):
        parse_file(VECTOR, ceiling=299_999)


def test_build_record_refuses_a_record_it_could_not_write() -> None:
    rec = parse_record(RECORDS[1])
    for change in (
        {"paid_time": "2460"},
        {"store_code": "110002"},
        {"transfer_date": date(2026, 12, 15)},
        {"barcode": rec.barcode[:-1] + "5"},
        {"customer_segment": "A "},
    ):
        with pytest.raises(RecordError):
            build_record(dataclasses.replace(rec, **change))  # type: ignore[arg-type]


def test_to_canonical_kinds() -> None:
    kinds = [
        to_canonical(parse_record(r), raw=r, source="link:cvs", received_at=RECEIVED).kind
        for r in RECORDS[1:5]
    ]
    assert kinds == ["preliminary", "preliminary", "confirmation", "void"]


# --- properties ------------------------------------------------------------------------------

digit_strings = lambda n: st.text("0123456789", min_size=n, max_size=n)  # noqa: E731
barcodes = st.builds(
    Barcode,
    company_code=digit_strings(6),
    free_field=digit_strings(21),
    reissue=st.integers(0, 9),
    due=st.none() | st.dates(date(2000, 1, 1), date(2099, 12, 31)),
    stamp=st.booleans(),
    amount=st.integers(0, 999_999),
).map(lambda b: b.digits)
times = st.builds(lambda h, m: f"{h:02d}{m:02d}", st.integers(0, 23), st.integers(0, 59))


@st.composite
def result_records(draw: st.DrawFn) -> ResultRecord:
    kind = draw(st.sampled_from(RecordKind))
    return ResultRecord(
        kind=kind,
        paid_on=draw(st.dates()),
        paid_time=draw(times),
        barcode=draw(barcodes),
        store_code=draw(digit_strings(7)),
        customer_segment=draw(st.text("0123456789 ", min_size=2, max_size=2)),
        data_date=draw(st.dates()),
        transfer_date=draw(st.dates()) if kind is RecordKind.CONFIRMATION else None,
        accounting_date=draw(st.none() | st.dates()),
        chain_code=draw(digit_strings(6)),
    )


@given(result_records())
def test_build_then_parse_a_record(rec: ResultRecord) -> None:
    raw = build_record(rec)
    assert len(raw) == 120
    assert parse_record(raw) == rec
    assert build_record(parse_record(raw)) == raw


@given(
    st.dates(),
    digit_strings(6),
    st.text("ｱｲｳｴｵｶｷｸｹｺﾞﾟ ABC", max_size=40).map(str.rstrip),
    st.lists(result_records(), max_size=5),
    st.sampled_from([b"\r\n", b""]),
    st.booleans(),
)
def test_build_then_parse_a_file(
    file_date: date,
    company: str,
    name: str,
    records: list[ResultRecord],
    separator: bytes,
    eof: bool,
) -> None:
    data = build_file(file_date, company, name, records, separator=separator, eof=eof)
    result = parse_file(data)
    assert (result.file_date, result.company_code, result.agency_name) == (file_date, company, name)
    assert list(result.records) == records
    assert result.trailer_count == len(records)
    assert (
        build_file(file_date, company, name, result.records, separator=separator, eof=eof) == data
    )


@given(st.binary(max_size=200) | st.binary(min_size=120, max_size=120))
def test_parse_record_raises_nothing_but_record_error(raw: bytes) -> None:
    try:
        rec = parse_record(raw)
    except RecordError:
        return
    assert build_record(rec) == raw


@given(st.integers(0, 119), st.binary(min_size=1, max_size=3))
def test_parse_record_of_a_damaged_record(offset: int, new: bytes) -> None:
    raw = _with(RECORDS[3], offset, new)[:120]
    try:
        assert build_record(parse_record(raw)) == raw
    except RecordError as exc:
        assert exc.field


@given(st.binary(max_size=1000))
def test_parse_file_raises_nothing_but_file_errors(data: bytes) -> None:
    try:
        parse_file(data)
    except FileErrors as exc:
        assert exc.errors
        assert all(isinstance(e, RecordError) for e in exc.errors)


@given(
    st.lists(
        st.tuples(st.integers(0, len(VECTOR)), st.binary(max_size=4), st.integers(0, 3)), max_size=4
    )
)
def test_parse_file_of_a_damaged_vector(edits: list[tuple[int, bytes, int]]) -> None:
    data = VECTOR
    for offset, new, dropped in edits:
        data = data[:offset] + new + data[offset + dropped :]
    try:
        result = parse_file(data)
    except FileErrors as exc:
        assert exc.errors
        return
    rebuilt = build_file(result.file_date, result.company_code, result.agency_name, result.records)
    assert parse_file(rebuilt) == result
