"""Currency facts Stripe's validation and error messages depend on."""

from __future__ import annotations

__all__ = ["MAXIMUM_AMOUNT", "display_amount", "minimum_amount"]

# Stripe's smallest charge per settlement currency, in minor units; other
# currencies are only required to be positive here.
_MINIMUM = {
    "usd": 50,
    "aed": 200,
    "aud": 50,
    "bgn": 100,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
}
_ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"}
    | {"pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
_SYMBOL = {"usd": "$", "cad": "$", "aud": "$", "nzd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}

# Stripe's ceiling: eight digits of minor units.
MAXIMUM_AMOUNT = 99_999_999


def minimum_amount(currency: str) -> int:
    return _MINIMUM.get(currency, 1)


def display_amount(minor: int, currency: str) -> str:
    """How Stripe writes an amount in a message: `$0.50`, `¥50`, `1,000.00 sek`."""
    symbol = _SYMBOL.get(currency)
    number = f"{minor:,}" if currency in _ZERO_DECIMAL else f"{minor / 100:,.2f}"
    return f"{symbol}{number}" if symbol else f"{number} {currency}"
