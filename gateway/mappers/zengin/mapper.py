"""口座振替 request and result files ⇄ frozen values (spec/zengin.md, 種別コード 91).

Pure: bytes in, frozen values or :class:`~gateway.errors.FileErrors` out; no I/O, no clock. A file
is refused whole: :func:`parse_file` collects every error (record length, order, unknown record
type, bad fields, trailer counts and sums) with its record number and field. Record numbers are
1-based and count every record (the header is record 1, the ``i``-th debit is record ``i + 1``).

Requests and results share the layout. A trailer whose 振替済 and 振替不能 counts and sums are all
zero is a request's, and its data records must carry 振替結果コード ``0``; any other trailer is a
result's, and its counts and sums must agree with the data records' result codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from typing import Any

from gateway.errors import FileErrors, RecordError
from gateway.mappers.fields import build_fields, parse_fields, shown
from gateway.mappers.files import EOF_BYTE, order_errors, split_records
from gateway.mappers.zengin.records import (
    ACCOUNT_TYPES,
    BY_TYPE,
    DATA,
    DEBITED,
    END,
    HEADER,
    NETWORK,
    NEW_CODES,
    RECORD_LENGTH,
    RESULT_CODES,
    TRAILER,
    MandateAction,
    mandate_action,
    result_meaning,
    to_zengin_text,
)
from gateway.model import (
    JST,
    Channel,
    CollectionEvent,
    MessageKind,
    parse_transfer_key,
    transfer_key,
)

__all__ = [
    "DEBITED",
    "RESULT_CODES",
    "Debit",
    "MandateAction",
    "ZenginFile",
    "ZenginHeader",
    "ZenginTrailer",
    "build_file",
    "compute_trailer",
    "infer_debit_date",
    "mandate_action",
    "parse_file",
    "parse_transfer_key",
    "result_meaning",
    "split_records",
    "to_canonical",
    "to_zengin_text",
    "transfer_key",
]


# --- values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZenginHeader:
    biller_code: str  # 委託者コード, 10 digits
    biller_name: str  # 委託者名 (kana)
    debit_mmdd: str  # 引落日 MMDD; see infer_debit_date
    bank_code: str  # 取引銀行番号, 4 digits
    bank_name: str  # 取引銀行名
    branch_code: str  # 取引支店番号, 3 digits
    branch_name: str  # 取引支店名
    account_type: str  # 預金種目 (委託者): 1 普通, 2 当座, 9 その他
    account_number: str  # 口座番号 (委託者), 7 digits

    def debit_date(self, file_date: date) -> date:
        return infer_debit_date(self.debit_mmdd, file_date)


@dataclass(frozen=True)
class Debit:
    bank_code: str  # 引落銀行番号, 4 digits
    bank_name: str  # 引落銀行名
    branch_code: str  # 引落支店番号, 3 digits
    branch_name: str  # 引落支店名
    account_type: str  # 預金種目: 1 普通, 2 当座, 9 その他
    account_number: str  # 口座番号, 7 digits
    holder_name: str  # 預金者名 (kana)
    amount: int  # 引落金額, yen
    new_code: str  # 新規コード: 1 first debit, 2 changed mandate, 0 otherwise
    customer_number: str  # 顧客番号, the biller's key for the debit
    result_code: str = DEBITED  # 振替結果コード: 0 in requests

    @property
    def debited(self) -> bool:
        return self.result_code == DEBITED

    @property
    def result(self) -> str:
        return result_meaning(self.result_code)

    @property
    def mandate_action(self) -> MandateAction:
        return mandate_action(self.result_code)


@dataclass(frozen=True)
class ZenginTrailer:
    count: int  # 合計件数
    total: int  # 合計金額
    debited_count: int = 0  # 振替済件数 (results; zero in requests)
    debited_total: int = 0  # 振替済金額
    failed_count: int = 0  # 振替不能件数
    failed_total: int = 0  # 振替不能金額

    @property
    def has_results(self) -> bool:
        return any((self.debited_count, self.debited_total, self.failed_count, self.failed_total))


@dataclass(frozen=True)
class ZenginFile:
    header: ZenginHeader
    debits: tuple[Debit, ...]
    trailer: ZenginTrailer
    #: The bytes of every record as parsed (header first), kept with the messages made of them.
    raw_records: tuple[bytes, ...] = field(default=(), repr=False, compare=False)

    @property
    def is_result(self) -> bool:
        """A bank's result file (the trailer has 振替済/振替不能 figures), not a request."""
        return self.trailer.has_results


