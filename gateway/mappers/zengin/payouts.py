"""総合振込 (payout transfer) files, 種別コード 21, and the bank's 振込不能 (returns) files.

The center pays its billers out by one Zengin 総合振込 file per transfer date: the same 120-byte
CP932 conventions as the 口座振替 files (spec/zengin.md): header ``1``, data ``2``, trailer ``8``,
end ``9``; ``N`` fields digits right-aligned and zero-filled, ``C`` fields half-width characters
without small kana, left-aligned and space-filled; records separated by CRLF or by nothing, an
optional final 0x1A. The layout is the standard one of 総合振込:

Header (データ区分 1): 種別コード ``21``, コード区分 ``0``, 振込依頼人コード (10, the center's
code at its bank), 振込依頼人名 (40), 取組日 MMDD (the transfer date), 仕向銀行番号 (4) and
名 (15), 仕向支店番号 (3) and 名 (15), 預金種目 (依頼人) (1), 口座番号 (依頼人) (7), 17 spaces.

Data (データ区分 2): 被仕向銀行番号 (4) and 名 (15), 被仕向支店番号 (3) and 名 (15), 手形交換所
番号 (4, spaces), 預金種目 (1), 口座番号 (7), 受取人名 (30), 振込金額 (10), 新規コード (1),
顧客コード1 (10), 顧客コード2 (10), 振込指定区分 (1: ``7`` テレ振込), 識別表示 (1, space), then 7
bytes: spaces in a payout file; in a returns file the first of them is the 振込不能事由 (below).

Trailer (データ区分 8): 合計件数 (6), 合計金額 (12), 101 spaces. End (データ区分 9): 119 spaces.

Returns. The bank's 振込不能 file (this center's convention with its bank) is a 総合振込 file of
the same layout holding only the transfers it could not credit, each with its 振込不能事由 at
position 114; its trailer counts and sums those. A file whose records all carry a code is a
returns file, one whose records carry none is a payout file; a mix is refused.

The 顧客コード1 and 2 name the settlement paid: the biller's 5-digit code (zero-filled to 10)
and the first day of the settlement's period as YYYYMMDD plus ``00`` (:func:`customer_code`):
(biller, period start) is unique, so a return finds its settlement.

Pure: bytes in, frozen values or :class:`~gateway.errors.FileErrors` (every error, with its
record number and field) out. Account numbers never appear in an error's value (masked).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from types import MappingProxyType
from typing import Any

from construct import Construct, Struct, Terminated

from gateway.errors import FileErrors, RecordError
from gateway.mappers.fields import (
    ZENGIN_CHARS,
    build_fields,
    chars,
    const,
    digits,
    filler,
    kana,
    numeric,
    parse_fields,
    shown,
)
from gateway.mappers.files import (
    DATA_TYPE,
    END_TYPE,
    EOF_BYTE,
    HEADER_TYPE,
    TRAILER_TYPE,
    order_errors,
    split_records,
)
from gateway.mappers.zengin.mapper import infer_debit_date
from gateway.mappers.zengin.records import ACCOUNT_TYPES, END, to_zengin_text

__all__ = [
    "KIND_CODE",
    "NETWORK",
    "RETURN_CODES",
    "PayoutFile",
    "PayoutHeader",
    "PayoutTrailer",
    "Transfer",
    "build_payout_file",
    "customer_code",
    "parse_customer_code",
    "parse_payout_file",
    "return_meaning",
]

NETWORK = "zengin-payout"
KIND_CODE = b"21"  # 種別コード: 総合振込
TELEGRAPHIC = "7"  # 振込指定区分: テレ振込 (8: 文書振込)
TRANSFER_KINDS = "78"
RETURN_CODE_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

#: 振込不能事由 → meaning. Any other code is the bank's own and means "returned" too.
RETURN_CODES: Mapping[str, str] = MappingProxyType(
    {
        "1": "口座なし (no such account)",
        "2": "口座解約済 (account closed)",
        "3": "名義相違 (payee name differs)",
        "4": "預金種目相違 (account type differs)",
        "5": "受取人都合 (refused by the payee)",
        "9": "その他 (other)",
    }
)


def return_meaning(code: str) -> str:
    """The meaning of a 振込不能事由; an unknown code is named, never an error."""
    return RETURN_CODES.get(code, f"unknown 振込不能事由 {code!r} (returned)")


def _c(n: int) -> Construct:
    return kana(n, charset=ZENGIN_CHARS)


#: ヘッダー・レコード (データ区分 1), 総合振込.
HEADER = Struct(
    "record_type" / const(HEADER_TYPE),
    "kind_code" / const(KIND_CODE),  # 種別コード 21
    "code_division" / const(b"0"),  # コード区分: JIS
    "requester_code" / digits(10),  # 振込依頼人コード
    "requester_name" / _c(40),  # 振込依頼人名
    "transfer_mmdd" / digits(4),  # 取組日 MMDD
    "bank_code" / digits(4),  # 仕向銀行番号
    "bank_name" / _c(15),  # 仕向銀行名
    "branch_code" / digits(3),  # 仕向支店番号
    "branch_name" / _c(15),  # 仕向支店名
    "account_type" / digits(1),  # 預金種目 (依頼人)
    "account_number" / digits(7),  # 口座番号 (依頼人)
    "filler" / filler(17),
    Terminated,
)

#: データ・レコード (データ区分 2), 総合振込; ``return_code`` is this center's returns field.
DATA = Struct(
    "record_type" / const(DATA_TYPE),
    "bank_code" / digits(4),  # 被仕向銀行番号
    "bank_name" / _c(15),  # 被仕向銀行名
    "branch_code" / digits(3),  # 被仕向支店番号
    "branch_name" / _c(15),  # 被仕向支店名
    "clearing_house" / filler(4),  # 手形交換所番号: spaces (telegraphic transfers)
    "account_type" / digits(1),  # 預金種目
    "account_number" / digits(7),  # 口座番号
    "payee_name" / _c(30),  # 受取人名
    "amount" / numeric(10),  # 振込金額
    "new_code" / chars(1, "0129"),  # 新規コード: 0 (or 1, 2 first / changed)
    "customer_code1" / _c(10),  # 顧客コード1
    "customer_code2" / _c(10),  # 顧客コード2
    "transfer_kind" / chars(1, TRANSFER_KINDS),  # 振込指定区分: 7 テレ振込, 8 文書振込
    "marker" / chars(1, " Y"),  # 識別表示
    "return_code" / chars(1, " " + RETURN_CODE_CHARS),  # 振込不能事由 (returns), else space
    "filler" / filler(6),
    Terminated,
)

#: トレーラ・レコード (データ区分 8), 総合振込.
TRAILER = Struct(
    "record_type" / const(TRAILER_TYPE),
    "count" / numeric(6),  # 合計件数
    "total" / numeric(12),  # 合計金額
    "filler" / filler(101),
    Terminated,
)

BY_TYPE = {HEADER_TYPE: HEADER, DATA_TYPE: DATA, TRAILER_TYPE: TRAILER, END_TYPE: END}

#: A data record's 口座番号 (pos 44, 7) and 受取人名 (pos 51, 30): what a purge would blank.
RECORD_ACCOUNT = slice(43, 80)


@dataclass(frozen=True)
class PayoutHeader:
    requester_code: str  # 振込依頼人コード, 10 digits
    requester_name: str  # 振込依頼人名 (kana)
    transfer_mmdd: str  # 取組日 MMDD
    bank_code: str  # 仕向銀行番号: the center's bank
    bank_name: str
    branch_code: str
    branch_name: str
    account_type: str  # 1 普通, 2 当座, 9 その他
    account_number: str = field(repr=False)  # 7 digits

    def transfer_date(self, file_date: date) -> date:
        """取組日 as the date of that month and day nearest to ``file_date``."""
        return infer_debit_date(self.transfer_mmdd, file_date)


@dataclass(frozen=True)
class Transfer:
    bank_code: str  # 被仕向銀行番号
    bank_name: str
    branch_code: str
    branch_name: str
    account_type: str
    account_number: str = field(repr=False)  # 7 digits
    payee_name: str = field(repr=False)  # 受取人名 (kana)
    amount: int = 0  # 振込金額, yen
    customer_code1: str = ""  # 顧客コード1
    customer_code2: str = ""  # 顧客コード2
    new_code: str = "0"
    transfer_kind: str = TELEGRAPHIC
    marker: str = " "
    return_code: str = " "  # 振込不能事由 in a returns file; a space in a payout file

    @property
    def returned(self) -> bool:
        return self.return_code != " "

    @property
    def customer_code(self) -> str:
        """顧客コード1 and 2, as one 20-character key."""
        return f"{self.customer_code1:<10}{self.customer_code2:<10}"


@dataclass(frozen=True)
class PayoutTrailer:
    count: int  # 合計件数
    total: int  # 合計金額


@dataclass(frozen=True)
class PayoutFile:
    header: PayoutHeader
    transfers: tuple[Transfer, ...]
    trailer: PayoutTrailer
    raw_records: tuple[bytes, ...] = field(default=(), repr=False, compare=False)

    @property
    def is_returns(self) -> bool:
        """The bank's 振込不能 file: its records carry a 振込不能事由."""
        return bool(self.transfers) and all(t.returned for t in self.transfers)


