"""The 120-byte records of CVS result files and of the real-time link (spec/cvs.md §2, §3).

Schemas, and the §2 definitions every CVS mapper shares (the event key). Every field is an adapter
of :mod:`gateway.mappers.fields`; every struct is exactly :data:`RECORD_LENGTH` bytes and ends
with ``Terminated``. The mapper parses them field by field
(:func:`gateway.mappers.fields.parse_fields`) so that every bad field of a record is reported.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time

from construct import Struct, Terminated

from gateway.mappers.cvs import barcode as barcodes
from gateway.mappers.fields import chars, const, date8, digits, filler, kana, numeric
from gateway.mappers.files import DATA_TYPE, END_TYPE, HEADER_TYPE, TRAILER_TYPE
from gateway.mappers.files import RECORD_LENGTH as RECORD_LENGTH  # re-exported
from gateway.model import JST, Channel, CollectionEvent, MessageKind

NETWORK = "cvs"


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


HHMM = re.compile(r"(?:[01][0-9]|2[0-3])[0-5][0-9]")


def ymd(day: date) -> str:
    """YYYYMMDD, the year always 4 digits."""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def make_event_key(
    barcode: str, paid_on: date, paid_time: str, chain_code: str, store_code: str
) -> str:
    """§2: barcode + 収納日 + 収納時刻 + chain code (6 digits) + store code (7 digits).

    Shorter codes (the agency CSV's 3-digit chains) are zero-padded on the left, so every source
    of the same payment gives the same key.
    """
    return barcode + ymd(paid_on) + paid_time + chain_code.zfill(6) + store_code.zfill(7)


def paid_at(paid_on: date, paid_time: str) -> datetime:
    """収納日 + 収納時刻 (HHMM) as an aware datetime in JST."""
    return datetime.combine(paid_on, time(int(paid_time[:2]), int(paid_time[2:])), tzinfo=JST)


def cvs_event(
    *,
    kind: MessageKind,
    barcode: str,
    paid_on: date,
    paid_time: str,
    chain_code: str,
    store_code: str,
    amount: int,
    transfer_date: date | None,
    detail: dict[str, str],
    raw: bytes,
    source: str,
    received_at: datetime,
) -> CollectionEvent:
    """The canonical message of one store payment, whichever CVS format carried it: the same
    payment gives the same event key, bill key and store from a record or from a CSV row."""
    code = barcodes.parse(barcode, ceiling=barcodes.MAX_AMOUNT)
    chain6, store7 = chain_code.zfill(6), store_code.zfill(7)
    return CollectionEvent(
        channel=Channel.CVS,
        kind=kind,
        event_key=make_event_key(barcode, paid_on, paid_time, chain6, store7),
        amount=amount,
        paid_at=paid_at(paid_on, paid_time),
        received_at=received_at,
        source=source,
        raw=raw,
        bill_key=code.bill_key,
        slip_reissue=code.reissue,
        transfer_date=transfer_date,
        store=f"{chain6}-{store7}",
        detail={"chain_code": chain6, "store_code": store7, **detail},
    )
