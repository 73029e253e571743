"""The MPN link's 40-byte header and message bodies (spec/mpn.md §3, §4).

Every field is an adapter of :mod:`gateway.mappers.fields`; every struct ends with ``Terminated``.
お客様番号 and 確認番号 are left-aligned, space-padded digits: the schema admits digits and spaces
(:func:`~gateway.mappers.fields.chars`) and :func:`padded_digits_error` checks their shape, which
the mapper applies when parsing and building. The mapper parses field by field
(:func:`gateway.mappers.fields.parse_fields`), so every error names its field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from construct import Construct, Struct, Terminated

from gateway.mappers.fields import chars, date8, digits, filler, kana, numeric

NETWORK = "mpn"

HEADER_LENGTH = 40
MAX_MESSAGE_LENGTH = 4096  # §2: a longer frame closes the connection

CUSTOMER_NUMBER_LENGTH = 20
CONFIRMATION_NUMBER_LENGTH = 6
_PADDED_DIGITS = " 0123456789"

#: §3: type, the triple (仕向センタコード, 仕向処理年月日, 仕向処理通番), response code, reserved.
HEADER = Struct(
    "type" / digits(4),
    "center_code" / digits(4),
    "business_date" / date8(),
    "serial" / digits(8),
    "response_code" / digits(4),
    "reserved" / filler(12),
    Terminated,
)


def _key() -> list[Construct]:
    """§4 ``key``: 収納機関番号 (5) + お客様番号 (20) + 確認番号 (6), 31 bytes."""
    return [
        "institution_code" / digits(5),
        "customer_number" / chars(CUSTOMER_NUMBER_LENGTH, _PADDED_DIGITS),
        "confirmation_number" / chars(CONFIRMATION_NUMBER_LENGTH, _PADDED_DIGITS),
    ]


def _payment() -> list[Construct]:
    """The 消込 body after its key (also the body of 再送確認)."""
    return [
        "amount" / numeric(10),
        "paid_date" / date8(),  # paid at YYYYMMDDhhmmss: the date ...
        "paid_time" / digits(6),  # ... and hhmmss (checked by the mapper)
        "bank_code" / digits(4),
        "channel" / chars(1, "123"),  # 1 ATM, 2 internet, 3 mobile
    ]


#: 1000 / 1010 開局.
OPEN = Struct("institution_code" / digits(5), "business_date" / date8(), Terminated)

#: 1100 照会, and the response bodies that are only a key: 1210, 1310, 1410.
KEY = Struct(*_key(), Terminated)

#: 1110 照会 response. An answer other than 0000 carries amount 0, due date 00000000, no name.
INQUIRY_ANSWER = Struct(
    *_key(),
    "amount" / numeric(10),
    "due_date" / date8(zero_is_none=True),
    "biller_name" / kana(40),
    Terminated,
)

#: 1200 消込 and 1400 再送確認 (exactly the original 消込's body).
PAYMENT = Struct(*_key(), *_payment(), Terminated)

#: 1300 取消: the 消込's triple, then key + amount.
CANCEL = Struct(
    "original_center_code" / digits(4),
    "original_business_date" / date8(),
    "original_serial" / digits(8),
    *_key(),
    "amount" / numeric(10),
    Terminated,
)

#: 1800 / 1810 echo.
EMPTY = Struct(Terminated)

#: 1900 / 1910 閉局: the day's counters (the response carries the center's own).
CLOSE = Struct(
    "business_date" / date8(),
    "payments_count" / numeric(8),
    "payments_sum" / numeric(14),
    "cancels_count" / numeric(8),
    "cancels_sum" / numeric(14),
    Terminated,
)

#: Which body schema each message type carries.
BODIES: Mapping[str, Struct] = MappingProxyType(
    {
        "1000": OPEN,
        "1010": OPEN,
        "1100": KEY,
        "1110": INQUIRY_ANSWER,
        "1200": PAYMENT,
        "1210": KEY,
        "1300": CANCEL,
        "1310": KEY,
        "1400": PAYMENT,
        "1410": KEY,
        "1800": EMPTY,
        "1810": EMPTY,
        "1900": CLOSE,
        "1910": CLOSE,
    }
)

#: §5 response codes and their meanings.
RESPONSE_CODES: Mapping[str, str] = MappingProxyType(
    {
        "0000": "normal",
        "1001": "no such bill (unknown お客様番号, or wrong 確認番号)",
        "1002": "already paid (by any channel)",
        "1003": "past the due date",
        "1004": "amount differs from the bill",
        "1005": "bill cancelled by the biller",
        "1006": "the 消込 named by a 取消 is unknown",
        "2001": "format error",
        "9001": "temporarily unable; the center may retry",
    }
)

#: §4 message types, named for logs and metric labels.
TYPE_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "1000": "open",
        "1010": "open_response",
        "1100": "inquiry",
        "1110": "inquiry_response",
        "1200": "payment",
        "1210": "payment_response",
        "1300": "cancel",
        "1310": "cancel_response",
        "1400": "resend_check",
        "1410": "resend_check_response",
        "1800": "echo",
        "1810": "echo_response",
        "1900": "close",
        "1910": "close_response",
    }
)

#: The request types; each one's response type is the request type + 10.
REQUEST_TYPES = frozenset(t for t in BODIES if t[2] == "0")

_CUSTOMER_NUMBER = re.compile(r"[0-9]{1,20} *")
_CONFIRMATION_NUMBER = re.compile(r"[0-9]{4,6} *")
_HHMMSS = re.compile(r"(?:[01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]")


def padded_digits_error(field: str, text: str) -> str | None:
    """Why ``text`` (the whole padded field) is not a valid お客様番号 / 確認番号, or ``None``."""
    if field == "customer_number" and not _CUSTOMER_NUMBER.fullmatch(text):
        return "expected 1 to 20 digits, left-aligned and space-padded"
    if field == "confirmation_number" and not _CONFIRMATION_NUMBER.fullmatch(text):
        return "expected 4 to 6 digits, left-aligned and space-padded"
    return None


def time_error(text: str) -> str | None:
    """Why ``text`` is not a time hhmmss from 000000 to 235959, or ``None``."""
    return None if _HHMMSS.fullmatch(text) else "not a time hhmmss from 000000 to 235959"
