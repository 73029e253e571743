"""The 120-byte records of 口座振替 request and result files, 種別コード 91 (spec/zengin.md).

Every field is an adapter of :mod:`gateway.mappers.fields`; every struct is exactly
:data:`RECORD_LENGTH` bytes of CP932 and ends with ``Terminated``. ``C`` fields are half-width
characters from :data:`~gateway.mappers.fields.ZENGIN_CHARS` (no small kana); ``N`` fields are
ASCII digits. Rules beyond a field's format (預金種目, 新規コード, a real MMDD) are checked by the
mapper, which parses records field by field so that every bad field is reported.

Also the definitions every Zengin user shares: result codes and what they do to the mandate, and
the conversion of names to Zengin characters.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType

from construct import Construct, Struct, Terminated

from gateway.mappers.fields import ZENGIN_CHARS, chars, const, digits, filler, kana, numeric
from gateway.mappers.files import DATA_TYPE, END_TYPE, HEADER_TYPE, TRAILER_TYPE
from gateway.mappers.files import RECORD_LENGTH as RECORD_LENGTH  # re-exported

NETWORK = "zengin"


KIND_CODE = b"91"  # 種別コード: 口座振替
CODE_DIVISION = b"0"  # コード区分: JIS

#: Result codes are ``N`` in the spec, but agencies also send letters (``E``, ``N``...).
RESULT_CODE_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _c(n: int) -> Construct:
    """A ``C`` field: half-width, no small kana, left-aligned, space-filled."""
    return kana(n, charset=ZENGIN_CHARS)


#: ヘッダー・レコード (データ区分 1).
HEADER = Struct(
    "record_type" / const(HEADER_TYPE),
    "kind_code" / const(KIND_CODE),  # 種別コード
    "code_division" / const(CODE_DIVISION),  # コード区分
    "biller_code" / digits(10),  # 委託者コード
    "biller_name" / _c(40),  # 委託者名
    "debit_mmdd" / digits(4),  # 引落日 MMDD (checked by the mapper)
    "bank_code" / digits(4),  # 取引銀行番号
    "bank_name" / _c(15),  # 取引銀行名
    "branch_code" / digits(3),  # 取引支店番号
    "branch_name" / _c(15),  # 取引支店名
    "account_type" / digits(1),  # 預金種目 (委託者): 1, 2, 9 (checked by the mapper)
    "account_number" / digits(7),  # 口座番号 (委託者)
    "filler" / filler(17),
    Terminated,
)

#: データ・レコード (データ区分 2).
DATA = Struct(
    "record_type" / const(DATA_TYPE),
    "bank_code" / digits(4),  # 引落銀行番号
    "bank_name" / _c(15),  # 引落銀行名
    "branch_code" / digits(3),  # 引落支店番号
    "branch_name" / _c(15),  # 引落支店名
    "filler_1" / filler(4),
    "account_type" / digits(1),  # 預金種目: 1, 2, 9 (checked by the mapper)
    "account_number" / digits(7),  # 口座番号
    "holder_name" / _c(30),  # 預金者名
    "amount" / numeric(10),  # 引落金額
    "new_code" / digits(1),  # 新規コード: 0, 1, 2 (checked by the mapper)
    "customer_number" / _c(20),  # 顧客番号 (N/C)
    "result_code" / chars(1, RESULT_CODE_CHARS),  # 振替結果コード
    "filler_2" / filler(8),
    Terminated,
)

#: トレーラ・レコード (データ区分 8).
TRAILER = Struct(
    "record_type" / const(TRAILER_TYPE),
    "count" / numeric(6),  # 合計件数
    "total" / numeric(12),  # 合計金額
    "debited_count" / numeric(6),  # 振替済件数
    "debited_total" / numeric(12),  # 振替済金額
    "failed_count" / numeric(6),  # 振替不能件数
    "failed_total" / numeric(12),  # 振替不能金額
    "filler" / filler(65),
    Terminated,
)

#: エンド・レコード (データ区分 9).
END = Struct(
    "record_type" / const(END_TYPE),
    "filler" / filler(119),
    Terminated,
)

#: Which schema a record's first byte announces.
BY_TYPE = {HEADER_TYPE: HEADER, DATA_TYPE: DATA, TRAILER_TYPE: TRAILER, END_TYPE: END}

#: A data record's 口座番号 (pos 44, 7 N) and 預金者名 (pos 51, 30 C), spec/zengin.md, and what the
#: retention job's purge leaves in them (gateway.billing.retention.redact_data_record).
RECORD_ACCOUNT = slice(43, 80)
REDACTED_ACCOUNT = b"0" * 7 + b" " * 30

#: 預金種目: 1 普通, 2 当座, 9 その他.
ACCOUNT_TYPES = {"1": "普通", "2": "当座", "9": "その他"}

#: 新規コード: 1 first debit of the mandate, 2 changed mandate, 0 otherwise.
NEW_CODES = {"0": "その他", "1": "第1回引落", "2": "変更分"}

#: 振替結果コード ``0``: the only code that means the money was debited.
DEBITED = "0"

#: 振替結果コード → meaning (spec/zengin.md). Any other code is an agency's and means a failure.
RESULT_CODES: Mapping[str, str] = MappingProxyType(
    {
        "0": "振替済 (debited)",
        "1": "資金不足 (insufficient funds)",
        "2": "取引なし (no such account)",
        "3": "預金者の都合による振替停止 (stopped by the payer)",
        "4": "預金口座振替依頼書なし (no mandate at the bank)",
        "8": "委託者の都合による振替停止 (stopped by the biller)",
        "9": "その他 (other)",
        "E": "データエラー (agency: data error)",
        "N": "結果未着 (agency: result not arrived)",
    }
)


class MandateAction(StrEnum):
    """What a result does to the mandate (口座振替依頼) it was debited under."""

    KEEP = "keep"
    INVALID = "invalid"  # 2 取引なし, 4 依頼書なし
    SUSPENDED = "suspended"  # 3 stopped by the payer


_MANDATE_ACTIONS = {
    "2": MandateAction.INVALID,
    "3": MandateAction.SUSPENDED,
    "4": MandateAction.INVALID,
}


def result_meaning(code: str) -> str:
    """The spec's meaning of a 振替結果コード; unknown codes are named, never an error."""
    return RESULT_CODES.get(code, f"unknown result code {code!r} (failed)")


