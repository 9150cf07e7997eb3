"""Reading a JSON request body the way PayPal validates it: a JSON Pointer-ish
`field` in every 400, so a client can tell which value was wrong."""

from __future__ import annotations

from typing import Any

from paymesh.sandbox.paypal.errors import PayPalError
from paymesh.sandbox.return_urls import is_valid

__all__ = ["flag", "mapping", "text", "url"]


def mapping(
    body: dict[str, Any], name: str, field: str, api: str = "orders/v2", required: bool = False
) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None:
        if required:
            raise PayPalError.missing(field, api)
        return None
    if not isinstance(value, dict):
        raise PayPalError.invalid_request(
            "INVALID_PARAMETER_SYNTAX",
            "The value of a field does not conform to the expected format.",
            field=field,
            value=value,
            api=api,
        )
    return value


def text(
    body: dict[str, Any],
    name: str,
    field: str,
    max_length: int,
    api: str = "orders/v2",
    required: bool = False,
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise PayPalError.missing(field, api)
        return None
    if not isinstance(value, str):
        raise PayPalError.invalid_request(
            "INVALID_PARAMETER_SYNTAX",
            "The value of a field does not conform to the expected format.",
            field=field,
            value=value,
            api=api,
        )
    if not 1 <= len(value) <= max_length:
        raise PayPalError.invalid_request(
            "INVALID_STRING_LENGTH",
            "The value of a field is either too short or too long.",
            field=field,
            value=value,
            api=api,
        )
    return value


def url(
    body: dict[str, Any], name: str, field: str, max_length: int, api: str = "orders/v2"
) -> str | None:
    """A URI a payer's browser can be sent back to, as PayPal's schema requires: absolute,
    never `javascript:`, `data:` or scheme-relative (`paymesh.sandbox.return_urls`)."""
    value = text(body, name, field, max_length, api)
    if value is not None and not is_valid(value):
        raise PayPalError.invalid_request(
            "INVALID_PARAMETER_SYNTAX",
            "The value of a field does not conform to the expected format.",
            field=field,
            value=value,
            api=api,
        )
    return value


def flag(
    body: dict[str, Any], name: str, field: str, default: bool, api: str = "payments/v2"
) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise PayPalError.invalid_request(
            "INVALID_PARAMETER_SYNTAX",
            "The value of a field does not conform to the expected format.",
            field=field,
            value=value,
            api=api,
        )
    return value
