from decimal import Decimal

import iso4217
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymesh.domain import money
from paymesh.domain.currencies import EXPONENTS
from paymesh.domain.errors import InvalidAmount, UnsupportedCurrency


def test_every_iso4217_currency_with_a_minor_unit_is_known_with_its_exponent() -> None:
    expected = {c.code: c.exponent for c in iso4217.Currency if c.exponent is not None}
    assert expected == EXPONENTS


@pytest.mark.parametrize(("code", "exp"), [("JPY", 0), ("KWD", 3), ("USD", 2), ("CLF", 4)])
def test_exponents_of_currencies_people_get_wrong(code: str, exp: int) -> None:
    assert money.exponent(code) == exp


@pytest.mark.parametrize("code", ["usd", "USD", "Usd"])
def test_currency_is_accepted_in_any_case_and_kept_lower_case(code: str) -> None:
    assert money.normalize_currency(code) == "usd"


@pytest.mark.parametrize("code", ["XXX", "XAU", "US", "dollars", "", None, 840])
def test_non_currencies_are_refused(code: object) -> None:
    with pytest.raises(UnsupportedCurrency) as info:
        money.normalize_currency(code)
    assert info.value.param == "currency"


@pytest.mark.parametrize("bad", [0, -1, 1.5, "100", True, None, money.MAX_AMOUNT + 1])
def test_amount_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(InvalidAmount):
        money.check_amount(bad)


def test_format_amount_uses_the_currency_exponent() -> None:
    assert money.format_amount(1999, "usd") == "19.99 USD"
    assert money.format_amount(1999, "jpy") == "1999 JPY"
    assert money.format_amount(1999, "kwd") == "1.999 KWD"


@given(st.integers(1, money.MAX_AMOUNT), st.sampled_from(sorted(EXPONENTS)))
def test_major_units_are_exact_and_convert_back(amount: int, currency: str) -> None:
    major = money.to_major(amount, currency)
    assert isinstance(major, Decimal)
    assert major.scaleb(money.exponent(currency)) == amount
