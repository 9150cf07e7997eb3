"""The card-number detector: every card number people write is found; nothing else is."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from paymesh.domain.card_numbers import (
    MAX_DIGITS,
    MIN_DIGITS,
    contains_card_number,
    find_in_json,
    luhn_valid,
)
from paymesh.domain.card_numbers import _scan as scan_only
from paymesh.service.ids import _ALPHABET

SEPARATORS = " -"


def with_check_digit(body: str, valid: bool) -> str:
    """`body` plus the Luhn check digit (or, with valid=False, any other digit)."""
    right = next(d for d in "0123456789" if luhn_valid(body + d))
    wrong = str((int(right) + 1 + sum(map(int, body)) % 9) % 10)
    return body + (right if valid else wrong)


def numbers(lengths: st.SearchStrategy[int], valid: bool) -> st.SearchStrategy[str]:
    return lengths.flatmap(lambda n: st.text("0123456789", min_size=n - 1, max_size=n - 1)).map(
        lambda body: with_check_digit(body, valid)
    )


def card_numbers(lengths: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    """Luhn-valid numbers that start as payment cards do (industry 2-6)."""
    return lengths.flatmap(
        lambda n: st.tuples(
            st.sampled_from("23456"), st.text("0123456789", min_size=n - 2, max_size=n - 2)
        )
    ).map(lambda parts: with_check_digit("".join(parts), True))


def layouts(digits: str) -> list[list[int]]:
    """The ways people write a number of this many digits: contiguous, or a card's groups."""
    n = len(digits)
    shapes = [[n]]
    if 13 <= n <= 16:
        shapes.append([4, 4, 4, n - 12])
    if 17 <= n <= 19:
        shapes.append([4, 4, 4, 4, n - 16])
    if n == 14:
        shapes.append([4, 6, 4])
    if n == 15:
        shapes.append([4, 6, 5])
    return shapes


@st.composite
def written(draw: st.DrawFn, digits: str) -> str:
    shape = draw(st.sampled_from(layouts(digits)))
    groups, at = [], 0
    for size in shape:
        groups.append(digits[at : at + size])
        at += size
    out = groups[0]
    for group in groups[1:]:
        out += draw(st.sampled_from(SEPARATORS)) + group
    return out


def _trim(text: str, from_end: bool) -> str:
    """No letter, digit or separator where the number starts or ends: it stands on its own."""
    while text and (
        text[-1 if from_end else 0].isalnum() or text[-1 if from_end else 0] in SEPARATORS
    ):
        text = text[:-1] if from_end else text[1:]
    return text


BOUNDARIES = st.sampled_from(["", " ", ": ", "=", "\n", "(", '"', "#", "/", "_", ", ", "\t"])


ANY_TEXT = st.text(max_size=30)


@st.composite
def embedded(draw: st.DrawFn, number: str, text: st.SearchStrategy[str] = ANY_TEXT) -> str:
    before = _trim(draw(text), from_end=True)
    after = _trim(draw(text), from_end=False)
    left = draw(BOUNDARIES) if before else draw(st.sampled_from(["", " "]))
    right = draw(BOUNDARIES)
    return before + left + number + right + after


# Annotated: mypy reads a bare ("Nd",) as tuple[str], not the category names hypothesis takes.
NO_DIGITS: tuple[Literal["Nd"]] = ("Nd",)
digit_free = st.text(st.characters(exclude_categories=NO_DIGITS), max_size=30)


@given(data=st.data(), digits=card_numbers(st.integers(12, 19)))
@example(data=None, digits="4242424242424242")
def test_every_luhn_valid_number_of_12_to_19_digits_is_found_however_written(
    data: st.DataObject | None, digits: str
) -> None:
    if data is None:  # the explicit example: the bare number
        assert contains_card_number(digits)
        return
    text = data.draw(written(digits).flatmap(embedded), label="text")
    assert contains_card_number(text), text


@given(data=st.data(), digits=numbers(st.integers(12, 19), valid=False))
def test_a_number_that_fails_luhn_is_not_found(data: st.DataObject, digits: str) -> None:
    # Written as 4-4-4-4-x, its first sixteen digits may be a card and x its security code:
    # that counts (see below), so here they fail Luhn too.
    assume(len(digits) <= 16 or not luhn_valid(digits[:16]))
    text = data.draw(written(digits).flatmap(lambda n: embedded(n, digit_free)), label="text")
    assert not contains_card_number(text), text


@given(
    data=st.data(),
    digits=numbers(st.integers(1, 11) | st.integers(20, 40), valid=True)
    | numbers(st.integers(2, 11) | st.integers(20, 40), valid=False),
)
def test_a_number_of_any_other_length_is_not_found(data: st.DataObject, digits: str) -> None:
    text = data.draw(embedded(digits, digit_free), label="text")
    assert not contains_card_number(text), text


