"""JSON leaf values in the one form both patterns and events are compared in.

Strings stay ``str``. Numbers become ``int`` or ``Decimal``: the two hash and
compare by value with each other, so ``300``, ``300.0`` and ``3e2`` are one
dictionary key and an exact number pattern is a plain hash lookup. ``true``,
``false`` and ``null`` become :class:`Tag` singletons, because Python's
``True == 1`` would otherwise let a pattern ``[1]`` match an event ``true``.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Final


class Tag:
    """A non-string, non-number JSON leaf; compares by identity."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


TRUE: Final = Tag("true")
FALSE: Final = Tag("false")
NULL: Final = Tag("null")

Value = str | int | Decimal | Tag

# EventBridge compares numbers as fixed-point values between -5e9 and 5e9 with six
# decimal places (event-ruler's ComparableNumber). Range bounds outside that are
# refused; event values outside it are never inside a numeric range.
NUMERIC_LIMIT: Final = 5_000_000_000
NUMERIC_DECIMALS: Final = 6


def canonical(raw: object) -> Value:
    """The comparable form of a JSON scalar; TypeError for anything that is not one."""
    kind = type(raw)
    if kind is str:
        return raw  # type: ignore[return-value]
    if kind is int:
        return raw  # type: ignore[return-value]
    if kind is bool:
        return TRUE if raw else FALSE
    if raw is None:
        return NULL
    if kind is float:
        return _from_float(raw)  # type: ignore[arg-type]
    if isinstance(raw, Decimal):
        # A non-finite Decimal equals nothing, like a NaN: a fresh tag per value.
        return raw if raw.is_finite() else Tag(str(raw))
    if isinstance(raw, str):  # str subclasses (StrEnum members) by their value
        return str.__str__(raw)
    if isinstance(raw, int):
        return int(raw)
    if isinstance(raw, float):
        return _from_float(float(raw))
    raise TypeError(f"not a JSON value: {type(raw).__name__}")


# Converting a float costs ~0.7 µs and event streams repeat their amounts and
# scores, so conversions are remembered (bounded; cleared when full).
_FLOAT_CACHE: dict[float, Value] = {}
_FLOAT_CACHE_SIZE: Final = 65_536


def _from_float(number: float) -> Value:
    known = _FLOAT_CACHE.get(number)
    if known is not None:
        return known
    if not math.isfinite(number):
        return Tag(repr(number))
    # A float means the decimal it prints as (repr, the shortest text that round-
    # trips): 0.1 and not 0.1000000000000000055511151231257827..., and 3.6787991906126
    # 34e16 and not its binary value, so a dict pattern equals the same JSON text.
    # Below 2**53 an integral float is exactly that integer, and int is cheaper.
    exact = number.is_integer() and -(2**53) < number < 2**53
    value: Value = int(number) if exact else Decimal(repr(number))
    if len(_FLOAT_CACHE) >= _FLOAT_CACHE_SIZE:
        _FLOAT_CACHE.clear()
    _FLOAT_CACHE[number] = value
    return value


def fold(text: str) -> str:
    """Lower-case one character at a time, as event-ruler compares ignoring case.

    ``str.lower()`` looks at context (a word-final Σ becomes ς), so a lower-cased
    prefix would not always be a prefix of the lower-cased whole.
    """
    if text.isascii():
        return text.lower()
    return "".join([char.lower() for char in text])


def in_numeric_range(number: int | Decimal) -> bool:
    return -NUMERIC_LIMIT <= number <= NUMERIC_LIMIT


def decimal_places(number: int | Decimal) -> int:
    """Digits after the point once trailing zeros are dropped (exact, context-free)."""
    if type(number) is int:
        return 0
    _, digits, exponent = number.as_tuple()  # type: ignore[union-attr]
    if not isinstance(exponent, int) or exponent >= 0:
        return 0
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -exponent - trailing)
