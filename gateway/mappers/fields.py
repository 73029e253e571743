"""Field adapters shared by every fixed-width network (CVS now, Zengin later).

Each adapter is a construct ``Adapter`` over ``Bytes(n)``: parsing turns the bytes into a plain
Python value, building turns the value back into exactly ``n`` bytes, and both refuse anything the
field cannot hold by raising :class:`FieldValueError` (a ``construct.ConstructError``) whose
``reason`` is meant for a person.

A record schema is a ``Struct`` of named adapters ending with ``Terminated``. Rather than parse the
whole struct and stop at the first problem, :func:`parse_fields` walks the struct's fields one by
one and reports every bad field as a :class:`~gateway.errors.RecordError` naming the record number
and the field; :func:`build_fields` does the same when writing. No construct ``Container`` ever
leaves this module: callers get a ``dict`` of plain values.

Do not use ``PaddedString`` for these formats: it pads with NUL and refuses CP932.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import construct
from construct import Adapter, Bytes, Construct, ConstructError, Struct

from gateway.errors import RecordError

__all__ = [
    "ZENGIN_CHARS",
    "FieldValueError",
    "alnum",
    "build_fields",
    "chars",
    "const",
    "date8",
    "digits",
    "filler",
    "kana",
    "numeric",
    "parse_fields",
    "record_size",
    "shown",
]

_HALF_WIDTH = frozenset(range(0x20, 0x7F)) | frozenset(range(0xA1, 0xE0))  # CP932 single bytes
_ALNUM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ")
_DIGITS = re.compile(rb"[0-9]*")
# Zengin "C" characters: digits, A-Z, half-width katakana without small kana, ﾞ ﾟ, space, ( ) - . /
ZENGIN_CHARS = frozenset(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ ()-./"
    + "ｦ"
    + "".join(chr(c) for c in range(0xFF71, 0xFFA0))  # ｱ..ﾝ ﾞ ﾟ (U+FF71-U+FF9F)
)


class FieldValueError(ConstructError):
    """A field's bytes (or value to build) are not what the field allows."""

    def __init__(self, reason: str, path: object = None) -> None:
        super().__init__(reason, path)
        self.reason = reason


def shown(raw: bytes) -> str:
    """Bytes as a readable ``RecordError.value``: CP932 text, anything else as ``\\xNN``."""
    return raw.decode("cp932", errors="backslashreplace")


