"""PayPal's money: `{"currency_code": "USD", "value": "20.00"}`, a decimal string.

PayPal takes a short list of currencies, and its decimals are its own: HUF and
TWD have cents in ISO 4217 but PayPal refuses any decimals in them, as in JPY.
The sandbox keeps every amount as an integer count of PayPal's smallest unit
for that currency and writes values back with exactly that many decimals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from paymesh.sandbox.paypal.errors import PayPalError

__all__ = ["SUPPORTED_CURRENCIES", "Money", "parse_money"]

SUPPORTED_CURRENCIES = frozenset(
    {
        "AUD",
        "BRL",
        "CAD",
        "CHF",
        "CNY",
        "CZK",
        "DKK",
        "EUR",
        "GBP",
        "HKD",
        "HUF",
        "ILS",
        "JPY",
        "MXN",
        "MYR",
        "NOK",
        "NZD",
        "PHP",
        "PLN",
        "SEK",
        "SGD",
        "THB",
        "TWD",
        "USD",
    }
)
_NO_DECIMALS = frozenset({"HUF", "JPY", "TWD"})
_VALUE = re.compile(r"^-?(?:\d+|\d*\.\d+)$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _exponent(currency: str) -> int:
    return 0 if currency in _NO_DECIMALS else 2


@dataclass(frozen=True, slots=True)
class Money:
    currency: str
    minor: int  # in PayPal's smallest unit for the currency

    def wire(self) -> dict[str, str]:
        exp = _exponent(self.currency)
        sign = "-" if self.minor < 0 else ""
        whole, frac = divmod(abs(self.minor), 10**exp)
        value = f"{sign}{whole}.{frac:0{exp}d}" if exp else f"{sign}{whole}"
        return {"currency_code": self.currency, "value": value}

    def __str__(self) -> str:
        wire = self.wire()
        return f"{wire['value']} {wire['currency_code']}"


def parse_money(raw: Any, field: str, api: str = "orders/v2") -> Money:
    """Validate PayPal's amount object as PayPal does: 400 for syntax, 422 for business rules."""
    if not isinstance(raw, dict):
        raise PayPalError.missing(field, api)
    currency, value = raw.get("currency_code"), raw.get("value")
    if currency is None:
        raise PayPalError.missing(f"{field}/currency_code", api)
    if value is None:
        raise PayPalError.missing(f"{field}/value", api)
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise PayPalError.invalid_request(
            "INVALID_PARAMETER_SYNTAX",
            "The value of a field does not conform to the expected format.",
            field=f"{field}/currency_code",
            value=currency,
            api=api,
        )
    if currency not in SUPPORTED_CURRENCIES:
        raise PayPalError.unprocessable(
            "CURRENCY_NOT_SUPPORTED",
            "Currency code is not currently supported. Please refer "
            "https://developer.paypal.com/docs/api/reference/"
            "currency-codes/ for list of supported currency codes.",
            field=f"{field}/currency_code",
            api=api,
        )
    if not isinstance(value, str) or len(value) > 32 or not _VALUE.match(value):
        raise PayPalError.invalid_request(
            "INVALID_PARAMETER_SYNTAX",
            "The value of a field does not conform to the expected format.",
            field=f"{field}/value",
            value=value,
            api=api,
        )
    whole, _, frac = value.lstrip("-").partition(".")
    exp = _exponent(currency)
    if frac and exp == 0:
        raise PayPalError.unprocessable(
            "DECIMALS_NOT_SUPPORTED",
            "Currency does not support decimals.",
            field=f"{field}/value",
            api=api,
        )
    if len(frac) > exp:
        raise PayPalError.unprocessable(
            "DECIMAL_PRECISION",
            "If the currency supports decimals, only two decimal place precision is supported.",
            field=f"{field}/value",
            api=api,
        )
    minor = int(whole or "0") * 10**exp + int(frac.ljust(exp, "0") or "0")
    if value.startswith("-"):
        minor = -minor
    if minor <= 0:
        raise PayPalError.unprocessable(
            "CANNOT_BE_ZERO_OR_NEGATIVE",
            "Must be greater than zero. If the currency supports "
            "decimals, only two decimal place precision is "
            "supported.",
            field=f"{field}/value",
            api=api,
        )
    return Money(currency, minor)