def customer_code(biller_code: str, period_start: date) -> tuple[str, str]:
    """顧客コード1 and 2 of a settlement's transfer: the biller's code, its period's first day."""
    return biller_code.zfill(10), f"{period_start:%Y%m%d}00"


def parse_customer_code(code1: str, code2: str) -> tuple[str, date] | None:
    """(biller code, period start) from 顧客コード1 and 2, or None if they are not ours."""
    if len(code1) != 10 or not code1.isdigit() or code1[:5] != "00000":
        return None
    if len(code2) != 10 or not code2.isdigit() or code2[8:] != "00":
        return None
    try:
        return code1[5:], date(int(code2[:4]), int(code2[4:6]), int(code2[6:8]))
    except ValueError:
        return None


def _mask(field: str, value: str) -> str:
    return "****" + value[-3:] if field == "account_number" else value


def _rule_errors(values: Mapping[str, Any], record_no: int) -> list[RecordError]:
    errors: list[RecordError] = []

    def check(field: str, ok: bool, reason: str) -> None:
        if field in values and not ok:
            errors.append(RecordError(NETWORK, record_no, field, str(values[field]), reason))

    mmdd = values.get("transfer_mmdd")
    try:
        ok = isinstance(mmdd, str) and bool(date(2000, int(mmdd[:2]), int(mmdd[2:])))
    except ValueError:
        ok = False
    check("transfer_mmdd", ok, "not a day MMDD (取組日)")
    reason = "unknown 預金種目; expected 1 (普通), 2 (当座) or 9 (その他)"
    check("account_type", values.get("account_type") in ACCOUNT_TYPES, reason)
    return errors


