"""MPN link messages ⇄ frozen values ⇄ canonical events (spec/mpn.md §3-§5).

Pure: bytes in, frozen values or :class:`~gateway.errors.RecordError` out (``record`` is always 0:
a link message is one value, not a line of a file); no I/O, no clock (``received_at`` is passed
in). A message :func:`parse_message` refuses is answered ``2001`` by the protocol.

``parse_message(build_message(m)) == m`` and ``build_message(parse_message(b)) == b``.
The 確認番号 is a secret of the bill: it is left out of ``repr`` and of canonical events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from gateway.errors import RecordError
from gateway.mappers.fields import build_fields, parse_fields, record_size, shown
from gateway.mappers.mpn.records import (
    BODIES,
    CONFIRMATION_NUMBER_LENGTH,
    CUSTOMER_NUMBER_LENGTH,
    HEADER,
    HEADER_LENGTH,
    MAX_MESSAGE_LENGTH,
    NETWORK,
    REQUEST_TYPES,
    RESPONSE_CODES,
    TYPE_NAMES,
    padded_digits_error,
    time_error,
)
from gateway.model import JST, Channel, CollectionEvent, MessageKind

__all__ = [
    "BODY_TYPES",
    "RESPONSE_CODES",
    "TYPE_NAMES",
    "Ack",
    "Body",
    "Cancel",
    "Close",
    "Echo",
    "Header",
    "Inquiry",
    "InquiryAnswer",
    "Key",
    "Message",
    "Open",
    "PaymentChannel",
    "PaymentNotice",
    "ResendCheck",
    "build_message",
    "event_key",
    "parse_message",
    "response_for",
    "to_canonical",
]


class PaymentChannel(StrEnum):
    ATM = "1"
    INTERNET = "2"
    MOBILE = "3"


@dataclass(frozen=True)
class Header:
    type: str  # §4, e.g. "1200"
    center_code: str  # 仕向センタコード, 4 digits
    business_date: date  # 仕向処理年月日
    serial: str  # 仕向処理通番, 8 digits
    response_code: str = "0000"

    @property
    def triple(self) -> tuple[str, date, str]:
        """仕向センタコード, 年月日, 通番: matches a response to its request; names a payment."""
        return (self.center_code, self.business_date, self.serial)


def event_key(center_code: str, business_date: date, serial: str) -> str:
    """The canonical event key of a triple: 4 + 8 (YYYYMMDD) + 8 characters."""
    return f"{center_code}{business_date.year:04d}{business_date:%m%d}{serial}"


@dataclass(frozen=True)
class Key:
    """§4 ``key``; the numbers without their padding."""

    institution_code: str  # 収納機関番号, 5 digits
    customer_number: str  # お客様番号, 1-20 digits
    confirmation_number: str = field(repr=False)  # 確認番号, 4-6 digits: never logged


@dataclass(frozen=True)
class Open:  # 1000 / 1010
    institution_code: str
    business_date: date


@dataclass(frozen=True)
class Inquiry:  # 1100
    key: Key


@dataclass(frozen=True)
class InquiryAnswer:  # 1110; an answer other than 0000 has no amount, due date or name
    key: Key
    amount: int = 0
    due_date: date | None = None
    biller_name: str = ""  # CP932 half-width, up to 40


@dataclass(frozen=True)
class PaymentNotice:  # 1200 消込
    key: Key
    amount: int
    paid_at: datetime  # aware, whole seconds; built in JST
    bank_code: str  # 4 digits
    channel: PaymentChannel


@dataclass(frozen=True)
class Cancel:  # 1300 取消
    original_center_code: str
    original_business_date: date
    original_serial: str
    key: Key
    amount: int

    @property
    def original_triple(self) -> tuple[str, date, str]:
        return (self.original_center_code, self.original_business_date, self.original_serial)


@dataclass(frozen=True)
class ResendCheck:  # 1400 再送確認: the original 消込's body, under its header triple
    payment: PaymentNotice


@dataclass(frozen=True)
class Ack:  # 1210 / 1310 / 1410: the key of the request answered
    key: Key


@dataclass(frozen=True)
class Echo:  # 1800 / 1810
    pass


@dataclass(frozen=True)
class Close:  # 1900 / 1910 閉局
    business_date: date
    payments_count: int
    payments_sum: int
    cancels_count: int
    cancels_sum: int


Body = Open | Inquiry | InquiryAnswer | PaymentNotice | Cancel | ResendCheck | Ack | Echo | Close


@dataclass(frozen=True)
class Message:
    header: Header
    body: Body


#: Which body class each message type carries.
BODY_TYPES: Mapping[str, type[Body]] = MappingProxyType(
    {
        "1000": Open,
        "1010": Open,
        "1100": Inquiry,
        "1110": InquiryAnswer,
        "1200": PaymentNotice,
        "1210": Ack,
        "1300": Cancel,
        "1310": Ack,
        "1400": ResendCheck,
        "1410": Ack,
        "1800": Echo,
        "1810": Echo,
        "1900": Close,
        "1910": Close,
    }
)


def _error(field_name: str, value: object, reason: str) -> RecordError:
    return RecordError(NETWORK, 0, field_name, str(value), reason)


# --- parsing ---------------------------------------------------------------------------------


def _header_errors(type_: str, response_code: str) -> list[RecordError]:
    if type_ not in BODIES:
        return [_error("type", type_, "unknown message type")]
    if type_ in REQUEST_TYPES and response_code != "0000":
        return [_error("response_code", response_code, "a request carries 0000")]
    return []


def _body_errors(values: Mapping[str, Any]) -> list[RecordError]:
    """The rules of a body beyond its fields' formats (present fields only)."""
    errors = []
    for name in ("customer_number", "confirmation_number"):
        if name in values and (reason := padded_digits_error(name, values[name])):
            errors.append(_error(name, values[name], reason))
    if "paid_time" in values and (reason := time_error(values["paid_time"])):
        errors.append(_error("paid_time", values["paid_time"], reason))
    return errors


