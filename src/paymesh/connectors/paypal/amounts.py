"""Our money (an int in the currency's ISO 4217 minor unit) as PayPal's decimal strings.

PayPal writes `{"currency_code": "USD", "value": "20.00"}` with as many decimals
as the currency has, except where it has its own rule: HUF and TWD have cents in
ISO 4217 but PayPal refuses decimals in them. An amount with cents in those
cannot be sent at all; we say so rather than round money.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from paymesh.domain.money import exponent

__all__ = ["AmountNotRepresentable", "from_paypal", "to_paypal"]

#: Currencies whose PayPal decimals differ from ISO 4217's.
_PAYPAL_EXPONENT = {"HUF": 0, "TWD": 0}


class AmountNotRepresentable(ValueError):
    """The amount has a fraction PayPal does not accept in its currency."""


def _exponents(currency: str) -> tuple[int, int]:
    iso = exponent(currency)
    return iso, min(iso, _PAYPAL_EXPONENT.get(currency.upper(), iso))


def to_paypal(amount: int, currency: str) -> dict[str, str]:
    iso, paypal = _exponents(currency)
    scale = 10 ** (iso - paypal)
    units, rest = divmod(amount, scale)
    if rest:
        raise AmountNotRepresentable(
            f"{currency.upper()} takes no decimals at PayPal; {amount} minor units is not a "
            "whole amount"
        )
    whole, frac = divmod(units, 10**paypal)
    value = f"{whole}.{frac:0{paypal}d}" if paypal else str(whole)
    return {"currency_code": currency.upper(), "value": value}


def from_paypal(money: Any) -> tuple[int, str]:
    """(amount in our minor units, lower-case currency) from PayPal's amount object."""
    if not isinstance(money, dict):
        raise ValueError("not a PayPal amount")
    currency, value = money.get("currency_code"), money.get("value")
    if not isinstance(currency, str) or not isinstance(value, str):
        raise ValueError("not a PayPal amount")
    try:
        minor = Decimal(value).scaleb(exponent(currency))
    except (InvalidOperation, KeyError) as exc:
        raise ValueError(f"not an amount: {value!r} {currency!r}") from exc
    if not minor.is_finite() or minor != minor.to_integral_value():
        raise ValueError(f"{value} {currency} has more decimals than the currency")
    return int(minor), currency.lower()