def compute_trailer(transfers: Iterable[Transfer]) -> PayoutTrailer:
    transfers = list(transfers)
    return PayoutTrailer(len(transfers), sum(t.amount for t in transfers))


def parse_payout_file(data: bytes, *, source: str = "") -> PayoutFile:
    """A whole 総合振込 or returns file, or :class:`FileErrors` with every error in it."""
    raw_records = split_records(data)
    if not raw_records:
        raise FileErrors(source, [RecordError(NETWORK, 1, "record", "", "the file is empty")])
    errors: list[RecordError] = []
    order: list[tuple[int, bytes]] = []
    header: PayoutHeader | None = None
    trailer: tuple[int, PayoutTrailer | None] | None = None
    transfers: list[tuple[int, Transfer]] = []
    data_count = 0
    for no, raw in enumerate(raw_records, 1):
        kind = raw[:1]
        schema = BY_TYPE.get(kind)
        if schema is None:
            reason = "unknown record type; expected 1 (header), 2 (data), 8 (trailer) or 9 (end)"
            errors.append(RecordError(NETWORK, no, "record_type", shown(kind), reason))
            continue
        order.append((no, kind))
        values, record_errors = parse_fields(schema, raw, network=NETWORK, record=no)
        record_errors = [replace(e, value=_mask(e.field, e.value)) for e in record_errors]
        record_errors += _rule_errors(values, no)
        errors += record_errors
        fields = {k: v for k, v in values.items() if v is not None}
        if schema is DATA:
            data_count += 1
            if not record_errors:
                transfers.append((no, Transfer(**fields)))
        elif schema is HEADER and header is None and not record_errors:
            header = PayoutHeader(**fields)
        elif schema is TRAILER and trailer is None:
            trailer = (no, None if record_errors else PayoutTrailer(**fields))
    complete = len(order) == len(raw_records)
    errors += order_errors(NETWORK, order, len(raw_records), complete)
    no, stated = trailer if trailer is not None else (0, None)
    if stated is not None and complete:
        said = "the trailer says {} for {}; the data records give {}"
        if stated.count != data_count:
            reason = said.format(stated.count, "合計件数", data_count)
            errors.append(RecordError(NETWORK, no, "count", str(stated.count), reason))
        elif len(transfers) == data_count:
            total = sum(t.amount for _, t in transfers)
            if stated.total != total:
                reason = said.format(stated.total, "合計金額 (yen)", total)
                errors.append(RecordError(NETWORK, no, "total", str(stated.total), reason))
    returned = [no for no, t in transfers if t.returned]
    if returned and len(returned) != len(transfers):
        reason = "a returns file gives every record its 振込不能事由, a payout file none"
        errors += [
            RecordError(NETWORK, no, "return_code", t.return_code, reason)
            for no, t in transfers
            if not t.returned
        ]
    if errors or header is None or trailer is None or trailer[1] is None:
        raise FileErrors(source, sorted(errors, key=lambda e: e.record))
    return PayoutFile(header, tuple(t for _, t in transfers), trailer[1], tuple(raw_records))


