"""Reading a Stripe request's parameters with Stripe's validation errors.

Form values arrive as strings (see `paymesh.sandbox.forms`); each endpoint
names the parameters it accepts and reads each with the type it expects. A
wrong or missing value raises the `StripeError` Stripe would answer with.
These checks run before the request executes, so (as at Stripe) a request
that fails them leaves no idempotent result behind.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from paymesh.sandbox.return_urls import is_valid
from paymesh.sandbox.stripe.errors import StripeError

__all__ = ["Params"]

_CURRENCY = re.compile(r"[a-z]{3}")
_INTEGER = re.compile(r"-?\d+")
_RANGE_OPERATORS = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}

# Stripe accepts `expand` on every endpoint. The sandbox returns objects
# unexpanded (ids), which clients must handle anyway.
_ALWAYS_ALLOWED = frozenset({"expand"})


class Params:
    """The decoded parameters of one request, plus the ids from its path."""

    def __init__(self, values: dict[str, Any], path: Mapping[str, str] | None = None) -> None:
        self.values = values
        self.path = path or {}

    def only(self, allowed: Collection[str]) -> None:
        for name in self.values:
            if name not in allowed and name not in _ALWAYS_ALLOWED:
                raise StripeError.parameter_unknown(name)

    def path_id(self, name: str = "id") -> str:
        return self.path[name]

    def string(self, name: str, *, required: bool = False) -> str | None:
        value = self.values.get(name)
        if value is None or value == "":
            # Stripe treats an empty string as "unset".
            if required:
                raise StripeError.parameter_missing(name)
            return None
        if not isinstance(value, str):
            raise StripeError.invalid_request(f"Invalid string: {value!r}", param=name)
        return value

    def url(self, name: str) -> str | None:
        """A URL Stripe would redirect a browser to (`url_invalid` otherwise): absolute,
        never `javascript:`/`data:` nor scheme-relative (`paymesh.sandbox.return_urls`)."""
        value = self.string(name)
        if value is not None and not is_valid(value):
            raise StripeError.url_invalid(name)
        return value

    def integer(
        self, name: str, *, required: bool = False, minimum: int | None = None
    ) -> int | None:
        raw = self.string(name, required=required)
        if raw is None:
            return None
        if not _INTEGER.fullmatch(raw):
            raise StripeError.invalid_integer(name, raw)
        value = int(raw)
        if minimum is not None and value < minimum:
            raise StripeError.invalid_request(
                f"This value must be greater than or equal to {minimum}.",
                code="parameter_invalid_integer",
                param=name,
            )
        return value

    def limit(self) -> int:
        """The `limit` of a list endpoint: 1..100, default 10."""
        limit = self.integer("limit", minimum=1)
        if limit is not None and limit > 100:
            raise StripeError.invalid_request(
                "This value must be less than or equal to 100.",
                code="parameter_invalid_integer",
                param="limit",
            )
        return 10 if limit is None else limit

    def boolean(self, name: str) -> bool | None:
        raw = self.string(name)
        if raw is None:
            return None
        if raw not in ("true", "false"):
            raise StripeError.invalid_request(f"Invalid boolean: {raw}", param=name)
        return raw == "true"

    def off_session(self) -> bool:
        """`off_session` (true or one_off/recurring) or `error_on_requires_action=true`:
        either way a card that needs authentication must fail rather than wait."""
        raw = self.string("off_session")
        if raw not in (None, "true", "false", "one_off", "recurring"):
            raise StripeError.invalid_request(f"Invalid off_session: {raw}", param="off_session")
        return raw not in (None, "false") or bool(self.boolean("error_on_requires_action"))

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        raw = self.string(name)
        if raw is not None and raw not in choices:
            listed = ", ".join(choices[:-1]) + f", or {choices[-1]}"
            raise StripeError.invalid_request(
                f"Invalid {name}: must be one of {listed}", param=name
            )
        return raw

    def currency(self, name: str = "currency") -> str:
        raw = self.string(name, required=True)
        assert raw is not None
        currency = raw.lower()
        if not _CURRENCY.fullmatch(currency):
            raise StripeError.invalid_request(f"Invalid currency: {currency}.", param=name)
        return currency

    def string_list(self, name: str) -> list[str] | None:
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            return [value] if value else []
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise StripeError.invalid_request("Invalid array", param=name)

    def metadata(self, name: str = "metadata") -> dict[str, str] | None:
        """None when absent; {} when sent empty (clear all); "" values mean delete that key."""
        value = self.values.get(name)
        if value is None:
            return None
        if value == "":
            return {}
        if isinstance(value, list):  # `metadata[0]=a&metadata[1]=b` decodes as a list
            value = {str(i): item for i, item in enumerate(value)}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise StripeError.invalid_request("Invalid hash", param=name)
        for key, item in value.items():
            if len(key) > 40:
                raise StripeError.invalid_request(
                    f"Metadata keys can have up to 40 characters; yours has {len(key)}.",
                    param=f"{name}[{key}]",
                )
            if len(item) > 500:
                raise StripeError.invalid_request(
                    f"Metadata values can have up to 500 characters, but you passed in a value "
                    f"that is {len(item)} characters.",
                    param=f"{name}[{key}]",
                )
        return value

    def mapping(self, name: str) -> dict[str, Any] | None:
        """A hash parameter the sandbox stores but does not interpret (shipping, options)."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, dict):
            raise StripeError.invalid_request("Invalid hash", param=name)
        return value

    def created_filter(self, name: str = "created") -> Callable[[int], bool] | None:
        """`created=123` or `created[gte]=123&created[lt]=456`, as Stripe's list filters."""
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            exact = self.integer(name)
            return None if exact is None else (lambda created: created == exact)
        if not isinstance(value, dict):
            raise StripeError.invalid_request("Invalid hash", param=name)
        bounds: list[tuple[Callable[[int, int], bool], int]] = []
        for operator, raw in value.items():
            if operator not in _RANGE_OPERATORS:
                raise StripeError.parameter_unknown(f"{name}[{operator}]")
            if not isinstance(raw, str) or not _INTEGER.fullmatch(raw):
                raise StripeError.invalid_integer(f"{name}[{operator}]", raw)
            bounds.append((_RANGE_OPERATORS[operator], int(raw)))
        return lambda created: all(test(created, bound) for test, bound in bounds)


def merge_metadata(current: dict[str, str], update: dict[str, str] | None) -> dict[str, str]:
    """Stripe's update semantics: keys merge, "" deletes a key, an empty hash clears all."""
    if update is None:
        return current
    if not update:
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
