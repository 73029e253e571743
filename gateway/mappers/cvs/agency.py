"""The agency CSV of spec/cvs.md §6 ⇄ canonical events.

A second source of the same CVS payments, pulled over HTTPS: Shift_JIS (CP932), CRLF, a header row
(line 1), then one row per 速報 / 確報 / 速報取消, post-office transfer (``12``) or its correction
(``22``). On failure the agency sends a 4-line error block instead, raised as
:class:`AgencyError`. A row gives the same event key as the 120-byte record of the same payment.

Pure: bytes in, frozen values, :class:`~gateway.errors.FileErrors` (every bad row and field, by
line number) or :class:`AgencyError` out. Re-exported by :mod:`gateway.mappers.cvs.mapper`.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Iterable
from datetime import date, datetime

from gateway.errors import FileErrors, GatewayError, RecordError
from gateway.mappers.cvs import barcode
from gateway.mappers.cvs.records import HHMM, NETWORK, cvs_event, make_event_key, ymd
from gateway.mappers.fields import shown
from gateway.model import JST, CollectionEvent, MessageKind

MAX_AMOUNT = barcode.MAX_AMOUNT

AGENCY_KINDS = ("01", "02", "03", "12", "22")
AGENCY_HEADER = (
    "種別,収納日,収納時刻,バーコード,利用者欄1,利用者欄2,印紙フラグ,金額,"
    "チェーンコード,チェーン名,店舗コード,振込日,データ作成日"
)
_AGENCY_COLUMNS = 13
_TRANSFER_KINDS = ("02", "12", "22")
_YYYYMMDD = re.compile(r"[0-9]{8}")
_MESSAGE_KINDS = {
    "01": MessageKind.PRELIMINARY,
    "02": MessageKind.CONFIRMATION,
    "03": MessageKind.VOID,
    "12": MessageKind.CONFIRMATION,  # post-office transfer: a confirmed payment
    "22": MessageKind.CORRECTION,  # its correction, with the corrected amount: for review
}


@dataclasses.dataclass(frozen=True)
class AgencyRow:
    kind: str  # "01", "02", "03", "12" (post-office transfer), "22" (its correction)
    paid_on: date
    paid_time: str  # HHMM; 0000 for 12/22
    barcode: str  # 44 digits, without "EAN"
    stamp: bool
    amount: int  # the barcode's amount, or the corrected amount of a 22
    chain_code: str  # 3 digits as in the CSV
    chain_name: str
    store_code: str  # as in the CSV, up to 7 digits
    transfer_date: date | None  # on 02/12/22
    data_date: date

    @property
    def event_key(self) -> str:
        """The same key as the 120-byte record of the same payment."""
        return make_event_key(
            self.barcode, self.paid_on, self.paid_time, self.chain_code, self.store_code
        )


class AgencyError(GatewayError):
    """The agency answered with its 4-line error block instead of a CSV."""

    def __init__(self, message: str, at: datetime | str, status: str, code: str) -> None:
        self.message = message
        self.at = at  # a JST datetime, or the line as received when it is not a date
        self.status = status
        self.code = code
        super().__init__(f"agency error {code or '?'}: {message} ({status}) at {at}")


def _agency_error(lines: list[bytes]) -> AgencyError:
    text = [line.decode("cp932", errors="replace").strip() for line in lines[1:4]]
    message, at_line, status_line = [*text, "", "", ""][:3]
    at: datetime | str = at_line
    when = re.fullmatch(r"日時[：:]\s*(.*)", at_line)
    if when:
        try:
            at = datetime.strptime(when[1], "%Y/%m/%d %H:%M:%S").replace(tzinfo=JST)
        except ValueError:
            pass
    found = re.fullmatch(r"エラー状況[：:](.*?)[（(]コード[：:](.*?)[）)]", status_line)
    if found:
        status, code = found[1], found[2]
    else:
        status, code = re.sub(r"^エラー状況[：:]", "", status_line), ""
    return AgencyError(message, at, status, code)


def _csv_date(text: str) -> date:
    """YYYYMMDD; ``ValueError`` otherwise."""
    if not _YYYYMMDD.fullmatch(text):
        raise ValueError(text)
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def _is_digits(text: str, low: int, high: int) -> bool:
    return low <= len(text) <= high and text.isascii() and text.isdigit()


def _parse_row(line: bytes, no: int, ceiling: int) -> tuple[AgencyRow | None, list[RecordError]]:
    errors: list[RecordError] = []

    def error(field: str, value: str, reason: str) -> None:
        errors.append(RecordError(NETWORK, no, field, value, reason))

    try:
        cells = next(csv.reader([line.decode("cp932")], strict=True), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        error("row", shown(line), f"not a Shift_JIS CSV row ({exc})")
        return None, errors
    if len(cells) != _AGENCY_COLUMNS:
        error("row", shown(line), f"a row has {_AGENCY_COLUMNS} columns; this one has {len(cells)}")
        return None, errors
    kind, paid_on, paid_time, ean, user1, user2, stamp, amount = cells[:8]
    chain_code, chain, store_code, transfer, data_date = cells[8:]
    days: dict[str, date] = {}
    for field, text in (("paid_on", paid_on), ("data_date", data_date)):
        try:
            days[field] = _csv_date(text)
        except ValueError:
            error(field, text, "not a date YYYYMMDD")
    transfer_date: date | None = None
    if transfer != "0":
        try:
            transfer_date = _csv_date(transfer)
        except ValueError:
            error("transfer_date", transfer, "not a date YYYYMMDD or 0")
    if kind not in AGENCY_KINDS:
        error("kind", kind, "unknown 種別; expected 01, 02, 03, 12 or 22")
    if not HHMM.fullmatch(paid_time):
        error("paid_time", paid_time, "not a time HHMM from 0000 to 2359")
    elif kind in ("12", "22") and paid_time != "0000":
        error("paid_time", paid_time, f"a {kind} row has the time 0000")
    if kind in AGENCY_KINDS:
        if kind in _TRANSFER_KINDS and transfer == "0":
            error("transfer_date", transfer, f"a {kind} row carries its transfer date")
        elif kind not in _TRANSFER_KINDS and transfer != "0":
            error("transfer_date", transfer, f"a {kind} row has no transfer date (0)")
    if stamp not in ("0", "1"):
        error("stamp", stamp, "the stamp flag is 0 or 1")
    if not _is_digits(amount, 1, 10):
        error("amount", amount, "an amount is a whole number of yen")
    if not _is_digits(chain_code, 3, 3):
        error("chain_code", chain_code, "a chain code has 3 digits")
    if not _is_digits(store_code, 1, 7):
        error("store_code", store_code, "a store code has 1 to 7 digits")
    code = ean.removeprefix("EAN")
    decoded: barcode.Barcode | None = None
    if code == ean:
        error("barcode", ean, "expected EAN and 44 digits")
    else:
        try:
            decoded = barcode.parse(code, ceiling=ceiling)
        except RecordError as exc:
            error(
                "barcode",
                ean,
                exc.reason if exc.field == "barcode" else f"{exc.field}: {exc.reason}",
            )
    if decoded is not None:  # columns 5-8 repeat barcode digits 14-19, 20-30, 37 and 38-43
        repeated = [("user_field_1", user1, code[13:19]), ("user_field_2", user2, code[19:30])]
        if stamp in ("0", "1"):
            repeated.append(("stamp", stamp, code[36]))
        for field, text, expected in repeated:
            if text != expected:
                error(field, text, f"disagrees with the barcode ({expected})")
        if kind != "22" and _is_digits(amount, 1, 10) and int(amount) != decoded.amount:
            error("amount", amount, f"disagrees with the barcode ({decoded.amount})")
    if errors:
        return None, errors
    return AgencyRow(
        kind=kind,
        paid_on=days["paid_on"],
        paid_time=paid_time,
        barcode=code,
        stamp=stamp == "1",
        amount=int(amount),
        chain_code=chain_code,
        chain_name=chain,
        store_code=store_code,
        transfer_date=transfer_date,
        data_date=days["data_date"],
    ), []


def _lines(data: bytes) -> list[bytes]:
    lines = [line.removesuffix(b"\r") for line in data.split(b"\n")]
    return lines[:-1] if lines[-1] == b"" else lines


def agency_lines(data: bytes) -> list[tuple[int, bytes]]:
    """(line number, bytes without CRLF) of every row after the header, blank lines left out:
    the raw text of each row :func:`parse_agency_csv` returns, in the same order."""
    return [(no, line) for no, line in enumerate(_lines(data)[1:], 2) if line.strip()]


def parse_agency_csv(
    data: bytes, *, source: str = "", ceiling: int = MAX_AMOUNT
) -> list[AgencyRow]:
    """The rows of an agency CSV (header row skipped); :class:`FileErrors` with every bad row and
    field by line number; :class:`AgencyError` when the body is the agency's error block."""
    lines = _lines(data)
    if lines and lines[0].strip() == b"error:":
        raise _agency_error(lines)
    errors: list[RecordError] = []
    if not lines:
        errors.append(RecordError(NETWORK, 1, "header", "", "the CSV is empty; no header row"))
    elif lines[0].count(b",") != _AGENCY_COLUMNS - 1 or lines[0][:2].isdigit():
        errors.append(RecordError(NETWORK, 1, "header", shown(lines[0]), "not the header row"))
    rows: list[AgencyRow] = []
    for no, line in agency_lines(data):
        if b"\r" in line:
            errors.append(RecordError(NETWORK, no, "row", shown(line), "a CR inside a line"))
            continue
        row, row_errors = _parse_row(line, no, ceiling)
        errors += row_errors
        if row is not None:
            rows.append(row)
    if errors:
        raise FileErrors(source, errors)
    return rows


