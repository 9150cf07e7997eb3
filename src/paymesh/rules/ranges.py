"""Numeric ranges on one path of the index, found without testing each one.

One-sided ranges sit in lists sorted by bound: a bisect splits them into the
ones that hold and the ones that do not, so every entry returned is a match.

Two-sided ranges are bucketed by width. Bounds have at most six decimals, so
in millionths they are integers; a range narrower than ``2**k`` millionths
touches at most two cells of the grid with cells ``2**k`` wide, and is filed
under both. A value then probes one cell per width class present (a handful),
and only the ranges filed there are tested.
"""

from __future__ import annotations

import bisect
from decimal import Decimal
from typing import Generic, TypeVar

from .matchers import Numeric

Number = int | Decimal
Target = TypeVar("Target")
_MICROS = 1_000_000


class _Sorted(Generic[Target]):
    __slots__ = ("bounds", "targets")

    def __init__(self) -> None:
        self.bounds: list[Number] = []
        self.targets: list[Target] = []

    def insert(self, bound: Number, target: Target) -> None:
        at = bisect.bisect_right(self.bounds, bound)
        self.bounds.insert(at, bound)
        self.targets.insert(at, target)


class RangeIndex(Generic[Target]):
    __slots__ = ("bands", "greater", "greater_equal", "less", "less_equal")

    def __init__(self) -> None:
        self.greater: _Sorted[Target] = _Sorted()
        self.greater_equal: _Sorted[Target] = _Sorted()
        self.less: _Sorted[Target] = _Sorted()
        self.less_equal: _Sorted[Target] = _Sorted()
        # width class k -> cell number -> (range, target)
        self.bands: dict[int, dict[int, list[tuple[Numeric, Target]]]] = {}

    def __bool__(self) -> bool:
        return bool(
            self.greater.targets or self.greater_equal.targets or self.less.targets
            or self.less_equal.targets or self.bands
        )  # fmt: skip

    def insert(self, matcher: Numeric, target: Target) -> None:
        lower, upper = matcher.lower, matcher.upper
        if lower is not None and upper is not None:
            bottom, top = _micros(lower), _micros(upper)
            width = (top - bottom).bit_length()
            cells = self.bands.setdefault(width, {})
            for cell in {bottom >> width, top >> width}:
                cells.setdefault(cell, []).append((matcher, target))
        elif lower is not None:
            (self.greater_equal if matcher.lower_inclusive else self.greater).insert(lower, target)
        elif upper is not None:
            (self.less_equal if matcher.upper_inclusive else self.less).insert(upper, target)

    def find(self, number: Number, out: list[Target]) -> None:
        """Append the target of every range holding ``number`` (already in range)."""
        if self.greater.targets:  # bound < number
            out.extend(self.greater.targets[: bisect.bisect_left(self.greater.bounds, number)])
        if self.greater_equal.targets:  # bound <= number
            bounds = self.greater_equal.bounds
            out.extend(self.greater_equal.targets[: bisect.bisect_right(bounds, number)])
        if self.less.targets:  # bound > number
            out.extend(self.less.targets[bisect.bisect_right(self.less.bounds, number) :])
        if self.less_equal.targets:  # bound >= number
            bounds = self.less_equal.bounds
            out.extend(self.less_equal.targets[bisect.bisect_left(bounds, number) :])
        if self.bands:
            micros = _micros(number)
            for width, cells in self.bands.items():
                for matcher, target in cells.get(micros >> width, ()):
                    if matcher.matches(number):
                        out.append(target)


def _micros(number: Number) -> int:
    """``floor(number * 10**6)``, exactly, even for event values with more decimals."""
    if type(number) is int:
        return number * _MICROS
    numerator, denominator = number.as_integer_ratio()
    return numerator * _MICROS // denominator
