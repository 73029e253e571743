"""CVS results ⇄ canonical events (spec/cvs.md §2, §3, §5, §6).

The 120-byte result record (速報 / 確報 / 速報取消), result files of such records, and the agency
CSV pulled over HTTPS. Pure: bytes in, frozen values or :class:`~gateway.errors.RecordError` /
:class:`~gateway.errors.FileErrors` out; no I/O, no clock (``received_at`` is passed in).

The agency CSV lives in :mod:`gateway.mappers.cvs.agency` and is re-exported here.

Record and line numbers are 1-based and count every record of a file (the header is record 1) or
every line of a CSV (the header row is line 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from gateway.errors import FileErrors, RecordError
from gateway.mappers.cvs import barcode
from gateway.mappers.cvs.agency import (
    AGENCY_KINDS,
    AgencyError,
    AgencyRow,
    agency_lines,
    agency_row_to_canonical,
    build_agency_csv,
    build_agency_error,
    parse_agency_csv,
)
from gateway.mappers.cvs.records import (
    BY_TYPE,
    DATA,
    END,
    HEADER,
    HHMM,
    NETWORK,
    RECORD_LENGTH,
    TRAILER,
    cvs_event,
    make_event_key,
)
from gateway.mappers.fields import build_fields, parse_fields, shown
from gateway.mappers.files import EOF_BYTE, order_errors, split_records
from gateway.model import CollectionEvent, MessageKind

__all__ = [
    "AGENCY_KINDS",
    "APP_CHAINS",
    "CHAINS",
    "STORE_CHAINS",
    "AgencyError",
    "AgencyRow",
    "RecordKind",
    "ResultFile",
    "ResultRecord",
    "agency_lines",
    "agency_row_to_canonical",
    "build_agency_csv",
    "build_agency_error",
    "build_file",
    "build_record",
    "chain_name",
    "parse_agency_csv",
    "parse_file",
    "parse_record",
    "split_records",
    "to_canonical",
]

MAX_AMOUNT = barcode.MAX_AMOUNT

#: §5 chain codes, zero-padded to 6 digits, for display; 910/911 (post office) are from §6.
CHAINS: Mapping[str, str] = MappingProxyType(
    {
        "000010": "セブン-イレブン",
        "000020": "ローソン",
        "000030": "ファミリーマート",
        "000050": "デイリーヤマザキ",
        "000080": "ミニストップ",
        "000760": "セイコーマート",
        "000730": "ポプラ・生活彩家",
        "000820": "PayPay",
        "000800": "d払い",
        "000780": "au PAY",
        "000750": "J-Coin",
        "000810": "LINE Pay",
        "000530": "PayB",
        "000910": "郵便局",
        "000911": "郵便局",
    }
)


#: The §5 chains by kind, 3 digits, in the order of its table: the convenience-store chains,
#: then the payment apps that read the barcode (store code all zeros).
STORE_CHAINS = ("010", "020", "030", "050", "080", "760", "730")
APP_CHAINS = ("820", "800", "780", "750", "810", "530")


class RecordKind(StrEnum):
    PRELIMINARY = "01"  # 速報
    CONFIRMATION = "02"  # 確報
    VOID = "03"  # 速報取消


_MESSAGE_KINDS = {
    RecordKind.PRELIMINARY: MessageKind.PRELIMINARY,
    RecordKind.CONFIRMATION: MessageKind.CONFIRMATION,
    RecordKind.VOID: MessageKind.VOID,
}


def chain_name(code: str) -> str | None:
    """The §5 name of a chain code of any width (``"020"`` or ``"000020"``), if known."""
    return CHAINS.get(code.zfill(6))


# --- the 120-byte result record (§2) ---------------------------------------------------------


@dataclass(frozen=True)
class ResultRecord:
    kind: RecordKind
    paid_on: date  # 収納日
    paid_time: str  # 収納時刻 HHMM, 0000-2359
    barcode: str  # 44 digits
    store_code: str  # 7 digits
    customer_segment: str  # 2 characters, digits or spaces
    data_date: date
    transfer_date: date | None  # set on 02 only
    accounting_date: date | None
    chain_code: str  # 6 digits

    @property
    def event_key(self) -> str:
        return make_event_key(
            self.barcode, self.paid_on, self.paid_time, self.chain_code, self.store_code
        )


def _data_errors(values: Mapping[str, Any], record_no: int, ceiling: int) -> list[RecordError]:
    """The rules of a data record beyond its fields' formats (present fields only)."""
    errors: list[RecordError] = []

    def error(field: str, value: object, reason: str) -> None:
        errors.append(RecordError(NETWORK, record_no, field, str(value), reason))

    kind = values.get("kind")
    if kind is not None and kind not in ("01", "02", "03"):
        error("kind", kind, "unknown 種別; expected 01 (速報), 02 (確報) or 03 (速報取消)")
    paid_time = values.get("paid_time")
    if paid_time is not None and not (isinstance(paid_time, str) and HHMM.fullmatch(paid_time)):
        error("paid_time", paid_time, "not a time HHMM from 0000 to 2359")
    code = values.get("barcode")
    if code is not None:
        try:
            barcode.parse(code if isinstance(code, str) else "", ceiling=ceiling)
        except RecordError as exc:
            error("barcode", code, f"{exc.field}: {exc.reason}")
    if kind in ("01", "02", "03") and "transfer_date" in values:
        transfer = values["transfer_date"]
        if kind == "02" and transfer is None:
            error("transfer_date", "00000000", "a 確報 (02) carries its transfer date")
        elif kind != "02" and transfer is not None:
            reason = "only a 確報 (02) carries a transfer date; expected 00000000"
            error("transfer_date", transfer, reason)
    return errors