_NAME_FIELDS = ("requester_name", "bank_name", "branch_name", "payee_name")


def _record_values(value: PayoutHeader | Transfer, record_no: int) -> dict[str, Any]:
    values = asdict(value)
    for name in _NAME_FIELDS:
        if name in values:
            try:
                values[name] = to_zengin_text(values[name])
            except (ValueError, TypeError) as exc:
                raise RecordError(NETWORK, record_no, name, "", str(exc)) from None
    errors = _rule_errors(values, record_no)
    if errors:
        raise errors[0]
    return values


def build_payout_file(
    header: PayoutHeader,
    transfers: Iterable[Transfer],
    *,
    separator: bytes = b"\r\n",
    eof: bool = False,
) -> bytes:
    """Header, one data record per transfer, the computed trailer and end, each followed by
    ``separator``. A returns file is built the same way, its transfers carrying their codes."""
    transfers = list(transfers)
    out = [build_fields(HEADER, _record_values(header, 1), network=NETWORK, record=1)]
    for no, transfer in enumerate(transfers, 2):
        if transfer.amount <= 0:
            raise RecordError(NETWORK, no, "amount", str(transfer.amount), "a transfer is above ¥0")
        try:
            values = _record_values(transfer, no)
            out.append(build_fields(DATA, values, network=NETWORK, record=no))
        except RecordError as e:
            raise replace(e, value=_mask(e.field, e.value)) from None
    trailer = asdict(compute_trailer(transfers))
    out.append(build_fields(TRAILER, trailer, network=NETWORK, record=len(transfers) + 2))
    out.append(build_fields(END, {}, network=NETWORK, record=len(transfers) + 3))
    return b"".join(r + separator for r in out) + (EOF_BYTE if eof else b"")