def mandate_action(code: str) -> MandateAction:
    """Whether a 振替結果コード changes the mandate: ``2``/``4`` invalid, ``3`` suspended."""
    return _MANDATE_ACTIONS.get(code, MandateAction.KEEP)


# --- names -----------------------------------------------------------------------------------

_SMALL = dict(zip("ｧｨｩｪｫｬｭｮｯ", "ｱｲｳｴｵﾔﾕﾖﾂ", strict=True))
_TO_HALF: dict[str, str] = {}
for _code in range(0xFF66, 0xFFA0):  # ｦ ｧ..ｯ ｰ ｱ..ﾝ ﾞ ﾟ
    _half = chr(_code)
    _TO_HALF[unicodedata.normalize("NFKC", _half)] = _half
_TO_HALF.update({"ヵ": "ｶ", "ヶ": "ｹ", "ヮ": "ﾜ", "ー": "-", "ｰ": "-", "−": "-", "‐": "-"})


@lru_cache(maxsize=8192)  # names repeat: banks, branches, holders of a whole file
def to_zengin_text(text: str) -> str:
    """``text`` as Zengin ``C`` characters: full-width and small kana (ｯ → ﾂ, ｮ → ﾖ), hiragana,
    full-width ASCII, lower-case letters and long vowel marks (ー → ``-``) converted.

    Raises :class:`ValueError` naming the first character that cannot be converted.
    """
    out = []
    for char in unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text)):
        if "\u3041" <= char <= "\u3096":  # hiragana → katakana
            char = chr(ord(char) + 0x60)
        char = _TO_HALF.get(char, char)
        char = _SMALL.get(char, char)
        if char.isascii():
            char = char.upper()
        if char not in ZENGIN_CHARS:
            raise ValueError(f"{char!r} cannot be written as a half-width Zengin character")
        out.append(char)
    return "".join(out)
