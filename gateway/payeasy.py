"""Pay-easy customer-facing identifiers (spec/mpn.md §1).

- お客様番号 (customer number): 5-digit biller code + 10-digit serial + 1 check digit = 16 digits,
  so it is deterministic and unique per (biller code, serial) and well within the 20-digit limit.
  The check digit is mod 10 with weights 3, 1, 3, ... from the right, as in the CVS barcode.
- 確認番号 (confirmation number): 4 to 6 random digits per bill.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

BILLER_CODE_LENGTH = 5
SERIAL_LENGTH = 10
CUSTOMER_NUMBER_LENGTH = BILLER_CODE_LENGTH + SERIAL_LENGTH + 1  # 16
MAX_SERIAL = 10**SERIAL_LENGTH - 1

_BILLER_CODE = re.compile(r"[0-9]{5}")
_CUSTOMER_NUMBER = re.compile(r"[0-9]{16}")


def _mod10_31(digits: str) -> int:
    """Mod 10 with weights 3, 1, 3, ... from the rightmost digit."""
    backwards = digits[::-1]  # (sums of slices: the bulk registration path makes many)
    total = 3 * sum(map(int, backwards[::2])) + sum(map(int, backwards[1::2]))
    return (10 - total % 10) % 10


def customer_number(biller_code: str, serial: int) -> str:
    """The 16-digit お客様番号 of bill ``serial`` of a biller.

    Raises ``ValueError`` when ``biller_code`` is not 5 ASCII digits or ``serial`` is not a whole
    number from 0 to 9,999,999,999.
    """
    if not isinstance(biller_code, str) or not _BILLER_CODE.fullmatch(biller_code):
        raise ValueError(f"biller code must be exactly 5 digits, got {biller_code!r}")
    if isinstance(serial, bool) or not isinstance(serial, int) or not 0 <= serial <= MAX_SERIAL:
        raise ValueError(f"serial must be a whole number from 0 to {MAX_SERIAL}, got {serial!r}")
    body = f"{biller_code}{serial:0{SERIAL_LENGTH}d}"
    return body + str(_mod10_31(body))


def valid_customer_number(text: str) -> bool:
    """Whether ``text`` is 16 ASCII digits whose last digit is the check digit of the others."""
    if not isinstance(text, str) or not _CUSTOMER_NUMBER.fullmatch(text):
        return False
    return _mod10_31(text[:-1]) == int(text[-1])


def confirmation_number(
    randbelow: Callable[[int], int] = secrets.randbelow, digits: int = 6
) -> str:
    """A random 確認番号 of ``digits`` digits (4 to 6), zero-padded.

    ``randbelow`` is injected for tests; it must return a number in ``[0, n)``.
    """
    if isinstance(digits, bool) or not isinstance(digits, int) or not 4 <= digits <= 6:
        raise ValueError(f"a confirmation number has 4 to 6 digits, not {digits!r}")
    bound = 10**digits
    value = randbelow(bound)
    if not 0 <= value < bound:
        raise ValueError(f"randbelow({bound}) returned {value}, outside [0, {bound})")
    return f"{value:0{digits}d}"
