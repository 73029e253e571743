"""Pay-easy identifiers (spec/mpn.md §1)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.mappers.mpn.numbers import (
    confirmation_number,
    customer_number,
    permute_digits,
    valid_customer_number,
)

KEY = bytes.fromhex("5e1f0c2a9b7d4e6f8a3c1b2d0e9f7a6c")
OTHER_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")


def test_customer_number_layout() -> None:
    number = customer_number("12345", 42, KEY)
    assert len(number) == 16 <= 20
    assert number[:5] == "12345"
    assert number[5:15] == f"{permute_digits(42, 10, KEY):010d}"
    assert valid_customer_number(number)


def test_customer_number_known_value() -> None:
    # A vector pinned so that a change of the permutation (which would break the uniqueness of
    # numbers issued after the change) cannot pass unnoticed.
    assert customer_number("12345", 42, KEY) == "1234523645426759"


def test_known_check_digit() -> None:
    # 123450000000042, weights 3,1,3,... from the right:
    # 2*3 + 4*1 + 5*3 + 4*1 + 3*3 + 2*1 + 1*3 = 43, so the check digit is (10 - 3) % 10 = 7.
    assert valid_customer_number("1234500000000427")
    assert not valid_customer_number("1234500000000428")


def test_consecutive_serials_do_not_give_consecutive_numbers() -> None:
    """The attack: from one's own お客様番号, the neighbours' were the next and previous serial."""
    serials = [int(customer_number("00001", s, KEY)[5:15]) for s in range(1, 201)]
    steps = [b - a for a, b in itertools.pairwise(serials)]
    assert not any(abs(step) <= 1000 for step in steps)
    assert serials != sorted(serials)


def test_the_key_decides_the_numbers() -> None:
    mine = [customer_number("00001", s, KEY) for s in range(100)]
    theirs = [customer_number("00001", s, OTHER_KEY) for s in range(100)]
    assert sum(a == b for a, b in zip(mine, theirs, strict=True)) <= 1


@pytest.mark.parametrize("digits", [2, 3, 4])
def test_the_permutation_is_a_bijection_on_small_ranges(digits: int) -> None:
    image = [permute_digits(v, digits, KEY) for v in range(10**digits)]
    assert sorted(image) == list(range(10**digits))
    assert image != list(range(10**digits))


@given(
    st.integers(min_value=2, max_value=12),
    st.binary(min_size=16, max_size=64),
    st.data(),
)
def test_the_permutation_stays_in_range_and_never_merges(
    digits: int, key: bytes, data: st.DataObject
) -> None:
    values = data.draw(
        st.lists(st.integers(0, 10**digits - 1), min_size=2, max_size=20, unique=True)
    )
    image = [permute_digits(v, digits, key) for v in values]
    assert all(0 <= p < 10**digits for p in image)
    assert len(set(image)) == len(values)


def test_customer_numbers_are_unique_across_serials_and_billers() -> None:
    numbers = {
        customer_number(biller, serial, KEY)
        for biller in ("00001", "00002", "99999")
        for serial in range(1000)
    }
    assert len(numbers) == 3 * 1000
    assert all(valid_customer_number(n) for n in numbers)


def test_customer_number_is_deterministic() -> None:
    assert customer_number("00001", 7, KEY) == customer_number("00001", 7, KEY)


@pytest.mark.parametrize(
    ("biller", "serial"),
    [("1234", 1), ("123456", 1), ("1234a", 1), ("１2345", 1), ("12345", -1), ("12345", 10**10)],
)
def test_customer_number_refuses_what_does_not_fit(biller: str, serial: int) -> None:
    with pytest.raises(ValueError):
        customer_number(biller, serial, KEY)


def test_customer_number_refuses_an_empty_key() -> None:
    with pytest.raises(ValueError, match="number_key"):
        customer_number("12345", 1, b"")


def test_customer_number_largest_and_smallest_serial() -> None:
    for serial in (0, 10**10 - 1):
        number = customer_number("12345", serial, KEY)
        assert len(number) == 16 and valid_customer_number(number)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "123450000000042",
        "12345000000004277",
        "1234500000000424",
        "123450000000042a",
        "１234500000000427",
    ],
)
def test_valid_customer_number_refuses(text: str) -> None:
    assert valid_customer_number(text) is False


@given(
    st.from_regex(r"\A[0-9]{5}\Z"),
    st.integers(min_value=0, max_value=10**10 - 1),
    st.integers(min_value=0, max_value=15),
    st.integers(min_value=1, max_value=9),
)
def test_single_digit_change_is_detected(
    biller: str, serial: int, position: int, delta: int
) -> None:
    number = customer_number(biller, serial, KEY)
    assert valid_customer_number(number)
    changed = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1 :]
    assert not valid_customer_number(changed)


def test_confirmation_number_zero_padded_with_injected_random() -> None:
    asked: list[int] = []

    def randbelow(n: int) -> int:
        asked.append(n)
        return 42

    assert confirmation_number(randbelow) == "000042"
    assert confirmation_number(randbelow, digits=4) == "0042"
    assert confirmation_number(randbelow, digits=5) == "00042"
    assert asked == [10**6, 10**4, 10**5]


def test_confirmation_number_extremes() -> None:
    assert confirmation_number(lambda n: 0, digits=4) == "0000"
    assert confirmation_number(lambda n: n - 1, digits=6) == "999999"


@pytest.mark.parametrize("digits", [3, 7, 0, -1])
def test_confirmation_number_refuses_bad_length(digits: int) -> None:
    with pytest.raises(ValueError):
        confirmation_number(lambda n: 0, digits=digits)


def test_confirmation_number_refuses_out_of_range_random() -> None:
    with pytest.raises(ValueError):
        confirmation_number(lambda n: n, digits=4)


def test_confirmation_number_default_is_six_random_digits() -> None:
    numbers = [confirmation_number() for _ in range(50)]
    assert all(len(n) == 6 and n.isascii() and n.isdigit() for n in numbers)
    assert len(set(numbers)) > 1
