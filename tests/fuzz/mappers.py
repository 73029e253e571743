"""Fuzz checks of the pure mappers: CVS records, result files and agency CSV, MPN messages,
Zengin files (see tests/fuzz/registry.py). They import nothing but the mappers and the kernel's
values, so that a run starts quickly.

Each check returns quietly when the parser accepts the input or refuses it with its documented
error, and then also checks what the gateway does next with an accepted value (its canonical
event, the bytes it would build back); anything else raised is a finding.
"""

from __future__ import annotations

from datetime import date, datetime

from gateway.errors import FileErrors, RecordError
from gateway.mappers.cvs import agency as cvs_agency_csv
from gateway.mappers.cvs import mapper as cvs
from gateway.mappers.mpn import mapper as mpn
from gateway.mappers.mpn.records import REQUEST_TYPES
from gateway.mappers.zengin import mapper as zengin
from gateway.model import JST

RECEIVED = datetime(2026, 11, 23, 9, 30, 5, tzinfo=JST)
TODAY = date(2026, 11, 23)
SOURCE = "fuzz"


def _refused(e: FileErrors) -> None:
    """A refused file names at least one error, and its report can be written."""
    assert e.errors, "FileErrors without an error"
    assert all(isinstance(x, RecordError) for x in e.errors)
    e.report()
    e.one_line()


def cvs_record(data: bytes) -> None:
    """One 120-byte 速報/確報/取消 record, as the link's submit parses it."""
    try:
        record = cvs.parse_record(data, record_no=1)
    except RecordError as e:
        str(e)
        return
    event = cvs.to_canonical(record, raw=data, source=SOURCE, received_at=RECEIVED)
    assert event.event_key == record.event_key
    assert cvs.build_record(record) == data, "a record does not build back to its bytes"


def cvs_file(data: bytes) -> None:
    """A result file (確報 files from the agency's folder)."""
    try:
        parsed = cvs.parse_file(data, source=SOURCE)
    except FileErrors as e:
        _refused(e)
        return
    events = parsed.events(name=SOURCE, received_at=RECEIVED)
    assert len(events) == parsed.trailer_count


def cvs_agency(data: bytes) -> None:
    """The agency CSV pulled over HTTPS."""
    try:
        rows = cvs.parse_agency_csv(data, source=SOURCE)
    except FileErrors as e:
        _refused(e)
        return
    except cvs_agency_csv.AgencyError as e:
        str(e)
        return
    lines = cvs.agency_lines(data)
    assert len(lines) == len(rows)
    for (no, raw), row in zip(lines, rows, strict=True):
        event = cvs.agency_row_to_canonical(
            row, raw=raw, source=f"{SOURCE}:{no}", received_at=RECEIVED
        )
        assert event.event_key == row.event_key
    again = cvs.parse_agency_csv(cvs.build_agency_csv(rows))
    assert again == rows, "the rows do not read back the same from the CSV built of them"


def mpn_message(data: bytes) -> None:
    """One MPN link message (without its length prefix), as the link parses it."""
    try:
        message = mpn.parse_message(data)
    except RecordError as e:
        str(e)
        return
    assert mpn.build_message(message) == data, "a message does not build back to its bytes"
    type_ = message.header.type
    if type_ in REQUEST_TYPES and type_ not in ("1000", "1900"):  # what the center may ask
        for code in ("2001", "9001"):
            mpn.build_message(mpn.response_for(message, code))
    if type_ in ("1200", "1300", "1400"):
        event = mpn.to_canonical(message, raw=data, source=SOURCE, received_at=RECEIVED)
        assert event.amount >= 0


def zengin_file(data: bytes) -> None:
    """A 口座振替 request or result file (the bank's result comes back through a folder)."""
    try:
        parsed = zengin.parse_file(data, source=SOURCE)
    except FileErrors as e:
        _refused(e)
        return
    try:
        debit_date: date | None = parsed.header.debit_date(TODAY)
    except ValueError:  # documented: an MMDD that is no day of the three years around today
        debit_date = None
    if parsed.is_result and debit_date is not None:
        events = zengin.to_canonical(
            parsed, debit_date=debit_date, name=SOURCE, received_at=RECEIVED
        )
        assert len(events) == len(parsed.debits)
    rebuilt = zengin.build_file(parsed.header, parsed.debits, results=parsed.is_result)
    assert zengin.parse_file(rebuilt) == parsed, "a file does not read back the same"
