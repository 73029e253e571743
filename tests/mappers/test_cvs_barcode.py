"""The 44-digit CVS barcode (spec/cvs.md §1) against the shared vectors, plus properties."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import RecordError
from gateway.mappers.cvs import barcode
from gateway.mappers.cvs.barcode import Barcode, build, parse

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "cvs" / "barcodes.json").read_text("utf-8")
)
VALID = VECTORS["valid"]
INVALID = VECTORS["invalid"]

# Which field each invalid vector must be refused on.
EXPECTED_FIELD = {
    "bad-check-digit": "check_digit",
    "short": "barcode",
    "long": "barcode",
    "wrong-ai": "ai",
    "over-ceiling": "amount",
    "bad-date": "due",
    "non-digit": "barcode",
}

HUMAN_READABLE = re.compile(r"\(91\)[0-9]{6}-[0-9]{21}-[0-9]-[0-9]{6}-[01]-[0-9]{6}-[0-9]")


def _due_text(due: date | None) -> str:
    return "999999" if due is None else due.strftime("%y%m%d")


def _due_from_text(text: str) -> date | None:
    if text == "999999":
        return None
    return date(2000 + int(text[:2]), int(text[2:4]), int(text[4:]))


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]


def test_every_invalid_vector_has_an_expected_field() -> None:
    assert set(EXPECTED_FIELD) == {v["name"] for v in INVALID}
    assert len(VALID) >= 5


@pytest.mark.parametrize("vector", VALID, ids=_ids(VALID))
def test_parse_valid_vector(vector: dict[str, Any]) -> None:
    fields = vector["fields"]
    decoded = parse(vector["barcode"])
    assert decoded.company_code == fields["company_code"]
    assert decoded.free_field == fields["free_field"]
    assert decoded.reissue == fields["reissue"]
    assert _due_text(decoded.due) == fields["due"]
    assert decoded.due == _due_from_text(fields["due"])
    assert (decoded.due is None) == (fields["due"] == "999999")
    assert decoded.stamp is fields["stamp"]
    assert decoded.amount == fields["amount"]
    assert decoded.check_digit == fields["check_digit"]
    assert decoded.digits == vector["barcode"]
    assert decoded.bill_key == vector["barcode"][2:29]
    assert len(decoded.bill_key) == 27


@pytest.mark.parametrize("vector", VALID, ids=_ids(VALID))
def test_build_from_vector_fields_gives_the_same_digits(vector: dict[str, Any]) -> None:
    fields = vector["fields"]
    built = build(
        company_code=fields["company_code"],
        free_field=fields["free_field"],
        reissue=fields["reissue"],
        due=_due_from_text(fields["due"]),
        stamp=fields["stamp"],
        amount=fields["amount"],
    )
    assert built.digits == vector["barcode"]
    assert built.check_digit == fields["check_digit"]
    assert barcode.check_digit(vector["barcode"][:43]) == fields["check_digit"]
    assert built == parse(vector["barcode"])


@pytest.mark.parametrize("vector", VALID, ids=_ids(VALID))
def test_human_readable(vector: dict[str, Any]) -> None:
    text = parse(vector["barcode"]).human_readable()
    assert HUMAN_READABLE.fullmatch(text), text
    # The printed line carries exactly the 44 digits, in order.
    assert text.replace("(", "").replace(")", "").replace("-", "") == vector["barcode"]


def test_human_readable_guideline_1() -> None:
    assert parse(VALID[0]["barcode"]).human_readable() == (
        "(91)912345-012345678901234567890-1-010331-0-123000-3"
    )


@pytest.mark.parametrize("vector", INVALID, ids=_ids(INVALID))
def test_parse_refuses_invalid_vector(vector: dict[str, Any]) -> None:
    with pytest.raises(RecordError) as info:
        parse(vector["barcode"])
    error = info.value
    assert error.network == "cvs"
    assert error.record == 0
    assert error.field == EXPECTED_FIELD[vector["name"]]
    assert error.reason


def test_over_ceiling_passes_with_a_higher_contract_ceiling() -> None:
    vector = next(v for v in INVALID if v["name"] == "over-ceiling")
    assert parse(vector["barcode"], ceiling=500_000).amount == 300_001


@pytest.mark.parametrize(
    "text",
    ["", " " + VALID[2]["barcode"], VALID[2]["barcode"] + "\n", "９" + VALID[2]["barcode"][1:]],
    ids=["empty", "leading-space", "trailing-newline", "fullwidth-digit"],
)
def test_parse_refuses_anything_but_44_ascii_digits(text: str) -> None:
    with pytest.raises(RecordError) as info:
        parse(text)
    assert info.value.field == "barcode"


def _with_check_digit(digits43: str) -> str:
    return digits43 + str(barcode.check_digit(digits43))


def test_parse_refuses_a_stamp_flag_other_than_0_or_1() -> None:
    digits = VALID[2]["barcode"]
    with pytest.raises(RecordError) as info:
        parse(_with_check_digit(digits[:36] + "2" + digits[37:43]))
    assert info.value.field == "stamp"


def test_parse_accepts_amount_zero_but_build_refuses_it() -> None:
    digits = VALID[2]["barcode"]
    assert parse(_with_check_digit(digits[:37] + "000000")).amount == 0
    fields = VALID[2]["fields"]
    with pytest.raises(RecordError) as info:
        build(
            company_code=fields["company_code"],
            free_field=fields["free_field"],
            reissue=0,
            due=None,
            stamp=False,
            amount=0,
        )
    assert info.value.field == "amount"


def test_check_digit_refuses_wrong_length() -> None:
    with pytest.raises(ValueError):
        barcode.check_digit("9" * 44)
    with pytest.raises(ValueError):
        barcode.check_digit("9" * 42 + "１")


GOOD: dict[str, Any] = {
    "company_code": "987654",
    "free_field": "000010000000000001234",
    "reissue": 0,
    "due": date(2026, 12, 15),
    "stamp": False,
    "amount": 5400,
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("company_code", "98765"),
        ("company_code", "9876543"),
        ("company_code", "98765A"),
        ("company_code", "９87654"),
        ("free_field", "0" * 20),
        ("free_field", "0" * 22),
        ("free_field", "0" * 20 + "x"),
        ("reissue", -1),
        ("reissue", 10),
        ("due", date(1999, 12, 31)),
        ("due", date(2100, 1, 1)),
        ("amount", 0),
        ("amount", -5),
        ("amount", 300_001),
        ("amount", 1_000_000),
    ],
)
def test_build_refuses_bad_field(field: str, value: object) -> None:
    with pytest.raises(RecordError) as info:
        build(**{**GOOD, field: value})
    assert info.value.field == field
    assert info.value.value == str(value)
    assert info.value.network == "cvs"
    assert info.value.reason.endswith(".")


def test_build_limits() -> None:
    assert build(**{**GOOD, "amount": 1}).amount == 1
    assert build(**{**GOOD, "amount": 300_000}).digits[37:43] == "300000"
    assert build(**{**GOOD, "amount": 400_000}, ceiling=500_000).amount == 400_000
    assert build(**{**GOOD, "due": date(2000, 1, 1)}).digits[30:36] == "000101"
    assert build(**{**GOOD, "due": date(2099, 12, 31)}).digits[30:36] == "991231"
    assert build(**{**GOOD, "due": None}).digits[30:36] == "999999"
    assert build(**{**GOOD, "reissue": 9}).digits[29] == "9"


def test_bill_key_ignores_reissue_and_amount() -> None:
    first = build(**GOOD)
    again = build(**{**GOOD, "reissue": 1, "amount": 55_000, "stamp": True, "due": None})
    assert first.bill_key == again.bill_key == "987654000010000000000001234"
    assert first.digits != again.digits


def test_barcode_value_is_frozen_and_validated() -> None:
    value = build(**GOOD)
    with pytest.raises(AttributeError):
        value.amount = 1  # type: ignore[misc]
    with pytest.raises(RecordError):
        Barcode(**{**GOOD, "free_field": "123"})


def test_free_field_for_and_split() -> None:
    assert barcode.free_field_for("00001", 1234) == "000010000000000001234"
    assert barcode.split_free_field("000010000000000001234") == ("00001", 1234)
    assert barcode.free_field_for("99999", 10**16 - 1) == "9" * 21
    for code, serial in [
        ("0001", 1),
        ("000001", 1),
        ("0000a", 1),
        ("00001", -1),
        ("00001", 10**16),
    ]:
        with pytest.raises(ValueError):
            barcode.free_field_for(code, serial)
    with pytest.raises(ValueError):
        barcode.split_free_field("0" * 20)


# --- properties ------------------------------------------------------------------------------


@given(st.text())
def test_parse_arbitrary_text_raises_only_record_error(text: str) -> None:
    try:
        parse(text)
    except RecordError:
        pass


@given(st.from_regex(r"\A[0-9]{44}\Z"), st.integers(min_value=0, max_value=999_999))
def test_parse_arbitrary_digits_raises_only_record_error(text: str, ceiling: int) -> None:
    # Give most cases a right check digit so the later fields are reached too.
    for candidate in (text, _with_check_digit(text[:43]), _with_check_digit("91" + text[2:43])):
        try:
            decoded = parse(candidate, ceiling=ceiling)
        except RecordError:
            continue
        assert decoded.digits == candidate


def _valid_fields() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "company_code": st.from_regex(r"\A[0-9]{6}\Z"),
            "free_field": st.from_regex(r"\A[0-9]{21}\Z"),
            "reissue": st.integers(min_value=0, max_value=9),
            "due": st.none() | st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
            "stamp": st.booleans(),
            "amount": st.integers(min_value=1, max_value=300_000),
        }
    )


@given(_valid_fields())
def test_build_parse_round_trip(fields: dict[str, Any]) -> None:
    built = build(**fields)
    digits = built.digits
    assert len(digits) == 44
    assert digits.startswith("91")
    decoded = parse(digits)
    assert decoded == built
    assert decoded.digits == digits
    assert decoded.bill_key == fields["company_code"] + fields["free_field"]


@given(
    _valid_fields(), st.integers(min_value=0, max_value=43), st.integers(min_value=1, max_value=9)
)
def test_any_single_digit_change_is_detected(
    fields: dict[str, Any], position: int, delta: int
) -> None:
    digits = build(**fields).digits
    changed = str((int(digits[position]) + delta) % 10)
    mutated = digits[:position] + changed + digits[position + 1 :]
    assert mutated != digits
    with pytest.raises(RecordError) as info:
        parse(mutated)
    assert info.value.field in ("ai", "check_digit")


# --- how an agency's 21 free digits are spent (FreeFieldLayout, issue 16) ----------------------

# The shape of a real agency's published test data: maker code 929023, the 5-digit 企業コード
# 25207 it assigned to its client (here: the center, for all its billers), then 16 digits.
REAL_COMPANY = "929023"
REAL_CENTER = "25207"


def _serial_of(layout: barcode.FreeFieldLayout, free_field: str) -> int:
    return int(free_field[-layout.serial_length :])


def test_center_code_layout_round_trips_through_a_real_shaped_barcode() -> None:
    layout = barcode.FreeFieldLayout(REAL_CENTER)
    assert layout.serial_length == barcode.CENTER_SERIAL_LENGTH == 11
    free_field = layout.free_field("00042", 1234)
    assert free_field == "25207" + "00042" + "00000001234"
    slip = build(
        company_code=REAL_COMPANY,
        free_field=free_field,
        reissue=0,
        due=None,  # a slip without a deadline, as the real data has
        stamp=False,
        amount=5400,
    )
    assert slip.digits.startswith("91929023" + "25207" + "00042" + "00000001234" + "0" + "999999")
    read = parse(slip.digits)
    assert read.company_code == REAL_COMPANY
    assert layout.biller_code(read.free_field) == "00042"
    assert _serial_of(layout, read.free_field) == 1234
    assert read.due is None


def test_per_biller_layout_is_the_biller_code_and_16_digits() -> None:
    layout = barcode.FreeFieldLayout()
    assert layout.center_code is None and layout.serial_length == barcode.SERIAL_LENGTH == 16
    # the code the agency assigned to the biller (e.g. 25207 itself), or one the gateway minted
    free_field = layout.free_field(REAL_CENTER, 1234)
    assert free_field == barcode.free_field_for(REAL_CENTER, 1234) == "25207" + "1234".zfill(16)
    read = parse(build(**{**GOOD, "company_code": REAL_COMPANY, "free_field": free_field}).digits)
    assert layout.biller_code(read.free_field) == REAL_CENTER
    assert _serial_of(layout, read.free_field) == 1234
    assert barcode.split_free_field(read.free_field) == (REAL_CENTER, 1234)


@given(
    st.sampled_from([None, REAL_CENTER, "00000", "99999"]),
    st.from_regex(r"\A[0-9]{5}\Z"),
    st.integers(min_value=0, max_value=10**11 - 1),
)
def test_every_layout_resolves_its_free_field_to_the_one_biller(
    center: str | None, biller_code: str, serial: int
) -> None:
    layout = barcode.FreeFieldLayout(center)
    free_field = layout.free_field(biller_code, serial)
    assert len(free_field) == 21 and free_field.isdigit()
    assert layout.biller_code(free_field) == biller_code
    assert _serial_of(layout, free_field) == serial
    if center is not None:
        assert free_field.startswith(center)


def test_center_layout_names_no_biller_for_another_center_code() -> None:
    layout = barcode.FreeFieldLayout(REAL_CENTER)
    ours = layout.free_field("00042", 7)
    assert layout.biller_code(ours) == "00042"
    theirs = barcode.FreeFieldLayout("25208").free_field("00042", 7)
    assert layout.biller_code(theirs) is None
    # a per-biller free field whose biller code is not the center code is not of this layout
    assert layout.biller_code(barcode.free_field_for("00042", 7)) is None
    # and a per-biller layout reads any 21 digits (the biller is then looked up by its code)
    assert barcode.FreeFieldLayout().biller_code(theirs) == "25208"


@pytest.mark.parametrize("center", [None, REAL_CENTER])
@pytest.mark.parametrize("free_field", ["0" * 20, "0" * 22, "2520700042000000000０7", ""])
def test_biller_code_of_what_is_not_21_digits_is_none(center: str | None, free_field: str) -> None:
    assert barcode.FreeFieldLayout(center).biller_code(free_field) is None


def test_center_layout_serial_is_bound_to_11_digits() -> None:
    layout = barcode.FreeFieldLayout(REAL_CENTER)
    assert layout.free_field("99999", 10**11 - 1) == "25207" + "99999" + "9" * 11
    assert layout.free_field("00001", 0) == "25207" + "00001" + "0" * 11
    for serial in (10**11, -1, 1.0, True):
        with pytest.raises(ValueError, match="serial"):
            layout.free_field("00001", serial)  # type: ignore[arg-type]
    # the per-biller layout takes the 16-digit serials the center layout cannot
    assert barcode.FreeFieldLayout().free_field("00001", 10**11).endswith("1" + "0" * 11)
    with pytest.raises(ValueError, match="serial"):
        barcode.FreeFieldLayout().free_field("00001", 10**16)


@pytest.mark.parametrize("biller_code", ["0042", "000042", "0004a", "００042", ""])
@pytest.mark.parametrize("center", [None, REAL_CENTER])
def test_layout_refuses_a_biller_code_that_is_not_5_digits(
    center: str | None, biller_code: str
) -> None:
    with pytest.raises(ValueError, match="biller code"):
        barcode.FreeFieldLayout(center).free_field(biller_code, 1)


@pytest.mark.parametrize("center", ["2520", "252070", "2520x", "２5207", ""])
def test_layout_refuses_a_center_code_that_is_not_5_digits(center: str) -> None:
    with pytest.raises(ValueError, match="center code"):
        barcode.FreeFieldLayout(center)


def test_layout_is_a_frozen_value() -> None:
    layout = barcode.FreeFieldLayout(REAL_CENTER)
    assert layout == barcode.FreeFieldLayout("25207")
    assert layout != barcode.FreeFieldLayout()
    with pytest.raises(AttributeError):
        layout.center_code = None  # type: ignore[misc]