@given(
    body=st.text(_ALPHABET, min_size=25, max_size=25),
    prefix=st.sampled_from(["pay", "re", "evt", "rev", "dl", "cus"]),
)
def test_our_own_ids_are_never_taken_for_card_numbers(body: str, prefix: str) -> None:
    # Only a run standing on its own counts: inside an id it touches a letter, or it is all
    # 25 characters, longer than any card number.
    assert not contains_card_number(f"{prefix}_{body}")


@pytest.mark.parametrize(
    "text",
    [
        "4242424242424242",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "card 4242424242424242 exp 12/30",
        "card: 4242 4242 4242 4242 12/30 123",  # followed by its expiry and CVC
        "4242-4242-4242-4242-123",
        "378282246310005",  # Amex, 15
        "3782 822463 10005",  # Amex as printed
        "3056 930902 5904",  # Diners, 14
        "6011111111111117",  # Discover
        "5555555555554444",
        "4222222222222",  # 13-digit Visa
        "4222 2222 2222 2",
        "6759649826438453",  # Maestro
        "6759 6498 2643 8453 0",  # 17
        "pm_4242424242424242",
        "order=4242424242424242&x=1",
        "\uff14\uff12" * 8,  # full-width digits
        "x\n4242 4242 4242 4242\n",
    ],
)
def test_card_numbers_as_people_write_them_are_found(text: str) -> None:
    assert contains_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "pm_card_visa",
        "4242424242424241",  # fails Luhn
        "42424242424242424242",  # 20 digits
        "424242424242425",  # 15 digits that fail Luhn
        "ab1f0c3d-9a7e-4e0d-8c1b-000000000000",  # a UUID whose last group passes Luhn
        "550E8400-E29B-41D4-A716-446655440000/4242",
        "sha256:da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "+44 20 7946 0958",  # a phone number
        "DE89 3704 0044 0532 0130 00",  # an IBAN
        "2026-01-01 12:00:00",
        "4242 4242",
        "4242  4242  4242  4242",  # double spaces: not how a card number is written
        "x4242424242424242",  # glued to a word
        "4242424242424242x",
        "pay_01KBX4242424242424242Z00",
    ],
)
def test_what_is_not_a_card_number_is_not_found(text: str) -> None:
    assert not contains_card_number(text)


def test_luhn() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    assert luhn_valid("0")


def test_find_in_json_names_the_path_of_the_string_that_holds_one() -> None:
    doc = {
        "amount": 4242424242424242,
        "currency": "usd",
        "metadata": {"order": "A-1", "note": "card 4242 4242 4242 4242"},
    }
    assert find_in_json(doc) == "metadata.note"
    assert (
        find_in_json({"targets": [{"id": "t"}, {"url": "https://x/4242424242424242"}]})
        == "targets[1].url"
    )
    assert find_in_json({"metadata": {"4242424242424242": "x"}}) == "metadata"  # a key
    assert find_in_json({"4242424242424242": 1}) == ""
    assert find_in_json("4242424242424242") == ""
    assert find_in_json({"amount": 4242424242424242, "at": 1735689600000}) is None  # ints
    assert find_in_json([1.5, None, True, {"a": ["b"]}]) is None


def test_find_in_json_walks_documents_deeper_than_the_stack() -> None:
    doc: object = "4242424242424242"
    for _ in range(50_000):
        doc = {"a": doc}
    assert find_in_json(doc) == ".".join(["a"] * 50_000)


@given(digits=numbers(st.integers(12, 19), valid=True))
def test_only_numbers_that_start_as_payment_cards_count(digits: str) -> None:
    card_like = digits[0] in "23456" or (digits[0] == "1" and len(digits) == 15)
    assert contains_card_number(digits) == card_like


@pytest.mark.parametrize(
    "text",
    ["order-1735689600000", "1735689600000", "ts 1735689600000123", "9" + "4242424242424242"[1:]],
)
def test_timestamps_and_non_card_industries_are_not_card_numbers(text: str) -> None:
    assert not contains_card_number(text)


def test_a_uatp_airline_card_is_a_card_number() -> None:
    assert contains_card_number("135410014004955")


@given(
    st.text(alphabet=st.sampled_from("0123456789 -abcdefAF_x\uff14"), max_size=60)
    | st.builds(
        lambda a, b, c: f"{a}{b}{c}",
        st.text(alphabet="0123456789 -", max_size=12),
        st.uuids().map(str),
        st.text(alphabet="0123456789 -", max_size=12),
    )
    # Cards of every length, bare and in groups of four: the shortest (12) must get through.
    | card_numbers(st.integers(MIN_DIGITS, MAX_DIGITS)).flatmap(
        lambda n: st.sampled_from([n, " ".join(n[i : i + 4] for i in range(0, len(n), 4))])
    )
)
def test_the_quick_refusal_of_short_digit_runs_changes_no_answer(text: str) -> None:
    """contains_card_number first looks for twelve digits in a row, then scans: it answers
    as the scan alone does, UUIDs and full-width digits included."""
    assert contains_card_number(text) == scan_only(text)