def _key(v: Mapping[str, Any]) -> Key:
    return Key(
        v["institution_code"],
        v["customer_number"].rstrip(" "),
        v["confirmation_number"].rstrip(" "),
    )


def _payment(v: Mapping[str, Any]) -> PaymentNotice:
    paid_at = datetime.combine(v["paid_date"], time.fromisoformat(v["paid_time"]), tzinfo=JST)
    return PaymentNotice(
        _key(v), v["amount"], paid_at, v["bank_code"], PaymentChannel(v["channel"])
    )


def _body(type_: str, v: Mapping[str, Any]) -> Body:
    kind = BODY_TYPES[type_]
    if kind is Open:
        return Open(v["institution_code"], v["business_date"])
    if kind is Inquiry:
        return Inquiry(_key(v))
    if kind is InquiryAnswer:
        return InquiryAnswer(_key(v), v["amount"], v["due_date"], v["biller_name"])
    if kind is PaymentNotice:
        return _payment(v)
    if kind is ResendCheck:
        return ResendCheck(_payment(v))
    if kind is Cancel:
        triple = (v["original_center_code"], v["original_business_date"], v["original_serial"])
        return Cancel(*triple, _key(v), v["amount"])
    if kind is Ack:
        return Ack(_key(v))
    if kind is Close:
        return Close(**{name: v[name] for name in Close.__dataclass_fields__})
    return Echo()


def parse_message(data: bytes) -> Message:
    """One message (without its 4-byte length prefix); raises the first :class:`RecordError`."""
    if len(data) < HEADER_LENGTH:
        reason = f"a message has a {HEADER_LENGTH}-byte header; got {len(data)} bytes"
        raise _error("header", shown(data), reason)
    if len(data) > MAX_MESSAGE_LENGTH:
        reason = f"a message has at most {MAX_MESSAGE_LENGTH} bytes; got {len(data)}"
        raise _error("message", shown(data[:HEADER_LENGTH]), reason)
    values, errors = parse_fields(HEADER, data[:HEADER_LENGTH], network=NETWORK, record=0)
    if errors:
        raise errors[0]
    header = Header(
        values["type"],
        values["center_code"],
        values["business_date"],
        values["serial"],
        values["response_code"],
    )
    errors = _header_errors(header.type, header.response_code)
    if errors:
        raise errors[0]
    schema, raw = BODIES[header.type], data[HEADER_LENGTH:]
    size = record_size(schema)
    if len(raw) != size:
        reason = f"a {header.type} message has a {size}-byte body; got {len(raw)} bytes"
        raise _error("body", shown(raw[: size + 1]), reason)
    values, errors = parse_fields(schema, raw, network=NETWORK, record=0)
    errors += _body_errors(values)
    if errors:
        raise errors[0]
    return Message(header, _body(header.type, values))


# --- building --------------------------------------------------------------------------------


def _key_values(key: Key) -> dict[str, object]:
    padded = {}
    for name, width in (
        ("customer_number", CUSTOMER_NUMBER_LENGTH),
        ("confirmation_number", CONFIRMATION_NUMBER_LENGTH),
    ):
        value = getattr(key, name)
        text = value.ljust(width) if isinstance(value, str) else ""
        reason = padded_digits_error(name, text)
        if reason or len(text) != width or not value.isdigit():
            raise _error(name, value, reason or f"expected 1 to {width} ASCII digits")
        padded[name] = text
    return {"institution_code": key.institution_code, **padded}


def _payment_values(p: PaymentNotice) -> dict[str, object]:
    at = p.paid_at
    if not isinstance(at, datetime) or at.tzinfo is None or at.microsecond:
        raise _error("paid_at", at, "expected an aware datetime in whole seconds")
    at = at.astimezone(JST)
    return {
        **_key_values(p.key),
        "amount": p.amount,
        "paid_date": at.date(),
        "paid_time": f"{at:%H%M%S}",
        "bank_code": p.bank_code,
        "channel": p.channel.value if isinstance(p.channel, PaymentChannel) else None,
    }