def _parse_data(
    data: bytes, record_no: int, ceiling: int
) -> tuple[ResultRecord | None, list[RecordError]]:
    values, errors = parse_fields(DATA, data, network=NETWORK, record=record_no)
    errors += _data_errors(values, record_no, ceiling)
    if errors:
        return None, errors
    return ResultRecord(
        kind=RecordKind(values["kind"]),
        paid_on=values["paid_on"],
        paid_time=values["paid_time"],
        barcode=values["barcode"],
        store_code=values["store_code"],
        customer_segment=values["customer_segment"],
        data_date=values["data_date"],
        transfer_date=values["transfer_date"],
        accounting_date=values["accounting_date"],
        chain_code=values["chain_code"],
    ), []


def parse_record(data: bytes, *, record_no: int = 0, ceiling: int = MAX_AMOUNT) -> ResultRecord:
    """One 120-byte data record; raises the first :class:`RecordError` found."""
    record, errors = _parse_data(data, record_no, ceiling)
    if record is None:
        raise errors[0]
    return record


def build_record(rec: ResultRecord) -> bytes:
    """The 120 bytes of ``rec``; refuses (``RecordError``) what a valid record could not hold."""
    values = {name: getattr(rec, name) for name in ResultRecord.__dataclass_fields__}
    raw = build_fields(DATA, values, network=NETWORK)
    errors = _data_errors(values, 0, MAX_AMOUNT)
    if errors:
        raise errors[0]
    return raw


def to_canonical(
    rec: ResultRecord, *, raw: bytes, source: str, received_at: datetime
) -> CollectionEvent:
    return cvs_event(
        kind=_MESSAGE_KINDS[rec.kind],
        barcode=rec.barcode,
        paid_on=rec.paid_on,
        paid_time=rec.paid_time,
        chain_code=rec.chain_code,
        store_code=rec.store_code,
        amount=barcode.parse(rec.barcode, ceiling=MAX_AMOUNT).amount,
        transfer_date=rec.transfer_date,
        detail={
            "record_kind": str(rec.kind),
            "data_date": rec.data_date.isoformat(),
            "customer_segment": rec.customer_segment,
        },
        raw=raw,
        source=source,
        received_at=received_at,
    )


# --- result files (§3) -----------------------------------------------------------------------


def _amount(code: str) -> int:
    return int(code[37:43])


