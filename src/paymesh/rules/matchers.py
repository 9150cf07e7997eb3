"""One small matcher per pattern operator; each tests one leaf value.

Exact values are not matchers: they are dictionary keys (see values.py), which is
what lets a rule set find candidate rules with one lookup. Everything here is a
frozen dataclass so equal operators from different rules compare and hash equal
and can share one edge of the rule set's state machine.

String operators (prefix, suffix, equals-ignore-case, wildcard, cidr) only ever
match string values; numeric only numbers inside EventBridge's numeric range.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from decimal import Decimal

from .values import Value, fold, in_numeric_range

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Matcher:
    """Tests one leaf value (never an absent field: that is Condition.absent_ok)."""

    __slots__ = ()

    def matches(self, value: Value) -> bool:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Exists(Matcher):
    """``{"exists": true}``: any leaf at all, null included."""

    def matches(self, value: Value) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Absent(Matcher):
    """``{"exists": false}``: not a value test (a present leaf never satisfies it); the
    compiler turns it into "this field may be missing"."""

    def matches(self, value: Value) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class Prefix(Matcher):
    text: str  # folded (values.fold) when ignore_case
    ignore_case: bool = False

    def matches(self, value: Value) -> bool:
        if type(value) is not str:
            return False
        return (fold(value) if self.ignore_case else value).startswith(self.text)


@dataclass(frozen=True, slots=True)
class Suffix(Matcher):
    text: str  # folded (values.fold) when ignore_case
    ignore_case: bool = False

    def matches(self, value: Value) -> bool:
        if type(value) is not str:
            return False
        return (fold(value) if self.ignore_case else value).endswith(self.text)


@dataclass(frozen=True, slots=True)
class EqualsIgnoreCase(Matcher):
    text: str  # folded (values.fold)

    def matches(self, value: Value) -> bool:
        return type(value) is str and fold(value) == self.text


@dataclass(frozen=True, slots=True)
class Wildcard(Matcher):
    """``*`` matches any run of characters; ``segments`` are the literal text between."""

    segments: tuple[str, ...]

    def matches(self, value: Value) -> bool:
        if type(value) is not str:
            return False
        segments = self.segments
        if len(segments) == 1:
            return value == segments[0]
        first, last = segments[0], segments[-1]
        if len(value) < len(first) + len(last):
            return False
        if not (value.startswith(first) and value.endswith(last)):
            return False
        # Leftmost placement of each middle segment is optimal for star-only globs.
        position, end = len(first), len(value) - len(last)
        for segment in segments[1:-1]:
            found = value.find(segment, position, end)
            if found < 0:
                return False
            position = found + len(segment)
        return True


def parse_wildcard(text: str) -> tuple[str, ...]:
    """Split at unescaped ``*``; ``\\*`` and ``\\\\`` are literals. ValueError as event-ruler:
    two ``*`` in a row, or a backslash before anything else."""
    segments: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "*":
            if text.startswith("*", index + 1):
                raise ValueError(f"consecutive wildcard characters at position {index}")
            segments.append("".join(current))
            current = []
        elif char == "\\":
            if index + 1 >= len(text) or text[index + 1] not in "*\\":
                raise ValueError(f"invalid escape character at position {index}")
            current.append(text[index + 1])
            index += 1
        else:
            current.append(char)
        index += 1
    segments.append("".join(current))
    return tuple(segments)


@dataclass(frozen=True, slots=True)
class Numeric(Matcher):
    """A range; ``None`` is an open end. Bounds were checked to lie inside the limits."""

    lower: int | Decimal | None
    lower_inclusive: bool
    upper: int | Decimal | None
    upper_inclusive: bool

    def matches(self, value: Value) -> bool:
        kind = type(value)
        if kind is not int and kind is not Decimal:
            return False
        number: int | Decimal = value  # type: ignore[assignment]
        if not in_numeric_range(number):
            return False
        lower, upper = self.lower, self.upper
        if lower is not None and (number < lower or (number == lower and not self.lower_inclusive)):
            return False
        return upper is None or number < upper or (number == upper and self.upper_inclusive)


@functools.lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress | None:
    """The address a string spells, or None; cached because every cidr rule asks."""
    if not 2 <= len(text) <= 45 or ("." not in text and ":" not in text):
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Cidr(Matcher):
    network: IPNetwork

    def matches(self, value: Value) -> bool:
        if type(value) is not str:
            return False
        address = parse_ip(value)
        return (
            address is not None
            and address.version == self.network.version
            and address in self.network
        )


@dataclass(frozen=True, slots=True)
class SameAddress(Matcher):
    """An exact string that is an IPv6 literal matches any spelling of that address,
    as in event-ruler (``"::1"`` equals ``"0:0:0:0:0:0:0:1"``)."""

    address: IPAddress

    def matches(self, value: Value) -> bool:
        return type(value) is str and parse_ip(value) == self.address


@dataclass(frozen=True, slots=True)
class AnythingBut(Matcher):
    """Any present leaf except the excluded values and what the inner matchers accept.

    Values of another type than the excluded ones (a number against a list of
    strings, a string against ``{"prefix": ...}`` never applies to numbers) match.
    """

    excluded: frozenset[Value]
    inner: tuple[Matcher, ...] = ()

    def matches(self, value: Value) -> bool:
        if value in self.excluded:
            return False
        return not any(matcher.matches(value) for matcher in self.inner)