def build_agency_csv(rows: Iterable[AgencyRow]) -> bytes:
    """A CSV as the agency sends it (CP932, CRLF, header row); refuses rows it could not parse."""
    out = [AGENCY_HEADER.encode("cp932") + b"\r\n"]
    for no, row in enumerate(rows, 2):
        bc, name = row.barcode, str(row.chain_name).replace('"', '""')
        transfer = "0" if row.transfer_date is None else ymd(row.transfer_date)
        text = (
            f"{row.kind},{ymd(row.paid_on)},{row.paid_time},EAN{bc},{bc[13:19]},{bc[19:30]},"
            f'{int(row.stamp)},{row.amount},{row.chain_code},"{name}",{row.store_code},'
            f"{transfer},{ymd(row.data_date)}"
        )
        try:
            line = text.encode("cp932")
        except UnicodeEncodeError:
            raise RecordError(NETWORK, no, "chain_name", name, "not encodable in CP932") from None
        parsed, errors = _parse_row(line, no, MAX_AMOUNT)
        if errors:
            raise errors[0]
        for field in dataclasses.fields(AgencyRow):  # e.g. a character CP932 reads back otherwise
            value = getattr(row, field.name)
            if getattr(parsed, field.name) != value:
                reason = "would not read back the same"
                raise RecordError(NETWORK, no, field.name, str(value), reason)
        out.append(line + b"\r\n")
    return b"".join(out)


def build_agency_error(message: str, at: datetime, status: str, code: str) -> bytes:
    """The agency's 4-line error body (for the simulator); ``at`` is written in JST."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: every timestamp in the gateway is timezone-aware")
    when = at.astimezone(JST).strftime("%Y/%m/%d %H:%M:%S")
    text = f"error:\r\n{message}\r\n日時：{when}\r\nエラー状況：{status}（コード：{code}）\r\n"
    return text.encode("cp932")


def agency_row_to_canonical(
    row: AgencyRow, *, raw: bytes, source: str, received_at: datetime
) -> CollectionEvent:
    """The same payment as its 120-byte record (same event key). A ``22`` is a
    :attr:`MessageKind.CORRECTION` with the corrected amount, for an operator to review."""
    return cvs_event(
        kind=_MESSAGE_KINDS[row.kind],
        barcode=row.barcode,
        paid_on=row.paid_on,
        paid_time=row.paid_time,
        chain_code=row.chain_code,
        store_code=row.store_code,
        amount=row.amount,
        transfer_date=row.transfer_date,
        detail={
            "record_kind": row.kind,
            "chain_name": row.chain_name,
            "data_date": row.data_date.isoformat(),
        },
        raw=raw,
        source=source,
        received_at=received_at,
    )
