"""The 44-digit GS1-128 payment barcode (料金代理収納用) of spec/cvs.md §1.

Layout (1-based, inclusive)::

    1-2 AI "91" | 3-8 company code | 9-29 free field | 30 reissue | 31-36 due YYMMDD
    | 37 stamp flag | 38-43 amount | 44 check digit

Pure functions: no I/O and no clock. :func:`parse` reads what a store scanned (and so accepts
deadlines in the past); :func:`build` makes a barcode to issue (and so also refuses an amount of 0).
Every refusal is a :class:`~gateway.errors.RecordError` naming the field.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeGuard

from gateway.errors import RecordError

NETWORK = "cvs"
AI = "91"
LENGTH = 44
DEFAULT_CEILING = 300_000
MAX_AMOUNT = 999_999  # six digits
NO_DEADLINE = "999999"
BILLER_CODE_LENGTH = 5
SERIAL_LENGTH = 16  # the free field's 21 digits after the 5-digit biller code
CENTER_SERIAL_LENGTH = 11  # after a center code and the biller's code (FreeFieldLayout)

_BARCODE = re.compile(r"[0-9]{44}")
_DIGITS43 = re.compile(r"[0-9]{43}")
_COMPANY_CODE = re.compile(r"[0-9]{6}")
_FREE_FIELD = re.compile(r"[0-9]{21}")
_BILLER_CODE = re.compile(r"[0-9]{5}")


def _error(field: str, value: object, reason: str) -> RecordError:
    return RecordError(network=NETWORK, record=0, field=field, value=str(value), reason=reason)


def _mod10_31(digits: str) -> int:
    """Mod 10 with weights 3, 1, 3, ... from the rightmost digit."""
    backwards = digits[::-1]  # (sums of slices: the bulk registration path makes many)
    total = 3 * sum(map(int, backwards[::2])) + sum(map(int, backwards[1::2]))
    return (10 - total % 10) % 10


def check_digit(digits43: str) -> int:
    """The check digit (barcode digit 44) of the 43 digits before it, AI included.

    Raises ``ValueError`` when ``digits43`` is not exactly 43 ASCII digits.
    """
    if not _DIGITS43.fullmatch(digits43):
        raise ValueError(f"expected 43 ASCII digits, got {digits43!r}")
    return _mod10_31(digits43)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(
    company_code: object,
    free_field: object,
    reissue: object,
    due: object,
    stamp: object,
    amount: object,
) -> None:
    """Refuse any field that cannot be written into the 44 digits."""
    if not isinstance(company_code, str) or not _COMPANY_CODE.fullmatch(company_code):
        raise _error("company_code", company_code, "The company code must be exactly 6 digits.")
    if not isinstance(free_field, str) or not _FREE_FIELD.fullmatch(free_field):
        raise _error("free_field", free_field, "The free field must be exactly 21 digits.")
    if not _is_int(reissue) or not 0 <= reissue <= 9:
        raise _error("reissue", reissue, "The reissue count must be a whole number from 0 to 9.")
    if due is not None:
        if not isinstance(due, date) or isinstance(due, datetime):
            raise _error("due", due, "The due date must be a calendar date or none.")
        if not 2000 <= due.year <= 2099:
            raise _error(
                "due", due, "The due date must be between 2000-01-01 and 2099-12-31 (YYMMDD)."
            )
    if not isinstance(stamp, bool):
        raise _error("stamp", stamp, "The stamp flag must be true or false.")
    if not _is_int(amount) or not 0 <= amount <= MAX_AMOUNT:
        raise _error("amount", amount, "The amount must be a whole number of yen from 0 to 999999.")


@dataclass(frozen=True)
class Barcode:
    """One decoded barcode. Constructing it refuses fields that do not fit the 44 digits."""

    company_code: str
    free_field: str
    reissue: int
    due: date | None  # None means no deadline (999999)
    stamp: bool
    amount: int

    def __post_init__(self) -> None:
        _check_fields(
            self.company_code, self.free_field, self.reissue, self.due, self.stamp, self.amount
        )

    @property
    def bill_key(self) -> str:
        """Company code + free field (digits 3-29): the same for every reissue of a bill."""
        return self.company_code + self.free_field

    @property
    def due_text(self) -> str:
        """The deadline as written in the barcode: YYMMDD, or ``999999`` for none."""
        return NO_DEADLINE if self.due is None else self.due.strftime("%y%m%d")

    @property
    def _body(self) -> str:
        return (
            AI
            + self.company_code
            + self.free_field
            + str(self.reissue)
            + self.due_text
            + ("1" if self.stamp else "0")
            + f"{self.amount:06d}"
        )

    @property
    def check_digit(self) -> int:
        return _mod10_31(self._body)

    @property
    def digits(self) -> str:
        """All 44 digits, AI and check digit included."""
        body = self._body
        return body + str(_mod10_31(body))

    def human_readable(self) -> str:
        """The line printed under the symbol: ``(91)CCCCCC-F…F-R-YYMMDD-S-AAAAAA-C``."""
        return human_readable(self.digits)


def human_readable(digits: str) -> str:
    """The line printed under the symbol of a barcode's 44 digits, as they are (the caller has
    parsed them): the fields cut apart, nothing recomputed (the ingest renders one per
    payment event)."""
    return (
        f"({digits[0:2]}){digits[2:8]}-{digits[8:29]}-{digits[29]}-{digits[30:36]}"
        f"-{digits[36]}-{digits[37:43]}-{digits[43]}"
    )


def build(
    *,
    company_code: str,
    free_field: str,
    reissue: int,
    due: date | None,
    stamp: bool,
    amount: int,
    ceiling: int = DEFAULT_CEILING,
) -> Barcode:
    """A barcode to issue. The amount must be at least ¥1 and at most ``ceiling``."""
    barcode = Barcode(
        company_code=company_code,
        free_field=free_field,
        reissue=reissue,
        due=due,
        stamp=stamp,
        amount=amount,
    )
    if amount < 1:
        raise _error("amount", amount, "A slip must be issued for at least 1 yen.")
    if amount > ceiling:
        raise _error("amount", amount, f"The amount is above the ceiling of {ceiling} yen.")
    return barcode


def parse(text: str, *, ceiling: int = DEFAULT_CEILING) -> Barcode:
    """Read a scanned barcode (see :func:`_parse`). Results are memoized: one payment's record
    names its barcode several times on its way to the ledger, and the value is frozen."""
    return _parse(text, ceiling)


@functools.lru_cache(maxsize=65_536)
def _parse(text: str, ceiling: int) -> Barcode:
    """Decode 44 scanned digits. Refuses anything else with a :class:`RecordError`.

    A deadline in the past is not an error here: whether a late payment is accepted is the
    core's decision, and a barcode read back from a network is a fact.
    """
    if not _BARCODE.fullmatch(text):
        if len(text) != LENGTH:
            reason = f"A barcode has exactly 44 digits; this one has {len(text)} characters."
        else:
            reason = "A barcode holds only the ASCII digits 0-9."
        raise _error("barcode", text, reason)
    if text[0:2] != AI:
        raise _error("ai", text[0:2], "The application identifier must be 91 (料金代理収納).")
    expected = _mod10_31(text[:43])
    if int(text[43]) != expected:
        raise _error("check_digit", text[43], f"The check digit should be {expected}.")
    due_text = text[30:36]
    due: date | None = None
    if due_text != NO_DEADLINE:
        try:
            due = date(2000 + int(due_text[0:2]), int(due_text[2:4]), int(due_text[4:6]))
        except ValueError:
            reason = "The due date is neither a valid YYMMDD date nor 999999 (no deadline)."
            raise _error("due", due_text, reason) from None
    stamp_text = text[36]
    if stamp_text not in ("0", "1"):
        raise _error("stamp", stamp_text, "The stamp flag must be 0 or 1.")
    amount = int(text[37:43])
    if amount > ceiling:
        raise _error("amount", text[37:43], f"The amount is above the ceiling of {ceiling} yen.")
    return Barcode(
        company_code=text[2:8],
        free_field=text[8:29],
        reissue=int(text[29]),
        due=due,
        stamp=stamp_text == "1",
        amount=amount,
    )


#: Digits 3-29 of a barcode: company code + free field (:attr:`Barcode.bill_key`).
BILL_KEY = slice(2, 29)
#: Where the 印紙フラグ is, counting from 1: digit 37 of the barcode, and so of a CVS payment's
#: event key, which starts with its barcode (gateway.mappers.cvs.records.make_event_key).
STAMP_DIGIT = 37


#: Digits 3-8 of a barcode: the agency's (maker's) company code.
COMPANY_CODE = slice(2, 8)


def company_code_of(digits: str) -> str:
    """The company code of a barcode's digits (or of a bill key, which starts with it after
    the AI): which agency the slip is of."""
    return digits[COMPANY_CODE] if len(digits) == LENGTH else split_bill_key(digits)[0]


def split_bill_key(key: str) -> tuple[str, str]:
    """A bill key's (company code, free field)."""
    return key[: COMPANY_CODE.stop - 2], key[COMPANY_CODE.stop - 2 :]