def infer_debit_date(mmdd: str, file_date: date) -> date:
    """引落日 MMDD as the date of that month and day nearest to ``file_date`` (the year is not in
    the file). Raises :class:`ValueError` if ``mmdd`` is not a calendar day."""
    candidates = []
    for year in (file_date.year - 1, file_date.year, file_date.year + 1):
        try:
            candidates.append(date(year, int(mmdd[:2]), int(mmdd[2:])))
        except ValueError:
            continue
    if len(mmdd) != 4 or not mmdd.isdigit() or not candidates:
        raise ValueError(f"{mmdd!r} is not a day MMDD")
    return min(candidates, key=lambda day: abs((day - file_date).days))


def compute_trailer(debits: Iterable[Debit], *, results: bool) -> ZenginTrailer:
    """The trailer of ``debits``: totals, and per result when ``results`` (a result file)."""
    debits = list(debits)
    done = [d.amount for d in debits if d.debited]
    failed = [d.amount for d in debits if not d.debited]
    if not results:
        return ZenginTrailer(len(debits), sum(done) + sum(failed))
    return ZenginTrailer(
        count=len(debits),
        total=sum(done) + sum(failed),
        debited_count=len(done),
        debited_total=sum(done),
        failed_count=len(failed),
        failed_total=sum(failed),
    )


# --- rules beyond the fields' formats --------------------------------------------------------


def _valid_mmdd(mmdd: object) -> bool:
    if not isinstance(mmdd, str):
        return False
    try:
        date(2000, int(mmdd[:2]), int(mmdd[2:]))  # a leap year: 0229 is a day
    except ValueError:
        return False
    return True


def _rule_errors(values: Mapping[str, Any], record_no: int) -> list[RecordError]:
    """The rules of a header or data record beyond its fields' formats (present fields only)."""
    errors: list[RecordError] = []

    def check(field: str, ok: bool, reason: str) -> None:
        if field in values and not ok:
            errors.append(RecordError(NETWORK, record_no, field, str(values[field]), reason))

    check("debit_mmdd", _valid_mmdd(values.get("debit_mmdd")), "not a day MMDD (引落日)")
    reason = "unknown 預金種目; expected 1 (普通), 2 (当座) or 9 (その他)"
    check("account_type", values.get("account_type") in ACCOUNT_TYPES, reason)
    reason = "unknown 新規コード; expected 0, 1 (first debit) or 2 (changed mandate)"
    check("new_code", values.get("new_code") in NEW_CODES, reason)
    return errors


# --- parsing ---------------------------------------------------------------------------------


def _trailer_errors(
    no: int, trailer: ZenginTrailer, debits: list[tuple[int, Debit]], data_count: int
) -> list[RecordError]:
    """The trailer against the data records: count always, sums when every record parsed."""
    errors: list[RecordError] = []

    def check(field: str, stated: int, actual: int, what: str) -> None:
        if stated != actual:
            reason = f"the trailer says {stated} for {what}; the data records give {actual}"
            errors.append(RecordError(NETWORK, no, field, str(stated), reason))

    check("count", trailer.count, data_count, "合計件数")
    if len(debits) != data_count:
        return errors
    computed = compute_trailer((d for _, d in debits), results=trailer.has_results)
    check("total", trailer.total, computed.total, "合計金額 (yen)")
    if trailer.has_results:
        check("debited_count", trailer.debited_count, computed.debited_count, "振替済件数")
        check("debited_total", trailer.debited_total, computed.debited_total, "振替済金額 (yen)")
        check("failed_count", trailer.failed_count, computed.failed_count, "振替不能件数")
        check("failed_total", trailer.failed_total, computed.failed_total, "振替不能金額 (yen)")
    else:
        reason = "a request (its trailer has no 振替済/振替不能 figures) carries 振替結果コード 0"
        errors += [
            RecordError(NETWORK, rec_no, "result_code", d.result_code, reason)
            for rec_no, d in debits
            if not d.debited
        ]
    return errors