@dataclass(frozen=True)
class ResultFile:
    file_date: date
    company_code: str
    agency_name: str
    records: tuple[ResultRecord, ...]
    raw_records: tuple[bytes, ...]  # the 120 bytes of each data record; record i is number i+2

    @property
    def trailer_count(self) -> int:
        return len(self.records)

    @property
    def trailer_sum(self) -> int:
        return sum(_amount(r.barcode) for r in self.records)

    def events(self, *, name: str, received_at: datetime) -> list[CollectionEvent]:
        """One event per data record, with source ``file:NAME:RECORD_NUMBER``."""
        return [
            to_canonical(rec, raw=raw, source=f"file:{name}:{no}", received_at=received_at)
            for no, (rec, raw) in enumerate(zip(self.records, self.raw_records, strict=True), 2)
        ]


def parse_file(data: bytes, *, source: str = "", ceiling: int = MAX_AMOUNT) -> ResultFile:
    """A whole result file, or :class:`FileErrors` with every error in it (nothing partial)."""
    raw_records = split_records(data)
    if not raw_records:
        raise FileErrors(source, [RecordError(NETWORK, 1, "record", "", "the file is empty")])
    errors: list[RecordError] = []
    order: list[tuple[int, bytes]] = []
    header: dict[str, Any] | None = None
    trailers: list[tuple[int, dict[str, Any] | None]] = []
    records: list[ResultRecord] = []
    data_raw: list[bytes] = []
    data_count = 0
    for no, raw in enumerate(raw_records, 1):
        kind = raw[:1]
        schema = BY_TYPE.get(kind)
        if schema is None:
            reason = "unknown record type; expected 1 (header), 2 (data), 8 (trailer) or 9 (end)"
            errors.append(RecordError(NETWORK, no, "record_type", shown(kind), reason))
            if len(raw) != RECORD_LENGTH:
                reason = f"a record has {RECORD_LENGTH} bytes; record {no} has {len(raw)}"
                errors.append(
                    RecordError(NETWORK, no, "record", shown(raw[:RECORD_LENGTH]), reason)
                )
            continue
        order.append((no, kind))
        if schema is DATA:
            data_count += 1
            record, record_errors = _parse_data(raw, no, ceiling)
            errors += record_errors
            if record is not None:
                records.append(record)
                data_raw.append(raw)
            continue
        values, record_errors = parse_fields(schema, raw, network=NETWORK, record=no)
        errors += record_errors
        ok = values if not record_errors else None
        if schema is HEADER and header is None:
            header = ok
        elif schema is TRAILER:
            trailers.append((no, ok))
    complete = len(order) == len(raw_records)
    errors += order_errors(NETWORK, order, len(raw_records), complete)
    no, trailer = trailers[0] if trailers else (0, None)
    if trailer is not None:
        if complete and trailer["count"] != data_count:
            reason = (
                f"the trailer counts {trailer['count']} data records; the file has {data_count}"
            )
            errors.append(RecordError(NETWORK, no, "count", str(trailer["count"]), reason))
        total = sum(_amount(r.barcode) for r in records)
        if complete and len(records) == data_count and trailer["total"] != total:
            reason = (
                f"the trailer sum is {trailer['total']} yen; the data records add up to {total}"
            )
            errors.append(RecordError(NETWORK, no, "total", str(trailer["total"]), reason))
    if errors or header is None:
        raise FileErrors(source, sorted(errors, key=lambda e: e.record))
    return ResultFile(
        file_date=header["file_date"],
        company_code=header["company_code"],
        agency_name=header["agency_name"],
        records=tuple(records),
        raw_records=tuple(data_raw),
    )


def build_file(
    file_date: date,
    company_code: str,
    agency_name: str,
    records: Iterable[ResultRecord],
    *,
    separator: bytes = b"\r\n",
    eof: bool = False,
) -> bytes:
    """Header, the data records, trailer and end, each followed by ``separator``."""
    records = list(records)
    header = {"file_date": file_date, "company_code": company_code, "agency_name": agency_name}
    trailer = {"count": len(records), "total": sum(_amount(r.barcode) for r in records)}
    out = [build_fields(HEADER, header, network=NETWORK, record=1)]
    out += [build_record(r) for r in records]
    out.append(build_fields(TRAILER, trailer, network=NETWORK, record=len(records) + 2))
    out.append(build_fields(END, {}, network=NETWORK, record=len(records) + 3))
    return b"".join(r + separator for r in out) + (EOF_BYTE if eof else b"")
