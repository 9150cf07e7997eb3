"""Reading a Checkout request body: each missing or mistyped field is Adyen's 422."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from paymesh.sandbox.adyen.errors import AdyenError
from paymesh.sandbox.return_urls import is_valid

__all__ = ["Body", "amount", "merchant_account", "obj", "string", "string_map", "url"]

Body = dict[str, Any]


def obj(body: Body, name: str, required: bool = False) -> Body:
    value = body.get(name)
    if value is None:
        if required:
            raise AdyenError.field(f"Required object '{name}' is not provided.")
        return {}
    if not isinstance(value, dict):
        raise AdyenError.field(f"'{name}' must be an object")
    return value


def string(body: Body, name: str, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise AdyenError.field(f"Required field '{name}' is not provided.")
        return None
    if not isinstance(value, str):
        raise AdyenError.field(f"'{name}' must be a string")
    return value


def url(body: Body, name: str) -> str | None:
    """A URL a shopper's browser can be sent to: absolute, never `javascript:`, `data:` or
    scheme-relative (`paymesh.sandbox.return_urls`); an app's own scheme is fine."""
    value = string(body, name)
    if value is not None and not is_valid(value):
        raise AdyenError.field(f"'{name}' is not a valid URL")
    return value


def string_map(body: Body, name: str) -> dict[str, str]:
    found = obj(body, name)
    if not all(isinstance(v, str) for v in found.values()):
        raise AdyenError.field(f"every value of '{name}' must be a string")
    return dict(found)


def amount(body: Body) -> tuple[int, str]:
    """`amount: {value, currency}`: value in minor units, a positive integer."""
    found = body.get("amount")
    if found is None:
        raise AdyenError.amount_missing()
    if not isinstance(found, dict):
        raise AdyenError.invalid_amount("'amount' must be an object")
    value, currency = found.get("value"), found.get("currency")
    # bool is an int in Python; `true` is never an amount.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise AdyenError.invalid_amount(f"value must be a positive integer, not {value!r}")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise AdyenError.invalid_amount(f"currency must be an ISO 4217 code, not {currency!r}")
    return value, currency.upper()


def merchant_account(body: Body, known: Collection[str]) -> str:
    name = string(body, "merchantAccount", required=True)
    assert name is not None
    if name not in known:
        raise AdyenError.invalid_merchant_account()
    return name
