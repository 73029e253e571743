"""The center's bank statement ⇄ a :class:`~gateway.recon_model.Statement` (docs/settlement.md,
"Reconciliation"): the Zengin 入出金取引明細 (種別コード 03) and 振込入金通知 (01) files, and a
CSV export of one.

Pure: bytes in, a frozen value or :class:`~gateway.errors.FileErrors` out. A file is refused whole:
every bad line is reported with its line number and field (:class:`LineError`), and nothing of a
refused file is imported.

**Zengin files**: 200-byte records of half-width CP932 characters — header ``1``, data ``2``,
trailer ``8``, end ``9`` — separated by CRLF or by nothing, with an optional final 0x1A (the 全銀協
layouts; the record numbers are the line numbers). Dates are YYMMDD in the Japanese era (和暦,
令和: ``081203`` is 2026-12-03) as the standard has it, or in the Western calendar (``261203``) for
banks that write it so (``[reconciliation] statement_years``). The trailer's counts and sums must
agree with the records. Only 入金 (入払区分 1) are deposits; 出金 are counted, not kept. A
振込入金通知 record with 取消区分 1 cancels an earlier notice: a deposit of the negative amount.

**CSV exports**: a header row naming the columns, then one row per transaction; UTF-8 (with or
without a BOM) or Shift_JIS (CP932). Columns, by any of their names:

* the day: ``勘定日``, ``取引日`` or ``日付`` — ``2026-12-03``, ``2026/12/03`` or ``20261203``;
* the amount: ``入払区分`` (入金/出金, or 1/2) with ``金額`` (or ``取引金額``), or the two columns
  ``入金金額`` and ``出金金額`` (one of them filled); ``1,234`` and ``1,234円`` are read as 1234;
* the remitter: ``振込依頼人名``, ``依頼人名`` or ``摘要``;
* optionally ``照会番号`` and ``振込依頼人コード``.

Other columns are ignored. The days covered are those of its first and last rows.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from construct import Struct, Terminated

from gateway.errors import FileErrors, RecordError
from gateway.mappers.fields import build_fields, chars, const, digits, filler, kana, numeric
from gateway.mappers.fields import parse_fields as _parse_fields
from gateway.recon_model import Deposit, Statement, ranked

NETWORK = "statement"
RECORD_LENGTH = 200
EOF_BYTE = b"\x1a"
STATEMENT_KIND, NOTICE_KIND = "03", "01"  # 入出金取引明細, 振込入金通知
REIWA = date(2019, 5, 1)  # 令和元年5月1日: YY 01 is 2019
WAREKI, WESTERN = "wareki", "western"
DEPOSIT, WITHDRAWAL = "1", "2"  # 入払区分


@dataclass(frozen=True)
class LineError(RecordError):
    """A bad field of one line of a statement file."""

    def __str__(self) -> str:
        return f"line {self.record}, field {self.field}: {self.reason} (value {self.value!r})"


def _err(line: int, field: str, value: str, reason: str) -> LineError:
    return LineError(NETWORK, line, field, value, reason)


# --- the Zengin layouts (200 bytes) -----------------------------------------------------------

_D = "0123456789"
_HEADER_03 = Struct(
    "record_type" / const(b"1"),
    "kind_code" / const(STATEMENT_KIND.encode()),  # 種別コード
    "code_division" / const(b"0"),  # コード区分: JIS
    "created" / digits(6),  # 作成日
    "first_day" / digits(6),  # 勘定日(自)
    "last_day" / digits(6),  # 勘定日(至)
    "bank_code" / digits(4),
    "bank_name" / kana(15),
    "branch_code" / digits(3),
    "branch_name" / kana(15),
    "filler_1" / chars(3, _D),  # ダミー 000
    "account_type" / digits(1),  # 預金種目
    "account_number" / digits(10),
    "account_name" / kana(40),
    "overdraft" / chars(1, _D),  # 貸越区分
    "passbook" / chars(1, _D),  # 通帳・証書区分
    "opening_balance" / numeric(14),  # 取引前残高
    "filler_2" / filler(71),
    Terminated,
)
_DATA_03 = Struct(
    "record_type" / const(b"2"),
    "reference" / digits(8),  # 照会番号
    "value_date" / digits(6),  # 勘定日
    "start_date" / digits(6),  # 預入・払出日
    "direction" / chars(1, "12"),  # 入払区分: 1 入金, 2 出金
    "transaction" / digits(2),  # 取引区分: 10 現金, 11 振込, 14 振替…
    "amount" / numeric(12),  # 取引金額
    "other_bank_checks" / numeric(12),  # うち他店券金額
    "exchange_date" / digits(6),  # 交換呈示日
    "dishonor_date" / digits(6),  # 不渡返還日
    "bill_kind" / chars(1, _D + " "),  # 手形・小切手区分
    "bill_number" / chars(7, _D + " "),  # 手形・小切手番号
    "branch_ref" / chars(3, _D + " "),  # 僚店番号
    "remitter_code" / chars(10, _D + " "),  # 振込依頼人コード
    "remitter_name" / kana(48),  # 振込依頼人名又は契約者番号
    "remitting_bank" / kana(15),  # 仕向銀行名
    "remitting_branch" / kana(15),  # 仕向店名
    "description" / kana(20),  # 摘要内容
    "edi" / kana(20),  # EDI情報
    "filler" / filler(1),
    Terminated,
)
_TRAILER_03 = Struct(
    "record_type" / const(b"8"),
    "deposit_count" / numeric(6),  # 入金件数
    "deposit_total" / numeric(13),  # 入金額合計
    "withdrawal_count" / numeric(6),  # 出金件数
    "withdrawal_total" / numeric(13),  # 出金額合計
    "overdraft" / chars(1, _D),
    "closing_balance" / numeric(14),  # 取引後残高
    "record_count" / numeric(7),  # データ・レコード件数
    "filler" / filler(139),
    Terminated,
)
_HEADER_01 = Struct(
    "record_type" / const(b"1"),
    "kind_code" / const(NOTICE_KIND.encode()),
    "code_division" / const(b"0"),
    "created" / digits(6),
    "first_day" / digits(6),
    "last_day" / digits(6),
    "bank_code" / digits(4),
    "bank_name" / kana(15),
    "branch_code" / digits(3),
    "branch_name" / kana(15),
    "account_type" / digits(1),
    "account_number" / digits(7),
    "account_name" / kana(40),
    "filler" / filler(93),
    Terminated,
)
_DATA_01 = Struct(
    "record_type" / const(b"2"),
    "reference" / digits(6),  # 照会番号
    "value_date" / digits(6),  # 勘定日
    "start_date" / digits(6),  # 起算日
    "amount" / numeric(10),  # 金額
    "other_bank_checks" / numeric(10),
    "remitter_code" / chars(10, _D + " "),
    "remitter_name" / kana(48),
    "remitting_bank" / kana(15),
    "remitting_branch" / kana(15),
    "cancel" / chars(1, "01 "),  # 取消区分: 1 取消
    "edi" / kana(20),
    "filler" / filler(52),
    Terminated,
)
_TRAILER_01 = Struct(
    "record_type" / const(b"8"),
    "deposit_count" / numeric(6),  # 振込合計件数
    "deposit_total" / numeric(12),
    "cancel_count" / numeric(6),  # 取消合計件数
    "cancel_total" / numeric(12),
    "filler" / filler(163),
    Terminated,
)
_END = Struct("record_type" / const(b"9"), "filler" / filler(199), Terminated)

LAYOUTS = {
    STATEMENT_KIND: {"1": _HEADER_03, "2": _DATA_03, "8": _TRAILER_03, "9": _END},
    NOTICE_KIND: {"1": _HEADER_01, "2": _DATA_01, "8": _TRAILER_01, "9": _END},
}


def era_date(text: str, years: str) -> date:
    """A YYMMDD date: 令和 (``wareki``) or 20YY (``western``); ValueError says why not."""
    if not re.fullmatch(r"[0-9]{6}", text):
        raise ValueError("expected a date YYMMDD")
    yy, mm, dd = int(text[:2]), int(text[2:4]), int(text[4:])
    year = 2018 + yy if years == WAREKI else 2000 + yy
    try:
        day = date(year, mm, dd)
    except ValueError:
        raise ValueError(f"not a calendar date YYMMDD ({years})") from None
    if years == WAREKI and (yy == 0 or day < REIWA):
        raise ValueError("not a date of 令和 (from 010501, 2019-05-01)")
    return day


def era_text(day: date, years: str) -> str:
    """The YYMMDD of ``day`` (the inverse of :func:`era_date`)."""
    yy = day.year - (2018 if years == WAREKI else 2000)
    if (years == WAREKI and day < REIWA) or not 0 <= yy <= 99:
        raise ValueError(f"{day} cannot be written as YYMMDD ({years})")
    return f"{yy:02d}{day:%m%d}"


def split_lines(data: bytes) -> list[bytes]:
    """The records of a fixed-width file: CRLF-separated or back to back; a final 0x1A
    removed."""
    if data.endswith(EOF_BYTE):
        data = data[:-1]
    if b"\r\n" in data:
        parts = data.split(b"\r\n")
        return parts[:-1] if parts[-1] == b"" else parts
    return [data[i : i + RECORD_LENGTH] for i in range(0, len(data), RECORD_LENGTH)]


def is_zengin(data: bytes) -> bool:
    """Whether the bytes look like a Zengin statement (a header of kind 01 or 03), not a CSV."""
    return data[:1] == b"1" and data[1:3] in (b"01", b"03") and data[3:4] == b"0"


def parse_statement(data: bytes, *, years: str = WAREKI, source: str = "file") -> Statement:
    """A Zengin file or a CSV export, whichever ``data`` is."""
    if is_zengin(data):
        return parse_zengin(data, years=years, source=source)
    return parse_csv(data, source=source)


def parse_zengin(data: bytes, *, years: str = WAREKI, source: str = "file") -> Statement:
    """A 入出金取引明細 or 振込入金通知 file; :class:`FileErrors` with every bad line."""
    lines = split_lines(data)
    if not lines or not is_zengin(lines[0]):
        raise FileErrors(
            source,
            [
                _err(
                    1,
                    "kind_code",
                    lines[0][:4].decode("latin-1") if lines else "",
                    "a Zengin statement begins with a header 1 of 種別コード 03 or 01",
                )
            ],
        )
    kind = lines[0][1:3].decode("ascii")
    layout = LAYOUTS[kind]
    errors: list[RecordError] = []
    records: list[tuple[int, str, dict[str, Any]]] = []
    for no, raw in enumerate(lines, 1):
        record_type = raw[:1].decode("latin-1")
        schema = layout.get(record_type)
        if schema is None:
            errors.append(_err(no, "record_type", record_type, "not 1, 2, 8 or 9"))
            continue
        if len(raw) != RECORD_LENGTH:
            reason = f"a record has {RECORD_LENGTH} bytes; this line has {len(raw)}"
            errors.append(_err(no, "record", raw[:20].decode("cp932", "replace"), reason))
            continue
        values, found = _parse_fields(schema, raw, network=NETWORK, record=no)
        errors += [_err(e.record, e.field, e.value, e.reason) for e in found]
        for name in ("first_day", "last_day", "value_date"):
            if name in values:
                try:
                    era_date(values[name], years)
                except ValueError as e:
                    errors.append(_err(no, name, values[name], str(e)))
        records.append((no, record_type, values))
    errors += _order(records, len(lines))
    if errors:
        raise FileErrors(source, errors)
    return _statement(kind, records, years, source)


def _order(records: Sequence[tuple[int, str, dict[str, Any]]], count: int) -> list[RecordError]:
    """Header, data*, trailer, end: one error per record out of place, and one at the end for
    what is missing."""
    errors: list[RecordError] = []
    phase = -1  # -1 nothing yet, 0 header, 1 data, 2 trailer, 3 end
    allowed = {"1": (-1,), "2": (0, 1), "8": (0, 1), "9": (2,)}
    after = {"1": 0, "2": 1, "8": 2, "9": 3}
    for no, kind, _ in records:
        if phase in allowed[kind]:
            phase = after[kind]
        else:
            why = "out of order: a header, its data records, a trailer, an end"
            errors.append(_err(no, "record_type", kind, why))
    if phase != 3:
        errors.append(
            _err(count + 1, "record_type", "", "the file ends without its trailer and end")
        )
    return errors


def _statement(
    kind: str, records: Sequence[tuple[int, str, dict[str, Any]]], years: str, source: str
) -> Statement:
    errors: list[RecordError] = []

    def day(no: int, values: dict[str, Any], name: str) -> date | None:
        try:
            return era_date(values[name], years)
        except ValueError as e:
            errors.append(_err(no, name, values[name], str(e)))
            return None

    header_no, _, header = records[0]
    first, last = day(header_no, header, "first_day"), day(header_no, header, "last_day")
    if first and last and last < first:
        errors.append(_err(header_no, "last_day", header["last_day"], "before 勘定日(自)"))
    account = "-".join(
        (
            header["bank_code"],
            header["branch_code"],
            header["account_type"],
            header["account_number"].lstrip("0").zfill(7),
        )
    )
    deposits: list[Deposit] = []
    deposit_sum = withdrawals = withdrawal_sum = cancels = cancel_sum = 0
    trailer: tuple[int, dict[str, Any]] | None = None
    data_count = 0
    for no, record_type, values in records[1:]:
        if record_type == "8":
            trailer = (no, values)
        if record_type != "2":
            continue
        data_count += 1
        value_date = day(no, values, "value_date")
        if value_date and first and last and not first <= value_date <= last:
            errors.append(_err(no, "value_date", values["value_date"], f"outside {first}..{last}"))
        amount = int(values["amount"])
        out = kind == STATEMENT_KIND and values["direction"] == WITHDRAWAL
        cancelled = kind == NOTICE_KIND and values["cancel"] == "1"
        if out:
            withdrawals += 1
            withdrawal_sum += amount
            continue
        if cancelled:
            cancels += 1
            cancel_sum += amount
        else:
            deposit_sum += amount
        if value_date is not None:
            deposits.append(
                Deposit(
                    value_date,
                    -amount if cancelled else amount,
                    values["remitter_name"],
                    no,
                    reference=values["reference"],
                    remitter_code=values["remitter_code"].strip(),
                )
            )
    if trailer is not None:
        no, t = trailer
        count_in = len(deposits) - cancels if kind == NOTICE_KIND else len(deposits)
        figures = [("deposit_count", count_in), ("deposit_total", deposit_sum)]
        if kind == STATEMENT_KIND:
            figures += [("withdrawal_count", withdrawals), ("withdrawal_total", withdrawal_sum)]
            figures += [("record_count", data_count)]
        else:
            figures += [("cancel_count", cancels), ("cancel_total", cancel_sum)]
        for name, actual in figures:
            if int(t[name]) != actual:
                errors.append(_err(no, name, str(t[name]), f"the data records give {actual}"))
    if errors:
        raise FileErrors(source, errors)
    assert first is not None and last is not None
    return Statement(f"zengin-{kind}", account, first, last, tuple(ranked(deposits)), withdrawals)


def build_zengin(
    *,
    account: tuple[str, str, str, str, str, str],
    account_name: str,
    first_day: date,
    last_day: date,
    created: date,
    deposits: Sequence[tuple[date, int, str]],
    withdrawals: Sequence[tuple[date, int, str]] = (),
    years: str = WAREKI,
    separator: bytes = b"\r\n",
) -> bytes:
    """A 入出金取引明細 (03) file: ``account`` is (bank code, bank name, branch code, branch
    name, 預金種目, number); deposits and withdrawals are (勘定日, yen, 振込依頼人名 or 摘要)."""
    bank_code, bank_name, branch_code, branch_name, account_type, number = account
    ymd: Callable[[date], str] = lambda d: era_text(d, years)  # noqa: E731
    records = [
        build_fields(
            _HEADER_03,
            {
                "created": ymd(created),
                "first_day": ymd(first_day),
                "last_day": ymd(last_day),
                "bank_code": bank_code,
                "bank_name": bank_name,
                "branch_code": branch_code,
                "branch_name": branch_name,
                "filler_1": "000",
                "account_type": account_type,
                "account_number": number.zfill(10),
                "account_name": account_name,
                "overdraft": "1",
                "passbook": "0",
                "opening_balance": 0,
            },
            network=NETWORK,
            record=1,
        )
    ]
    entries = sorted(
        [(d, a, n, DEPOSIT) for d, a, n in deposits]
        + [(d, a, n, WITHDRAWAL) for d, a, n in withdrawals],
        key=lambda e: e[0],
    )
    for no, (day, amount, name, direction) in enumerate(entries, 1):
        records.append(
            build_fields(
                _DATA_03,
                {
                    "reference": f"{no:08d}",
                    "value_date": ymd(day),
                    "start_date": ymd(day),
                    "direction": direction,
                    "transaction": "11" if direction == DEPOSIT else "14",
                    "amount": amount,
                    "other_bank_checks": 0,
                    "exchange_date": "000000",
                    "dishonor_date": "000000",
                    "bill_kind": " ",
                    "bill_number": " " * 7,
                    "branch_ref": " " * 3,
                    "remitter_code": " " * 10,
                    "remitter_name": name if direction == DEPOSIT else "",
                    "remitting_bank": "",
                    "remitting_branch": "",
                    "description": "" if direction == DEPOSIT else name,
                    "edi": "",
                },
                network=NETWORK,
                record=no + 1,
            )
        )
    ins = [a for _, a, _, d in entries if d == DEPOSIT]
    outs = [a for _, a, _, d in entries if d == WITHDRAWAL]
    records.append(
        build_fields(
            _TRAILER_03,
            {
                "deposit_count": len(ins),
                "deposit_total": sum(ins),
                "withdrawal_count": len(outs),
                "withdrawal_total": sum(outs),
                "overdraft": "1",
                "closing_balance": max(0, sum(ins) - sum(outs)),
                "record_count": len(entries),
            },
            network=NETWORK,
            record=len(entries) + 2,
        )
    )
    records.append(build_fields(_END, {}, network=NETWORK, record=len(entries) + 3))
    return b"".join(r + separator for r in records)


# --- CSV exports -------------------------------------------------------------------------------

_COLUMNS = {
    "day": ("勘定日", "取引日", "日付"),
    "direction": ("入払区分",),
    "amount": ("金額", "取引金額"),
    "in": ("入金金額", "入金額"),
    "out": ("出金金額", "出金額"),
    "name": ("振込依頼人名", "依頼人名", "摘要"),
    "reference": ("照会番号",),
    "remitter_code": ("振込依頼人コード",),
}
_DIRECTIONS = {"入金": DEPOSIT, "1": DEPOSIT, "出金": WITHDRAWAL, "2": WITHDRAWAL}
_DAY = re.compile(r"([0-9]{4})[-/]?([0-9]{1,2})[-/]?([0-9]{1,2})")
_AMOUNT = re.compile(r"[0-9]{1,3}(,[0-9]{3})*|[0-9]+")


def _decode(data: bytes, source: str) -> str:
    for codec in ("utf-8-sig", "cp932"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError as e:
            failure = e
    line = data.count(b"\n", 0, failure.start) + 1
    bad = data[failure.start : failure.start + 2].hex()
    raise FileErrors(source, [_err(line, "encoding", bad, "neither UTF-8 nor Shift_JIS (CP932)")])


def _csv_day(text: str) -> date:
    m = _DAY.fullmatch(text)
    if m is None:
        raise ValueError("expected a date YYYY-MM-DD, YYYY/MM/DD or YYYYMMDD")
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise ValueError("not a calendar date") from None


def _csv_amount(text: str) -> int:
    cleaned = text.removesuffix("円").removeprefix("¥").removeprefix("￥").strip()
    if not _AMOUNT.fullmatch(cleaned):
        raise ValueError("expected an amount of yen: digits, optionally 1,234 or 1,234円")
    return int(cleaned.replace(",", ""))


def parse_csv(data: bytes, *, source: str = "file") -> Statement:
    """A CSV export of a statement; :class:`FileErrors` with every bad line and column."""
    text = _decode(data, source)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as e:
        raise FileErrors(
            source, [_err(reader.line_num, "row", "", f"not readable as CSV: {e}")]
        ) from None
    header = [c.strip() for c in rows[0]] if rows else []
    where: dict[str, int] = {}
    for role, names in _COLUMNS.items():
        for i, name in enumerate(header):
            if name in names and role not in where:
                where[role] = i
    errors: list[RecordError] = []
    if "day" not in where:
        errors.append(_err(1, "勘定日", "", "the header names no 勘定日 (or 取引日, 日付) column"))
    if "name" not in where:
        errors.append(
            _err(
                1, "振込依頼人名", "", "the header names no 振込依頼人名 (or 依頼人名, 摘要) column"
            )
        )
    paired = "direction" in where and "amount" in where
    if not paired and not ("in" in where and "out" in where):
        why = "the header names neither 入払区分 with 金額 nor 入金金額 with 出金金額"
        errors.append(_err(1, "金額", "", why))
    if errors:
        raise FileErrors(source, errors)
    deposits: list[Deposit] = []
    withdrawals = 0
    days: list[date] = []
    for no, cells in enumerate(rows[1:], 2):
        found = _csv_row(no, [c.strip() for c in cells], header, where, errors)
        if found is None:
            continue
        days.append(found.value_date)
        if found.amount < 0:
            withdrawals += 1
        else:
            deposits.append(found)
    if not errors and not days:
        errors.append(_err(2, "row", "", "the file has no transaction row"))
    if errors:
        raise FileErrors(source, errors)
    return Statement("csv", None, min(days), max(days), tuple(ranked(deposits)), withdrawals)


def _csv_row(
    no: int, cells: list[str], header: list[str], where: dict[str, int], errors: list[RecordError]
) -> Deposit | None:
    """One transaction row: a deposit, a withdrawal (a negative amount, not kept) or None (a
    blank row, or a bad one: its errors added to ``errors``)."""
    if not any(cells):
        return None

    def cell(role: str) -> str:
        i = where.get(role)
        return cells[i] if i is not None and i < len(cells) else ""

    def bad(role: str, reason: str) -> None:
        errors.append(_err(no, header[where[role]], cell(role), reason))

    before = len(errors)
    value_date = None
    try:
        value_date = _csv_day(cell("day"))
    except ValueError as e:
        bad("day", str(e))
    direction, amount = None, None
    if "direction" in where and "amount" in where:
        direction = _DIRECTIONS.get(cell("direction"))
        if direction is None:
            bad("direction", "expected 入金 or 出金 (1 or 2)")
        try:
            amount = _csv_amount(cell("amount"))
        except ValueError as e:
            bad("amount", str(e))
    elif bool(cell("in")) == bool(cell("out")):
        bad("in", "exactly one of 入金金額 and 出金金額 is filled")
    else:
        role = "in" if cell("in") else "out"
        direction = DEPOSIT if role == "in" else WITHDRAWAL
        try:
            amount = _csv_amount(cell(role))
        except ValueError as e:
            bad(role, str(e))
    if direction == DEPOSIT and not cell("name"):
        bad("name", "a deposit names its remitter")
    if len(errors) > before or value_date is None or amount is None:
        return None
    return Deposit(
        value_date,
        amount if direction == DEPOSIT else -1,
        cell("name"),
        no,
        reference=cell("reference"),
        remitter_code=cell("remitter_code"),
    )
