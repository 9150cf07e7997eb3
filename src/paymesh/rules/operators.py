"""Validate one element of a pattern field's array and turn it into a matcher.

``{"prefix": "pay"}`` -> ``Prefix("pay")``. Errors follow event-ruler's rules and
say which operator and what was wrong; the caller adds the field path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from decimal import Decimal

from .matchers import (
    Absent,
    AnythingBut,
    Cidr,
    EqualsIgnoreCase,
    Exists,
    Matcher,
    Numeric,
    Prefix,
    Suffix,
    Wildcard,
    parse_wildcard,
)
from .values import (
    NUMERIC_DECIMALS,
    NUMERIC_LIMIT,
    Tag,
    Value,
    canonical,
    decimal_places,
    fold,
    in_numeric_range,
)

# Names an object inside "$or" may not use as a field, as event-ruler reserves them.
RESERVED_NAMES = frozenset({
    "exactly", "equals-ignore-case", "prefix", "suffix", "anything-but", "exists", "wildcard",
    "numeric", "cidr", "html", "=", "<", "<=", ">", ">=", "regex", "not-wildcard",
    "not-equals-ignore-case", "date-after", "date-on-or-after", "date-before",
    "date-on-or-before", "in-date-range", "ip-address-in-range", "ip-address-not-in-range",
})  # fmt: skip

# exists:false is not a value test; the compiler records it as "may be absent".
ABSENT = Absent()

_LOWER_BOUNDS = {">": False, ">=": True}
_UPPER_BOUNDS = {"<": False, "<=": True}


def compile_operator(expression: dict[str, object]) -> Matcher | Value:
    """A matcher, ``ABSENT`` for exists:false, or a plain exact value ("exactly")."""
    if len(expression) != 1:
        if not expression:
            raise ValueError('an operator object needs one key, e.g. {"prefix": "x"}')
        raise ValueError(f"only one key allowed in an operator object, got {_names(expression)}")
    ((name, arg),) = expression.items()
    handler = _OPERATORS.get(name)
    if handler is None:
        raise ValueError(f"unrecognized operator {name!r}")
    return handler(arg)


def _string(operator: str, arg: object) -> str:
    if not isinstance(arg, str):
        raise ValueError(f"{operator} takes a string, not {_kind(arg)}")
    return arg


def _exactly(arg: object) -> Value:
    return _string("exactly", arg)


def _prefix(arg: object) -> Matcher:
    if isinstance(arg, dict):
        return Prefix(_ignore_case_text("prefix", arg), ignore_case=True)
    return Prefix(_string("prefix", arg))


def _suffix(arg: object) -> Matcher:
    if isinstance(arg, dict):
        return Suffix(_ignore_case_text("suffix", arg), ignore_case=True)
    return Suffix(_string("suffix", arg))


def _ignore_case_text(operator: str, arg: dict[str, object]) -> str:
    if list(arg) != ["equals-ignore-case"]:
        raise ValueError(f'{operator} takes a string or {{"equals-ignore-case": string}}')
    return fold(_string(f"{operator}/equals-ignore-case", arg["equals-ignore-case"]))


def _equals_ignore_case(arg: object) -> Matcher:
    return EqualsIgnoreCase(fold(_string("equals-ignore-case", arg)))


def _wildcard(arg: object) -> Matcher:
    return Wildcard(parse_wildcard(_string("wildcard", arg)))


def _exists(arg: object) -> Matcher:
    if not isinstance(arg, bool):
        raise ValueError(f"exists takes true or false, not {_kind(arg)}")
    return Exists() if arg else ABSENT


def _cidr(arg: object) -> Matcher:
    text = _string("cidr", arg)
    if text.count("/") != 1:
        raise ValueError(f"cidr {text!r} is malformed: one '/' required")
    address, bits = text.split("/")
    if not (bits.isascii() and bits.isdigit()):
        raise ValueError(f"cidr {text!r} is malformed: mask bits must be an integer")
    try:
        return Cidr(ipaddress.ip_network(f"{address}/{int(bits)}", strict=False))
    except ValueError as exc:
        raise ValueError(f"cidr {text!r} is not a valid IPv4 or IPv6 block: {exc}") from None


def _numeric(arg: object) -> Matcher:
    # One of ["=", n], ["<" | "<=", n], [">" | ">=", n] or [">" | ">=", n, "<" | "<=", m].
    if not isinstance(arg, list) or not arg:
        raise ValueError('numeric takes an array like [">", 0, "<=", 5]')
    operator, rest = arg[0], arg[1:]
    if not isinstance(operator, str) or (len(rest) == 3 and not isinstance(rest[1], str)):
        raise ValueError(f'numeric: operators are strings like ">", got {arg!r}')
    if operator not in ("=", *_LOWER_BOUNDS, *_UPPER_BOUNDS):
        raise ValueError(f"numeric: unrecognized operator {operator!r}")
    if len(rest) != 1 and not (len(rest) == 3 and operator in _LOWER_BOUNDS):
        raise ValueError(f"numeric: wrong number of terms after {operator!r} in {arg!r}")
    bound = _bound(operator, rest[0])
    if operator == "=":
        return Numeric(bound, True, bound, True)
    if operator in _UPPER_BOUNDS:
        return Numeric(None, False, bound, _UPPER_BOUNDS[operator])
    if len(rest) == 1:
        return Numeric(bound, _LOWER_BOUNDS[operator], None, False)
    top_operator: str = rest[1]
    if top_operator not in _UPPER_BOUNDS:
        raise ValueError(f"numeric: after {operator} comes < or <=, not {top_operator!r}")
    top = _bound(top_operator, rest[2])
    if not bound < top:
        raise ValueError(f"numeric: the lower bound {bound} must be below the upper {top}")
    return Numeric(bound, _LOWER_BOUNDS[operator], top, _UPPER_BOUNDS[top_operator])


def _bound(operator: str, raw: object) -> int | Decimal:
    number = _number(f"numeric {operator}", raw)
    if not in_numeric_range(number):
        raise ValueError(f"numeric {operator}: {raw} is outside -{NUMERIC_LIMIT}..{NUMERIC_LIMIT}")
    if decimal_places(number) > NUMERIC_DECIMALS:
        raise ValueError(f"numeric {operator}: {raw} has more than {NUMERIC_DECIMALS} decimals")
    return number


def _number(what: str, raw: object) -> int | Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | Decimal):
        raise ValueError(f"{what} takes a number, not {_kind(raw)}")
    number = canonical(raw)
    if isinstance(number, Tag | str):
        raise ValueError(f"{what} takes a finite number, not {raw!r}")
    return number


def _anything_but(arg: object) -> Matcher:
    if isinstance(arg, dict):
        return _anything_but_operator(arg)
    items = arg if isinstance(arg, list) else [arg]
    if not items:
        raise ValueError("anything-but takes a non-empty list")
    if all(isinstance(item, str) for item in items):
        return AnythingBut(frozenset(str(item) for item in items))
    if any(isinstance(item, str) for item in items):
        raise ValueError("anything-but list mixes strings and numbers; use one type")
    numbers = [_number("anything-but", item) for item in items]
    for number, raw in zip(numbers, items, strict=True):
        if not in_numeric_range(number) or decimal_places(number) > NUMERIC_DECIMALS:
            raise ValueError(f"anything-but: {raw} is outside EventBridge's numeric range")
    return AnythingBut(frozenset(numbers))


def _anything_but_operator(arg: dict[str, object]) -> Matcher:
    if len(arg) != 1:
        raise ValueError(f"anything-but takes one operator object, got {_names(arg)}")
    ((name, raw),) = arg.items()
    build = _ANYTHING_BUT_INNER.get(name)
    if build is None:
        raise ValueError(f"anything-but does not support {name!r}")
    texts = raw if isinstance(raw, list) else [raw]
    if not texts:
        raise ValueError(f"anything-but/{name} takes a non-empty list")
    strings = [_string(f"anything-but/{name}", text) for text in texts]
    if name in ("prefix", "suffix") and "" in strings:
        raise ValueError(f"anything-but/{name} does not allow an empty string")
    return AnythingBut(frozenset(), tuple(dict.fromkeys(build(text) for text in strings)))


_ANYTHING_BUT_INNER: dict[str, Callable[[str], Matcher]] = {
    "prefix": Prefix,
    "suffix": Suffix,
    "equals-ignore-case": lambda text: EqualsIgnoreCase(fold(text)),
    "wildcard": lambda text: Wildcard(parse_wildcard(text)),
}

_OPERATORS: dict[str, Callable[[object], Matcher | Value]] = {
    "exactly": _exactly,
    "prefix": _prefix,
    "suffix": _suffix,
    "equals-ignore-case": _equals_ignore_case,
    "wildcard": _wildcard,
    "anything-but": _anything_but,
    "numeric": _numeric,
    "exists": _exists,
    "cidr": _cidr,
}


def _names(keys: dict[str, object]) -> list[str]:
    return sorted(map(str, keys))


def _kind(raw: object) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "a boolean"
    if isinstance(raw, int | float | Decimal):
        return "a number"
    if isinstance(raw, str):
        return "a string"
    if isinstance(raw, list):
        return "an array"
    if isinstance(raw, dict):
        return "an object"
    return type(raw).__name__