def parse_file(data: bytes, *, source: str = "") -> ZenginFile:
    """A whole request or result file, or :class:`FileErrors` with every error in it."""
    raw_records = split_records(data)
    if not raw_records:
        raise FileErrors(source, [RecordError(NETWORK, 1, "record", "", "the file is empty")])
    errors: list[RecordError] = []
    order: list[tuple[int, bytes]] = []
    header: ZenginHeader | None = None
    trailers: list[tuple[int, ZenginTrailer | None]] = []
    debits: list[tuple[int, Debit]] = []
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
        values, record_errors = parse_fields(schema, raw, network=NETWORK, record=no)
        record_errors += _rule_errors(values, no)
        errors += record_errors
        fields = {k: v for k, v in values.items() if v is not None}  # drop constants and fillers
        if schema is DATA:
            data_count += 1
            if not record_errors:
                debits.append((no, Debit(**fields)))
        elif schema is HEADER and header is None and not record_errors:
            header = ZenginHeader(**fields)
        elif schema is TRAILER:
            trailers.append((no, None if record_errors else ZenginTrailer(**fields)))
    complete = len(order) == len(raw_records)
    errors += order_errors(NETWORK, order, len(raw_records), complete)
    no, trailer = trailers[0] if trailers else (0, None)
    if trailer is not None and complete:
        errors += _trailer_errors(no, trailer, debits, data_count)
    if errors or header is None or trailer is None:
        raise FileErrors(source, sorted(errors, key=lambda e: e.record))
    return ZenginFile(
        header=header,
        debits=tuple(d for _, d in debits),
        trailer=trailer,
        raw_records=tuple(raw_records),
    )


# --- building --------------------------------------------------------------------------------

_NAME_FIELDS = ("biller_name", "bank_name", "branch_name", "holder_name")


def _record_values(value: ZenginHeader | Debit, record_no: int) -> dict[str, Any]:
    """The fields of ``value`` to write, names converted to Zengin characters and the rules
    checked; raises :class:`RecordError` naming the record and field."""
    values = asdict(value)
    for name in _NAME_FIELDS:
        if name in values:
            try:
                values[name] = to_zengin_text(values[name])
            except (ValueError, TypeError) as exc:
                raise RecordError(NETWORK, record_no, name, str(values[name]), str(exc)) from None
    errors = _rule_errors(values, record_no)
    if errors:
        raise errors[0]
    return values


def build_file(
    header: ZenginHeader,
    debits: Iterable[Debit],
    *,
    results: bool = False,
    separator: bytes = b"\r\n",
    eof: bool = False,
) -> bytes:
    """Header, the data records, the computed trailer and end, each followed by ``separator``.

    ``results`` writes a bank's result file (振替済/振替不能 figures in the trailer); a request
    (the default) has them zero and every debit's result code must be ``0``.
    """
    debits = list(debits)
    out = [build_fields(HEADER, _record_values(header, 1), network=NETWORK, record=1)]
    for no, debit in enumerate(debits, 2):
        if not results and not debit.debited:
            reason = "a request carries 振替結果コード 0"
            raise RecordError(NETWORK, no, "result_code", debit.result_code, reason)
        out.append(build_fields(DATA, _record_values(debit, no), network=NETWORK, record=no))
    trailer = asdict(compute_trailer(debits, results=results))
    out.append(build_fields(TRAILER, trailer, network=NETWORK, record=len(debits) + 2))
    out.append(build_fields(END, {}, network=NETWORK, record=len(debits) + 3))
    return b"".join(r + separator for r in out) + (EOF_BYTE if eof else b"")


# --- canonical messages ----------------------------------------------------------------------


def to_canonical(
    result: ZenginFile, *, debit_date: date, name: str, received_at: datetime
) -> list[CollectionEvent]:
    """One message per data record of a result file, with source ``file:NAME:RECORD``.

    振替結果コード ``0`` is a confirmed payment on the debit date; any other code is a failure
    (no money moved) whose event key also carries the code, so that a later, different result
    for the same debit (``N`` result not arrived, then ``1``) is heard, and the same one twice
    is not. The payment's ``store`` is the debited bank and branch.
    """
    paid_at = datetime.combine(debit_date, time(0, 0), tzinfo=JST)
    consignor = result.header.biller_code
    raw = result.raw_records[1:] or tuple(b"" for _ in result.debits)
    events = []
    for no, (debit, raw_record) in enumerate(zip(result.debits, raw, strict=False), 2):
        key = transfer_key(consignor, debit_date, debit.customer_number)
        detail = {
            "result_code": debit.result_code,
            "result": debit.result,
            "debit_date": debit_date.isoformat(),
        }
        events.append(
            CollectionEvent(
                channel=Channel.TRANSFER,
                kind=MessageKind.CONFIRMATION if debit.debited else MessageKind.FAILURE,
                event_key=key if debit.debited else f"{key}:{debit.result_code}",
                amount=debit.amount,
                paid_at=paid_at,
                received_at=received_at,
                source=f"file:{name}:{no}",
                raw=raw_record,
                bill_key=key,
                transfer_date=debit_date if debit.debited else None,
                store=f"{debit.bank_code}-{debit.branch_code}",
                detail=detail,
            )
        )
    return events
