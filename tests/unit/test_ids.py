"""Identifiers: Crockford base32 of the creation millisecond, then 80 random bits."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from paymesh.service.ids import _ALPHABET, id_body, new_id


def crockford(value: int, width: int) -> str:
    """The plain definition, a digit at a time (what `id_body` did before its pair table)."""
    digits = []
    for _ in range(width):
        digits.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(digits))


@given(st.integers(min_value=0, max_value=2**50), st.integers(min_value=0, max_value=2**90))
def test_the_body_is_the_millisecond_then_the_random_bits_in_crockford_base32(
    millis: int, random: int
) -> None:
    assert id_body(millis, random) == crockford(millis, 9) + crockford(random, 16)


def test_the_edges_of_each_field() -> None:
    assert id_body(0, 0) == "0" * 25
    assert id_body(2**45 - 1, 2**80 - 1) == "Z" * 25
    assert id_body(2**45 - 1, 0) == "Z" * 9 + "0" * 16
    assert id_body(0, 2**80 - 1) == "0" * 9 + "Z" * 16
    assert id_body(1, 1) == "0" * 8 + "1" + "0" * 15 + "1"


@given(st.lists(st.integers(min_value=0, max_value=2**45 - 1), min_size=2, max_size=20))
def test_ids_of_later_milliseconds_sort_later(millis: list[int]) -> None:
    # Whatever the random part, the time comes first: ids sort as their milliseconds do.
    bodies = [id_body(ms, (2**80 - 1) if i % 2 else 0) for i, ms in enumerate(millis)]
    by_body = sorted(range(len(millis)), key=lambda i: (bodies[i], i))
    by_time = sorted(range(len(millis)), key=lambda i: (millis[i], bodies[i], i))
    assert [millis[i] for i in by_body] == [millis[i] for i in by_time]


def test_a_new_id_is_its_prefix_and_25_crockford_digits() -> None:
    made = new_id("pay")
    assert re.fullmatch(r"pay_[0-9A-HJKMNP-TV-Z]{25}", made)
