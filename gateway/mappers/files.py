"""What every fixed-width record file shares (CVS result files, Zengin files): 120-byte records
— header ``1``, data ``2``, trailer ``8``, end ``9`` — separated by CRLF or by nothing, with an
optional final 0x1A; and the check that they come in that order."""

from __future__ import annotations

from gateway.errors import RecordError

RECORD_LENGTH = 120
EOF_BYTE = b"\x1a"
HEADER_TYPE, DATA_TYPE, TRAILER_TYPE, END_TYPE = b"1", b"2", b"8", b"9"
_NAMES = {HEADER_TYPE: "header", DATA_TYPE: "data record", TRAILER_TYPE: "trailer", END_TYPE: "end"}


def split_records(data: bytes) -> list[bytes]:
    """The records of a file: CRLF-separated or back to back, an optional final 0x1A removed."""
    if data.endswith(EOF_BYTE):
        data = data[:-1]
    if b"\r\n" in data:
        parts = data.split(b"\r\n")
        return parts[:-1] if parts[-1] == b"" else parts
    return [data[i : i + RECORD_LENGTH] for i in range(0, len(data), RECORD_LENGTH)]


def order_errors(
    network: str, order: list[tuple[int, bytes]], count: int, complete: bool
) -> list[RecordError]:
    """Header, data*, trailer, end: one error per record out of place; what is missing only when
    every record's type was known (``complete``), as an unknown one may be the missing one.
    ``order`` is (record number, type byte) of every record whose type is one of the four."""
    errors: list[RecordError] = []
    phase = -1  # -1 nothing yet, 0 header, 1 data, 2 trailer, 3 end
    for no, kind in order:
        if phase == 3:
            reason = f"a {_NAMES[kind]} after the end record"
        elif kind == HEADER_TYPE:
            reason = "" if phase == -1 else "the header must be the first record"
            phase = max(phase, 0)
        elif kind == DATA_TYPE:
            reason = "" if 0 <= phase < 2 else "a data record must follow the header"
            reason = "a data record after the trailer" if phase == 2 else reason
            phase = max(phase, 1)
        elif kind == TRAILER_TYPE:
            reason = "" if 0 <= phase < 2 else "a trailer must follow the header and data"
            reason = "a second trailer" if phase == 2 else reason
            phase = 2
        else:
            reason = "" if phase == 2 else "the end record comes before the trailer"
            phase = 3
        if reason:
            errors.append(RecordError(network, no, "record_type", kind.decode(), reason))
    if complete:
        if not order or order[0][1] != HEADER_TYPE:
            why = "the file must start with a header record"
            errors.append(RecordError(network, 1, "record_type", "", why))
        if phase < 2:
            why = "the file ends without a trailer"
            errors.append(RecordError(network, count + 1, "record_type", "", why))
        elif phase == 2:
            why = "the file ends without an end record"
            errors.append(RecordError(network, count + 1, "record_type", "", why))
    return errors
