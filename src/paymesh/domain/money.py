"""Money as an integer count of a currency's minor unit.

Floats never hold money: 0.1 + 0.2 != 0.3 is a refund that does not balance. An amount is
an int in the minor unit (cents for USD, yen for JPY, fils/1000 for KWD) and the currency
decides the exponent.
"""

from __future__ import annotations

from decimal import Decimal

from paymesh.domain.currencies import EXPONENTS
from paymesh.domain.errors import InvalidAmount, UnsupportedCurrency

#: Above any single card payment a PSP accepts; stops an int64 overflow at a store or PSP.
MAX_AMOUNT = 99_999_999_999


def normalize_currency(code: object) -> str:
    """Return the ISO 4217 code in lower case (the wire form Stripe and we use), or raise."""
    if not isinstance(code, str) or code.upper() not in EXPONENTS:
        raise UnsupportedCurrency(code)
    return code.lower()


def exponent(currency: str) -> int:
    return EXPONENTS[currency.upper()]


def check_amount(amount: object, param: str = "amount") -> int:
    """An amount must be a positive int within MAX_AMOUNT; bool is not an int here."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidAmount(f"{param} must be an integer in the currency's minor unit", param)
    if amount <= 0:
        raise InvalidAmount(f"{param} must be greater than 0", param)
    if amount > MAX_AMOUNT:
        raise InvalidAmount(f"{param} must be at most {MAX_AMOUNT}", param)
    return amount


def to_major(amount: int, currency: str) -> Decimal:
    """The amount in major units, exactly (for display and reports, never for arithmetic)."""
    return Decimal(amount).scaleb(-exponent(currency))


def format_amount(amount: int, currency: str) -> str:
    exp = exponent(currency)
    return f"{to_major(amount, currency):.{exp}f} {currency.upper()}"