def _values(body: Body) -> dict[str, object]:
    if isinstance(body, Inquiry | Ack):
        return _key_values(body.key)
    if isinstance(body, InquiryAnswer):
        extra = {"amount": body.amount, "due_date": body.due_date, "biller_name": body.biller_name}
        return {**_key_values(body.key), **extra}
    if isinstance(body, PaymentNotice):
        return _payment_values(body)
    if isinstance(body, ResendCheck):
        return _payment_values(body.payment)
    if isinstance(body, Cancel):
        return {
            "original_center_code": body.original_center_code,
            "original_business_date": body.original_business_date,
            "original_serial": body.original_serial,
            **_key_values(body.key),
            "amount": body.amount,
        }
    if isinstance(body, Open | Close):
        return {name: getattr(body, name) for name in type(body).__dataclass_fields__}
    return {}


def build_message(msg: Message) -> bytes:
    """The bytes of ``msg`` (without a length prefix); refuses what a valid message cannot hold."""
    h = msg.header
    values = {name: getattr(h, name) for name in Header.__dataclass_fields__}
    head = build_fields(HEADER, values, network=NETWORK)
    errors = _header_errors(h.type, h.response_code)
    if errors:
        raise errors[0]
    expected = BODY_TYPES[h.type]
    if type(msg.body) is not expected:
        reason = f"a {h.type} message carries {expected.__name__}"
        raise _error("body", type(msg.body).__name__, reason)
    return head + build_fields(BODIES[h.type], _values(msg.body), network=NETWORK)


# --- answering -------------------------------------------------------------------------------


def response_for(request: Message, code: str, body: Body | None = None) -> Message:
    """The response to ``request``: its triple, type + 10, ``code`` (§5).

    Without ``body``: 1210 / 1310 / 1410 echo the request's key, 1010 its 開局 body, 1810 is
    empty, and 1110 other than 0000 is the key alone. 1110 with 0000 and 1910 need ``body``.
    """
    h = request.header
    if h.type not in REQUEST_TYPES:
        raise ValueError(f"{h.type} is not a request")
    if code not in RESPONSE_CODES:
        raise ValueError(f"unknown response code {code!r}")
    type_ = f"{int(h.type) + 10:04d}"
    if body is None:
        req = request.body
        key = req.payment.key if isinstance(req, ResendCheck) else getattr(req, "key", None)
        if type_ in ("1210", "1310", "1410") and isinstance(key, Key):
            body = Ack(key)
        elif type_ == "1110" and code != "0000" and isinstance(key, Key):
            body = InquiryAnswer(key)
        elif type_ == "1010" and isinstance(req, Open):
            body = req
        elif type_ == "1810":
            body = Echo()
        else:
            raise ValueError(f"a {type_} response with code {code} needs its body")
    if type(body) is not BODY_TYPES[type_]:
        raise TypeError(f"a {type_} response carries {BODY_TYPES[type_].__name__}")
    return Message(Header(type_, h.center_code, h.business_date, h.serial, code), body)


# --- canonical -------------------------------------------------------------------------------


def to_canonical(
    msg: Message, *, raw: bytes, source: str, received_at: datetime
) -> CollectionEvent:
    """消込 and 再送確認 → PRELIMINARY keyed by their header triple; 取消 → VOID keyed by the
    triple of the 消込 it names (``paid_at`` is then ``received_at``: a 取消 has no time)."""
    h, body = msg.header, msg.body
    detail = {"message_type": h.type, "business_date": h.business_date.isoformat()}
    if isinstance(body, PaymentNotice | ResendCheck):
        payment = body.payment if isinstance(body, ResendCheck) else body
        channel = payment.channel.value
        return CollectionEvent(
            channel=Channel.PAYEASY,
            kind=MessageKind.PRELIMINARY,
            event_key=event_key(*h.triple),
            amount=payment.amount,
            paid_at=payment.paid_at.astimezone(JST),
            received_at=received_at,
            source=source,
            raw=raw,
            bill_key=payment.key.customer_number,
            store=f"{payment.bank_code}-{channel}",
            detail={
                **detail,
                "institution_code": payment.key.institution_code,
                "bank_code": payment.bank_code,
                "channel": channel,
            },
        )
    if isinstance(body, Cancel):
        return CollectionEvent(
            channel=Channel.PAYEASY,
            kind=MessageKind.VOID,
            event_key=event_key(*body.original_triple),
            amount=body.amount,
            paid_at=received_at,
            received_at=received_at,
            source=source,
            raw=raw,
            bill_key=body.key.customer_number,
            detail={
                **detail,
                "institution_code": body.key.institution_code,
                "cancel_event_key": event_key(*h.triple),
                "cancel_center_code": h.center_code,
                "cancel_serial": h.serial,
            },
        )
    raise ValueError(f"a {h.type} message is not a collection event")