def bill_key_of(digits: str) -> str:
    """The bill key of a barcode's digits: the same for every reissue of a bill."""
    return digits[BILL_KEY]


def free_field_for(biller_code: str, serial: int) -> str:
    """The 21-digit free field of an agency: 5-digit biller code + 16-digit zero-padded serial."""
    if not _BILLER_CODE.fullmatch(biller_code):
        raise ValueError(f"biller code must be exactly 5 digits, got {biller_code!r}")
    if not _is_int(serial) or not 0 <= serial < 10**SERIAL_LENGTH:
        raise ValueError(f"serial must be a whole number from 0 to {10**SERIAL_LENGTH - 1}")
    return f"{biller_code}{serial:0{SERIAL_LENGTH}d}"


@dataclass(frozen=True)
class FreeFieldLayout:
    """How an agency's 21 free digits (barcode digits 9-29) are spent (docs/networks/cvs.md).

    - **A code per biller** (``center_code`` None): the biller's 5-digit code — minted by the
      gateway, or assigned by the agency to the biller — then a 16-digit serial.
    - **One code for the center** (the agency assigned ``center_code`` to the center once, for
      all its billers): the center's 5 digits, then the biller's 5-digit gateway code, then an
      11-digit serial. The biller is still named by the barcode alone.

    Either way a barcode resolves to exactly one biller: :meth:`biller_code` is the inverse.
    """

    center_code: str | None = None

    def __post_init__(self) -> None:
        if self.center_code is not None and not _BILLER_CODE.fullmatch(self.center_code):
            raise ValueError(f"center code must be exactly 5 digits, got {self.center_code!r}")

    @property
    def serial_length(self) -> int:
        return SERIAL_LENGTH if self.center_code is None else CENTER_SERIAL_LENGTH

    def free_field(self, biller_code: str, serial: int) -> str:
        """The free field of the bill ``serial`` of the biller whose code is ``biller_code``."""
        if self.center_code is None:
            return free_field_for(biller_code, serial)
        if not _BILLER_CODE.fullmatch(biller_code):
            raise ValueError(f"biller code must be exactly 5 digits, got {biller_code!r}")
        if not _is_int(serial) or not 0 <= serial < 10**CENTER_SERIAL_LENGTH:
            raise ValueError(
                f"serial must be a whole number from 0 to {10**CENTER_SERIAL_LENGTH - 1}"
            )
        return f"{self.center_code}{biller_code}{serial:0{CENTER_SERIAL_LENGTH}d}"

    def biller_code(self, free_field: str) -> str | None:
        """The biller's 5-digit code in a free field of this layout; None when the free field
        is not of this layout (another center code)."""
        if not _FREE_FIELD.fullmatch(free_field):
            return None
        if self.center_code is None:
            return free_field[:BILLER_CODE_LENGTH]
        if free_field[:BILLER_CODE_LENGTH] != self.center_code:
            return None
        return free_field[BILLER_CODE_LENGTH : 2 * BILLER_CODE_LENGTH]


def split_free_field(free_field: str) -> tuple[str, int]:
    """The inverse of :func:`free_field_for`: ``(biller_code, serial)``."""
    if not _FREE_FIELD.fullmatch(free_field):
        raise ValueError(f"free field must be exactly 21 digits, got {free_field!r}")
    return free_field[:BILLER_CODE_LENGTH], int(free_field[BILLER_CODE_LENGTH:])
