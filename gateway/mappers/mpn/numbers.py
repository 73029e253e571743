"""Pay-easy customer-facing identifiers (spec/mpn.md §1).

- お客様番号 (customer number): 5-digit biller code + 10 digits + 1 check digit = 16 digits, well
  within the 20-digit limit. The 10 digits are the bill's serial under a keyed permutation of
  [0, 10^10) (``mpn.number_key``), so consecutive bills get unrelated numbers: knowing one's own
  number tells nothing of the neighbours', and the 確認番号 guard is no longer the only defence.
  A permutation is a bijection, so numbers stay unique per (biller code, serial) as long as the
  key never changes (the bills table's unique constraint refuses a collision regardless). Numbers
  are looked up by their stored value, never by inverting the permutation.
  The check digit is mod 10 with weights 3, 1, 3, ... from the right, as in the CVS barcode.
- A reusable お客様番号 (payer number, one per biller and customer, for all the customer's bills):
  5-digit biller code + 12 digits + 1 check digit = 18 digits. The 12 digits are the payer
  number's serial under the same keyed permutation, over [0, 10^12). Its length sets it apart
  from every bill's 16-digit number: under one 収納機関番号 the two kinds can never be the same
  number, and a number's length alone says which kind it is.
- 確認番号 (confirmation number): 4 to 6 random digits per bill (and per payer number).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable

BILLER_CODE_LENGTH = 5
SERIAL_LENGTH = 10
CUSTOMER_NUMBER_LENGTH = BILLER_CODE_LENGTH + SERIAL_LENGTH + 1  # 16
MAX_SERIAL = 10**SERIAL_LENGTH - 1
PAYER_SERIAL_LENGTH = 12
PAYER_NUMBER_LENGTH = BILLER_CODE_LENGTH + PAYER_SERIAL_LENGTH + 1  # 18
MAX_PAYER_SERIAL = 10**PAYER_SERIAL_LENGTH - 1

_BILLER_CODE = re.compile(r"[0-9]{5}")
_CUSTOMER_NUMBER = re.compile(r"[0-9]{16}")
_PAYER_NUMBER = re.compile(r"[0-9]{18}")


def _mod10_31(digits: str) -> int:
    """Mod 10 with weights 3, 1, 3, ... from the rightmost digit."""
    backwards = digits[::-1]  # (sums of slices: the bulk registration path makes many)
    total = 3 * sum(map(int, backwards[::2])) + sum(map(int, backwards[1::2]))
    return (10 - total % 10) % 10


FEISTEL_ROUNDS = 10


def permute_digits(value: int, digits: int, key: bytes) -> int:
    """``value`` of ``[0, 10**digits)`` under a permutation of that range keyed by ``key``.

    A balanced decimal Feistel network (the construction of NIST SP 800-38G's FF1, with
    HMAC-SHA256 as round function): the number is split into a high part of ``digits // 2``
    digits and a low part of the rest, and each round adds a keyed function of one part to the
    other modulo its own power of ten. Every round is invertible, so the whole is a bijection on
    exactly ``[0, 10**digits)``, with no cycle-walking. Not a format-preserving *cipher* for
    secrets: it only makes serials unpredictable to whoever does not hold the key.
    """
    if not key:
        raise ValueError("the permutation needs a key (mpn.number_key)")
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 2:
        raise ValueError(f"digits must be a whole number of at least 2, got {digits!r}")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**digits:
        raise ValueError(f"value must be a whole number in [0, 10**{digits}), got {value!r}")
    u = digits // 2
    v = digits - u
    a, b = divmod(value, 10**v)  # a: u digits, b: v digits
    for i in range(FEISTEL_ROUNDS):
        m = u if i % 2 == 0 else v  # a has m digits in this round
        mac = hmac.new(key, f"{digits}:{i}:{b}".encode("ascii"), hashlib.sha256).digest()
        a, b = b, (a + int.from_bytes(mac, "big")) % 10**m
    # An even number of rounds leaves a with u digits and b with v digits again.
    return a * 10**v + b


def _keyed_number(biller_code: str, serial: int, digits: int, key: bytes) -> str:
    """The biller code, ``serial`` under the keyed permutation of ``[0, 10**digits)``, and the
    check digit; ``ValueError`` for a biller code other than 5 ASCII digits or a serial out of
    range."""
    if not isinstance(biller_code, str) or not _BILLER_CODE.fullmatch(biller_code):
        raise ValueError(f"biller code must be exactly 5 digits, got {biller_code!r}")
    top = 10**digits - 1
    if isinstance(serial, bool) or not isinstance(serial, int) or not 0 <= serial <= top:
        raise ValueError(f"serial must be a whole number from 0 to {top}, got {serial!r}")
    body = f"{biller_code}{permute_digits(serial, digits, key):0{digits}d}"
    return body + str(_mod10_31(body))


def customer_number(biller_code: str, serial: int, key: bytes) -> str:
    """The 16-digit お客様番号 of bill ``serial`` of a biller: the biller code, the serial under
    the keyed permutation (``mpn.number_key``), and the check digit.

    Raises ``ValueError`` when ``biller_code`` is not 5 ASCII digits, ``serial`` is not a whole
    number from 0 to 9,999,999,999 or ``key`` is empty.
    """
    return _keyed_number(biller_code, serial, SERIAL_LENGTH, key)


def payer_number(biller_code: str, serial: int, key: bytes) -> str:
    """The 18-digit reusable お客様番号 of payer number ``serial`` of a biller: the biller code,
    the serial under the keyed permutation of 12 digits (``mpn.number_key``), and the check
    digit. ``ValueError`` as :func:`customer_number` (serial up to 999,999,999,999)."""
    return _keyed_number(biller_code, serial, PAYER_SERIAL_LENGTH, key)


def is_payer_number(text: str) -> bool:
    """Whether an お客様番号 is of the reusable kind (18 digits, whatever its check digit): the
    answers look it up among payer numbers rather than bills."""
    return isinstance(text, str) and _PAYER_NUMBER.fullmatch(text) is not None


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