class _Field(Adapter):
    """A fixed-width field of ``size`` bytes; subclasses convert and validate."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a field has at least one byte")
        super().__init__(Bytes(size))
        self.size = size

    def _decode(self, obj: bytes, context: object, path: object) -> Any:
        return self.decode(obj)

    def _encode(self, obj: object, context: object, path: object) -> bytes:
        raw = self.encode(obj)
        if len(raw) != self.size:  # a guard for subclasses, never expected
            raise FieldValueError(f"{len(raw)} bytes built for a {self.size}-byte field")
        return raw

    def decode(self, raw: bytes) -> Any:
        raise NotImplementedError

    def encode(self, value: object) -> bytes:
        raise NotImplementedError


class _Numeric(_Field):
    def decode(self, raw: bytes) -> int:
        if not _DIGITS.fullmatch(raw):
            raise FieldValueError(f"expected {self.size} ASCII digits")
        return int(raw)

    def encode(self, value: object) -> bytes:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10**self.size:
            raise FieldValueError(f"expected a whole number from 0 to {10**self.size - 1}")
        return f"{value:0{self.size}d}".encode("ascii")


class _Digits(_Field):
    def decode(self, raw: bytes) -> str:
        if not _DIGITS.fullmatch(raw):
            raise FieldValueError(f"expected {self.size} ASCII digits")
        return raw.decode("ascii")

    def encode(self, value: object) -> bytes:
        if not isinstance(value, str) or not value.isascii() or not value.isdigit():
            raise FieldValueError(f"expected {self.size} ASCII digits")
        if len(value) != self.size:
            raise FieldValueError(f"expected {self.size} ASCII digits, got {len(value)}")
        return value.encode("ascii")


class _Chars(_Field):
    """``size`` single-byte characters from ``allowed``, kept as they are (no stripping)."""

    def __init__(self, size: int, allowed: str) -> None:
        super().__init__(size)
        self.allowed = frozenset(allowed.encode("ascii"))
        self.what = "".join(sorted(allowed))

    def decode(self, raw: bytes) -> str:
        if not self.allowed.issuperset(raw):
            raise FieldValueError(f"expected {self.size} characters from {self.what!r}")
        return raw.decode("ascii")

    def encode(self, value: object) -> bytes:
        raw = value.encode("ascii") if isinstance(value, str) and value.isascii() else b""
        if len(raw) != self.size or not self.allowed.issuperset(raw):
            raise FieldValueError(f"expected {self.size} characters from {self.what!r}")
        return raw


class _Text(_Field):
    """Left-aligned, space-padded text; parsing strips the padding on the right."""

    def __init__(self, size: int, refusal: str) -> None:
        super().__init__(size)
        self.refusal = refusal

    def allowed(self, raw: bytes) -> bool:
        raise NotImplementedError

    def decode(self, raw: bytes) -> str:
        if not self.allowed(raw):
            raise FieldValueError(self.refusal)
        return raw.decode("cp932").rstrip(" ")

    def encode(self, value: object) -> bytes:
        if not isinstance(value, str):
            raise FieldValueError(self.refusal)
        try:
            raw = value.encode("cp932")
        except UnicodeEncodeError:
            raise FieldValueError(self.refusal) from None
        if len(raw) != len(value) or not self.allowed(raw):
            raise FieldValueError(self.refusal)
        if len(raw) > self.size:
            raise FieldValueError(f"at most {self.size} characters, got {len(raw)}")
        return raw.ljust(self.size, b" ")


class _Alnum(_Text):
    def __init__(self, size: int) -> None:
        super().__init__(size, "only ASCII capitals, digits and spaces are allowed")

    def allowed(self, raw: bytes) -> bool:
        return _ALNUM.issuperset(raw)


class _Kana(_Text):
    def __init__(self, size: int, charset: frozenset[str] | None) -> None:
        if charset is None:
            refusal = "only half-width characters (1 byte each in CP932) are allowed"
        else:
            refusal = "a character is not allowed in this field (half-width, no small kana)"
        super().__init__(size, refusal)
        self.charset = charset

    def allowed(self, raw: bytes) -> bool:
        if not _HALF_WIDTH.issuperset(raw):
            return False
        return self.charset is None or self.charset.issuperset(raw.decode("cp932"))


class _Date(_Field):
    def __init__(self, size: int, zero_is_none: bool) -> None:
        if size not in (6, 8):
            raise ValueError("a date field is YYYYMMDD (8) or YYMMDD (6)")
        super().__init__(size)
        self.zero_is_none = zero_is_none
        self.pattern = "YYYYMMDD" if size == 8 else "YYMMDD"

    def decode(self, raw: bytes) -> date | None:
        if self.zero_is_none and raw == b"0" * self.size:
            return None
        zero = f" or {'0' * self.size}" if self.zero_is_none else ""
        if not _DIGITS.fullmatch(raw):
            raise FieldValueError(f"expected a date {self.pattern}{zero}")
        text = raw.decode("ascii")
        year = int(text[:-4]) + (2000 if self.size == 6 else 0)
        try:
            return date(year, int(text[-4:-2]), int(text[-2:]))
        except ValueError:
            raise FieldValueError(f"not a calendar date {self.pattern}{zero}") from None

    def encode(self, value: object) -> bytes:
        if value is None and self.zero_is_none:
            return b"0" * self.size
        if not isinstance(value, date) or isinstance(value, datetime):
            raise FieldValueError("expected a date" + (" or none" if self.zero_is_none else ""))
        if self.size == 6:
            if not 2000 <= value.year <= 2099:
                raise FieldValueError("a YYMMDD date must be in 2000-2099")
            return value.strftime("%y%m%d").encode("ascii")
        return f"{value.year:04d}{value.month:02d}{value.day:02d}".encode("ascii")


class _Fixed(_Field):
    """Bytes that must be exactly ``value``; builds them whatever is given."""

    def __init__(self, value: bytes, what: str) -> None:
        super().__init__(len(value))
        self.value = value
        self.what = what
        self.flagbuildnone = True

    def decode(self, raw: bytes) -> None:
        if raw != self.value:
            raise FieldValueError(f"expected {self.what}")
        return None

    def encode(self, value: object) -> bytes:
        return self.value


def numeric(n: int) -> Construct:
    """``n`` ASCII digits ⇄ ``int`` (zero-padded on build)."""
    return _Numeric(n)


def digits(n: int) -> Construct:
    """``n`` ASCII digits ⇄ ``str``, leading zeros kept."""
    return _Digits(n)


def chars(n: int, allowed: str) -> Construct:
    """``n`` ASCII characters from ``allowed`` ⇄ ``str`` as they are (e.g. digits or spaces)."""
    return _Chars(n, allowed)


def alnum(n: int) -> Construct:
    """ASCII capitals, digits and spaces, left-aligned and space-padded ⇄ right-stripped ``str``."""
    return _Alnum(n)


def kana(n: int, *, charset: frozenset[str] | None = None) -> Construct:
    """CP932 half-width characters (1 byte each), left-aligned, space-padded ⇄ ``str``.

    ``charset`` narrows what is allowed further (e.g. :data:`ZENGIN_CHARS`, without small kana).
    """
    return _Kana(n, charset)


def date8(n: int = 8, *, zero_is_none: bool = False) -> Construct:
    """YYYYMMDD (YYMMDD in 2000-2099 when ``n`` is 6) ⇄ ``date``; zeros ⇄ ``None`` if asked."""
    return _Date(n, zero_is_none)


def filler(n: int, char: bytes = b" ") -> Construct:
    """``n`` times ``char``, required when parsing (value ``None``), written when building."""
    if len(char) != 1:
        raise ValueError("a filler character is one byte")
    return _Fixed(char * n, f"{n} x {char!r}")


def const(value: bytes) -> Construct:
    """Exactly ``value`` (e.g. a record type); parses to ``None``, builds ``value``."""
    return _Fixed(value, repr(value))


def _fields(schema: Struct) -> list[tuple[str, Construct]]:
    """The named fields of a record struct, which must end with ``Terminated``."""
    subcons = list(schema.subcons)
    if not subcons or subcons[-1] is not construct.Terminated:
        raise ValueError("a record struct must end with Terminated")
    named: list[tuple[str, Construct]] = []
    for sub in subcons[:-1]:
        if not sub.name:
            raise ValueError("every field of a record struct has a name")
        named.append((sub.name, sub))
    return named


def _direct(field: Construct) -> _Field | None:
    """The adapter of this module under a named field, if it is one: its ``decode`` and
    ``_encode`` are what construct's ``parse`` and ``build`` end up calling, without the stream,
    context and path construct builds around every call (most of a record's parsing and building
    time, measured by bench/zengin.py)."""
    inner = field
    while isinstance(inner, construct.Renamed):
        inner = inner.subcon
    return inner if isinstance(inner, _Field) else None


@functools.cache
def _layout(schema: Struct) -> tuple[tuple[str, Construct, int, int, _Field | None], ...]:
    """(name, field, offset, width, adapter) of every field: computed once per schema, as it is
    constant and parsing a record must not pay for it again."""
    layout, offset = [], 0
    for name, field in _fields(schema):
        width = int(field.sizeof())
        layout.append((name, field, offset, width, _direct(field)))
        offset += width
    return tuple(layout)


def record_size(schema: Struct) -> int:
    """The length in bytes of a record of ``schema`` (``Terminated`` has no size in construct)."""
    return sum(width for _, _, _, width, _ in _layout(schema))


def parse_fields(
    schema: Struct, data: bytes, *, network: str, record: int
) -> tuple[dict[str, Any], list[RecordError]]:
    """Every field of one record: ``(values, errors)``; a bad field is absent from ``values``.

    A record of the wrong length gives one error (field ``record``) and no values.
    """

    def error(field: str, raw: bytes, reason: str) -> RecordError:
        return RecordError(network, record, field, shown(raw), reason)

    size = record_size(schema)
    if len(data) != size:
        reason = f"a record has {size} bytes; record {record} has {len(data)}"
        return {}, [error("record", data[:size], reason)]
    values: dict[str, Any] = {}
    errors: list[RecordError] = []
    for name, field, offset, width, direct in _layout(schema):
        raw = data[offset : offset + width]
        try:
            values[name] = field.parse(raw) if direct is None else direct.decode(raw)
        except FieldValueError as exc:
            errors.append(error(name, raw, exc.reason))
        except ConstructError as exc:  # not raised by our adapters; kept as a safety net
            errors.append(error(name, raw, str(exc)))
    return values, errors


def build_fields(
    schema: Struct, values: Mapping[str, object], *, network: str, record: int = 0
) -> bytes:
    """One record from plain values; raises :class:`RecordError` on the first field that cannot be
    written. Fillers and constants need no value."""
    out = bytearray()
    for name, field, _, _, direct in _layout(schema):
        value = values.get(name)
        try:
            out += field.build(value) if direct is None else direct._encode(value, None, None)
        except FieldValueError as exc:
            raise RecordError(network, record, name, str(value), exc.reason) from None
        except ConstructError as exc:
            raise RecordError(network, record, name, str(value), str(exc)) from None
    return bytes(out)
