"""MPN link messages (spec/mpn.md §3-§5): layouts, round trips, refusals, answers, events."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import RecordError
from gateway.mappers.fields import record_size
from gateway.mappers.mpn.mapper import (
    BODY_TYPES,
    RESPONSE_CODES,
    Ack,
    Body,
    Cancel,
    Close,
    Echo,
    Header,
    Inquiry,
    InquiryAnswer,
    Key,
    Message,
    Open,
    PaymentChannel,
    PaymentNotice,
    ResendCheck,
    build_message,
    parse_message,
    response_for,
    to_canonical,
)
from gateway.mappers.mpn.records import BODIES, HEADER, REQUEST_TYPES
from gateway.model import JST, Channel, MessageKind

DAY = date(2026, 4, 1)
KEY = Key("12345", "1234500000000017", "123456")
PAID_AT = datetime(2026, 4, 1, 9, 30, 15, tzinfo=JST)
PAYMENT = PaymentNotice(KEY, 12000, PAID_AT, "0005", PaymentChannel.INTERNET)
RECEIVED = datetime(2026, 4, 1, 9, 30, 16, tzinfo=JST)
RESERVED = b" " * 12


def header(type_: str, serial: str = "00000043", code: str = "0000") -> Header:
    return Header(type_, "0001", DAY, serial, code)


#: One valid body of every type, with its body length from §4.
SAMPLES: dict[str, tuple[Body, int]] = {
    "1000": (Open("12345", DAY), 13),
    "1010": (Open("12345", DAY), 13),
    "1100": (Inquiry(KEY), 31),
    "1110": (InquiryAnswer(KEY, 12000, date(2026, 4, 30), "ｶﾌﾞｼｷｶﾞｲｼｬ ｻﾝﾌﾟﾙ"), 89),
    "1200": (PAYMENT, 60),
    "1210": (Ack(KEY), 31),
    "1300": (Cancel("0001", DAY, "00000043", KEY, 12000), 61),
    "1310": (Ack(KEY), 31),
    "1400": (ResendCheck(PAYMENT), 60),
    "1410": (Ack(KEY), 31),
    "1800": (Echo(), 0),
    "1810": (Echo(), 0),
    "1900": (Close(DAY, 3, 36000, 1, 12000), 52),
    "1910": (Close(DAY, 3, 36000, 1, 12000), 52),
}

# The hand-checked 照会 (1100): header, then key = 収納機関番号 + お客様番号 + 確認番号.
INQUIRY_BYTES = (
    b"1100"  # message type
    b"0001"  # 仕向センタコード
    b"20260401"  # 仕向処理年月日
    b"00000042"  # 仕向処理通番
    b"0000"  # response code
    b"            "  # reserved, 12 spaces
    b"12345"  # 収納機関番号
    b"1234500000000017    "  # お客様番号, 20, left-aligned, space-padded
    b"123456"  # 確認番号, 6
)

# The hand-checked 消込 (1200).
PAYMENT_BYTES = (
    b"1200" b"0001" b"20260401" b"00000043" b"0000" b"            "
    b"12345" b"1234500000000017    " b"123456"  # key
    b"0000012000"  # amount, 10
    b"20260401093015"  # paid at YYYYMMDDhhmmss
    b"0005"  # bank code
    b"2"  # channel: internet
)  # fmt: skip


def test_schema_sizes() -> None:
    assert record_size(HEADER) == 40
    assert {t: record_size(s) for t, s in BODIES.items()} == {t: n for t, (_, n) in SAMPLES.items()}
    assert set(SAMPLES) == set(BODIES) == set(BODY_TYPES)


@pytest.mark.parametrize("type_", sorted(SAMPLES))
def test_every_type_builds_to_its_length_and_round_trips(type_: str) -> None:
    body, size = SAMPLES[type_]
    msg = Message(header(type_, code="0000" if type_ in REQUEST_TYPES else "1001"), body)
    data = build_message(msg)
    assert len(data) == 40 + size
    assert data[:4] == type_.encode() and data[28:40] == RESERVED
    assert parse_message(data) == msg
    assert build_message(parse_message(data)) == data


def test_inquiry_bytes() -> None:
    msg = Message(header("1100", serial="00000042"), Inquiry(KEY))
    assert len(INQUIRY_BYTES) == 71
    assert build_message(msg) == INQUIRY_BYTES
    assert parse_message(INQUIRY_BYTES) == msg


def test_payment_bytes() -> None:
    msg = Message(header("1200"), PAYMENT)
    assert len(PAYMENT_BYTES) == 100
    assert build_message(msg) == PAYMENT_BYTES
    parsed = parse_message(PAYMENT_BYTES)
    assert parsed == msg
    assert isinstance(parsed.body, PaymentNotice)
    assert parsed.body.paid_at.utcoffset() == timedelta(hours=9)


def test_short_numbers_are_padded_and_stripped() -> None:
    key = Key("00001", "42", "0007")
    data = build_message(Message(header("1100"), Inquiry(key)))
    assert data[40:] == b"00001" + b"42" + b" " * 18 + b"0007  "
    assert parse_message(data).body == Inquiry(key)


def test_paid_at_in_another_zone_is_written_in_jst() -> None:
    utc = PAID_AT.astimezone(UTC)
    data = build_message(Message(header("1200"), dataclasses.replace(PAYMENT, paid_at=utc)))
    assert data == PAYMENT_BYTES


def _with(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


INQUIRY_ANSWER = build_message(Message(header("1110"), SAMPLES["1110"][0]))
BAD = {
    "short header": (PAYMENT_BYTES[:39], "header"),
    "short body": (PAYMENT_BYTES[:-1], "body"),
    "long body": (PAYMENT_BYTES + b"0", "body"),
    "unknown type": (_with(PAYMENT_BYTES, 0, b"1234"), "type"),
    "letter in type": (_with(PAYMENT_BYTES, 0, b"12A0"), "type"),
    "bad center code": (_with(PAYMENT_BYTES, 4, b"00 1"), "center_code"),
    "bad business date": (_with(PAYMENT_BYTES, 8, b"20260230"), "business_date"),
    "bad serial": (_with(PAYMENT_BYTES, 16, b"0000004-"), "serial"),
    "request not 0000": (_with(PAYMENT_BYTES, 24, b"1001"), "response_code"),
    "reserved not spaces": (_with(PAYMENT_BYTES, 28, b"X"), "reserved"),
    "bad institution code": (_with(PAYMENT_BYTES, 40, b"1234 "), "institution_code"),
    "customer number right-aligned": (
        _with(PAYMENT_BYTES, 45, b"    1234500000000017"),
        "customer_number",
    ),
    "empty customer number": (_with(PAYMENT_BYTES, 45, b" " * 20), "customer_number"),
    "full-width digit": (_with(PAYMENT_BYTES, 45, "１".encode("cp932")), "customer_number"),
    "short confirmation number": (_with(PAYMENT_BYTES, 65, b"123   "), "confirmation_number"),
    "non-digit amount": (_with(PAYMENT_BYTES, 71, b"00000120A0"), "amount"),
    "full-width amount": (_with(PAYMENT_BYTES, 71, "０００００".encode("cp932")), "amount"),
    "bad paid date": (_with(PAYMENT_BYTES, 81, b"20261301"), "paid_date"),
    "bad paid time": (_with(PAYMENT_BYTES, 89, b"246000"), "paid_time"),
    "bad bank code": (_with(PAYMENT_BYTES, 95, b"00x5"), "bank_code"),
    "bad channel": (_with(PAYMENT_BYTES, 99, b"4"), "channel"),
    "full-width name": (_with(INQUIRY_ANSWER, 89, "カナ".encode("cp932")), "biller_name"),
    "not CP932": (_with(INQUIRY_ANSWER, 89, b"\x80\xff"), "biller_name"),
    "bad due date": (_with(INQUIRY_ANSWER, 81, b"20260431"), "due_date"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_messages_are_refused_naming_the_field(case: str) -> None:
    data, field = BAD[case]
    with pytest.raises(RecordError) as info:
        parse_message(data)
    assert (info.value.network, info.value.record, info.value.field) == ("mpn", 0, field)


def test_too_long_a_message_is_refused() -> None:
    with pytest.raises(RecordError) as info:
        parse_message(PAYMENT_BYTES + b" " * 4000)
    assert info.value.field == "message"


@pytest.mark.parametrize(
    ("msg", "field"),
    [
        (Message(header("1100"), Inquiry(Key("12345", "123", "12"))), "confirmation_number"),
        (Message(header("1100"), Inquiry(Key("12345", "1" * 21, "1234"))), "customer_number"),
        (Message(header("1100"), Inquiry(Key("12345", "１２３", "1234"))), "customer_number"),
        (Message(header("1100"), Inquiry(Key("1234", "123", "1234"))), "institution_code"),
        (Message(header("1110"), InquiryAnswer(KEY, 1, DAY, "カナ")), "biller_name"),
        (Message(header("1110"), InquiryAnswer(KEY, 1, DAY, "ｱ" * 41)), "biller_name"),
        (Message(header("1110"), InquiryAnswer(KEY, 10**10, DAY, "")), "amount"),
        (Message(header("1200"), dataclasses.replace(PAYMENT, amount=-1)), "amount"),
        (
            Message(
                header("1200"), dataclasses.replace(PAYMENT, paid_at=PAID_AT.replace(tzinfo=None))
            ),
            "paid_at",
        ),
        (Message(header("1200"), Inquiry(KEY)), "body"),
        (Message(header("1234"), Echo()), "type"),
        (Message(header("1800", code="9001"), Echo()), "response_code"),
        (Message(header("1810", code="12"), Echo()), "response_code"),
    ],
)
def test_build_refuses_what_a_message_cannot_hold(msg: Message, field: str) -> None:
    with pytest.raises(RecordError) as info:
        build_message(msg)
    assert info.value.field == field


# --- answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("type_", sorted(REQUEST_TYPES))
def test_response_copies_the_triple(type_: str) -> None:
    request = Message(header(type_, serial="12345678"), SAMPLES[type_][0])
    answer_type = f"{int(type_) + 10}"
    body = SAMPLES[answer_type][0] if answer_type in ("1110", "1910") else None
    response = response_for(request, "0000", body)
    assert response.header == Header(answer_type, "0001", DAY, "12345678", "0000")
    assert response.header.triple == request.header.triple == ("0001", DAY, "12345678")
    assert parse_message(build_message(response)) == response


def test_response_bodies_by_default() -> None:
    resend = Message(header("1400"), ResendCheck(PAYMENT))
    assert response_for(resend, "0000").body == Ack(KEY)
    inquiry = Message(header("1100"), Inquiry(KEY))
    refused = response_for(inquiry, "1002")
    assert refused.body == InquiryAnswer(KEY, 0, None, "")
    assert build_message(refused)[-58:] == b"0" * 18 + b" " * 40
    with pytest.raises(ValueError, match="needs its body"):
        response_for(inquiry, "0000")
    with pytest.raises(ValueError, match="needs its body"):
        response_for(Message(header("1900"), SAMPLES["1900"][0]), "0000")
    with pytest.raises(ValueError, match="unknown response code"):
        response_for(inquiry, "1234")
    with pytest.raises(ValueError, match="not a request"):
        response_for(refused, "0000")
    with pytest.raises(TypeError):
        response_for(inquiry, "0000", Ack(KEY))


def test_response_codes() -> None:
    assert set(RESPONSE_CODES) == {
        "0000", "1001", "1002", "1003", "1004", "1005", "1006", "2001", "9001"
    }  # fmt: skip
    assert RESPONSE_CODES["2001"] == "format error"


# --- canonical events ------------------------------------------------------------------------


def test_payment_event() -> None:
    msg = parse_message(PAYMENT_BYTES)
    event = to_canonical(msg, raw=PAYMENT_BYTES, source="link:mpn", received_at=RECEIVED)
    assert event.channel is Channel.PAYEASY and event.kind is MessageKind.PRELIMINARY
    assert event.event_key == "0001" + "20260401" + "00000043"
    assert (event.amount, event.paid_at, event.bill_key) == (12000, PAID_AT, "1234500000000017")
    assert event.paid_at.utcoffset() == timedelta(hours=9)
    assert event.store == "0005-2"
    assert event.detail["institution_code"] == "12345"
    assert (event.raw, event.source, event.received_at) == (PAYMENT_BYTES, "link:mpn", RECEIVED)
    assert "123456" not in event.detail.values()
    assert "123456" not in repr(msg) and "123456" not in repr(event.detail)


def test_resend_check_is_the_same_payment() -> None:
    payment = to_canonical(
        Message(header("1200"), PAYMENT), raw=b"", source="s", received_at=RECEIVED
    )
    resend = to_canonical(
        Message(header("1400"), ResendCheck(PAYMENT)), raw=b"", source="s", received_at=RECEIVED
    )
    assert resend.detail["message_type"] == "1400"
    assert dataclasses.replace(resend, detail=payment.detail) == payment


def test_cancel_event_names_the_original_payment() -> None:
    cancel = Cancel("0001", date(2026, 3, 31), "00000007", KEY, 12000)
    msg = Message(Header("1300", "0002", DAY, "00000099"), cancel)
    event = to_canonical(msg, raw=b"x", source="link:mpn", received_at=RECEIVED)
    assert event.kind is MessageKind.VOID
    assert event.event_key == "0001" + "20260331" + "00000007"
    assert event.detail["cancel_event_key"] == "0002" + "20260401" + "00000099"
    assert (event.amount, event.bill_key, event.paid_at) == (12000, "1234500000000017", RECEIVED)
    assert "123456" not in event.detail.values()


def test_other_messages_are_not_events() -> None:
    with pytest.raises(ValueError, match="not a collection event"):
        to_canonical(
            Message(header("1100"), Inquiry(KEY)), raw=b"", source="s", received_at=RECEIVED
        )


# --- properties ------------------------------------------------------------------------------

_HALF_WIDTH = "".join(chr(c) for c in range(0x20, 0x7F)) + "".join(
    chr(c) for c in range(0xFF61, 0xFFA0)
)


def _digits(lo: int, hi: int | None = None) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=lo, max_size=lo if hi is None else hi)


days = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
keys = st.builds(Key, _digits(5), _digits(1, 20), _digits(4, 6))
amounts = st.integers(0, 10**10 - 1)
payments = st.builds(
    PaymentNotice,
    keys,
    amounts,
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.replace(microsecond=0, tzinfo=JST)
    ),
    _digits(4),
    st.sampled_from(PaymentChannel),
)
counts, sums = st.integers(0, 10**8 - 1), st.integers(0, 10**14 - 1)
BODY_STRATEGIES: dict[type, st.SearchStrategy[Body]] = {
    Open: st.builds(Open, _digits(5), days),
    Inquiry: st.builds(Inquiry, keys),
    InquiryAnswer: st.builds(
        InquiryAnswer,
        keys,
        amounts,
        st.none() | days,
        st.text(_HALF_WIDTH, max_size=40).map(lambda s: s.rstrip(" ")),
    ),
    PaymentNotice: payments,
    Cancel: st.builds(Cancel, _digits(4), days, _digits(8), keys, amounts),
    ResendCheck: st.builds(ResendCheck, payments),
    Ack: st.builds(Ack, keys),
    Echo: st.just(Echo()),
    Close: st.builds(Close, days, counts, sums, counts, sums),
}


@st.composite
def messages(draw: st.DrawFn) -> Message:
    type_ = draw(st.sampled_from(sorted(BODY_TYPES)))
    code = "0000" if type_ in REQUEST_TYPES else draw(st.sampled_from(sorted(RESPONSE_CODES)))
    head = Header(type_, draw(_digits(4)), draw(days), draw(_digits(8)), code)
    return Message(head, draw(BODY_STRATEGIES[BODY_TYPES[type_]]))


@given(messages())
def test_build_then_parse_round_trips(msg: Message) -> None:
    data = build_message(msg)
    assert len(data) == 40 + record_size(BODIES[msg.header.type])
    assert parse_message(data) == msg
    assert build_message(parse_message(data)) == data


@st.composite
def near_messages(draw: st.DrawFn) -> bytes:
    """Valid messages with a few bytes changed, cut or added: they reach the body rules."""
    data = bytearray(build_message(draw(messages())))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        data[at : at + 1] = draw(st.binary(max_size=2))
    return bytes(data)


@given(st.binary(max_size=200) | near_messages())
def test_parse_raises_nothing_but_record_error(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except RecordError as exc:
        assert exc.network == "mpn" and exc.record == 0 and exc.field
    else:
        assert build_message(msg) == data
