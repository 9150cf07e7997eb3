"""In which order a rule set's index tests a branch's fields: most selective first.

The index is a trie, so the first field of a branch decides how many nodes an
event reaches before anything can rule it out. ``detail-type`` is in nearly
every rule but has a dozen values: testing it first reaches hundreds of nodes;
testing ``customer_id`` first reaches one or none. The planner keeps, per path,
how many branches test it with exact values and how many distinct values they
use; rules per value (the bucket an event lands in) is the estimate.

Any order gives the same matches, with one exception: event-ruler judges
``exists: false`` inside arrays against the fields before it in name order, so a
branch with an absence test keeps name order.
"""

from __future__ import annotations

from collections import Counter

from .compiler import Branch, Condition
from .matchers import Cidr, EqualsIgnoreCase, Numeric, Prefix, Suffix, Wildcard
from .values import Value

_INDEXED = (Cidr, EqualsIgnoreCase, Numeric, Prefix, Suffix)


class FieldStats:
    """Per path: how many branches test it with exact values, and with which values."""

    def __init__(self) -> None:
        self._exact_branches: Counter[str] = Counter()
        self._values: dict[str, Counter[Value]] = {}

    def add(self, branches: tuple[Branch, ...]) -> None:
        for branch in branches:
            for path, condition in branch:
                if _exact_only(condition):
                    self._exact_branches[path] += 1
                    self._values.setdefault(path, Counter()).update(condition.exact)

    def remove(self, branches: tuple[Branch, ...]) -> None:
        for branch in branches:
            for path, condition in branch:
                if _exact_only(condition):
                    self._exact_branches[path] -= 1
                    values = self._values[path]
                    for value in condition.exact:
                        values[value] -= 1
                        if not values[value]:
                            del values[value]

    def order(self, branch: Branch) -> Branch:
        if any(condition.absent_ok for _, condition in branch):
            return branch
        return tuple(sorted(branch, key=self._cost))

    def _cost(self, field: tuple[str, Condition]) -> tuple[int, float, str]:
        path, condition = field
        if _exact_only(condition):
            distinct = len(self._values.get(path, ())) or 1
            return (0, self._exact_branches[path] / distinct, path)
        return (1 if all(_indexed(m) for m in condition.matchers) else 2, 0.0, path)


def _exact_only(condition: Condition) -> bool:
    return bool(condition.exact) and not condition.matchers and not condition.absent_ok


def _indexed(matcher: object) -> bool:
    """Whether edges.py finds this operator by lookup (a selective first step)."""
    if isinstance(matcher, Wildcard):
        return bool(matcher.segments[0] or matcher.segments[-1])
    return isinstance(matcher, _INDEXED)
