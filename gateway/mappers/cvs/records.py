"""The 120-byte records of CVS result files and of the real-time link (spec/cvs.md §2, §3).

Schemas only: every field is an adapter of :mod:`gateway.mappers.fields`, every struct is exactly
:data:`RECORD_LENGTH` bytes and ends with ``Terminated``. The mapper parses them field by field
(:func:`gateway.mappers.fields.parse_fields`) so that every bad field of a record is reported.
"""

from __future__ import annotations

from construct import Struct, Terminated

from gateway.mappers.fields import chars, const, date8, digits, filler, kana, numeric

RECORD_LENGTH = 120

HEADER_TYPE = b"1"
DATA_TYPE = b"2"
TRAILER_TYPE = b"8"
END_TYPE = b"9"

#: §2: one 速報 (01), 確報 (02) or 速報取消 (03).
DATA = Struct(
    "record_type" / const(DATA_TYPE),
    "kind" / digits(2),  # 種別: 01, 02, 03 (checked by the mapper)
    "paid_on" / date8(),  # 収納日
    "paid_time" / digits(4),  # 収納時刻 HHMM (checked by the mapper)
    "barcode_kind" / const(b"1"),  # the 44-digit GS1-128 barcode
    "barcode" / digits(44),  # checked by gateway.mappers.cvs.barcode
    "filler_1" / filler(3),
    "store_code" / digits(7),
    "customer_segment" / chars(2, "0123456789 "),  # POS data, kept as it is
    "data_date" / date8(),
    "transfer_date" / date8(zero_is_none=True),  # set on 02 only
    "accounting_date" / date8(zero_is_none=True),
    "chain_code" / digits(6),
    "filler_2" / filler(18),
    Terminated,
)

#: §3 header.
HEADER = Struct(
    "record_type" / const(HEADER_TYPE),
    "file_date" / date8(),
    "company_code" / digits(6),
    "agency_name" / kana(40),
    "filler" / filler(65),
    Terminated,
)

#: §3 trailer: the number of data records and the sum of their barcode amounts.
TRAILER = Struct(
    "record_type" / const(TRAILER_TYPE),
    "count" / numeric(6),
    "total" / numeric(12),
    "filler" / filler(101),
    Terminated,
)

#: §3 end record.
END = Struct(
    "record_type" / const(END_TYPE),
    "filler" / filler(119),
    Terminated,
)

#: Which schema a record's first byte announces.
BY_TYPE = {HEADER_TYPE: HEADER, DATA_TYPE: DATA, TRAILER_TYPE: TRAILER, END_TYPE: END}

for _schema in BY_TYPE.values():
    assert _schema.sizeof() == RECORD_LENGTH, _schema
